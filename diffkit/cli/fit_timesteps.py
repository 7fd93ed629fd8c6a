"""Fit a timestep grid to a digits model and a sampler, and save it as JSON for ``diffkit sample --timesteps``.

    diffkit fit-timesteps --sampler ipndm --steps 5 --out ipndm5.json
    diffkit sample --timesteps ipndm5.json           # the sampler the file was fitted for, its steps
    diffkit fit-timesteps --model digits-flow --sampler unipc --steps 6 --guidance 1 --out flow6.json

The fit is ``diffkit.fit_timesteps`` (GITS's dynamic programme over a fine teacher trajectory,
then a descent on the sampler's own error against the teacher's sample) on ``--calibration``
noises drawn from ``--seed``, the labels cycling 0..9, through the same classifier-free guidance
as ``diffkit sample`` (``--guidance``, default 2): a grid is fitted for one model, one sampler,
one step count and one guidance scale, so sample with the same ones. The calibration seed
defaults to 1, not ``diffkit sample``'s 0, so the fit never sees the noise it will sample.
Prints the fit's objective (mean distance to the teacher's sample) on the start grid and on
the fitted one, its seconds and model calls, and the grid.
"""

from __future__ import annotations

import argparse
import time

from diffkit.cli._digits import add_model, checkpoint_path
from diffkit.cli.args import MAX_SEED, CliError, integer, real, require_suffix
from diffkit.cli.sample import DEFAULT_GUIDANCE

CALIBRATION = 16  # calibration samples: diffkit.bench.digits_grids' figure (3-18 s on the digits model)
CALIBRATION_SEED = 1  # a seed diffkit sample does not use by default


def add_parser(parser: argparse.ArgumentParser) -> None:
    from diffkit.samplers.optimize import METHODS, REFINE_EVALS, deterministic_samplers
    from diffkit.schedules.spacing import MAX_STEPS

    parser.add_argument("--sampler", default="dpmpp_2m",
                        help=f"a deterministic sampler: one of {', '.join(deterministic_samplers())}")
    parser.add_argument("--steps", type=integer(1, MAX_STEPS), default=10, help="visited timesteps of the grid")
    parser.add_argument("--guidance", type=real(), default=DEFAULT_GUIDANCE,
                        help="classifier-free guidance scale w the grid is fitted under (1: none)")
    parser.add_argument("--calibration", type=integer(1, 4096), default=CALIBRATION, help="calibration samples")
    parser.add_argument("--seed", type=integer(0, MAX_SEED), default=CALIBRATION_SEED,
                        help="seed of the calibration noise")
    parser.add_argument("--method", default="gits+refine", choices=METHODS, help="diffkit.fit_timesteps' method")
    parser.add_argument("--refine-evals", type=integer(0, 10_000), default=REFINE_EVALS,
                        help="sampler runs per refined timestep (more: a lower objective, longer)")
    parser.add_argument("--spacing", default=None,
                        help="the start grid's spacing (default: the sampler's own where the model's schedule has it, "
                             "else the schedule's)")  # fmt: skip
    add_model(parser)
    parser.add_argument("--out", default="timesteps.json", help="output JSON (diffkit.io.timesteps)")


def run(args: argparse.Namespace) -> int:
    import torch

    from diffkit.digits.evaluate import balanced_labels, guided_model
    from diffkit.io.pretrained import load_pretrained
    from diffkit.io.tensorfile import check_writable
    from diffkit.io.timesteps import save_timesteps
    from diffkit.samplers import fit_timesteps
    from diffkit.samplers.optimize import deterministic_sampler

    # Everything that can be checked is checked before the model is loaded and long before the fit.
    info = deterministic_sampler(args.sampler, {})  # ValueError listing the samplers a grid can be fitted for
    require_suffix("--out", args.out, [".json"])
    check_writable(args.out)
    model, schedule = load_pretrained(checkpoint_path(args))
    cfg = model.config
    if cfg.num_classes is None:
        raise CliError("this checkpoint holds an unconditional model; the fit draws class-conditional samples")
    labels = balanced_labels(args.calibration, cfg.num_classes)
    eps_model = guided_model(model, schedule, args.guidance)
    start = time.perf_counter()
    fit = fit_timesteps(eps_model, schedule, info.name, args.steps,
                        (args.calibration, cfg.in_channels, cfg.resolution, cfg.resolution),
                        generator=torch.Generator().manual_seed(args.seed), cond={"y": labels}, method=args.method,
                        spacing=args.spacing, refine_evals=args.refine_evals)  # fmt: skip
    seconds = time.perf_counter() - start
    save_timesteps(args.out, fit.timesteps, schedule, sampler=info.name)
    print(_report(args, info.name, fit, seconds))
    print(f"wrote {args.out}: diffkit sample --timesteps {args.out}" + _same_flags(args))
    return 0


def _report(args: argparse.Namespace, sampler: str, fit, seconds: float) -> str:
    guided = "no guidance" if args.guidance == 1.0 else f"guidance {args.guidance:g}"

    def text(grid) -> str:
        return ", ".join(f"{t:.4g}" for t in grid)

    return (f"{sampler}, {args.steps} steps, {guided}, {args.calibration} calibration samples (seed {args.seed}), "
            f"{args.method}\n"
            f"objective (mean distance to the teacher's sample): {fit.start_objective:.4g} on the start grid "
            f"({text(fit.start)}) -> {fit.objective:.4g}\n"
            f"fit took {seconds:.2f} s, {fit.model_calls} model calls per calibration sample "
            f"({fit.teacher_calls} for the teacher, {fit.student_runs} sampler runs)\n"
            f"timesteps: {text(fit.timesteps)}")  # fmt: skip


def _same_flags(args: argparse.Namespace) -> str:
    """The flags ``diffkit sample`` needs to sample what was fitted (its defaults left out)."""
    flags = "" if args.guidance == DEFAULT_GUIDANCE else f" --guidance {args.guidance:g}"
    if args.model is not None:
        flags += f" --model {args.model}"
    if args.checkpoint is not None:
        flags += f" --checkpoint {args.checkpoint}"
    return flags
