"""Euler ancestral (k-diffusion ``sample_euler_ancestral``; diffusers ``EulerAncestralDiscreteScheduler``)."""

from __future__ import annotations

import math

from diffkit.samplers.noise import ancestral_split
from diffkit.samplers.options import check_eta, check_noise_sampler
from diffkit.samplers.run import SamplerRun


def sample_euler_ancestral(
    eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, eta: float = 1.0,
    noise_sampler=None,
):
    """An Euler step down to sigma_down, then fresh noise up to the next noise level.

    In k-diffusion's variables (y = x / alpha = x0 + sigma_k eps), with the
    ancestral split (down, up) of sigma_k_t -> sigma_k_n (``noise.ancestral_split``):

        y_n = x0 + down eps + up z,   i.e.   x_n = alpha_n x0 + alpha_n down eps + alpha_n up z

    Equivalences (tested): eta = 0 is Euler; on variance-preserving schedules
    (alpha^2 + sigma^2 = 1) it is DDIM with the same eta, draw for draw; eta = 1
    is diffusers' EulerAncestralDiscreteScheduler. From zero SNR (sigma_k_t = inf)
    down = sqrt(1 - eta^2) sigma_k_n and up = eta sigma_k_n. The final step is the
    data prediction. Noise: by default drawn from ``generator`` in the model
    output's dtype at every step, the final one included, as diffusers does (seed
    compatible; with a float64 model also k-diffusion's default under
    ``torch.manual_seed``); or from ``noise_sampler(lambda_t, lambda_n)``.
    """
    eta, noise_sampler = check_eta("euler_ancestral", eta), check_noise_sampler("euler_ancestral", noise_sampler)
    run = SamplerRun("euler_ancestral", eps_model, x, schedule, timesteps, generator=generator, callback=callback,
                     cond=cond)
    for step in run.steps:
        p = run.predict(x, step)
        z = run.randn(p.dtype) if noise_sampler is None and eta > 0 else None  # drawn on the final step too (seeds)
        if step.final:  # to the data (sigma = 0): the data prediction
            x = p.x0
            continue
        now, nxt = step.at, step.to
        down, up = ancestral_split(math.exp(-now.lam), math.exp(-nxt.lam), eta)
        x = nxt.alpha * p.x0 + nxt.alpha * down * p.eps
        if noise_sampler is not None and up > 0:
            z = run.noise(noise_sampler, now.lam, nxt.lam)
        if z is not None:
            x = x + nxt.alpha * up * z
    return run.finish(x)
