"""Pretrained model files: a U-Net's weights plus the schedule it was trained with.

A pretrained file is safetensors (never pickle) whose header metadata holds
``config`` (the UNetConfig as JSON, as :mod:`diffkit.io.weights` writes
it, so ``diffkit.io.weights.load_unet`` reads these files too) and ``schedule`` (the
noise schedule as JSON, so sampling uses the schedule the model was trained
on). Training checkpoints (:mod:`diffkit.digits.train`) are accepted as well: their
EMA weights are used.
The embedded models shipped with diffkit are in :mod:`diffkit.digits.pretrained`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from torch import nn

from diffkit.io.tensorfile import read_tensors, save_tensors
from diffkit.io.weights import unet_from_state_dict
from diffkit.schedules import EDM, ContinuousVP, Cosine, FlowMatch, Linear, Schedule, ScaledLinear
from diffkit.unet import UNet, UNetConfig

__all__ = ["load_pretrained", "save_pretrained", "schedule_from_dict", "schedule_to_dict"]

CONFIG_KEY = "config"  # metadata key of the UNetConfig JSON (the same key diffkit.io.weights uses)
SCHEDULE_KEY = "schedule"  # metadata key of the schedule JSON
KIND_KEY = "kind"  # metadata key: "weights" or "train_checkpoint"
EMA_PREFIX = "ema."  # prefix of the EMA weights inside a training checkpoint
SCHEDULES: dict[str, type[Schedule]] = {
    cls.__name__: cls for cls in (Linear, Cosine, ScaledLinear, FlowMatch, EDM, ContinuousVP)
}


def schedule_to_dict(schedule: Schedule) -> dict:
    """``{"name": "Linear", "num_train_timesteps": 1000, ...}``: JSON-serialisable and exact."""
    name = type(schedule).__name__
    if name not in SCHEDULES or not dataclasses.is_dataclass(schedule):
        raise ValueError(f"cannot store schedule {schedule!r}; allowed: {sorted(SCHEDULES)}")
    return {"name": name, **dataclasses.asdict(schedule)}


def schedule_from_dict(data: dict) -> Schedule:
    """Inverse of :func:`schedule_to_dict`."""
    if not isinstance(data, dict):
        raise TypeError(f"a stored schedule must be a JSON object; got {type(data).__name__}")
    data = dict(data)
    name = data.pop("name", None)
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; allowed: {sorted(SCHEDULES)}")
    return SCHEDULES[name](**data)


def save_pretrained(path: str | os.PathLike, model: UNet, schedule: Schedule) -> None:
    """Save a UNet's weights with its config and its training schedule (atomically)."""
    metadata = {
        KIND_KEY: "weights",
        CONFIG_KEY: json.dumps(dataclasses.asdict(model.config), sort_keys=True),
        SCHEDULE_KEY: json.dumps(schedule_to_dict(schedule), sort_keys=True),
    }
    save_tensors(path, model.state_dict(), metadata)


def load_pretrained(path: str | os.PathLike) -> tuple[nn.Module, Schedule]:
    """``(unet in eval mode, schedule)`` from a pretrained file or a training checkpoint (its EMA weights)."""
    path = Path(path)
    tensors, metadata = read_tensors(path)
    if metadata.get(KIND_KEY) == "train_checkpoint":
        tensors = {k[len(EMA_PREFIX) :]: v for k, v in tensors.items() if k.startswith(EMA_PREFIX)}
    for key in (CONFIG_KEY, SCHEDULE_KEY):
        if key not in metadata:
            raise ValueError(f"{path} stores no {key!r} metadata; save it with diffkit.io.pretrained.save_pretrained")
    try:
        config = UNetConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
        schedule = schedule_from_dict(json.loads(metadata[SCHEDULE_KEY]))
        schedule.lambda_(np.array([schedule.t_min, schedule.t_max]))  # builds its tables now: bad values fail here
    except (ValueError, TypeError, RecursionError) as err:  # ValueError: bad JSON, bad values
        raise ValueError(f"{path} has malformed metadata: {str(err)[:300]}") from None
    return unet_from_state_dict(config, tensors, source=str(path)).eval(), schedule
