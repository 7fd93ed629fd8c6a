"""The exact probability-flow ODE solution, for measuring deterministic samplers in every schedule family.

For x_t = alpha_t x0 + sigma_t eps the probability-flow ODE is dx/dt = alpha'(t) x0* + sigma'(t) eps*
with the posterior means x0*, eps* (substitute grad log p = -eps*/sigma and x = alpha x0* + sigma eps*
into Song et al. 2021's ODE). The posterior means depend on x only through x / s and on t only
through lambda (s = sqrt(alpha^2 + sigma^2)), so every family reduces to the variance-preserving
one in z = x / s, integrated in lambda (alpha_vp = sigmoid(2 lambda)^1/2, sigma_vp = sigmoid(-2 lambda)^1/2):

    dz/dlambda = alpha_vp sigma_vp^2 x0* - sigma_vp alpha_vp^2 eps*

smooth in lambda, with no division by alpha: at zero terminal SNR (lambda = -inf) the
right-hand side vanishes like alpha_vp, so starting at ``LAMBDA_FLOOR`` instead moves x
by about exp(LAMBDA_FLOOR) (1e-26), below float64 resolution. SciPy's DOP853 at tight
tolerances, float64. Every diffkit sampler ends with one step from the last visited
timestep to the data, x0*; the ground truth is the ODE solution at t_end followed by that
same exact map.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffkit.conversions import prediction_coefficients
from diffkit.schedules.base import Schedule

LAMBDA_FLOOR = -60.0  # where integration starts when lambda(t_start) = -inf (zero SNR)


def _predict(model, schedule: Schedule, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0*, eps*) of ``model`` at (x, t), whatever it predicts."""
    tt = torch.full((x.shape[0],), t, dtype=torch.float64)
    out = model(x, tt)
    a, b, c, d = prediction_coefficients(getattr(model, "prediction_type", "epsilon"),
                                         float(schedule.alpha(t)), float(schedule.sigma(t)))
    return a * x + b * out, c * x + d * out


def _scale(schedule: Schedule, t: float) -> float:
    return math.hypot(float(schedule.alpha(t)), float(schedule.sigma(t)))


def solve_probability_flow(
    model,
    schedule: Schedule,
    x_start: torch.Tensor,
    t_start: float | None = None,
    t_end: float | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-10,
) -> torch.Tensor:
    """x at ``t_end`` (default t_min) on the ODE through ``x_start`` at ``t_start`` (default t_max), float64."""
    from scipy.integrate import solve_ivp  # imported on use: it is a second of start-up for every CLI call

    t_start = schedule.t_max if t_start is None else float(t_start)
    t_end = schedule.t_min if t_end is None else float(t_end)
    if not schedule.t_min <= t_end < t_start <= schedule.t_max:
        raise ValueError(f"need t_min <= t_end < t_start <= t_max=[{schedule.t_min:g}, {schedule.t_max:g}], "
                         f"got t_start={t_start}, t_end={t_end}")
    shape = x_start.shape

    def rhs(lam: float, z: np.ndarray) -> np.ndarray:
        t = float(schedule.t_from_lambda(lam))
        x = torch.from_numpy(z).reshape(shape) * _scale(schedule, t)
        x0, eps = _predict(model, schedule, x, t)
        a2 = 1.0 / (1.0 + math.exp(-2.0 * lam))  # alpha_vp^2 = sigmoid(2 lam)
        alpha, sigma = math.sqrt(a2), math.sqrt(1.0 - a2)
        return (alpha * sigma * sigma * x0 - sigma * alpha * alpha * eps).reshape(-1).numpy()

    lam0 = max(float(schedule.lambda_(t_start)), LAMBDA_FLOOR)
    lam1 = float(schedule.lambda_(t_end))
    z0 = (x_start.to(torch.float64) / _scale(schedule, t_start)).reshape(-1).numpy()
    sol = solve_ivp(rhs, (lam0, lam1), z0, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE solve failed: {sol.message}")
    return torch.from_numpy(sol.y[:, -1]).reshape(shape) * _scale(schedule, t_end)


def exact_sample(
    model, schedule: Schedule, x_start: torch.Tensor, t_end: float | None = None, **tolerances: float
) -> torch.Tensor:
    """The exact deterministic sample from x_T: the ODE to ``t_end`` (default t_min), then the final map x0*.

    With t_end = t_min this is what every deterministic sampler converges to when its
    spacing refines the whole path; with t_end = a spacing's last visited timestep it
    is the best any solver can do on that spacing (its final-jump floor).
    """
    t_end = schedule.t_min if t_end is None else float(t_end)
    x = solve_probability_flow(model, schedule, x_start, t_end=t_end, **tolerances)
    return _predict(model, schedule, x, t_end)[0]
