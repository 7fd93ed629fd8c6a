"""Guidance and editing, measured: classifier guidance and solver order under CFG on the digits model;
inpainting against the Gaussian mixture's exact conditional, inversion round trips, img2img strengths.

    OMP_NUM_THREADS=1 python -m benchmarks.guidance_editing              # ~1 h on one CPU core
    python -m benchmarks.guidance_editing --quick                         # minutes, small and noisy

Writes ``benchmarks/results/guidance_editing.json`` and ``.md``. What is measured:
``diffkit.bench.guidance`` and ``diffkit.bench.editing``; the tables: ``diffkit.bench.guidance_report``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffkit.bench import guidance_report
from diffkit.bench.report import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sample counts and grids (a smoke run)")
    parser.add_argument("--parts", nargs="+", default=list(guidance_report.PARTS), choices=guidance_report.PARTS)
    parser.add_argument("--out", default=str(RESULTS / "guidance_editing"), help="path stem of the .json and .md")
    args = parser.parse_args()
    report = guidance_report.measure(args.parts, quick=args.quick)
    print(write_results(args.out, report, guidance_report.markdown(report)).read_text())


if __name__ == "__main__":
    main()
