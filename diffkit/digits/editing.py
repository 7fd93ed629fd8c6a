"""Editing held-out digits with the embedded model: img2img towards a class, inpainting under a mask.

What ``diffkit edit`` and ``diffkit inpaint`` run (:mod:`diffkit.editing` does the work). Masks
for the 8x8 digits are named by the region that is repainted (``MASKS``), or written out as
64 characters 0/1 in row order, 1 where the input is kept.
"""

from __future__ import annotations

import torch

from diffkit.digits.data import RESOLUTION, load_digits
from diffkit.digits.evaluate import guided_model
from diffkit.editing import img2img, inpaint
from diffkit.schedules import Schedule

MASKS = ("top", "bottom", "left", "right", "center", "random")  # the region repainted


def heldout_inputs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` held-out digits [n, 1, 8, 8] in [-1, 1] and their labels [n]."""
    data = load_digits("heldout")
    if not 1 <= n <= len(data):
        raise ValueError(f"n must be in [1, {len(data)}] (the held-out digits), got {n}")
    return data.images[:n], data.labels[:n]


def digit_mask(spec: str, seed: int = 0) -> torch.Tensor:
    """The mask [1, 1, 8, 8] (1 = keep) for a name in ``MASKS`` (the region repainted) or 64 characters 0/1."""
    r = RESOLUTION
    keep = torch.ones(r, r)
    half = r // 2
    if spec == "top":
        keep[:half] = 0
    elif spec == "bottom":
        keep[half:] = 0
    elif spec == "left":
        keep[:, :half] = 0
    elif spec == "right":
        keep[:, half:] = 0
    elif spec == "center":
        keep[half // 2 : half // 2 + half, half // 2 : half // 2 + half] = 0
    elif spec == "random":
        keep = (torch.rand(r, r, generator=torch.Generator().manual_seed(seed)) < 0.5).float()
    elif len(spec) == r * r and set(spec) <= {"0", "1"}:
        keep = torch.tensor([float(c) for c in spec]).view(r, r)
    else:
        raise ValueError(f"mask must be one of {', '.join(MASKS)} (the region repainted) or {r * r} characters "
                         f"0/1 in row order (1 = keep), got {spec!r}")
    return keep.view(1, 1, r, r)


def edit_digits(model: torch.nn.Module, schedule: Schedule, images: torch.Tensor, labels: torch.Tensor,
                strength: float, *, sampler: str = "dpmpp_2m", steps: int = 20, guidance: float = 2.0,
                seed: int = 0) -> torch.Tensor:
    """``images`` edited towards ``labels`` at ``strength`` (``diffkit.img2img``), in [-1, 1]."""
    eps_model = guided_model(model, schedule, guidance)
    with torch.inference_mode():
        out = img2img(eps_model, schedule, images, strength, sampler, steps, torch.Generator().manual_seed(seed),
                      cond={"y": labels})
    return out.clamp(-1, 1)


def inpaint_digits(model: torch.nn.Module, schedule: Schedule, images: torch.Tensor, mask: torch.Tensor,
                   labels: torch.Tensor | None = None, *, sampler: str = "dpmpp_2m", steps: int = 20,
                   resample: int = 1, jump: int = 1, guidance: float = 2.0, seed: int = 0) -> torch.Tensor:
    """``images`` kept where ``mask`` is 1 and repainted elsewhere (``diffkit.inpaint``), in [-1, 1].

    ``labels`` None: the unconditional model (the null label), which must read the class from
    the known pixels; else the class-conditional model at classifier-free guidance ``guidance``.
    """
    if labels is None:
        eps_model, labels = guided_model(model, schedule, 0.0), torch.zeros(len(images), dtype=torch.long)
    else:
        eps_model = guided_model(model, schedule, guidance)
    with torch.inference_mode():
        out = inpaint(eps_model, schedule, images, mask, sampler, steps, resample,
                      torch.Generator().manual_seed(seed), jump=jump, cond={"y": labels})
    return out.clamp(-1, 1)
