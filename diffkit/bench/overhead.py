"""Sampler overhead per step, diffkit vs diffusers' scheduler loops vs k-diffusion, in one run (CPU or CUDA).

The eps-model costs nothing: it returns one preallocated tensor, the same object
for every library, so what is timed is each library's own per-step work.

What each side includes (timed from x_T to the returned sample):

- diffkit: ``diffkit.sample(model, schedule, name, steps, x=x_T, ...)``: choosing the
  timesteps, the float64 timetable, per step the model-call wrapper (t tensor,
  metadata checks, the on-device finiteness flag), the update as one linear combination
  (``kernels.lincomb``: its reference on CPU, the fused Triton kernel on CUDA), noise draws.
- diffusers: ``scheduler.set_timesteps`` and the pipeline loop ``scale_model_input``,
  t -> float tensor [B], ``scheduler.step`` (scheduler built once, outside the timing).
- k-diffusion: its ``sample_*`` function from ``sampling.py`` with the denoiser that
  turns the eps-model into D(x_k, sigma_k) (t from sigma, c_in scaling, D = x_k -
  sigma eps: what k-diffusion's own DiscreteEpsDDPMDenoiser does); sigmas computed
  once outside the timing (k-diffusion takes them as an argument). The wrapper's
  own cost per call is reported separately.

Noise: for the SDE samplers every side draws ``torch.randn`` from a generator per
noise call (dpmpp_sde and k-diffusion get it through a noise sampler, which draws
into one reused buffer on every side), so the cost
of a Brownian tree, which is the noise source's and not the sampler's, is left out.
Every draw costs the same on every side (one seed-compatible ``torch.randn``), and on a CPU it is
most of a stochastic sampler's step at the large shape (a Mersenne-Twister draw of 262,144
floats takes ~0.9 ms on one core). Each row therefore also counts every side's draws of x's
shape (one untimed run under a dispatch mode), times one draw in the same run, and reports
the ratio of the per-step times with those draws taken out: the samplers' own work.
The extra row ``dpmpp_sde+brownian`` puts it back: each library's default Brownian
noise (diffkit's BrownianNoise, diffusers' torchsde BrownianInterval, k-diffusion's
torchsde BrownianTree), at ``brownian_steps`` steps and fewer repeats (it is slow).

Timesteps: ddpm/ddim "leading", the DPM-Solver++ family "linspace" (diffusers'
defaults); k-diffusion visits the same timesteps as sigmas. Times are medians of
interleaved repeats after warmup; per step = time / visited timesteps (dpmpp_sde
makes two model calls per step).

Run by ``benchmarks/bench_overhead.py`` (``run``, then ``write``)::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_overhead
    python -m benchmarks.bench_overhead            # default threads
    python -m benchmarks.bench_overhead --device cuda   # on a GPU: generators and tensors on the device,
                                                        # timings bracketed by torch.cuda.synchronize()

Results go to benchmarks/results/overhead_<device type>.json and .md, one entry per torch
thread count. The suite (``diffkit bench``) calls ``bench`` through ``diffkit.bench.peer_runs``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import diffkit
from diffkit.bench import peers
from diffkit.bench.latency import ZeroCostModel, seconds_of, time_calls
from diffkit.bench.machine import machine_info
from diffkit.schedules import Linear, timesteps

SAMPLERS = ("ddpm", "ddim", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde")  # plus the dpmpp_sde+brownian row
SPACING = {"ddpm": "leading", "ddim": "leading", "dpmpp_2m": "linspace", "dpmpp_2m_sde": "linspace",
           "dpmpp_sde": "linspace"}
OPTIONS = {"ddim": {"eta": 0.0}}
SHAPES = ((1, 3, 32, 32), (16, 4, 64, 64))
CPU = torch.device("cpu")


def _generator(seed: int, device: torch.device) -> torch.Generator:
    """A seeded generator on ``device`` (noise is then drawn there, as a GPU user would)."""
    return torch.Generator(device=device).manual_seed(seed)


def _x_T(shape, dtype, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)


def _model(shape, dtype, device: torch.device = CPU) -> ZeroCostModel:
    """The zero-cost eps-model of every side: one fixed eps of x's shape (0.1 N(0, I), seed 1)."""
    return ZeroCostModel((torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=dtype) * 0.1).to(device))


