"""Which timesteps a sampler visits: a function of (schedule, steps, spacing), not a schedule flag.

Every spacing returns ``steps`` strictly decreasing float64 timesteps in the
schedule's domain [t_min, t_max]; samplers visit them in order and then take one
final step to the data (sigma = 0). No duplicates, ever. ``karras`` and ``logsnr``
exist for every schedule (through lambda(t)); a family adds its own grids
(``Schedule.native_timesteps``), e.g. the discrete schedules' integer grids:

- ``leading``  : k * (T // steps) for k = steps-1..0            (diffusers "leading", steps_offset=0)
- ``trailing`` : round(T - k * T / steps) - 1 for k = 0..steps-1  (diffusers "trailing")
- ``linspace`` : round(linspace(0, T-1, steps+1))[::-1][:-1]      (diffusers DPM-Solver "linspace")
- ``karras``   : sigma_k ramp of Karras et al. 2022 (eq. 5, rho=7) between sigma_k(T-1) and
                 sigma_k(0), mapped back to fractional t
- ``logsnr``   : lambda uniform between lambda(T-1) and lambda(0) (DPM-Solver's "logSNR"), fractional t

The discrete spacings need steps <= T; at steps == T they all return the full
grid T-1..0. With linspace/trailing the last visited timestep is about T/steps,
and the final jump from it to the data (one step for every solver) errs by about
c * sigma_k(T/steps)^2, which tends to c' / steps: every solver is eventually
first order there, whatever its own order (measured in tests/test_samplers.py).
"leading" also starts below T-1 once steps > T/2. karras and logsnr refine the
whole path down to t = 0, where second-order solvers show their order.

Other families' own grids: ``shifted`` for flow matching (uniform in the unshifted
time, then shifted; :mod:`diffkit.schedules.flow`) and ``linspace`` for the continuous
VP SDE (uniform t from 1 to t_min). A schedule starting at zero SNR has no karras or
logsnr grid (sigma_k = inf there); :func:`default_spacing` picks its own instead.
"""

from __future__ import annotations

import numpy as np

from diffkit.schedules.base import Schedule, check_positive_int
from diffkit.schedules.discrete import DISCRETE_SPACINGS

