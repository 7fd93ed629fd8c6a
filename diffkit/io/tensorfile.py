"""Tensor files: the safetensors format read and written in plain Python, and atomic writes.

diffkit's runtime dependencies stay torch, numpy and scipy: the safetensors
format is simple enough to own, and owning it makes the writer deterministic.

Layout (https://github.com/huggingface/safetensors, "Format"): an unsigned
64-bit little-endian header length N; N bytes of JSON mapping each tensor name
to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets into the byte
buffer that follows), plus an optional ``"__metadata__"`` of string pairs; then
the raw little-endian tensor bytes. Reading never executes anything: it parses
JSON and copies bytes, and every offset, shape and dtype is checked first.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import torch

# torch dtype <-> safetensors dtype name
DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}  # fmt: skip
_FROM_NAME = {name: dtype for dtype, name in DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit on the JSON header


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: a crash leaves the old file or the new one there, never a torn one.

    The file is a temporary one in the same directory (created if missing), named ``.<name>.<random>.tmp``;
    it replaces ``path`` with ``os.replace`` when the block ends without an exception, and is removed
    otherwise. ``durable`` also fsyncs the file and the directory: the new file then survives a crash
    of the machine, not only of the process (at ~8 ms a file on this repository's CPU machine, so
    writers of many small files may pass False and check what they read back).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not durable:
        return
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # directories cannot be opened on Windows; the rename is still atomic
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_atomic(path: str | os.PathLike, payload: bytes, *, durable: bool = True) -> None:
    """Write ``payload`` to ``path`` through :func:`atomic_file` (fsynced unless ``durable=False``)."""
    with atomic_file(path, durable=durable) as f:
        f.write(payload)


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """Serialise to safetensors, byte-for-byte deterministic.

    The header lists ``__metadata__`` first, then the tensors sorted by name, and is
    space-padded to a multiple of 8. (The reference writer emits metadata in hash-map
    order, so two saves of the same weights can differ in their header bytes.)
    """
    if sys.byteorder != "little":
        raise RuntimeError("safetensors files are little-endian; this writer runs on little-endian hosts only")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("safetensors metadata must map strings to strings")
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        if tensor.dtype not in DTYPES:
            raise TypeError(f"cannot store {name!r} of dtype {tensor.dtype}; allowed: {sorted(map(str, DTYPES))}")
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomically write ``tensors`` with string ``metadata`` as a (deterministic) safetensors file."""
    write_atomic(path, safetensors_bytes(tensors, {"format": "pt", **metadata}))


def parse_safetensors(blob: bytes, source: str = "buffer") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` from safetensors bytes; ValueError naming ``source`` when they are malformed."""

    def bad(why: str) -> ValueError:
        return ValueError(f"could not read {source} as a safetensors file: {why}")

    if len(blob) < 8:
        raise bad("shorter than its 8-byte header length")
    n = int.from_bytes(blob[:8], "little")
    if n > min(_MAX_HEADER, len(blob) - 8):
        raise bad(f"header length {n} exceeds the file")
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad(f"header is not JSON ({err})") from err
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must map strings to strings")
    data = memoryview(blob)[8 + n :]
    tensors = {}
    for name, entry in header.items():
        try:
            dtype = _FROM_NAME[entry["dtype"]]
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as err:
            raise bad(f"entry {name!r} is malformed ({err!r})") from err
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= len(data) or end - begin != size:
            raise bad(f"entry {name!r}: offsets [{begin}, {end}) do not hold {shape} of {entry['dtype']}")
        raw = bytearray(data[begin:end])  # a private copy: the tensor owns writable memory
        tensors[name] = torch.frombuffer(raw, dtype=dtype).reshape(shape) if size else torch.empty(shape, dtype=dtype)
    return tensors, dict(metadata)


def read_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; FileNotFoundError or a one-line ValueError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weight file: {path}")
    return parse_safetensors(path.read_bytes(), str(path))
