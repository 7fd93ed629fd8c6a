"""diffkit.optimize_timesteps: valid grids everywhere, determinism, a lower calibration objective, GITS's DP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import diffkit
from diffkit.models import GaussianMixture
from diffkit.samplers import SAMPLERS, fit_timesteps
from diffkit.samplers.optimize import METHODS
from diffkit.samplers.optimize.gits import dp_path
from diffkit.schedules import Cosine, Linear, ScaledLinear

DETERMINISTIC = [name for name, info in SAMPLERS.items() if not info.stochastic]
CHEAP = {"teacher_steps": 8, "teacher_substeps": 1, "refine_evals": 1}  # validity, not quality


def _seed(n: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(n)


@st.composite
def schedules(draw):
    family = draw(st.sampled_from([Linear, ScaledLinear, Cosine]))
    return family(draw(st.integers(2, 2000)), rescale_zero_terminal_snr=draw(st.booleans()))


@settings(max_examples=60, deadline=None)
@given(schedules(), st.integers(1, 12), st.sampled_from(DETERMINISTIC), st.sampled_from(METHODS))
def test_grids_are_valid_for_any_schedule_and_steps(schedule, steps, sampler, method):
    model = GaussianMixture.two_d(schedule).as_model("v_prediction")  # finite at zero terminal SNR too
    spacing = "time_uniform" if schedule.zero_terminal_snr else None  # karras needs a finite sigma_k(t_max)
    fit = fit_timesteps(model, schedule, sampler, steps, (4, 2), generator=_seed(), dtype=torch.float64,
                        method=method, spacing=spacing, **CHEAP)
    t = fit.timesteps
    assert t.dtype == np.float64 and t.shape == (steps,) and np.all(np.isfinite(t))
    assert np.all(np.diff(t) < 0)
    assert schedule.t_min <= t.min() and t.max() <= schedule.t_max and t[0] == schedule.t_max
    assert fit.objective <= fit.start_objective or method == "gits"  # the refining methods never lose
    x = diffkit.sample(model, schedule, sampler, x=torch.zeros(2, 2, dtype=torch.float64), timesteps=t)
    assert torch.isfinite(x).all()


def test_deterministic_for_a_generator(gmm2d, linear):
    grids = [diffkit.optimize_timesteps(gmm2d, linear, "dpmpp_2m", 5, (32, 2), generator=_seed(3), dtype=torch.float64)
             for _ in range(2)]
    np.testing.assert_array_equal(grids[0], grids[1])
    other = diffkit.optimize_timesteps(gmm2d, linear, "dpmpp_2m", 5, (32, 2), generator=_seed(4), dtype=torch.float64)
    assert not np.array_equal(grids[0], other)  # the calibration noise is the generator's


@pytest.mark.parametrize("sampler", DETERMINISTIC)
@pytest.mark.parametrize("method", ["gits+refine", "refine"])
def test_lowers_its_calibration_objective(sampler, method, gmm2d, linear):
    fit = fit_timesteps(gmm2d, linear, sampler, 6, (64, 2), generator=_seed(), dtype=torch.float64, method=method)
    np.testing.assert_array_equal(fit.start, diffkit.timesteps(linear, 6, SAMPLERS[sampler].default_spacing))
    assert fit.objective < 0.8 * fit.start_objective, (fit.objective, fit.start_objective)
    assert fit.student_runs <= 2 + 4 * 5
    assert fit.model_calls == fit.teacher_calls + fit.student_runs * SAMPLERS[sampler].nfe(6)  # heun: 2 per step


def test_starts_from_an_explicit_grid(cosine):
    # The defaults table's grid for 5 calls (ipndm, final="adams", afs: 6 points on the arcsine beta) as the
    # start: the refinement never ends above it, and a start that is already the table's grid gives the same E
    # as diffkit.sample with it.
    from diffkit.samplers.defaults import default_for

    gmm2d = GaussianMixture.two_d(cosine)
    chosen = default_for(cosine, 5)
    grid = chosen.timesteps(cosine, 5)
    assert len(grid) == 6 and chosen.options["afs"]
    fit = fit_timesteps(gmm2d, cosine, chosen.sampler, 6, (64, 2), generator=_seed(), dtype=torch.float64,
                        start=grid, **chosen.options)
    np.testing.assert_array_equal(fit.start, grid)
    assert fit.objective < fit.start_objective
    x_T = torch.randn(64, 2, generator=_seed(), dtype=torch.float64)
    teacher = diffkit.sample(gmm2d, cosine, "dpmpp_2m", x=x_T, timesteps=_fine_grid(cosine))
    x0 = diffkit.sample(gmm2d, cosine, chosen.sampler, x=x_T, timesteps=grid, **chosen.options)
    assert fit.start_objective == pytest.approx(float((x0 - teacher).norm(dim=1).mean()), rel=1e-12)
    default = fit_timesteps(gmm2d, cosine, chosen.sampler, 6, (64, 2), generator=_seed(), dtype=torch.float64,
                            **chosen.options)
    assert not np.array_equal(default.start, grid)  # without start: the sampler's own spacing


def test_objective_is_the_distance_to_the_teacher_sample(gmm2d, linear):
    # E(grid) = mean per-sample distance between the sampler's output and the teacher's (dpmpp_2m, 2 x 60 steps).
    fit = fit_timesteps(gmm2d, linear, "ddim", 4, (16, 2), generator=_seed(), dtype=torch.float64, method="gits")
    x_T = torch.randn(16, 2, generator=_seed(), dtype=torch.float64)
    teacher = diffkit.sample(gmm2d, linear, "dpmpp_2m", x=x_T, timesteps=_fine_grid(linear))
    student = diffkit.sample(gmm2d, linear, "ddim", x=x_T, timesteps=fit.timesteps)
    assert fit.objective == pytest.approx(float((student - teacher).norm(dim=1).mean()), rel=1e-12)


def _fine_grid(schedule):
    from diffkit.samplers.optimize.teacher import fine_grid

    return fine_grid(schedule, 2 * 60 + 1)


def test_calibrates_the_digits_model_with_labels():
    # Plumbing on the real network: class labels reach the teacher and the student (the quality and the
    # seconds a full calibration takes are measured in diffkit.bench.grids, not here).
    from diffkit.digits.pretrained import load_pretrained
    from diffkit.models import ClassifierFreeGuidance

    unet, schedule = load_pretrained()
    model = ClassifierFreeGuidance(unet, 2.0, uncond={"y": unet.null_label})
    fit = fit_timesteps(model, schedule, "dpmpp_2m", 3, (4, 1, 8, 8), generator=_seed(), cond={"y": torch.arange(4)},
                        **CHEAP)
    assert fit.timesteps.shape == (3,) and np.all(np.diff(fit.timesteps) < 0) and fit.objective <= fit.start_objective


# -- GITS's dynamic programme -----------------------------------------------------------------------

def _gits_dp_reference(cost_mat, num_steps, coeff):
    """zju-pi/diff-sampler gits-main/gits_utils.py ``dp``, restated: nodes 0..n-1, the last one the end;
    ``num_steps`` timestamps including the end; the path found by the same forward search."""
    n, K = cost_mat.shape[0], num_steps - 1
    V = np.full((n, K + 1), np.inf)
    for i in range(n):
        V[i][1] = cost_mat[i][-1]
    for k in range(2, K + 1):
        for j in range(n - 1):
            for i in range(j + 1, n - 1):
                V[j][k] = min(V[j][k], cost_mat[j][i] + coeff * V[i][k - 1])
    phi, w = [0], 0
    for temp in range(K):
        k = K - temp
        for j in range(w + 1, n):
            if V[w][k] == cost_mat[w][j] + coeff * V[j][k - 1]:
                phi.append(j)
                w = j
                break
    phi.append(n - 1)  # the k = 1 search never matches (V[j][0] = inf): the end is appended
    return phi


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("steps", [1, 2, 3, 5])
def test_dp_path_is_gits_dp(seed, steps):
    M = 9  # candidates; node M is the end (the data)
    rng = np.random.default_rng(seed)
    cost = np.triu(rng.uniform(0.1, 2.0, (M + 1, M + 1)), k=1)[:M]
    cost[np.tril_indices(M, k=0, m=M + 1)] = np.inf
    ours = dp_path(cost, steps, 1.15)
    # GITS indexes one square matrix over the candidates and the end; it visits the end last.
    square = np.vstack([cost, np.full((1, M + 1), np.inf)])
    assert ours + [M] == _gits_dp_reference(square, steps + 1, 1.15)
    # ... and the path is the exact minimiser of its recursion (brute force over every path).
    def total(path):
        nodes = list(path) + [M]
        return sum(1.15**k * cost[a, b] for k, (a, b) in enumerate(zip(nodes, nodes[1:])))
    best = min((c for c in itertools.combinations(range(1, M), steps - 1)), key=lambda c: total((0,) + c))
    assert total(ours) == pytest.approx(total((0,) + best), rel=1e-12)


# -- bad input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"sampler": "dpmpp_2m_sde"}, "deterministic samplers; 'dpmpp_2m_sde' is stochastic. Allowed: ddim, dpmpp_2m"),
    ({"sampler": "no_such_sampler"}, "unknown sampler 'no_such_sampler'"),
    ({"teacher": "ddpm"}, "'ddpm' is stochastic"),
    ({"method": "ld3"}, "unknown method 'ld3'; allowed: gits\\+refine, gits, refine"),
    ({"cost": "l1"}, "unknown cost 'l1'; allowed: l2, gits_l2, gits_dev"),
    ({"order": 3}, "no option.*order; allowed: afs"),
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"coeff": 0.0}, "coeff must be a finite number > 0"),
    ({"refine_evals": -1}, "refine_evals must be an integer >= 0"),
    ({"shape": (0, 2)}, "shape must be positive integers"),
    ({"spacing": "cubic"}, "unknown spacing 'cubic'"),
    ({"start": [999.0, 500.0, 10.0]}, "start must have steps=4 points and begin at t_max=999"),
    ({"start": [800.0, 600.0, 400.0, 10.0]}, "start must have steps=4 points and begin at t_max=999.*from 800"),
    ({"start": [999.0, 600.0, 700.0, 10.0]}, "strictly decreasing"),
    ({"start": [999.0, 600.0, 400.0, -1.0]}, "t_min"),
    ({"start": [999.0, 600.0, 400.0, 10.0], "spacing": "karras"}, "as spacing or as start, not both"),
])
def test_bad_arguments(kwargs, match, gmm2d, linear):
    args = {"sampler": "dpmpp_2m", "steps": 4, "shape": (4, 2), **kwargs}
    with pytest.raises(ValueError, match=match):
        diffkit.optimize_timesteps(gmm2d, linear, args.pop("sampler"), args.pop("steps"), args.pop("shape"), **args)


def test_gits_dev_refuses_zero_terminal_snr():
    schedule = Linear(rescale_zero_terminal_snr=True)
    model = GaussianMixture.two_d(schedule).as_model("v_prediction")
    with pytest.raises(ValueError, match="'gits_dev' measures from the chord x_T / alpha_T, which is infinite"):
        fit_timesteps(model, schedule, "ddim", 4, (4, 2), spacing="trailing", cost="gits_dev", **CHEAP)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "ipndm"])
def test_families_without_the_samplers_default_spacing_start_from_their_own(sampler):
    # FlowMatch has no karras grid (zero SNR at t_max): the start grid is the schedule's own, as in diffkit.sample.
    from diffkit.schedules import FlowMatch

    schedule = FlowMatch(shift=3.0)
    model = GaussianMixture.random(schedule, dim=4, components=2, seed=0).as_model("flow")
    fit = fit_timesteps(model, schedule, sampler, 4, (16, 4), generator=torch.Generator().manual_seed(0),
                        teacher_steps=16, refine_evals=4)
    grid = fit.timesteps
    assert len(grid) == 4 and grid[0] == schedule.t_max and np.all(np.diff(grid) < 0) and grid[-1] >= schedule.t_min
