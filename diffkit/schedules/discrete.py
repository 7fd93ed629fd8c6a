"""Discrete variance-preserving schedules (DDPM): betas over T training timesteps, equal to diffusers' tables.

A schedule is defined by its betas beta_0..beta_{T-1}; everything else derives
from them (see :mod:`diffkit.schedules.base` for the contract):

    abar_t = prod_{s<=t} (1 - beta_s)     alpha_t = sqrt(abar_t)
    sigma_t = sqrt(1 - abar_t)            lambda_t = log(alpha_t / sigma_t)

t is the training timestep, in [0, T-1]. diffusers builds its betas in float32;
these are float64 and agree within float32 rounding (tested).

Continuous time. Samplers may visit fractional t (Karras or log-SNR spacings,
the intermediate stage of DPM++ SDE). The rule, as in k-diffusion's discrete
wrappers: log sigma_k (= -lambda) is piecewise linear in t between integer
timesteps: exact at integer t, strictly monotone, invertible in closed form on
each segment. With zero terminal SNR (Lin et al. 2023, ``rescale_zero_terminal_snr``)
the last segment ends at sigma_k = inf; there alpha is linear in t instead, from
alpha_{T-2} down to exactly 0 at T-1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from diffkit.schedules.base import Schedule, TimeT, check_positive_int, like, log_alpha_sigma, to_tensor

# Upper bound on T, checked before any table is built: the tables cost ~32 bytes per timestep, so a
# stored schedule cannot ask for gigabytes (num_train_timesteps=10**9 in a file's metadata). Trained
# models use T = 1000 to 4000.
MAX_TRAIN_TIMESTEPS = 100_000
DISCRETE_SPACINGS = ("leading", "trailing", "linspace")


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Lin et al. 2023, Algorithm 1: shift and scale sqrt(abar) so that abar_{T-1} = 0 and abar_0 is kept."""
    root = np.sqrt(np.exp(np.cumsum(np.log1p(-betas))))
    first, last = root[0], root[-1]
    root = (root - last) * (first / (first - last))
    abar = root**2
    return 1.0 - np.concatenate([abar[:1], abar[1:] / abar[:-1]])


