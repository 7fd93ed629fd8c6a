"""DPM-Solver++(2S) ancestral (Lu et al. 2022, "DPM-Solver++", Alg. 1; k-diffusion ``sample_dpmpp_2s_ancestral``)."""

from __future__ import annotations

import math

from diffkit.samplers.noise import ancestral_split
from diffkit.samplers.options import check_eta, check_noise_sampler
from diffkit.samplers.run import SamplerRun


def sample_dpmpp_2s_ancestral(
    eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, eta: float = 1.0,
    noise_sampler=None,
):
    """A DPM-Solver++(2S) step (midpoint r = 1/2) down to sigma_down, then fresh noise up; two calls per step.

    With the ancestral split (down, up) of sigma_k_t -> sigma_k_n, h = -log(down) - lambda_t
    and the midpoint s at lambda_s = lambda_t + h / 2:

        x_s = (sigma_s / sigma_t) x_t + alpha_s (1 - exp(-h/2)) x0_t
        x_n = (alpha_n down / sigma_t) x_t + alpha_n (1 - exp(-h)) x0_s + alpha_n up z

    (k-diffusion's update in y = x / alpha, multiplied by alpha). A step from zero SNR
    (h = inf) has no midpoint: it is Euler ancestral, x_n = alpha_n (x0_t + down eps_t + up z),
    as k-diffusion does where down = 0. The final step is the data prediction, so
    NFE = 2 steps - 1. Equivalences (tested): eta = 0 is the deterministic
    DPM-Solver++(2S), equal to ``dpmpp_sde`` with eta = 0 and r = 1/2. Noise: by default
    drawn from ``generator`` in the model output's dtype at every step but the final
    one, as k-diffusion's default randn_like(x) under ``torch.manual_seed`` (seed
    compatible); or from ``noise_sampler(lambda_t, lambda_n)``.
    """
    eta, noise_sampler = check_eta("dpmpp_2s_ancestral", eta), check_noise_sampler("dpmpp_2s_ancestral", noise_sampler)
    run = SamplerRun("dpmpp_2s_ancestral", eps_model, x, schedule, timesteps, generator=generator,
                     callback=callback, cond=cond)
    splits = [ancestral_split(math.exp(-s.at.lam), math.exp(-s.to.lam), eta) for s in run.steps[:-1]]
    finite = [s.i for s in run.steps[:-1] if math.isfinite(s.at.lam)]  # the midpoints, looked up in one batch
    mid = dict(zip(finite, run.points_at_lambda([(run.steps[i].at.lam - math.log(splits[i][0])) / 2
                                                  for i in finite])))
    for step in run.steps:
        p = run.predict(x, step)
        if step.final:  # to the data (sigma = 0): the data prediction
            x = p.x0
            continue
        now, nxt, (down, up) = step.at, step.to, splits[step.i]
        if step.i in mid:
            at_s, h = mid[step.i], -math.log(down) - now.lam
            x_s = (at_s.sigma / now.sigma) * p.x - at_s.alpha * math.expm1(-h / 2) * p.x0
            x = (nxt.alpha * down / now.sigma) * p.x - nxt.alpha * math.expm1(-h) * run.predict(x_s, at_s).x0
        else:  # from zero SNR: Euler to sigma_down
            x = nxt.alpha * p.x0 + nxt.alpha * down * p.eps
        if eta > 0:
            x = x + nxt.alpha * up * (run.randn(p.dtype) if noise_sampler is None else
                                      run.noise(noise_sampler, now.lam, nxt.lam))
    return run.finish(x)
