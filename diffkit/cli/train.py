r"""Train a class-conditional U-Net on the digits and save its EMA weights (resumable).

    diffkit train --preset digits_small --steps 4000 --out runs/digits.safetensors \
        --checkpoint runs/digits_ckpt.safetensors --checkpoint-every 250
    diffkit train ... --resume          # continue exactly where the checkpoint stopped
    diffkit train --objective flow ...  # rectified flow (velocity target) on the FlowMatch schedule

Every path and value is checked before training starts. An existing --checkpoint is never
overwritten by a fresh run (pass --resume to continue it), and --out may not be the
weights shipped inside diffkit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from diffkit.cli.args import MAX_SEED, CliError, integer, real, require_suffix, same_file

DATASETS = ("digits",)
SCHEDULE_NAMES = ("linear", "cosine", "flow")
OBJECTIVE_SCHEDULES = {"ddpm": "linear", "flow": "flow", "flow_uniform": "flow"}  # each objective's default schedule


def add_parser(parser: argparse.ArgumentParser) -> None:
    from diffkit.unet import PRESETS

    parser.add_argument("--dataset", default="digits", choices=DATASETS,
                        help="training data (the 1,500-image train split)")
    parser.add_argument("--preset", default="digits_small", choices=sorted(PRESETS), help="U-Net preset")
    parser.add_argument("--objective", default="ddpm", choices=tuple(OBJECTIVE_SCHEDULES),
                        help="loss (diffkit.digits.objectives): ddpm (eps target) or flow (velocity target)")
    parser.add_argument("--schedule", default=None, choices=SCHEDULE_NAMES,
                        help="noise schedule, T=1000 (default: linear for ddpm, flow (FlowMatch) for flow)")
    parser.add_argument("--steps", type=integer(1), default=4000, help="total optimisation steps")
    parser.add_argument("--batch-size", type=integer(1), default=128,
                        help="images per step (at most the dataset's size)")
    parser.add_argument("--lr", type=real(0, lo_open=True), default=1e-3, help="AdamW learning rate after warm-up")
    parser.add_argument("--warmup", type=integer(0), default=200, help="linear learning-rate warm-up steps")
    parser.add_argument("--ema-decay", type=real(0, 1, hi_open=True), default=0.999,
                        help="EMA decay of the shipped weights")
    parser.add_argument("--grad-clip", type=real(0, lo_open=True), default=1.0, help="global gradient-norm clip")
    parser.add_argument("--label-dropout", type=real(0, 1, hi_open=True), default=0.1,
                        help="null-label probability (for guidance)")
    parser.add_argument("--seed", type=integer(0, MAX_SEED), default=0,
                        help="seeds initialisation, batches and dropout")
    parser.add_argument("--out", required=True, help="where to write the EMA weights (.safetensors)")
    parser.add_argument("--checkpoint", default=None, help="training checkpoint path (.safetensors)")
    parser.add_argument("--checkpoint-every", type=integer(1), default=250, help="steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")


def _check_paths(args: argparse.Namespace) -> None:
    from diffkit.digits.pretrained import EMBEDDED_MODELS
    from diffkit.io.tensorfile import check_writable

    require_suffix("--out", args.out, [".safetensors"])
    check_writable(args.out)
    for name, shipped in EMBEDDED_MODELS.items():
        if same_file(args.out, shipped.path):
            raise CliError(f"--out {args.out} is the {name} model shipped with diffkit; write elsewhere "
                           f"({shipped.script} compares a new run with it)")
    if args.checkpoint is None:
        if args.resume:
            raise CliError("--resume needs --checkpoint")
        return
    require_suffix("--checkpoint", args.checkpoint, [".safetensors"])
    check_writable(args.checkpoint)
    if same_file(args.out, args.checkpoint):
        raise CliError("--out and --checkpoint are the same file; the EMA weights would replace the checkpoint")
    exists = Path(args.checkpoint).is_file()
    if args.resume and not exists:
        raise CliError(f"--resume: no checkpoint at {args.checkpoint}")
    if exists and not args.resume:
        raise CliError(f"{args.checkpoint} exists; add --resume to continue it, or remove it to start over")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from diffkit.digits.data import load_digits
    from diffkit.digits.train import TrainOptions, read_checkpoint, train
    from diffkit.io.pretrained import save_pretrained
    from diffkit.digits.objectives import get_objective
    from diffkit.schedules import Cosine, FlowMatch, Linear
    from diffkit.unet import PRESETS, UNet

    _check_paths(args)
    if args.resume:
        read_checkpoint(args.checkpoint)  # complete and well-formed, before anything is built
    try:
        data = load_digits("train")
    except ModuleNotFoundError as err:
        raise CliError(str(err)) from err
    if args.batch_size > len(data):
        raise CliError(f"--batch-size must be in [1, {len(data)}] (the {args.dataset} train split); "
                       f"got {args.batch_size}")
    torch.manual_seed(args.seed)  # the initialisation; training itself reseeds from --seed
    config = dataclasses.replace(PRESETS[args.preset], prediction_type=get_objective(args.objective).prediction_type)
    model = UNet.from_config(config)  # the file it is saved to says what it predicts
    if model.config.num_classes is None:
        raise CliError(f"preset {args.preset!r} is unconditional; the digits trainer needs a class-conditional one")
    schedules = {"linear": Linear, "cosine": Cosine, "flow": FlowMatch}
    schedule = schedules[args.schedule or OBJECTIVE_SCHEDULES[args.objective]]()
    options = TrainOptions(
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup,
        ema_decay=args.ema_decay,
        grad_clip=args.grad_clip,
        label_dropout=args.label_dropout,
        null_label=model.null_label,
        seed=args.seed,
        objective=args.objective,
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"training {args.preset} ({params:,} parameters, {args.objective} objective, {type(schedule).__name__}) "
          f"on {len(data)} digits, {args.steps} steps, "
          f"{torch.get_num_threads()} threads", file=sys.stderr)
    start = time.perf_counter()
    try:
        result = train(
            model, data.images, data.labels, schedule, args.steps, options,
            checkpoint_path=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume, progress=True,
        )
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_interrupted(args)) from None
    save_pretrained(args.out, result.ema, schedule)
    print(f"wrote {args.out} (EMA weights) after {result.step} steps, {time.perf_counter() - start:.0f} s",
          file=sys.stderr)
    return 0


def _interrupted(args: argparse.Namespace) -> str:
    """The one line shown on Ctrl-C: where the run can continue from."""
    from diffkit.io.tensorfile import read_metadata

    if args.checkpoint is None:
        return "interrupted; nothing was saved (pass --checkpoint to make a run resumable)"
    try:
        step = read_metadata(args.checkpoint)["step"]
    except (OSError, ValueError, KeyError):
        return f"interrupted before the first checkpoint (step {args.checkpoint_every}); nothing to resume"
    again = "the same command" if args.resume else "the same command with --resume"
    return f"interrupted; {args.checkpoint} holds step {step} of {args.steps}: to continue, run {again}"
