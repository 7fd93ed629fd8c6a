"""End to end on a GPU: the ddpm_cifar10 U-Net, batch 64, 20 steps of dpmpp_2m.

    python benchmarks/bench_end_to_end.py [--batch 64] [--steps 20] [--dtype fp16]

Eager, fused kernels, and fused as a CUDA graph; writes benchmarks/results/end_to_end-<device>.json
and .md. What is measured: ``diffkit.bench.end_to_end``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: this checkout's diffkit, not another installed one
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from diffkit.bench import end_to_end  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dtype", choices=sorted(end_to_end.DTYPES), default="fp16")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_end_to_end: a CUDA device is required (none found); nothing measured.", file=sys.stderr)
        return 2
    record = end_to_end.run(batch=args.batch, steps=args.steps, dtype=args.dtype, repeats=args.repeats)
    print(end_to_end.write(record, args.out), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
