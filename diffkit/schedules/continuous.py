"""The continuous variance-preserving SDE with linear beta(t) (Song et al. 2021, "Score-Based Generative
Modeling through SDEs", eq. 11 and 33; DPM-Solver's ``NoiseScheduleVP("linear")``).

    beta(t) = beta_min + t (beta_max - beta_min),   t in [t_min, 1]
    log alpha(t) = -m(t),  m(t) = (beta_max - beta_min) t^2 / 4 + beta_min t / 2   (= 1/2 int_0^t beta)
    sigma(t) = sqrt(1 - e^{-2m}),   lambda(t) = -m - log(1 - e^{-2m}) / 2

The inverse is closed form: 2m = log(1 + e^{-2 lambda}) =: L, and m(t) = L/2 is a
quadratic in t, t = 2L / (beta_min + sqrt(beta_min^2 + 2 (beta_max - beta_min) L))
(DPM-Solver's ``inverse_lambda``, written without cancellation).

The model is called with t in [t_min, 1]. Score-SDE's VP checkpoints take 999 t
(``labels = t * 999`` in its ``get_score_fn``) and return eps: wrap such a network
as ``lambda x, t: net(x, 999 * t)``. Sampling runs from t = 1 (alpha ~ 0.0066, not
zero SNR) to t_min = 1e-3, score-SDE's sampling epsilon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from diffkit.schedules.base import Schedule, TimeT, like, to_tensor

CONTINUOUS_SPACINGS = ("linspace",)


@dataclass(frozen=True)
class ContinuousVP(Schedule):
    """The VP SDE with linear beta(t) on t in [t_min, 1] (module docstring); score-SDE's defaults."""

    beta_min: float = 0.1  # beta(0)
    beta_max: float = 20.0  # beta(1)
    t_min: float = 1e-3  # least noisy time a sampler visits (score-SDE's sampling eps)

    native_spacings = CONTINUOUS_SPACINGS

    def __post_init__(self) -> None:
        numbers = {"beta_min": self.beta_min, "beta_max": self.beta_max, "t_min": self.t_min}
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"ContinuousVP: {name} must be a finite number, got {value!r}")
        if not 0.0 <= self.beta_min < self.beta_max:
            raise ValueError(f"ContinuousVP: need 0 <= beta_min < beta_max, got beta_min={self.beta_min!r}, "
                             f"beta_max={self.beta_max!r}")
        if not 0.0 < self.t_min < 1.0:
            raise ValueError(f"ContinuousVP: t_min must lie in (0, 1), got {self.t_min!r}")

    @property
    def t_max(self) -> float:
        return 1.0

    def _m(self, t: torch.Tensor) -> torch.Tensor:
        """m(t) = -log alpha(t)."""
        return 0.25 * (self.beta_max - self.beta_min) * t * t + 0.5 * self.beta_min * t

    def alpha(self, t: TimeT) -> TimeT:
        """alpha(t) = exp(-m(t))."""
        return like(torch.exp(-self._m(to_tensor(t))), t)

    def sigma(self, t: TimeT) -> TimeT:
        """sigma(t) = sqrt(1 - exp(-2 m(t))), through expm1 (accurate at small t)."""
        return like(torch.sqrt(-torch.expm1(-2.0 * self._m(to_tensor(t)))), t)

    def lambda_(self, t: TimeT) -> TimeT:
        """lambda(t) = -m - log(1 - e^{-2m}) / 2."""
        m = self._m(to_tensor(t))
        return like(-m - 0.5 * torch.log(-torch.expm1(-2.0 * m)), t)

    def t_from_lambda(self, lam: TimeT) -> TimeT:
        """The closed-form inverse of the module docstring, clamped to [t_min, 1]."""
        x = -2.0 * to_tensor(lam)
        L = torch.logaddexp(torch.zeros_like(x), x)  # log(1 + e^{-2 lambda}), without overflow
        b0 = self.beta_min
        t = 2.0 * L / (b0 + torch.sqrt(b0 * b0 + 2.0 * (self.beta_max - b0) * L))
        t = torch.where(L > 0, t, 0.0)  # lambda = +inf: t = 0 (0 / 0 above when beta_min = 0)
        return like(t.clamp(self.t_min, self.t_max), lam)

    def native_timesteps(self, steps: int, spacing: str,
                         beta_shape: tuple[float, float] | None = None) -> np.ndarray | None:
        """``linspace``: t uniform from 1 to t_min (score-SDE's samplers, DPM-Solver's "time_uniform")."""
        if spacing != "linspace":
            return None
        return np.linspace(self.t_max, self.t_min, steps)
