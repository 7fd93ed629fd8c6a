"""Calling the model inside a sampler: checked calls that return a :class:`Prediction`.

The one model interface is ``eps(x_t, t, **cond) -> eps``; a :class:`Prediction`
hands a sampler the state and both predictions as LinCombs, so each update reads
in whichever of them its paper writes:

    eps = the model's output          x0 = (x - sigma eps) / alpha

Checks cost no host-device synchronisation: output shape, dtype and device are
metadata; a model that writes into its input is caught by the tensor's version
counter; non-finite output is recorded on the device (one reduction per call)
and reported once, after the loop, naming the first bad step and t.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

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


def _where(step: int, at: Point) -> str:
    return f"at step {step} (t={at.t:.4g})"


class ModelCalls:
    """``calls(x, at, step)`` -> :class:`Prediction`, with every check of the module docstring."""

    def __init__(self, name: str, eps_model: EpsModel, x: torch.Tensor, cond: Mapping[str, Any] | None) -> None:
        if not callable(eps_model):
            raise TypeError(f"{name}: the model must be callable as model(x, t, **cond), got {type(eps_model).__name__}")
        if cond is not None and not isinstance(cond, Mapping):
            raise TypeError(f"{name}: cond must be a mapping of keyword arguments for the model, "
                            f"got {type(cond).__name__}")
        self.name, self.eps_model = name, eps_model
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
        eps = self.eps_model(x_in, tt, **self.cond)
        if version is not None and x_in._version != version:
            raise ValueError(f"{self.name}: the model wrote into the x it was given {_where(step, at)}; "
                             "a model must not modify its input in place")
        if not isinstance(eps, torch.Tensor):
            raise TypeError(f"{self.name}: the model returned {type(eps).__name__} {_where(step, at)}, "
                            "expected a tensor")
        if eps.shape != self.shape:
            raise ValueError(f"{self.name}: model output {_where(step, at)} has shape {tuple(eps.shape)}, "
                             f"expected the input's shape {tuple(self.shape)}")
        if not eps.is_floating_point():
            raise TypeError(f"{self.name}: model output {_where(step, at)} has dtype {eps.dtype}; "
                            "expected a floating-point dtype")
        if eps.device != self.device:
            raise ValueError(f"{self.name}: model output is on {eps.device}, x is on {self.device}")
        # One reduction per call, kept on the device: a NaN or inf anywhere makes the sum non-finite
        # (accumulated in >= float32, so fp16 outputs cannot overflow it).
        self._sums.append(eps.sum(dtype=torch.float64 if eps.dtype == torch.float64 else torch.float32))
        self._where.append((step, at.t))
        state = LinComb(((1.0, x),))
        return Prediction(state, LinComb(((1.0, eps),)),
                          LinComb(((1.0 / at.alpha, x), (-at.sigma / at.alpha, eps))), eps.dtype)

    def check_finite(self) -> None:
        """Raise, naming the first step and t, if any model output was non-finite (one sync, after the loop)."""
        if not self._sums or self.device.type == "meta":  # meta tensors hold no values to check
            return
        if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return  # inside CUDA-graph capture nothing may reach the host; check the replayed output instead
        ok = torch.isfinite(torch.stack(self._sums)).cpu()
        if not bool(ok.all()):
            step, t = self._where[int((~ok).nonzero()[0])]
            raise ValueError(f"{self.name}: the model returned non-finite values (NaN/inf) at step {step}, t={t:.4g}")
