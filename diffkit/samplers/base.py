"""What every sampler shares: the validated timetable, checked model calls, noise, the final step.

Samplers are pure functions that own their loop; this module holds the pieces
they import so that none is written twice. Nothing here synchronises the host
with the device inside the loop: coefficients are host floats computed from the
float64 schedule, shape checks read metadata only, and non-finite model output
is recorded on the device and reported once, after the loop.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffkit.kernels.step_update import StepCoefficients
from diffkit.schedules.base import Schedule

EpsModel = Callable[..., torch.Tensor]
Callback = Callable[[int, float, torch.Tensor, torch.Tensor], None]
GeneratorArg = torch.Generator | Sequence[torch.Generator] | None
NoiseSampler = Callable[[float, float], torch.Tensor]


@dataclass(frozen=True)
class Timetable:
    """Host float64 values at the visited timesteps t_0 > ... > t_{N-1} (then the data, sigma = 0)."""

    t: tuple[float, ...]
    alpha: tuple[float, ...]
    sigma: tuple[float, ...]
    lam: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.t)


def make_timetable(schedule: Schedule, timesteps: Sequence[float] | np.ndarray | torch.Tensor) -> Timetable:
    """Validate the visited timesteps (strictly decreasing, within [0, T-1]) and tabulate them."""
    if isinstance(timesteps, torch.Tensor):
        timesteps = timesteps.detach().cpu().numpy()
    ts = np.asarray(timesteps, dtype=np.float64)
    T = schedule.num_train_timesteps
    if ts.ndim != 1 or ts.size < 1:
        raise ValueError(f"timesteps must be a non-empty 1-D sequence, got shape {ts.shape}")
    if not np.all(np.isfinite(ts)) or ts.min() < 0 or ts.max() > T - 1:
        raise ValueError(f"timesteps must lie in [0, T-1]=[0, {T - 1}], got range [{ts.min()}, {ts.max()}]")
    if ts.size > 1 and not np.all(np.diff(ts) < 0):
        raise ValueError("timesteps must be strictly decreasing (no duplicates)")
    t = tuple(ts.tolist())
    try:
        return _tabulate(schedule, t)
    except TypeError:  # an unhashable user-defined schedule: tabulate without the cache
        return _tabulate.__wrapped__(schedule, t)


@functools.lru_cache(maxsize=64)
def _tabulate(schedule: Schedule, t: tuple[float, ...]) -> Timetable:
    # Cached because schedules are immutable values: the three accessors cost ~0.3 ms on
    # the host, about 10 us per step of a 25-step call (benchmarks/bench_overhead.py).
    ts = np.asarray(t, dtype=np.float64)
    return Timetable(
        t=t,
        alpha=tuple(schedule.alpha(ts).tolist()),
        sigma=tuple(schedule.sigma(ts).tolist()),
        lam=tuple(schedule.lambda_(ts).tolist()),
    )


def final_step(alpha: float, sigma: float) -> StepCoefficients:
    """The last step, from the last visited timestep to the data (sigma = 0).

    Every update below tends to x_next = x0 as sigma_next -> 0 (DDPM's posterior
    mean, DDIM, DPM-Solver++ of first order with h -> inf), so the final step is
    the data prediction itself. Written once, here, instead of a dummy zero step.
    """
    return StepCoefficients(alpha=alpha, sigma=sigma, cx=0.0, c0=1.0)


def state_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 when given float64, float32 otherwise (fp16/bf16 models keep a float32 state)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def randn(
    shape: torch.Size | tuple[int, ...],
    generator: GeneratorArg,
    device: torch.device,
    dtype: torch.dtype,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Standard normals drawn exactly as diffusers' ``randn_tensor`` draws them (seed compatibility).

    A list of generators draws sample k from generator k (so sample k does not depend
    on the batch size); a CPU generator with a CUDA tensor draws on the CPU and copies.
    ``out`` (a tensor of ``shape``, ``dtype`` on ``device``) receives the same values
    instead of a fresh tensor: samplers pass the previous step's noise back.
    """
    shape = tuple(shape)
    if generator is None or isinstance(generator, torch.Generator):
        gens: list[torch.Generator] | None = None if generator is None else [generator]
    elif isinstance(generator, Sequence) and all(isinstance(g, torch.Generator) for g in generator):
        gens = list(generator)
        if len(gens) not in (1, shape[0]):
            raise ValueError(f"got {len(gens)} generators for a batch of {shape[0]}; pass one per sample")
    else:
        raise TypeError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}")
    if out is not None and (tuple(out.shape) != shape or out.dtype != dtype or out.device != device):
        raise ValueError(f"out must be a {dtype} tensor of shape {shape} on {device}, got {out.dtype} "
                         f"{tuple(out.shape)} on {out.device}")
    if gens is None:
        return torch.randn(shape, device=device, dtype=dtype, out=out)
    kinds = {g.device.type for g in gens}
    if len(kinds) > 1 or not kinds <= {"cpu", device.type}:
        raise ValueError(
            f"generators on {sorted(kinds)} cannot draw noise for a tensor on {device}; "
            f"use CPU generators (noise is then copied) or generators on {device.type}"
        )
    draw_device = torch.device("cpu") if gens[0].device.type == "cpu" else device
    direct = out if draw_device == device else None  # drawn straight into out, else drawn, then copied
    if len(gens) == 1:
        z = torch.randn(shape, generator=gens[0], device=draw_device, dtype=dtype, out=direct)
    else:
        rows = [torch.randn((1,) + shape[1:], generator=g, device=draw_device, dtype=dtype) for g in gens]
        z = torch.cat(rows, out=direct)
    if z.device == device:
        return z
    return z.to(device) if out is None else out.copy_(z)


