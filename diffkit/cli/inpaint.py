"""Inpaint held-out digits with the embedded model (replacement, RePaint's resampling) and save a PNG grid.

    diffkit inpaint --mask bottom                    # repaint the bottom halves -> inpaint.png
    diffkit inpaint --mask center --resample 5 --jump 2 --sampler ddpm --steps 50
    diffkit inpaint --mask 1111111111111111111111111111111100000000000000000000000000000000

Rows: the inputs, the masked inputs (grey: repainted), the results. ``--mask`` names the
region repainted (top, bottom, left, right, center, random) or spells the 8x8 mask as 64
characters 0/1 in row order (1 = keep). Without --label the unconditional model must read
the class from the kept pixels; with it, the class-conditional model at --guidance.
"""

from __future__ import annotations

import argparse

from diffkit.cli._digits import add_common, load, write_rows
from diffkit.cli.args import integer


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mask", default="bottom", help="region repainted (top, bottom, left, right, center, "
                                                         "random) or 64 characters 0/1, 1 = keep (default: bottom)")
    parser.add_argument("--resample", type=integer(1, 100), default=1,
                        help="RePaint: denoise each segment this many times")
    parser.add_argument("--jump", type=integer(1), default=1, help="RePaint: steps per segment (with --resample > 1)")
    parser.add_argument("--label", type=integer(), default=None,
                        help="class to inpaint (default: the unconditional model)")
    add_common(parser, "inpaint.png")


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from diffkit.digits.editing import digit_mask, inpaint_digits

    mask = digit_mask(args.mask, args.seed)  # ValueError saying what is allowed
    model, schedule, images, _ = load(args)
    labels = None if args.label is None else torch.full((len(images),), args.label)
    start = time.perf_counter()
    result = inpaint_digits(model, schedule, images, mask, labels, sampler=args.sampler, steps=args.steps,
                            resample=args.resample, jump=args.jump, guidance=args.guidance, seed=args.seed)
    seconds = time.perf_counter() - start
    write_rows(args.out, [images, torch.where(mask.bool(), images, torch.zeros_like(images)), result])
    model_used = "unconditional" if args.label is None else f"class {args.label}, guidance {args.guidance:g}"
    print(f"{len(images)} digits inpainted ({model_used}; {args.sampler}, {args.steps} steps, resample "
          f"{args.resample}, jump {args.jump}): {seconds:.2f} s")
    print(f"wrote {args.out} (rows: input, mask, result)")
    return 0
