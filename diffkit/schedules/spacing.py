"""Which timesteps a sampler visits: a function of (schedule, steps, spacing), not a schedule flag.

Every spacing returns ``steps`` strictly decreasing float64 timesteps in
[0, T-1]; samplers visit them in order and then take one final step to the
data (sigma = 0). No duplicates, ever.

- ``leading``  : k * (T // steps) for k = steps-1..0            (diffusers "leading", steps_offset=0)
- ``trailing`` : round(T - k * T / steps) - 1 for k = 0..steps-1  (diffusers "trailing")
- ``linspace`` : round(linspace(0, T-1, steps+1))[::-1][:-1]      (diffusers DPM-Solver "linspace")
- ``karras``   : sigma_k ramp of Karras et al. 2022 (eq. 5, rho=7) between sigma_k(T-1) and
                 sigma_k(0), mapped back to fractional t
- ``logsnr``   : lambda uniform between lambda(T-1) and lambda(0) (DPM-Solver's "logSNR"), fractional t

The discrete spacings need steps <= T; at steps == T they all return the full
grid T-1..0. Every spacing needs steps <= MAX_STEPS (checked before anything of
that length is built). "leading" starts at (steps-1) * (T // steps), not at T-1:
with steps = 1 it would visit only t = 0 and return the starting noise as the
sample, so that is an error; with few steps it starts low (T/2 at steps = 2). With linspace/trailing the last visited timestep is about T/steps,
and the final jump from it to the data (one step for every solver) errs by about
c * sigma_k(T/steps)^2, which tends to c' / steps: every solver is eventually
first order there, whatever its own order (measured in tests/test_samplers.py).
"leading" also starts below T-1 once steps > T/2. karras and logsnr refine the
whole path down to t = 0, where second-order solvers show their order.
"""

from __future__ import annotations

import numpy as np

from diffkit.schedules.base import Schedule

SPACINGS = ("leading", "trailing", "linspace", "karras", "logsnr")
DISCRETE_SPACINGS = ("leading", "trailing", "linspace")
# Upper bound on steps, checked before the arrays (and a sampler's per-step tables, ~150 bytes a step)
# are built: 100x the 1,000 steps of a full DDPM run.
MAX_STEPS = 100_000


def _discrete(T: int, steps: int, spacing: str) -> np.ndarray:
    k = np.arange(steps, dtype=np.float64)
    if spacing == "leading":
        return (k * (T // steps))[::-1]
    if spacing == "trailing":
        return np.round(T - k * (T / steps)) - 1
    return np.round(np.linspace(0, T - 1, steps + 1))[::-1][:-1]


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022, eq. 5: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho."""
    if steps == 1:
        return np.array([sigma_max])
    ramp = np.linspace(0.0, 1.0, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def timesteps(schedule: Schedule, steps: int, spacing: str = "karras", *, rho: float = 7.0) -> np.ndarray:
    """The ``steps`` timesteps to visit, strictly decreasing, in [0, T-1] (float64)."""
    T = schedule.num_train_timesteps
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; allowed: {', '.join(SPACINGS)}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer >= 1 and <= {MAX_STEPS}, got {steps!r}")
    if spacing == "leading" and steps == 1:
        raise ValueError("spacing 'leading' with steps=1 visits only t=0, so the sample would be the starting "
                         "noise; use steps >= 2 or another spacing (trailing, linspace, karras, logsnr)")
    if spacing in DISCRETE_SPACINGS and steps > T:
        raise ValueError(f"spacing {spacing!r} visits integer timesteps: steps must be <= T={T}, got {steps}")
    if isinstance(rho, bool) or not isinstance(rho, (int, float, np.integer, np.floating)) or not 0 < rho < np.inf:
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}")
    if steps == T and spacing in DISCRETE_SPACINGS:
        return np.arange(T - 1, -1, -1, dtype=np.float64)
    if spacing in DISCRETE_SPACINGS:
        t = _discrete(T, int(steps), spacing)
    elif spacing == "karras":
        sk = schedule.sigma_k(np.array([0.0, T - 1.0]))
        t = schedule.t_from_sigma_k(karras_sigmas(sk[0], sk[1], int(steps), rho))
    else:
        lam = schedule.lambda_(np.array([T - 1.0, 0.0]))
        t = schedule.t_from_lambda(np.linspace(lam[0], lam[1], int(steps)))
    t = np.clip(t, 0.0, T - 1.0)
    # Pin the ends exactly (the inverse maps are exact only up to rounding), then
    # guard strict monotonicity, which rounding in the inverse could otherwise break.
    if spacing not in DISCRETE_SPACINGS:
        t[0] = T - 1.0
        if steps > 1:
            t[-1] = 0.0
    if steps > 1 and not np.all(np.diff(t) < 0):
        raise AssertionError(f"internal error: {spacing} spacing produced non-decreasing timesteps {t}")
    return t
