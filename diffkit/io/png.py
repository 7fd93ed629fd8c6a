"""Write images as PNG with the standard library only (zlib + struct), and tile samples into a grid.

PNG layout (ISO/IEC 15948): the 8-byte signature, then chunks ``length | type | data | crc32(type+data)``:
IHDR (width, height, bit depth 8, colour type 0 = grey or 2 = RGB), any extra chunks the caller passes
(e.g. ``tEXt``, or a private ancillary chunk that viewers skip), one IDAT holding the zlib-compressed
scanlines (each prefixed by filter byte 0, "none"), and an empty IEND. ``png_chunks`` reads the chunks back.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import torch

from diffkit.io.tensorfile import write_atomic

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type (grey, RGB)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(pixels: np.ndarray, extra: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """Encode uint8 ``pixels`` [H, W] (grey) or [H, W, 3] (RGB) as a PNG file, with ``extra`` (type, data) chunks.

    An extra chunk type is 4 ASCII letters whose case carries its meaning (ISO/IEC 15948, 5.4): lower-case
    first letter = ancillary (decoders may skip it), lower-case second = private, upper-case third.
    """
    for kind, _ in extra:
        if not (len(kind) == 4 and kind.isalpha() and kind[2:3].isupper() and kind not in (b"IHDR", b"IDAT", b"IEND")):
            raise ValueError(f"extra PNG chunk types are 4 letters, the third upper-case, not IHDR/IDAT/IEND; "
                             f"got {kind!r}")
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in _COLOUR_TYPES or 0 in pixels.shape:
        raise ValueError(f"png_bytes needs non-empty uint8 [H, W] or [H, W, 3]; got {pixels.dtype} {pixels.shape}")
    height, width, channels = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * channels)], axis=1)
    chunks = [_chunk(b"IHDR", header), *(_chunk(kind, data) for kind, data in extra)]
    chunks += [_chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)), _chunk(b"IEND", b"")]
    return _SIGNATURE + b"".join(chunks)


def png_chunks(blob: bytes, source: str = "buffer") -> list[tuple[bytes, bytes]]:
    """The (type, data) chunks of a PNG file, IHDR to IEND; ValueError naming ``source`` if it is not a whole PNG.

    Checks the signature, every length and CRC, and that the file ends with IEND (a truncated file fails).
    """
    if blob[:8] != _SIGNATURE:
        raise ValueError(f"{source} is not a PNG file (bad signature)")
    chunks, pos = [], 8
    while pos + 12 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind, data = blob[pos + 4 : pos + 8], blob[pos + 8 : pos + 8 + length]
        crc = blob[pos + 8 + length : pos + 12 + length]
        if len(data) != length or len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + data) & 0xFFFFFFFF:
            raise ValueError(f"{source}: chunk {kind!r} at byte {pos} is truncated or fails its CRC")
        chunks.append((kind, data))
        pos += 12 + length
        if kind == b"IEND":
            return chunks
    raise ValueError(f"{source}: the PNG file ends before its IEND chunk (truncated)")


def image_grid(images: torch.Tensor, columns: int | None = None, scale: int = 4, gap: int = 1) -> np.ndarray:
    """Tile images [N, C, H, W] in [-1, 1] (C = 1 or 3) into one uint8 picture, each pixel ``scale`` x ``scale``.

    ``columns`` defaults to about sqrt(N); cells are separated by ``gap`` mid-grey pixels.
    """
    n, channels, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    tiles = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    tiles = tiles.repeat(scale, axis=2).repeat(scale, axis=3).transpose(0, 2, 3, 1)  # [N, H*s, W*s, C]
    cell_h, cell_w = height * scale + gap, width * scale + gap
    grid = np.full((rows * cell_h + gap, columns * cell_w + gap, channels), 128, np.uint8)
    for i, tile in enumerate(tiles):
        top, left = gap + (i // columns) * cell_h, gap + (i % columns) * cell_w
        grid[top : top + height * scale, left : left + width * scale] = tile
    return grid[:, :, 0] if channels == 1 else grid


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write uint8 ``pixels`` [H, W] or [H, W, 3] to ``path`` as PNG (atomically)."""
    write_atomic(path, png_bytes(pixels))
