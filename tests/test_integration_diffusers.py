"""DiffkitScheduler: diffkit's samplers through diffusers' scheduler protocol equal ``diffkit.sample``.

The pipeline side runs what diffusers pipelines run (``_pipeline_loop``: x_T from the
generator with ``randn_tensor``, ``init_noise_sigma``, then per timestep
``scale_model_input``, the model, ``step(..., generator=g)``), and real DDPMPipeline /
DDIMPipeline calls on a small random UNet2DModel. The analytic model reads its t in
float32, as U-Nets do (their time embedding is float32), so both sides evaluate the
model at identical inputs and agree bitwise; Stable Diffusion is
tests/test_integration_stable_diffusion.py.
"""

from __future__ import annotations

import copy
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import diffkit
from diffkit.bench import peers
from diffkit.models import DiffusersUNet, GaussianMixture, Predictor
from diffkit.samplers import SAMPLERS
from diffkit.schedules import Linear, timesteps

pytest.importorskip("diffusers")
pytest.importorskip("greenlet")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor

from diffkit.integrations.diffusers import DiffkitScheduler

SCHEDULE = Linear()
SHAPE = (4, 8)
CPU = torch.device("cpu")


class Float32Time:
    """``model`` reading its t rounded to float32, as a U-Net's time embedding does."""

    def __init__(self, model):
        self.model, self.prediction_type = model, model.prediction_type

    def __call__(self, x, t, **cond):
        return self.model(x, t.float().to(x.dtype), **cond)


def _model(schedule=SCHEDULE, prediction_type="epsilon"):
    return Float32Time(GaussianMixture.random(schedule, dim=SHAPE[1], components=3, seed=1).as_model(prediction_type))


def _pipeline_loop(scheduler, model, steps, seed=0, shape=SHAPE, edit=None, begin=None, x0=None):
    """What a pipeline does with a scheduler (module docstring); ``edit(i, x)`` edits the latents after step i.

    ``begin`` and ``x0``: img2img (diffusers' get_timesteps / prepare_latents): start at
    timesteps[begin * order] from add_noise(x0, noise, t).
    """
    g = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(steps)
    ts = scheduler.timesteps
    if begin is None:
        x = randn_tensor(shape, generator=g, device=CPU, dtype=torch.float64) * scheduler.init_noise_sigma
    else:
        ts = ts[begin * scheduler.order:]
        scheduler.set_begin_index(begin * scheduler.order)
        noise = randn_tensor(shape, generator=g, device=CPU, dtype=torch.float64)
        x = scheduler.add_noise(x0, noise, ts[:1].repeat(shape[0]))
    for i, t in enumerate(ts):
        out = model(scheduler.scale_model_input(x, t), t.to(torch.float64).expand(shape[0]))
        x = scheduler.step(out, t, x, generator=g, return_dict=False)[0]
        if edit is not None:
            x = edit(i, x)
    return x


def _reference(model, name, steps, seed=0, schedule=SCHEDULE, spacing=None, **options):
    return diffkit.sample(model, schedule, name, steps, shape=SHAPE, dtype=torch.float64, spacing=spacing,
                          generator=torch.Generator().manual_seed(seed), **options)


# -- exactness -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("spacing", [None, "trailing"])
def test_pipeline_loop_equals_diffkit_sample(name, spacing):
    """Same model, seed and timesteps: the same sample, noise included (x_T, then the sampler's draws)."""
    options = {"eta": 0.5} if name == "ddim" else {}
    scheduler = DiffkitScheduler(name, spacing=spacing, **options)
    ours = _pipeline_loop(scheduler, _model(), 8, seed=3)
    torch.testing.assert_close(ours, _reference(_model(), name, 8, seed=3, spacing=spacing, **options), rtol=0,
                               atol=1e-12)


