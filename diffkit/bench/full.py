"""The full benchmark run behind ``benchmarks/results/full-*``, run by ``python benchmarks/run_full.py``.

    OMP_NUM_THREADS=1 python benchmarks/run_full.py            # everything (~20 min on 2 shared cores)
    OMP_NUM_THREADS=1 python benchmarks/run_full.py --no-digits

What it runs (see diffkit/bench/suite.py; every choice below is a budget, not a magic number):

- gmm2d, N = 4096, and gmm64, N = 1024 (budgets capped at NFE 500 there: 64-D calls cost
  ~16x more), every sampler at NFE 5..1000, deterministic samplers also at linspace, and the
  diffusers / k-diffusion peers on the same x_T; float64; orders fitted over NFE 20..500.
- digits (each embedded model whose weights exist: the eps model "digits" and the rectified-flow
  "digits-flow"): 200 class-balanced samples per sampler at NFE 5, 10, 20, 50; reference
  DPM-Solver++(2M) at 250 steps (Karras; the flow model's own ``shifted`` grid).
- latency at the embedded model's size (digits_small) and at ddpm_cifar10 size, batch 1 and 64,
  10/20/50 steps; runs estimated above 3 s (ddpm_cifar10 at batch 64) are extrapolated from the
  measured evaluation time and overhead, and marked so.

Results: <out>/full-<machine>.json / .md / *.png (the machine is named in the tag and inside
the files: CPU model, cores, torch threads, torch version). ``only_digits`` reruns the digits
section alone and merges it into the earlier full-<machine>.json.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from diffkit.bench import report
from diffkit.bench.machine import machine_tag
from diffkit.bench.suite import SuiteOptions, run_suite

FULL = SuiteOptions(
    models=("gmm2d", "gmm64", "digits"),
    samples=None,  # per-mixture defaults, diffkit.bench.suite.GMM_SAMPLES
    max_nfe={"gmm64": 500},
    latency_models=("digits_small", "ddpm_cifar10"),
    latency_batches=(1, 64),
    latency_steps=(10, 20, 50),
    digits={"samples": 200, "nfes": (5, 10, 20, 50), "reference_steps": 250},
)


def options(*, digits: bool = True, latency: bool = True, only_digits: bool = False) -> SuiteOptions:
    """``FULL``, less the digits or the latency section, or the digits section alone (no peers)."""
    opts = FULL
    if only_digits:
        opts = dataclasses.replace(opts, models=("digits",), latency_models=(), peers=False)
    if not digits:
        opts = dataclasses.replace(opts, models=tuple(m for m in opts.models if m != "digits"))
    if not latency:
        opts = dataclasses.replace(opts, latency_models=())
    return opts


def merge_digits(previous: dict, results: dict) -> dict:
    """``previous`` (an earlier full run) with the digits section and its options from ``results``, and a
    ``digits_run`` record of where and how long that section ran."""
    models = list(dict.fromkeys(list(previous["options"]["models"]) + ["digits"]))
    return {**previous, "digits": results["digits"],
            "digits_run": {"machine": results["machine"], "wall_seconds": results["wall_seconds"]},
            "options": {**previous["options"], "models": models, "digits": results["options"]["digits"]}}


def run(out_dir: str | Path, *, digits: bool = True, latency: bool = True,
        only_digits: bool = False) -> tuple[dict, dict[str, Path]]:
    """Run ``options(...)``, write ``out_dir/full-<machine>.*``; returns (results, paths written).

    With ``only_digits``, raises FileNotFoundError when there is no earlier full run to merge into.
    """
    start = time.perf_counter()
    results = run_suite(options(digits=digits, latency=latency, only_digits=only_digits))
    results["wall_seconds"] = time.perf_counter() - start
    stem = f"full-{machine_tag(results['machine'])}"
    if only_digits:
        previous = Path(out_dir) / f"{stem}.json"
        if not previous.is_file():
            raise FileNotFoundError(f"no earlier full run at {previous} to merge the digits section into")
        results = merge_digits(json.loads(previous.read_text()), results)
    return results, report.write(results, out_dir, stem=stem)  # files first: a rendering bug must not lose a run
