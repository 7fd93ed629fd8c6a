"""DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16)."""

from __future__ import annotations

import math

from diffkit.kernels.step_update import StepCoefficients, step_next, step_update
from diffkit.samplers.base import check_eta, final_step, prepare, randn, reusable


def sample_ddim(eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, eta: float = 0.0):
    """DDIM with stochasticity eta in [0, 1]; returns the sample at sigma = 0.

    From t to the next visited timestep n:

        x0     = (x_t - sigma_t eps) / alpha_t
        s      = eta * (sigma_n / sigma_t) * sqrt(1 - abar_t / abar_n)
        x_n    = alpha_n x0 + sqrt(sigma_n^2 - s^2) eps + s z,     z ~ N(0, I)

    Equivalences (tested): eta = 0 is the deterministic DDIM, a first-order
    solver of the probability-flow ODE (DDIM = DPM-Solver-1); eta = 1 on the full
    grid is DDPM ancestral sampling with the posterior variance (``fixed_small``).
    For seed compatibility with diffusers' DDIMScheduler, noise is drawn in the
    model output's dtype at every step when eta > 0, the final one included.
    """
    eta = check_eta("ddim", eta)
    tab, model, x = prepare("ddim", eps_model, x, schedule, timesteps, cond)
    noise, out = None, None
    for i, t in enumerate(tab.t):
        at, st = tab.alpha[i], tab.sigma[i]
        eps = model(x, t, i)
        if i + 1 == len(tab):
            coeffs = final_step(at, st)
        else:
            an, sn = tab.alpha[i + 1], tab.sigma[i + 1]
            s = eta * (sn / st) * math.sqrt(-math.expm1(2.0 * math.log(at / an)))
            d = math.sqrt(sn * sn - s * s)  # weight of eps in x_n
            coeffs = StepCoefficients(alpha=at, sigma=st, cx=d / st, c0=an - d * at / st, cn=s)
        noise = randn(x.shape, generator, x.device, eps.dtype, out=noise) if eta > 0 else None
        if callback is None:  # nothing reads x0: x_next alone, into the state of two steps back
            x_t, x = x, step_next(x, eps, coeffs, noise=noise, out=out)
            out = x_t if i > 0 and reusable(None, x_t) else None
        else:
            x_t, (x, x0) = x, step_update(x, eps, coeffs, noise=noise)
            callback(i, t, x_t, x0)
    model.check_finite()
    return x