def test_under_inference_mode():
    """Pipelines run under no_grad; users may add inference_mode: the run follows the caller's mode."""
    with torch.inference_mode():
        ours = _pipeline_loop(DiffkitScheduler("dpmpp_sde"), _model(), 5)
    torch.testing.assert_close(ours, _reference(_model(), "dpmpp_sde", 5), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_zero_terminal_snr_v_prediction(name):
    """From alpha = 0 (lambda = -inf) with a v-prediction model: equal, and finite."""
    schedule = Linear(rescale_zero_terminal_snr=True)
    config = DDIMScheduler(rescale_betas_zero_snr=True, prediction_type="v_prediction").config
    scheduler = DiffkitScheduler.from_config(config, sampler=name, spacing="trailing")
    model = _model(schedule, "v_prediction")
    ours = _pipeline_loop(scheduler, model, 6)
    assert torch.isfinite(ours).all()
    ref = _reference(model, name, 6, schedule=schedule, spacing="trailing")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_low_precision_latents_keep_a_float32_state():
    """bf16 latents: the sampler's state stays float32 and the model gets it rounded, as under diffkit.sample."""
    model = Predictor(lambda x, t: 0.1 * x + 1e-3 * t.view(-1, 1).to(x.dtype), "epsilon")
    scheduler, g = DiffkitScheduler("dpmpp_2m_sde"), torch.Generator().manual_seed(0)
    scheduler.set_timesteps(6)
    x = randn_tensor(SHAPE, generator=g, device=CPU, dtype=torch.bfloat16)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t.expand(SHAPE[0])), t, x, generator=g).prev_sample
        assert x.dtype == torch.bfloat16
    ref = diffkit.sample(model, SCHEDULE, "dpmpp_2m_sde", 6, shape=SHAPE, dtype=torch.bfloat16,
                         generator=torch.Generator().manual_seed(0))
    assert ref.dtype == torch.float32
    torch.testing.assert_close(x, ref.to(torch.bfloat16), rtol=0, atol=0)


def test_two_calls_per_step_are_listed_like_diffusers_second_order_schedulers():
    """dpmpp_sde: order 2, timesteps [t_0, s_0, t_1, s_1, ..., t_{N-1}], so timesteps[2 k] = t_k (img2img's index)."""
    scheduler = DiffkitScheduler("dpmpp_sde", spacing="linspace")
    scheduler.set_timesteps(6)
    visited = timesteps(SCHEDULE, 6, "linspace")
    assert scheduler.order == 2 and scheduler.num_inference_steps == 6 and len(scheduler.timesteps) == 11
    assert scheduler.timesteps.dtype == torch.float32  # the stages are fractional
    np.testing.assert_array_equal(scheduler.timesteps[::2].numpy(), visited.astype(np.float32))
    stages = scheduler.timesteps[1::2].numpy()
    assert np.all((stages < visited[:-1]) & (stages > visited[1:]))


def test_timesteps_dtype():
    scheduler = DiffkitScheduler("ddim", spacing="leading")
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.dtype == torch.int64  # integer grids as diffusers' DDIM gives them
    np.testing.assert_array_equal(scheduler.timesteps.numpy(), timesteps(SCHEDULE, 10, "leading"))
    scheduler = DiffkitScheduler("dpmpp_2m")  # karras: fractional
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.dtype == torch.float32


@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_sde", "ddpm"])
def test_img2img_begin_index(name):
    """set_begin_index(t_start * order), then add_noise at timesteps[begin]: the sampler run on the remaining grid."""
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    scheduler = DiffkitScheduler(name, spacing="trailing")
    ours = _pipeline_loop(scheduler, _model(), 10, seed=4, begin=4, x0=x0)
    g = torch.Generator().manual_seed(4)
    visited = timesteps(SCHEDULE, 10, "trailing")[4:]
    noise = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    x = SCHEDULE.add_noise(x0, noise, torch.full((SHAPE[0],), visited[0], dtype=torch.float64))
    ref = SAMPLERS[name].fn(_model(), x, SCHEDULE, visited, generator=g)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_first_timestep_locates_the_start_without_set_begin_index():
    scheduler = DiffkitScheduler("dpmpp_2m", spacing="trailing")
    scheduler.set_timesteps(10)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ts, model = scheduler.timesteps[3:], _model()
    for t in ts:
        x = scheduler.step(model(x, t.to(torch.float64).expand(SHAPE[0])), t, x).prev_sample
    start = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = SAMPLERS["dpmpp_2m"].fn(model, start, SCHEDULE, timesteps(SCHEDULE, 10, "trailing")[3:])
    torch.testing.assert_close(x, ref, rtol=0, atol=1e-12)


def test_add_noise_is_the_forward_process():
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(6))
    t = torch.tensor([10, 200, 500, 999])
    ours = DiffkitScheduler().add_noise(x0, noise, t)
    # diffusers' float32 abar table (relative <= 2 T eps32, times |x| < 5): 1e-5.
    torch.testing.assert_close(ours, DDIMScheduler().add_noise(x0, noise, t), rtol=0, atol=1e-5)
    one = DiffkitScheduler().add_noise(x0, noise, torch.tensor([200]))  # one t for the batch (inpainting)
    torch.testing.assert_close(one, SCHEDULE.add_noise(x0, noise, torch.full((SHAPE[0],), 200)))


