"""Which timesteps a sampler visits: a function of (schedule, steps, spacing), not a schedule flag.

Every spacing returns ``steps`` strictly decreasing float64 timesteps t_0 > ... > t_{N-1}
(N = steps) in the schedule's domain [t_min, t_max]; samplers visit them in order and then
take one final step to the data (sigma = 0). No duplicates, ever: a grid that would repeat a
timestep is repaired where its definition says how, and refused with a ValueError otherwise.

Generic spacings, defined for every schedule through its time t, lambda(t) and [t_min, t_max]:

- ``karras``       sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho, rho = 7, in
                   k-diffusion's sigma_k = exp(-lambda) between sigma_k(t_max) and sigma_k(t_min)
                   (Karras et al. 2022, eq. 5), mapped back to fractional t.
- ``logsnr``       lambda uniform between lambda(t_max) and lambda(t_min) (DPM-Solver's "logSNR").
- ``time_uniform`` the same rho family in the schedule's own time:
                   t_i = (t_max^(1/rho) + i/(N-1) (t_min^(1/rho) - t_max^(1/rho)))^rho, rho = 1 by default
                   (uniform in t: DPM-Solver's "time_uniform", EDM's VP discretisation, Karras et al.
                   2022 Table 1; rho = 2 is DPM-Solver's "time_quadratic"; diff-sampler's
                   ``time_uniform`` applies the same rho to the VP time). On a family whose time is
                   sigma itself (EDM), time_uniform with rho = 7 is karras.
- ``sgm_uniform``  t_i = t_max - i (t_max - t_min) / N: N points of linspace(t_max, t_min, N + 1), the last
                   dropped (ComfyUI ``normal_scheduler(sgm=True)`` in comfy/samplers.py). ComfyUI
                   interpolates log sigma linearly between integer timesteps, as DiscreteVP does, so
                   the grids are equal.
- ``simple``       ComfyUI ``simple_scheduler``: every (T/N)-th entry of the model's table from the top,
                   t_i = (T - 1) - floor(i T / N) on DiscreteVP's integer timesteps (steps <= T). A
                   family without an integer table renders it continuously, t_i = t_max - i (t_max -
                   t_min) / N, which is sgm_uniform's grid.
- ``beta``         ComfyUI ``beta_scheduler`` (after Lee et al. 2024, "Beta Sampling is All You Need",
                   arXiv:2407.12173): q_i = F^-1(1 - i/N) with F the Beta(0.6, 0.6) CDF (``beta_shape``
                   sets (a, b), ComfyUI's alpha and beta), t_i = t_min + q_i (t_max - t_min); steps
                   cluster at both ends. DiscreteVP rounds to integer timesteps as
                   ComfyUI does (rint(q_i (T - 1))); where rounding would repeat a timestep (ComfyUI
                   then drops the repeats and samples fewer steps) the grid stays fractional.

karras and logsnr space sigma_k or lambda between the ends, so a schedule at zero terminal
SNR (lambda(t_max) = -inf) refuses them, naming the spacings that work; the time-based
spacings start at t_max itself, where samplers take their first step from pure noise.

A family adds its own grids (``Schedule.native_timesteps``); DiscreteVP's, on integer timesteps
(diffusers' names), need steps <= T and return the full grid T-1..0 at steps == T:

- ``leading``  : k * (T // steps) for k = steps-1..0            (diffusers "leading", steps_offset=0)
- ``trailing`` : round(T - k * T / steps) - 1 for k = 0..steps-1  (diffusers "trailing")
- ``linspace`` : round(linspace(0, T-1, steps+1))[::-1][:-1]      (diffusers DPM-Solver "linspace")

With linspace/trailing (and sgm_uniform, simple, beta) the last visited timestep is well above
t_min, and the final jump from it to the data (one step for every solver) errs by about
c * sigma_k(t_{N-1})^2: with t_{N-1} ~ T/N every solver is eventually first order there,
whatever its own order (measured in tests/test_samplers.py). "leading" also starts below T-1
once steps > T/2. karras, logsnr and time_uniform end at t_min, where second-order solvers
show their order. With ``endpoint=False`` they give the first N points of their N + 1-point
grid instead (numpy's ``linspace(endpoint=False)``; sgm_uniform is time_uniform's so): no
model call is spent at t_min, where almost nothing is left to denoise, and a sampler whose
final step keeps its order (``final="adams"``) takes the last step to the data from above
t_min. This is how the diff-sampler solvers spend their calls (N + 1 timestamps, N calls).

Other families' own grids: ``shifted`` for flow matching (uniform in the unshifted
time, then shifted; :mod:`diffkit.schedules.flow`) and ``linspace`` for the continuous
VP SDE (uniform t from 1 to t_min). A schedule starting at zero SNR has no karras or
logsnr grid (sigma_k = inf there); :func:`default_spacing` picks its own instead.
"""

from __future__ import annotations

import numpy as np

from diffkit.schedules.base import Schedule, check_positive_int, check_schedule
from diffkit.schedules.discrete import DISCRETE_SPACINGS

