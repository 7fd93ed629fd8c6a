"""DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16)."""

from __future__ import annotations

import math

from diffkit.samplers.options import check_eta
from diffkit.samplers.run import SamplerRun


def sample_ddim(eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, eta: float = 0.0):
    """DDIM with stochasticity eta in [0, 1]; returns the sample at sigma = 0.

    From t to the next visited timestep n:

        x0     = (x_t - sigma_t eps) / alpha_t
        s      = eta * sigma_n * sqrt(1 - exp(-2h)),                 h = lambda_n - lambda_t
        x_n    = alpha_n x0 + sqrt(sigma_n^2 - s^2) eps + s z,     z ~ N(0, I)

    s is eta times the standard deviation of q(x_n | x_t, x0); with variance-preserving
    schedules it is the paper's eta (sigma_n / sigma_t) sqrt(1 - abar_t / abar_n), and the
    form in h holds in every family (flow matching, EDM).

    Equivalences (tested): eta = 0 is the deterministic DDIM, a first-order
    solver of the probability-flow ODE (DDIM = DPM-Solver-1); eta = 1 on the full
    grid is DDPM ancestral sampling with the posterior variance (``fixed_small``).
    For seed compatibility with diffusers' DDIMScheduler, noise is drawn in the
    model output's dtype at every step when eta > 0, the final one included.
    """
    eta = check_eta("ddim", eta)
    run = SamplerRun("ddim", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond)
    for step in run.steps:
        p = run.predict(x, step)
        z = run.randn(p.dtype) if eta > 0 else None
        if step.final:  # to the data (sigma = 0): the data prediction
            x = p.x0
            continue
        nxt = step.to
        s = eta * nxt.sigma * math.sqrt(-math.expm1(-2.0 * step.h)) if eta > 0 else 0.0  # h = inf: eta sigma_n
        x = nxt.alpha * p.x0 + math.sqrt(nxt.sigma**2 - s**2) * p.eps
        if z is not None:
            x = x + s * z
    return run.finish(x)
