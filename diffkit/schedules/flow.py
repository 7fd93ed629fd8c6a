"""Flow matching (rectified flow; SD3, Flux): the straight path from data to noise.

    x_t = (1 - sigma) x0 + sigma eps,   sigma = t / T in (0, 1]
    alpha = 1 - sigma,  lambda = log((1 - sigma) / sigma),  sigma_k = sigma / (1 - sigma)

The model time is t = sigma * T, diffusers' convention for SD3 (``timestep = sigma *
num_train_timesteps``; Flux's pipeline passes t / 1000 to its transformer, a model
wrapper's business). Sampling starts from pure noise: alpha(T) = 0 exactly and
lambda(T) = -inf, so the generic karras / logsnr spacings (which space sigma_k or
lambda between the ends) do not apply; the family's grid is ``shifted``.

The shift is a property of the grid, not of the forward process (alpha and sigma
do not depend on it). Resolution-dependent timestep shifting (Esser et al. 2024,
sec. 5.3.2) moves every sigma of a grid towards the noise:

    shift(u) = s u / (1 + (s - 1) u)                    static ``shift`` = s (SD3: 3.0)
    shift(u) = e^mu / (e^mu + 1/u - 1)                   dynamic ``mu`` (Flux; diffusers' "exponential")

and the second is the first with s = exp(mu). ``flux_mu`` computes mu from the
image sequence length as diffusers' Flux pipeline does.

The ``shifted`` grid of N steps is sigma_i = shift(u_i), u = linspace(1, 1/T, N):
uniform in the unshifted time from pure noise down to the least noisy training
time 1/T. That is diffusers' FlowMatchEulerDiscreteScheduler with dynamic shifting
(``mu``). With a static shift diffusers ends the linspace at shift(1/T) instead of
1/T and shifts again (diffusers issue #13243, open in 0.42.1), so its last sigma is
shift(shift(1/T)); here the shift is applied once (tests/test_schedule_families.py
measures both against the exact ODE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from diffkit.schedules.base import Schedule, TimeT, check_finite_positive, check_positive_int, like, to_tensor

FLOW_SPACINGS = ("shifted",)
MAX_FLOW_TIMESTEPS = 1_000_000  # T scales the model time only; beyond this a typo
MAX_ABS_MU = 700.0  # exp(mu) stays a finite, nonzero float64


def flux_mu(image_seq_len: int, base_seq_len: int = 256, max_seq_len: int = 4096, base_shift: float = 0.5,
            max_shift: float = 1.15) -> float:
    """Flux's dynamic shift: mu linear in the image sequence length (diffusers' ``calculate_shift``).

    mu = base_shift at base_seq_len and max_shift at max_seq_len (Flux.1: 256 and 4096
    tokens of 2x2 latent patches, i.e. 256x256 and 1024x1024 images).
    """
    check_positive_int("image_seq_len", image_seq_len)
    if not (isinstance(base_seq_len, int) and isinstance(max_seq_len, int) and 0 < base_seq_len < max_seq_len):
        raise ValueError(f"need integers 0 < base_seq_len < max_seq_len, got {base_seq_len!r}, {max_seq_len!r}")
    slope = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * slope + (base_shift - slope * base_seq_len)


@dataclass(frozen=True)
class FlowMatch(Schedule):
    """Flow matching, x_t = (1 - sigma) x0 + sigma eps with sigma = t / T (module docstring)."""

    num_train_timesteps: int = 1000  # T: the model time is sigma * T
    shift: float = 1.0  # static timestep shift s of the default grid (SD3: 3.0); 1 = none
    mu: float | None = None  # dynamic shift (Flux): the grid is shifted by s = exp(mu); excludes ``shift``

    default_spacing = "shifted"
    native_spacings = FLOW_SPACINGS

    def __post_init__(self) -> None:
        check_positive_int("num_train_timesteps", self.num_train_timesteps, 2, MAX_FLOW_TIMESTEPS)
        check_finite_positive("FlowMatch: shift", self.shift)
        if self.mu is not None:
            if isinstance(self.mu, bool) or not isinstance(self.mu, (int, float)) or not math.isfinite(self.mu):
                raise ValueError(f"FlowMatch: mu must be a finite number or None, got {self.mu!r}")
            if self.shift != 1.0:
                raise ValueError(f"FlowMatch: pass a static shift or a dynamic mu, not both (got shift={self.shift!r}, "
                                 f"mu={self.mu!r}); with mu the shift is exp(mu)")
            if abs(self.mu) > MAX_ABS_MU:
                raise ValueError(f"FlowMatch: mu must lie in [-{MAX_ABS_MU:g}, {MAX_ABS_MU:g}] (exp(mu) a float64 "
                                 f"shift), got {self.mu!r}")

    @property
    def grid_shift(self) -> float:
        """The shift s of the ``shifted`` grid: ``shift``, or exp(mu) with dynamic shifting."""
        return float(self.shift) if self.mu is None else math.exp(self.mu)

    def shifted(self, u: TimeT) -> TimeT:
        """shift(u) = s u / (1 + (s - 1) u) with s = :attr:`grid_shift` (u, shift(u) in [0, 1])."""
        s = self.grid_shift
        return s * u / (1.0 + (s - 1.0) * u)

    @property
    def t_min(self) -> float:
        """T shift(1/T): the least noisy time of the shifted training table (diffusers' ``sigmas[-1]``)."""
        T = self.num_train_timesteps
        return float(T * self.shifted(1.0 / T))

    @property
    def t_max(self) -> float:
        return float(self.num_train_timesteps)

    def sigma(self, t: TimeT) -> TimeT:
        """sigma(t) = t / T."""
        return like(to_tensor(t) / self.num_train_timesteps, t)

    def alpha(self, t: TimeT) -> TimeT:
        """alpha(t) = 1 - t / T; exactly 0 at t = T."""
        return like(1.0 - to_tensor(t) / self.num_train_timesteps, t)

    def lambda_(self, t: TimeT) -> TimeT:
        """lambda(t) = log(1 - sigma) - log(sigma); -inf at t = T."""
        s = to_tensor(t) / self.num_train_timesteps
        return like(torch.log1p(-s) - torch.log(s), t)

    def t_from_lambda(self, lam: TimeT) -> TimeT:
        """t = T sigmoid(-lambda) (sigma = 1 / (1 + e^lambda)), clamped to [t_min, T]."""
        t = self.num_train_timesteps * torch.sigmoid(-to_tensor(lam))
        return like(t.clamp(self.t_min, self.t_max), lam)

    def native_timesteps(self, steps: int, spacing: str,
                         beta_shape: tuple[float, float] | None = None) -> np.ndarray | None:
        """``shifted``: t_i = T shift(u_i), u = linspace(1, 1/T, steps) (module docstring)."""
        if spacing != "shifted":
            return None
        T = self.num_train_timesteps
        t = T * self.shifted(np.linspace(1.0, 1.0 / T, steps))
        t[0] = self.t_max  # shift(1) = 1, pinned against rounding
        if steps > 1:
            t[-1] = self.t_min
            if not np.all(np.diff(t) < 0):
                raise ValueError(f"FlowMatch: a grid shift of {self.grid_shift:g} squeezes {steps} steps onto "
                                 "duplicate float64 timesteps; use a smaller shift or fewer steps")
        return t
