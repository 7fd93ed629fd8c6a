"""Fitted time grids (diffkit.optimize_timesteps) against the default spacing, on the Gaussian mixtures and digits.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_grids                      # all problems, ~15 min on one core
    python -m benchmarks.bench_grids --problems gmm2d-linear --nfe 5 10     # one problem, quicker

Writes ``benchmarks/results/grids.json`` and ``.md``. What is measured: ``diffkit.bench.grids``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffkit.bench import grids

RESULTS = Path(__file__).resolve().parent / "results"
PROBLEMS = ["gmm2d-linear", "gmm64-linear", "gmm2d-cosine", "gmm64-cosine", "digits"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=PROBLEMS, choices=PROBLEMS)
    parser.add_argument("--samplers", nargs="+", default=None, help="deterministic samplers (default: all)")
    parser.add_argument("--nfe", type=int, nargs="+", default=list(grids.NFES))
    parser.add_argument("--stem", default="grids", help="output file name stem")
    args = parser.parse_args()
    results = grids.run(args.problems, args.samplers, args.nfe)
    print(grids.write(results, RESULTS, args.stem).read_text())


if __name__ == "__main__":
    main()