def machine(device: torch.device = CPU) -> dict:
    """``machine_info`` under the keys this benchmark's results have always used (the JSON accumulates runs)."""
    info = machine_info(str(device))
    return {
        "platform": info["platform"],
        "cpu": info["cpu"],
        "cpu_count": info["cpu_count"],
        "torch": info["torch"],
        "threads": info["torch_threads"],
        "OMP_NUM_THREADS": info["omp_num_threads"],
        "loadavg_at_start": info["loadavg_at_start"],
        "device": info["gpu"] or "cpu",
    }


def _randn_noise(shape, dtype, device: torch.device = CPU) -> Callable[..., torch.Tensor]:
    """The SDE samplers' ``noise_sampler`` on every side: seeded randn, drawn into one buffer.

    Every library uses a draw before it asks for the next, so one buffer serves them all; a
    fresh tensor per draw would add page faults that belong to the noise source, not the sampler.
    """
    g = _generator(5, device)
    buffer = torch.empty(shape, dtype=dtype, device=device)
    return lambda a, b: torch.randn(shape, generator=g, dtype=dtype, device=device, out=buffer)


def _brownian_sides(shape, steps: int, dtype, device: torch.device = CPU) -> dict[str, Callable[[], object]]:
    """dpmpp_sde with each library's default Brownian-tree noise, built fresh per run as each library does."""
    schedule = Linear()
    model = _model(shape, dtype, device)
    x_T = _x_T(shape, dtype, device)
    ts = timesteps(schedule, steps, "linspace")
    scheduler = peers.diffusers_scheduler("dpmpp_sde", schedule, noise_sampler_seed=3)
    denoiser = peers.kdiffusion_denoiser(model, schedule)
    sigmas = peers.kdiffusion_sigmas(schedule, ts, dtype=dtype).to(device)
    sides = {
        "diffkit": lambda: diffkit.sample(model, schedule, "dpmpp_sde", steps, x=x_T, spacing="linspace",
                                          generator=_generator(3, device)),
        "diffusers": lambda: peers.run_diffusers("dpmpp_sde", model, schedule, steps, x_T, scheduler=scheduler),
    }
    if peers.k_diffusion_sampling_path() is not None:
        sides["k-diffusion"] = lambda: peers.run_kdiffusion("dpmpp_sde", model, schedule, ts, x_T,
                                                            denoiser=denoiser, sigmas=sigmas)
    return sides


def _sides(
    name: str, shape: tuple[int, ...], steps: int, dtype: torch.dtype, device: torch.device = CPU
) -> dict[str, Callable[[], object]]:
    """The three runs of one sampler as zero-argument callables (setup done here, outside the timing)."""
    if name == "dpmpp_sde+brownian":
        return _brownian_sides(shape, steps, dtype, device)
    schedule = Linear()
    model = _model(shape, dtype, device)
    x_T = _x_T(shape, dtype, device)
    spacing, options = SPACING[name], dict(OPTIONS.get(name, {}))
    g = _generator(42, device)
    dk_options = dict(options)
    if name == "dpmpp_sde":
        dk_options["noise_sampler"] = _randn_noise(shape, dtype, device)
    sides = {
        "diffkit": lambda: diffkit.sample(model, schedule, name, steps, x=x_T, generator=g, spacing=spacing,
                                          **dk_options),
    }
    scheduler = peers.diffusers_scheduler(name, schedule, spacing=spacing)
    df_options = dict(options)
    if name == "dpmpp_sde":
        df_options["noise_sampler"] = _randn_noise(shape, dtype, device)
    sides["diffusers"] = lambda: peers.run_diffusers(name, model, schedule, steps, x_T, generator=g,
                                                     scheduler=scheduler, **df_options)
    if name in peers.KDIFFUSION_PEERS and peers.k_diffusion_sampling_path() is not None:
        ts = timesteps(schedule, steps, spacing)
        denoiser = peers.kdiffusion_denoiser(model, schedule)
        sigmas = peers.kdiffusion_sigmas(schedule, ts, dtype=dtype).to(device)
        kd_options = {} if name == "dpmpp_2m" else {"noise_sampler": _randn_noise(shape, dtype, device)}
        sides["k-diffusion"] = lambda: peers.run_kdiffusion(name, model, schedule, ts, x_T, denoiser=denoiser,
                                                            sigmas=sigmas, **kd_options)
    return sides


def _denoiser_cost(shape, dtype, repeats: int = 200, device: torch.device = CPU) -> float:
    """Median µs of one call of the k-diffusion denoiser wrapper around the zero-cost model."""
    schedule = Linear()
    denoiser = peers.kdiffusion_denoiser(_model(shape, dtype, device), schedule)
    x = _x_T(shape, dtype, device)
    sigma = torch.full((shape[0],), 3.0, dtype=dtype, device=device)
    return statistics.median(time_calls(lambda: denoiser(x, sigma), repeats, 10, device)) * 1e6


