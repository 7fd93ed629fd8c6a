"""DiffkitScheduler on flow matching (SD3, Flux): the SD3 / Flux denoising loop equals ``diffkit.sample``.

The loop is the pipelines' (``_flow_loop``): x_T from the generator, then per entry t of
``scheduler.timesteps`` the model and ``step`` (no init_noise_sigma, no scale_model_input:
SD3 and Flux call neither). The model is a Gaussian mixture on FlowMatch(shift=3.0)
predicting the flow, reading its t in float32 as a transformer's time embedding does, so
both sides evaluate it at identical inputs and agree to float64 rounding (<= 1e-12).
diffusers' own flow schedulers keep float32 state and sigmas: 1e-5 against them
(tests/test_reference_families.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import noise

import diffkit
from diffkit.models import GaussianMixture, Predictor
from diffkit.samplers import SAMPLERS
from diffkit.schedules import FlowMatch, Linear, flux_mu, timesteps

pytest.importorskip("diffusers")
pytest.importorskip("greenlet")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from diffusers import (
    DPMSolverMultistepScheduler,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from diffkit.integrations.diffusers import DiffkitScheduler, DynamicShift, config_from_schedule, schedule_from_config

SD3 = FlowMatch(shift=3.0)
MU = flux_mu(4096)  # Flux.1 at 1024x1024
SHAPE = (4, 8)
FLOAT32_STATE = 1e-5  # diffusers' flow schedulers: float32 state and sigmas (tests/test_reference_families.py)
EXACT = 1e-12  # the same arithmetic in float64


def _model(schedule=SD3):
    mixture = GaussianMixture.random(schedule, dim=SHAPE[1], components=3, seed=1).as_model("flow")
    return Predictor(lambda x, t: mixture(x, t.float().to(x.dtype)), "flow")


def _flow_loop(scheduler, model, steps=None, seed=0, x=None, **set_timesteps):
    """The SD3 / Flux pipelines' denoising loop; ``set_timesteps``: sigmas, mu, timesteps."""
    g = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(steps, **set_timesteps)
    if x is None:
        x = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    for t in scheduler.timesteps:
        out = model(x, t.to(torch.float64).expand(SHAPE[0]))
        x = scheduler.step(out, t, x, generator=g, return_dict=False)[0]
    return x


def _reference(model, name, steps, schedule=SD3, seed=0, **kwargs):
    return diffkit.sample(model, schedule, name, steps, shape=SHAPE, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(seed), **kwargs)


def _sd3(sampler, **kwargs):
    return DiffkitScheduler.from_scheduler(FlowMatchEulerDiscreteScheduler(shift=3.0), sampler=sampler, **kwargs)


def _flux(sampler):
    source = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15)
    return DiffkitScheduler.from_scheduler(source, sampler=sampler)


# -- the configs ----------------------------------------------------------------------------

def test_flow_configs_map_to_flow_match():
    assert schedule_from_config(FlowMatchEulerDiscreteScheduler(shift=3.0).config) == (SD3, "flow")
    for cls in (DPMSolverMultistepScheduler, UniPCMultistepScheduler):
        config = cls(use_flow_sigmas=True, flow_shift=3.0, prediction_type="flow_prediction").config
        assert schedule_from_config(config) == (SD3, "flow")
    # Flux: the grid's shift is exp(mu) per image size; the static shift is ignored, as diffusers ignores it
    flux = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, max_image_seq_len=8192).config
    assert schedule_from_config(flux) == (FlowMatch(), "flow")
    assert DynamicShift.from_config(flux) == DynamicShift(max_image_seq_len=8192)
    assert DynamicShift().mu(4096) == pytest.approx(MU)


def test_flow_config_round_trips(tmp_path):
    ours = _flux("dpmpp_2m")
    assert ours.schedule == FlowMatch() and ours.dynamic_shift == DynamicShift()
    assert ours.config.use_dynamic_shifting and ours.config.max_image_seq_len == 4096  # what pipelines read
    again = DiffkitScheduler.from_config(ours.config)
    assert dict(again.config) == dict(ours.config) and again.dynamic_shift == ours.dynamic_shift
    ours.save_pretrained(tmp_path)
    assert DiffkitScheduler.from_pretrained(tmp_path).dynamic_shift == DynamicShift()
    back = FlowMatchEulerDiscreteScheduler.from_config(_sd3("euler").config)  # diffusers reads the keys back
    assert back.config.shift == 3.0 and not back.config.use_dynamic_shifting
    # FlowMatch(mu=m) is the static shift exp(m): the same grid
    config = config_from_schedule(FlowMatch(mu=MU), "flow")
    assert config["shift"] == math.exp(MU)
    np.testing.assert_array_equal(timesteps(schedule_from_config(config)[0], 10), timesteps(FlowMatch(mu=MU), 10))


