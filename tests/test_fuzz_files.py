"""Fuzzing the file readers: whatever the bytes, a clear ValueError (or the tensors), within bounded memory.

Inputs: random bytes, every truncation and random mutations of valid files, headers with absurd
values, and model/training files whose metadata asks for absurd sizes. Each read runs under
``bounded_memory`` (1 GiB over the process's size): an input that made the reader allocate in
proportion to a header value would fail there with MemoryError instead of passing.
"""

from __future__ import annotations

import atexit
import dataclasses
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import bounded_memory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffkit.digits.train import TrainOptions, read_checkpoint, train
from diffkit.io.pretrained import load_pretrained, save_pretrained
from diffkit.io.tensorfile import DTYPES, parse_safetensors, read_tensors, safetensors_bytes
from diffkit.io.weights import load_weights
from diffkit.schedules import Linear
from diffkit.unet import UNet, UNetConfig

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TINY = UNetConfig(in_channels=1, channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                  resolution=8, groups=4, dropout=0.0, num_classes=3)  # fmt: skip
SCRATCH = Path(tempfile.mkdtemp(prefix="diffkit-fuzz-"))  # hypothesis examples cannot use tmp_path
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


def _valid_blob() -> bytes:
    g = torch.Generator().manual_seed(0)
    tensors = {f"t_{str(d).split('.')[-1]}": (torch.randn(2, 3, generator=g) * 5).to(d) for d in DTYPES}
    tensors["scalar"], tensors["empty"] = torch.tensor(1.5), torch.zeros(0, 3)
    return safetensors_bytes(tensors, {"config": "{}"})


VALID = _valid_blob()


def _header(blob: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def _blob(header: object, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def _read_both(blob: bytes):
    """Parse ``blob`` from memory and from a file; both readers must agree (tensors or the same error)."""
    path = SCRATCH / "fuzz.safetensors"
    path.write_bytes(blob)
    with bounded_memory():
        try:
            tensors, metadata = parse_safetensors(blob, "fuzz")
        except ValueError as err:
            with pytest.raises(ValueError):
                read_tensors(path)
            assert "\n" not in str(err)
            return None
        from_file, metadata_file = read_tensors(path)
    assert metadata == metadata_file and tensors.keys() == from_file.keys()
    assert all(torch.equal(tensors[k].reshape(-1).view(torch.uint8), from_file[k].reshape(-1).view(torch.uint8))
               for k in tensors)  # fmt: skip
    assert sum(t.nbytes for t in tensors.values()) <= len(blob)  # never more memory than the file
    return tensors


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_are_refused_or_read(blob):
    _read_both(blob)


@FUZZ
@given(st.binary(min_size=8, max_size=256))
def test_random_bytes_after_a_plausible_header_length(tail):
    for n in (0, 2, len(tail) - 8, 2**63, 2**64 - 1):
        _read_both(max(n, 0).to_bytes(8, "little") + tail)


def test_every_truncation_of_a_valid_file_is_refused():
    assert _read_both(VALID) is not None
    for cut in range(len(VALID)):
        with pytest.raises(ValueError, match="could not read fuzz"):
            parse_safetensors(VALID[:cut], "fuzz")


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_valid_files_are_refused_or_read(changes):
    blob = bytearray(VALID)
    for position, value in changes:
        blob[position] = value
    _read_both(bytes(blob))


JUNK = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=5),
                 st.integers(-2**70, 2**70), st.lists(st.integers(-3, 3), max_size=3),
                 st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))  # fmt: skip
HUGE = st.sampled_from([2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1, 2**63, 2**64, 10**30, -1, -(2**63)])
DIM = st.one_of(st.integers(0, 4), HUGE)


@FUZZ
@given(
    dtype=st.one_of(st.sampled_from(sorted(DTYPES.values())), JUNK),
    shape=st.one_of(st.lists(DIM, max_size=4), st.lists(st.just(1), min_size=60, max_size=70), JUNK),
    offsets=st.one_of(st.lists(st.one_of(st.integers(0, 64), HUGE), min_size=2, max_size=2), JUNK),
    data=st.binary(max_size=64),
    extra=st.one_of(st.none(), st.just("dup"), JUNK),
)
def test_absurd_header_values_are_refused_or_read(dtype, shape, offsets, data, extra):
    header: dict = {"w": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}
    if extra == "dup":  # a second entry claiming the same bytes: memory would double without the tiling check
        header["v"] = dict(header["w"])
    elif extra is not None:
        header["__metadata__"] = extra
    _read_both(_blob(header, data))


@pytest.mark.parametrize("header", [
    {"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
     "b": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}},
    {"a": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}},  # a gap before it
    {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}},  # bytes left over after it
], ids=["overlap", "gap", "tail"])  # fmt: skip
def test_tensors_must_tile_the_data(header):
    # Overlapping entries would each get a copy of the same bytes: a small file, many times its size in memory.
    with pytest.raises(ValueError, match="gap or an overlap|data section has"):
        parse_safetensors(_blob(header, bytes(8)), "crafted")


