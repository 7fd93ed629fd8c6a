"""Model wrappers that present any network as a diffkit eps-model ``eps(x, t, **cond)``.

- :class:`EpsFromV` for v-prediction networks (eps = sigma_t x + alpha_t v),
- :class:`EpsFromX0` for x0-prediction networks (eps = (x - alpha_t x0) / sigma_t),
- :class:`ClassifierFreeGuidance`: eps_u + w (eps_c - eps_u) from ONE batched call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from diffkit.conversions import eps_from_v, eps_from_x0
from diffkit.schedules.base import Schedule

EpsModel = Callable[..., torch.Tensor]


class EpsFromV:
    """Wrap a v-prediction model ``v(x, t, **cond)`` as an eps-model."""

    def __init__(self, model: EpsModel, schedule: Schedule) -> None:
        self.model, self.schedule = model, schedule

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        v = self.model(x, t, **cond)
        return eps_from_v(x, v, self.schedule.alpha(t), self.schedule.sigma(t))


class EpsFromX0:
    """Wrap an x0-prediction model ``x0(x, t, **cond)`` as an eps-model."""

    def __init__(self, model: EpsModel, schedule: Schedule) -> None:
        self.model, self.schedule = model, schedule

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        x0 = self.model(x, t, **cond)
        return eps_from_x0(x, x0, self.schedule.alpha(t), self.schedule.sigma(t))


class ClassifierFreeGuidance:
    """eps = eps_u + scale * (eps_c - eps_u) (Ho & Salimans 2022), both branches in one batched call.

    ``uncond`` maps each conditioning keyword to its null value: a tensor shaped like
    the conditional one, or a scalar broadcast to it (e.g. ``{"y": num_classes}``
    for a label embedding with a reserved null class). scale=1 is the conditional
    model, scale=0 the unconditional one. The combination is linear, so it applies to
    whatever the model predicts (v, x0, ...), as diffusers' pipelines apply it; the
    model's ``prediction_type`` passes through.
    """

    def __init__(self, model: EpsModel, scale: float, uncond: Mapping[str, Any]) -> None:
        if not isinstance(scale, (int, float)) or isinstance(scale, bool):
            raise TypeError(f"guidance scale must be a number, got {type(scale).__name__}")
        self.model, self.scale, self.uncond = model, float(scale), dict(uncond)
        self.prediction_type = getattr(model, "prediction_type", "epsilon")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        missing = sorted(set(cond) - set(self.uncond))
        if missing or not cond:
            raise ValueError(
                f"classifier-free guidance needs a null value for every conditioning keyword; "
                f"got cond keys {sorted(cond)}, null values for {sorted(self.uncond)}"
            )
        both = {}
        for key, value in cond.items():
            null = self.uncond[key]
            null = null if isinstance(null, torch.Tensor) else torch.full_like(value, null)
            both[key] = torch.cat([value, null.expand_as(value).to(value.device)])
        eps_c, eps_u = self.model(torch.cat([x, x]), torch.cat([t, t]), **both).chunk(2)
        return eps_u + self.scale * (eps_c - eps_u)