@pytest.mark.parametrize("key, value, extra", [
    ("invert_sigmas", True, {}),
    ("shift_terminal", 0.1, {}),
    ("stochastic_sampling", True, {}),
    ("time_shift_type", "linear", {"use_dynamic_shifting": True}),
])
def test_flow_keys_diffkit_cannot_honour_are_named(key, value, extra):
    source = FlowMatchEulerDiscreteScheduler(shift=3.0, **{key: value}, **extra)
    with pytest.raises(ValueError, match=key):
        DiffkitScheduler.from_scheduler(source)
    DiffkitScheduler.from_scheduler(source, **{key: FlowMatchEulerDiscreteScheduler().config[key]})  # overridable


def test_dynamic_shift_needs_a_flow_schedule_without_a_shift():
    with pytest.raises(ValueError, match="not FlowMatch"):
        DiffkitScheduler(schedule=Linear(), dynamic_shift=DynamicShift())
    with pytest.raises(ValueError, match="already has one"):
        DiffkitScheduler(schedule=SD3, dynamic_shift=DynamicShift())
    with pytest.raises(ValueError, match="base_seq_len < max_seq_len"):
        DynamicShift(base_image_seq_len=4096, max_image_seq_len=256)


# -- what pipelines see -----------------------------------------------------------------------

def test_timesteps_are_the_model_time_in_float32():
    scheduler = _sd3("euler")
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.dtype == torch.float32 and scheduler.order == 1
    np.testing.assert_array_equal(scheduler.timesteps.numpy(), timesteps(SD3, 10).astype(np.float32))
    assert scheduler.timesteps[0] == 1000.0  # sigma = 1: pure noise
    x = noise(SHAPE)
    assert scheduler.init_noise_sigma == 1.0 and scheduler.scale_model_input(x, scheduler.timesteps[0]) is x
    # shift 1 with a grid of integers stays float32, as diffusers' flow schedulers' timesteps do
    plain = DiffkitScheduler.from_scheduler(FlowMatchEulerDiscreteScheduler(), sampler="euler")
    plain.set_timesteps(4)
    assert plain.timesteps.dtype == torch.float32 and plain.timesteps.tolist() == [1000.0, 667.0, 334.0, 1.0]


# -- exactness ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sd3_loop_equals_diffkit_sample(name):
    """Every sampler, on the SD3 config (static shift 3): the same sample as diffkit.sample, noise included."""
    ours = _flow_loop(_sd3(name), _model(), 8, seed=3)
    torch.testing.assert_close(ours, _reference(_model(), name, 8, seed=3), rtol=0, atol=EXACT)


@pytest.mark.parametrize("name", ["euler", "dpmpp_2m", "unipc"])
def test_flux_loop_with_mu_equals_diffkit_sample_on_flow_match_mu(name):
    """Dynamic shifting: set_timesteps(mu=...) samples FlowMatch(mu=mu), on its default grid and on Flux's sigmas."""
    model = _model(FlowMatch(mu=MU))
    ours = _flow_loop(_flux(name), model, 8, mu=MU)
    torch.testing.assert_close(ours, _reference(model, name, 8, schedule=FlowMatch(mu=MU)), rtol=0, atol=EXACT)
    u = np.linspace(1.0, 1 / 8, 8)  # what FluxPipeline passes, shifted by the scheduler
    ours = _flow_loop(_flux(name), model, sigmas=u, mu=MU)
    flux_grid = 1000 * FlowMatch(mu=MU).shifted(u)
    ref = _reference(model, name, None, schedule=FlowMatch(mu=MU), timesteps=flux_grid)
    torch.testing.assert_close(ours, ref, rtol=0, atol=EXACT)


@pytest.mark.parametrize("steps", [5, 10, 28])
def test_euler_agrees_with_flow_match_euler_discrete_scheduler(steps):
    """diffusers' FlowMatchEulerDiscreteScheduler, as SD3 and Flux run it.

    Its default grid with a static shift shifts twice (diffusers issue #13243; ends at
    shift(shift(1/T))): handed that grid as timesteps, the adapter reproduces it; handed the
    unshifted u = linspace(1, 1/T, N) as sigmas, diffusers shifts once and builds diffkit's
    default grid, so the adapter's default equals it. With mu (Flux) both shift once.
    """
    model = _model()
    diffusers_default = FlowMatchEulerDiscreteScheduler(shift=3.0)
    theirs = _flow_loop(diffusers_default, model, steps)
    double = diffusers_default.timesteps.double().numpy()
    assert double[-1] / 1000 == pytest.approx(SD3.shifted(SD3.shifted(1e-3)), rel=1e-6)
    torch.testing.assert_close(_flow_loop(_sd3("euler"), model, timesteps=double), theirs, rtol=0,
                               atol=FLOAT32_STATE)
    u = np.linspace(1.0, 1e-3, steps)
    theirs = _flow_loop(FlowMatchEulerDiscreteScheduler(shift=3.0), model, sigmas=u)
    torch.testing.assert_close(_flow_loop(_sd3("euler"), model, steps), theirs, rtol=0, atol=FLOAT32_STATE)
    model = _model(FlowMatch(mu=MU))
    flux_sigmas = np.linspace(1.0, 1 / steps, steps)
    theirs = _flow_loop(FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True), model, sigmas=flux_sigmas, mu=MU)
    ours = _flow_loop(_flux("euler"), model, sigmas=flux_sigmas, mu=MU)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=FLOAT32_STATE)


