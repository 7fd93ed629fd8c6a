"""Timestep grids as JSON files, with the schedule they belong to (checked on load).

    save_timesteps("digits-dpmpp_2m-6.json", grid, schedule, sampler="dpmpp_2m")
    grid = load_timesteps("digits-dpmpp_2m-6.json", schedule)   # ValueError if fitted for another schedule
    grid, sampler = read_timesteps("digits-dpmpp_2m-6.json", schedule)   # and the sampler, if recorded

A grid's numbers are times of one schedule (training timesteps of a DiscreteVP, sigma of an
EDM schedule, ...), so the file stores that schedule (as :func:`diffkit.io.pretrained.schedule_to_dict`
writes it) and loading with any other schedule is refused. The format, one JSON object::

    {"format": "diffkit.timesteps", "version": 1, "schedule": {"name": "Linear", ...},
     "timesteps": [999.0, 733.1, ...], "sampler": "dpmpp_2m"}

Floats are written with Python's repr, so they read back bit for bit. ``sampler`` (the sampler
the grid was fitted for) is optional and informative. The reader accepts at most ``MAX_BYTES``,
rejects NaN and infinities, and reports every malformed file as a ValueError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from diffkit.io.pretrained import schedule_from_dict, schedule_to_dict
from diffkit.io.tensorfile import write_atomic
from diffkit.samplers.timetable import TimestepsLike, check_timesteps
from diffkit.schedules.base import Schedule

FORMAT = "diffkit.timesteps"
VERSION = 1
MAX_BYTES = 16 * 2**20  # a million timesteps fit in ~20 bytes each; anything larger is not a grid file


def save_timesteps(path: str | os.PathLike, timesteps: TimestepsLike, schedule: Schedule,
                   sampler: str | None = None) -> None:
    """Write ``timesteps`` (validated: strictly decreasing, within the schedule's [t_min, t_max]) atomically."""
    grid = check_timesteps(schedule, timesteps)
    if sampler is not None and not isinstance(sampler, str):
        raise ValueError(f"sampler must be a name or None, got {sampler!r}")
    record = {"format": FORMAT, "version": VERSION, "schedule": schedule_to_dict(schedule), "timesteps": list(grid)}
    if sampler is not None:
        record["sampler"] = sampler
    write_atomic(path, (json.dumps(record, indent=1) + "\n").encode())


def load_timesteps(path: str | os.PathLike, schedule: Schedule) -> np.ndarray:
    """The grid in ``path`` as float64, after checking it belongs to ``schedule`` and is a valid grid of it."""
    return read_timesteps(path, schedule)[0]


def read_timesteps(path: str | os.PathLike, schedule: Schedule) -> tuple[np.ndarray, str | None]:
    """(the grid, as :func:`load_timesteps` returns it; the sampler it was fitted for, or None if not recorded)."""
    path = Path(path)
    with open(path, "rb") as f:
        blob = f.read(MAX_BYTES + 1)
    if len(blob) > MAX_BYTES:
        raise ValueError(f"{path}: more than {MAX_BYTES} bytes; not a timesteps file")
    record = _parse(blob, path)
    expected = schedule_to_dict(schedule)
    if record["schedule"] != expected:
        raise ValueError(f"{path} holds timesteps of the schedule {record['schedule']}, but sampling uses {expected}; "
                         f"fit a grid for this schedule (diffkit.optimize_timesteps)")
    try:
        grid = np.asarray(check_timesteps(schedule, record["timesteps"]), dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return grid, record.get("sampler")


def _parse(blob: bytes, path: Path) -> dict:
    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not allowed")

    try:
        record = json.loads(blob.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{path} is not a JSON timesteps file: {err}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a timesteps file (no \"format\": \"{FORMAT}\")")
    if record.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported version {record.get('version')!r}; this diffkit reads version {VERSION}")
    grid, stored = record.get("timesteps"), record.get("schedule")
    if not isinstance(grid, list) or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in grid):
        raise ValueError(f"{path}: \"timesteps\" must be a list of numbers")
    if not isinstance(stored, dict):
        raise ValueError(f"{path}: \"schedule\" must be an object naming the schedule")
    if not isinstance(record.get("sampler", ""), str):
        raise ValueError(f"{path}: \"sampler\" must be a sampler's name")
    try:
        schedule_from_dict(stored)  # a schedule this diffkit knows, with valid parameters
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad schedule {stored}: {err}") from None
    return record
