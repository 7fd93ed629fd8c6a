"""What every editing function does before it runs a sampler: resolve it, check its options, pick the grid."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from diffkit.samplers.registry import get_sampler
from diffkit.schedules.base import Schedule
from diffkit.schedules.spacing import default_spacing

SamplerFn = Callable[..., torch.Tensor]


def resolve(sampler: str | SamplerFn, options: Mapping[str, Any]) -> tuple[SamplerFn, str]:
    """(the sampler function, its default spacing) for a registered name or a function; bad options refused."""
    if callable(sampler):
        return sampler, "karras"
    info = get_sampler(sampler)
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise ValueError(f"sampler {info.name!r} has no option(s) {', '.join(unknown)}; "
                         f"allowed: {', '.join(info.options) or 'none'}")
    if options.get("afs"):  # it takes x_t for pure noise; an edit starts from (noised) data
        raise ValueError("afs=True (the analytical first step) assumes sampling starts from pure noise at t_max; "
                         "editing starts from an image, so it is not available here")
    return info.fn, info.default_spacing


def spacing_for(schedule: Schedule, spacing: str | None, sampler_default: str) -> str:
    """``spacing``, or the sampler's default where the schedule has it (as ``diffkit.sample`` chooses)."""
    return spacing or default_spacing(schedule, sampler_default)


def check_image(name: str, x: object) -> torch.Tensor:
    """``x`` if it is a floating-point tensor [B, ...] with B >= 1, else TypeError naming ``name``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1 or x.shape[0] < 1:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor of shape [B, ...] with B >= 1, got {got}")
    return x

