"""DPM-Solver++(3M) SDE (Lu et al. 2022, "DPM-Solver++", multistep; k-diffusion ``sample_dpmpp_3m_sde``)."""

from __future__ import annotations

import math

from diffkit.samplers.dpmpp_3m import D2_FACTOR
from diffkit.samplers.lincomb import LinComb
from diffkit.samplers.options import check_choice, check_eta, check_noise_sampler
from diffkit.samplers.run import SamplerRun


def sample_dpmpp_3m_sde(
    eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, eta: float = 1.0,
    noise_sampler=None, variant: str = "published",
):
    """Third-order multistep solver of the reverse SDE in the data prediction x0 (at eta = 0, of the ODE).

    With h = lambda_n - lambda_t, g = (1 + eta) h, phi_2 = (exp(-g) - 1) / g + 1, phi_3 = phi_2 / g - 1/2,
    earlier steps h_1, h_2 (r0 = h_1 / h, r1 = h_2 / h), d1_0 = (x0_t - x0_1) / r0, d1_1 = (x0_1 - x0_2) / r1:

        d1  = d1_0 + r0 / (r0 + r1) (d1_0 - d1_1),   d2 = (d1_0 - d1_1) / (r0 + r1)
        x_n = (sigma_n / sigma_t) exp(-eta h) x_t + alpha_n (1 - exp(-g)) x0_t
              + alpha_n (phi_2 d1 - c phi_3 d2) + sigma_n sqrt(1 - exp(-2 eta h)) z

    Lower orders while the history is short (d2 = 0 and d1 = d1_0; then no d terms). A step
    from zero SNR (h = inf) is first order and leaves no history (k-diffusion's limit r = inf).
    The final step is the data prediction. Equivalences (tested): eta = 0 is DPM-Solver++(3M),
    diffusers' DPMSolverMultistepScheduler(dpmsolver++, solver_order=3, solver_type="heun",
    lower_order_final=False) with variant "published". Order: d2 ~ h^2 x0'' / 2 wants c = 2
    (variant "exact": the integral of the quadratic through three x0, third order at eta = 0,
    tested), not c = 1 as in the authors' code, k-diffusion and diffusers (variant
    "published": second order asymptotically, tested). "published" stays the default here
    because with noise the second difference of the noisy x0 history amplifies it, twice as
    much with c = 2: on the 2-D mixture at 10-20 steps the sample covariance errs by
    1.56 / 0.20 (published) vs 2.00 / 0.31 (exact) on Linear, 7.8 / 2.9 vs 10.6 / 3.9 on Cosine.
    Noise as ``dpmpp_2m_sde``: float32 draws from ``generator`` at every step, the final one
    included, or ``noise_sampler(lambda_t, lambda_n)``.
    """
    eta, noise_sampler = check_eta("dpmpp_3m_sde", eta), check_noise_sampler("dpmpp_3m_sde", noise_sampler)
    c = D2_FACTOR[check_choice("dpmpp_3m_sde", "variant", variant, tuple(D2_FACTOR))]
    run = SamplerRun("dpmpp_3m_sde", eps_model, x, schedule, timesteps, generator=generator, callback=callback,
                     cond=cond)
    history: list[tuple[LinComb, float]] = []  # (x0, h) of the previous finite steps, newest first
    for step in run.steps:
        p = run.predict(x, step)
        z = run.randn() if noise_sampler is None and eta > 0 else None  # drawn on the final step too (seeds)
        if step.final:  # to the data (sigma = 0): the data prediction
            x = p.x0
            continue
        now, nxt, h = step.at, step.to, step.h
        eta_h = eta * h if eta > 0 else 0.0  # 0, not 0 * inf, from zero SNR
        g = h + eta_h
        x = (nxt.sigma / now.sigma) * math.exp(-eta_h) * p.x - nxt.alpha * math.expm1(-g) * p.x0
        if history:
            phi_2 = math.expm1(-g) / g + 1
            x0_1, r0 = history[0][0], history[0][1] / h
            d1 = d1_0 = (p.x0 - x0_1) * (1 / r0)
            if len(history) == 2:
                x0_2, r1 = history[1][0], history[1][1] / h
                d1_1 = (x0_1 - x0_2) * (1 / r1)
                d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) * (1 / (r0 + r1))
                x = x - nxt.alpha * c * (phi_2 / g - 0.5) * d2
            x = x + nxt.alpha * phi_2 * d1
        if noise_sampler is not None and eta > 0:
            z = run.noise(noise_sampler, now.lam, nxt.lam)
        if z is not None:
            x = x + nxt.sigma * math.sqrt(-math.expm1(-2.0 * eta_h)) * z
        if math.isfinite(h):
            history = [(p.x0, h)] + history[:1]
    return run.finish(x)
