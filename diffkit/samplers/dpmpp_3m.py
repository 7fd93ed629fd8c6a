"""DPM-Solver++(3M) (Lu et al. 2022, "DPM-Solver++", arXiv:2211.01095, multistep in lambda; the third-order
update of the DPM-Solver code, ``multistep_dpm_solver_third_update``, and of diffusers)."""

from __future__ import annotations

import math

from diffkit.samplers.lincomb import LinComb
from diffkit.samplers.options import check_choice
from diffkit.samplers.run import SamplerRun

FEW_STEPS = 15  # below this many visited timesteps the last step before the final one is second order
D2_FACTOR = {"exact": 2.0, "published": 1.0}  # c below


def sample_dpmpp_3m(eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None,
                    variant: str = "exact", afs: bool = False):
    """Third-order multistep exponential integrator in the data prediction x0, deterministic.

    With h = lambda_n - lambda_0, h_0 = lambda_0 - lambda_1, h_1 = lambda_1 - lambda_2,
    r0 = h_0 / h, r1 = h_1 / h and x0_0 the current, x0_1, x0_2 earlier predictions:

        D1_0 = (x0_0 - x0_1) / r0,   D1_1 = (x0_1 - x0_2) / r1
        D1   = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1),   D2 = c (D1_0 - D1_1) / (r0 + r1)
        x_n  = (sigma_n / sigma_0) x_0 - alpha_n (e^-h - 1) x0_0
               + alpha_n ((e^-h - 1) / h + 1) D1 - alpha_n ((e^-h - 1 + h) / h^2 - 1/2) D2

    D1 is h x0', D2 should be h^2 x0'' of the quadratic through the three x0 (in lambda).
    variant "exact": c = 2, the exact integral of that quadratic: third order (measured
    3.0). "published": c = 1, the update of the DPM-Solver code, diffusers and
    diff-sampler, where D2 is half of h^2 x0'' (the code's singlestep third-order
    "taylor" update has the 2): each step errs by O(h^3), so it is second order
    (measured 2.35 at 80-320 steps, falling). At 5-10 NFE both measured less accurate
    than dpmpp_2m (benchmarks/multistep_frontier.py).
    Warm-up: the first step is first order, the second DPM-Solver++(2M); with fewer
    than 15 visited timesteps the step before the final one is 2M too (diffusers'
    lower_order_final); the final step is the data prediction. Equivalences (tested):
    "published" is diffusers' DPMSolverMultistepScheduler(dpmsolver++, solver_order=3,
    final_sigmas_type="zero"); "exact" below 15 steps is unipc(order=3, corrector=False);
    with 2 or 3 visited timesteps either is dpmpp_2m. After
    a start at zero SNR (h_1 = inf) the third-order terms vanish: that step is 2M.
    ``generator`` is unused.
    ``afs=True`` takes the analytical first step: eps at the first timestep is x_T scaled to unit variance
    instead of a model call (:func:`~diffkit.samplers.model_calls.analytic_prediction`), so N timesteps
    cost N - 1 calls.
    """
    c = D2_FACTOR[check_choice("dpmpp_3m", "variant", variant, tuple(D2_FACTOR))]
    run = SamplerRun("dpmpp_3m", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond,
                    afs=afs)
    x0s: list[LinComb] = []  # newest first: x0 predictions,
    hs: list[float] = []  # and the steps in lambda between them
    for step in run.steps:
        p = run.predict(x, step)
        if step.final:  # to the data (sigma = 0): first order, the data prediction
            x = p.x0
            continue
        now, nxt, h = step.at, step.to, step.h
        order = min(3, len(x0s) + 1, 2 if len(run.steps) < FEW_STEPS and step.i == len(run.steps) - 2 else 3)
        x = (nxt.sigma / now.sigma) * p.x - nxt.alpha * math.expm1(-h) * p.x0
        if order >= 2:
            r0 = hs[0] / h
            D1_0 = (p.x0 - x0s[0]) / r0
            if order == 2:  # DPM-Solver++(2M), diffusers' "midpoint" form
                x = x - 0.5 * nxt.alpha * math.expm1(-h) * D1_0
            else:
                r1 = hs[1] / h
                D1_1 = (x0s[0] - x0s[1]) / r1
                D1 = D1_0 + r0 / (r0 + r1) * (D1_0 - D1_1)
                D2 = c / (r0 + r1) * (D1_0 - D1_1)
                x = x + nxt.alpha * (math.expm1(-h) / h + 1) * D1 - nxt.alpha * ((math.expm1(-h) + h) / h**2 - 0.5) * D2
        x0s, hs = [p.x0, *x0s][:2], [h, *hs][:2]
    return run.finish(x)
