"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), respaced to any visited timesteps."""

from __future__ import annotations

from diffkit.kernels.step_update import StepCoefficients, step_next, step_update
from diffkit.samplers.base import final_step, prepare, randn, reusable

VARIANCES = ("fixed_small", "fixed_large")


def sample_ddpm(
    eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, variance: str = "fixed_small"
):
    """Ancestral sampling from the posterior q(x_n | x_t, x0) between consecutive visited timesteps.

    With beta = 1 - abar_t / abar_n (the effective beta of the respaced step):

        x_n = alpha_n beta / sigma_t^2 * x0 + sqrt(1 - beta) sigma_n^2 / sigma_t^2 * x_t + std z
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
    tab, model, x = prepare("ddpm", eps_model, x, schedule, timesteps, cond)
    noise, out = None, None
    for i, t in enumerate(tab.t):
        at, st = tab.alpha[i], tab.sigma[i]
        eps = model(x, t, i)
        if i + 1 == len(tab):
            noise = None
            coeffs = final_step(at, st)
        else:
            an, sn = tab.alpha[i + 1], tab.sigma[i + 1]
            beta = 1.0 - (at / an) ** 2
            var = max(sn * sn / (st * st) * beta, 1e-20) if variance == "fixed_small" else beta
            coeffs = StepCoefficients(
                alpha=at, sigma=st, cx=(at / an) * sn * sn / (st * st), c0=an * beta / (st * st), cn=var**0.5
            )
            noise = randn(x.shape, generator, x.device, eps.dtype, out=noise)
        if callback is None:  # nothing reads x0: x_next alone, into the state of two steps back
            x_t, x = x, step_next(x, eps, coeffs, noise=noise, out=out)
            out = x_t if i > 0 and reusable(None, x_t) else None
        else:
            x_t, (x, x0) = x, step_update(x, eps, coeffs, noise=noise)
            callback(i, t, x_t, x0)
    model.check_finite()
    return x
