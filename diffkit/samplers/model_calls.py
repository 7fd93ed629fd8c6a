"""Calling the model inside a sampler: checked calls that return a :class:`Prediction`.

The one model interface is ``model(x_t, t, **cond) -> output``, where the output
is eps unless the model says otherwise in its ``prediction_type`` attribute
("sample", "v_prediction", "flow": :func:`diffkit.models.from_prediction` sets it).
A :class:`Prediction` hands a sampler the state and both predictions as LinCombs,
so each update reads in whichever of them its paper writes:

    x0 = a x + b out,   eps = c x + d out        (conversions.prediction_coefficients)

Why both, and why not "everything is eps": x0 from eps divides by alpha, which is
0 where flow and zero-terminal-SNR models start sampling; converting the native
output to each of x0 and eps directly needs no division there (v and flow), so
every sampler runs on every family without a special case.

Checks cost no host-device synchronisation: output shape, dtype and device are
metadata; a model that writes into its input is caught by the tensor's version
counter; non-finite output is recorded on the device (one reduction per call)
and reported once, after the loop, naming the first bad step and t.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from diffkit.conversions import PREDICTION_TYPES, prediction_coefficients
from diffkit.samplers.lincomb import LinComb
from diffkit.samplers.timetable import Point

EpsModel = Callable[..., torch.Tensor]
Callback = Callable[[int, float, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model at one point: the state ``x`` it saw, its noise ``eps`` and data ``x0`` predictions."""

    x: LinComb
    eps: LinComb
    x0: LinComb
    dtype: torch.dtype  # the model output's dtype (seed-compatible noise is drawn in it)


def _combination(cx: float, x: torch.Tensor, cout: float, out: torch.Tensor) -> LinComb:
    """cx x + cout out, leaving out a zero term."""
    if cx == 0.0:
        return LinComb(((cout, out),))
    return LinComb(((cx, x), (cout, out)))


def analytic_prediction(x: torch.Tensor, at: Point, dtype: torch.dtype) -> Prediction:
    """The analytical first step's prediction at ``at``, with no model call (AFS: Zhou et al. 2024, "Fast
    ODE-based Sampling for Diffusion Models in Around 5 Steps", arXiv:2312.00094; zju-pi/diff-sampler's ``afs``).

    Where sampling starts, x_t is almost pure noise, so eps is taken as x_t scaled to unit variance:

        eps = x / r,   x0 = (x - sigma eps) / alpha = alpha x / (r (r + sigma)),   r = sqrt(alpha^2 + sigma^2)

    i.e. diff-sampler's d = x_k / sqrt(1 + sigma_k^2) in x_k = x / alpha, written for every family:
    eps = x_t on a variance-preserving schedule, x / sqrt(1 + sigma^2) on EDM's. It takes the data
    mean for 0, so its error is about alpha E[x0] in eps: small where alpha(t_max) is small and the
    data are centred. At zero SNR eps = x_T is exact, and x0 is taken as 0.
    """
    r = math.hypot(at.alpha, at.sigma)
    return Prediction(LinComb(((1.0, x),)), LinComb(((1.0 / r, x),)),
                      LinComb(((at.alpha / (r * (r + at.sigma)), x),)), dtype)


def _where(step: int, at: Point) -> str:
    return f"at step {step} (t={at.t:.4g})"


