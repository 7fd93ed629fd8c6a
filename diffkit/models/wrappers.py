"""Model wrappers that present any network as a diffkit eps-model ``eps(x, t, **cond)``.

- :class:`EpsFromV` for v-prediction networks (eps = sigma_t x + alpha_t v),
- :class:`EpsFromX0` for x0-prediction networks (eps = (x - alpha_t x0) / sigma_t),
- :class:`ClassifierFreeGuidance` (defined in :mod:`diffkit.models.guidance`, importable from here too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from diffkit.conversions import eps_from_v, eps_from_x0
from diffkit.models.guidance import ClassifierFreeGuidance
from diffkit.schedules.base import Schedule

EpsModel = Callable[..., torch.Tensor]
__all__ = ["ClassifierFreeGuidance", "EpsFromV", "EpsFromX0"]


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
