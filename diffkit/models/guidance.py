"""Guidance as model wrappers: each works with every sampler, schedule family and prediction type.

:class:`ClassifierFreeGuidance`  out_u + w (out_c - out_u) from one batched call (Ho & Salimans 2022),
                                 with guidance rescale (Lin et al. 2023) and a guidance interval
                                 (Kynkaanniemi et al. 2024)
:class:`ClassifierGuidance`      the score plus scale * grad log p(y | x_t) of a noise-aware classifier
                                 (Dhariwal & Nichol 2021, eq. 14)

Both wrappers keep their model's ``prediction_type``. The interval is in sigma_k = sigma / alpha
(k-diffusion's and EDM's sigma, the one Kynkaanniemi et al. state theirs in): the same for every
family, whatever the model's time t is (training timesteps, sigma * T for flow matching, sigma for EDM).

Solver order at high guidance (the policy): keep ``dpmpp_2m``, diffkit's default, at every guidance
scale, as DPM-Solver++ recommends its 2M solver for guided sampling; use the third-order multistep
DPM-Solver++(3M) (``dpmpp_3m_sde`` with eta=0) only from about 20 steps up. Guidance makes the ODE
stiffer, and a longer multistep history amplifies that. Measured on the embedded digits model
(``python -m benchmarks.guidance_editing``, ``benchmarks/results/guidance_editing.md``), RMS to a
converged solution from the same noise at w = 2 / 4 / 8:

    10 steps   dpmpp_2m 0.095 / 0.16 / 0.28     3M 0.18 / 0.48 / 0.92     ddim 0.11 / 0.12 / 0.19
    20 steps   dpmpp_2m 0.017 / 0.028 / 0.042   3M 0.010 / 0.016 / 0.031  heun (39 calls) 0.014 / 0.018 / 0.025

At 5 steps 3M diverges (RMS 4.3 / 9.4 / 22, 88-96% of pixels beyond [-1, 1]; dpmpp_2m 0.30 / 0.42 / 1.7).
At 10 steps and w >= 4 first-order DDIM is the closest of all: strong guidance at few steps favours low order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from diffkit.conversions import output_per_eps, per_sample
from diffkit.schedules.base import Schedule

Model = Callable[..., torch.Tensor]
LogProb = Callable[..., torch.Tensor]


def _check_scale(scale: object) -> float:
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise TypeError(f"guidance scale must be a number, got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(f"guidance scale must be finite, got {scale!r}")
    return float(scale)


def _check_interval(interval: Any, schedule: Schedule | None) -> tuple[float, float] | None:
    if interval is None:
        return None
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance interval must be a pair (sigma_lo, sigma_hi), got {interval!r}") from None
    if not (0.0 <= lo < hi) or math.isnan(hi):
        raise ValueError(f"guidance interval must be (sigma_lo, sigma_hi) with 0 <= sigma_lo < sigma_hi (inf "
                         f"allowed), in sigma_k = sigma / alpha; got ({lo!r}, {hi!r})")
    if schedule is None:
        raise ValueError("a guidance interval needs the schedule (to read sigma_k = sigma / alpha at the model's t)")
    return lo, hi


class ClassifierFreeGuidance:
    """out = out_u + scale * (out_c - out_u) (Ho & Salimans 2022), both branches in one batched call.

    ``uncond`` maps each conditioning keyword to its null value: a tensor shaped like
    the conditional one, or a scalar broadcast to it (e.g. ``{"y": num_classes}``
    for a label embedding with a reserved null class). scale=1 is the conditional
    model, scale=0 the unconditional one. The combination is linear, so it applies to
    whatever the model predicts (v, x0, ...), as diffusers' pipelines apply it; the
    model's ``prediction_type`` passes through.

    ``guidance_rescale`` phi in [0, 1] (Lin et al. 2023, sec. 3.4, eq. 15-16; diffusers'
    ``rescale_noise_cfg``): with std over each sample's values,

        out <- phi * out * std(out_c) / std(out) + (1 - phi) * out

    applied to the model's output as it is (v for v-prediction models, where Lin et al. use it).
    ``interval`` = (sigma_lo, sigma_hi) (Kynkaanniemi et al. 2024): guidance only where
    sigma_lo < sigma_k(t) <= sigma_hi, the conditional model out_c elsewhere; it needs
    ``schedule``. The choice is made per sample on the device (no host synchronisation), so
    both branches are still evaluated outside the interval.
    """

    def __init__(self, model: Model, scale: float, uncond: Mapping[str, Any], *, guidance_rescale: float = 0.0,
                 interval: tuple[float, float] | None = None, schedule: Schedule | None = None) -> None:
        self.model, self.scale, self.uncond = model, _check_scale(scale), dict(uncond)
        if isinstance(guidance_rescale, bool) or not isinstance(guidance_rescale, (int, float)) \
                or not 0.0 <= guidance_rescale <= 1.0:
            raise ValueError(f"guidance_rescale must be a number in [0, 1], got {guidance_rescale!r}")
        self.guidance_rescale = float(guidance_rescale)
        self.interval, self.schedule = _check_interval(interval, schedule), schedule
        self.prediction_type = getattr(model, "prediction_type", "epsilon")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        missing = sorted(set(cond) - set(self.uncond))
        if missing or not cond:
            raise ValueError(
                f"classifier-free guidance needs a null value for every conditioning keyword; "
                f"got cond keys {sorted(cond)}, null values for {sorted(self.uncond)}"
            )
        both = {}
        for key, value in cond.items():
            null = self.uncond[key]
            null = null if isinstance(null, torch.Tensor) else torch.full_like(value, null)
            both[key] = torch.cat([value, null.expand_as(value).to(value.device)])
        out_c, out_u = self.model(torch.cat([x, x]), torch.cat([t, t]), **both).chunk(2)
        out = out_u + self.scale * (out_c - out_u)
        if self.guidance_rescale > 0:
            dims = list(range(1, out.ndim))
            ratio = out_c.std(dim=dims, keepdim=True) / out.std(dim=dims, keepdim=True)
            out = self.guidance_rescale * (out * ratio) + (1 - self.guidance_rescale) * out
        if self.interval is not None:
            assert self.schedule is not None  # _check_interval refused an interval without one
            sigma_k = self.schedule.sigma_k(t.to(torch.float64))
            inside = (sigma_k > self.interval[0]) & (sigma_k <= self.interval[1])
            out = torch.where(inside.view((-1,) + (1,) * (out.ndim - 1)), out, out_c)
        return out


class ClassifierGuidance:
    """The model's score plus ``scale`` times a noise-aware classifier's grad_x log p(y | x_t).

    Dhariwal & Nichol 2021, eq. 14 (their Algorithm 2, written for any family):

        eps_guided = eps - scale * sigma_t * grad_x log p(y | x_t)

    i.e. grad log p(x_t) + scale * grad log p(y | x_t), since the score is -eps / sigma_t in every
    family. What is guided is this score: a model predicting something else (x0, v, the flow
    velocity) returns its own kind of output, moved so that the eps it implies at the same x_t is
    eps_guided (:func:`diffkit.conversions.output_per_eps`; x0 moves by scale sigma^2 / alpha *
    grad, Tweedie's formula). Where alpha = 0 (zero SNR) a non-eps output cannot move eps and the
    guidance is 0; x_t then holds no information about y.

    ``log_prob(x_t, t, **cond) -> [B]`` is called with the model's own time t and the same
    ``cond`` as the model (guided-diffusion's convention: an unconditional model takes and ignores
    the label, e.g. ``lambda x, t, y: unet(x, t)``); it must treat samples independently (eval
    mode), since the gradient is taken of their sum. Gradients flow through the classifier only;
    the model runs without autograd. Works under ``torch.inference_mode()``: the gradient is taken
    on copies outside it.
    """

    def __init__(self, model: Model, log_prob: LogProb, scale: float, schedule: Schedule) -> None:
        if not callable(log_prob):
            raise TypeError(f"log_prob must be callable as log_prob(x_t, t, **cond) -> [B], got "
                            f"{type(log_prob).__name__}")
        self.model, self.log_prob, self.scale, self.schedule = model, log_prob, _check_scale(scale), schedule
        self.prediction_type = getattr(model, "prediction_type", "epsilon")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        with torch.no_grad():
            out = self.model(x, t, **cond)
        if self.scale == 0.0:
            return out
        grad = self.gradient(x, t, **cond)
        alpha, sigma = self.schedule.alpha(t).to(x.device), self.schedule.sigma(t).to(x.device)
        step = self.scale * sigma * output_per_eps(self.prediction_type, alpha, sigma)
        return out - per_sample(step, out) * grad.to(out.dtype)

    def gradient(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        """grad_x log p(y | x_t) at (x, t), per sample, in x's dtype; ValueError unless log_prob gives [B]."""
        with torch.inference_mode(False), torch.enable_grad():
            x_in = x.detach().clone().requires_grad_(True)  # a normal tensor even when x is an inference tensor
            copies = {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in cond.items()}
            log_p = self.log_prob(x_in, t.detach().clone(), **copies)
            if not isinstance(log_p, torch.Tensor) or log_p.shape != (x.shape[0],):
                got = tuple(log_p.shape) if isinstance(log_p, torch.Tensor) else type(log_p).__name__
                raise ValueError(f"the classifier's log_prob must return a tensor of shape [B]=[{x.shape[0]}] "
                                 f"(log p(y | x_t) per sample), got {got}")
            if not log_p.requires_grad:
                raise ValueError("the classifier's log_prob does not depend on x_t (no gradient to guide with)")
            (grad,) = torch.autograd.grad(log_p.sum(), x_in)
        return grad


class RescheduledClassifier:
    """A noise-conditional classifier trained on one schedule, asked about x_t of another.

    Equal noise means equal log-SNR lambda. For the same x0 and eps, x_t of ``schedule`` at t,
    rescaled by c = sigma'(t') / sigma(t) (= alpha'(t') / alpha(t)), is exactly x_{t'} of
    ``trained_on`` at t' = t'(lambda(t)) (its ``t_from_lambda``). So

        log p(y | x_t) = log_prob(c x_t, t', **cond)

    and the gradient :class:`ClassifierGuidance` takes carries the factor c through autograd. c
    uses whichever of sigma and alpha is the larger at t (both ratios are equal; the larger one is
    never 0). Beyond the classifier's noise range lambda is clamped to its ends (its t_min or
    t_max): at pure noise (lambda = -inf, flow matching's t_max) the classifier sees its noisiest
    input, about which it knows little. Example: the shipped digits classifier (Linear) guiding
    the rectified-flow digits model (FlowMatch).
    """

    def __init__(self, log_prob: LogProb, trained_on: Schedule, schedule: Schedule) -> None:
        if not callable(log_prob):
            raise TypeError(f"log_prob must be callable as log_prob(x_t, t, **cond) -> [B], got "
                            f"{type(log_prob).__name__}")
        self.log_prob, self.trained_on, self.schedule = log_prob, trained_on, schedule

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        t64 = t.to(torch.float64)
        t_c = self.trained_on.t_from_lambda(self.schedule.lambda_(t64))
        alpha, sigma = self.schedule.alpha(t64), self.schedule.sigma(t64)
        c = torch.where(sigma >= alpha, self.trained_on.sigma(t_c) / sigma, self.trained_on.alpha(t_c) / alpha)
        return self.log_prob(per_sample(c.to(x.device, x.dtype), x) * x, t_c.to(t.dtype), **cond)