def test_edited_latents_continue_like_diffusers():
    """An inpainting-style blend after each step: the sampler continues from the blended latents, as diffusers'
    DPMSolverMultistepScheduler does (its history converted from the latents it is given)."""
    known = torch.randn(SHAPE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    mask = (torch.arange(SHAPE[1]) < 4).to(torch.float64)  # the first 4 coordinates are generated

    def loop(scheduler):
        def blend(i, x):
            ts = scheduler.timesteps
            if i + 1 == len(ts):
                return x
            noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(100 + i), dtype=torch.float64)
            return mask * x + (1 - mask) * scheduler.add_noise(known, noise, ts[i + 1:i + 2])
        return _pipeline_loop(scheduler, _model(), 10, seed=1, edit=blend)

    ours = loop(DiffkitScheduler("dpmpp_2m", spacing="linspace"))
    theirs = loop(peers.diffusers_scheduler("dpmpp_2m", SCHEDULE, spacing="linspace"))
    # diffusers' float32 tables amplified by sigma_k <= 157 (test_reference_diffusers): 1e-5.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    plain = _pipeline_loop(DiffkitScheduler("dpmpp_2m", spacing="linspace"), _model(), 10, seed=1)
    assert (ours - plain).abs().max() > 0.1  # the edits did change the run


# -- diffusers pipelines ------------------------------------------------------------------


def _unet():
    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, attention_head_dim=4).eval()


def _recording(scheduler):
    """The scheduler, its step() recording what it returns (pipelines clamp their output image)."""
    returned, step = [], scheduler.step
    scheduler.step = lambda *args, **kwargs: returned.append(step(*args, **kwargs)) or returned[-1]
    return scheduler, returned


@pytest.mark.parametrize("pipeline, name, options", [(DDPMPipeline, "ddpm", {}), (DDIMPipeline, "ddim", {"eta": 1.0}),
                                                     (DDIMPipeline, "dpmpp_2m", {})])
def test_ddpm_and_ddim_pipelines_equal_diffkit_sample(pipeline, name, options):
    unet = _unet()
    pipe = pipeline(unet=unet, scheduler=DDPMScheduler())
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler, returned = _recording(DiffkitScheduler.from_scheduler(pipe.scheduler, sampler=name, **options))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the pipeline's default eta=0 asks for nothing the sampler does not do
        images = pipe(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=6,
                      output_type="pt").images
    ours = returned[-1].prev_sample
    ref = diffkit.sample(DiffusersUNet(unet), SCHEDULE, name, 6, shape=(2, 3, 8, 8),
                         generator=torch.Generator().manual_seed(0), **options)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)  # the bound; measured: 0
    torch.testing.assert_close(images, (ref / 2 + 0.5).clamp(0, 1), rtol=0, atol=1e-5)


def test_ddim_pipeline_eta_it_cannot_honour_warns():
    pipe = DDIMPipeline(unet=_unet(), scheduler=DDPMScheduler())
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DiffkitScheduler("dpmpp_2m")
    with pytest.warns(UserWarning, match="eta=0.5 is not used"):
        pipe(batch_size=1, num_inference_steps=2, eta=0.5, output_type="pt")


def test_custom_timesteps_and_sigmas():
    fixed = [999.0, 700.5, 400.0, 120.0, 10.0]
    scheduler = DiffkitScheduler("dpmpp_2m", timesteps=fixed)
    scheduler.set_timesteps(5)
    np.testing.assert_array_equal(scheduler.timesteps.numpy(), np.float32(fixed))
    with pytest.raises(ValueError, match="num_inference_steps=5"):
        scheduler.set_timesteps(50)
    scheduler = DiffkitScheduler("dpmpp_2m")
    scheduler.set_timesteps(timesteps=fixed)
    np.testing.assert_array_equal(scheduler.timesteps.numpy(), np.float32(fixed))
    sigmas = np.append(SCHEDULE.sigma_k(np.array(fixed)), 0.0)
    scheduler.set_timesteps(sigmas=sigmas)
    np.testing.assert_allclose(scheduler.timesteps.numpy(), fixed, rtol=1e-6)
    with pytest.raises(ValueError, match="final 0"):
        scheduler.set_timesteps(sigmas=sigmas[:-1])


# -- the protocol's guard rails and lifetime ------------------------------------------------


def test_step_misuse_raises():
    scheduler, model = DiffkitScheduler("ddim", spacing="leading"), _model()
    x = torch.randn(SHAPE, dtype=torch.float64)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(x, 999, x)
    scheduler.set_timesteps(4)
    ts = scheduler.timesteps
    with pytest.raises(TypeError, match="unexpected keyword"):
        scheduler.step(x, ts[0], x, s_churn=1.0)
    x = scheduler.step(model(x, ts[0].double().expand(4)), ts[0], x).prev_sample
    with pytest.raises(ValueError, match=r"next model call is at timesteps\[1\]"):
        scheduler.step(model(x, ts[2].double().expand(4)), ts[2], x)
    scheduler.set_timesteps(4)
    g = torch.Generator().manual_seed(0)
    x = scheduler.step(model(x, ts[0].double().expand(4)), ts[0], x, generator=g).prev_sample
    with pytest.raises(ValueError, match="another generator"):
        scheduler.step(model(x, ts[1].double().expand(4)), ts[1], x, generator=torch.Generator())
    scheduler = DiffkitScheduler("dpmpp_sde", spacing="linspace")
    scheduler.set_timesteps(4)
    with pytest.raises(ValueError, match="where a step starts"):
        scheduler.set_begin_index(1)  # the first step's intermediate stage
    _pipeline_loop(scheduler, model, 4)
    with pytest.raises(ValueError, match="made all its 7 model calls"):
        scheduler.step(x, scheduler.timesteps[-1], x)


