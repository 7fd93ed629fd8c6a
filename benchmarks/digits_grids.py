"""Digits quality at 5 and 10 NFE with grids fitted to the model, beside the default grids (both embedded models).

    OMP_NUM_THREADS=1 python -m benchmarks.digits_grids             # ~15-30 min on one core
    python -m benchmarks.digits_grids --n 200 --samplers dpmpp_2m    # quicker, noisier

Writes ``benchmarks/results/digits_grids.json`` and ``.md``; what is measured: ``diffkit.bench.digits_grids``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffkit.bench import digits_grids
from diffkit.bench.report import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="samples per cell")
    parser.add_argument("--samplers", nargs="+", default=list(digits_grids.SAMPLERS))
    parser.add_argument("--models", nargs="+", default=["digits", "digits-flow"])
    parser.add_argument("--out", default=str(RESULTS / "digits_grids"), help="path stem of the .json and .md")
    args = parser.parse_args()
    rep = digits_grids.report(args.models, args.samplers, n=args.n)
    print(write_results(args.out, rep, digits_grids.markdown(rep)).read_text())


if __name__ == "__main__":
    main()
