"""Every conversion between parameterisations, in one place.

NOTATION (used throughout diffkit, code and docs)
-------------------------------------------------
``abar_t``   cumulative product of (1 - beta) up to timestep t
``alpha_t``  sqrt(abar_t)                      signal scale of x_t
``sigma_t``  sqrt(1 - abar_t)                  noise scale of x_t
``lambda_t`` log(alpha_t / sigma_t)            half log-SNR, decreasing in t
``h``        lambda_next - lambda_t            step size in lambda (> 0 when denoising)
``sigma_k``  sigma_t / alpha_t = exp(-lambda_t) k-diffusion's (variance-exploding) sigma

The forward process is ``x_t = alpha_t x0 + sigma_t eps``. From it:

    x0    = (x_t - sigma_t eps) / alpha_t
    eps   = (x_t - alpha_t x0) / sigma_t
    v     = alpha_t eps - sigma_t x0          (Salimans & Ho 2022)
    eps   = sigma_t x_t + alpha_t v
    x0    = alpha_t x_t - sigma_t v
    score = grad log p(x_t) = -eps / sigma_t

``alpha`` and ``sigma`` may be Python floats or tensors of shape [B]; tensors
are broadcast over the trailing dimensions of ``x``.
"""

from __future__ import annotations

import math

import torch

Scale = float | torch.Tensor


def per_sample(coeff: Scale, x: torch.Tensor) -> Scale:
    """Reshape a [B] coefficient to [B, 1, ..., 1] so it broadcasts against ``x``; floats pass through."""
    if isinstance(coeff, torch.Tensor):
        return coeff.to(x.dtype).reshape(coeff.shape + (1,) * (x.ndim - coeff.ndim))
    return coeff


def x0_from_eps(x: torch.Tensor, eps: torch.Tensor, alpha: Scale, sigma: Scale) -> torch.Tensor:
    """x0 = (x - sigma eps) / alpha."""
    return (x - per_sample(sigma, x) * eps) / per_sample(alpha, x)


def eps_from_x0(x: torch.Tensor, x0: torch.Tensor, alpha: Scale, sigma: Scale) -> torch.Tensor:
    """eps = (x - alpha x0) / sigma."""
    return (x - per_sample(alpha, x) * x0) / per_sample(sigma, x)


def eps_from_v(x: torch.Tensor, v: torch.Tensor, alpha: Scale, sigma: Scale) -> torch.Tensor:
    """eps = sigma x + alpha v, for v = alpha eps - sigma x0."""
    return per_sample(sigma, x) * x + per_sample(alpha, x) * v


def v_from_eps(x: torch.Tensor, eps: torch.Tensor, alpha: Scale, sigma: Scale) -> torch.Tensor:
    """v = alpha eps - sigma x0 = (eps - sigma x) / alpha."""
    return (eps - per_sample(sigma, x) * x) / per_sample(alpha, x)


def score_from_eps(eps: torch.Tensor, sigma: Scale) -> torch.Tensor:
    """Score of the noisy marginal: grad_x log p_t(x) = -eps / sigma."""
    return -eps / per_sample(sigma, eps)


def sigma_k_from_lambda(lam: float) -> float:
    """k-diffusion's sigma_k = exp(-lambda)."""
    return math.exp(-lam)


def alpha_sigma_from_lambda(lam: float) -> tuple[float, float]:
    """(alpha, sigma) of the VP process at half log-SNR ``lam``: alpha = sigmoid(2 lam)^1/2."""
    # alpha^2 = 1 / (1 + exp(-2 lam)); computed through log-sigmoid to stay finite for any lam.
    log_alpha = -0.5 * math.log1p(math.exp(-2.0 * lam)) if lam > 0 else lam - 0.5 * math.log1p(math.exp(2.0 * lam))
    log_sigma = log_alpha - lam
    return math.exp(log_alpha), math.exp(log_sigma)
