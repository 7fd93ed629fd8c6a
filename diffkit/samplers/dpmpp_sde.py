"""DPM++ SDE (k-diffusion ``sample_dpmpp_sde``; diffusers ``DPMSolverSDEScheduler``)."""

from __future__ import annotations

import math

import numpy as np

from diffkit.kernels.step_update import StepCoefficients, step_next, step_update
from diffkit.samplers.base import ancestral_split, check_eta, final_step, prepare, reusable
from diffkit.samplers.brownian import brownian_for


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
    eta = check_eta("dpmpp_sde", eta)
    if not 0.0 < r < 1.0:
        raise ValueError(f"dpmpp_sde: r must lie in (0, 1), got {r!r}")
    tab, model, x = prepare("dpmpp_sde", eps_model, x, schedule, timesteps, cond)
    if noise_sampler is None and eta > 0:
        noise_sampler = brownian_for(x, schedule, generator)
    fac = 0.5 / r
    # Midpoints lambda_s = lambda_t + r h of every step, looked up in one batch before the loop.
    lam_mid = np.array([tab.lam[i] + r * (tab.lam[i + 1] - tab.lam[i]) for i in range(len(tab) - 1)])
    t_mid = schedule.t_from_lambda(lam_mid)
    a_mid, s_mid, t_mid = schedule.alpha(t_mid).tolist(), schedule.sigma(t_mid).tolist(), t_mid.tolist()
    out_s = out_n = None  # dead tensors of the previous step, written over by the two stages
    for i, t in enumerate(tab.t):
        at, st = tab.alpha[i], tab.sigma[i]
        eps = model(x, t, i)
        x_t = x
        if i + 1 == len(tab):
            x, x0 = step_update(x, eps, final_step(at, st), out=out_s)
        else:
            lam_t, lam_n, lam_s = tab.lam[i], tab.lam[i + 1], lam_mid[i]
            t_s, a_s, s_s, an = t_mid[i], a_mid[i], s_mid[i], tab.alpha[i + 1]
            sk_t = math.exp(-lam_t)
            down, up = ancestral_split(sk_t, math.exp(-lam_s), eta)
            noise = noise_sampler(lam_t, lam_s) if up > 0 else None
            stage1 = StepCoefficients(alpha=at, sigma=st, cx=a_s * down / (sk_t * at), c0=a_s * (1 - down / sk_t),
                                      cn=a_s * up)
            x_s, x0 = step_update(x, eps, stage1, noise=noise, out=out_s)
            eps_s = model(x_s, t_s, i)
            down, up = ancestral_split(sk_t, math.exp(-lam_n), eta)
            noise = noise_sampler(lam_t, lam_n) if up > 0 else None
            stage2 = StepCoefficients(alpha=a_s, sigma=s_s, cx=an * down / (sk_t * at), c0=an * (1 - down / sk_t) * fac,
                                      c1=an * (1 - down / sk_t) * (1 - fac), cn=an * up)
            x = step_next(x_s, eps_s, stage2, prev=x0, noise=noise, base=x, out=out_n)  # x0 at s: not needed
            out_s = (x_s, x0) if reusable(callback, x_s, x0) else None
            out_n = x_t if i > 0 and reusable(callback, x_t) else None
        if callback is not None:
            callback(i, t, x_t, x0)
    model.check_finite()
    return x
