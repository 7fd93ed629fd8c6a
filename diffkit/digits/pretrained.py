"""The embedded digits models shipped inside the package, and loading them by name.

``EMBEDDED_MODELS`` names them; each file says what its network predicts and which schedule
it was trained on (:mod:`diffkit.io.pretrained`), so samplers read it correctly as loaded:

    digits        DDPM objective (eps target) on the Linear schedule    scripts/train_digits.sh
    digits-flow   rectified flow (velocity target eps - x0) on FlowMatch  scripts/train_digits_flow.sh

Both are the class-conditional ``digits_small`` U-Net (EMA weights, float32, 6.5 MB), and each
script reproduces its file bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from diffkit.io import pretrained as files
from diffkit.schedules import Schedule

__all__ = ["DIGITS_FLOW_WEIGHTS", "DIGITS_WEIGHTS", "EMBEDDED_MODELS", "EmbeddedModel", "embedded_model",
           "load_embedded", "load_pretrained"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class EmbeddedModel:
    """One shipped model: its file and the script that reproduces it."""

    path: Path  # the safetensors file (weights, config with prediction_type, schedule)
    script: str  # the command that reproduces it, relative to the repository root
    description: str  # one line for listings


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "digits": EmbeddedModel(WEIGHTS_DIR / "digits.safetensors", "scripts/train_digits.sh",
                            "DDPM objective (eps prediction), Linear schedule"),
    "digits-flow": EmbeddedModel(WEIGHTS_DIR / "digits_flow.safetensors", "scripts/train_digits_flow.sh",
                                 "rectified flow (velocity prediction), FlowMatch schedule"),
}
DEFAULT_MODEL = "digits"
DIGITS_WEIGHTS = EMBEDDED_MODELS["digits"].path
DIGITS_FLOW_WEIGHTS = EMBEDDED_MODELS["digits-flow"].path


def embedded_model(name: str) -> EmbeddedModel:
    """The embedded model ``name``; ValueError listing the names otherwise."""
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"unknown embedded model {name!r}; allowed: {', '.join(EMBEDDED_MODELS)}")
    return EMBEDDED_MODELS[name]


def load_embedded(name: str = DEFAULT_MODEL) -> tuple[nn.Module, Schedule]:
    """``(unet in eval mode, schedule)`` of the embedded model ``name``; the unet carries its ``prediction_type``."""
    model = embedded_model(name)
    if not model.path.is_file():
        raise FileNotFoundError(f"the embedded weights {model.path} are missing; run {model.script}")
    return files.load_pretrained(model.path)


def load_pretrained(path: str | os.PathLike | None = None) -> tuple[nn.Module, Schedule]:
    """``(unet in eval mode, schedule)`` from ``path`` (see :func:`diffkit.io.pretrained.load_pretrained`).

    Default: the embedded digits model.
    """
    return load_embedded() if path is None else files.load_pretrained(path)
