"""Reading diffusers scheduler configs: the training schedule and prediction type, and what cannot be mapped."""

from __future__ import annotations

import numpy as np
import pytest

from diffkit.schedules import Cosine, Linear, ScaledLinear

pytest.importorskip("diffusers")
pytest.importorskip("greenlet")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EDMEulerScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    ScoreSdeVeScheduler,
)

from diffkit.integrations.diffusers import DiffkitScheduler, schedule_from_config


@pytest.mark.parametrize("beta_schedule, expected", [("linear", Linear), ("scaled_linear", ScaledLinear),
                                                     ("squaredcos_cap_v2", Cosine)])
@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_config_maps_to_the_same_schedule(beta_schedule, expected, rescale, kind):
    kwargs = {} if expected is Cosine else {"beta_start": 0.0002, "beta_end": 0.015}
    source = DDIMScheduler(num_train_timesteps=500, beta_schedule=beta_schedule, rescale_betas_zero_snr=rescale,
                           prediction_type=kind, **kwargs)
    schedule, prediction_type = schedule_from_config(source.config)
    assert schedule == expected(num_train_timesteps=500, rescale_zero_terminal_snr=rescale, **kwargs)
    assert prediction_type == kind
    # the same table diffusers builds, to its float32 rounding (a product of T float32 factors)
    np.testing.assert_allclose(schedule.alphas_cumprod, source.alphas_cumprod.double().numpy(), rtol=1e-4,
                               atol=1e-7)


def test_every_discrete_scheduler_maps_alike():
    configs = [cls(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).config
               for cls in (DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler)]
    assert {schedule_from_config(c) for c in configs} == {(ScaledLinear(), "epsilon")}


@pytest.mark.parametrize("source, message", [
    (lambda: FlowMatchEulerDiscreteScheduler(invert_sigmas=True), "invert_sigmas"),  # more: ..._flow.py
    (lambda: EDMEulerScheduler(), "EDM"),
    (lambda: ScoreSdeVeScheduler(), "no training schedule"),
    (lambda: DDPMScheduler(trained_betas=np.linspace(1e-4, 0.02, 1000).tolist()), "trained_betas"),
    (lambda: DDPMScheduler(beta_schedule="sigmoid"), "sigmoid"),
    (lambda: DDPMScheduler(variance_type="learned_range"), "learned_range"),
    (lambda: EulerDiscreteScheduler(timestep_type="continuous"), "timestep_type"),
])
def test_what_cannot_be_mapped_is_named(source, message):
    with pytest.raises(ValueError, match=message):
        DiffkitScheduler.from_scheduler(source())


def test_bad_arguments_list_what_is_allowed():
    with pytest.raises(ValueError, match="registered samplers: ddpm"):
        DiffkitScheduler("euler_a")
    with pytest.raises(ValueError, match="allowed: eta"):
        DiffkitScheduler("ddim", variance="fixed_large")
    with pytest.raises(ValueError, match="spacing or timesteps"):
        DiffkitScheduler("ddim", spacing="leading", timesteps=[999, 500])
    with pytest.raises(ValueError, match="eta must be"):  # option values: checked by the sampler's dry run
        DiffkitScheduler("ddim", eta=2.0).set_timesteps(5)
    with pytest.raises(ValueError, match="unknown spacing"):
        DiffkitScheduler("ddim", spacing="cosine").set_timesteps(5)
    with pytest.raises(TypeError, match="diffusers scheduler"):
        DiffkitScheduler.from_scheduler({"beta_schedule": "linear"})


def test_from_config_overrides_and_round_trips(tmp_path):
    source = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    ours = DiffkitScheduler.from_config(source.config, sampler="dpmpp_2m_sde", spacing="trailing", eta=0.5,
                                        rescale_betas_zero_snr=True, prediction_type="v_prediction")
    assert ours.schedule == ScaledLinear(rescale_zero_terminal_snr=True)
    assert ours.model_prediction_type == "v_prediction" and ours.config.prediction_type == "v_prediction"
    again = DiffkitScheduler.from_config(ours.config)
    assert dict(again.config) == dict(ours.config) and again.schedule == ours.schedule
    ours.save_pretrained(tmp_path)
    loaded = DiffkitScheduler.from_pretrained(tmp_path)
    assert loaded.config.sampler == "dpmpp_2m_sde" and loaded.config.sampler_options == {"eta": 0.5}
    assert loaded.schedule == ours.schedule and loaded.config.spacing == "trailing"
    switched = DiffkitScheduler.from_config(ours.config, sampler="ddim")  # the old sampler's options stay behind
    assert switched.config.sampler_options == {}
    back = DDIMScheduler.from_config(ours.config)  # and diffusers reads the training keys back
    np.testing.assert_array_equal(back.alphas_cumprod.numpy(), DDIMScheduler.from_config(
        source.config, rescale_betas_zero_snr=True).alphas_cumprod.numpy())
