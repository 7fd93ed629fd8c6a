"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), respaced to any visited timesteps."""

from __future__ import annotations

import math

from diffkit.samplers.run import SamplerRun

VARIANCES = ("fixed_small", "fixed_large")


def sample_ddpm(
    eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, variance: str = "fixed_small"
):
    """Ancestral sampling from the posterior q(x_n | x_t, x0) between consecutive visited timesteps.

    With beta = sigma_t^2 (1 - exp(-2h)), h = lambda_n - lambda_t, the variance of
    q(x_t | x_n) (the effective beta of the respaced step, 1 - abar_t / abar_n, with
    variance-preserving schedules; this form holds in every family):

        x_n = alpha_n beta / sigma_t^2 * x0 + (alpha_t / alpha_n) sigma_n^2 / sigma_t^2 * x_t + std z
        std^2 = sigma_n^2 / sigma_t^2 * beta   ("fixed_small", the posterior variance beta~)
              = beta                           ("fixed_large")

    Ho et al. 2020 eq. 6-7 and Algorithm 2; respacing as Nichol & Dhariwal 2021
    sec. 4. On the full grid with fixed_small this equals DDIM with eta = 1.
    The final step returns the data prediction x0 with no noise. Noise is drawn in
    the model output's dtype at every other step, as diffusers' DDPMScheduler does
    with "leading" spacing (seed compatible).
    """
    if variance not in VARIANCES:
        raise ValueError(f"ddpm: unknown variance {variance!r}; allowed: {', '.join(VARIANCES)}")
    run = SamplerRun("ddpm", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond)
    for step in run.steps:
        p = run.predict(x, step)
        if step.final:  # to the data (sigma = 0): the posterior mean is x0, and there is no noise
            x = p.x0
            continue
        now, nxt = step.at, step.to
        beta = now.sigma**2 * -math.expm1(-2.0 * step.h)  # sigma_t^2 at zero SNR (h = inf)
        ratio = nxt.sigma**2 / now.sigma**2
        var = max(ratio * beta, 1e-20) if variance == "fixed_small" else beta
        x = ((nxt.alpha * beta / now.sigma**2) * p.x0 + (now.alpha / nxt.alpha) * ratio * p.x
             + var**0.5 * run.randn(p.dtype))
    return run.finish(x)
