"""Train the noise-conditional digits classifier (:mod:`diffkit.digits.classifier`), bit for bit reproducibly.

    python -m diffkit.digits.train_classifier                 # -> runs/digits_classifier.safetensors

Each step draws a batch of the train split (with replacement), shifts each image by up to one
pixel (zero fill: the digits do not fill their 8x8 box the same way every time), draws t ~ U{0,
..., T-1} and eps ~ N(0, I), forms x_t = alpha_t x0 + sigma_t eps with the embedded model's
schedule, and minimises the cross-entropy of the labels with AdamW (cosine learning-rate decay).
Every random draw comes from one seeded generator on the CPU; with one thread (as
``scripts/train_digits_classifier.sh`` runs it) the weights are the same bytes on every run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from diffkit.digits.classifier import CLASSIFIER_WEIGHTS, NoisyDigitsClassifier, save_classifier
from diffkit.digits.data import load_digits
from diffkit.progress import ProgressBar
from diffkit.schedules import Linear, Schedule

DEFAULT_OUT = Path("runs") / "digits_classifier.safetensors"


@dataclass(frozen=True)
class ClassifierTraining:
    """Hyper-parameters of :func:`train_classifier`."""

    steps: int = 4000  # AdamW steps
    batch_size: int = 256  # images per step, drawn with replacement
    lr: float = 2e-3  # peak learning rate; cosine decay to 0 over ``steps``
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    seed: int = 0  # seeds the initialisation and every draw


def shift_images(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by (dy, dx) in {-1, 0, 1}^2, drawn per image, zero (pixel value -1) filled."""
    n, _, h, w = images.shape
    padded = F.pad(images[:, 0], (1, 1, 1, 1), value=-1.0)  # [n, h + 2, w + 2]
    dy, dx = torch.randint(0, 3, (2, n, 1), generator=generator)
    rows, cols = (dy + torch.arange(h))[:, :, None], (dx + torch.arange(w))[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols].unsqueeze(1)


def train_classifier(schedule: Schedule, options: ClassifierTraining = ClassifierTraining(), *,
                     progress: bool = False) -> tuple[NoisyDigitsClassifier, list[float]]:
    """The trained classifier (eval mode) and its per-step losses."""
    data = load_digits("train")
    generator = torch.Generator().manual_seed(options.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = NoisyDigitsClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    T = schedule.num_train_timesteps
    losses = []
    bar = ProgressBar(options.steps, "steps", enabled=progress)
    for step in range(options.steps):
        index = torch.randint(len(data), (options.batch_size,), generator=generator)
        x0 = shift_images(data.images[index], generator)
        t = torch.randint(T, (options.batch_size,), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        x_t = schedule.add_noise(x0, eps, t)
        loss = F.cross_entropy(model(x_t, t.float()), data.labels[index])
        for group in optimizer.param_groups:
            group["lr"] = options.lr * 0.5 * (1 + math.cos(math.pi * step / options.steps))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        bar.update(step + 1, f"loss {losses[-1]:.3f}")
    bar.close()
    return model.eval().requires_grad_(False), losses


def heldout_accuracy(model: NoisyDigitsClassifier, schedule: Schedule, t: float, seed: int = 0) -> float:
    """Accuracy on the 297 held-out digits noised to time ``t`` (one fixed noise draw)."""
    data = load_digits("heldout")
    eps = torch.randn(data.images.shape, generator=torch.Generator().manual_seed(seed))
    tt = torch.full((len(data),), float(t))
    with torch.no_grad():
        predicted = model(schedule.add_noise(data.images, eps, tt), tt).argmax(1)
    return float((predicted == data.labels).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffkit.digits.train_classifier",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help=f"output file (default {DEFAULT_OUT})")
    parser.add_argument("--steps", type=int, default=ClassifierTraining.steps, help="AdamW steps")
    parser.add_argument("--seed", type=int, default=0, help="seeds initialisation and every draw")
    args = parser.parse_args(argv)
    out = Path(args.out or DEFAULT_OUT)
    if out.suffix != ".safetensors":
        parser.error(f"--out must end in .safetensors, got {out}")
    if out.exists() and out.resolve() == CLASSIFIER_WEIGHTS.resolve():
        parser.error(f"--out {out} is the classifier shipped with diffkit; write elsewhere (this script compares)")
    schedule = Linear()  # the embedded digits model's schedule
    start = time.perf_counter()
    model, losses = train_classifier(schedule, ClassifierTraining(steps=args.steps, seed=args.seed), progress=True)
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    save_classifier(out, model, schedule)
    params = sum(p.numel() for p in model.parameters())
    accuracy = ", ".join(f"t={t}: {heldout_accuracy(model, schedule, t):.3f}" for t in (0, 100, 250, 500, 750))
    print(f"{params:,} parameters, {args.steps} steps in {seconds:.0f} s ({torch.get_num_threads()} threads), "
          f"final loss {sum(losses[-100:]) / min(100, len(losses)):.3f}", file=sys.stderr)
    print(f"held-out accuracy {accuracy}", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    same = CLASSIFIER_WEIGHTS.is_file() and out.read_bytes() == CLASSIFIER_WEIGHTS.read_bytes()
    print(f"{out} is byte for byte the shipped {CLASSIFIER_WEIGHTS.name}" if same else
          f"{out} differs from the shipped {CLASSIFIER_WEIGHTS.name} (expected unless this was the full run)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
