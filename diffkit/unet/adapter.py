"""Present a diffusers ``UNet2DModel`` as a diffkit eps-model ``eps(x, t, **cond)``.

The network may predict eps, v or x0 -- diffusers keeps that choice in the
*scheduler's* ``prediction_type``, so the caller passes it here. Non-eps outputs
are converted with ``diffkit.conversions`` at the schedule's (alpha_t, sigma_t):

    v_prediction:  eps = sigma_t x + alpha_t v
    sample:        eps = (x - alpha_t x0) / sigma_t
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from diffkit.conversions import eps_from_v, eps_from_x0

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


class AlphaSigmaSchedule(Protocol):
    """What the adapter needs from a schedule: float64 [B] coefficients at float t [B]."""

    def alpha(self, t: torch.Tensor) -> torch.Tensor: ...

    def sigma(self, t: torch.Tensor) -> torch.Tensor: ...


class DiffusersEpsModel(nn.Module):
    """``eps_model(x, t, y=None)`` backed by a diffusers ``UNet2DModel`` (``y`` becomes its ``class_labels``).

    Its output is always eps (``prediction_type`` "epsilon", what samplers read); what the network
    itself predicts is ``network_prediction_type``.

    ``t`` is a float tensor [B] in training-timestep units; diffusers' sinusoidal embedding accepts
    fractional timesteps (models with ``time_embedding_type="learned"`` need integer t).
    """

    prediction_type = "epsilon"  # what forward returns (samplers read it), whatever the network predicts

    def __init__(
        self, unet: nn.Module, schedule: AlphaSigmaSchedule | None = None, *, prediction_type: str = "epsilon"
    ) -> None:
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: {list(PREDICTION_TYPES)}")
        if prediction_type != "epsilon" and schedule is None:
            raise ValueError(
                f"prediction_type {prediction_type!r} needs a schedule (alpha_t, sigma_t) to convert to eps"
            )
        self.unet = unet  # the diffusers UNet2DModel
        self.schedule = schedule  # gives alpha(t), sigma(t); only used for non-eps prediction types
        self.network_prediction_type = prediction_type  # what the network predicts: one of PREDICTION_TYPES

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, **cond: Any) -> torch.Tensor:
        if cond:
            raise TypeError(f"unexpected conditioning {sorted(cond)}; a UNet2DModel takes only y (class labels)")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        out = self.unet(x, t, class_labels=y).sample
        if self.network_prediction_type == "epsilon":
            return out
        alpha, sigma = self.schedule.alpha(t), self.schedule.sigma(t)
        if self.network_prediction_type == "v_prediction":
            return eps_from_v(x, out, alpha, sigma)
        return eps_from_x0(x, out, alpha, sigma)
