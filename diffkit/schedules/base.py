"""Discrete variance-preserving noise schedules as immutable float64 value objects.

A schedule is defined by its betas beta_0..beta_{T-1}; everything else derives
from them (see diffkit.conversions for the notation):

    abar_t = prod_{s<=t} (1 - beta_s)     alpha_t = sqrt(abar_t)
    sigma_t = sqrt(1 - abar_t)            lambda_t = log(alpha_t / sigma_t)

Continuous time. Samplers may visit fractional t in [0, T-1] (Karras or
log-SNR spacings, the intermediate stage of DPM++ SDE). The rule, as in
k-diffusion's discrete wrappers: log sigma_k (= -lambda) is piecewise linear in
t between integer timesteps. It is therefore exact at integer t, strictly
monotone, and invertible in closed form on each segment. Every accessor takes a
float, a NumPy array or a tensor and returns the same kind (tensors as float64
on the input's device); inverses clamp to [0, T-1].
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

TimeLike = float | np.ndarray | torch.Tensor

# Upper bound on T, checked before any table is built: the tables cost ~32 bytes per timestep, so a
# stored schedule cannot ask for gigabytes (num_train_timesteps=10**9 in a file's metadata). Trained
# models use T = 1000 to 4000.
MAX_TRAIN_TIMESTEPS = 100_000


def _to_tensor(value: TimeLike) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(torch.float64)
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def _like(result: torch.Tensor, original: TimeLike) -> TimeLike:
    if isinstance(original, torch.Tensor):
        return result
    if isinstance(original, np.ndarray):
        return result.numpy()
    return float(result)


class Schedule:
    """Base class: subclasses are frozen dataclasses implementing ``_make_betas``."""

    num_train_timesteps: int

    def _make_betas(self) -> np.ndarray:
        raise NotImplementedError

    def _check_num_train_timesteps(self) -> None:
        T = self.num_train_timesteps
        if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or not 2 <= T <= MAX_TRAIN_TIMESTEPS:
            raise ValueError(f"num_train_timesteps must be an integer in [2, {MAX_TRAIN_TIMESTEPS}], got {T!r}")

    @cached_property
    def betas(self) -> np.ndarray:
        """beta_t for t = 0..T-1, float64, read-only."""
        betas = np.asarray(self._make_betas(), dtype=np.float64)
        if not (np.all(betas > 0) and np.all(betas < 1)):
            raise ValueError(
                f"{type(self).__name__}: every beta must lie in (0, 1); got range "
                f"[{betas.min():.3g}, {betas.max():.3g}]"
            )
        betas.setflags(write=False)
        return betas

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        """abar_t for t = 0..T-1, float64, read-only; computed in log space for accuracy."""
        abar = np.exp(np.cumsum(np.log1p(-self.betas)))
        if not abar[-1] > 0:
            raise ValueError(f"{type(self).__name__}: abar underflows to 0 in float64; the betas are too large for T")
        abar.setflags(write=False)
        return abar

    @cached_property
    def _log_sigma_k(self) -> torch.Tensor:
        # log sigma_k = 0.5 log((1 - abar) / abar), strictly increasing in t.
        abar = self.alphas_cumprod
        return torch.from_numpy(0.5 * (np.log(-np.expm1(np.log(abar))) - np.log(abar)))

    # -- continuous-time accessors -------------------------------------------------

    def log_sigma_k(self, t: TimeLike) -> TimeLike:
        """log sigma_k(t) = -lambda(t), piecewise linear between integer t (the interpolation rule)."""
        tt = _to_tensor(t)
        table = self._log_sigma_k.to(tt.device)
        T = self.num_train_timesteps
        lo = tt.clamp(0, T - 1).floor().clamp(max=T - 2)
        w = tt - lo
        i = lo.long()
        return _like(table[i] + w * (table[i + 1] - table[i]), t)

    def lambda_(self, t: TimeLike) -> TimeLike:
        """Half log-SNR lambda(t) = log(alpha_t / sigma_t)."""
        return _like(-_to_tensor(self.log_sigma_k(_to_tensor(t))), t)

    def abar(self, t: TimeLike) -> TimeLike:
        """abar(t) = alpha_t^2 = sigmoid(2 lambda)."""
        return _like(torch.sigmoid(2.0 * _to_tensor(self.lambda_(_to_tensor(t)))), t)

    def alpha(self, t: TimeLike) -> TimeLike:
        """alpha(t) = sqrt(abar(t))."""
        return _like(torch.sigmoid(2.0 * _to_tensor(self.lambda_(_to_tensor(t)))).sqrt(), t)

    def sigma(self, t: TimeLike) -> TimeLike:
        """sigma(t) = sqrt(1 - abar(t)) = sqrt(sigmoid(-2 lambda)), accurate at both ends."""
        return _like(torch.sigmoid(-2.0 * _to_tensor(self.lambda_(_to_tensor(t)))).sqrt(), t)

    def sigma_k(self, t: TimeLike) -> TimeLike:
        """k-diffusion's sigma_k(t) = sigma_t / alpha_t = exp(-lambda)."""
        return _like(_to_tensor(self.log_sigma_k(_to_tensor(t))).exp(), t)

    def t_from_lambda(self, lam: TimeLike) -> TimeLike:
        """Inverse of :meth:`lambda_`, clamped to [0, T-1]."""
        ls = -_to_tensor(lam)
        table = self._log_sigma_k.to(ls.device)
        T = self.num_train_timesteps
        i = (torch.searchsorted(table, ls.contiguous(), right=True) - 1).clamp(0, T - 2)
        w = (ls - table[i]) / (table[i + 1] - table[i])
        return _like((i + w).clamp(0, T - 1), lam)

    def t_from_sigma(self, sigma: TimeLike) -> TimeLike:
        """Inverse of :meth:`sigma` (sigma in (0, 1)), clamped to [0, T-1]."""
        s = _to_tensor(sigma)
        lam = 0.5 * torch.log1p(-s * s) - torch.log(s)
        return _like(_to_tensor(self.t_from_lambda(lam)), sigma)

    def t_from_sigma_k(self, sigma_k: TimeLike) -> TimeLike:
        """Inverse of :meth:`sigma_k`, clamped to [0, T-1]."""
        return _like(_to_tensor(self.t_from_lambda(-torch.log(_to_tensor(sigma_k)))), sigma_k)

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