# Below this size malloc serves and recycles blocks from its own heap, so fresh tensors cost no page
# faults and reuse would only add its checks (glibc's default mmap threshold, 128 KiB).
REUSE_MIN_BYTES = 128 * 1024


def reusable(callback: Callback | None, *dead: torch.Tensor) -> bool:
    """Whether the next update may write over ``dead``, tensors this loop made and no longer needs.

    A fresh CPU tensor of a few MB is new memory from the OS on every step (glibc
    hands large freed blocks back), and faulting its pages in costs about as much as
    the update itself: ~300 us of a 700 us DDIM step at 16x4x64x64 on one core
    (benchmarks/bench_overhead.py). A sampler owns its loop, so it knows which of its
    tensors are dead and passes them back as ``out=`` of the update; the caller's x_T
    is never among them.

    False (the next outputs are fresh tensors) when a ``callback`` was given, since
    it may keep the tensors it is shown; for tensors under ``REUSE_MIN_BYTES``; while
    autograd records them; and under torch.compile, which plans memory itself. The
    eps-model sees x only during its call: a model that keeps a reference to its
    input would see it overwritten.
    """
    if callback is not None or torch.compiler.is_compiling() or dead[0].nbytes < REUSE_MIN_BYTES:
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in dead))


class ModelCalls:
    """Calls the eps-model at a host timestep with metadata-only checks; records finiteness on the device."""

    def __init__(self, name: str, eps_model: EpsModel, x: torch.Tensor, cond: Mapping[str, Any] | None) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1:
            raise TypeError(f"{name}: x must be a floating-point tensor of shape [B, ...]")
        self.name, self.eps_model = name, eps_model
        self.model_dtype, self.device, self.shape = x.dtype, x.device, x.shape
        self.t_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        self.cond = dict(cond or {})
        for key, value in self.cond.items():
            if isinstance(value, torch.Tensor) and value.device != x.device:
                raise ValueError(f"{name}: cond[{key!r}] is on {value.device} but x is on {x.device}")
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] != x.shape[0]:
                raise ValueError(f"{name}: cond[{key!r}] has batch {value.shape[0]}, x has batch {x.shape[0]}")
        self._sums: list[torch.Tensor] = []
        self._where: list[tuple[int, float]] = []

    def __call__(self, x: torch.Tensor, t: float, step: int) -> torch.Tensor:
        tt = torch.full((self.shape[0],), t, dtype=self.t_dtype, device=self.device)
        eps = self.eps_model(x.to(self.model_dtype), tt, **self.cond)
        if not isinstance(eps, torch.Tensor):
            raise TypeError(f"{self.name}: the model returned {type(eps).__name__} at step {step}, expected a tensor")
        if eps.shape != self.shape:
            raise ValueError(
                f"{self.name}: model output at step {step} (t={t:.4g}) has shape {tuple(eps.shape)}, "
                f"expected the input's shape {tuple(self.shape)}"
            )
        if eps.device != self.device:
            raise ValueError(f"{self.name}: model output is on {eps.device}, x is on {self.device}")
        # One reduction per step, kept on the device: a NaN or inf anywhere makes the sum non-finite
        # (accumulated in >= float32, so fp16 outputs cannot overflow it).
        self._sums.append(eps.sum(dtype=torch.float64 if eps.dtype == torch.float64 else torch.float32))
        self._where.append((step, t))
        return eps

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


def prepare(
    name: str, eps_model: EpsModel, x: torch.Tensor, schedule: Schedule, timesteps, cond: Mapping[str, Any] | None
) -> tuple[Timetable, ModelCalls, torch.Tensor]:
    """The opening of every sampler: validated timetable, checked model calls, and the state x_T."""
    tab = make_timetable(schedule, timesteps)
    model = ModelCalls(name, eps_model, x, cond)
    return tab, model, x.to(state_dtype(x))


def ancestral_split(sigma_from: float, sigma_to: float, eta: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step in k-diffusion's sigma_k (``get_ancestral_step``).

    sigma_up = min(sigma_to, eta sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2)),
    sigma_down = sqrt(sigma_to^2 - sigma_up^2).
    """
    up = min(sigma_to, eta * math.sqrt(sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2))
    return math.sqrt(sigma_to**2 - up**2), up


def check_eta(name: str, eta: float) -> float:
    """eta in [0, 1] as a float, else ValueError."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"{name}: eta must be a number in [0, 1], got {eta!r}")
    return float(eta)
