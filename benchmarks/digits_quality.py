"""Sample quality of both embedded digits models for every sampler: accuracy and Frechet distance.

    OMP_NUM_THREADS=1 python -m benchmarks.digits_quality            # ~30-60 min on one CPU core
    python -m benchmarks.digits_quality --n 200 --nfe 10 20          # quicker, noisier

Writes ``benchmarks/results/digits_quality.json`` and ``.md``: the eps model ("digits") and the
rectified-flow model ("digits-flow") side by side at 5, 10 and 20 NFE. What is measured (the same
path as ``diffkit bench --model digits``): ``diffkit.bench.digits``; the metrics: ``diffkit.digits.evaluate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffkit.bench import digits
from diffkit.samplers import SAMPLERS

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="samples per cell")
    parser.add_argument("--nfe", type=int, nargs="+", default=list(digits.QUALITY_NFES), help="NFE budgets")
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument("--models", nargs="+", default=list(digits.MODELS), choices=digits.MODELS)
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS), help="output folder (default benchmarks/results/)")
    args = parser.parse_args()
    report = digits.quality_report(args.n, args.nfe, args.samplers, args.guidance, args.seed, args.models)
    print(digits.write_quality(report, args.out).read_text())


if __name__ == "__main__":
    main()
