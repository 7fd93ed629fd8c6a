"""DPM-Solver++(2M) SDE (Lu et al. 2022, sec. 5; k-diffusion ``sample_dpmpp_2m_sde``, midpoint)."""

from __future__ import annotations

import math

from diffkit.samplers.options import check_eta, check_noise_sampler
from diffkit.samplers.run import SamplerRun


def sample_dpmpp_2m_sde(
    eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, eta: float = 1.0,
    noise_sampler=None,
):
    """Second-order multistep solver of the reverse SDE in the data prediction x0.

    With h = lambda_n - lambda_t, r = h_prev / h and D as in DPM-Solver++(2M):

        x_n = (sigma_n / sigma_t) exp(-eta h) x_t + alpha_n (1 - exp(-(1 + eta) h)) D
              + sigma_n sqrt(1 - exp(-2 eta h)) z

    eta = 1 is diffusers' ``sde-dpmsolver++`` (and k-diffusion's default); eta = 0
    is exactly DPM-Solver++(2M) (tested). The final step is the data prediction.
    Noise: by default drawn from ``generator`` in float32 at every step, the final
    one included, as diffusers' scheduler does (seed compatible); or from
    ``noise_sampler(lambda_t, lambda_n)``, e.g. a :class:`BrownianNoise`.
    """
    eta, noise_sampler = check_eta("dpmpp_2m_sde", eta), check_noise_sampler("dpmpp_2m_sde", noise_sampler)
    run = SamplerRun("dpmpp_2m_sde", eps_model, x, schedule, timesteps, generator=generator, callback=callback,
                     cond=cond)
    x0_prev = h_prev = None
    for step in run.steps:
        p = run.predict(x, step)
        z = run.randn() if noise_sampler is None and eta > 0 else None  # drawn on the final step too (seeds)
        if step.final:  # to the data (sigma = 0): the data prediction
            x = p.x0
            continue
        now, nxt, h = step.at, step.to, step.h
        if x0_prev is None or h_prev is None:
            D = p.x0
        else:
            r = h_prev / h
            D = (1 + 1 / (2 * r)) * p.x0 - 1 / (2 * r) * x0_prev
        eta_h = eta * h if eta > 0 else 0.0  # 0, not 0 * inf, from zero SNR
        x = (nxt.sigma / now.sigma) * math.exp(-eta_h) * p.x - nxt.alpha * math.expm1(-(h + eta_h)) * D
        if noise_sampler is not None and eta > 0:
            z = run.noise(noise_sampler, now.lam, nxt.lam)
        if z is not None:
            x = x + nxt.sigma * math.sqrt(-math.expm1(-2.0 * eta_h)) * z
        x0_prev, h_prev = p.x0, h
    return run.finish(x)
