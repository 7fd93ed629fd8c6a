"""The full benchmark run behind ``benchmarks/results/full-*``: ``python benchmarks/run_full.py``.

    OMP_NUM_THREADS=1 python benchmarks/run_full.py            # everything (~20 min on 2 shared cores)
    OMP_NUM_THREADS=1 python benchmarks/run_full.py --no-digits

What it runs: ``diffkit.bench.full``. Results: benchmarks/results/full-<machine>.json / .md / *.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: this checkout's diffkit, not another installed one
    sys.path.insert(0, str(ROOT))

from diffkit.bench import full, report  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--no-digits", action="store_true")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--only-digits", action="store_true",
                        help="run only the digits section and merge it into the existing full-<machine>.json")
    args = parser.parse_args(argv)
    try:
        results, paths = full.run(args.out, digits=not args.no_digits, latency=not args.no_latency,
                                  only_digits=args.only_digits)
    except FileNotFoundError as err:
        raise SystemExit(f"--only-digits: {err}") from None
    print(report.render(results))
    print(f"{results['wall_seconds']:.0f} s; wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
