"""Edit held-out digits with the embedded model (img2img: noise to a strength, then sample) and save a PNG grid.

    diffkit edit --strength 0.5                      # redraw the first 10 held-out digits at half the noise
    diffkit edit --strength 0.3 0.6 0.9 --label 8    # turn them into 8s, one row per strength -> edit.png

Rows: the inputs, then one row of results per strength. ``--strength`` is the fraction of
the schedule's noise range the edit starts from (diffkit.editing.start_time): near 0 returns
the input, 1 samples afresh. Without --label each digit keeps its own class.
"""

from __future__ import annotations

import argparse

from diffkit.cli._digits import add_common, load, write_rows
from diffkit.cli.args import integer, real


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strength", type=real(0, 1, lo_open=True), nargs="+", default=[0.5],
                        help="noise level(s) in (0, 1] to start from (one row each; default 0.5)")
    parser.add_argument("--label", type=integer(), default=None,
                        help="class to edit towards (default: each input's own)")
    add_common(parser, "edit.png")


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from diffkit.digits.editing import edit_digits
    from diffkit.editing import start_time

    model, schedule, images, labels = load(args)
    for strength in args.strength:
        start_time(schedule, strength)  # ValueError saying what is allowed, before any work
    target = labels if args.label is None else torch.full_like(labels, args.label)
    rows, start = [images], time.perf_counter()
    for strength in args.strength:
        rows.append(edit_digits(model, schedule, images, target, strength, sampler=args.sampler, steps=args.steps,
                                guidance=args.guidance, seed=args.seed))
    seconds = time.perf_counter() - start
    write_rows(args.out, rows)
    towards = "their own classes" if args.label is None else f"class {args.label}"
    print(f"{len(images)} digits edited towards {towards} at strength {', '.join(f'{s:g}' for s in args.strength)} "
          f"({args.sampler}, {args.steps} steps, guidance {args.guidance:g}): {seconds:.2f} s")
    print(f"wrote {args.out} (rows: input, then one per strength)")
    return 0
