"""Draw class-conditional digits with any sampler and save them as a PNG grid.

    diffkit sample                                  # embedded digits model, dpmpp_2m, 20 steps -> samples.png
    diffkit sample --sampler ddim --steps 50 --label 7 --n 25 --guidance 3 --out sevens.png
    diffkit sample --model digits-flow              # the embedded rectified-flow model
    diffkit sample --checkpoint runs/digits.safetensors
    diffkit sample --guidance 0 --classifier-guidance 4   # the unconditional model, guided by the classifier
    diffkit sample --timesteps grid.json    # a grid saved by diffkit fit-timesteps or diffkit.io.timesteps

Without --label the samples cycle through the classes 0, 1, ..., 9. Shows progress on
stderr, then prints the sampling time per sample and per step.
"""

from __future__ import annotations

import argparse
import time

from diffkit.cli._digits import add_model, checkpoint_path
from diffkit.cli.args import MAX_SEED, CliError, integer, real, require_suffix

DEFAULT_SAMPLER = "dpmpp_2m"  # the measured guidance policy's choice at the default w = 2
DEFAULT_GUIDANCE = 2.0  # classifier-free guidance scale w; 1 is the plain conditional model
GRID_SCALE = 4  # each 8x8 digit becomes 32x32 pixels in the PNG
BATCH_SIZE = 500  # samples drawn at once: memory stays bounded whatever --n is
MAX_GRID_PIXELS = 2**28  # the PNG is built in memory (1 byte per pixel): ~250k digits at most


def add_parser(parser: argparse.ArgumentParser) -> None:
    from diffkit.samplers import SAMPLERS
    from diffkit.schedules.spacing import MAX_STEPS

    parser.add_argument("--sampler", default=None,
                        help=f"one of {', '.join(SAMPLERS)} (default: {DEFAULT_SAMPLER}, or with --timesteps the "
                             "sampler the file was fitted for)")  # fmt: skip
    parser.add_argument("--steps", type=integer(1, MAX_STEPS), default=20, help="sampler steps")
    parser.add_argument("--n", type=integer(1), default=20, help="number of samples")
    parser.add_argument("--label", type=integer(), default=None, help="draw only this class (default: cycle 0..9)")
    parser.add_argument("--guidance", type=real(), default=DEFAULT_GUIDANCE,
                        help="classifier-free guidance scale w (1: none)")
    parser.add_argument("--seed", type=integer(0, MAX_SEED), default=0, help="seed of the noise")
    parser.add_argument("--spacing", default=None,
                        help="timestep spacing (`diffkit samplers` lists them; default: the sampler's own where the "
                             "model's schedule has it, else the schedule's)")
    parser.add_argument("--timesteps", default=None, metavar="FILE.json",
                        help="an explicit grid (diffkit.io.timesteps, e.g. fitted by diffkit.optimize_timesteps); "
                             "its length replaces --steps, and it takes no --spacing")  # fmt: skip
    add_model(parser)
    parser.add_argument("--out", default="samples.png", help="output PNG")
    parser.add_argument("--columns", type=integer(1), default=None,
                        help="grid columns (default: 10, or fewer samples; at most --n)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--classifier-guidance", type=real(), default=0.0, metavar="S",
                        help="classifier guidance scale on top of --guidance (0: none; --guidance 0 guides the "
                             "unconditional model); the classifier is the shipped noisy-digits one or --classifier")
    parser.add_argument("--classifier", default=None, help="noise-conditional classifier weights (.safetensors)")


