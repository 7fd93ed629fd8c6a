"""Draw one sample per seed into a folder, on one process or many (torchrun); re-running resumes.

    diffkit generate --seeds 0-49999 --outdir out                       # one process
    torchrun --standalone --nproc_per_node=8 -m diffkit generate --seeds 0-49999 --outdir out --device cuda
    torchrun --nnodes=2 --node_rank=R --master_addr=HOST --master_port=29500 --nproc_per_node=8 \\
        -m diffkit generate --seeds 0-49999 --outdir /shared/out --device cuda     # two nodes, shared folder

Writes DIR/{seed:06d}.png (exact float32 sample inside), then DIR/samples.npz (seeds, images in
[-1, 1], labels; seed order) and DIR/run.json. Seed k's sample is the same whatever the number of
processes (for one --batch): see diffkit.generate.job. --eval adds FD and classifier accuracy on
the digits models.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(parser: argparse.ArgumentParser) -> None:
    from diffkit.generate.job import LABEL_RULES, Job

    parser.add_argument("--seeds", required=True, help="seeds: N, A-B (inclusive) or a comma list, e.g. 0-49999")
    parser.add_argument("--outdir", required=True, help="output folder (shared by all nodes of a multi-node job)")
    parser.add_argument("--model", default=None,
                        help="an embedded model (digits, digits-flow) or a pretrained model file (default: digits)")
    parser.add_argument("--sampler", default=Job.sampler, help="a registered sampler (see `diffkit samplers`)")
    parser.add_argument("--steps", type=int, default=Job.steps, help="sampler steps")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--spacing", default=None, help="timestep spacing (default: the sampler's own)")
    timing.add_argument("--timesteps", default=None, help="explicit visited timesteps, comma-separated, decreasing")
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument("--label", type=int, default=None, help="draw every seed for this class")
    labels.add_argument("--labels", default=Job.labels, choices=LABEL_RULES,
                        help="random: from each seed's generator (default); balanced: seed mod classes")  # fmt: skip
    parser.add_argument("--guidance", type=float, default=Job.guidance,
                        help="classifier-free guidance scale w (default 1: the conditional model alone)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=Job.batch,
                        help=f"seeds per batch (default {Job.batch}; a resumed run keeps it)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--subdirs", action="store_true", help="write the images in folders of 1,000 seeds")
    parser.add_argument("--eval", action="store_true", help="FD and classifier accuracy at the end (digits models)")


def _timesteps(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"--timesteps must be comma-separated numbers, e.g. 999,750,500,250; got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from diffkit.generate import CollectiveError, Job, World, generate, parse_seeds
    from diffkit.generate.run import command_line
    from diffkit.generate.world import torch_threads

    world = World.from_env()
    torch.set_num_threads(torch_threads(world.local_size))  # this node's cores shared out (OMP_NUM_THREADS wins)
    try:
        try:
            seeds, timesteps = tuple(parse_seeds(args.seeds)), _timesteps(args.timesteps)
        except ValueError as err:
            raise CollectiveError(str(err)) from None
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        job = Job(seeds=seeds, outdir=Path(args.outdir), model=Path(args.model) if args.model else None,
                  sampler=args.sampler, steps=args.steps, spacing=args.spacing, timesteps=timesteps, label=args.label,
                  labels=args.labels, guidance=args.guidance, batch=args.batch, device=device, subdirs=args.subdirs,
                  evaluate=args.eval)  # fmt: skip
        record = generate(job, world, command_line(sys.argv[1:]))
    except CollectiveError:
        if world.main:
            raise
        return 2  # rank 0 reports it: one line, whatever the number of processes
    if world.main:
        _summary(job, record)
    return 0


def _summary(job, record: dict) -> None:
    n, already = len(job.seeds), record["seeds_already_written"]
    drawn, rate = record["images_generated"], record["images_per_s"]
    speed = f" at {rate:.1f} images/s" if rate else ""
    print(f"{n} seeds ({already} already written): drew {drawn} images{speed} on {record['world_size']} process(es); "
          f"wrote {job.outdir / 'samples.npz'}")  # fmt: skip
    metrics = record["eval"]
    if metrics:
        accuracy = "-" if metrics["accuracy"] is None else f"{100 * metrics['accuracy']:.1f}%"
        print(f"eval ({metrics['n']} samples): FD {metrics['fd']:.2f} ({metrics['fd_real_floor_n']} real digits: "
              f"{metrics['fd_real_floor']:.2f}), "
              f"classifier accuracy {accuracy} (on real held-out digits: "
              f"{100 * metrics['classifier_heldout_accuracy']:.1f}%)")  # fmt: skip
