"""``diffkit sample``: PNG output, latency report, one-line errors for bad arguments, the embedded model."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from conftest import TINY

from diffkit.cli import main
from diffkit.io.png import image_grid, png_bytes
from diffkit.io.pretrained import save_pretrained
from diffkit.schedules import Linear
from diffkit.unet import UNet, UNetConfig

SCALE = 4  # diffkit.cli.sample.GRID_SCALE: every 8x8 digit is drawn 32x32


def decode_png(data: bytes) -> np.ndarray:
    """Minimal reader for the files png_bytes writes (8-bit grey, filter 0, one IDAT)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 0)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, width + 1)
    assert not rows[:, 0].any()  # filter type 0 on every row
    return rows[:, 1:]


def test_png_round_trip_and_pillow_agree(tmp_path):
    pixels = np.arange(7 * 5, dtype=np.uint8).reshape(7, 5) * 7
    assert np.array_equal(decode_png(png_bytes(pixels)), pixels)
    image = pytest.importorskip("PIL.Image")
    (tmp_path / "a.png").write_bytes(png_bytes(pixels))
    assert np.array_equal(np.asarray(image.open(tmp_path / "a.png")), pixels)
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    (tmp_path / "b.png").write_bytes(png_bytes(rgb))
    assert np.array_equal(np.asarray(image.open(tmp_path / "b.png")), rgb)


def test_image_grid_layout():
    images = torch.linspace(-1, 1, 3).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    grid = image_grid(images, columns=2, scale=2, gap=1)
    assert grid.shape == (1 + 2 * (4 + 1), 1 + 2 * (4 + 1))
    assert grid[1, 1] == 0 and grid[1, 6] == 128 and grid[6, 1] == 255  # black, mid-grey (-1, 0, 1)
    assert grid[0, 0] == 128 and grid[6, 6] == 128  # separators and the empty fourth cell stay grey


def test_sample_writes_a_grid_and_reports_latency(tiny_weights, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = main(["sample", "--checkpoint", str(tiny_weights), "--n", "12", "--steps", "3", "--out", str(out)])
    assert code == 0
    pixels = decode_png(out.read_bytes())
    cell = 8 * SCALE + 1
    assert pixels.shape == (2 * cell + 1, 10 * cell + 1)  # 12 samples, 10 per row
    stdout = capsys.readouterr().out
    assert "ms/sample" in stdout and "ms/step" in stdout and str(out) in stdout


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde"])
def test_every_sampler_runs_from_the_cli(tiny_weights, tmp_path, sampler):
    args = ["sample", "--checkpoint", str(tiny_weights), "--n", "2", "--steps", "2", "--sampler", sampler]
    assert main([*args, "--label", "3", "--guidance", "1", "--out", str(tmp_path / "s.png")]) == 0


def test_same_seed_same_png(tiny_weights, tmp_path):
    for name in ("a", "b"):
        main(["sample", "--checkpoint", str(tiny_weights), "--n", "3", "--steps", "2",
              "--out", str(tmp_path / f"{name}.png")])
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def _garbage(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"not a safetensors file at all")
    return path


def _mismatched(tmp_path):
    """A file whose stored config does not describe its weights."""
    from safetensors.torch import save_file

    path = tmp_path / "mismatched.safetensors"
    other = UNet.from_config(UNetConfig(**{**TINY.__dict__, "channels": 16}))
    meta = {"config": '{"in_channels": 1, "channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, '
            '"attention_resolutions": [4], "resolution": 8, "groups": 4, "num_classes": 10}',
            "schedule": '{"name": "Linear"}'}  # fmt: skip
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(path), metadata=meta)
    return path


def _unconditional(tmp_path):
    path = tmp_path / "uncond.safetensors"
    save_pretrained(path, UNet.from_config(UNetConfig(**{**TINY.__dict__, "num_classes": None})), Linear())
    return path


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampler", "euler_magic"], "unknown sampler 'euler_magic'"),
        (["--label", "10"], "--label must be in [0, 9]"),
        (["--label", "-1"], "--label must be in [0, 9]"),
        (["--steps", "0"], "argument --steps: expected an integer in [1, 100000], got '0'"),
        (["--spacing", "cubic"], "unknown spacing"),
        (["--out", "grid.jpg"], "--out must end in .png"),
        ([_garbage], "could not read"),
        ([_mismatched], "does not match UNet"),
        ([_unconditional], "unconditional"),
        (["--checkpoint", "/nonexistent/w.safetensors"], "no such weight file"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tiny_weights, tmp_path, capsys, extra, message):
    if extra and callable(extra[0]):
        extra = ["--checkpoint", str(extra[0](tmp_path))]
    args = ["sample", "--checkpoint", str(tiny_weights), "--steps", "1", "--n", "1", "--out", str(tmp_path / "x.png")]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_module_entry_point_gives_one_line_error_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "diffkit", "sample", "--sampler", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("diffkit sample: error: unknown sampler")
    assert "Traceback" not in proc.stderr


def test_default_command_uses_the_embedded_model(tmp_path, capsys):
    assert main(["sample", "--n", "10", "--steps", "5", "--out", str(tmp_path / "d.png")]) == 0
    assert "10 samples, dpmpp_2m, 5 steps" in capsys.readouterr().out
