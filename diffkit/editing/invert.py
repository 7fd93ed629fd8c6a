"""Inversion: the probability-flow ODE run backwards, from data to the noise that samples it (DDIM inversion)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from diffkit.editing.runs import SamplerFn, check_image, resolve, spacing_for
from diffkit.samplers.model_calls import Callback, EpsModel
from diffkit.samplers.timetable import Grid
from diffkit.schedules.base import Schedule
from diffkit.schedules.spacing import timesteps


def invert(
    eps_model: EpsModel,
    schedule: Schedule,
    x0: torch.Tensor,
    sampler: str | SamplerFn = "ddim",
    steps: int = 50,
    *,
    spacing: str | None = None,
    cond: Mapping[str, Any] | None = None,
    callback: Callback | None = None,
    **options: Any,
) -> torch.Tensor:
    """x_T such that sampling it with the same ``sampler``, ``steps`` and spacing gives back about ``x0``.

    The grid is the one ``diffkit.sample(..., steps)`` visits, t_0 > ... > t_{N-1}, walked up:
    ``x0`` stands for the state at the least noisy of them, t_{N-1} (t_min for the karras and
    logsnr spacings; sigma(t_min) = 0.01 on Linear), and N - 1 steps of the deterministic
    sampler take it to t_0 (DDIM inversion for ``ddim``; each solver's own update for the others,
    multistep histories included: ``dpmpp_2m``, ``heun``, ``dpmpp_3m_sde`` with eta=0).
    ``diffkit.sample(eps_model, schedule, sampler, steps, x=x_T, spacing=...)`` then retraces those
    N - 1 steps down and takes its final step to the data. Stochastic samplers (ddpm, eta > 0)
    are refused: noise cannot be drawn on the way up. Needs steps >= 2.
    """
    fn, sampler_spacing = resolve(sampler, options)
    x0 = check_image("x0", x0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"invert needs steps >= 2 (the grid's points; it walks steps - 1 steps up), got {steps!r}")
    up = timesteps(schedule, steps, spacing_for(schedule, spacing, sampler_spacing))[::-1]
    grid = Grid(up[:-1], end=up[-1])  # type: ignore[arg-type]  # Grid takes any 1-D array of times
    return fn(eps_model, x0, schedule, grid, callback=callback, cond=cond, **options)
