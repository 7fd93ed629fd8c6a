"""The contract every noise schedule satisfies; samplers, spacings and models read only this.

A schedule is a forward process on a time t in [t_min, t_max] (larger t: noisier):

    x_t = alpha(t) x0 + sigma(t) eps
    lambda(t) = log(alpha(t) / sigma(t))      half log-SNR, strictly decreasing in t
    sigma_k(t) = sigma(t) / alpha(t)           k-diffusion's sigma = exp(-lambda)

t is also what the model is called with: training timesteps for the discrete
schedules, sigma * T for flow matching (diffusers' convention), sigma itself for
EDM. Endpoints are exact: sigma > 0 on the whole domain (samplers end with one
named step to sigma = 0, the data), and alpha(t_max) may be 0 (zero terminal SNR,
flow matching), where lambda = -inf, not a small number standing in for it.

Every accessor takes a float, a NumPy array or a tensor and returns the same kind
(tensors as float64 on the input's device). Which timesteps a sampler visits is
:func:`diffkit.schedules.timesteps`, not a property of the schedule; a family with
its own grids (the discrete spacings, flow matching's shifted grid) provides them
through :meth:`Schedule.native_timesteps`.
"""

from __future__ import annotations

import math
from typing import TypeVar, cast

import numpy as np
import torch

TimeLike = float | np.ndarray | torch.Tensor
# An accessor returns the kind it is given: float -> float, ndarray -> ndarray, tensor -> tensor.
TimeT = TypeVar("TimeT", float, np.ndarray, torch.Tensor)


def to_tensor(value: TimeLike) -> torch.Tensor:
    """``value`` as a float64 tensor (on its device, for tensors)."""
    if isinstance(value, torch.Tensor):
        return value.to(torch.float64)
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def like(result: torch.Tensor, original: TimeT) -> TimeT:
    """``result`` as the kind of ``original``: tensor, NumPy array or float."""
    if isinstance(original, torch.Tensor):
        return cast(TimeT, result)
    if isinstance(original, np.ndarray):
        return cast(TimeT, result.numpy())
    return cast(TimeT, float(result))


class Schedule:
    """Base of every schedule family: subclasses are frozen dataclasses implementing the abstract accessors."""

    @property
    def default_spacing(self) -> str:
        """The family's own spacing: timesteps() without a spacing, and diffkit.sample where the sampler's
        default does not exist for this schedule (spacing.default_spacing)."""
        return "karras"

    @property
    def t_min(self) -> float:
        """The least noisy time a sampler may visit (sigma > 0 there)."""
        raise NotImplementedError

    @property
    def t_max(self) -> float:
        """The noisiest time, where sampling starts (alpha may be 0 there)."""
        raise NotImplementedError

    def alpha(self, t: TimeT) -> TimeT:
        """Signal scale alpha(t)."""
        raise NotImplementedError

    def sigma(self, t: TimeT) -> TimeT:
        """Noise scale sigma(t) > 0."""
        raise NotImplementedError

    def lambda_(self, t: TimeT) -> TimeT:
        """Half log-SNR lambda(t) = log(alpha / sigma); -inf where alpha = 0."""
        raise NotImplementedError

    def t_from_lambda(self, lam: TimeT) -> TimeT:
        """Inverse of :meth:`lambda_`, clamped to [t_min, t_max]."""
        raise NotImplementedError

    def native_timesteps(self, steps: int, spacing: str,
                         beta_shape: tuple[float, float] | None = None) -> np.ndarray | None:
        """This family's own grid named ``spacing`` (strictly decreasing, in the domain), or None if it has none.

        ``beta_shape`` is the beta spacing's Beta(a, b), for a family that renders that spacing itself."""
        return None

    native_spacings: tuple[str, ...] = ()  # the names native_timesteps knows

    # -- derived -----------------------------------------------------------------------

    def sigma_k(self, t: TimeT) -> TimeT:
        """k-diffusion's sigma_k(t) = sigma_t / alpha_t = exp(-lambda); inf where alpha = 0."""
        return like(torch.exp(-to_tensor(self.lambda_(to_tensor(t)))), t)

    def t_from_sigma_k(self, sigma_k: TimeT) -> TimeT:
        """Inverse of :meth:`sigma_k`, clamped to [t_min, t_max]."""
        return like(to_tensor(self.t_from_lambda(-torch.log(to_tensor(sigma_k)))), sigma_k)

    @property
    def zero_terminal_snr(self) -> bool:
        """Whether sampling starts from pure noise: alpha(t_max) = 0, lambda(t_max) = -inf."""
        return float(self.alpha(self.t_max)) == 0.0

    def check_time(self, t: np.ndarray, what: str = "timesteps") -> None:
        """ValueError unless every t is finite and within [t_min, t_max]."""
        if t.size and (not np.all(np.isfinite(t)) or t.min() < self.t_min or t.max() > self.t_max):
            raise ValueError(f"{what} must lie in [t_min, t_max]=[{self.t_min:g}, {self.t_max:g}] "
                             f"for {type(self).__name__}, got range [{t.min():g}, {t.max():g}]")

    # -- the forward process ---------------------------------------------------------

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0): x_t = alpha_t x0 + sigma_t noise, with t of shape [B] (integer or fractional)."""
        if x0.shape != noise.shape:
            raise ValueError(f"add_noise: x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} must have one shape")
        if not isinstance(t, torch.Tensor) or t.ndim != 1 or t.shape[0] != x0.shape[0]:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"add_noise: t must be a tensor of shape [B]=[{x0.shape[0]}], got {shape}")
        view = (-1,) + (1,) * (x0.ndim - 1)
        alpha = self.alpha(t).to(x0.dtype).view(view)
        sigma = self.sigma(t).to(x0.dtype).view(view)
        return alpha * x0 + sigma * noise.to(x0.dtype)


def check_schedule(schedule: object) -> Schedule:
    """``schedule`` if it is a :class:`Schedule`, else TypeError saying what is allowed."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a diffkit schedule (e.g. diffkit.schedules.Linear()), "
                        f"got {type(schedule).__name__}")
    return schedule


def log_alpha_sigma(lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log alpha, log sigma) of the variance-preserving process at half log-SNR ``lam``; exact at +-inf.

    alpha^2 = sigmoid(2 lam), sigma^2 = sigmoid(-2 lam), through log-sigmoid so that
    neither underflows before it must.
    """
    return 0.5 * torch.nn.functional.logsigmoid(2.0 * lam), 0.5 * torch.nn.functional.logsigmoid(-2.0 * lam)


def check_positive_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> None:
    """ValueError unless ``value`` is an integer in [minimum, maximum]."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum
            or (maximum is not None and value > maximum)):
        limit = f" and <= {maximum:,}" if maximum is not None else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{limit}, got {value!r}")


def check_finite_positive(name: str, value: object) -> float:
    """``value`` as a float, ValueError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)
