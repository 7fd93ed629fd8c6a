"""``diffkit sample --timesteps FILE.json``: the file's grid is sampled; a conflicting --spacing or schedule exits 2."""

from __future__ import annotations

import pytest
from test_cli_sample import tiny_weights  # noqa: F401  (the fixture: a tiny class-conditional U-Net on Linear())

from diffkit.cli import main
from diffkit.io.timesteps import save_timesteps
from diffkit.schedules import Cosine, Linear


def _args(weights, tmp_path, grid_file, *extra):
    return ["sample", "--checkpoint", str(weights), "--n", "3", "--out", str(tmp_path / "x.png"),
            "--timesteps", str(grid_file), *extra]


def test_samples_the_grid_of_the_file(tiny_weights, tmp_path, capsys):  # noqa: F811
    save_timesteps(tmp_path / "g.json", [999.0, 612.5, 80.25], Linear(), sampler="dpmpp_2m")
    assert main(_args(tiny_weights, tmp_path, tmp_path / "g.json")) == 0
    out = capsys.readouterr().out
    assert f"3 steps ({tmp_path / 'g.json'} spacing)" in out and (tmp_path / "x.png").exists()


@pytest.mark.parametrize("schedule, extra, message", [
    (Linear(), ["--spacing", "karras"], "--timesteps FILE is the grid itself; drop --spacing"),
    (Cosine(), [], "holds timesteps of the schedule"),
])
def test_conflicts_exit_2(tiny_weights, tmp_path, capsys, schedule, extra, message):  # noqa: F811
    save_timesteps(tmp_path / "g.json", [999.0, 80.25], schedule)
    assert main(_args(tiny_weights, tmp_path, tmp_path / "g.json", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "x.png").exists()