def test_deeply_nested_or_huge_json_is_refused():
    for text in (b"[" * 100_000, b'{"a": ' + b"1" * 5000 + b"}"):
        with pytest.raises(ValueError, match="not JSON"):
            parse_safetensors(len(text).to_bytes(8, "little") + text, "crafted")


# -- model files: metadata asking for absurd sizes ---------------------------------------------------


def _pretrained_parts() -> tuple[dict, dict]:
    path = SCRATCH / "tiny.safetensors"
    torch.manual_seed(0)
    save_pretrained(path, UNet.from_config(TINY), Linear())
    header, _ = _header(path.read_bytes())
    tensors, _ = read_tensors(path)
    return tensors, header["__metadata__"]


TENSORS, METADATA = _pretrained_parts()
CONFIG_FIELDS = [f.name for f in dataclasses.fields(UNetConfig)]
VALUE = st.one_of(st.integers(-5, 10), HUGE, st.floats(allow_nan=True), st.text(max_size=4), st.none(), st.booleans(),
                  st.lists(st.one_of(st.integers(0, 8), HUGE), max_size=4))  # fmt: skip


def _load_with(config: object, schedule: object, tensors: dict | None = None) -> None:
    metadata = dict(METADATA)
    metadata["config"] = config if isinstance(config, str) else json.dumps(config)
    metadata["schedule"] = schedule if isinstance(schedule, str) else json.dumps(schedule)
    path = SCRATCH / "mutated.safetensors"
    path.write_bytes(safetensors_bytes(TENSORS if tensors is None else tensors, metadata))
    with bounded_memory():
        try:
            model, loaded_schedule = load_pretrained(path)
        except ValueError as err:
            assert str(path) in str(err)
            return
        _ = loaded_schedule.alphas_cumprod  # the tables a sampler builds first: bounded too
        assert sum(p.numel() for p in model.state_dict().values()) <= sum(t.numel() for t in TENSORS.values())


@FUZZ_SLOW
@given(st.dictionaries(st.sampled_from(CONFIG_FIELDS), VALUE, min_size=1, max_size=3))
def test_pretrained_config_values_are_checked_against_the_file(overrides):
    _load_with({**json.loads(METADATA["config"]), **overrides}, json.loads(METADATA["schedule"]))


@FUZZ_SLOW
@given(st.dictionaries(st.sampled_from(["name", "num_train_timesteps", "beta_start", "beta_end", "s", "bogus"]), VALUE,
                       min_size=1, max_size=3))  # fmt: skip
def test_pretrained_schedule_values_are_checked_before_tables(overrides):
    _load_with(json.loads(METADATA["config"]), {**json.loads(METADATA["schedule"]), **overrides})


@pytest.mark.parametrize("config, schedule, match", [
    ({"channels": 2**20, "groups": 4}, {}, "describes .* parameters"),
    ({"num_res_blocks": 10**6}, {}, "ResBlocks need more tensors"),
    ({"num_classes": 10**12}, {}, "describes .* parameters"),
    ({}, {"num_train_timesteps": 10**9}, r"num_train_timesteps must be an integer >= 2 and <= 100,000"),
    ({}, {"name": "Linear", "beta_start": "0.1"}, "beta_start must be a real number"),
    ("[" * 10_000, {}, "malformed metadata"),
    ({}, "not json", "malformed metadata"),
    ({}, ["Linear"], "malformed metadata"),
], ids=["channels", "blocks", "classes", "timesteps", "beta-type", "nested", "bad-json", "list"])  # fmt: skip
def test_pretrained_files_asking_for_gigabytes_are_refused_before_allocating(config, schedule, match):
    base_config, base_schedule = json.loads(METADATA["config"]), json.loads(METADATA["schedule"])
    config = config if isinstance(config, str) else {**base_config, **config}
    schedule = schedule if not isinstance(schedule, dict) else {**base_schedule, **schedule}
    path = SCRATCH / "absurd.safetensors"
    path.write_bytes(safetensors_bytes(TENSORS, {**METADATA, "config": config if isinstance(config, str) else
                                                 json.dumps(config), "schedule": json.dumps(schedule)
                                                 if not isinstance(schedule, str) else schedule}))  # fmt: skip
    with bounded_memory(), pytest.raises(ValueError, match=match):
        load_pretrained(path)


# -- pickled weights ---------------------------------------------------------------------------------


def _torch_saved() -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)}, buffer)
    return buffer.getvalue()


PICKLED = _torch_saved()


@FUZZ_SLOW
@given(st.one_of(st.lists(st.tuples(st.integers(0, len(PICKLED) - 1), st.integers(0, 255)), min_size=1, max_size=6),
                 st.integers(0, len(PICKLED) - 1)))  # fmt: skip
