"""End to end on a GPU: the ddpm_cifar10 U-Net, batch 64, 20 steps of dpmpp_2m.

Three ways to run the same deterministic sampling loop from the same x_T:

1. eager      -- every launcher on its plain-PyTorch reference, attention through SDPA;
2. fused      -- the fused Triton step update, attention and GroupNorm+SiLU kernels;
3. fused+graph -- (2) captured once as a CUDA graph and replayed: the loop has no
                  host-device synchronisation (tested on meta tensors), so capture works.

Reports ms per sample and per step (median of repeats, CUDA events), the speedups,
and the max difference between the three outputs. Run by ``benchmarks/bench_end_to_end.py``
(``run``, then ``write``), which writes benchmarks/results/end_to_end-<device>.json and .md.
Needs a CUDA device.

    python benchmarks/bench_end_to_end.py [--batch 64] [--steps 20] [--dtype fp16]
"""

from __future__ import annotations

import json
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

import diffkit
from diffkit.bench.machine import machine_info
from diffkit.kernels import fused_attention, fused_groupnorm_silu, reference_kernels
from diffkit.unet import build_unet

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _time(fn, repeats: int) -> list[float]:
    """Milliseconds per call, measured with CUDA events after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times


def sampling_modes(unet, schedule, x_T: torch.Tensor, steps: int) -> dict[str, Callable[[], torch.Tensor]]:
    """The eager and the fused run of one deterministic dpmpp_2m loop from ``x_T``."""

    @torch.no_grad()
    def run() -> torch.Tensor:
        return diffkit.sample(unet, schedule, "dpmpp_2m", steps=steps, x=x_T)

    def eager() -> torch.Tensor:
        with reference_kernels(), fused_attention(False), fused_groupnorm_silu(False):
            return run()

    def fused() -> torch.Tensor:
        with fused_attention(True), fused_groupnorm_silu(True):
            return run()

    return {"eager": eager, "fused": fused}


def capture_graph(fused: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], torch.Tensor]:
    """``fused`` captured once as a CUDA graph: (replay, the tensor each replay writes)."""
    fused()  # autotune every kernel before capture: the autotuner must not run inside a graph
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fused()
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        graph_out = fused()
    return graph.replay, graph_out


def summarize(ms_total: dict[str, float], outputs: dict[str, torch.Tensor], batch: int, steps: int) -> dict:
    """Per mode: ms total / per sample / per step, speedup and max |difference| against eager."""
    return {
        name: {"ms_total": ms, "ms_per_sample": ms / batch, "ms_per_step": ms / steps,
               "speedup_vs_eager": ms_total["eager"] / ms,
               "max_abs_diff_vs_eager": (outputs[name] - outputs["eager"]).abs().max().item()}
        for name, ms in ms_total.items()
    }


def to_markdown(results: dict, config: dict, machine: dict) -> str:
    lines = [f"# End to end: {config['model']}, batch {config['batch']}, {config['steps']} steps of "
             f"{config['sampler']}, {config['dtype']}",
             "", f"Device: {machine['device']}; torch {machine['torch']}; median of {config['repeats']} runs.", "",
             "| mode | ms total | ms/sample | ms/step | speedup vs eager | max abs diff vs eager |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['ms_total']:.1f} | {r['ms_per_sample']:.3f} | {r['ms_per_step']:.2f} | "
                     f"{r['speedup_vs_eager']:.2f}x | {r['max_abs_diff_vs_eager']:.2e} |")
    return "\n".join(lines) + "\n"


def run(batch: int = 64, steps: int = 20, dtype: str = "fp16", repeats: int = 5) -> dict:
    """The three modes on the current GPU: {"machine", "config", "results"}, as ``write`` stores it."""
    device = torch.device("cuda")
    schedule = diffkit.schedules.Linear()
    unet = build_unet("ddpm_cifar10").to(device=device, dtype=DTYPES[dtype]).eval()
    x_T = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device, DTYPES[dtype])
    runs = sampling_modes(unet, schedule, x_T, steps)
    runs["fused+graph"], graph_out = capture_graph(runs["fused"])

    outputs = {"eager": runs["eager"](), "fused": runs["fused"]()}
    runs["fused+graph"]()
    torch.cuda.synchronize()
    outputs["fused+graph"] = graph_out.clone()
    ms_total = {name: statistics.median(_time(fn, repeats)) for name, fn in runs.items()}
    results = summarize(ms_total, outputs, batch, steps)

    info = machine_info("cuda")
    machine = {"device": info["gpu"], "torch": info["torch"], "host": platform.node()}
    config = {"model": "ddpm_cifar10", "batch": batch, "steps": steps, "sampler": "dpmpp_2m",
              "dtype": dtype, "repeats": repeats}
    return {"machine": machine, "config": config, "results": results}


def write(record: dict, out_dir: str | Path) -> str:
    """``out_dir/end_to_end-<device>.json`` and ``.md`` from ``run``'s record; returns the markdown."""
    markdown = to_markdown(record["results"], record["config"], record["machine"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "end_to_end-" + record["machine"]["device"].replace(" ", "_")
    (out_dir / f"{stem}.json").write_text(json.dumps(record, indent=2))
    (out_dir / f"{stem}.md").write_text(markdown)
    return markdown
