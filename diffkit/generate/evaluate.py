"""``--eval``: FD and classifier accuracy of a job's samples on the digits models, from statistics summed over ranks.

Each rank reads its share of the sample files (seed i of the sorted list goes to rank i mod size)
and sums, in float64, what the metrics need: the count n, the sum of the 64-pixel vectors, the sum
of their outer products, and how many labelled samples the digits classifier recognises. One
``all_reduce`` adds the shares; no image crosses between processes. The metrics are those of
:mod:`diffkit.digits.evaluate` (pixel space 0..16, FD to the 297 held-out digits, the SVC), and
agree with them computed on all samples in one process up to float64 summation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from diffkit.generate.job import UNCONDITIONAL, CollectiveError
from diffkit.generate.outdir import read_samples
from diffkit.generate.world import World

DIGITS_SHAPE = (1, 8, 8)
DIGITS_CLASSES = 10
_D = 64  # pixels of one digit
TRAIN_DIGITS = 1500  # the train split: the real-vs-real floor compares its first n digits with the held-out ones


def check_digits_setup() -> None:
    """CollectiveError when scikit-learn (the digits data and classifier) is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise CollectiveError("--eval needs scikit-learn (the digits data and classifier): "
                              "pip install scikit-learn, or the bench extra") from None  # fmt: skip


def check_digits_model(shape: tuple[int, ...], num_classes: int | None) -> None:
    """CollectiveError unless the model draws 1x8x8 digits (10 classes, or unconditional)."""
    if tuple(shape) != DIGITS_SHAPE or num_classes not in (None, DIGITS_CLASSES):
        raise CollectiveError(f"--eval measures digits models (1x8x8, 10 classes or none); this model draws "
                              f"{'x'.join(map(str, shape))} with {num_classes} classes")  # fmt: skip


def shard_sums(images: np.ndarray, labels: np.ndarray) -> torch.Tensor:
    """[n, sum x (64), sum x x^T (64 x 64), correct, labelled] of one shard, float64, flat."""
    from diffkit.digits.evaluate import classifier, flat_pixels

    x = flat_pixels(torch.from_numpy(images)) if len(images) else np.zeros((0, _D))
    labelled = labels != UNCONDITIONAL
    correct = int(np.sum(classifier().predict(torch.from_numpy(images[labelled])) == labels[labelled])) \
        if labelled.any() else 0  # fmt: skip
    parts = [np.array([len(x)]), x.sum(0), (x.T @ x).ravel(), np.array([correct, int(labelled.sum())])]
    return torch.from_numpy(np.concatenate(parts).astype(np.float64))


def metrics_from_sums(sums: torch.Tensor) -> dict:
    """FD to the held-out digits and classifier accuracy from summed shard statistics (see ``shard_sums``)."""
    from diffkit.digits.data import load_digits
    from diffkit.digits.evaluate import (classifier, flat_pixels, gaussian_frechet_distance, moments_from_sums,
                                         real_fd_floor)  # fmt: skip

    s = sums.numpy()
    n, total, outer, (correct, labelled) = int(s[0]), s[1 : 1 + _D], s[1 + _D : 1 + _D + _D * _D], s[-2:]
    mean, cov = moments_from_sums(n, total, outer.reshape(_D, _D))
    real = flat_pixels(load_digits("heldout").images)
    fd = gaussian_frechet_distance(mean, cov, real.mean(0), np.cov(real, rowvar=False))
    return {
        "n": n,
        "fd": fd,
        # what real digits score at (up to) the same set size: FD is biased upwards for small sets
        "fd_real_floor": real_fd_floor(min(n, TRAIN_DIGITS)),
        "fd_real_floor_n": min(n, TRAIN_DIGITS),
        "accuracy": correct / labelled if labelled else None,
        "classifier_heldout_accuracy": classifier().heldout_accuracy,
    }


def evaluate_digits(world: World, outdir: Path, seeds: Sequence[int], subdirs: bool) -> dict | None:
    """The metrics on rank 0 (None on the others): each rank sums its share, one all_reduce adds them."""
    mine = sorted(seeds)[world.rank :: world.size]
    images, labels = read_samples(outdir, mine, subdirs)
    if images is None:
        images = np.zeros((0, *DIGITS_SHAPE), dtype=np.float32)
    sums = world.all_reduce_sum(shard_sums(images, labels))
    return metrics_from_sums(sums) if world.main else None
