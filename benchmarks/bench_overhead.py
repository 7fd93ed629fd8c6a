"""Sampler overhead per step, diffkit vs diffusers' scheduler loops vs k-diffusion, in one run (CPU or CUDA).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_overhead
    python -m benchmarks.bench_overhead            # default threads
    python -m benchmarks.bench_overhead --device cuda   # generators, tensors and timing on the GPU

Writes benchmarks/results/overhead_<device type>.json and .md. What each side includes:
``diffkit.bench.overhead``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from diffkit.bench import overhead

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--samplers", nargs="*", default=list(overhead.SAMPLERS))
    parser.add_argument("--brownian-steps", type=int, default=10, help="steps of the dpmpp_sde+brownian row (0: skip)")
    parser.add_argument("--brownian-repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", default="", help="a remark stored with this run (e.g. about machine load)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    run = overhead.run(steps=args.steps, repeats=args.repeats, warmup=args.warmup, samplers=args.samplers,
                       brownian_steps=args.brownian_steps, brownian_repeats=args.brownian_repeats, note=args.note,
                       device=args.device)
    if not args.no_write:
        path = overhead.write(run, RESULTS, device.type)
        print(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
