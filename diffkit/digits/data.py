"""The digits dataset: scikit-learn's bundled ``load_digits`` with a fixed train/held-out split.

1,797 grey 8x8 images of the digits 0-9, pixel values the integers 0..16. They
are kept at their native 8x8 resolution (the ``digits_small`` U-Net preset is
8x8x1, so there is no resize or padding) and scaled to [-1, 1] as ``x / 8 - 1``.

The split is fixed: ``numpy.random.default_rng(SPLIT_SEED).permutation(1797)``;
its first 1,500 indices are the training split, the remaining 297 the held-out
split (used only for evaluation: the classifier never sees it, the Frechet
distance compares samples against it). scikit-learn is needed only here (it
ships the data); it is a development dependency, not a runtime one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SPLIT_SEED = 0  # seed of the fixed permutation that defines the split
NUM_TRAIN = 1500  # images in the training split; the other 297 are held out
NUM_CLASSES = 10
RESOLUTION = 8
PIXEL_MAX = 16  # load_digits pixels are integers 0..PIXEL_MAX
SPLITS = ("train", "heldout", "all")


@dataclass(frozen=True)
class Digits:
    """Images [N, 1, 8, 8] float32 in [-1, 1] and their labels [N] int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """Map model space [-1, 1] back to the dataset's 0..16 pixel scale (clamped, still float)."""
    return ((images.float().clamp(-1, 1) + 1) * (PIXEL_MAX / 2)).clamp(0, PIXEL_MAX)


def load_digits(split: str = "train") -> Digits:
    """The ``split`` ("train": 1,500, "heldout": 297, "all": 1,797) of the digits, scaled to [-1, 1]."""
    if split not in SPLITS:
        raise ValueError(f"unknown digits split {split!r}; allowed: {list(SPLITS)}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ModuleNotFoundError as err:  # a dev dependency: say how to get it instead of a traceback
        raise ModuleNotFoundError("the digits dataset needs scikit-learn: pip install scikit-learn") from err
    bunch = sklearn_digits()
    pixels = np.asarray(bunch.images, dtype=np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    index = {"train": order[:NUM_TRAIN], "heldout": order[NUM_TRAIN:], "all": np.arange(len(labels))}[split]
    images = torch.from_numpy(pixels[index] / (PIXEL_MAX / 2) - 1.0).unsqueeze(1)
    return Digits(images=images.contiguous(), labels=torch.from_numpy(labels[index]))
