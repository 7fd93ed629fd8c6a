"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), multistep in lambda."""

from __future__ import annotations

import math

from diffkit.kernels.step_update import StepCoefficients, step_update
from diffkit.samplers.base import final_step, prepare, reusable


def sample_dpmpp_2m(eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None):
    """Second-order multistep exponential integrator in the data prediction x0, deterministic.

    With h = lambda_n - lambda_t, h_prev the previous step and r = h_prev / h:

        D   = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev       (D = x0_t on the first step)
        x_n = (sigma_n / sigma_t) x_t + alpha_n (1 - exp(-h)) D

    The final step to sigma = 0 is first order (lower_order_final), which makes it
    the data prediction. Equivalences (tested): the first-order update is DDIM
    (DPM-Solver-1 = DDIM); results equal diffusers' DPMSolverMultistepScheduler
    (dpmsolver++, solver_order=2, final_sigmas_type="zero"). ``generator`` is
    accepted for the common signature and unused.
    """
    tab, model, x = prepare("dpmpp_2m", eps_model, x, schedule, timesteps, cond)
    prev, h_prev, out = None, None, None
    for i, t in enumerate(tab.t):
        at, st = tab.alpha[i], tab.sigma[i]
        eps = model(x, t, i)
        if i + 1 == len(tab):
            coeffs = final_step(at, st)
        else:
            an, sn = tab.alpha[i + 1], tab.sigma[i + 1]
            h = tab.lam[i + 1] - tab.lam[i]
            phi = -math.expm1(-h)  # 1 - exp(-h), without cancellation for small h
            w = 0.0 if prev is None else 0.5 * h / h_prev  # 1 / (2r)
            coeffs = StepCoefficients(alpha=at, sigma=st, cx=sn / st, c0=an * phi * (1 + w), c1=-an * phi * w)
            h_prev = h
        x_t, prev_t = x, prev
        x, prev = step_update(x, eps, coeffs, prev=prev, out=out)
        if callback is not None:
            callback(i, t, x_t, prev)
        out = (x_t, prev_t) if i > 0 and reusable(callback, x_t, prev_t) else None  # dead: the next step writes there
    model.check_finite()
    return x
