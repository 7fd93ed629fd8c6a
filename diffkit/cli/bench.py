"""Benchmark samplers: quality vs exact ground truth and a trained model, latency, and peers side by side.

Prints a table, writes JSON + a markdown summary + PNG plots to --out. ``--steps`` are
model-evaluation budgets (NFE): each sampler runs the most steps that fit (ddim,
dpmpp_2m, ...: steps = NFE; dpmpp_sde: (NFE + 1) // 2), so rows compare at equal cost.
Results go to runs/bench/ by default (ignored by git); the full, committed run is
``python benchmarks/run_full.py``, which writes benchmarks/results/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from diffkit.cli.args import CliError, integer, integer_list

DEFAULT_OUT = "runs/bench"  # not benchmarks/results/, which holds the committed full run (ignored by git: /runs/)
MAX_NFE = 1000  # the mixtures' schedule has T = 1000, and ddpm's leading spacing visits at most T timesteps
MAX_BATCH = 4096  # latency batch sizes: 64x the full run's largest (64)
MAX_SAMPLES = 1_000_000  # N per mixture: ~250x the full run's 4096


def add_parser(parser: argparse.ArgumentParser) -> None:
    from diffkit.samplers import SAMPLERS

    parser.add_argument("--model", nargs="+", choices=("gmm2d", "gmm64", "digits"), default=["gmm2d"],
                        help="quality models; digits needs the embedded weights")
    parser.add_argument("--samplers", type=lambda s: tuple(v for v in s.replace(",", " ").split()),
                        default=tuple(SAMPLERS), help="comma-separated sampler names")
    parser.add_argument("--steps", type=integer_list(2, MAX_NFE), default=None,
                        help="NFE budgets, e.g. '5,10,20,50' (default 5..1000; --quick: 5,10,20)")
    parser.add_argument("--batch", type=integer_list(1, MAX_BATCH), default=None,
                        help="latency batch sizes (default '1,64'; --quick: 1)")
    parser.add_argument("--latency-models", default=None,
                        help="U-Net presets to time, comma-separated, '' for none (default digits_small,ddpm_cifar10)")
    parser.add_argument("--samples", type=integer(16, MAX_SAMPLES), default=None,
                        help="N samples per mixture (default 4096 / 1024; --quick: 256)")
    parser.add_argument("--device", default="cpu",
                        help="device for the U-Net latency runs (quality runs stay on the CPU)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--no-peers", action="store_true", help="skip diffusers / k-diffusion")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quick", action="store_true", help="a small run: seconds, not minutes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    import torch

    from diffkit.bench import SuiteOptions, report, run_suite
    from diffkit.io.tensorfile import check_writable
    from diffkit.samplers import SAMPLERS

    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        raise CliError(f"device {args.device!r} is not available here; allowed: cpu" +
                       (", cuda" if torch.cuda.is_available() else ""))  # fmt: skip
    unknown = [name for name in args.samplers if name not in SAMPLERS]
    if unknown or not args.samplers:
        raise CliError(f"unknown sampler(s) {', '.join(unknown) or '(none given)'}; allowed: {', '.join(SAMPLERS)}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CliError(f"--out {args.out} is a file; it must be a folder")
    check_writable(Path(args.out) / "bench.json")
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
