"""Scheduler overhead per step inside a diffusers pipeline: DiffkitScheduler vs diffusers' own scheduler.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_diffusers_adapter

One real ``DDPMPipeline`` (x_T from the generator, then per timestep
``unet(x, t).sample`` and ``scheduler.step(..., generator=g).prev_sample``, then the
[0, 1] image) around a zero-cost U-Net stand-in that returns one preallocated tensor,
so the schedulers are what differs. Three sides per row, the same pipeline call, the
same timesteps (ddpm/ddim "leading", the DPM-Solver++ family "linspace"), timed
interleaved in one run:

- diffkit: ``DiffkitScheduler(sampler, spacing=...)``: set_timesteps (with its dry run for
  the call times, remembered per grid) and per step two greenlet switches around the sampler's own step.
- diffusers: diffusers' scheduler for the same sampler (``diffkit.bench.peers``).
- pipeline: a scheduler that does nothing (step returns its input): the cost of the
  pipeline and the stand-in alone. Subtracted from both sides, it leaves each scheduler's
  own time per step.

Reported per row, on two clocks: the thread's CPU time (everything runs on the calling
thread: torch with one thread, the sampler as a greenlet; load from other processes
barely moves it) and wall-clock (with its spread): median µs per step of the whole
pipeline call on each side, the schedulers' own µs per step (minus the pipeline's),
the ratios diffkit / diffusers, and ``set_timesteps`` alone.
dpmpp_sde is left out: diffusers' DPMSolverSDEScheduler.step takes no generator, and
DDPMPipeline passes one. Both sides draw the same seeded noise for ddpm and dpmpp_2m_sde.
"""

from __future__ import annotations

import json
import statistics
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

from diffkit.bench import peers
from diffkit.bench.latency import time_calls
from diffkit.bench.machine import machine_info, machine_tag
from diffkit.schedules import Linear

SAMPLERS = ("ddpm", "ddim", "dpmpp_2m", "dpmpp_2m_sde")
SPACING = {"ddpm": "leading", "ddim": "leading", "dpmpp_2m": "linspace", "dpmpp_2m_sde": "linspace"}
SHAPES = ((1, 4, 64, 64), (4, 4, 128, 128))  # SD 512x512 latents, batch 1; SDXL 1024x1024 latents, batch 4


