"""One sample, one file: ``{seed:06d}.png``, the image anyone can open, holding the exact sample too.

The pixels are 8-bit (pixel = round((x + 1) * 127.5), as every diffkit image). Two more chunks
make the file the whole record of the sample, so ``samples.npz`` is assembled from the files
bit for bit and a resumed job ends with the bytes of an uninterrupted one:

- ``tEXt`` keyword ``diffkit``: JSON ``{"seed": 7, "label": 3, "shape": [C, H, W]}`` (label -1 when
  the model is unconditional); image viewers show it as the file's text.
- ``dkSA``: the float32 sample in [-1, 1], little-endian, C order. The chunk type's letter case
  says ancillary (viewers skip it), private, and not safe to copy: it describes the pixel data,
  so an editor that changes the pixels must drop it.

With ``subdirs`` the file lives in a folder of 1,000 seeds, ``{seed - seed % 1000:06d}/`` (as EDM's
generate.py writes them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from diffkit.io.png import image_grid, png_bytes, png_chunks

SAMPLE_CHUNK = b"dkSA"  # the float32 sample (see the module docstring)
TEXT_KEY = b"diffkit"  # tEXt keyword of the JSON record
SUBDIR_SEEDS = 1000  # seeds per folder with subdirs


def sample_name(seed: int) -> str:
    return f"{seed:06d}.png"


def sample_path(outdir: str | os.PathLike, seed: int, subdirs: bool) -> Path:
    """Where seed ``seed``'s file lives under ``outdir``."""
    folder = Path(outdir) / f"{seed - seed % SUBDIR_SEEDS:06d}" if subdirs else Path(outdir)
    return folder / sample_name(seed)


def seed_of(name: str) -> int | None:
    """The seed a file name stands for (``000042.png`` -> 42), None for any other name."""
    stem, dot, ext = name.partition(".")
    if ext != "png" or not stem.isdigit() or name != sample_name(int(stem)):
        return None
    return int(stem)


def sample_png(image: torch.Tensor, seed: int, label: int) -> bytes:
    """The file of one sample ``image`` [C, H, W] (float32 in [-1, 1], C = 1 or 3) drawn for ``seed`` and ``label``."""
    if image.ndim != 3 or image.shape[0] not in (1, 3) or image.dtype != torch.float32:
        raise ValueError(f"a sample file holds a float32 [C, H, W] image with C = 1 or 3; got {image.dtype} "
                         f"{tuple(image.shape)}")  # fmt: skip
    image = image.detach().cpu().contiguous()
    record = json.dumps({"seed": seed, "label": label, "shape": list(image.shape)}, separators=(",", ":"))
    payload = image.numpy().astype("<f4", copy=False).tobytes()
    pixels = image_grid(image[None], columns=1, scale=1, gap=0)
    return png_bytes(pixels, extra=[(b"tEXt", TEXT_KEY + b"\0" + record.encode()), (SAMPLE_CHUNK, payload)])


def read_sample(path: str | os.PathLike) -> tuple[int, int, np.ndarray]:
    """``(seed, label, image)`` of a sample file, the image float32 [C, H, W]; ValueError naming the file if damaged."""
    path = Path(path)
    chunks = dict(png_chunks(path.read_bytes(), str(path)))
    text = chunks.get(b"tEXt", b"")
    if SAMPLE_CHUNK not in chunks or not text.startswith(TEXT_KEY + b"\0"):
        raise ValueError(f"{path} is a PNG but not a diffkit sample file (no {SAMPLE_CHUNK.decode()} chunk)")
    try:
        record = json.loads(text[len(TEXT_KEY) + 1 :])
        seed, label, shape = int(record["seed"]), int(record["label"]), tuple(int(d) for d in record["shape"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: malformed diffkit record ({err})") from None
    data = chunks[SAMPLE_CHUNK]
    if len(data) != 4 * int(np.prod(shape)):
        raise ValueError(f"{path}: the {SAMPLE_CHUNK.decode()} chunk holds {len(data)} bytes, not a float32 {shape}")
    return seed, label, np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)
