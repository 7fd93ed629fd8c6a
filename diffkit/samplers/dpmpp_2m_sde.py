"""DPM-Solver++(2M) SDE (Lu et al. 2022, sec. 5; k-diffusion ``sample_dpmpp_2m_sde``, midpoint)."""

from __future__ import annotations

import math

import torch

from diffkit.kernels.step_update import StepCoefficients, step_update
from diffkit.samplers.base import check_eta, final_step, prepare, randn, reusable


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
    eta = check_eta("dpmpp_2m_sde", eta)
    tab, model, x = prepare("dpmpp_2m_sde", eps_model, x, schedule, timesteps, cond)
    prev, h_prev, out, noise = None, None, None, None
    for i, t in enumerate(tab.t):
        at, st = tab.alpha[i], tab.sigma[i]
        eps = model(x, t, i)
        final = i + 1 == len(tab)
        if final:
            coeffs = final_step(at, st)
        else:
            an, sn = tab.alpha[i + 1], tab.sigma[i + 1]
            h = tab.lam[i + 1] - tab.lam[i]
            phi = -math.expm1(-(1.0 + eta) * h)
            w = 0.0 if prev is None else 0.5 * h / h_prev
            coeffs = StepCoefficients(
                alpha=at, sigma=st, cx=sn / st * math.exp(-eta * h), c0=an * phi * (1 + w), c1=-an * phi * w,
                cn=sn * math.sqrt(-math.expm1(-2.0 * eta * h)),
            )
            h_prev = h
        if noise_sampler is None and eta > 0:
            noise = randn(x.shape, generator, x.device, torch.float32, out=noise)
        elif noise_sampler is not None:
            noise = noise_sampler(tab.lam[i], tab.lam[i + 1]) if not final and eta > 0 else None
        x_t, prev_t = x, prev
        x, prev = step_update(x, eps, coeffs, prev=prev, noise=noise, out=out)
        if callback is not None:
            callback(i, t, x_t, prev)
        out = (x_t, prev_t) if i > 0 and reusable(callback, x_t, prev_t) else None  # dead: the next step writes there
    model.check_finite()
    return x
