"""The embedded digits model shipped inside the package, and loading it by default.

``DIGITS_WEIGHTS`` is the class-conditional digits model (EMA weights, 6.5 MB);
``scripts/train_digits.sh`` is the one command that reproduces it bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from diffkit.io import pretrained as files
from diffkit.schedules import Schedule

__all__ = ["DIGITS_WEIGHTS", "load_pretrained"]

DIGITS_WEIGHTS = Path(__file__).resolve().parent / "weights" / "digits.safetensors"


def load_pretrained(path: str | os.PathLike | None = None) -> tuple[nn.Module, Schedule]:
    """``(unet in eval mode, schedule)`` from ``path`` (see :func:`diffkit.io.pretrained.load_pretrained`); default: the embedded digits model."""
    return files.load_pretrained(DIGITS_WEIGHTS if path is None else path)
