"""What ``diffkit edit`` and ``diffkit inpaint`` share: the model, the common flags, the picture they write."""

from __future__ import annotations

import argparse

from diffkit.cli.args import MAX_SEED, CliError, integer, real, require_suffix, same_file

HELDOUT = 297  # held-out digits (diffkit.digits.data: 1,797 - 1,500)
GRID_SCALE = 4  # each 8x8 digit becomes 32x32 pixels in the PNG, as in ``diffkit sample``


def add_common(parser: argparse.ArgumentParser, out: str) -> None:
    from diffkit.samplers import SAMPLERS
    from diffkit.schedules.spacing import MAX_STEPS

    parser.add_argument("--n", type=integer(1, HELDOUT), default=10, help="inputs: the first N held-out digits")
    parser.add_argument("--sampler", default="dpmpp_2m", help=f"one of {', '.join(SAMPLERS)}")
    parser.add_argument("--steps", type=integer(1, MAX_STEPS), default=20, help="sampler steps")
    parser.add_argument("--guidance", type=real(), default=2.0, help="classifier-free guidance scale w with a label")
    parser.add_argument("--seed", type=integer(0, MAX_SEED), default=0, help="seed of all noise")
    add_model(parser)
    parser.add_argument("--out", default=out, help="output PNG")


def add_model(parser: argparse.ArgumentParser) -> None:
    """--model (an embedded model by name) and --checkpoint (a weights file), exclusive."""
    from diffkit.digits.pretrained import DEFAULT_MODEL, EMBEDDED_MODELS

    parser.add_argument("--model", default=None, choices=tuple(EMBEDDED_MODELS),
                        help=f"an embedded model (default {DEFAULT_MODEL}): "
                             + "; ".join(f"{k}: {m.description}" for k, m in EMBEDDED_MODELS.items()))
    parser.add_argument("--checkpoint", default=None, help="weights (.safetensors) instead of an embedded model")


def checkpoint_path(args: argparse.Namespace):
    """The weights file --model / --checkpoint name, checked against --out (already checked writable)."""
    from diffkit.digits.pretrained import DEFAULT_MODEL, embedded_model

    if args.model is not None and args.checkpoint is not None:
        raise CliError("pass --model (an embedded model) or --checkpoint (a file), not both")
    embedded = embedded_model(args.model or DEFAULT_MODEL)
    checkpoint = embedded.path if args.checkpoint is None else args.checkpoint
    if same_file(args.out, checkpoint):
        raise CliError(f"--out {args.out} is the checkpoint being read; write elsewhere")
    if args.checkpoint is None and not embedded.path.is_file():
        raise CliError(f"the embedded weights {embedded.path} are missing; reinstall diffkit or pass --checkpoint")
    return checkpoint


def load(args: argparse.Namespace):
    """(unet, schedule, images, labels) after checking the common flags; CliError/ValueError otherwise."""
    from diffkit.digits.editing import heldout_inputs
    from diffkit.io.pretrained import load_pretrained
    from diffkit.io.tensorfile import check_writable
    from diffkit.samplers.registry import get_sampler

    get_sampler(args.sampler)  # ValueError listing the samplers
    require_suffix("--out", args.out, [".png"])
    check_writable(args.out)
    checkpoint = checkpoint_path(args)
    try:
        images, labels = heldout_inputs(args.n)
    except ModuleNotFoundError as err:
        raise CliError(str(err)) from err
    model, schedule = load_pretrained(checkpoint)
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
