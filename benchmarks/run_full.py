"""The full benchmark run behind ``benchmarks/results/full-*``: ``python benchmarks/run_full.py``.

    OMP_NUM_THREADS=1 python benchmarks/run_full.py            # everything (~20 min on 2 shared cores)
    OMP_NUM_THREADS=1 python benchmarks/run_full.py --no-digits

What it runs (see diffkit/bench/suite.py; every choice below is a budget, not a magic number):

- gmm2d, N = 4096, and gmm64, N = 1024 (budgets capped at NFE 500 there: 64-D calls cost
  ~16x more), every sampler at NFE 5..1000, deterministic samplers also at linspace, and the
  diffusers / k-diffusion peers on the same x_T; float64; orders fitted over NFE 20..500.
- digits (when diffkit/digits/weights/digits.safetensors exists): 200 class-balanced samples per
  sampler at NFE 5, 10, 20, 50; reference DPM-Solver++(2M) Karras at 250 steps.
- latency at the embedded model's size (digits_small) and at ddpm_cifar10 size, batch 1 and 64,
  10/20/50 steps; runs estimated above 3 s (ddpm_cifar10 at batch 64) are extrapolated from the
  measured evaluation time and overhead, and marked so.

Results: benchmarks/results/full-<machine>.json / .md / *.png (the machine is named in the tag
and inside the files: CPU model, cores, torch threads, torch version).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffkit.bench import SuiteOptions, report, run_suite  # noqa: E402
from diffkit.bench.machine import machine_tag  # noqa: E402

FULL = SuiteOptions(
    models=("gmm2d", "gmm64", "digits"),
    samples=None,  # per-mixture defaults, diffkit.bench.suite.GMM_SAMPLES
    max_nfe={"gmm64": 500},
    latency_models=("digits_small", "ddpm_cifar10"),
    latency_batches=(1, 64),
    latency_steps=(10, 20, 50),
    digits={"samples": 200, "nfes": (5, 10, 20, 50), "reference_steps": 250},
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--only-digits", action="store_true",
                        help="run only the digits section and merge it into the existing full-<machine>.json")
    args = parser.parse_args(argv)
    opts = FULL
    if args.only_digits:
        opts = SuiteOptions(**{**vars_of(opts), "models": ("digits",), "latency_models": (), "peers": False})
    if args.no_digits:
        opts = SuiteOptions(**{**vars_of(opts), "models": tuple(m for m in opts.models if m != "digits")})
    if args.no_latency:
        opts = SuiteOptions(**{**vars_of(opts), "latency_models": ()})
    start = time.perf_counter()
    results = run_suite(opts)
    results["wall_seconds"] = time.perf_counter() - start
    stem = f"full-{machine_tag(results['machine'])}"
    previous = Path(args.out) / f"{stem}.json"
    if args.only_digits:
        if not previous.is_file():
            raise SystemExit(f"--only-digits needs an earlier full run at {previous}")
        merged = json.loads(previous.read_text())
        merged["digits"] = results["digits"]
        merged["digits_run"] = {"machine": results["machine"], "wall_seconds": results["wall_seconds"]}
        merged["options"]["models"] = list(dict.fromkeys(list(merged["options"]["models"]) + ["digits"]))
        merged["options"]["digits"] = results["options"]["digits"]
        results = merged
    paths = report.write(results, args.out, stem=stem)  # files first: a rendering bug must not lose a run
    print(report.render(results))
    print(f"{results['wall_seconds']:.0f} s; wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


def vars_of(opts: SuiteOptions) -> dict:
    return {f: getattr(opts, f) for f in opts.__dataclass_fields__}


if __name__ == "__main__":
    sys.exit(main())