class DiscreteVP(Schedule):
    """Base of the beta schedules: subclasses are frozen dataclasses implementing ``_make_betas``."""

    num_train_timesteps: int
    rescale_zero_terminal_snr: bool

    def _make_betas(self) -> np.ndarray:
        raise NotImplementedError

    def _check_num_train_timesteps(self) -> None:
        check_positive_int("num_train_timesteps", self.num_train_timesteps, 2, MAX_TRAIN_TIMESTEPS)
        if not isinstance(self.rescale_zero_terminal_snr, bool):
            raise ValueError(f"rescale_zero_terminal_snr must be True or False, got {self.rescale_zero_terminal_snr!r}")

    @property
    def t_min(self) -> float:
        return 0.0

    @property
    def t_max(self) -> float:
        return float(self.num_train_timesteps - 1)

    @cached_property
    def betas(self) -> np.ndarray:
        """beta_t for t = 0..T-1, float64, read-only (beta_{T-1} = 1 exactly with zero terminal SNR)."""
        betas = np.asarray(self._make_betas(), dtype=np.float64)
        if not (np.all(betas > 0) and np.all(betas < 1)):
            raise ValueError(
                f"{type(self).__name__}: every beta must lie in (0, 1); got range "
                f"[{betas.min():.3g}, {betas.max():.3g}]"
            )
        if self.rescale_zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
            betas[-1] = 1.0  # exactly: abar_{T-1} = 0 is the point of the rescaling
        betas.setflags(write=False)
        return betas

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        """abar_t for t = 0..T-1, float64, read-only; computed in log space for accuracy."""
        with np.errstate(divide="ignore"):  # log1p(-1) = -inf: abar_{T-1} = 0 with zero terminal SNR
            abar = np.exp(np.cumsum(np.log1p(-self.betas)))
        if not abar[-2] > 0 or not (abar[-1] > 0 or self.rescale_zero_terminal_snr):
            raise ValueError(f"{type(self).__name__}: abar underflows to 0 in float64; the betas are too large for T")
        abar.setflags(write=False)
        return abar

    @cached_property
    def _log_sigma_k(self) -> torch.Tensor:
        # log sigma_k = 0.5 log((1 - abar) / abar), strictly increasing in t (+inf at T-1 with zero SNR).
        abar = self.alphas_cumprod
        with np.errstate(divide="ignore"):
            return torch.from_numpy(0.5 * (np.log(-np.expm1(np.log(abar))) - np.log(abar)))

    @cached_property
    def _last_alpha(self) -> float:
        """alpha_{T-2}: where the linear-in-alpha last segment starts (zero terminal SNR only)."""
        return math.sqrt(self.alphas_cumprod[-2])

    # -- the contract ------------------------------------------------------------------

    def lambda_(self, t: TimeT) -> TimeT:
        """Half log-SNR lambda(t) = -log sigma_k(t), by the interpolation rule of the module docstring."""
        tt = to_tensor(t)
        table = self._log_sigma_k.to(tt.device)
        T = self.num_train_timesteps
        lo = tt.clamp(0, T - 1).floor().clamp(max=T - 2)
        w = tt.clamp(0, T - 1) - lo
        i = lo.long()
        if not self.rescale_zero_terminal_snr:
            return like(-(table[i] + w * (table[i + 1] - table[i])), t)
        last = i == T - 2
        inner = -(table[i] + torch.where(last, 0.0, w) * (table[(i + 1).clamp(max=T - 2)] - table[i]))
        alpha = self._last_alpha * (1.0 - w)  # the last segment: alpha linear, 0 at T-1
        with np.errstate(divide="ignore"):
            outer = torch.log(alpha) - 0.5 * torch.log1p(-alpha * alpha)
        return like(torch.where(last, outer, inner), t)

    def alpha(self, t: TimeT) -> TimeT:
        """alpha(t) = sqrt(sigmoid(2 lambda)); exactly 0 at T-1 with zero terminal SNR."""
        return like(log_alpha_sigma(to_tensor(self.lambda_(to_tensor(t))))[0].exp(), t)

    def sigma(self, t: TimeT) -> TimeT:
        """sigma(t) = sqrt(1 - abar(t)) = sqrt(sigmoid(-2 lambda)), accurate at both ends."""
        return like(log_alpha_sigma(to_tensor(self.lambda_(to_tensor(t))))[1].exp(), t)

    def abar(self, t: TimeT) -> TimeT:
        """abar(t) = alpha_t^2 = sigmoid(2 lambda)."""
        return like(torch.sigmoid(2.0 * to_tensor(self.lambda_(to_tensor(t)))), t)

    def t_from_lambda(self, lam: TimeT) -> TimeT:
        """Inverse of :meth:`lambda_`, clamped to [0, T-1]."""
        ls = -to_tensor(lam)
        table = self._log_sigma_k.to(ls.device)
        T = self.num_train_timesteps
        finite = table[: T - 1] if self.rescale_zero_terminal_snr else table
        top = len(finite) - 1
        i = (torch.searchsorted(finite, ls.contiguous(), right=True) - 1).clamp(0, max(top - 1, 0))
        w = (ls - finite[i]) / (finite[i + 1] - finite[i]) if top > 0 else torch.zeros_like(ls)
        t = (i + w).clamp(0, top)
        if self.rescale_zero_terminal_snr:  # beyond T-2: invert alpha = alpha_{T-2} (1 - w)
            alpha = log_alpha_sigma(-ls)[0].exp()
            t = torch.where(ls > finite[-1], (T - 2) + (1.0 - alpha / self._last_alpha).clamp(0, 1), t)
        return like(t, lam)

    def t_from_sigma(self, sigma: TimeT) -> TimeT:
        """Inverse of :meth:`sigma` (sigma in (0, 1]), clamped to [0, T-1]."""
        s = to_tensor(sigma)
        lam = 0.5 * torch.log1p(-s * s) - torch.log(s)
        return like(to_tensor(self.t_from_lambda(lam)), sigma)

    native_spacings = DISCRETE_SPACINGS

    @property
    def default_spacing(self) -> str:
        """karras; trailing with zero terminal SNR (Lin et al. 2023, sec. 3.3: start from the last timestep)."""
        return "trailing" if self.rescale_zero_terminal_snr else "karras"

    def native_timesteps(self, steps: int, spacing: str,
                         beta_shape: tuple[float, float] | None = None) -> np.ndarray | None:
        """diffusers' integer grids, and ComfyUI's simple and beta (of ``beta_shape``) on integer timesteps (see
        :mod:`diffkit.schedules.spacing`); None for other spacings, and for beta where rounding would repeat."""
        if spacing == "beta":
            from diffkit.schedules.spacing import BETA_SHAPE, beta_fractions  # spacing imports this module

            t = np.rint(beta_fractions(steps, beta_shape or BETA_SHAPE) * (self.num_train_timesteps - 1))
            return t if steps == 1 or np.all(np.diff(t) < 0) else None
        if spacing not in DISCRETE_SPACINGS + ("simple",):
            return None
        if spacing == "leading" and steps == 1:
            raise ValueError("spacing 'leading' with steps=1 visits only t=0, so the sample would be the starting "
                             "noise; use steps >= 2 or another spacing (trailing, linspace, karras, logsnr)")
        T = self.num_train_timesteps
        if steps > T:
            raise ValueError(f"spacing {spacing!r} visits integer timesteps: steps must be <= T={T}, got {steps}")
        k = np.arange(steps, dtype=np.float64)
        if spacing == "simple":  # ComfyUI: sigmas[-(1 + int(k * (T / steps)))], rounding as it rounds
            return (T - 1) - np.floor(k * (T / steps))
        if steps == T:
            return np.arange(T - 1, -1, -1, dtype=np.float64)
        if spacing == "leading":
            return (k * (T // steps))[::-1].copy()
        if spacing == "trailing":
            return np.round(T - k * (T / steps)) - 1
        return np.round(np.linspace(0, T - 1, steps + 1))[::-1][:-1].copy()


def _check_real(name: str, field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: {field} must be a real number, got {type(value).__name__} {value!r}")


def _check_beta_range(name: str, beta_start: float, beta_end: float) -> None:
    _check_real(name, "beta_start", beta_start)
    _check_real(name, "beta_end", beta_end)
    if not (0.0 < beta_start < beta_end < 1.0):
        raise ValueError(
            f"{name}: need 0 < beta_start < beta_end < 1, got beta_start={beta_start!r}, beta_end={beta_end!r}"
        )


@dataclass(frozen=True)
class Linear(DiscreteVP):
    """Ho et al. 2020: betas linear from beta_start to beta_end (diffusers ``beta_schedule="linear"``)."""

    num_train_timesteps: int = 1000  # T, the number of training timesteps
    beta_start: float = 1e-4  # beta_0
    beta_end: float = 0.02  # beta_{T-1}
    rescale_zero_terminal_snr: bool = False  # Lin et al. 2023: rescale so that abar_{T-1} = 0

    def __post_init__(self) -> None:
        self._check_num_train_timesteps()
        _check_beta_range("Linear", self.beta_start, self.beta_end)

    def _make_betas(self) -> np.ndarray:
        return np.linspace(self.beta_start, self.beta_end, self.num_train_timesteps)


@dataclass(frozen=True)
class ScaledLinear(DiscreteVP):
    """Stable Diffusion's schedule: sqrt(beta) linear (diffusers ``beta_schedule="scaled_linear"``)."""

    num_train_timesteps: int = 1000  # T, the number of training timesteps
    beta_start: float = 0.00085  # beta_0
    beta_end: float = 0.012  # beta_{T-1}
    rescale_zero_terminal_snr: bool = False  # Lin et al. 2023: rescale so that abar_{T-1} = 0

    def __post_init__(self) -> None:
        self._check_num_train_timesteps()
        _check_beta_range("ScaledLinear", self.beta_start, self.beta_end)

    def _make_betas(self) -> np.ndarray:
        return np.linspace(math.sqrt(self.beta_start), math.sqrt(self.beta_end), self.num_train_timesteps) ** 2


@dataclass(frozen=True)
class Cosine(DiscreteVP):
    """Nichol & Dhariwal 2021, eq. 17: abar(t) ∝ cos²((t/T + s)/(1 + s) · π/2), betas capped at max_beta.

    beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta), as diffusers' ``squaredcos_cap_v2``.
    """

    num_train_timesteps: int = 1000  # T, the number of training timesteps
    s: float = 0.008  # offset keeping beta_0 away from zero
    max_beta: float = 0.999  # cap on each beta, avoiding the singularity at t = T
    rescale_zero_terminal_snr: bool = False  # Lin et al. 2023: rescale so that abar_{T-1} = 0

    def __post_init__(self) -> None:
        self._check_num_train_timesteps()
        _check_real("Cosine", "s", self.s)
        _check_real("Cosine", "max_beta", self.max_beta)
        if not (math.isfinite(self.s) and self.s >= 0):
            raise ValueError(f"Cosine: s must be a finite number >= 0, got {self.s!r}")
        if not (0.0 < self.max_beta < 1.0):
            raise ValueError(f"Cosine: max_beta must lie in (0, 1), got {self.max_beta!r}")

    def _make_betas(self) -> np.ndarray:
        T = self.num_train_timesteps
        u = np.arange(T + 1, dtype=np.float64) / T
        f = np.cos((u + self.s) / (1 + self.s) * math.pi / 2) ** 2
        return np.minimum(1 - f[1:] / f[:-1], self.max_beta)