def test_mutated_or_truncated_torch_files_are_refused_or_read(change):
    blob = bytearray(PICKLED)
    if isinstance(change, int):
        blob = blob[:change]
    else:
        for position, value in change:
            blob[position] = value
    path = SCRATCH / "fuzz.pt"
    path.write_bytes(bytes(blob))
    with bounded_memory():
        try:
            state, _ = load_weights(path)
        except ValueError as err:
            assert "fuzz.pt" in str(err)
            return
    assert all(isinstance(v, torch.Tensor) for v in state.values())


# -- training checkpoints: missing and malformed entries ---------------------------------------------


class _Eps(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, t, y=None):
        return self.conv(x)


OPTIONS = TrainOptions(batch_size=4, lr=1e-2, seed=3)
IMAGES = torch.rand((8, 1, 4, 4), generator=torch.Generator().manual_seed(0)) * 2 - 1


def _checkpoint_parts() -> tuple[dict, dict]:
    path = SCRATCH / "ckpt.safetensors"
    torch.manual_seed(0)
    train(_Eps(), IMAGES, None, Linear(), 2, OPTIONS, checkpoint_path=path)
    tensors, _ = read_tensors(path)
    return tensors, _header(path.read_bytes())[0]["__metadata__"]


CKPT_TENSORS, CKPT_METADATA = _checkpoint_parts()


def _resume(tensors: dict, metadata: dict):
    path = SCRATCH / "resume.safetensors"
    path.write_bytes(safetensors_bytes(tensors, metadata))
    torch.manual_seed(1)
    with bounded_memory():
        return train(_Eps(), IMAGES, None, Linear(), 3, OPTIONS, checkpoint_path=path, resume=True)


def test_an_intact_checkpoint_resumes():
    assert _resume(CKPT_TENSORS, {k: v for k, v in CKPT_METADATA.items() if k != "format"}).step == 3


@pytest.mark.parametrize("key", sorted(CKPT_TENSORS)[:3] + ["rng.torch", "rng.data", "step", "options", "schedule",
                                                                "param_groups", "running_loss", "kind"])  # fmt: skip
def test_checkpoints_missing_an_entry_are_refused_by_name(key):
    tensors = {k: v for k, v in CKPT_TENSORS.items() if k != key}
    metadata = {k: v for k, v in CKPT_METADATA.items() if k not in (key, "format")}
    with pytest.raises(ValueError, match="training checkpoint|does not match|missing") as info:
        _resume(tensors, metadata)
    assert "\n" not in str(info.value)


@FUZZ_SLOW
@given(st.sets(st.sampled_from(sorted(CKPT_TENSORS) + sorted(CKPT_METADATA)), max_size=3),
       st.dictionaries(st.sampled_from(sorted(CKPT_METADATA)), st.one_of(st.text(max_size=6), st.sampled_from(
           ["-1", "1e400", "nan", "[]", "{}", "[[[[", '{"lr": 0.5}', str(2**70)])), max_size=2),
       st.dictionaries(st.sampled_from(["rng.torch", "rng.data"]), st.sampled_from(
           [torch.zeros(3, dtype=torch.uint8), torch.zeros(5000, dtype=torch.float32),
            torch.zeros(0, dtype=torch.uint8)]),
           max_size=1))  # fmt: skip
def test_damaged_checkpoints_resume_exactly_or_are_refused(dropped, changed_metadata, changed_tensors):
    tensors = {**{k: v for k, v in CKPT_TENSORS.items() if k not in dropped}, **changed_tensors}
    metadata = {**{k: v for k, v in CKPT_METADATA.items() if k not in dropped and k != "format"}, **changed_metadata}
    try:
        result = _resume(tensors, metadata)
    except ValueError as err:
        assert "\n" not in str(err)
        return
    assert result.step == 3


def test_read_checkpoint_names_every_missing_entry():
    path = SCRATCH / "partial.safetensors"
    path.write_bytes(safetensors_bytes({"model.w": torch.zeros(1)}, {"kind": "train_checkpoint", "step": "1"}))
    missing = "missing running_loss, param_groups, options, schedule, rng.torch, rng.data, ema"
    with pytest.raises(ValueError, match=missing):
        read_checkpoint(path)


def test_a_schedule_whose_tables_underflow_is_refused_at_load_naming_the_file():
    # Found by the fuzzer above: beta_end=0.9375 builds, but abar underflows when a sampler first reads the tables.
    schedule = {**json.loads(METADATA["schedule"]), "beta_end": 0.9375}
    path = SCRATCH / "underflow.safetensors"
    path.write_bytes(safetensors_bytes(TENSORS, {**METADATA, "schedule": json.dumps(schedule)}))
    message = r"underflow\.safetensors has malformed metadata: .*underflows"
    with bounded_memory(), pytest.raises(ValueError, match=message):
        load_pretrained(path)
