"""Draw class-conditional digits with any sampler and save them as a PNG grid.

    diffkit sample                                  # embedded digits model, dpmpp_2m, 20 steps -> samples.png
    diffkit sample --sampler ddim --steps 50 --label 7 --n 25 --guidance 3 --out sevens.png
    diffkit sample --model digits-flow              # the embedded rectified-flow model
    diffkit sample --checkpoint runs/digits.safetensors

Without --label the samples cycle through the classes 0, 1, ..., 9. Prints the
latency per sample and per step.
"""

from __future__ import annotations

import argparse
import time

DEFAULT_GUIDANCE = 2.0  # classifier-free guidance scale w; 1 is the plain conditional model
GRID_SCALE = 4  # each 8x8 digit becomes 32x32 pixels in the PNG


def add_parser(parser: argparse.ArgumentParser) -> None:
    from diffkit.digits.pretrained import DEFAULT_MODEL, EMBEDDED_MODELS

    parser.add_argument("--sampler", default="dpmpp_2m", help="a registered sampler (see `diffkit samplers`)")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps")
    parser.add_argument("--n", type=int, default=20, help="number of samples")
    parser.add_argument("--label", type=int, default=None, help="draw only this class (default: cycle 0..9)")
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE,
                        help=f"classifier-free guidance scale w (1: none; default {DEFAULT_GUIDANCE})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument("--spacing", default=None,
                        help="timestep spacing (default: the sampler's own where the model's schedule has it)")
    parser.add_argument("--model", default=None, choices=tuple(EMBEDDED_MODELS),
                        help=f"an embedded model (default {DEFAULT_MODEL}): "
                             + "; ".join(f"{k}: {m.description}" for k, m in EMBEDDED_MODELS.items()))
    parser.add_argument("--checkpoint", default=None, help="weights (.safetensors) instead of an embedded model")
    parser.add_argument("--out", default="samples.png", help="output PNG")
    parser.add_argument("--columns", type=int, default=None, help="grid columns (default: 10, or fewer samples)")


def run(args: argparse.Namespace) -> int:
    import torch

    from diffkit.cli import CliError
    from diffkit.digits.evaluate import balanced_labels, sample_digits
    from diffkit.io.png import image_grid, write_png
    from diffkit.digits.pretrained import DEFAULT_MODEL, load_embedded
    from diffkit.io.pretrained import load_pretrained
    from diffkit.samplers.registry import get_sampler
    from diffkit.schedules.spacing import default_spacing, spacings

    info = get_sampler(args.sampler)  # ValueError listing the samplers
    if args.steps < 1 or args.n < 1:
        raise CliError(f"--steps and --n must be >= 1; got --steps {args.steps} --n {args.n}")
    if not args.out.lower().endswith(".png"):
        raise CliError(f"--out must end in .png; got {args.out}")
    if args.model is not None and args.checkpoint is not None:
        raise CliError("pass --model (an embedded model) or --checkpoint (a file), not both")
    model, schedule = load_embedded(args.model or DEFAULT_MODEL) if args.checkpoint is None else load_pretrained(args.checkpoint)
    if args.spacing is not None and args.spacing not in spacings(schedule):
        raise CliError(f"unknown spacing {args.spacing!r} for {type(schedule).__name__}; allowed: {list(spacings(schedule))}")
    spacing = args.spacing or default_spacing(schedule, info.default_spacing)
    num_classes = model.config.num_classes
    if num_classes is None:
        raise CliError("this checkpoint holds an unconditional model; diffkit sample needs a class-conditional one")
    if args.label is not None and not 0 <= args.label < num_classes:
        raise CliError(f"--label must be in [0, {num_classes - 1}]; got {args.label}")
    labels = balanced_labels(args.n, num_classes) if args.label is None else torch.full((args.n,), args.label)

    start = time.perf_counter()
    samples = sample_digits(model, schedule, labels, sampler=args.sampler, steps=args.steps, guidance=args.guidance,
                            seed=args.seed, spacing=spacing)  # fmt: skip
    seconds = time.perf_counter() - start
    columns = args.columns or min(args.n, num_classes)
    write_png(args.out, image_grid(samples, columns=columns, scale=GRID_SCALE))
    guided = "no guidance" if args.guidance == 1.0 else f"guidance {args.guidance:g}"
    print(f"{args.n} samples, {info.name}, {args.steps} steps ({spacing} spacing), {guided}: {seconds:.3f} s, "
          f"{1e3 * seconds / args.n:.2f} ms/sample, {1e3 * seconds / args.steps:.1f} ms/step (batch of {args.n})")  # fmt: skip
    print(f"wrote {args.out}")
    return 0
