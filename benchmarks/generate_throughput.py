"""Throughput of ``diffkit generate`` (images/s) with 1 and 2 processes on this machine, interleaved repeats.

    python -m benchmarks.generate_throughput                   # 1x1, 1x2, 2x1 (processes x threads), 5 repeats
    python -m benchmarks.generate_throughput --seeds 200 --repeats 1 --no-write   # a quick look

Writes ``benchmarks/results/generate_throughput_cpu.json`` and ``.md`` (with the command lines for GPUs).
What is measured: ``diffkit.bench.generate``.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from diffkit.bench import generate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000, help="images per run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of every configuration")
    parser.add_argument("--args", default="--sampler dpmpp_2m --steps 20 --batch 100",
                        help="further diffkit generate arguments")  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    report = generate.throughput(args.seeds, args.repeats, shlex.split(args.args), cwd=ROOT)
    print(generate.markdown(report))
    if not args.no_write:
        path = generate.write(report, RESULTS)
        print(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
