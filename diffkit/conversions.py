"""Every conversion between parameterisations, in one place.

NOTATION (used throughout diffkit, code and docs)
-------------------------------------------------
``abar_t``   cumulative product of (1 - beta) up to timestep t (discrete VP schedules)
``alpha_t``  signal scale of x_t                (sqrt(abar_t) for VP schedules)
``sigma_t``  noise scale of x_t                 (sqrt(1 - abar_t) for VP schedules)
``lambda_t`` log(alpha_t / sigma_t)             half log-SNR, decreasing in t; -inf where alpha = 0
``h``        lambda_next - lambda_t             step size in lambda (> 0 when denoising)
``sigma_k``  sigma_t / alpha_t = exp(-lambda_t) k-diffusion's (variance-exploding) sigma

The forward process is ``x_t = alpha_t x0 + sigma_t eps`` for every schedule
family (VP: alpha^2 + sigma^2 = 1; flow matching: alpha = 1 - sigma; EDM / VE:
alpha = 1). A model predicts one of:

    "epsilon"        eps
    "sample"         x0
    "v_prediction"   v = alpha eps - sigma x0                  (Salimans & Ho 2022)
    "flow"           u = eps - x0, the velocity dx/dsigma of flow matching (SD3, Flux)

Each is linear in (x, output), so one table of coefficients converts any of them
to the pair samplers use, x0 = a x + b out and eps = c x + d out
(:func:`prediction_coefficients`). Only "epsilon" needs alpha > 0 for x0, and only
"sample" needs sigma > 0 for eps (always true where a model is evaluated); v and
flow need no division at either end, which is why zero-terminal-SNR and flow
models predict them. score = grad log p(x_t) = -eps / sigma, so a change of the
score by g is a change of eps by -sigma g, and of the output by that over d
(:func:`output_per_eps`): guidance in every prediction type.

``alpha`` and ``sigma`` may be Python floats or tensors of shape [B]; tensors
are broadcast over the trailing dimensions of ``x``.
"""

from __future__ import annotations

import torch

Scale = float | torch.Tensor

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction", "flow")


def prediction_coefficients(kind: str, alpha: float, sigma: float) -> tuple[float, float, float, float]:
    """(a, b, c, d) with x0 = a x + b out and eps = c x + d out for a model predicting ``kind``.

    From x = alpha x0 + sigma eps and the definition of ``kind`` (module docstring):

        epsilon       x0 = (x - sigma out) / alpha              eps = out
        sample        x0 = out                                  eps = (x - alpha out) / sigma
        v_prediction  x0 = (alpha x - sigma out) / n            eps = (sigma x + alpha out) / n,  n = alpha^2 + sigma^2
        flow          x0 = (x - sigma out) / m                  eps = (x + alpha out) / m,        m = alpha + sigma
    """
    if kind == "epsilon":
        if alpha == 0.0:
            raise ValueError("an epsilon-prediction model determines no x0 where alpha = 0 (zero SNR: x_t is pure "
                             "noise); sample such schedules with a v_prediction, flow or sample model, or start "
                             "below t_max")
        return 1.0 / alpha, -sigma / alpha, 0.0, 1.0
    if kind == "sample":
        return 0.0, 1.0, 1.0 / sigma, -alpha / sigma
    if kind == "v_prediction":
        n = alpha * alpha + sigma * sigma
        return alpha / n, -sigma / n, sigma / n, alpha / n
    if kind == "flow":
        m = alpha + sigma
        return 1.0 / m, -sigma / m, 1.0 / m, alpha / m
    raise ValueError(f"unknown prediction type {kind!r}; allowed: {', '.join(PREDICTION_TYPES)}")


def prediction_target(kind: str, x0: torch.Tensor, eps: torch.Tensor, alpha: Scale, sigma: Scale) -> torch.Tensor:
    """What a model predicting ``kind`` should output at x = alpha x0 + sigma eps: its training target.

        epsilon  eps          sample  x0          v_prediction  alpha eps - sigma x0          flow  eps - x0
    """
    if kind == "epsilon":
        return eps
    if kind == "sample":
        return x0
    if kind == "v_prediction":
        return per_sample(alpha, eps) * eps - per_sample(sigma, x0) * x0
    if kind == "flow":
        return eps - x0
    raise ValueError(f"unknown prediction type {kind!r}; allowed: {', '.join(PREDICTION_TYPES)}")


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
    """eps = sigma x + alpha v, for v = alpha eps - sigma x0 (VP: alpha^2 + sigma^2 = 1)."""
    return per_sample(sigma, x) * x + per_sample(alpha, x) * v


def v_from_eps(x: torch.Tensor, eps: torch.Tensor, alpha: Scale, sigma: Scale) -> torch.Tensor:
    """v = alpha eps - sigma x0 = (eps - sigma x) / alpha (VP)."""
    return (eps - per_sample(sigma, x) * x) / per_sample(alpha, x)


def score_from_eps(eps: torch.Tensor, sigma: Scale) -> torch.Tensor:
    """Score of the noisy marginal: grad_x log p_t(x) = -eps / sigma."""
    return -eps / per_sample(sigma, eps)


def output_per_eps(kind: str, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """d out / d eps at fixed x: how far a model's output moves per unit move of the eps it implies.

    The reciprocal of d in eps = c x + d out (:func:`prediction_coefficients`), per sample
    (``alpha``, ``sigma``: tensors [B]), in float64:

        epsilon 1,   sample -sigma / alpha,   v_prediction (alpha^2 + sigma^2) / alpha,   flow (alpha + sigma) / alpha

    Where alpha = 0 (zero SNR) the other kinds fix eps = x / sigma whatever the output, so no
    output change moves eps: the factor is 0 there (x_t holds no signal, and an exact guidance
    gradient vanishes with alpha anyway).
    """
    alpha, sigma = alpha.to(torch.float64), sigma.to(torch.float64)
    if kind == "epsilon":
        return torch.ones_like(alpha)
    numerator = {"sample": -sigma, "v_prediction": alpha * alpha + sigma * sigma, "flow": alpha + sigma}.get(kind)
    if numerator is None:
        raise ValueError(f"unknown prediction type {kind!r}; allowed: {', '.join(PREDICTION_TYPES)}")
    signal = alpha > 0
    return torch.where(signal, numerator / torch.where(signal, alpha, torch.ones_like(alpha)), torch.zeros_like(alpha))
