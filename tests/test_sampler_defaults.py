"""diffkit.sample with only the step count: the measured table of diffkit.samplers.defaults, in every family."""

from __future__ import annotations

import pytest
import torch

import diffkit
from diffkit.bench.latency import CountingModel
from diffkit.models import GaussianMixture
from diffkit.samplers import SAMPLERS
from diffkit.samplers.api import DEFAULT_STEPS
from diffkit.samplers.defaults import DEFAULTS, default_for, family
from diffkit.schedules import EDM, ContinuousVP, Cosine, FlowMatch, Linear, ScaledLinear, spacings, timesteps

FAMILIES = {  # name -> (schedule, prediction type of its models, the table's family)
    "linear": (Linear(), "epsilon", "discrete_vp"),
    "cosine": (Cosine(), "epsilon", "cosine"),
    "scaled_linear": (ScaledLinear(), "epsilon", "scaled_linear"),
    "zero_snr": (Linear(rescale_zero_terminal_snr=True), "v_prediction", "zero_snr"),
    "flow": (FlowMatch(shift=3.0), "flow", "flow"),
    "edm": (EDM(), "sample", "edm"),
    "continuous_vp": (ContinuousVP(), "epsilon", "continuous_vp"),
}


def test_table_is_well_formed():
    for name, entries in DEFAULTS.items():
        assert [e.from_steps for e in entries][0] == 1
        assert all(a.from_steps < b.from_steps for a, b in zip(entries, entries[1:])), name
        for e in entries:  # deterministic, one model call a step (N steps = NFE N), options it accepts
            info = SAMPLERS[e.sampler]
            assert not info.stochastic and info.evals_per_step == 1
            assert set(e.options) <= set(info.options)


@pytest.mark.parametrize("name", FAMILIES)
def test_steps_only_is_the_table_choice_finite_with_n_calls(name):
    schedule, prediction, table_family = FAMILIES[name]
    assert family(schedule) == table_family
    model = GaussianMixture.two_d(schedule).as_model(prediction)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for n in range(1, 13):
        chosen = default_for(schedule, n)
        assert chosen.spacing in spacings(schedule)
        counter = CountingModel(model)
        got = diffkit.sample(counter, schedule, steps=n, x=x)
        assert torch.isfinite(got).all(), (name, n)
        assert counter.calls == n
        grid = chosen.timesteps(schedule, n)  # n points, or n + 1 where the entry takes the analytical first step
        assert len(grid) == n + bool(chosen.options.get("afs"))
        explicit = diffkit.sample(model, schedule, chosen.sampler, x=x, timesteps=grid, **chosen.options)
        torch.testing.assert_close(got, explicit, rtol=0, atol=0)


def _calls_everywhere(options) -> dict:
    return {k: v for k, v in options.items() if k != "afs"}


def test_explicit_arguments_win(gmm2d, linear):
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    chosen = default_for(linear, 6)
    # an explicit sampler keeps its own default spacing (dpmpp_2m: karras), as before the table
    torch.testing.assert_close(diffkit.sample(gmm2d, linear, "dpmpp_2m", 6, x=x),
                               diffkit.sample(gmm2d, linear, "dpmpp_2m", 6, x=x, spacing="karras"), rtol=0, atol=0)
    # an explicit spacing with the table's sampler, a model call at every visited timestep (no afs)
    counter = CountingModel(gmm2d)
    torch.testing.assert_close(diffkit.sample(counter, linear, steps=6, x=x, spacing="trailing"),
                               diffkit.sample(gmm2d, linear, chosen.sampler, 6, x=x, spacing="trailing",
                                              **_calls_everywhere(chosen.options)), rtol=0, atol=0)
    assert counter.calls == 6
    # an explicit grid: the table's sampler for its length
    grid = timesteps(linear, 5, "logsnr")
    five = default_for(linear, 5)
    counter = CountingModel(gmm2d)
    torch.testing.assert_close(diffkit.sample(counter, linear, x=x, timesteps=grid),
                               diffkit.sample(gmm2d, linear, five.sampler, x=x, timesteps=grid,
                                              **_calls_everywhere(five.options)), rtol=0, atol=0)
    assert counter.calls == 5
    # nothing: DEFAULT_STEPS steps of the table's choice for it
    counter = CountingModel(gmm2d)
    diffkit.sample(counter, linear, x=x)
    assert counter.calls == DEFAULT_STEPS


def test_options_without_a_sampler_and_bad_steps_are_refused(gmm2d, linear):
    x = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="without a sampler"):
        diffkit.sample(gmm2d, linear, steps=5, x=x, order=2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            diffkit.sample(gmm2d, linear, steps=bad, x=x)
