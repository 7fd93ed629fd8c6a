"""Timesteps fitted to one model, one sampler and one step count, on calibration noise drawn here.

    grid = diffkit.optimize_timesteps(model, schedule, "dpmpp_2m", 6, (16, 1, 8, 8),
                                      generator=torch.Generator().manual_seed(0), cond={"y": labels16})
    x0 = diffkit.sample(model, schedule, "dpmpp_2m", timesteps=grid, shape=(10, 1, 8, 8), cond=...)

1. x_T ~ N(0, I) of ``shape`` from ``generator``: the calibration batch (``cond`` holds its labels).
2. The teacher (:mod:`.teacher`): a fine, accurate trajectory from x_T, recorded at M = 61
   candidate timesteps (Karras-spaced, as GITS's), and its sample x_end.
3. ``method``:
   - ``"gits"`` (:mod:`.gits`): GITS's dynamic programme over the candidates, minimising the
     accumulated local error of first-order steps against the teacher.
   - ``"refine"`` (:mod:`.refine`): from the start grid, coordinate descent on the global error
     E = mean_b ||sampler(x_T^b) - x_end^b|| of the actual sampler (LD3's objective).
   - ``"gits+refine"`` (default): the same descent, started from whichever of the start and
     the GITS grid has the lower E.

   The start grid is ``start`` where given (any valid grid from t_max: e.g. the defaults table's
   for n calls, ``diffkit.samplers.defaults.default_for(schedule, n).timesteps(schedule, n)``, whose
   length is the ``steps`` to fit: n + 1 where the entry takes ``afs``), else the grid of
   ``spacing`` (default: the sampler's own). The refining methods never return a grid with a
   higher E than the start's. The table's sampler refined from the table's grid was the best
   configuration in 9 of the 24 cells of ``benchmarks/results/frontier.md`` (a sampler fitted from
   its GITS grid in the other 15); the descent keeps to the basin it starts in, so another start
   can end lower (on the digits model at 5 steps, 16 calibration samples of seed 1000 as
   ``diffkit.bench.digits_grids``: ``unipc`` from its GITS grid reaches E = 0.30, iPNDM from the
   table's grid without ``afs`` 1.19).

Why ``gits+refine`` is the default (``benchmarks/results/grids.md``, from ``diffkit.bench.grids``:
median per-sample error on held-out noise at NFE 5, 6, 8, 10, against the exact ODE on four
Gaussian-mixture problems and against a 500-step solution on the digits model): it is the best
variant in 34 of the 40 (problem, sampler, NFE) cells, and within 1-14% of the best in the other
six (all ddim). Against the default (Karras) grid it cuts the error 2.4-98x for dpmpp_2m and
1.7-12x for ddim. GITS alone gets most of that for ddim, whose steps its cost models, but not for
dpmpp_2m (its cost is first-order steps; the descent on the real sampler gains another 1.2-9x);
the descent alone, from the default grid, stops far higher (a local minimum). The fit costs the
teacher (2 (M - 1) + 1 = 121 model calls per calibration sample) plus ``refine_evals`` (4) sampler
runs per refined timestep: 211 calls at 5 steps, 501 at 10; on the digits model with 16
calibration samples, 3-18 s on one thread of a shared 2-core AMD EPYC.

The sampler must be deterministic (registry ``stochastic`` False, its options keeping it so): the
objective compares one noise with one sample. The result is strictly decreasing, starts at t_max
and lies in [t_min, t_max]; :mod:`diffkit.io.timesteps` saves it as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffkit.samplers.noise import GeneratorArg, randn
from diffkit.samplers.optimize.gits import COSTS, GITS_COEFF, cost_matrix, dp_path
from diffkit.samplers.optimize.refine import Coordinates, pattern_search
from diffkit.samplers.optimize.teacher import teacher_trajectory
from diffkit.samplers.registry import SAMPLERS, SamplerInfo, get_sampler
from diffkit.samplers.timetable import check_timesteps
from diffkit.schedules.base import Schedule, check_positive_int
from diffkit.schedules.spacing import default_spacing
from diffkit.schedules.spacing import timesteps as make_timesteps

METHODS = ("gits+refine", "gits", "refine")
TEACHER_STEPS = 61  # candidate timesteps: GITS's num_steps_tea (launch.sh)
TEACHER_SUBSTEPS = 2  # teacher steps per candidate interval (second-order teacher; see teacher.py)
REFINE_EVALS = 4  # sampler runs per refined timestep (the refinement's budget is this times steps - 1)

__all__ = ["METHODS", "GridFit", "deterministic_sampler", "deterministic_samplers", "fit_timesteps",
           "optimize_timesteps"]


@dataclass(frozen=True)
class GridFit:
    """A fitted grid with what the fit measured: E of the start grid and of the result."""

    timesteps: np.ndarray  # the fitted grid, strictly decreasing, t_0 = t_max
    objective: float  # E(timesteps): mean per-sample distance to the teacher's sample
    start: np.ndarray  # the start grid (``start``, else the grid of the spacing)
    start_objective: float  # E(start)
    gits: np.ndarray | None  # the GITS grid (methods using it)
    teacher_calls: int  # model evaluations of the teacher, per calibration sample
    student_runs: int  # sampler runs: the start, the GITS grid and the refinement's trials
    model_calls: int  # all model evaluations, per calibration sample


def optimize_timesteps(eps_model, schedule, sampler, steps, shape, *, generator=None, cond=None,
                       **options) -> np.ndarray:
    """The ``steps`` timesteps fitted for ``sampler`` on ``eps_model`` (the module docstring; :func:`fit_timesteps`)."""
    fit = fit_timesteps(eps_model, schedule, sampler, steps, shape, generator=generator, cond=cond, **options)
    return fit.timesteps


def fit_timesteps(
    eps_model: Any,  # eps(x_t, t, **cond), as for diffkit.sample
    schedule: Schedule,
    sampler: str,  # a registered deterministic sampler
    steps: int,  # visited timesteps of the fitted grid
    shape: tuple[int, ...],  # the calibration batch [B, ...]: x_T drawn from generator
    *,
    generator: GeneratorArg = None,
    cond: Mapping[str, Any] | None = None,  # model keyword arguments for the calibration batch
    method: str = "gits+refine",  # one of METHODS
    spacing: str | None = None,  # the start grid's spacing (default: the sampler's own)
    start: Sequence[float] | np.ndarray | None = None,  # an explicit start grid of ``steps`` points from t_max
    teacher: str = "dpmpp_2m",  # the teacher sampler (registered, deterministic)
    teacher_steps: int = TEACHER_STEPS,  # candidate timesteps (raised to 2 * steps if fewer)
    teacher_substeps: int = TEACHER_SUBSTEPS,  # teacher steps per candidate interval
    coeff: float = GITS_COEFF,  # GITS's weight of the later steps
    cost: str = "l2",  # GITS's local cost (gits.COSTS)
    refine_evals: int = REFINE_EVALS,  # sampler runs per refined timestep
    dtype: torch.dtype = torch.float32,  # of x_T
    device: torch.device | str | None = None,  # of x_T
    **options: Any,  # the sampler's options
) -> GridFit:
    """Fit the grid and report what the fit measured (:class:`GridFit`)."""
    info, teacher_info = deterministic_sampler(sampler, options), deterministic_sampler(teacher, {})
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; allowed: {', '.join(COSTS)}")
    check_positive_int("steps", steps, 1, 10_000)
    check_positive_int("teacher_steps", teacher_steps, 2, 10_000)
    check_positive_int("teacher_substeps", teacher_substeps, 1, 100)
    check_positive_int("refine_evals", refine_evals, 0, 10_000)
    if isinstance(coeff, bool) or not isinstance(coeff, (int, float)) or not 0 < coeff < np.inf:
        raise ValueError(f"coeff must be a finite number > 0, got {coeff!r}")
    start_grid = _start_grid(schedule, steps, start, spacing or default_spacing(schedule, info.default_spacing),
                             spacing is not None)
    if not (isinstance(shape, (tuple, list)) and shape and all(isinstance(n, int) and n > 0 for n in shape)):
        raise ValueError(f"shape must be positive integers [B, ...], got {shape!r}")
    x_T = randn(tuple(shape), generator, torch.device(device or "cpu"), dtype)
    with torch.inference_mode():
        return _fit(info, teacher_info, eps_model, schedule, start_grid, x_T, cond, method, options,
                    max(teacher_steps, 2 * steps), teacher_substeps, float(coeff), cost, refine_evals)


def _start_grid(schedule: Schedule, steps: int, start, spacing: str, spacing_given: bool) -> np.ndarray:
    """The start grid: ``start`` validated (``steps`` points, strictly decreasing in [t_min, t_max], from t_max:
    the calibration noise is x_T), else ``spacing``'s grid."""
    if start is None:
        return make_timesteps(schedule, steps, spacing)
    if spacing_given:
        raise ValueError("give the start grid as spacing or as start, not both")
    grid = np.asarray(check_timesteps(schedule, start), dtype=np.float64)
    if len(grid) != steps or grid[0] != schedule.t_max:
        raise ValueError(f"start must have steps={steps} points and begin at t_max={schedule.t_max:g} (the "
                         f"calibration noise is x_T); got {len(grid)} points from {grid[0]:g}")
    return grid


