"""The analytical first step (``afs=True``): no model call at the first timestep, eps taken as x_T at unit variance.

Zhou et al. 2024 (arXiv:2312.00094), zju-pi/diff-sampler's ``--afs``; diffkit's is
``diffkit.samplers.model_calls.analytic_prediction``.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import noise

import diffkit
from diffkit.bench import peers
from diffkit.bench.latency import CountingModel
from diffkit.models import GaussianMixture
from diffkit.samplers import SAMPLERS
from diffkit.samplers.timetable import Grid
from diffkit.schedules import EDM, Cosine, FlowMatch, Linear, timesteps

AFS_SAMPLERS = sorted(name for name, info in SAMPLERS.items() if "afs" in info.options)
FAMILIES = {  # name -> (schedule, prediction type)
    "linear": (Linear(), "epsilon"),
    "cosine": (Cosine(), "epsilon"),
    "zero_snr": (Linear(rescale_zero_terminal_snr=True), "v_prediction"),
    "flow": (FlowMatch(shift=3.0), "flow"),
    "edm": (EDM(), "sample"),
}


def test_the_one_call_multistep_samplers_take_it():
    assert AFS_SAMPLERS == ["deis", "dpmpp_2m", "dpmpp_3m", "ipndm", "unipc"]
    assert all(SAMPLERS[name].options["afs"] is False for name in AFS_SAMPLERS)  # off unless asked for


def test_steps_for_a_budget_of_calls_count_the_free_first_step():
    assert SAMPLERS["ipndm"].steps_for(5) == SAMPLERS["ipndm"].steps_for(5, {"afs": False}) == 5
    assert SAMPLERS["ipndm"].steps_for(5, {"afs": True}) == 6
    assert SAMPLERS["heun"].steps_for(5) == 3  # two calls a step, one at the last timestep
    assert all(SAMPLERS[name].nfe(SAMPLERS[name].steps_for(n)) <= n for name in SAMPLERS for n in range(1, 12))


@pytest.mark.parametrize("name", AFS_SAMPLERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_saves_the_first_call_and_predicts_analytically(name, family):
    schedule, prediction = FAMILIES[family]
    model = GaussianMixture.two_d(schedule).as_model(prediction)
    x = noise((8, 2))
    ts = timesteps(schedule, 6, schedule.default_spacing)
    seen = {}

    def callback(i, t, x_t, x0):
        seen.setdefault(i, (t, x_t.clone(), x0.clone()))

    counter = CountingModel(model)
    got = diffkit.sample(counter, schedule, name, x=x, timesteps=ts, afs=True, callback=callback)
    assert counter.calls == 5 and torch.isfinite(got).all()
    t, x_t, x0 = seen[0]  # x0 = alpha x / (r (r + sigma)), r = sqrt(alpha^2 + sigma^2): eps = x / r
    alpha, sigma = (float(v) for v in (schedule.alpha(torch.tensor(t)), schedule.sigma(torch.tensor(t))))
    r = math.hypot(alpha, sigma)
    torch.testing.assert_close(x_t, x)
    torch.testing.assert_close(x0, x * (alpha / (r * (r + sigma))), rtol=1e-12, atol=0)
    # after the first step the run is the sampler's own: the same calls at the same timesteps
    assert sorted(seen) == list(range(6))


@pytest.mark.parametrize("name", AFS_SAMPLERS)
def test_on_a_vp_schedule_it_is_the_model_answering_x_T_first(name):
    # On a variance-preserving schedule r = 1, so the analytic eps is x_T itself: the same run as a model
    # whose first answer is its input.
    schedule = Linear()
    model = GaussianMixture.random(schedule, dim=8, components=3, seed=1).as_model("epsilon")
    x = noise((16, 8))
    calls = []

    def first_is_x(x_t, t):
        calls.append(t)
        return x_t.clone() if len(calls) == 1 else model(x_t, t)

    ts = timesteps(schedule, 7, "logsnr")
    ours = diffkit.sample(model, schedule, name, x=x, timesteps=ts, afs=True)
    theirs = diffkit.sample(first_is_x, schedule, name, x=x, timesteps=ts)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("peer, name, options", [
    ("ipndm", "ipndm", {"variant": "fixed", "order": 4}), ("ipndm", "ipndm", {"variant": "fixed", "order": 3}),
    ("ipndm_v", "ipndm", {"variant": "variable", "order": 2}), ("deis", "deis", {"variant": "tab", "order": 3}),
    ("dpm_pp", "dpmpp_3m", {"variant": "published"})], ids=str)
@pytest.mark.parametrize("schedule", [Linear(), Cosine()], ids=["linear", "cosine"])
def test_matches_diff_samplers_afs(peer, name, options, schedule):
    pytest.importorskip("scipy")
    model = GaussianMixture.random(schedule, dim=8, components=3, seed=1).as_model("epsilon")
    x = noise((16, 8))
    for steps in (6, 12):
        ts = timesteps(schedule, steps, "karras")
        ours = diffkit.sample(model, schedule, name, x=x, timesteps=ts, afs=True, **options)
        theirs = peers.run_diff_sampler(peer, model, schedule, ts, x, order=options.get("order", 3), afs=True)
        torch.testing.assert_close(ours, theirs, rtol=1e-8, atol=1e-8)  # as without afs (test_samplers_multistep)


def test_bad_afs_is_refused(gmm2d, linear):
    x = noise((4, 2))
    with pytest.raises(ValueError, match="afs must be one of False, True, got 1"):
        diffkit.sample(gmm2d, linear, "ipndm", 5, x=x, afs=1)
    with pytest.raises(ValueError, match="at least 2 timesteps"):
        diffkit.sample(gmm2d, linear, "ipndm", 1, x=x, afs=True)
    up = timesteps(linear, 5, "logsnr")[::-1].copy()  # inversion's grid (diffkit.editing.invert)
    with pytest.raises(ValueError, match="going up in noise"):
        SAMPLERS["deis"].fn(gmm2d, x, linear, Grid(up[:-1], end=up[-1]), afs=True)
    with pytest.raises(ValueError, match="has no option"):
        diffkit.sample(gmm2d, linear, "ddim", 5, x=x, afs=True)