class ZeroCostUNet(torch.nn.Module):
    """What DDPMPipeline reads of a UNet2DModel (config, dtype, device, ``unet(x, t).sample``), returning one tensor."""

    def __init__(self, eps: torch.Tensor) -> None:
        super().__init__()
        self.eps = eps
        self.config = types.SimpleNamespace(sample_size=eps.shape[-1], in_channels=eps.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        return self.eps.dtype

    @property
    def device(self) -> torch.device:
        return self.eps.device

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> types.SimpleNamespace:
        return types.SimpleNamespace(sample=self.eps)


class NullScheduler:
    """A scheduler that costs nothing: ``steps`` timesteps, and step() hands the sample back."""

    order, init_noise_sigma = 1, 1.0

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None:
        self.timesteps = torch.arange(num_inference_steps - 1, -1, -1)

    def step(self, model_output, timestep, sample, generator=None, return_dict=True, **kwargs):
        return types.SimpleNamespace(prev_sample=sample)


def _pipelines(name: str, shape: tuple[int, ...]) -> dict[str, object]:
    """The three DDPMPipelines of one row, sharing one stand-in U-Net."""
    from diffusers import DDPMPipeline

    from diffkit.integrations.diffusers import DiffkitScheduler

    schedule = Linear()
    unet = ZeroCostUNet(torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 0.1)
    schedulers = {
        "diffkit": DiffkitScheduler(name, spacing=SPACING[name], schedule=schedule),
        "diffusers": peers.diffusers_scheduler(name, schedule, spacing=SPACING[name]),
        "pipeline": NullScheduler(),
    }
    pipes = {}
    for side, scheduler in schedulers.items():
        pipe = DDPMPipeline(unet=unet, scheduler=peers.diffusers_scheduler("ddpm", schedule))
        pipe.scheduler = scheduler
        pipe.set_progress_bar_config(disable=True)
        pipes[side] = pipe
    return pipes


def _clock(samples: dict[str, list[float]]) -> dict:
    """Medians, spread, the schedulers' own share and the ratios, from per-repeat µs/step of every side."""
    us = {side: statistics.median(t) for side, t in samples.items()}
    own = {side: us[side] - us["pipeline"] for side in ("diffkit", "diffusers")}
    return {"us_per_step": us, "spread_us_per_step": {side: [min(t), max(t)] for side, t in samples.items()},
            "scheduler_us_per_step": own, "ratio": us["diffkit"] / us["diffusers"],
            "ratio_own": own["diffkit"] / own["diffusers"],
            "ratio_fastest": min(samples["diffkit"]) / min(samples["diffusers"])}


def bench(name: str, shape: tuple[int, ...], steps: int, repeats: int, warmup: int) -> dict:
    """One row: ``name`` at ``shape`` on every side (module docstring), on both clocks."""
    pipes = _pipelines(name, shape)
    calls: dict[str, Callable[[], object]] = {
        side: (lambda pipe=pipe: pipe(batch_size=shape[0], generator=torch.Generator().manual_seed(0),
                                      num_inference_steps=steps, output_type="pt"))
        for side, pipe in pipes.items()}
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {side: [] for side in calls}
    cpu: dict[str, list[float]] = {side: [] for side in calls}
    for _ in range(repeats):  # interleaved: load from other processes hits every side alike
        for side, fn in calls.items():
            start_wall, start_cpu = time.perf_counter(), time.thread_time()
            fn()
            cpu[side].append((time.thread_time() - start_cpu) / steps * 1e6)
            wall[side].append((time.perf_counter() - start_wall) / steps * 1e6)
    set_timesteps = {side: statistics.median(time_calls(lambda s=pipes[side].scheduler: s.set_timesteps(steps),
                                                        repeats, 1)) * 1e6 for side in ("diffkit", "diffusers")}
    return {"sampler": name, "spacing": SPACING[name], "shape": list(shape), "steps": steps, "repeats": repeats,
            "cpu": _clock(cpu), "wall": _clock(wall), "set_timesteps_us": set_timesteps}


def run(*, steps: int = 25, repeats: int = 7, warmup: int = 2, samplers=SAMPLERS, shapes=SHAPES,
        note: str = "") -> dict:
    """Every sampler at every shape, one printed line per row; returns the run (JSON-able)."""
    info = machine_info("cpu")
    print(f"# {info['cpu']} | torch {info['torch']} | diffusers {info['diffusers']} | {info['torch_threads']} "
          f"thread(s) | load {info['loadavg_at_start']}")
    print(f"{'sampler':<13} {'shape':<12} {'diffkit':>8} {'diffusers':>9} {'pipeline':>8} {'dk/df':>6} "
          f"{'own dk/df':>9} | {'wall dk/df':>10} {'fastest':>7}   (median CPU µs/step; ratios)")
    rows = []
    for shape in shapes:  # no inference_mode: pipelines run under their own no_grad, as users call them
        for name in samplers:
            r = bench(name, tuple(shape), steps, repeats, warmup)
            rows.append(r)
            us, c, w = r["cpu"]["us_per_step"], r["cpu"], r["wall"]
            print(f"{name:<13} {'x'.join(map(str, shape)):<12} {us['diffkit']:>8.1f} {us['diffusers']:>9.1f} "
                  f"{us['pipeline']:>8.1f} {c['ratio']:>6.2f} {c['ratio_own']:>9.2f} | {w['ratio']:>10.2f} "
                  f"{w['ratio_fastest']:>7.2f}", flush=True)
    return {"machine": info, "steps": steps, "repeats": repeats, "warmup": warmup, "note": note, "rows": rows}


def to_markdown(run: dict) -> str:
    m = run["machine"]
    about = ("Generated by `benchmarks/bench_diffusers_adapter.py`; what each side includes: "
             "`diffkit/bench/diffusers_adapter.py`. One DDPMPipeline call per side around a zero-cost U-Net, "
             f"{run['steps']} steps, medians of {run['repeats']} interleaved repeats after {run['warmup']} warmup "
             "runs. CPU = the thread's CPU time (everything runs on the calling thread: torch with 1 thread, the "
             "sampler as a greenlet), which other processes' load barely moves; wall = wall-clock, with its "
             "spread (fastest, slowest repeat). 'own' = minus the pipeline alone. Spreads: fastest–slowest repeat.")
    machine = (f"Machine: {m['cpu']}, {m['cpu_count']} CPUs visible, {m['torch_threads']} torch thread(s), torch "
               f"{m['torch']}, diffusers {m['diffusers']}, {m['platform']}; load average at start "
               f"{', '.join(f'{v:.2f}' for v in m['loadavg_at_start'])} (a shared machine: read the spread).")
    header = ("| sampler | shape | CPU µs/step diffkit / diffusers / pipeline | diffkit/diffusers (CPU) "
              "| schedulers' own (CPU) | CPU spread diffkit; diffusers | wall µs/step diffkit / diffusers "
              "| diffkit/diffusers (wall; fastest) | wall spread diffkit; diffusers "
              "| set_timesteps µs diffkit / diffusers |")
    lines = ["# Scheduler overhead inside a diffusers pipeline: DiffkitScheduler vs diffusers' scheduler", "",
             about, "", machine, "", *([f"Note: {run['note']}", ""] if run.get("note") else []),
             header, "|---|---|---:|---:|---:|---|---:|---:|---|---:|"]

    def spread(clock: dict) -> str:
        s = clock["spread_us_per_step"]
        return f"{s['diffkit'][0]:.0f}–{s['diffkit'][1]:.0f}; {s['diffusers'][0]:.0f}–{s['diffusers'][1]:.0f}"

    for r in run["rows"]:
        c, w, st = r["cpu"], r["wall"], r["set_timesteps_us"]
        cu, wu = c["us_per_step"], w["us_per_step"]
        lines.append(f"| {r['sampler']} ({r['spacing']}) | {'x'.join(map(str, r['shape']))} "
                     f"| {cu['diffkit']:.1f} / {cu['diffusers']:.1f} / {cu['pipeline']:.1f} | {c['ratio']:.2f} "
                     f"| {c['ratio_own']:.2f} | {spread(c)} | {wu['diffkit']:.1f} / {wu['diffusers']:.1f} "
                     f"| {w['ratio']:.2f}; {w['ratio_fastest']:.2f} | {spread(w)} "
                     f"| {st['diffkit']:.0f} / {st['diffusers']:.0f} |")
    return "\n".join(lines) + "\n"


def write(run: dict, out_dir: str | Path) -> Path:
    """``out_dir/diffusers_adapter_<machine tag>.json`` and ``.md``; returns the JSON's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"diffusers_adapter_{machine_tag(run['machine'])}.json"
    path.write_text(json.dumps(run, indent=1))
    path.with_suffix(".md").write_text(to_markdown(run))
    return path
