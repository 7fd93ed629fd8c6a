"""Heun (Karras et al. 2022, "Elucidating the Design Space", Algorithm 2; k-diffusion ``sample_heun``)."""

from __future__ import annotations

import dataclasses
import math

from diffkit.samplers.lincomb import LinComb
from diffkit.samplers.options import check_nonnegative
from diffkit.samplers.run import SamplerRun


def sample_heun(
    eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, s_churn: float = 0.0,
    s_tmin: float = 0.0, s_tmax: float = math.inf, s_noise: float = 1.0,
):
    """Heun's second-order method in sigma_k with EDM's optional churn; two model calls per step but the last.

    Churn (where s_tmin <= sigma_k_t <= s_tmax, all in sigma_k = sigma / alpha): raise the
    noise to sigma_k_hat = (1 + gamma) sigma_k_t, gamma = min(s_churn / N, sqrt(2) - 1) over N
    visited timesteps; with q = sigma_k_t / sigma_k_hat that is, at the point t_hat,

        x_hat = (sigma_hat / sigma_t) q x_t + sigma_hat sqrt(1 - q^2) s_noise z

    Then, since dy/dsigma_k = eps in y = x / alpha, Euler and Heun's correction (h from t_hat to n):

        x_2 = alpha_n x0_hat + sigma_n eps_hat                    (Euler = DDIM)
        x_n = x_2 + sigma_n (exp(h) - 1) / 2 (eps_hat - eps_2),    eps_2 predicted at (x_2, n)

    The final step to sigma = 0 is the data prediction (Euler, one call). A step from zero
    SNR (h = inf) has no correction: it is Euler (tested). sigma_k_hat is capped at the
    schedule's noisiest point, beyond which the model is undefined (k-diffusion would call
    it there anyway). Equivalences (tested): k-diffusion's ``sample_heun``. When s_churn > 0,
    noise is drawn from ``generator`` in the state's dtype at every step, the final one
    included, as k-diffusion draws randn_like(x) (seed compatible); s_churn = 0 draws none.
    """
    s_churn, s_tmin, s_noise = (check_nonnegative("heun", *kv) for kv in
                                (("s_churn", s_churn), ("s_tmin", s_tmin), ("s_noise", s_noise)))
    s_tmax = check_nonnegative("heun", "s_tmax", s_tmax, finite=False)
    if s_tmin > s_tmax:
        raise ValueError(f"heun: s_tmin must be <= s_tmax, got s_tmin={s_tmin!r} > s_tmax={s_tmax!r}")
    run = SamplerRun("heun", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond)
    gamma, lam_top = min(s_churn / len(run.steps), math.sqrt(2) - 1), float(schedule.lambda_(schedule.t_max))
    lam_hat = {s.i: max(s.at.lam - math.log1p(gamma), lam_top) for s in run.steps
               if gamma > 0 and s_tmin <= math.exp(-s.at.lam) <= s_tmax and s.at.lam > lam_top}
    hats = dict(zip(lam_hat, run.points_at_lambda(list(lam_hat.values()))))
    for step in run.steps:
        z = run.randn(run.dtype) if s_churn > 0 else None
        if step.i in hats and z is not None:  # churn: s_churn > 0, so z was drawn
            now, hat = step.at, hats[step.i]
            q = math.exp(hat.lam - now.lam)
            x = (hat.sigma / now.sigma) * q * LinComb.of(x) + hat.sigma * math.sqrt((1 - q) * (1 + q)) * s_noise * z
            step = dataclasses.replace(step, at=hat)  # the step now starts from the churned point
        p = run.predict(x, step)
        if step.final:  # to the data (sigma = 0): Euler, the data prediction
            x = p.x0
            continue
        nxt, h = step.to, step.h
        x = nxt.alpha * p.x0 + nxt.sigma * p.eps
        if math.isfinite(h):
            p_2 = run.predict(x, nxt)
            x = x + nxt.sigma * math.expm1(h) / 2 * (p.eps - p_2.eps)
    return run.finish(x)
