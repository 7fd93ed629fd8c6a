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
from dataclasses import dataclass
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
MAX_DIMS = 64  # dimensions of one tensor (torch's own limit for most operations)


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


def check_writable(path: str | os.PathLike) -> Path:
    """``path`` if :func:`write_atomic` can write it, else ValueError saying why.

    Call it before long work whose result goes to ``path``, so that a run never ends in a traceback
    after the work: ``path`` must not be a directory, its nearest existing ancestor must be a
    directory, and a temp file named as ``write_atomic`` names it must be creatable there (a real
    probe, created and removed: permission bits alone say nothing for root or read-only mounts).
    """
    path = Path(path)
    try:
        is_dir = path.is_dir()
        existing = path.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        existing_is_dir = existing.is_dir()
    except (OSError, ValueError) as err:  # a name too long, an embedded null byte
        raise ValueError(f"cannot write {path!r}: {err}") from None
    if is_dir:
        raise ValueError(f"cannot write {path}: it is a directory")
    if not existing_is_dir:
        raise ValueError(f"cannot write {path}: {existing} is not a directory")
    prefix = f".{path.name}." if existing == path.parent else ".diffkit-write-check."
    try:
        fd, tmp = tempfile.mkstemp(dir=existing, prefix=prefix, suffix=".tmp")
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot write {path}: {getattr(err, 'strerror', None) or err}") from None
    os.close(fd)
    os.unlink(tmp)
    return path


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


@dataclass(frozen=True)
class _Entry:
    """One tensor of a checked header: its dtype, shape and byte range in the data buffer."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_header(text: bytes, data_len: int, source: str) -> tuple[list[_Entry], dict[str, str]]:
    """Parse and check a header against a data buffer of ``data_len`` bytes; nothing is allocated for tensors.

    The checks are the reference implementation's: known dtypes, integer shapes and offsets, each
    entry's byte range holding exactly its shape, and the ranges tiling the buffer with no gap or
    overlap (so the tensors together never take more memory than the file).
    """

    def bad(why: str) -> ValueError:
        return ValueError(f"could not read {source} as a safetensors file: {why}")

    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # ValueError: JSON errors, 4300+-digit ints
        raise bad(f"header is not JSON ({type(err).__name__}: {str(err)[:80]})") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must map strings to strings")
    entries = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise bad(f"entry {name!r} is malformed: need an object with dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _FROM_NAME:
            raise bad(f"entry {name!r} is malformed: dtype {dtype!r} is not one of {sorted(_FROM_NAME)}")
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(_is_int(d) and 0 <= d for d in shape)):
            raise bad(f"entry {name!r}: shape {str(shape)[:80]} is not a list of at most {MAX_DIMS} integers >= 0")
        if math.prod(max(d, 1) for d in shape) >= 2**62:  # torch's strides are int64, even for empty tensors
            raise bad(f"entry {name!r}: shape {str(shape)[:80]} is too large for a tensor")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise bad(f"entry {name!r} is malformed: data_offsets {str(offsets)[:80]} is not [begin, end]")
        begin, end = offsets
        size = math.prod(shape) * torch.empty((), dtype=_FROM_NAME[dtype]).element_size()
        if not 0 <= begin <= end <= data_len or end - begin != size:
            raise bad(f"entry {name!r}: offsets [{begin}, {end}) do not hold {str(shape)[:80]} of {dtype}")
        entries.append(_Entry(name, _FROM_NAME[dtype], tuple(shape), begin, end))
    entries.sort(key=lambda e: (e.begin, e.end))
    position = 0
    for e in entries:
        if e.begin != position:
            raise bad(f"entry {e.name!r} starts at byte {e.begin}, not at {position}: the data has a gap or an overlap")
        position = e.end
    if position != data_len:
        raise bad(f"the tensors hold {position} bytes but the data section has {data_len}")
    return entries, dict(metadata)


def _header_length(prefix: bytes, file_len: int, source: str) -> int:
    if len(prefix) < 8:
        raise ValueError(f"could not read {source} as a safetensors file: shorter than its 8-byte header length")
    n = int.from_bytes(prefix[:8], "little")
    if n > min(_MAX_HEADER, file_len - 8):
        raise ValueError(f"could not read {source} as a safetensors file: header length {n} exceeds the file")
    return n


def parse_safetensors(blob: bytes, source: str = "buffer") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` from safetensors bytes; ValueError naming ``source`` when they are malformed."""
    n = _header_length(blob[:8], len(blob), source)
    entries, metadata = _check_header(blob[8 : 8 + n], len(blob) - 8 - n, source)
    data = memoryview(blob)[8 + n :]
    tensors = {}
    for e in entries:
        tensor = torch.empty(e.shape, dtype=e.dtype)  # private, writable memory, filled from the bytes
        tensor.reshape(-1).view(torch.uint8).numpy()[:] = data[e.begin : e.end]
        tensors[e.name] = tensor
    return tensors, metadata


def read_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file; FileNotFoundError or a one-line ValueError otherwise.

    The header is checked before any tensor is allocated, and each tensor is read straight into its
    own memory: reading takes about the file's size in memory, never more.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such weight file: {path}")
    if not path.is_file():
        raise ValueError(f"could not read {path} as a safetensors file: it is not a regular file")
    with open(path, "rb") as f:
        file_len = os.fstat(f.fileno()).st_size
        n = _header_length(f.read(8), file_len, str(path))
        entries, metadata = _check_header(f.read(n), file_len - 8 - n, str(path))
        tensors = {}
        for e in entries:  # sorted by offset and contiguous: one sequential pass over the file
            tensor = torch.empty(e.shape, dtype=e.dtype)
            # the ignore: numpy's stubs give ndarray the buffer protocol from Python 3.12 on only
            buffer = memoryview(tensor.reshape(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]
            if f.readinto(buffer) != e.end - e.begin:
                raise ValueError(f"could not read {path} as a safetensors file: it changed while being read")
            tensors[e.name] = tensor
    return tensors, metadata


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, reading only its (checked) header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weight file: {path}")
    with open(path, "rb") as f:
        file_len = os.fstat(f.fileno()).st_size
        n = _header_length(f.read(8), file_len, str(path))
        return _check_header(f.read(n), file_len - 8 - n, str(path))[1]
