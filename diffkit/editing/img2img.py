"""Image-to-image (SDEdit, Meng et al. 2022): noise the input part of the way, then sample from there."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from diffkit.editing.runs import SamplerFn, check_image, resolve, spacing_for
from diffkit.samplers.model_calls import Callback, EpsModel
from diffkit.samplers.noise import GeneratorArg, randn
from diffkit.samplers.run import state_dtype
from diffkit.schedules.base import Schedule
from diffkit.schedules.spacing import timesteps_from


def noise_fraction(schedule: Schedule, t: float) -> float:
    """sigma_vp(t) = sigma / sqrt(alpha^2 + sigma^2) = sigmoid(-2 lambda)^(1/2): x_t's noise share, in (0, 1]."""
    lam = float(schedule.lambda_(t))  # -inf at zero SNR: the share is 1
    return 1.0 / math.sqrt(1.0 + math.exp(min(2.0 * lam, 700.0)))


def start_time(schedule: Schedule, strength: float) -> float:
    """The time where an edit of ``strength`` starts: the noise reaches that fraction of its range.

    The noise is sigma_vp = sigma / sqrt(alpha^2 + sigma^2) (sigma itself for variance-preserving
    schedules; it depends on t only through lambda, so one strength means one signal-to-noise
    ratio in every family), and its range is [sigma_vp(t_min), sigma_vp(t_max)]:

        sigma_vp(t_start) = sigma_vp(t_min) + strength * (sigma_vp(t_max) - sigma_vp(t_min))
        t_start = t_from_lambda(log(1 - sigma_vp^2) / 2 - log sigma_vp)

    strength = 1 is t_max exactly. ValueError unless strength is a number in (0, 1].
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be a number in (0, 1] (the fraction of the schedule's noise range to "
                         f"start from; 1 = pure sampling), got {strength!r}")
    if strength == 1.0:
        return float(schedule.t_max)
    lo, hi = noise_fraction(schedule, schedule.t_min), noise_fraction(schedule, schedule.t_max)
    s = lo + strength * (hi - lo)
    lam = 0.5 * math.log1p(-s * s) - math.log(s)
    return float(np.clip(schedule.t_from_lambda(lam), schedule.t_min, schedule.t_max))


def img2img(
    eps_model: EpsModel,
    schedule: Schedule,
    x0: torch.Tensor,
    strength: float,
    sampler: str | SamplerFn = "dpmpp_2m",
    steps: int = 20,
    generator: GeneratorArg = None,
    *,
    spacing: str | None = None,
    cond: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    **options: Any,
) -> torch.Tensor:
    """Edit ``x0``: noise it to the time of ``strength`` (:func:`start_time`), then ``steps`` sampler steps.

    The run visits ``steps`` timesteps from t_start (the sampler's spacing there:
    :func:`diffkit.schedules.spacing.timesteps_from`) and then steps to the data, as
    ``diffkit.sample`` does from t_max; it is one fresh sampler call, so a multistep
    sampler starts its history at t_start. The noise is the generator's first draw,
    ``x_start = add_noise(x0, z, t_start)``; the sampler's own draws follow from the same
    generator. So strength = 1 is plain sampling from ``add_noise(x0, z, t_max)`` (the same
    grid, the same later draws), and small strengths return nearly ``x0``.
    """
    fn, sampler_spacing = resolve(sampler, options)
    x0 = check_image("x0", x0)
    t_start = start_time(schedule, strength)
    ts = timesteps_from(schedule, steps, spacing_for(schedule, spacing, sampler_spacing), t_start)
    z = randn(x0.shape, generator, x0.device, state_dtype(x0))
    x = schedule.add_noise(x0.to(z.dtype), z, torch.full((x0.shape[0],), t_start, dtype=torch.float64,
                                                          device=x0.device))
    return fn(eps_model, x, schedule, ts, generator=generator, callback=callback, cond=cond, **options)