GENERIC_SPACINGS = ("karras", "logsnr")  # defined for every schedule through lambda(t)
SPACINGS = DISCRETE_SPACINGS + GENERIC_SPACINGS


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022, eq. 5: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho."""
    if steps == 1:
        return np.array([sigma_max])
    ramp = np.linspace(0.0, 1.0, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def spacings(schedule: Schedule) -> tuple[str, ...]:
    """The spacings ``schedule`` supports: its own grids, then the generic ones."""
    return tuple(schedule.native_spacings) + GENERIC_SPACINGS


def default_spacing(schedule: Schedule, preferred: str | None = None) -> str:
    """``preferred`` (a sampler's default) where ``schedule`` has it, else the schedule's own default.

    A schedule that starts at zero SNR (alpha(t_max) = 0: flow matching, zero terminal
    SNR) always gets its own (``shifted``, ``trailing``): its grids start from pure
    noise at t_max, as Lin et al. 2023 (sec. 3.3) require, and karras / logsnr, which
    space sigma_k or lambda between the ends, do not exist there (sigma_k = inf).
    """
    if preferred in spacings(schedule) and not schedule.zero_terminal_snr:
        return preferred
    return schedule.default_spacing


def timesteps(schedule: Schedule, steps: int, spacing: str | None = None, *, rho: float = 7.0) -> np.ndarray:
    """The ``steps`` timesteps to visit, strictly decreasing, in [t_min, t_max] (float64).

    ``spacing`` defaults to the schedule's own (``schedule.default_spacing``).
    """
    spacing = _checked(schedule, steps, spacing, rho)
    native = schedule.native_timesteps(int(steps), spacing)
    if native is not None:
        t = np.asarray(native, dtype=np.float64)
    else:
        t = _generic(schedule, int(steps), spacing, rho)
    if steps > 1 and not np.all(np.diff(t) < 0):
        raise AssertionError(f"internal error: {spacing} spacing produced non-decreasing timesteps {t}")
    return t


def _checked(schedule: Schedule, steps: int, spacing: str | None, rho: float) -> str:
    """The spacing's name (the schedule's own for None), after checking it, ``steps`` and ``rho``."""
    spacing = schedule.default_spacing if spacing is None else spacing
    allowed = spacings(schedule)
    if spacing not in allowed:
        raise ValueError(f"unknown spacing {spacing!r}; allowed: {', '.join(allowed)}")
    if not (isinstance(rho, (int, float)) and rho > 0):
        raise ValueError(f"rho must be a number > 0, got {rho!r}")
    check_positive_int("steps", steps, 1, 1_000_000)
    return spacing


def timesteps_from(schedule: Schedule, steps: int, spacing: str | None, t_start: float, *,
                   rho: float = 7.0) -> np.ndarray:
    """``steps`` timesteps of ``spacing`` starting at ``t_start`` instead of t_max (partial runs: img2img).

    ``karras`` and ``logsnr``: their ramp between sigma_k(t_start) (lambda(t_start)) and t_min.
    A family's own grids: the full grid mapped affinely in t onto [t_min, t_start], its first
    point onto t_start (uniform grids stay uniform, flow's shifted grid keeps its shape).
    t_start = t_max gives :func:`timesteps` exactly (so also "leading"'s start below t_max).
    ValueError if t_start is outside (t_min, t_max] or too close to t_min for ``steps`` distinct times.
    """
    spacing = _checked(schedule, steps, spacing, rho)
    t_start = float(t_start)
    if t_start == schedule.t_max:
        return timesteps(schedule, steps, spacing, rho=rho)
    if not schedule.t_min < t_start < schedule.t_max:
        raise ValueError(f"t_start must lie in (t_min, t_max]=({schedule.t_min:g}, {schedule.t_max:g}], got {t_start!r}")
    if spacing in GENERIC_SPACINGS:  # defined from any t_start below zero SNR too
        t = _generic(schedule, int(steps), spacing, rho, t_start)
    else:
        full, t_min = timesteps(schedule, steps, spacing, rho=rho), schedule.t_min
        t = t_min + (full - t_min) * ((t_start - t_min) / (full[0] - t_min))
        t[0] = t_start
    if steps > 1 and not np.all(np.diff(t) < 0):
        raise ValueError(f"t_start={t_start:g} is too close to t_min={schedule.t_min:g} for {steps} distinct timesteps")
    return t


def _generic(schedule: Schedule, steps: int, spacing: str, rho: float, t_start: float | None = None) -> np.ndarray:
    t_min, t_max = schedule.t_min, schedule.t_max if t_start is None else t_start
    lam_hi, lam_lo = float(schedule.lambda_(t_min)), float(schedule.lambda_(t_max))
    if not np.isfinite(lam_lo):
        raise ValueError(f"spacing {spacing!r} spaces sigma_k or lambda between the ends, but "
                         f"{type(schedule).__name__} starts at zero SNR (sigma_k = inf at t_max); "
                         f"use one of its own spacings: {', '.join(schedule.native_spacings) or 'none'}")
    if spacing == "karras":
        t = schedule.t_from_sigma_k(karras_sigmas(np.exp(-lam_hi), np.exp(-lam_lo), steps, rho))
    else:
        t = schedule.t_from_lambda(np.linspace(lam_lo, lam_hi, steps))
    t = np.clip(np.asarray(t, dtype=np.float64), t_min, t_max)
    # Pin the ends exactly (the inverse maps are exact only up to rounding).
    t[0] = t_max
    if steps > 1:
        t[-1] = t_min
    return t