def run(args: argparse.Namespace) -> int:
    import torch

    from diffkit.digits.evaluate import balanced_labels, sample_digits
    from diffkit.io.png import image_grid, write_png
    from diffkit.io.pretrained import load_pretrained
    from diffkit.io.tensorfile import check_writable
    from diffkit.samplers.registry import SAMPLERS, get_sampler
    from diffkit.schedules import timesteps
    from diffkit.schedules.spacing import default_spacing

    # Everything that can be checked is checked before the model is loaded and long before sampling.
    if args.sampler is not None:
        get_sampler(args.sampler)  # ValueError listing the samplers
    require_suffix("--out", args.out, [".png"])
    check_writable(args.out)
    checkpoint = checkpoint_path(args)
    if args.timesteps is not None and args.spacing is not None:
        raise CliError("--timesteps FILE is the grid itself; drop --spacing")
    model, schedule = load_pretrained(checkpoint)
    grid = fitted_for = None
    if args.timesteps is not None:  # the file's grid replaces --steps and --spacing
        from diffkit.io.timesteps import read_timesteps

        grid, fitted_for = read_timesteps(args.timesteps, schedule)
        args.steps = len(grid)
    if args.sampler is None and fitted_for is not None and fitted_for not in SAMPLERS:
        raise CliError(f"{args.timesteps} was fitted for the sampler {fitted_for!r}, which this diffkit does not "
                       f"have; pass --sampler")
    info = get_sampler(args.sampler or fitted_for or DEFAULT_SAMPLER)
    cfg = model.config
    if cfg.num_classes is None:
        raise CliError("this checkpoint holds an unconditional model; diffkit sample needs a class-conditional one")
    if args.label is not None and not 0 <= args.label < cfg.num_classes:
        raise CliError(f"--label must be in [0, {cfg.num_classes - 1}]; got {args.label}")
    spacing = args.spacing or default_spacing(schedule, info.default_spacing)
    if grid is None:
        timesteps(schedule, args.steps, spacing)  # ValueError for a spacing or step count the schedule cannot take
    columns = min(args.columns or cfg.num_classes, args.n)
    rows = -(-args.n // columns)
    cell = cfg.resolution * GRID_SCALE + 1
    pixels = (rows * cell + 1) * (columns * cell + 1) * cfg.in_channels
    if pixels > MAX_GRID_PIXELS:
        raise CliError(f"the PNG grid of {args.n} samples would have {pixels:,} pixels, more than {MAX_GRID_PIXELS:,}; "
                       f"lower --n")  # fmt: skip
    labels = balanced_labels(args.n, cfg.num_classes) if args.label is None else torch.full((args.n,), args.label)

    classifier = _classifier(args)
    start = time.perf_counter()
    samples = sample_digits(model, schedule, labels, sampler=info.name, steps=args.steps, guidance=args.guidance,
                            seed=args.seed, spacing=args.spacing, timesteps=grid, batch_size=BATCH_SIZE,
                            progress=not args.no_progress, classifier_guidance=args.classifier_guidance,
                            classifier=classifier[0], classifier_schedule=classifier[1])  # fmt: skip
    seconds = time.perf_counter() - start
    write_png(args.out, image_grid(samples, columns=columns, scale=GRID_SCALE))
    print(_report(args, info, args.timesteps if grid is not None else spacing, seconds))
    print(f"wrote {args.out}")
    return 0


def _classifier(args: argparse.Namespace):
    """(classifier, the schedule it was trained on) for --classifier-guidance ((None, None) without it)."""
    if args.classifier_guidance == 0.0:
        if args.classifier is not None:
            raise CliError("--classifier is used by --classifier-guidance S; give a scale S != 0 or drop --classifier")
        return None, None
    from diffkit.digits.classifier import CLASSIFIER_WEIGHTS, load_classifier

    if args.classifier is None and not CLASSIFIER_WEIGHTS.is_file():
        raise CliError(f"the shipped classifier {CLASSIFIER_WEIGHTS} is missing; "
                       "reinstall diffkit or pass --classifier")
    return load_classifier(args.classifier)


def _report(args: argparse.Namespace, info, spacing: str, seconds: float) -> str:
    """What was measured: sampling alone (not loading the model or writing the PNG), per sample and per step."""
    import torch

    batches = -(-args.n // BATCH_SIZE)
    batch = f"a batch of {args.n}" if batches == 1 else f"{batches} batches of up to {BATCH_SIZE}"
    guided = "no guidance" if args.guidance == 1.0 else f"guidance {args.guidance:g}"
    if args.classifier_guidance:
        guided += f", classifier guidance {args.classifier_guidance:g}"
    width = min(args.n, BATCH_SIZE) * (1 if args.guidance in (0.0, 1.0) else 2)  # CFG evaluates cond + uncond at once
    threads = torch.get_num_threads()
    return (f"{args.n} samples, {info.name}, {args.steps} steps ({spacing} spacing), {guided}\n"
            f"sampling took {seconds:.3f} s on {threads} thread{'s' if threads > 1 else ''} "
            f"(loading and PNG writing not included): {1e3 * seconds / args.n:.2f} ms/sample, "
            f"{1e3 * seconds / (args.steps * batches):.1f} ms/step for {batch} "
            f"({info.nfe(args.steps)} U-Net calls per batch on up to {width} images each)")  # fmt: skip
