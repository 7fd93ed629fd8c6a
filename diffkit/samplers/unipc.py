"""UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework", arXiv:2302.04867, B(h) variants)."""

from __future__ import annotations

import math

from diffkit.samplers.lincomb import LinComb
from diffkit.samplers.multistep import unipc_rhos
from diffkit.samplers.options import check_choice, check_order
from diffkit.samplers.run import SamplerRun

VARIANTS = ("bh1", "bh2")


def sample_unipc(eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None,
                 order: int = 2, variant: str = "bh2", corrector: bool = True, afs: bool = False):
    """UniP-p predictor and UniC corrector in the data prediction x0, multistep in lambda; deterministic.

    From x_0 (at lambda_0, prediction m_0) to n with h = lambda_n - lambda_0, earlier
    predictions m_k at r_k = (lambda_k - lambda_0) / h, D_k = (m_k - m_0) / r_k,
    B(h) = -h ("bh1") or e^-h - 1 ("bh2") and rho from ``unipc_rhos``:

        base  = (sigma_n / sigma_0) x_0 - alpha_n (e^-h - 1) m_0
        x_n   = base - alpha_n B(h) sum_k rho_p,k D_k                             (UniP)
        x_n^c = base - alpha_n B(h) (sum_k rho_c,k D_k + rho_c,p (m_n - m_0))       (UniC)

    where m_n is the model at the predicted x_n, evaluated anyway for the next step:
    the corrector costs no model call (x_n^c is computed as x_n plus the difference).
    Order p = min(order, i + 1, steps - i) (warm-up and diffusers' lower_order_final);
    earlier points at zero SNR (lambda = -inf) do not count, and "bh1" skips the
    corrector after an infinite step (B = -inf). The final step is the data
    prediction at the uncorrected state. Measured order: p + 1 with the corrector, p
    without (order 3 + UniC: 4.5); order 2 and bh2 measured best at 5-10 NFE, bh1 2-4x
    worse there (benchmarks/multistep_frontier.py). Equivalences (tested): diffusers'
    UniPCMultistepScheduler(predict_x0=True, solver_type, solver_order,
    final_sigmas_type="zero", disable_corrector = every step without corrector);
    without corrector (bh2) order 1 is DDIM, order 2 dpmpp_2m, order 3 below 15 steps
    dpmpp_3m "exact".
    ``afs=True`` takes the analytical first step: eps at the first timestep is x_T scaled to unit variance
    instead of a model call (:func:`~diffkit.samplers.model_calls.analytic_prediction`), so N timesteps
    cost N - 1 calls.
    """
    order = check_order("unipc", order, 3)
    variant = check_choice("unipc", "variant", variant, VARIANTS)
    corrector = check_choice("unipc", "corrector", corrector, (True, False))
    run = SamplerRun("unipc", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond,
                    afs=afs)
    m: list[LinComb] = []  # newest first
    lams: list[float] = []
    pending = None  # what the corrector needs from the last step
    for step in run.steps:
        p = run.predict(x, step)
        x = p.x
        if pending is not None and not step.final:  # UniC: swap the predictor's terms for the corrector's
            D, coeff, rho_p, rho_c, m0 = pending
            x = x - coeff * rho_c[-1] * (p.x0 - m0)
            for rp, rc, D_k in zip(rho_p, rho_c, D):
                x = x + coeff * (rp - rc) * D_k
        if step.final:  # to the data (sigma = 0): the data prediction
            x = p.x0
            continue
        now, nxt, h = step.at, step.to, step.h
        m, lams = [p.x0, *m][:order], [now.lam, *lams][:order]
        p_order = min(order, step.i + 1, len(run.steps) - step.i, 1 + sum(map(math.isfinite, lams[1:])))
        r = [(lam - now.lam) / h for lam in lams[1:p_order]]
        D = [(m_k - p.x0) / r_k for m_k, r_k in zip(m[1:p_order], r)]
        B = -h if variant == "bh1" else math.expm1(-h)
        rho_p, rho_c = unipc_rhos(r, h, B, p_order)
        x = (nxt.sigma / now.sigma) * x - nxt.alpha * math.expm1(-h) * p.x0
        for rho, D_k in zip(rho_p, D):
            x = x - (nxt.alpha * B) * rho * D_k
        pending = (D, nxt.alpha * B, rho_p, rho_c, p.x0) if corrector and math.isfinite(B) else None
    return run.finish(x)
