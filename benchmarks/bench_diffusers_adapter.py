"""Scheduler overhead per step inside a diffusers pipeline: DiffkitScheduler vs diffusers' own scheduler, one run.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_diffusers_adapter
    OMP_NUM_THREADS=1 python -m benchmarks.bench_diffusers_adapter --quick --no-write

Writes benchmarks/results/diffusers_adapter_<machine>.json and .md. What each side
includes: ``diffkit.bench.diffusers_adapter``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffkit.bench import diffusers_adapter

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--samplers", nargs="*", default=list(diffusers_adapter.SAMPLERS))
    parser.add_argument("--quick", action="store_true", help="the small shape, 3 repeats (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="a remark stored with this run (e.g. about machine load)")
    args = parser.parse_args(argv)
    shapes = diffusers_adapter.SHAPES[:1] if args.quick else diffusers_adapter.SHAPES
    repeats = 3 if args.quick else args.repeats
    run = diffusers_adapter.run(steps=args.steps, repeats=repeats, warmup=args.warmup, samplers=args.samplers,
                                shapes=shapes, note=args.note)
    if not args.no_write:
        path = diffusers_adapter.write(run, RESULTS)
        print(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
