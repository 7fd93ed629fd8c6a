"""The steps a sampler takes: validated timesteps and their schedule values as host floats.

A sampler visits t_0 > t_1 > ... > t_{N-1} and then takes one final step to the
data (sigma = 0). Each :class:`Step` carries the values of its start point and,
except for the final step, of its end point, in the glossary's names
(``alpha``, ``sigma``, ``lam``; ``h = lam_next - lam``). All are Python floats
computed once in float64, so a sampling loop never synchronises with the device
to read them.

A :class:`Grid` passed as ``timesteps`` ends the run elsewhere: its last step goes
to the time ``end`` instead of the data (a partial run: editing, RePaint's
segments), and then the visited times may also increase (``end`` above them: the
deterministic ODE run backwards, inversion). Every step then is an ordinary one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from diffkit.schedules.base import Schedule, check_schedule

TimestepsLike = Sequence[float] | np.ndarray | torch.Tensor


@dataclass(frozen=True, slots=True)
class Point:
    """A time t and its schedule values: x_t = alpha x0 + sigma eps, lam = log(alpha / sigma)."""

    t: float
    alpha: float
    sigma: float
    lam: float


# Where the final step goes: the data, sigma = 0 (alpha = 1 there in every family: x_0 is x0 itself).
DATA = Point(t=-math.inf, alpha=1.0, sigma=0.0, lam=math.inf)


@dataclass(frozen=True, slots=True)
class Step:
    """Step ``i`` from ``at`` to ``to``; the final step goes to the data (``to`` is :data:`DATA`, sigma = 0).

    ``h`` > 0 when denoising, < 0 on the way up (inversion); inf from zero SNR and on the final step.
    """

    i: int
    at: Point
    to: Point

    @property
    def final(self) -> bool:
        return self.to is DATA

    @property
    def h(self) -> float:
        """lam_next - lam: the step in half log-SNR (> 0 when denoising)."""
        return self.to.lam - self.at.lam


@dataclass(frozen=True)
class Grid:
    """Visited timesteps ``t`` and where the last step goes: the data (``end`` None) or the time ``end``.

    With ``end`` None the times strictly decrease; with ``end`` given, the times and then
    ``end`` are strictly monotone in either direction (up: inversion), all within
    [t_min, t_max]. Plain arrays of timesteps mean ``Grid(t)``.
    """

    t: tuple[float, ...]
    end: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "t", tuple(float(v) for v in np.asarray(self.t, dtype=np.float64).reshape(-1)))
        if self.end is not None:
            object.__setattr__(self, "end", float(self.end))

    def __len__(self) -> int:
        return len(self.t)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:  # noqa: ANN001  (NumPy's protocol)
        return np.asarray(self.t, dtype=dtype)


def check_timesteps(schedule: Schedule, timesteps: TimestepsLike) -> tuple[float, ...]:
    """Visited timesteps as floats: a non-empty, strictly decreasing 1-D sequence within [t_min, t_max]."""
    check_schedule(schedule)
    if isinstance(timesteps, Grid):
        return check_grid(schedule, timesteps).t
    if isinstance(timesteps, torch.Tensor):
        timesteps = timesteps.detach().cpu().numpy()
    try:
        ts = np.asarray(timesteps, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"timesteps must be a 1-D sequence of numbers: {err}") from None
    if ts.ndim != 1 or ts.size < 1:
        raise ValueError(f"timesteps must be a non-empty 1-D sequence, got shape {ts.shape}")
    schedule.check_time(ts)
    if ts.size > 1 and not np.all(np.diff(ts) < 0):
        raise ValueError("timesteps must be strictly decreasing (no duplicates)")
    return tuple(ts.tolist())


def check_grid(schedule: Schedule, grid: Grid) -> Grid:
    """``grid`` if its times are valid (see :class:`Grid`), else ValueError saying what is allowed."""
    if grid.end is None:
        check_timesteps(schedule, grid.t)
        return grid
    ts = np.asarray(grid.t + (grid.end,), dtype=np.float64)
    if ts.size < 2:
        raise ValueError("a Grid needs at least one visited timestep")
    schedule.check_time(ts, "grid times (the visited ones and end)")
    steps = np.diff(ts)
    if not (np.all(steps < 0) or np.all(steps > 0)):
        raise ValueError(f"a Grid's times, end included, must be strictly monotone (no duplicates), got {ts}")
    return grid


def make_steps(schedule: Schedule, timesteps: TimestepsLike | Grid) -> tuple[Step, ...]:
    """The validated steps over ``timesteps`` (cached per schedule and grid: schedules are immutable values)."""
    if isinstance(timesteps, Grid):
        grid = check_grid(schedule, timesteps)
    else:
        grid = Grid(check_timesteps(schedule, timesteps))
    try:
        return _steps(schedule, grid.t, grid.end)
    except TypeError:  # an unhashable user-defined schedule: tabulate without the cache
        return _steps.__wrapped__(schedule, grid.t, grid.end)


def points_at_lambda(schedule: Schedule, lams: Sequence[float]) -> list[Point]:
    """The points where the half log-SNR is each of ``lams`` (intermediate stages), looked up in one batch."""
    lam = np.asarray(lams, dtype=np.float64)
    t = schedule.t_from_lambda(lam)
    values = zip(t.tolist(), schedule.alpha(t).tolist(), schedule.sigma(t).tolist(), lam.tolist())
    return [Point(*v) for v in values]


@functools.lru_cache(maxsize=64)
def _steps(schedule: Schedule, t: tuple[float, ...], end: float | None) -> tuple[Step, ...]:
    # Cached: the three accessors cost ~0.3 ms on the host, about 10 us per step of a
    # 25-step call (benchmarks/bench_overhead.py).
    t = t if end is None else t + (end,)
    ts = np.asarray(t, dtype=np.float64)
    values = zip(t, schedule.alpha(ts).tolist(), schedule.sigma(ts).tolist(), schedule.lambda_(ts).tolist())
    points = [Point(*v) for v in values]
    # sigma > 0 wherever a model is evaluated (the step to sigma = 0 is the final one, never a visited point);
    # alpha = 0 (lambda = -inf) only where sampling starts, at zero terminal SNR.
    if any(not (p.sigma > 0 and p.alpha >= 0 and not math.isnan(p.lam)) for p in points):
        raise ValueError("visited timesteps need sigma > 0 (the data, sigma = 0, is reached by the final step)")
    visited = len(points) if end is None else len(points) - 1
    return tuple(Step(i, points[i], points[i + 1] if i + 1 < len(points) else DATA) for i in range(visited))
