"""Which sampler and spacing at 5-20 NFE on flow matching and zero terminal SNR (exact mixtures).

    OMP_NUM_THREADS=1 python -m benchmarks.family_grids          # a few minutes on one core

Writes ``benchmarks/results/family_grids.json`` and ``.md``; what is measured: ``diffkit.bench.family_grids``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffkit.bench import family_grids
from diffkit.bench.report import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128, help="samples per problem")
    parser.add_argument("--out", default=str(RESULTS / "family_grids"), help="path stem of the .json and .md")
    args = parser.parse_args()
    report = family_grids.measure(args.samples)
    print(write_results(args.out, report, family_grids.markdown(report)).read_text())


if __name__ == "__main__":
    main()
