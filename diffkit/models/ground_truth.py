"""The exact probability-flow ODE solution, for measuring deterministic samplers.

In the variance-exploding variables y = x / alpha_t and sigma_k = exp(-lambda),
the probability-flow ODE of the VP process is (Karras et al. 2022, eq. 3 / Song
et al. 2021):

    dy/dlambda = -sigma_k(lambda) * eps(alpha y, t(lambda)).

We integrate it from lambda(t_start) to lambda(t_end) with SciPy's DOP853 at
tight tolerances, in float64. Every diffkit sampler ends with one step from the
last visited timestep to the data, x0 = (x - sigma eps) / alpha; the ground truth
is the ODE solution at t = 0 followed by that same exact map.
"""

from __future__ import annotations

import numpy as np
import torch

from diffkit.conversions import x0_from_eps
from diffkit.schedules.base import Schedule


def solve_probability_flow(
    eps_model,
    schedule: Schedule,
    x_start: torch.Tensor,
    t_start: float | None = None,
    t_end: float = 0.0,
    rtol: float = 1e-10,
    atol: float = 1e-10,
) -> torch.Tensor:
    """x at ``t_end`` on the probability-flow ODE through ``x_start`` at ``t_start`` (default T-1), float64."""
    from scipy.integrate import solve_ivp  # imported on use: it is a second of start-up for every CLI call

    T = schedule.num_train_timesteps
    t_start = float(T - 1) if t_start is None else float(t_start)
    if not 0 <= t_end < t_start <= T - 1:
        raise ValueError(f"need 0 <= t_end < t_start <= T-1={T - 1}, got t_start={t_start}, t_end={t_end}")
    shape = x_start.shape
    batch = shape[0]

    def rhs(lam: float, y: np.ndarray) -> np.ndarray:
        t = torch.full((batch,), float(schedule.t_from_lambda(lam)), dtype=torch.float64)
        alpha = float(schedule.alpha(float(t[0])))
        x = torch.from_numpy(y).reshape(shape) * alpha
        eps = eps_model(x, t)
        return (-np.exp(-lam) * eps.reshape(-1)).numpy()

    lam0, lam1 = schedule.lambda_(t_start), schedule.lambda_(t_end)
    y0 = (x_start.to(torch.float64) / schedule.alpha(t_start)).reshape(-1).numpy()
    sol = solve_ivp(rhs, (lam0, lam1), y0, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE solve failed: {sol.message}")
    return torch.from_numpy(sol.y[:, -1]).reshape(shape) * schedule.alpha(t_end)


def exact_sample(
    eps_model, schedule: Schedule, x_start: torch.Tensor, t_end: float = 0.0, **tolerances: float
) -> torch.Tensor:
    """The exact deterministic sample from x_T: the ODE to ``t_end``, then the final map to the data.

    With t_end = 0 this is what every deterministic sampler converges to when its
    spacing refines the whole path; with t_end = a spacing's last visited timestep it
    is the best any solver can do on that spacing (its final-jump floor).
    """
    x = solve_probability_flow(eps_model, schedule, x_start, t_end=t_end, **tolerances)
    t = torch.full((x.shape[0],), float(t_end), dtype=torch.float64)
    return x0_from_eps(x, eps_model(x, t), schedule.alpha(float(t_end)), schedule.sigma(float(t_end)))
