"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), multistep in lambda."""

from __future__ import annotations

import math

from diffkit.samplers.run import SamplerRun


def sample_dpmpp_2m(eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None,
                    afs: bool = False):
    """Second-order multistep exponential integrator in the data prediction x0, deterministic.

    With h = lambda_n - lambda_t, h_prev the previous step and r = h_prev / h:

        D   = (1 + 1/(2r)) x0_t - 1/(2r) x0_prev       (D = x0_t on the first step)
        x_n = (sigma_n / sigma_t) x_t + alpha_n (1 - exp(-h)) D

    The final step to sigma = 0 is first order (lower_order_final), which makes it
    the data prediction. Equivalences (tested): the first-order update is DDIM
    (DPM-Solver-1 = DDIM); results equal diffusers' DPMSolverMultistepScheduler
    (dpmsolver++, solver_order=2, final_sigmas_type="zero"). ``generator`` is
    accepted for the common signature and unused.
    ``afs=True`` takes the analytical first step: eps at the first timestep is x_T scaled to unit variance
    instead of a model call (:func:`~diffkit.samplers.model_calls.analytic_prediction`), so N timesteps
    cost N - 1 calls.
    """
    run = SamplerRun("dpmpp_2m", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond,
                    afs=afs)
    x0_prev = h_prev = None
    for step in run.steps:
        p = run.predict(x, step)
        if step.final:  # to the data (sigma = 0): first order, the data prediction
            x = p.x0
            continue
        now, nxt, h = step.at, step.to, step.h
        if x0_prev is None or h_prev is None:
            D = p.x0
        else:
            r = h_prev / h
            D = (1 + 1 / (2 * r)) * p.x0 - 1 / (2 * r) * x0_prev
        x = (nxt.sigma / now.sigma) * p.x - nxt.alpha * math.expm1(-h) * D
        x0_prev, h_prev = p.x0, h
    return run.finish(x)
