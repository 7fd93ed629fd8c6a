"""Euler (Karras et al. 2022, "Elucidating the Design Space", Alg. 2 without churn; k-diffusion ``sample_euler``)."""

from __future__ import annotations

from diffkit.samplers.run import SamplerRun


def sample_euler(eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None):
    """Euler's method on the probability-flow ODE in k-diffusion's variables, deterministic.

    In y = x / alpha and sigma_k = sigma / alpha the ODE is dy/dsigma_k = (y - x0) / sigma_k = eps,
    so y_t = x0 + sigma_k_t eps and one Euler step to sigma_k_n is y_n = x0 + sigma_k_n eps.
    Multiplied by alpha_n (alpha_n sigma_k_n = sigma_n):

        x_n = alpha_n x0 + sigma_n eps
            = (sigma_n / sigma_t) x_t + alpha_n (1 - exp(-h)) x0

    Equivalences (tested): this is DDIM with eta = 0 and DPM-Solver++1, on every
    schedule; results equal k-diffusion's ``sample_euler`` (s_churn = 0) and
    diffusers' EulerDiscreteScheduler. Valid from zero SNR (no division by
    alpha_t). The final step to sigma = 0 is the data prediction.
    ``generator`` is accepted for the common signature and unused.
    """
    run = SamplerRun("euler", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond)
    for step in run.steps:
        p = run.predict(x, step)
        if step.final:  # to the data (sigma = 0): the data prediction
            x = p.x0
            continue
        x = step.to.alpha * p.x0 + step.to.sigma * p.eps
    return run.finish(x)