class _CountDraws(TorchDispatchMode):
    """Counts normal draws (``randn``, ``normal_``) of ``numel`` elements, x's size."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.count = numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func._overloadpacket.__name__ in ("randn", "normal_") and result.numel() == self.numel:
            self.count += 1
        return result


def _noise_draws(fn: Callable[[], object], shape) -> int:
    with _CountDraws(math.prod(shape)) as mode:
        fn()
    return mode.count


def _randn_cost(shape, dtype, device: torch.device = CPU, repeats: int = 30) -> float:
    """Median µs of one generator draw of ``shape``, as every side makes it."""
    g = _generator(7, device)
    return statistics.median(time_calls(lambda: torch.randn(shape, generator=g, dtype=dtype, device=device),
                                        repeats, 3, device)) * 1e6


def bench(name: str, shape, steps: int, dtype, repeats: int, warmup: int, device: torch.device = CPU) -> dict:
    """One row: ``name`` at ``shape`` on every side, median and spread per step, ratios, noise draws taken out."""
    sides = _sides(name, shape, steps, dtype, device)
    for fn in sides.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(repeats):  # interleaved, so that load from other processes hits every side alike
        for side, fn in sides.items():
            times[side].append(seconds_of(fn, device))
    us = {side: statistics.median(ts) / steps * 1e6 for side, ts in times.items()}
    row = {"sampler": name, "shape": list(shape), "steps": steps, "repeats": repeats, "us_per_step": us,
           "spread_us_per_step": {side: [min(ts) / steps * 1e6, max(ts) / steps * 1e6] for side, ts in times.items()}}
    row["ratio_vs_diffusers"] = us["diffkit"] / us["diffusers"]
    if "k-diffusion" in us:
        row["ratio_vs_k_diffusion"] = us["diffkit"] / us["k-diffusion"]
    if name in SAMPLERS:  # the Brownian row's trees draw other sizes: no single draw cost to take out
        draws = {side: _noise_draws(fn, shape) for side, fn in sides.items()}
        draw_us = _randn_cost(shape, dtype, device)
        own = {side: us[side] - draws[side] * draw_us / steps for side in sides}
        row.update(noise_draws=draws, randn_us=draw_us, us_per_step_without_noise=own,
                   ratio_vs_diffusers_without_noise=own["diffkit"] / own["diffusers"])
    # Load from other processes only ever adds time: the ratio of the fastest runs is a second,
    # contention-robust estimate to read beside the medians' ratio.
    fastest = {side: spread[0] for side, spread in row["spread_us_per_step"].items()}
    row["min_ratio_vs_diffusers"] = fastest["diffkit"] / fastest["diffusers"]
    if "k-diffusion" in us:
        row["min_ratio_vs_k_diffusion"] = fastest["diffkit"] / fastest["k-diffusion"]
    return row


def to_markdown(runs: dict) -> str:
    lines = ["# Sampler overhead per step (zero-cost eps-model)", ""]
    lines.append("Generated by `benchmarks/bench_overhead.py`; "
                 "see `diffkit/bench/overhead.py` for what each side includes. "
                 "Targets: diffkit <= 0.5x diffusers, <= 1.0x k-diffusion.")
    for key, run in sorted(runs.items()):
        m = run["machine"]
        device = m.get("device", "cpu")
        lines += ["", f"## {key}: {device if device != 'cpu' else m['cpu']}, {m['threads']} torch thread(s), "
                      f"torch {m['torch']}", "",
                  f"{m['platform']}; {m['cpu_count']} CPUs visible, load average at start "
                  f"{', '.join(f'{v:.2f}' for v in m['loadavg_at_start'])} (shared machine); "
                  f"{run['dtype']}, medians of {run['repeats']} interleaved repeats after {run['warmup']} warmup runs "
                  f"(dpmpp_sde+brownian: {run['brownian_repeats']} repeats after 1).", "",
                  *([f"Note: {run['note']}", ""] if run.get("note") else []),
                  "k-diffusion denoiser wrapper alone (µs/call): "
                  + ", ".join(f"{tuple(s)}: {v:.1f}" for s, v in run["denoiser_us"]), "",
                  "| sampler | shape | steps | diffkit µs/step | diffusers µs/step | k-diffusion µs/step "
                  "| diffkit/diffusers | diffkit/k-diffusion | same, fastest runs | noise draws µs/step "
                  "| diffkit/diffusers without them |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
        for r in run["rows"]:
            us = r["us_per_step"]
            kd = f"{us['k-diffusion']:.1f}" if "k-diffusion" in us else "—"
            kr = f"{r['ratio_vs_k_diffusion']:.2f}" if "ratio_vs_k_diffusion" in r else "—"
            fastest = "—" if "min_ratio_vs_diffusers" not in r else f"{r['min_ratio_vs_diffusers']:.2f}" + (
                f" / {r['min_ratio_vs_k_diffusion']:.2f}" if "min_ratio_vs_k_diffusion" in r else "")
            noise, own = "—", "—"
            if "randn_us" in r:
                noise = f"{r['noise_draws']['diffkit'] * r['randn_us'] / r['steps']:.1f}"
                own = f"{r['ratio_vs_diffusers_without_noise']:.2f}"
            lines.append(f"| {r['sampler']} | {'x'.join(map(str, r['shape']))} | {r['steps']} | {us['diffkit']:.1f} "
                         f"| {us['diffusers']:.1f} | {kd} | {r['ratio_vs_diffusers']:.2f} | {kr} | {fastest} "
                         f"| {noise} | {own} |")
    return "\n".join(lines) + "\n"


def run(*, steps: int = 25, repeats: int = 7, warmup: int = 2, samplers: Sequence[str] = SAMPLERS,
        brownian_steps: int = 10, brownian_repeats: int = 3, note: str = "", device: str = "cpu") -> dict:
    """Every sampler (and the dpmpp_sde+brownian row unless ``brownian_steps`` is 0) at every shape, one printed
    line per row, then the k-diffusion denoiser wrapper's own cost; returns the run (an entry of the results JSON)."""
    device = torch.device(device)
    dtype = torch.float32
    info = machine(device)
    print(f"# {info['device']} | {info['cpu']} | torch {info['torch']} | {info['threads']} thread(s) "
          f"| load {info['loadavg_at_start']}")
    rows = []
    header = f"{'sampler':<19} {'shape':<14} {'diffkit':>9} {'diffusers':>10} {'k-diff':>9} {'dk/df':>6} {'dk/kd':>6}"
    print(header + "   (median µs/step; ratios of medians | of fastest runs | dk/df without noise draws)")
    jobs = [(name, steps, repeats, warmup) for name in samplers]
    if brownian_steps > 0:
        jobs.append(("dpmpp_sde+brownian", brownian_steps, brownian_repeats, 1))
    with peers.quiet_torchsde():  # diffusers hands torchsde float32-rounded times; torchsde warns about the last ulp
        for shape in SHAPES:
            for name, n_steps, n_repeats, n_warmup in jobs:
                r = bench(name, shape, n_steps, dtype, n_repeats, n_warmup, device)
                rows.append(r)
                us = r["us_per_step"]
                kd = f"{us['k-diffusion']:.1f}" if "k-diffusion" in us else "—"
                kr = f"{r['ratio_vs_k_diffusion']:.2f}" if "k-diffusion" in us else "—"
                fr = f"{r['min_ratio_vs_diffusers']:.2f}" + (
                    f" {r['min_ratio_vs_k_diffusion']:.2f}" if "k-diffusion" in us else "")
                own = f"{r['ratio_vs_diffusers_without_noise']:.2f}" if "randn_us" in r else "—"
                print(f"{name:<19} {'x'.join(map(str, shape)):<14} {us['diffkit']:>9.1f} {us['diffusers']:>10.1f} "
                      f"{kd:>9} {r['ratio_vs_diffusers']:>6.2f} {kr:>6} | {fr} | {own}", flush=True)
    denoiser = [(list(s), _denoiser_cost(s, dtype, device=device)) for s in SHAPES]
    return {"machine": info, "dtype": str(dtype), "steps": steps, "repeats": repeats, "warmup": warmup,
            "brownian_repeats": brownian_repeats, "note": note, "rows": rows, "denoiser_us": denoiser}


def write(run: dict, out_dir: str | Path, device_type: str = "cpu") -> Path:
    """Add ``run`` to ``out_dir/overhead_<device_type>.json`` (one entry per thread count, so runs at 1 and 2
    threads sit side by side), rewrite the .md beside it from every entry; returns the JSON's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"overhead_{device_type}.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[f"threads={run['machine']['threads']}"] = run
    path.write_text(json.dumps(runs, indent=1))
    path.with_suffix(".md").write_text(to_markdown(runs))
    return path