def test_errors_in_the_sampler_surface_in_step_and_end_the_run():
    scheduler = DiffkitScheduler("dpmpp_2m", spacing="linspace")
    with pytest.raises(ValueError, match="non-finite"):
        _pipeline_loop(scheduler, lambda x, t: torch.full_like(x, float("inf")), 5)
    assert scheduler.step_index is None  # the run is over; the next one starts clean
    torch.testing.assert_close(_pipeline_loop(scheduler, _model(), 5),
                               _reference(_model(), "dpmpp_2m", 5, spacing="linspace"), rtol=0, atol=1e-12)


def test_a_pipeline_that_stops_early_leaves_nothing_running():
    scheduler, model = DiffkitScheduler("dpmpp_2m_sde", spacing="linspace"), _model()

    def crash(i, x):
        if i == 2:
            raise KeyboardInterrupt  # the user stops the pipeline
        return x

    with pytest.raises(KeyboardInterrupt):
        _pipeline_loop(scheduler, model, 8, edit=crash)
    abandoned = scheduler._run
    assert abandoned is not None and not abandoned.finished
    ours = _pipeline_loop(scheduler, model, 8)  # set_timesteps ends the abandoned run
    assert abandoned._greenlet.dead
    torch.testing.assert_close(ours, _reference(model, "dpmpp_2m_sde", 8, spacing="linspace"), rtol=0, atol=1e-12)
    scheduler.set_timesteps(8)
    scheduler.step(model(torch.zeros(SHAPE, dtype=torch.float64), scheduler.timesteps[0].double().expand(4)),
                   scheduler.timesteps[0], torch.zeros(SHAPE, dtype=torch.float64))
    running = scheduler._run
    scheduler.close()
    assert running._greenlet.dead and scheduler.step_index is None


def test_separate_instances_in_separate_threads():
    seeds = list(range(6))
    model = _model()
    expected = [_pipeline_loop(DiffkitScheduler("dpmpp_2m_sde"), model, 6, seed=s) for s in seeds]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda s: _pipeline_loop(DiffkitScheduler("dpmpp_2m_sde"), model, 6, seed=s), seeds))
    for ours, ref in zip(got, expected):
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_a_copy_carries_no_run():
    scheduler, model = DiffkitScheduler("dpmpp_2m", spacing="linspace"), _model()
    scheduler.set_timesteps(5)
    x = torch.randn(SHAPE, dtype=torch.float64)
    t0 = scheduler.timesteps[0]
    scheduler.step(model(x, t0.double().expand(4)), t0, x)
    twin = copy.deepcopy(scheduler)
    assert twin.step_index is None and scheduler.step_index == 1 and dict(twin.config) == dict(scheduler.config)
    torch.testing.assert_close(_pipeline_loop(twin, model, 5), _reference(model, "dpmpp_2m", 5, spacing="linspace"),
                               rtol=0, atol=1e-12)


def test_overhead_benchmark_runs(capsys):
    """benchmarks/bench_diffusers_adapter.py's rows, on a tiny shape: three sides, ratios, a markdown table."""
    from diffkit.bench import diffusers_adapter

    run = diffusers_adapter.run(steps=3, repeats=1, warmup=0, samplers=("ddim", "dpmpp_2m"), shapes=((1, 4, 8, 8),))
    assert [r["sampler"] for r in run["rows"]] == ["ddim", "dpmpp_2m"]
    assert set(run["rows"][0]["cpu"]["us_per_step"]) == {"diffkit", "diffusers", "pipeline"}
    assert "| dpmpp_2m (linspace) | 1x4x8x8 |" in diffusers_adapter.to_markdown(run)
    assert "dpmpp_2m" in capsys.readouterr().out


def test_the_analytical_first_step_is_refused_in_a_pipeline():
    # A pipeline calls the model at every timestep it is given, the first included: afs has nothing to skip.
    with pytest.raises(ValueError, match="afs=True .* not available in a diffusers pipeline.*diffkit.sample"):
        DiffkitScheduler("ipndm", afs=True)
    DiffkitScheduler("ipndm", afs=False).set_timesteps(5)  # off, as by default: accepted
