"""Latency: model evaluation, the samplers' own overhead, and their sum per sampler and step count.

- ``model_eval``: seconds per call of a network at a batch size (median of repeats after a
  warm-up), with its FLOPs counted by ``torch.utils.flop_counter`` -> achieved GFLOP/s.
- ``sampler_overhead``: seconds per step of a sampler loop around a ZERO-COST model
  (``ZeroCostModel``: it returns a preallocated tensor), i.e. everything a sampler adds on
  top of the network: coefficient arithmetic, the update, noise draws, checks.
- ``sampler_latency``: whole sampling runs with the real network, measured; or, where a
  full run is too slow for this machine, extrapolated as
      latency(steps) = NFE(steps) * t_eval + steps * t_overhead
  from the two measured parts (rows say ``"measured": false``); ``validate`` rows compare
  the two where both exist.

Everything runs under ``torch.inference_mode()`` with the threads torch was given
(``torch.get_num_threads()``, recorded with the results). The wall-clock timers
(``seconds_of``, ``time_calls``, ``timed``) serve every benchmark that times on the host;
``diffkit.bench.overhead`` uses them with a device to synchronise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from diffkit.samplers import get_sampler, sample
from diffkit.schedules.base import Schedule


class ZeroCostModel:
    """An eps-model that costs nothing: returns the one tensor ``eps`` whatever (x, t) is."""

    def __init__(self, eps: torch.Tensor) -> None:
        self.eps = eps

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        return self.eps


class CountingModel:
    """Wraps a model and counts its calls (the NFE actually spent); keeps its ``prediction_type``."""

    def __init__(self, model: Callable[..., torch.Tensor]) -> None:
        self.model, self.calls = model, 0
        self.prediction_type = getattr(model, "prediction_type", "epsilon")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        self.calls += 1
        return self.model(x, t, **cond)


def sync(device: torch.device | str = "cpu") -> None:
    """Wait for the work queued on ``device`` (CUDA); nothing to wait for on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def seconds_of(fn: Callable[[], Any], device: torch.device | str = "cpu") -> float:
    """Wall-clock seconds of one call ``fn()``, ``device`` synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: torch.device | str = "cpu") -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` (``seconds_of``) after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    return [seconds_of(fn, device) for _ in range(repeats)]


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs, under inference mode."""
    with torch.inference_mode():
        return statistics.median(time_calls(fn, repeats, warmup))


def count_flops(model: Callable[..., torch.Tensor], x: torch.Tensor, t: torch.Tensor, cond: Mapping) -> int:
    """FLOPs of one model call (matmuls and convolutions, as torch's FlopCounterMode counts them)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x, t, **cond)
    return int(counter.get_total_flops())


def model_eval(model, shape: tuple[int, ...], batch: int, cond_fn=None, repeats: int = 3, warmup: int = 1) -> dict:
    """Seconds and FLOPs of one call of ``model`` on a batch [batch, *shape] at t = 500."""
    x = torch.randn((batch,) + tuple(shape))
    t = torch.full((batch,), 500.0)
    cond = cond_fn(batch) if cond_fn is not None else {}
    seconds = timed(lambda: model(x, t, **cond), repeats, warmup)
    flops = count_flops(model, x, t, cond)
    return {"batch": batch, "seconds_per_eval": seconds, "gflop_per_eval": flops / 1e9,
            "gflops_achieved": flops / 1e9 / seconds, "repeats": repeats}


def sampler_overhead(name: str, schedule: Schedule, shape: tuple[int, ...], batch: int, steps: int = 50,
                     repeats: int = 5, run: Callable | None = None) -> dict:
    """Seconds per step of sampler ``name`` around a zero-cost model (float32, CPU generator).

    ``run(model, x, steps, generator)`` replaces diffkit's loop (used for peers).
    """
    x = torch.randn((batch,) + tuple(shape))
    model = ZeroCostModel(torch.zeros_like(x))
    run = run or (lambda m, x_T, n, g: sample(m, schedule, name, n, x=x_T, generator=g))
    seconds = timed(lambda: run(model, x.clone(), steps, torch.Generator().manual_seed(0)), repeats)
    return {"sampler": name, "batch": batch, "steps": steps, "seconds_per_step": seconds / steps}


def sampler_latency(name: str, model, schedule: Schedule, shape: tuple[int, ...], batch: int, steps: int,
                    cond_fn=None, repeats: int = 3, warmup: int = 1) -> dict:
    """A whole measured sampling run of ``name`` with the real model: seconds total, per step, per sample."""
    info = get_sampler(name)
    x = torch.randn((batch,) + tuple(shape))
    cond = cond_fn(batch) if cond_fn is not None else None
    counter = CountingModel(model)

    def run():
        counter.calls = 0
        sample(counter, schedule, name, steps, x=x.clone(), generator=torch.Generator().manual_seed(0), cond=cond)

    seconds = timed(run, repeats, warmup)
    if counter.calls != info.nfe(steps):
        raise AssertionError(f"{name}: counted {counter.calls} model calls, registry says {info.nfe(steps)}")
    return latency_row(name, batch, steps, counter.calls, seconds, measured=True)


def extrapolated_latency(name: str, batch: int, steps: int, seconds_per_eval: float, overhead_per_step: float) -> dict:
    """latency = NFE * t_eval + steps * t_overhead, from the measured parts (``measured`` False)."""
    nfe = get_sampler(name).nfe(steps)
    return latency_row(name, batch, steps, nfe, nfe * seconds_per_eval + steps * overhead_per_step, measured=False)


def latency_row(name: str, batch: int, steps: int, nfe: int, seconds: float, measured: bool) -> dict:
    """One latency row with the derived per-step and per-sample figures."""
    return {"sampler": name, "batch": batch, "steps": steps, "nfe": nfe, "seconds": seconds,
            "seconds_per_step": seconds / steps, "seconds_per_sample": seconds / batch, "measured": measured}
