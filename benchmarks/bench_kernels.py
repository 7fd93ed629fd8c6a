"""The fused Triton kernels against their peers on one GPU, in one run.

    python benchmarks/bench_kernels.py               # needs a CUDA device and triton
    python benchmarks/bench_kernels.py --quick       # fewer shapes

Writes benchmarks/results/kernels-<machine>.json and .md. What is measured, and how to read
it: ``diffkit.bench.kernels``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: this checkout's diffkit, not another installed one
    sys.path.insert(0, str(ROOT))

from diffkit.bench import kernels  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes")
    args = parser.parse_args()
    why = kernels.unavailable()
    if why:
        sys.exit(f"bench_kernels: {why}")
    stem = kernels.write(kernels.run(args.quick), RESULTS)
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
