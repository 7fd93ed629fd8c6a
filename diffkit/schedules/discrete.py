"""The three standard beta schedules, equal to diffusers' ``DDPMScheduler`` tables.

diffusers builds its betas in float32; these are float64 and agree within
float32 rounding (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diffkit.schedules.base import Schedule


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
class Linear(Schedule):
    """Ho et al. 2020: betas linear from beta_start to beta_end (diffusers ``beta_schedule="linear"``)."""

    num_train_timesteps: int = 1000  # T, the number of training timesteps
    beta_start: float = 1e-4  # beta_0
    beta_end: float = 0.02  # beta_{T-1}

    def __post_init__(self) -> None:
        self._check_num_train_timesteps()
        _check_beta_range("Linear", self.beta_start, self.beta_end)

    def _make_betas(self) -> np.ndarray:
        return np.linspace(self.beta_start, self.beta_end, self.num_train_timesteps)


@dataclass(frozen=True)
class ScaledLinear(Schedule):
    """Stable Diffusion's schedule: sqrt(beta) linear (diffusers ``beta_schedule="scaled_linear"``)."""

    num_train_timesteps: int = 1000  # T, the number of training timesteps
    beta_start: float = 0.00085  # beta_0
    beta_end: float = 0.012  # beta_{T-1}

    def __post_init__(self) -> None:
        self._check_num_train_timesteps()
        _check_beta_range("ScaledLinear", self.beta_start, self.beta_end)

    def _make_betas(self) -> np.ndarray:
        return np.linspace(math.sqrt(self.beta_start), math.sqrt(self.beta_end), self.num_train_timesteps) ** 2


@dataclass(frozen=True)
class Cosine(Schedule):
    """Nichol & Dhariwal 2021, eq. 17: abar(t) ∝ cos²((t/T + s)/(1 + s) · π/2), betas capped at max_beta.

    beta_i = min(1 - f((i+1)/T) / f(i/T), max_beta), as diffusers' ``squaredcos_cap_v2``.
    """

    num_train_timesteps: int = 1000  # T, the number of training timesteps
    s: float = 0.008  # offset keeping beta_0 away from zero
    max_beta: float = 0.999  # cap on each beta, avoiding the singularity at t = T

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
