"""The low-NFE frontier: diffkit's best configuration and its default against the best peer, at NFE 5-10.

    OMP_NUM_THREADS=1 python -m benchmarks.frontier           # 3 mixtures x 2 schedules x NFE 5, 6, 8, 10
    python -m benchmarks.frontier --quick --out /tmp/frontier  # gmm2d on the linear schedule, NFE 5, 64 samples
    OMP_NUM_THREADS=1 python -m benchmarks.frontier --defaults  # the scan behind diffkit.samplers.defaults

Writes ``benchmarks/results/frontier.json``, ``.md`` and ``.png`` (error vs NFE). What is measured:
``diffkit.bench.frontier``. With ``--defaults``: ``frontier_defaults.json`` and ``.md``
(``diffkit.bench.defaults_scan``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffkit.bench import defaults_scan, frontier

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(frontier.MODELS), choices=list(frontier.MODELS))
    parser.add_argument("--schedules", nargs="+", default=list(frontier.SCHEDULES), choices=list(frontier.SCHEDULES))
    parser.add_argument("--nfe", type=int, nargs="+", default=list(frontier.NFES))
    parser.add_argument("--quick", action="store_true", help="gmm2d, linear, NFE 5, 64 samples: a smoke test")
    parser.add_argument("--defaults", action="store_true", help="the defaults scan instead (every family)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    if args.defaults:
        results = defaults_scan.scan(steps=[5] if args.quick else defaults_scan.STEPS,
                                     models=["gmm2d"] if args.quick else list(frontier.MODELS))
        print(defaults_scan.write(results, args.out).read_text())
        return
    if args.quick:
        results = frontier.run(["gmm2d"], ["linear"], [5], samples=64)
    else:
        results = frontier.run(args.models, args.schedules, args.nfe)
    path = frontier.write(results, args.out)
    print(frontier.ratio_table(results, "ratio_best", markdown=False))
    print(frontier.ratio_table(results, "ratio_default", markdown=False))
    print(f"wrote {path} (+ .json, .png) in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
