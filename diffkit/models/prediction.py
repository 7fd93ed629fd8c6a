"""Any network as what samplers consume: its output and what that output predicts.

``from_prediction(model, prediction_type, schedule)`` returns a :class:`Predictor`,
a callable ``predictor(x, t, **cond) -> output`` whose ``prediction_type`` tells
the samplers how to read the output (see :mod:`diffkit.conversions`):

    "epsilon", "sample", "v_prediction", "flow"   the network's output as it is
    "edm"                                          a network F with EDM's preconditioning
                                                   (Karras et al. 2022, Table 1), read as x0:

        D(x; s) = c_skip x_k + c_out F(c_in x_k, c_noise),   x_k = x / alpha, s = sigma / alpha
        c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),
        c_in = 1 / sqrt(s^2 + sd^2),   c_noise = log(s) / 4              (sd = sigma_data)

The EDM denoiser works in k-diffusion's variance-exploding variables, so the
same network samples on an EDM schedule (alpha = 1) and on any other family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from diffkit.conversions import PREDICTION_TYPES, per_sample
from diffkit.schedules.base import Schedule

Model = Callable[..., torch.Tensor]
FROM_PREDICTION_TYPES = PREDICTION_TYPES + ("edm",)


class Predictor:
    """``model`` with the ``prediction_type`` of its output; calls pass straight through."""

    def __init__(self, model: Model, prediction_type: str) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable as model(x, t, **cond), got {type(model).__name__}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: {', '.join(PREDICTION_TYPES)}")
        self.model, self.prediction_type = model, prediction_type

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        return self.model(x, t, **cond)


class EDMPreconditioned(Predictor):
    """EDM's denoiser D around a network F (module docstring); its output is x0 ("sample")."""

    def __init__(self, model: Model, schedule: Schedule, sigma_data: float = 0.5) -> None:
        super().__init__(model, "sample")
        if not (isinstance(sigma_data, (int, float)) and math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be a finite number > 0, got {sigma_data!r}")
        self.schedule, self.sigma_data = schedule, float(sigma_data)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        alpha = self.schedule.alpha(t).to(x.device)
        s = (self.schedule.sigma(t).to(x.device) / alpha).to(torch.float64)
        sd = self.sigma_data
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1.0 / (s**2 + sd**2).sqrt()
        x_k = x / per_sample(alpha, x)
        out = self.model(per_sample(c_in, x) * x_k, (s.log() / 4).to(x.dtype), **cond)
        return per_sample(c_skip, x) * x_k + per_sample(c_out, x) * out


def from_prediction(model: Model, prediction_type: str, schedule: Schedule, *,
                    sigma_data: float | None = None) -> Predictor:
    """``model`` as samplers consume it, for a network that predicts ``prediction_type`` (module docstring).

    ``sigma_data`` (EDM preconditioning only) defaults to the schedule's (``EDM(sigma_data=...)``),
    else to EDM's 0.5.
    """
    if prediction_type == "edm":
        if sigma_data is None:
            sigma_data = getattr(schedule, "sigma_data", 0.5)
        return EDMPreconditioned(model, schedule, sigma_data)
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: {', '.join(FROM_PREDICTION_TYPES)}")
    return Predictor(model, prediction_type)
