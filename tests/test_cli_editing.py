"""``diffkit edit``, ``diffkit inpaint`` and ``diffkit sample --classifier-guidance``: PNG grids and one-line errors."""

from __future__ import annotations

import pytest
import torch

from diffkit.cli import main
from diffkit.digits.editing import MASKS, digit_mask

pytest.importorskip("sklearn")  # the held-out digits are the inputs

CELL = 8 * 4 + 1  # a 32x32 digit and its 1-pixel gap


def png_size(path):
    data = path.read_bytes()
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")  # (height, width) from IHDR


def test_edit_writes_inputs_and_a_row_per_strength(tiny_weights, tmp_path, capsys):
    out = tmp_path / "edit.png"
    args = ["edit", "--checkpoint", str(tiny_weights), "--n", "3", "--steps", "2", "--strength", "0.2", "1"]
    assert main([*args, "--label", "8", "--out", str(out)]) == 0
    assert png_size(out) == (3 * CELL + 1, 3 * CELL + 1)
    assert "towards class 8 at strength 0.2, 1" in capsys.readouterr().out


@pytest.mark.parametrize("mask", ["center", "1" * 32 + "0" * 32])
def test_inpaint_writes_input_mask_and_result_rows(tiny_weights, tmp_path, mask):
    out = tmp_path / "inpaint.png"
    args = ["inpaint", "--checkpoint", str(tiny_weights), "--n", "4", "--steps", "3", "--mask", mask]
    assert main([*args, "--resample", "2", "--jump", "2", "--out", str(out)]) == 0
    assert png_size(out) == (3 * CELL + 1, 4 * CELL + 1)


def test_sample_with_classifier_guidance(tiny_weights, tmp_path, capsys):
    args = ["sample", "--checkpoint", str(tiny_weights), "--n", "3", "--steps", "2", "--guidance", "0"]
    assert main([*args, "--classifier-guidance", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert "guidance 0, classifier guidance 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command, extra, message",
    [
        ("edit", ["--strength", "0"], "--strength: expected a finite number in (0, 1]"),
        ("edit", ["--strength", "0.5", "1.2"], "--strength: expected a finite number in (0, 1]"),
        ("edit", ["--label", "10"], "--label must be in [0, 9]"),
        ("edit", ["--n", "0"], "--n: expected an integer in [1, 297]"),
        ("edit", ["--out", "e.jpg"], "--out must end in .png"),
        ("edit", ["--sampler", "nope"], "unknown sampler 'nope'"),
        ("inpaint", ["--mask", "diagonal"], "mask must be one of top, bottom"),
        ("inpaint", ["--mask", "01" * 31], "64 characters 0/1"),
        ("inpaint", ["--resample", "0"], "--resample: expected an integer in [1, 100]"),
        ("inpaint", ["--steps", "0"], "--steps: expected an integer in [1, 100000]"),
        ("inpaint", ["--label", "-1"], "--label must be in [0, 9]"),
        ("sample", ["--classifier-guidance", "inf"], "--classifier-guidance: expected a finite number"),
        ("sample", ["--classifier-guidance", "1", "--classifier", "/nonexistent/c.safetensors"], "no such weight file"),
        ("sample", ["--classifier", "c.safetensors"], "--classifier is used by --classifier-guidance S"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(command, extra, message, tiny_weights, tmp_path, capsys):
    args = [command, "--checkpoint", str(tiny_weights), "--steps", "1", "--n", "2", "--out", str(tmp_path / "x.png")]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_named_masks_repaint_their_region():
    for name in MASKS:
        mask = digit_mask(name, seed=1)
        assert mask.shape == (1, 1, 8, 8) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert digit_mask("bottom")[0, 0, :4].all() and not digit_mask("bottom")[0, 0, 4:].any()
    assert int(digit_mask("center").sum()) == 64 - 16
    torch.testing.assert_close(digit_mask("1" * 8 + "0" * 56)[0, 0, 0], torch.ones(8))
