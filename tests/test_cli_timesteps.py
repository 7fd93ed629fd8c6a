"""``diffkit sample --timesteps FILE.json``: the file's grid is sampled; a conflicting --spacing or schedule exits 2."""

from __future__ import annotations

import pytest

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


# -- diffkit fit-timesteps: fit, save, then sample the file ---------------------------------------------------

def _fit_args(weights, out, *extra):
    return ["fit-timesteps", "--checkpoint", str(weights), "--steps", "3", "--calibration", "2", "--refine-evals", "1",
            "--out", str(out), *extra]


def test_fit_writes_a_grid_that_sample_takes_with_its_sampler(tiny_weights, tmp_path, capsys):  # noqa: F811
    from diffkit.io.pretrained import load_pretrained
    from diffkit.io.timesteps import read_timesteps

    out = tmp_path / "g.json"
    assert main(_fit_args(tiny_weights, out, "--sampler", "ipndm", "--guidance", "1")) == 0
    text = capsys.readouterr().out
    assert "ipndm, 3 steps, no guidance, 2 calibration samples (seed 1)" in text and "on the start grid" in text
    assert f"diffkit sample --timesteps {out} --guidance 1 --checkpoint {tiny_weights}" in text
    _, schedule = load_pretrained(tiny_weights)
    grid, sampler = read_timesteps(out, schedule)
    assert sampler == "ipndm" and len(grid) == 3 and grid[0] == schedule.t_max
    assert f"timesteps: {', '.join(f'{t:.4g}' for t in grid)}" in text
    assert main(_args(tiny_weights, tmp_path, out, "--guidance", "1")) == 0  # no --sampler: the file's
    assert "3 samples, ipndm, 3 steps" in capsys.readouterr().out
    assert main(_args(tiny_weights, tmp_path, out, "--sampler", "ddim")) == 0  # an explicit one wins
    assert "3 samples, ddim, 3 steps" in capsys.readouterr().out


def test_fit_is_deterministic_for_a_seed(tiny_weights, tmp_path, capsys):  # noqa: F811
    for name in ("a", "b"):
        assert main(_fit_args(tiny_weights, tmp_path / f"{name}.json", "--seed", "5")) == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


@pytest.mark.parametrize("extra, out, message", [
    (["--sampler", "ddpm"], "g.json", "'ddpm' is stochastic. Allowed: ddim,"),
    (["--sampler", "nope"], "g.json", "unknown sampler 'nope'"),
    ([], "g.png", "--out must end in .json"),
    (["--spacing", "cubic"], "g.json", "unknown spacing 'cubic'"),
    (["--method", "ld3"], "g.json", "invalid choice: 'ld3'"),
])
def test_fit_errors_exit_2(tiny_weights, tmp_path, capsys, extra, out, message):  # noqa: F811
    assert main(_fit_args(tiny_weights, tmp_path / out, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / out).exists()


def test_a_file_fitted_for_an_unknown_sampler_needs_sampler(tiny_weights, tmp_path, capsys):  # noqa: F811
    import json

    save_timesteps(tmp_path / "g.json", [999.0, 80.25], Linear(), sampler="ddim")
    record = json.loads((tmp_path / "g.json").read_text())
    (tmp_path / "g.json").write_text(json.dumps(dict(record, sampler="future_solver")))
    assert main(_args(tiny_weights, tmp_path, tmp_path / "g.json")) == 2
    assert "was fitted for the sampler 'future_solver', which this diffkit does not have; pass --sampler" in (
        capsys.readouterr().err)
    (tmp_path / "g.json").write_text(json.dumps(dict(record, sampler=3)))
    assert main(_args(tiny_weights, tmp_path, tmp_path / "g.json", "--sampler", "ddim")) == 2
    assert '"sampler" must be a sampler\'s name' in capsys.readouterr().err
