"""diffkit's own safetensors reader/writer agrees with the reference library and refuses malformed files."""

from __future__ import annotations

import json

import pytest
import torch

from diffkit.io.tensorfile import DTYPES, parse_safetensors, read_tensors, safetensors_bytes, save_tensors

safetensors_torch = pytest.importorskip("safetensors.torch")


def _tensors():
    g = torch.Generator().manual_seed(0)
    out = {f"t_{str(dtype).split('.')[-1]}": (torch.randn(3, 5, generator=g) * 10).to(dtype) for dtype in DTYPES}
    out["scalar"] = torch.tensor(2.5)
    out["empty"] = torch.zeros(0, 4)
    out["strided"] = torch.arange(12.0).reshape(3, 4).T  # non-contiguous input
    return out


def test_reference_library_reads_what_we_write(tmp_path):
    tensors = _tensors()
    save_tensors(tmp_path / "a.safetensors", tensors, {"config": json.dumps({"x": 1})})
    loaded = safetensors_torch.load_file(str(tmp_path / "a.safetensors"))
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name], tensor), name


def test_we_read_what_the_reference_library_writes(tmp_path):
    tensors = {k: v.contiguous() for k, v in _tensors().items()}
    safetensors_torch.save_file(tensors, str(tmp_path / "b.safetensors"), metadata={"config": "{}"})
    loaded, metadata = read_tensors(tmp_path / "b.safetensors")
    assert metadata == {"config": "{}"}
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


def test_writer_is_deterministic():
    tensors = _tensors()
    metadata = {"b": "2", "a": "1", "config": "{}"}
    assert safetensors_bytes(tensors, metadata) == safetensors_bytes(dict(reversed(tensors.items())), metadata)


def _blob(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("blob, match", [
    (b"abc", "shorter than its 8-byte header"),
    ((10**9).to_bytes(8, "little") + b"{}", "header length .* exceeds"),
    ((4).to_bytes(8, "little") + b"nope", "not JSON"),
    (_blob([1, 2]), "not a JSON object"),
    (_blob({"__metadata__": {"a": 1}}), "must map strings to strings"),
    (_blob({"w": {"dtype": "F32", "shape": [2]}}), "malformed"),
    (_blob({"w": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)), "malformed"),
    (_blob({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)), "do not hold"),
    (_blob({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8)), "do not hold"),
    (_blob({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8)), "integers >= 0"),
])
def test_malformed_files_are_refused(blob, match):
    with pytest.raises(ValueError, match=match):
        parse_safetensors(blob, "crafted.safetensors")


def test_loaded_tensors_own_their_memory(tmp_path):
    save_tensors(tmp_path / "c.safetensors", {"w": torch.ones(4)}, {})
    w = read_tensors(tmp_path / "c.safetensors")[0]["w"]
    w += 1  # writable, and independent of the file's bytes
    assert torch.equal(read_tensors(tmp_path / "c.safetensors")[0]["w"], torch.ones(4))
