"""Standard-normal draws for the stochastic samplers, seed compatible with diffusers.

``randn`` draws exactly as diffusers' ``randn_tensor`` does, so a seed gives the
same samples in diffkit as in a diffusers pipeline; ``ancestral_split`` divides an
ancestral step into its deterministic and noise parts. Brownian-tree noise, whose
path does not depend on the step count, is :mod:`diffkit.samplers.brownian`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

GeneratorArg = torch.Generator | Sequence[torch.Generator] | None


def check_generator(generator: GeneratorArg, batch: int) -> list[torch.Generator] | None:
    """``generator`` as a list (one, or one per sample), None for torch's global generator; else an error."""
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        return [generator]
    if isinstance(generator, Sequence) and not isinstance(generator, str) and generator \
            and all(isinstance(g, torch.Generator) for g in generator):
        if len(generator) not in (1, batch):
            raise ValueError(f"got {len(generator)} generators for a batch of {batch}; pass one, or one per sample")
        return list(generator)
    raise TypeError(f"generator must be a torch.Generator or a non-empty list of them, got {type(generator).__name__}")


def randn(
    shape: torch.Size | tuple[int, ...],
    generator: GeneratorArg,
    device: torch.device,
    dtype: torch.dtype,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Standard normals drawn exactly as diffusers' ``randn_tensor`` draws them (seed compatibility).

    A list of generators draws sample k from generator k (so sample k does not depend
    on the batch size); a CPU generator with a CUDA tensor draws on the CPU and copies.
    ``out`` (a tensor of ``shape``, ``dtype`` on ``device``) receives the same values
    instead of a fresh tensor: a sampler run passes a buffer of its workspace.
    """
    shape = tuple(shape)
    gens = check_generator(generator, shape[0])
    if out is not None and (tuple(out.shape) != shape or out.dtype != dtype or out.device != device):
        raise ValueError(f"out must be a {dtype} tensor of shape {shape} on {device}, got {out.dtype} "
                         f"{tuple(out.shape)} on {out.device}")
    if gens is None:
        return torch.randn(shape, device=device, dtype=dtype, out=out)
    kinds = {g.device.type for g in gens}
    if len(kinds) > 1 or not kinds <= {"cpu", device.type}:
        raise ValueError(
            f"generators on {sorted(kinds)} cannot draw noise for a tensor on {device}; "
            f"use CPU generators (noise is then copied) or generators on {device.type}"
        )
    draw_device = torch.device("cpu") if gens[0].device.type == "cpu" else device
    direct = out if draw_device == device else None  # drawn straight into out, else drawn, then copied
    if len(gens) == 1:
        z = torch.randn(shape, generator=gens[0], device=draw_device, dtype=dtype, out=direct)
    else:
        rows = [torch.randn((1,) + shape[1:], generator=g, device=draw_device, dtype=dtype) for g in gens]
        z = torch.cat(rows, out=direct)
    if z.device == device:
        return z
    return z.to(device) if out is None else out.copy_(z)


def ancestral_split(sigma_from: float, sigma_to: float, eta: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step in k-diffusion's sigma_k (``get_ancestral_step``).

    sigma_up = min(sigma_to, eta sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2)),
    sigma_down = sqrt(sigma_to^2 - sigma_up^2).

    Written as sigma_to^2 (1 - (sigma_to / sigma_from)^2), which takes its limit eta sigma_to
    when a step starts from zero SNR (sigma_from = inf).
    """
    if sigma_to > sigma_from:
        raise ValueError("an ancestral step draws noise, so it only denoises: a grid that goes up in noise "
                         "(inversion) needs a deterministic sampler")
    up = min(sigma_to, eta * sigma_to * math.sqrt(1.0 - (sigma_to / sigma_from) ** 2))
    return math.sqrt(sigma_to**2 - up**2), up
