"""What ``diffkit edit`` and ``diffkit inpaint`` share: the model, the common flags, the picture they write."""

from __future__ import annotations

import argparse

GRID_SCALE = 4  # each 8x8 digit becomes 32x32 pixels in the PNG, as in ``diffkit sample``


def add_common(parser: argparse.ArgumentParser, out: str) -> None:
    parser.add_argument("--n", type=int, default=10, help="inputs: the first N held-out digits")
    parser.add_argument("--sampler", default="dpmpp_2m", help="a registered sampler (see `diffkit samplers`)")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps")
    parser.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale w with a label")
    parser.add_argument("--seed", type=int, default=0, help="seed of all noise")
    parser.add_argument("--checkpoint", default=None, help="weights (.safetensors; default: the embedded digits model)")
    parser.add_argument("--out", default=out, help="output PNG")


def load(args: argparse.Namespace):
    """(unet, schedule, images, labels) after checking the common flags; CliError/ValueError otherwise."""
    from diffkit.cli import CliError
    from diffkit.digits.editing import heldout_inputs
    from diffkit.digits.pretrained import DIGITS_WEIGHTS, load_pretrained
    from diffkit.samplers.registry import get_sampler

    get_sampler(args.sampler)  # ValueError listing the samplers
    if args.steps < 1:
        raise CliError(f"--steps must be >= 1; got {args.steps}")
    if not args.out.lower().endswith(".png"):
        raise CliError(f"--out must end in .png; got {args.out}")
    if args.checkpoint is None and not DIGITS_WEIGHTS.is_file():
        raise CliError(f"the embedded weights {DIGITS_WEIGHTS} are missing; run scripts/train_digits.sh or pass --checkpoint")
    try:
        images, labels = heldout_inputs(args.n)
    except ModuleNotFoundError as err:
        raise CliError(str(err)) from err
    model, schedule = load_pretrained(args.checkpoint)
    if model.config.num_classes is None:
        raise CliError("this checkpoint holds an unconditional model; the digits commands need a class-conditional one")
    label = getattr(args, "label", None)
    if label is not None and not 0 <= label < model.config.num_classes:
        raise CliError(f"--label must be in [0, {model.config.num_classes - 1}]; got {label}")
    return model, schedule, images, labels


def write_rows(path: str, rows: list) -> None:
    """One row of digits per entry of ``rows`` (tensors [n, 1, 8, 8] in [-1, 1]) as a PNG grid."""
    import torch

    from diffkit.io.png import image_grid, write_png

    write_png(path, image_grid(torch.cat(rows), columns=len(rows[0]), scale=GRID_SCALE))
