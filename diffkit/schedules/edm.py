"""EDM (Karras et al. 2022): variance exploding, parameterised by the noise level itself.

    x_t = x0 + sigma eps,   sigma = t in [sigma_min, sigma_max]
    alpha = 1,  lambda = -log sigma,  sigma_k = sigma

The time is sigma, so the model is called with sigma itself (EDM's and k-diffusion's
denoisers take sigma; EDM's preconditioning, ``from_prediction(net, "edm", schedule)``,
turns it into c_noise = log(sigma) / 4 and reads ``sigma_data`` from this schedule).
The default spacing is ``karras`` (Karras et al. 2022, eq. 5, rho = 7) between
sigma_max and sigma_min: EDM's own time steps, before its final step to sigma = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffkit.schedules.base import Schedule, TimeT, check_finite_positive, like, to_tensor


@dataclass(frozen=True)
class EDM(Schedule):
    """Variance exploding with t = sigma (module docstring); EDM's defaults (Table 1)."""

    sigma_min: float = 0.002  # least noise a sampler visits
    sigma_max: float = 80.0  # noise level where sampling starts (x_T = sigma_max * N(0, I))
    sigma_data: float = 0.5  # standard deviation of the data, for EDM's preconditioning

    default_spacing = "karras"

    def __post_init__(self) -> None:
        lo = check_finite_positive("EDM: sigma_min", self.sigma_min)
        hi = check_finite_positive("EDM: sigma_max", self.sigma_max)
        check_finite_positive("EDM: sigma_data", self.sigma_data)
        if not lo < hi:
            raise ValueError(f"EDM: need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min!r}, "
                             f"sigma_max={self.sigma_max!r}")

    @property
    def t_min(self) -> float:
        return float(self.sigma_min)

    @property
    def t_max(self) -> float:
        return float(self.sigma_max)

    def alpha(self, t: TimeT) -> TimeT:
        """alpha = 1."""
        return like(torch.ones_like(to_tensor(t)), t)

    def sigma(self, t: TimeT) -> TimeT:
        """sigma(t) = t."""
        return like(to_tensor(t), t)

    def lambda_(self, t: TimeT) -> TimeT:
        """lambda(t) = -log t."""
        return like(-torch.log(to_tensor(t)), t)

    def t_from_lambda(self, lam: TimeT) -> TimeT:
        """t = exp(-lambda), clamped to [sigma_min, sigma_max]."""
        return like(torch.exp(-to_tensor(lam)).clamp(self.t_min, self.t_max), lam)
