"""DPM++ SDE (k-diffusion ``sample_dpmpp_sde``; diffusers ``DPMSolverSDEScheduler``)."""

from __future__ import annotations

import math

from diffkit.samplers.brownian import brownian_for
from diffkit.samplers.noise import ancestral_split
from diffkit.samplers.options import check_eta, check_fraction, check_noise_sampler
from diffkit.samplers.run import SamplerRun


def sample_dpmpp_sde(
    eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, eta: float = 1.0,
    r: float = 0.5, noise_sampler=None,
):
    """Two-stage stochastic DPM-Solver++ (2S with ancestral noise), two model calls per step.

    In k-diffusion's variables (y = x / alpha, sigma_k = exp(-lambda)), from t to n
    with lambda_s = lambda_t + r h and ancestral splits (down, up) of t->s and t->n:

        y_s = (down_s / sigma_t) y_t + (1 - down_s / sigma_t) x0_t + up_s z_1
        D   = (1 - 1/(2r)) x0_t + 1/(2r) x0_s,           x0_s predicted at (y_s, s)
        y_n = (down_n / sigma_t) y_t + (1 - down_n / sigma_t) D + up_n z_2

    and x = alpha y maps back to the VP state. eta = 0 gives the deterministic
    DPM-Solver++(2S). The final step is the data prediction (one model call), so
    NFE = 2 steps - 1. Noise defaults to a :class:`BrownianNoise` seeded from
    ``generator``: the same seed gives consistent samples across step counts.
    """
    eta, noise_sampler = check_eta("dpmpp_sde", eta), check_noise_sampler("dpmpp_sde", noise_sampler)
    r = check_fraction("dpmpp_sde", "r", r)
    run = SamplerRun("dpmpp_sde", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond)
    if noise_sampler is None and eta > 0:
        noise_sampler = brownian_for(x, schedule, generator)
    # The intermediate points lambda_s = lambda_t + r h of every step, looked up in one batch. A step from
    # zero SNR (lambda_t = -inf, h = inf) has no intermediate point: it is first order (D = x0_t).
    finite = [s for s in run.steps[:-1] if math.isfinite(s.h)]
    mid = dict(zip((s.i for s in finite), run.points_at_lambda([s.at.lam + r * s.h for s in finite])))
    for step in run.steps:
        p = run.predict(x, step)
        if step.final:  # to the data (sigma = 0): the data prediction
            x = p.x0
            continue
        now, nxt = step.at, step.to
        sk_t = math.exp(-now.lam)  # inf at zero SNR; y_t / sigma_k_t = x_t / sigma_t stays finite
        D = p.x0
        if step.i in mid:
            at_s = mid[step.i]
            down, up = ancestral_split(sk_t, math.exp(-at_s.lam), eta)
            x_s = (at_s.alpha * down / now.sigma) * p.x + at_s.alpha * (1 - down / sk_t) * p.x0
            if up > 0:
                x_s = x_s + at_s.alpha * up * run.noise(noise_sampler, now.lam, at_s.lam)
            p_s = run.predict(x_s, at_s)
            D = (1 - 1 / (2 * r)) * p.x0 + 1 / (2 * r) * p_s.x0
        down, up = ancestral_split(sk_t, math.exp(-nxt.lam), eta)
        x = (nxt.alpha * down / now.sigma) * p.x + nxt.alpha * (1 - down / sk_t) * D
        if up > 0:
            x = x + nxt.alpha * up * run.noise(noise_sampler, now.lam, nxt.lam)
    return run.finish(x)
