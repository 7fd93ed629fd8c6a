"""Benchmark samplers: quality vs exact ground truth and a trained model, latency, and peers side by side.

Prints a table, writes JSON + a markdown summary + PNG plots to --out. ``--steps`` are
model-evaluation budgets (NFE): each sampler runs the most steps that fit (ddim,
dpmpp_2m, ...: steps = NFE; dpmpp_sde: (NFE + 1) // 2), so rows compare at equal cost.
The full, committed run is ``python benchmarks/run_full.py``.
"""

from __future__ import annotations

import argparse
import sys


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None
    if not values or min(values) < 2:
        raise argparse.ArgumentTypeError(f"expected integers >= 2, got {text!r}")
    return values


def add_parser(parser: argparse.ArgumentParser) -> None:
    from diffkit.samplers import SAMPLERS

    parser.add_argument("--model", nargs="+", choices=("gmm2d", "gmm64", "digits"), default=["gmm2d"],
                        help="quality models (default gmm2d); digits needs the embedded weights")
    parser.add_argument("--samplers", type=lambda s: tuple(v for v in s.replace(",", " ").split()),
                        default=tuple(SAMPLERS), help=f"comma-separated (default all: {','.join(SAMPLERS)})")
    parser.add_argument("--steps", type=_positive_ints, default=None,
                        help="NFE budgets, e.g. '5,10,20,50' (default 5..1000; --quick: 5,10,20)")
    parser.add_argument("--batch", type=_positive_ints, default=None,
                        help="latency batch sizes (default '1,64'; --quick: 1)")
    parser.add_argument("--latency-models", default=None,
                        help="U-Net presets to time, comma-separated, '' for none (default digits_small,ddpm_cifar10)")
    parser.add_argument("--samples", type=int, default=None, help="N samples per mixture (default 4096 / 1024)")
    parser.add_argument("--device", default="cpu", help="device for the U-Net latency runs (default cpu; quality runs stay on the CPU)")
    parser.add_argument("--out", default="benchmarks/results", help="output folder (default benchmarks/results/)")
    parser.add_argument("--no-peers", action="store_true", help="skip diffusers / k-diffusion")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quick", action="store_true", help="a small run: seconds, not minutes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    import torch

    from diffkit.bench import SuiteOptions, report, run_suite
    from diffkit.cli import CliError

    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        raise CliError(f"device {args.device!r} is not available here")
    if args.samples is not None and args.samples < 16:
        raise CliError(f"--samples must be >= 16, got {args.samples}")
    overrides = {"models": tuple(args.model), "samplers": args.samplers, "peers": not args.no_peers,
                 "device": args.device, "progress": not args.no_progress}
    if args.steps is not None:
        overrides["nfes"] = tuple(sorted(set(args.steps)))
    if args.batch is not None:
        overrides["latency_batches"] = args.batch
    if args.latency_models is not None:
        overrides["latency_models"] = tuple(m for m in args.latency_models.split(",") if m)
    if args.samples is not None:
        overrides["samples"] = args.samples
    opts = SuiteOptions.quick(**overrides) if args.quick else SuiteOptions(**overrides)
    results = run_suite(opts)
    paths = report.write(results, args.out, plots=not args.no_plots)  # files first: a report bug must not lose a run
    print(report.render(results))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
