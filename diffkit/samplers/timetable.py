"""The steps a sampler takes: validated timesteps and their schedule values as host floats.

A sampler visits t_0 > t_1 > ... > t_{N-1} and then takes one final step to the
data (sigma = 0). Each :class:`Step` carries the values of its start point and,
except for the final step, of its end point, in the glossary's names
(``alpha``, ``sigma``, ``lam``; ``h = lam_next - lam``). All are Python floats
computed once in float64, so a sampling loop never synchronises with the device
to read them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from diffkit.schedules.base import Schedule

TimestepsLike = Sequence[float] | np.ndarray | torch.Tensor


@dataclass(frozen=True, slots=True)
class Point:
    """A time t and its schedule values: x_t = alpha x0 + sigma eps, lam = log(alpha / sigma)."""

    t: float
    alpha: float
    sigma: float
    lam: float


@dataclass(frozen=True, slots=True)
class Step:
    """Step ``i`` from ``at`` to ``to``; the final step (``to`` is None) goes to the data, sigma = 0."""

    i: int
    at: Point
    to: Point | None

    @property
    def final(self) -> bool:
        return self.to is None

    @property
    def h(self) -> float:
        """lam_next - lam: the step in half log-SNR (> 0 when denoising)."""
        return self.to.lam - self.at.lam


def check_timesteps(schedule: Schedule, timesteps: TimestepsLike) -> tuple[float, ...]:
    """Visited timesteps as floats: a non-empty, strictly decreasing 1-D sequence within [t_min, t_max]."""
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


def make_steps(schedule: Schedule, timesteps: TimestepsLike) -> tuple[Step, ...]:
    """The validated steps over ``timesteps`` (cached per schedule and grid: schedules are immutable values)."""
    t = check_timesteps(schedule, timesteps)
    try:
        return _steps(schedule, t)
    except TypeError:  # an unhashable user-defined schedule: tabulate without the cache
        return _steps.__wrapped__(schedule, t)


def points_at_lambda(schedule: Schedule, lams: Sequence[float]) -> list[Point]:
    """The points where the half log-SNR is each of ``lams`` (intermediate stages), looked up in one batch."""
    lam = np.asarray(lams, dtype=np.float64)
    t = schedule.t_from_lambda(lam)
    values = zip(t.tolist(), schedule.alpha(t).tolist(), schedule.sigma(t).tolist(), lam.tolist())
    return [Point(*v) for v in values]


@functools.lru_cache(maxsize=64)
def _steps(schedule: Schedule, t: tuple[float, ...]) -> tuple[Step, ...]:
    # Cached: the three accessors cost ~0.3 ms on the host, about 10 us per step of a
    # 25-step call (benchmarks/bench_overhead.py).
    ts = np.asarray(t, dtype=np.float64)
    values = zip(t, schedule.alpha(ts).tolist(), schedule.sigma(ts).tolist(), schedule.lambda_(ts).tolist())
    points = [Point(*v) for v in values]
    # sigma > 0 wherever a model is evaluated (the step to sigma = 0 is the final one, never a visited point);
    # alpha = 0 (lambda = -inf) only where sampling starts, at zero terminal SNR.
    if any(not (p.sigma > 0 and p.alpha >= 0 and not math.isnan(p.lam)) for p in points):
        raise ValueError("visited timesteps need sigma > 0 (the data, sigma = 0, is reached by the final step)")
    return tuple(Step(i, p, points[i + 1] if i + 1 < len(points) else None) for i, p in enumerate(points))