@pytest.mark.parametrize("name, cls, options", [
    ("dpmpp_2m", DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    ("unipc", UniPCMultistepScheduler, {"solver_order": 2}),
])
def test_multistep_flow_configs(name, cls, options):
    """DPMSolverMultistep / UniPC with use_flow_sigmas: the adapter equals diffkit.sample on
    FlowMatch(shift=flow_shift), and, on diffusers' grid, diffusers itself (the model called at
    sigma * T, not at its truncated timesteps: tests/test_reference_families.py)."""
    source = cls(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0, final_sigmas_type="zero",
                 **options)
    model = _model()
    ours = _flow_loop(DiffkitScheduler.from_scheduler(source, sampler=name), model, 10)
    torch.testing.assert_close(ours, _reference(model, name, 10), rtol=0, atol=EXACT)
    source.set_timesteps(10)
    grid = source.sigmas[:-1].double() * 1000
    x = noise(SHAPE)
    for t, t_sigma in zip(source.timesteps, grid):
        x = source.step(model(x, t_sigma.expand(SHAPE[0])), t, x).prev_sample
    ours = _flow_loop(DiffkitScheduler.from_scheduler(source, sampler=name), model, timesteps=grid.numpy(),
                      x=noise(SHAPE))
    torch.testing.assert_close(ours, x, rtol=0, atol=FLOAT32_STATE)


def test_img2img_scale_noise_and_begin_index():
    """SD3 img2img: timesteps[t_start:], set_begin_index(t_start), scale_noise(x0, t, noise), then the loop."""
    scheduler, model, x0 = _sd3("dpmpp_2m"), _model(), noise(SHAPE, seed=1)
    scheduler.set_timesteps(10)
    t_start, eps = 4, noise(SHAPE, seed=2)
    t = scheduler.timesteps[t_start:t_start + 1].repeat(SHAPE[0])
    x = scheduler.scale_noise(x0, t, eps)
    sigma = t.double().view(-1, 1) / 1000
    torch.testing.assert_close(x, (1 - sigma) * x0 + sigma * eps, rtol=0, atol=EXACT)
    scheduler.set_begin_index(t_start)
    start = x
    for t in scheduler.timesteps[t_start:]:
        x = scheduler.step(model(x, t.to(torch.float64).expand(SHAPE[0])), t, x).prev_sample
    ref = diffkit.sample(model, SD3, "dpmpp_2m", x=start, timesteps=timesteps(SD3, 10)[t_start:])
    torch.testing.assert_close(x, ref, rtol=0, atol=EXACT)


# -- bad arguments ------------------------------------------------------------------------------

def test_mu_is_required_refused_or_ignored_as_diffusers_does():
    with pytest.raises(ValueError, match="use_dynamic_shifting: set_timesteps needs mu"):
        _flux("euler").set_timesteps(10)
    with pytest.raises(ValueError, match="mu shifts a flow-matching grid"):
        DiffkitScheduler("euler").set_timesteps(10, mu=MU)
    with pytest.raises(ValueError, match="mu must be a finite number"):
        _flux("euler").set_timesteps(10, mu=float("nan"))
    # static shift: mu ignored, as FlowMatchEulerDiscreteScheduler ignores it (FluxPipeline always passes it)
    ignored, plain = _sd3("euler"), _sd3("euler")
    ignored.set_timesteps(10, mu=MU)
    plain.set_timesteps(10)
    torch.testing.assert_close(ignored.timesteps, plain.timesteps, rtol=0, atol=0)


@pytest.mark.parametrize("sigmas, message", [
    (np.r_[np.linspace(1.0, 0.1, 5), 0.0], "flow sigmas: unshifted noise levels in \\(0, 1\\]"),
    (np.linspace(1.5, 0.1, 5), "flow sigmas"),
    (np.linspace(0.1, 1.0, 5), "decreasing"),
])
def test_bad_flow_sigmas_are_named(sigmas, message):
    with pytest.raises(ValueError, match=message):
        _sd3("euler").set_timesteps(sigmas=sigmas)


def test_steps_and_sigmas_must_agree():
    with pytest.raises(ValueError, match="num_inference_steps=6 but 5 sigmas"):
        _sd3("euler").set_timesteps(6, sigmas=np.linspace(1.0, 0.1, 5))