class ModelCalls:
    """``calls(x, at, step)`` -> :class:`Prediction`, with every check of the module docstring."""

    def __init__(self, name: str, eps_model: EpsModel, x: torch.Tensor, cond: Mapping[str, Any] | None) -> None:
        if not callable(eps_model):
            raise TypeError(f"{name}: the model must be callable as model(x, t, **cond), "
                            f"got {type(eps_model).__name__}")
        if cond is not None and not isinstance(cond, Mapping):
            raise TypeError(f"{name}: cond must be a mapping of keyword arguments for the model, "
                            f"got {type(cond).__name__}")
        self.name, self.eps_model = name, eps_model
        self.kind = getattr(eps_model, "prediction_type", "epsilon")
        if self.kind not in PREDICTION_TYPES:
            raise ValueError(f"{name}: the model's prediction_type is {self.kind!r}; allowed: "
                             f"{', '.join(PREDICTION_TYPES)} (wrap other models with diffkit.models.from_prediction)")
        self.model_dtype, self.device, self.shape = x.dtype, x.device, x.shape
        self.t_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        self.cond = dict(cond or {})
        for key, value in self.cond.items():
            if not isinstance(key, str):
                raise TypeError(f"{name}: cond keys must be strings (keyword arguments), got {key!r}")
            if isinstance(value, torch.Tensor) and value.device != x.device:
                raise ValueError(f"{name}: cond[{key!r}] is on {value.device} but x is on {x.device}")
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] != x.shape[0]:
                raise ValueError(f"{name}: cond[{key!r}] has batch {value.shape[0]}, x has batch {x.shape[0]}")
        self._sums: list[torch.Tensor] = []
        self._where: list[tuple[int, float]] = []

    def __call__(self, x: torch.Tensor, at: Point, step: int) -> Prediction:
        tt = torch.full((self.shape[0],), at.t, dtype=self.t_dtype, device=self.device)
        x_in = x.to(self.model_dtype)
        version = None if x_in.is_inference() else x_in._version  # inference tensors keep no version counter
        out = self.eps_model(x_in, tt, **self.cond)
        if version is not None and x_in._version != version:
            raise ValueError(f"{self.name}: the model wrote into the x it was given {_where(step, at)}; "
                             "a model must not modify its input in place")
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{self.name}: the model returned {type(out).__name__} {_where(step, at)}, "
                            "expected a tensor")
        if out.shape != self.shape:
            raise ValueError(f"{self.name}: model output {_where(step, at)} has shape {tuple(out.shape)}, "
                             f"expected the input's shape {tuple(self.shape)}")
        if not out.is_floating_point():
            raise TypeError(f"{self.name}: model output {_where(step, at)} has dtype {out.dtype}; "
                            "expected a floating-point dtype")
        if out.device != self.device:
            raise ValueError(f"{self.name}: model output is on {out.device}, x is on {self.device}")
        # One reduction per call, kept on the device: a NaN or inf anywhere makes the sum non-finite
        # (accumulated in >= float32, so fp16 outputs cannot overflow it).
        self._sums.append(out.sum(dtype=torch.float64 if out.dtype == torch.float64 else torch.float32))
        self._where.append((step, at.t))
        if self.kind == "epsilon" and at.alpha > 0.0:  # the common case, without the table lookup
            return Prediction(LinComb(((1.0, x),)), LinComb(((1.0, out),)),
                              LinComb(((1.0 / at.alpha, x), (-at.sigma / at.alpha, out))), out.dtype)
        try:
            a, b, c, d = prediction_coefficients(self.kind, at.alpha, at.sigma)
        except ValueError as err:
            raise ValueError(f"{self.name}: {err} ({_where(step, at)})") from None
        return Prediction(LinComb(((1.0, x),)), _combination(c, x, d, out), _combination(a, x, b, out), out.dtype)

    def record_start(self, x: torch.Tensor) -> None:
        """Check x_T with the model outputs (no extra synchronisation): NaN/inf there is the caller's."""
        self._sums.append(x.sum(dtype=torch.float64 if x.dtype == torch.float64 else torch.float32))
        self._where.append((-1, float("nan")))

    def check_finite(self) -> None:
        """Raise, naming the first step and t, if any model output was non-finite (one sync, after the loop)."""
        if not self._sums or self.device.type == "meta":  # meta tensors hold no values to check
            return
        if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return  # inside CUDA-graph capture nothing may reach the host; check the replayed output instead
        ok = torch.isfinite(torch.stack(self._sums)).cpu()
        if not bool(ok.all()):
            step, t = self._where[int((~ok).nonzero()[0])]
            if step < 0:
                raise ValueError(f"{self.name}: x (the starting noise x_T) holds non-finite values (NaN/inf)")
            raise ValueError(f"{self.name}: the model returned non-finite values (NaN/inf) at step {step}, t={t:.4g}")