def deterministic_samplers() -> tuple[str, ...]:
    """The registered samplers a grid can be fitted for (registry ``stochastic`` False)."""
    return tuple(n for n, i in SAMPLERS.items() if not i.stochastic)


def deterministic_sampler(name: str, options: Mapping[str, Any]) -> SamplerInfo:
    """The registry entry of ``name`` if a grid can be fitted for it with ``options``, else ValueError saying
    what is allowed."""
    info = get_sampler(name)
    if info.stochastic:
        raise ValueError(f"timesteps are fitted for deterministic samplers; {name!r} is stochastic. "
                         f"Allowed: {', '.join(deterministic_samplers())}")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise ValueError(f"sampler {name!r} has no option(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(info.options) or 'none'}")
    return info


def _fit(info, teacher_info, eps_model, schedule, start, x_T, cond, method, options, candidates, substeps, coeff,
         cost, refine_evals) -> GridFit:
    steps = len(start)
    traj = teacher_trajectory(teacher_info, eps_model, schedule, x_T, candidates, substeps, cond)
    runs = 0

    def objective(grid: np.ndarray) -> float:
        nonlocal runs
        runs += 1
        x = info.fn(eps_model, x_T, schedule, grid, cond=cond, **options)
        return float((x - traj.end).reshape(len(x), -1).to(torch.float64).norm(dim=1).mean())

    grid = gits = None
    value = start_value = objective(start)
    if steps > 1 and method in ("gits", "gits+refine"):
        gits = traj.t[dp_path(cost_matrix(traj, cost), steps, coeff)]
        gits_value = objective(gits)
        if method == "gits" or gits_value < start_value:
            grid, value = gits, gits_value
    grid = start if grid is None else grid
    if steps > 1 and method in ("refine", "gits+refine"):
        grid, value, _ = pattern_search(objective, Coordinates(traj.t), grid, value, refine_evals * (steps - 1))
    check_timesteps(schedule, grid)
    calls = traj.model_calls + runs * info.nfe(steps)
    return GridFit(np.asarray(grid, dtype=np.float64), value, start, start_value, gits, traj.model_calls, runs, calls)