GENERIC_SPACINGS = ("karras", "logsnr", "time_uniform", "sgm_uniform", "simple", "beta")  # every schedule
SPACINGS = DISCRETE_SPACINGS + GENERIC_SPACINGS
DEFAULT_RHO = {"karras": 7.0, "time_uniform": 1.0}  # the spacings with a rho, and its default
ENDPOINT_SPACINGS = ("karras", "logsnr", "time_uniform")  # end at t_min; endpoint=False drops that point
BETA_SHAPE = (0.6, 0.6)  # ComfyUI's beta_scheduler defaults (alpha, beta)
# Upper bound on steps, checked before the arrays (and a sampler's per-step tables, ~150 bytes a step)
# are built: 100x the 1,000 steps of a full DDPM run.
MAX_STEPS = 100_000


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022, eq. 5: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho."""
    if steps == 1:
        return np.array([sigma_max])
    ramp = np.linspace(0.0, 1.0, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def beta_fractions(steps: int, shape: tuple[float, float] = BETA_SHAPE) -> np.ndarray:
    """ComfyUI's beta spacing as fractions of the time range: F^-1(1 - i/N), Beta(a, b) = ``shape``, i = 0..N-1."""
    from scipy.stats import beta  # imported on use: SciPy costs a second of start-up

    return beta.ppf(1.0 - np.arange(steps) / steps, *shape)


def spacings(schedule: Schedule) -> tuple[str, ...]:
    """The spacings ``schedule`` supports: its own grids, then the generic ones."""
    own = tuple(schedule.native_spacings)
    return own + tuple(s for s in GENERIC_SPACINGS if s not in own)


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


def timesteps(schedule: Schedule, steps: int, spacing: str | None = None, *, rho: float | None = None,
              endpoint: bool = True, beta_shape: tuple[float, float] | None = None) -> np.ndarray:
    """The ``steps`` timesteps to visit, strictly decreasing, in [t_min, t_max] (float64).

    ``spacing`` defaults to the schedule's own (``schedule.default_spacing``); ``rho`` applies to
    karras (default 7) and time_uniform (default 1). ``endpoint=False`` (karras, logsnr and
    time_uniform, the spacings that end at t_min) gives the first ``steps`` points of the
    ``steps + 1``-point grid, as numpy's ``linspace(endpoint=False)``: the last visited point
    lies above t_min and the final step goes from there to the data, so no model call is spent
    at t_min, where nothing is left to denoise. It suits samplers whose final step keeps their
    order (``final="adams"``: ipndm, deis); with a first-order final step (the data prediction)
    the last jump costs accuracy instead. ``beta_shape`` is the beta spacing's (a, b), ComfyUI's
    alpha and beta (default (0.6, 0.6)); (0.5, 0.5), the arcsine law, gives t_i = t_min + (t_max -
    t_min) cos^2(pi i / 2N).
    """
    spacing, rho = _checked(schedule, steps, spacing, rho, endpoint)
    shape = _checked_shape(spacing, beta_shape)
    native = schedule.native_timesteps(int(steps), spacing, shape)
    if native is not None:
        t = np.asarray(native, dtype=np.float64)
    else:
        t = _generic(schedule, int(steps) + (not endpoint), spacing, rho, shape=shape)[:int(steps)]
    _check_distinct(t, f"{spacing} spacing repeats a timestep at steps={steps} on {schedule} (two of its points "
                       f"round to one float64 number); use fewer steps")
    return t


def timesteps_from(schedule: Schedule, steps: int, spacing: str | None, t_start: float, *,
                   rho: float | None = None, endpoint: bool = True,
                   beta_shape: tuple[float, float] | None = None) -> np.ndarray:
    """``steps`` timesteps of ``spacing`` starting at ``t_start`` instead of t_max (partial runs: img2img).

    The generic spacings: their definition with t_start in place of t_max (karras and logsnr: their
    ramp between sigma_k(t_start) (lambda(t_start)) and t_min). A family's own grids: the full grid
    mapped affinely in t onto [t_min, t_start], its first point onto t_start (uniform grids stay
    uniform, flow's shifted grid keeps its shape). t_start = t_max gives :func:`timesteps` exactly
    (so also "leading"'s start below t_max). ValueError if t_start is outside (t_min, t_max] or too
    close to t_min for ``steps`` distinct times. ``endpoint`` and ``beta_shape`` as in :func:`timesteps`.
    """
    spacing, rho = _checked(schedule, steps, spacing, rho, endpoint)
    shape = _checked_shape(spacing, beta_shape)
    t_start = float(t_start)
    if t_start == schedule.t_max:
        return timesteps(schedule, steps, spacing, rho=rho, endpoint=endpoint, beta_shape=beta_shape)
    if not schedule.t_min < t_start < schedule.t_max:
        raise ValueError(f"t_start must lie in (t_min, t_max]=({schedule.t_min:g}, {schedule.t_max:g}], "
                         f"got {t_start!r}")
    if spacing in schedule.native_spacings:
        full, t_min = timesteps(schedule, steps, spacing, rho=rho), schedule.t_min
        t = t_min + (full - t_min) * ((t_start - t_min) / (full[0] - t_min))
        t[0] = t_start
    else:  # defined from any t_start, below zero SNR too
        t = _generic(schedule, int(steps) + (not endpoint), spacing, rho, t_start, shape=shape)[:int(steps)]
    _check_distinct(t, f"t_start={t_start:g} is too close to t_min={schedule.t_min:g} for {steps} distinct timesteps")
    return t


