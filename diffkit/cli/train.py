"""Train a class-conditional U-Net on the digits and save its EMA weights (resumable).

    diffkit train --preset digits_small --steps 4000 --out runs/digits.safetensors \
        --checkpoint runs/digits_ckpt.safetensors --checkpoint-every 250
    diffkit train ... --resume          # continue exactly where the checkpoint stopped
    diffkit train --objective flow ...  # rectified flow (velocity target) on the FlowMatch schedule
"""

from __future__ import annotations

import argparse
import sys
import time

DATASETS = ("digits",)
SCHEDULE_NAMES = ("linear", "cosine", "flow")
OBJECTIVE_SCHEDULES = {"ddpm": "linear", "flow": "flow", "flow_uniform": "flow"}  # each objective's default schedule


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", choices=DATASETS, help="training data (the 1,500-image train split)")
    parser.add_argument("--preset", default="digits_small", help="U-Net preset (diffkit.unet.PRESETS)")
    parser.add_argument("--objective", default="ddpm", choices=tuple(OBJECTIVE_SCHEDULES),
                        help="loss (diffkit.digits.objectives): ddpm (eps target) or flow (velocity target)")
    parser.add_argument("--schedule", default=None, choices=SCHEDULE_NAMES,
                        help="noise schedule, T=1000 (default: linear for ddpm, flow (FlowMatch) for flow)")
    parser.add_argument("--steps", type=int, default=4000, help="total optimisation steps")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate after warm-up")
    parser.add_argument("--warmup", type=int, default=200, help="linear learning-rate warm-up steps")
    parser.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the shipped weights")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="global gradient-norm clip")
    parser.add_argument("--label-dropout", type=float, default=0.1, help="null-label probability (for guidance)")
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation, batches and dropout")
    parser.add_argument("--out", required=True, help="where to write the EMA weights (.safetensors)")
    parser.add_argument("--checkpoint", default=None, help="training checkpoint path (.safetensors)")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from diffkit.cli import CliError
    from diffkit.digits.data import load_digits
    from diffkit.io.pretrained import save_pretrained
    from diffkit.digits.objectives import get_objective
    from diffkit.digits.train import TrainOptions, train
    from diffkit.schedules import Cosine, FlowMatch, Linear
    from diffkit.unet import PRESETS, UNet

    if args.preset not in PRESETS:
        raise CliError(f"unknown preset {args.preset!r}; allowed: {sorted(PRESETS)}")
    if not args.out.endswith(".safetensors"):
        raise CliError(f"--out must end in .safetensors; got {args.out}")
    if args.resume and args.checkpoint is None:
        raise CliError("--resume needs --checkpoint")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        data = load_digits("train")
    except ModuleNotFoundError as err:
        raise CliError(str(err)) from err
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
    result = train(
        model, data.images, data.labels, schedule, args.steps, options,
        checkpoint_path=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume, progress=True,
    )
    save_pretrained(args.out, result.ema, schedule)
    print(f"wrote {args.out} (EMA weights) after {result.step} steps, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0
