"""Grids that end elsewhere than the data: partial runs and the ODE run backwards (inversion)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import noise

from diffkit.models import solve_probability_flow
from diffkit.samplers import SAMPLERS, Grid
from diffkit.schedules import timesteps

DETERMINISTIC = [name for name, info in SAMPLERS.items() if not info.stochastic]


def rms(a, b):
    return (a - b).pow(2).mean().sqrt().item()


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_a_partial_run_converges_to_the_ode_at_its_end(name, gmm8d, linear):
    x_T = noise((32, 8), seed=2)
    errs = []
    for steps in (20, 80):
        ts = timesteps(linear, steps, "karras")
        end = ts[steps // 2]
        exact = solve_probability_flow(gmm8d, linear, x_T, t_end=float(end))
        errs.append(rms(SAMPLERS[name].fn(gmm8d, x_T, linear, Grid(ts[: steps // 2], end=end)), exact))
    assert errs[1] < errs[0] / 3, errs  # at least first order from 20 to 80 steps


@pytest.mark.parametrize("name, lo", [("ddim", 0.85), ("dpmpp_2m", 1.7)])
def test_inversion_runs_the_ode_backwards_with_the_solvers_order(name, lo, gmm8d, linear):
    x_T = noise((32, 8), seed=3)
    x_start = solve_probability_flow(gmm8d, linear, x_T, t_end=0.0)  # on the ODE at t = 0
    steps = np.array([20, 40, 80])
    errs = []
    for n in steps:
        up = timesteps(linear, int(n), "karras")[::-1]
        errs.append(rms(SAMPLERS[name].fn(gmm8d, x_start, linear, Grid(up[:-1], end=up[-1])), x_T))
    order = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert order >= lo, (order, errs)


def test_a_plain_grid_is_the_same_as_its_array(gmm8d, linear):
    ts = timesteps(linear, 7, "karras")
    x_T = noise((4, 8), seed=4)
    fn = SAMPLERS["dpmpp_2m"].fn
    torch.testing.assert_close(fn(gmm8d, x_T, linear, Grid(ts)), fn(gmm8d, x_T, linear, ts), rtol=0, atol=0)


@pytest.mark.parametrize(
    "grid, message",
    [
        (Grid((500.0, 200.0), end=300.0), "strictly monotone"),
        (Grid((500.0, 200.0), end=200.0), "strictly monotone"),
        (Grid((200.0, 500.0)), "strictly decreasing"),
        (Grid((500.0,), end=2000.0), "t_min, t_max"),
        (Grid((), end=10.0), "at least one"),
    ],
)
def test_bad_grids_are_refused(grid, message, gmm8d, linear):
    with pytest.raises(ValueError, match=message):
        SAMPLERS["ddim"].fn(gmm8d, noise((2, 8)), linear, grid)


@pytest.mark.parametrize("name", [name for name, info in SAMPLERS.items() if info.stochastic])
def test_noise_on_the_way_up_is_refused(name, gmm8d, linear):
    with pytest.raises(ValueError, match="only denoises"):
        SAMPLERS[name].fn(gmm8d, noise((2, 8)), linear, Grid((10.0, 100.0), end=500.0),
                          generator=torch.Generator().manual_seed(0))