def _checked(schedule: Schedule, steps: int, spacing: str | None, rho: float | None,
             endpoint: bool = True) -> tuple[str, float | None]:
    """The spacing's name (the schedule's own for None) and its rho (None where it takes none), checked."""
    check_schedule(schedule)
    spacing = schedule.default_spacing if spacing is None else spacing
    allowed = spacings(schedule)
    if spacing not in allowed:
        raise ValueError(f"unknown spacing {spacing!r}; allowed: {', '.join(allowed)}")
    if rho is not None and spacing not in DEFAULT_RHO:
        raise ValueError(f"rho applies to the spacings {', '.join(DEFAULT_RHO)}, not {spacing!r}")
    rho = DEFAULT_RHO.get(spacing) if rho is None else rho
    if rho is not None and (isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 < rho < np.inf):
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}")
    check_positive_int("steps", steps, 1, MAX_STEPS)
    if not isinstance(endpoint, bool):
        raise TypeError(f"endpoint must be True or False, got {endpoint!r}")
    if not endpoint and spacing not in ENDPOINT_SPACINGS:
        raise ValueError(f"endpoint=False applies to the spacings that end at t_min ({', '.join(ENDPOINT_SPACINGS)}), "
                         f"not {spacing!r}, whose last point already lies above t_min")
    return spacing, rho


def _checked_shape(spacing: str, beta_shape: object) -> tuple[float, float]:
    """The beta spacing's (a, b), checked: BETA_SHAPE for None; refused with any other spacing."""
    if beta_shape is None:
        return BETA_SHAPE
    if spacing != "beta":
        raise ValueError(f"beta_shape applies to the spacing 'beta', not {spacing!r}")
    if not (isinstance(beta_shape, (tuple, list)) and len(beta_shape) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < np.inf for v in beta_shape)):
        raise ValueError(f"beta_shape must be two finite numbers > 0 (a, b), got {beta_shape!r}")
    return (float(beta_shape[0]), float(beta_shape[1]))


def _check_distinct(t: np.ndarray, message: str) -> None:
    if len(t) > 1 and not np.all(np.diff(t) < 0):
        raise ValueError(message)


def _generic(schedule: Schedule, steps: int, spacing: str, rho: float | None,
             t_start: float | None = None, *, shape: tuple[float, float] = BETA_SHAPE) -> np.ndarray:
    """The generic spacings from t_start (t_max by default) to t_min; ``rho`` is set (its default
    filled in) exactly for the spacings that take one."""
    t_min, t_max = schedule.t_min, schedule.t_max if t_start is None else t_start
    rho = DEFAULT_RHO.get(spacing, 1.0) if rho is None else rho
    if spacing in ("karras", "logsnr"):
        t = _in_lambda(schedule, steps, spacing, rho, t_max)
    elif spacing == "time_uniform":
        if rho != 1 and t_min < 0:
            raise ValueError(f"time_uniform with rho != 1 needs t_min >= 0; {schedule} has t_min={t_min:g}")
        ramp = np.linspace(0.0, 1.0, steps) if steps > 1 else np.zeros(1)
        lo, hi = t_min ** (1 / rho), t_max ** (1 / rho)
        t = (hi + ramp * (lo - hi)) ** rho
    elif spacing in ("sgm_uniform", "simple"):
        t = t_max - np.arange(steps) * ((t_max - t_min) / steps)
    else:  # beta
        t = t_min + beta_fractions(steps, shape) * (t_max - t_min)
    t = np.clip(np.asarray(t, dtype=np.float64), t_min, t_max)
    # Pin the ends exactly (the inverse maps and powers are exact only up to rounding).
    t[0] = t_max
    if steps > 1 and spacing in ENDPOINT_SPACINGS:
        t[-1] = t_min
    return t


def _in_lambda(schedule: Schedule, steps: int, spacing: str, rho: float, t_max: float) -> np.ndarray:
    lam_hi, lam_lo = float(schedule.lambda_(schedule.t_min)), float(schedule.lambda_(t_max))
    if not np.isfinite(lam_lo):
        works = [s for s in spacings(schedule) if s not in ("karras", "logsnr")]
        raise ValueError(f"spacing {spacing!r} spaces sigma_k or lambda between the ends, but "
                         f"{type(schedule).__name__} starts at zero SNR (sigma_k = inf at t_max); "
                         f"use one of: {', '.join(works)}")
    if spacing == "karras":
        return schedule.t_from_sigma_k(karras_sigmas(np.exp(-lam_hi), np.exp(-lam_lo), steps, rho))
    return schedule.t_from_lambda(np.linspace(lam_lo, lam_hi, steps))
