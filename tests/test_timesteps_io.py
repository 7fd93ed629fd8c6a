"""diffkit.io.timesteps: grids as JSON round-trip bit for bit, belong to one schedule, and bad files are ValueErrors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.io.timesteps import MAX_BYTES, load_timesteps, read_timesteps, save_timesteps
from diffkit.schedules import Cosine, Linear, timesteps


def test_round_trip_is_exact(tmp_path):
    grid = timesteps(Linear(), 9, "karras")  # fractional values: repr round-trips them exactly
    save_timesteps(tmp_path / "g.json", grid, Linear(), sampler="dpmpp_2m")
    loaded = load_timesteps(tmp_path / "g.json", Linear())
    assert loaded.dtype == np.float64 and np.array_equal(loaded, grid)
    record = json.loads((tmp_path / "g.json").read_text())
    assert record["sampler"] == "dpmpp_2m" and record["schedule"]["name"] == "Linear"
    grid_too, sampler = read_timesteps(tmp_path / "g.json", Linear())  # the grid and the sampler it was fitted for
    assert np.array_equal(grid_too, grid) and sampler == "dpmpp_2m"
    save_timesteps(tmp_path / "bare.json", grid, Linear())
    assert read_timesteps(tmp_path / "bare.json", Linear())[1] is None  # no sampler recorded


def test_another_schedule_is_refused(tmp_path):
    save_timesteps(tmp_path / "g.json", [999.0, 400.0, 0.0], Linear())
    with pytest.raises(ValueError, match="holds timesteps of the schedule .*'Linear'.* but sampling uses .*'Cosine'"):
        load_timesteps(tmp_path / "g.json", Cosine())
    with pytest.raises(ValueError, match="beta_end"):  # the same family with other parameters is another schedule
        load_timesteps(tmp_path / "g.json", Linear(beta_end=0.03))


def test_invalid_grids_are_refused_on_save_and_load(tmp_path):
    with pytest.raises(ValueError, match="strictly decreasing"):
        save_timesteps(tmp_path / "g.json", [999.0, 999.0, 0.0], Linear())
    save_timesteps(tmp_path / "g.json", [999.0, 0.0], Linear())
    record = json.loads((tmp_path / "g.json").read_text())
    record["timesteps"] = [999.0, 1000.5]
    (tmp_path / "g.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"g.json: timesteps must lie in \[t_min, t_max\]=\[0, 999\]"):
        load_timesteps(tmp_path / "g.json", Linear())


@pytest.mark.parametrize("text, match", [
    ("", "not a JSON timesteps file"),
    ("{\"format\": \"diffkit.timesteps\"", "not a JSON timesteps file"),
    ("[1, 2]", "not a timesteps file"),
    ('{"format": "diffkit.timesteps", "version": 2}', "unsupported version 2"),
    ('{"format": "diffkit.timesteps", "version": 1, "schedule": {"name": "Linear"}, "timesteps": [999, NaN]}',
     "NaN is not allowed"),
    ('{"format": "diffkit.timesteps", "version": 1, "schedule": {"name": "Linear"}, "timesteps": "999"}',
     "must be a list of numbers"),
    ('{"format": "diffkit.timesteps", "version": 1, "schedule": {"name": "Spline"}, "timesteps": [999]}',
     "unknown schedule 'Spline'"),
    ('{"format": "diffkit.timesteps", "version": 1, "schedule": {"name": "Linear", "beta_end": 2}, "timesteps": [9]}',
     "bad schedule"),
    ('{"format": "diffkit.timesteps", "version": 1, "schedule": {"name": "Linear"}, "timesteps": [9], "sampler": 1}',
     "\"sampler\" must be a sampler's name"),
])
def test_malformed_files(tmp_path, text, match):
    (tmp_path / "g.json").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_timesteps(tmp_path / "g.json", Linear())


def test_oversized_files_are_not_read(tmp_path):
    (tmp_path / "g.json").write_bytes(b" " * (MAX_BYTES + 1))
    with pytest.raises(ValueError, match="more than"):
        load_timesteps(tmp_path / "g.json", Linear())


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["format", "version", "schedule", "timesteps", "sampler"]), JSON),
       st.booleans(), st.binary(max_size=64))
def test_fuzzed_files_raise_value_errors_only(tmp_path_factory, fields, well_formed_head, garbage):
    if well_formed_head:
        fields = {"format": "diffkit.timesteps", "version": 1, **fields}
    path = tmp_path_factory.mktemp("fuzz") / "g.json"
    path.write_bytes(json.dumps(fields).encode() + (garbage if not well_formed_head else b""))
    try:
        grid = load_timesteps(path, Linear())
    except ValueError:
        return
    assert np.all(np.diff(grid) < 0) and grid.min() >= 0 and grid.max() <= 999  # whatever loads is a valid grid


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["Linear", "Cosine", "ScaledLinear"]),
       st.dictionaries(st.sampled_from(["num_train_timesteps", "beta_start", "beta_end", "s", "max_beta",
                                        "rescale_zero_terminal_snr", "other"]), JSON, max_size=3),
       st.lists(st.floats(allow_nan=False) | st.integers(), max_size=6))
def test_fuzzed_schedules_and_grids_raise_value_errors_only(tmp_path_factory, name, params, grid):
    record = {"format": "diffkit.timesteps", "version": 1, "schedule": {"name": name, **params}, "timesteps": grid}
    path = tmp_path_factory.mktemp("fuzz") / "g.json"
    path.write_text(json.dumps(record))
    try:
        loaded = load_timesteps(path, Linear(7))
    except ValueError:
        return
    assert np.all(np.diff(loaded) < 0) and loaded.min() >= 0 and loaded.max() <= 6
