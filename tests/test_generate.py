"""``diffkit generate`` in one process: seeds, per-seed determinism, sample files, resume, metrics, bad arguments.

The multi-process runs (torchrun over gloo, a killed rank) are in tests/test_generate_torchrun.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from diffkit.cli import main
from diffkit.generate import CollectiveError, Job, World, generate, parse_seeds
from diffkit.generate.job import Loaded, draw_batch, shares
from diffkit.generate.outdir import SAMPLES, check_config, read_samples, written_seeds
from diffkit.generate.samplefile import read_sample, sample_path, sample_png, seed_of
from diffkit.generate.seeds import batches
from diffkit.io.png import png_bytes, png_chunks
from diffkit.io.tensorfile import atomic_file
from diffkit.samplers import SAMPLERS
from diffkit.samplers.registry import get_sampler
from diffkit.schedules import Linear, timesteps

DIGITS_OPTIONS = dict(sampler="dpmpp_2m", steps=3, batch=5)  # 3 steps: a run of 12 seeds takes ~0.1 s


@pytest.fixture
def one_thread():
    """The runs a test compares bitwise use one thread, as each torchrun process of the other test file does."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- seeds ---------------------------------------------------------------------------------------------------------


def test_parse_seeds_forms_and_batches():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("7") == [7]
    assert parse_seeds(" 3, 10-12,1 ") == [3, 10, 11, 12, 1]  # order kept: it fixes the batches
    assert batches(parse_seeds("0-6"), 3) == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize("text, message", [
    ("", "empty"), (" ", "empty"), ("a", "malformed"), ("1-", "malformed"), ("-3", "malformed"), ("1,,2", "malformed"),
    ("1.5", "malformed"), ("5-3", "reversed"), ("1,0-2", "more than once"), (f"0-{2**63}", "largest generator seed"),
    ("0-200000000", "more than"),
])  # fmt: skip
def test_parse_seeds_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


def test_shares_give_every_rank_the_same_number_of_rounds():
    todo = [[i] for i in range(5)]
    assert shares(todo, 0, 2) == [[0], [2], [4]]
    assert shares(todo, 1, 2) == [[1], [3], None]  # a round without a batch still joins the collective
    assert sorted(x[0] for r in range(3) for x in shares(todo, r, 3) if x) == list(range(5))


# --- per-seed determinism -------------------------------------------------------------------------------------------


def elementwise_eps(x, t, y=None):
    """A batch-invariant model: every output element depends on its own input element, t and the label only."""
    shift = 0.0 if y is None else 0.01 * y.view(-1, 1, 1, 1).to(x.dtype)
    return torch.tanh(x + shift) * (t.view(-1, 1, 1, 1).to(x.dtype) / 1000)


def elementwise_loaded(sampler: str, classes: int | None = 10) -> Loaded:
    schedule = Linear()
    info = get_sampler(sampler)
    ts = timesteps(schedule, 6, info.default_spacing)
    return Loaded(elementwise_eps, schedule, info, ts, (1, 4, 4), classes, {})


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_draws_a_seed_independently_of_its_batch(sampler):
    """Per-sample generators: x_T, the label and every noise draw (Brownian tree included) belong to one seed."""
    job, loaded, cpu = Job(seeds=(), outdir=Path(".")), elementwise_loaded(sampler), torch.device("cpu")
    seeds = [3, 11, 0, 7, 5, 2, 9]
    whole, labels = draw_batch(job, loaded, seeds, cpu)
    alone = [draw_batch(job, loaded, [seed], cpu) for seed in seeds]
    split = [draw_batch(job, loaded, part, cpu) for part in (seeds[:2], seeds[2:])]
    assert torch.equal(whole, torch.cat([x for x, _ in alone])) and torch.equal(whole, torch.cat([x for x, _ in split]))
    assert torch.equal(labels, torch.cat([y for _, y in alone]))


def test_a_seed_draws_x_T_first_then_its_label():
    """x_T is the seed generator's first draw (a diffusers pipeline seeded alike starts there), then the label."""
    seen = []

    def recording_eps(x, t, y=None):
        if not seen:
            seen.append((x.clone(), y.clone()))
        return torch.zeros_like(x)

    loaded = dataclasses.replace(elementwise_loaded("ddim"), eps_model=recording_eps)
    draw_batch(Job(seeds=(), outdir=Path(".")), loaded, [4, 9], torch.device("cpu"))
    x_T, y = seen[0]
    for row, seed in enumerate([4, 9]):
        g = torch.Generator().manual_seed(seed)
        assert torch.equal(x_T[row : row + 1], torch.randn((1, 1, 4, 4), generator=g))
        assert y[row] == torch.randint(10, (1,), generator=g)


@pytest.mark.parametrize("rule, expected", [({"label": 4}, [4, 4, 4]), ({"labels": "balanced"}, [2, 3, 3])])
def test_label_rules(rule, expected):
    job, loaded = Job(seeds=(), outdir=Path("."), **rule), elementwise_loaded("ddim", classes=5)
    assert draw_batch(job, loaded, [12, 8, 13], torch.device("cpu"))[1].tolist() == expected
    unconditional = elementwise_loaded("ddim", classes=None)
    labels = draw_batch(Job(seeds=(), outdir=Path(".")), unconditional, [1, 2], torch.device("cpu"))[1]
    assert labels.tolist() == [-1, -1]


# --- files ----------------------------------------------------------------------------------------------------------


def test_sample_file_holds_the_exact_sample_and_an_ordinary_image(tmp_path):
    image = torch.rand(3, 5, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    path = tmp_path / "000042.png"
    path.write_bytes(sample_png(image, 42, 7))
    seed, label, back = read_sample(path)
    assert (seed, label) == (42, 7) and back.dtype == np.float32 and np.array_equal(back, image.numpy())
    pil = pytest.importorskip("PIL.Image").open(path)
    expected = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(pil), expected) and json.loads(pil.text["diffkit"])["seed"] == 42
    path.write_bytes(path.read_bytes()[:-20])  # a torn file
    with pytest.raises(ValueError, match="truncated"):
        read_sample(path)


def test_png_chunks_check_every_crc_and_extra_chunk_types_are_checked():
    blob = bytearray(png_bytes(np.zeros((2, 2), np.uint8), extra=[(b"tEXt", b"k\0v")]))
    assert [kind for kind, _ in png_chunks(bytes(blob))] == [b"IHDR", b"tEXt", b"IDAT", b"IEND"]
    blob[40] ^= 1
    with pytest.raises(ValueError, match="CRC"):
        png_chunks(bytes(blob))
    with pytest.raises(ValueError, match="4 letters"):
        png_bytes(np.zeros((2, 2), np.uint8), extra=[(b"IDAT", b"")])


def test_names_paths_and_atomic_writes(tmp_path):
    assert seed_of("000042.png") == 42 and seed_of("1234567.png") == 1234567
    assert seed_of("42.png") is None and seed_of(".000042.png.x.tmp") is None and seed_of("000042.npy") is None
    assert sample_path(tmp_path, 2042, subdirs=True) == tmp_path / "002000" / "002042.png"
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "x.bin", durable=False) as f:
        f.write(b"half")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_outdir_refuses_another_configuration_and_foreign_files(tmp_path):
    assert check_config(tmp_path / "a", {"steps": 3}) is False
    assert check_config(tmp_path / "a", {"steps": 3}) is True
    with pytest.raises(ValueError, match=r"steps=3.*steps=4"):
        check_config(tmp_path / "a", {"steps": 4})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "000001.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="no config.json"):
        check_config(tmp_path / "b", {"steps": 3})
    with pytest.raises(ValueError, match="cannot write to --outdir"):
        check_config(tmp_path / "b" / "000001.png" / "c", {})


def test_damaged_sample_files_are_deleted_and_reported(tmp_path):
    for seed in (0, 1):
        (tmp_path / f"{seed:06d}.png").write_bytes(sample_png(torch.zeros(1, 2, 2), seed, 0))
    (tmp_path / "000001.png").write_bytes(b"\x89PNG")
    (tmp_path / ".000002.png.abc.tmp").write_bytes(b"")
    assert written_seeds(tmp_path, subdirs=False) == {0, 1}
    with pytest.raises(ValueError, match="1 sample file"):
        read_samples(tmp_path, [0, 1], subdirs=False)
    assert written_seeds(tmp_path, subdirs=False) == {0}


# --- metrics --------------------------------------------------------------------------------------------------------


def test_fd_from_summed_statistics_is_the_fd_of_the_samples():
    pytest.importorskip("sklearn")
    from diffkit.digits.evaluate import digits_fd, frechet_distance, moments_from_sums
    from diffkit.generate.evaluate import metrics_from_sums, shard_sums

    x = np.random.default_rng(0).normal(size=(50, 6))
    mean, cov = moments_from_sums(len(x), x.sum(0), x.T @ x)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), atol=1e-12)  # float64 cancellation only
    assert frechet_distance(x, x[::-1]) == pytest.approx(0.0, abs=1e-9)
    images = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = np.arange(30) % 10
    sums = shard_sums(images[:13].numpy(), labels[:13]) + shard_sums(images[13:].numpy(), labels[13:])
    # FD takes square roots of near-zero covariance eigenvalues: float64 rounding shows at ~1e-8 relative
    # (on 1,000 generated digits, merely reordering the rows moves digits_fd by 3e-8)
    assert metrics_from_sums(sums)["fd"] == pytest.approx(digits_fd(images), rel=1e-6)


# --- whole runs in this process -------------------------------------------------------------------------------------


def run_job(outdir: Path, **options) -> dict:
    job = Job(seeds=tuple(parse_seeds(options.pop("seeds", "0-11"))), outdir=outdir, **{**DIGITS_OPTIONS, **options})
    return generate(job, World())


def test_resume_skips_whole_batches_and_ends_with_the_same_bytes(tmp_path, one_thread):
    first = run_job(tmp_path / "a")
    assert first["images_generated"] == 12 and first["seeds_already_written"] == 0
    reference = (tmp_path / "a" / SAMPLES).read_bytes()
    again = run_job(tmp_path / "a")
    assert again["images_generated"] == 0 and (tmp_path / "a" / SAMPLES).read_bytes() == reference
    assert len(json.loads((tmp_path / "a" / "run.json").read_text())["previous_runs"]) == 1
    for seed in (6, 7, 11):  # a batch of 5 with two files missing, and the last batch's only file missing
        sample_path(tmp_path / "a", seed, False).unlink()
    (tmp_path / "a" / SAMPLES).unlink()
    resumed = run_job(tmp_path / "a")
    assert resumed["seeds_already_written"] == 9 and resumed["images_generated"] == 5 + 2
    assert (tmp_path / "a" / SAMPLES).read_bytes() == reference
    with np.load(tmp_path / "a" / SAMPLES) as npz:
        assert npz["seeds"].tolist() == list(range(12)) and npz["images"].dtype == np.float32
        assert npz["images"].shape == (12, 1, 8, 8) and npz["labels"].min() >= 0 and np.abs(npz["images"]).max() <= 1


def test_subdirs_and_seed_lists_in_any_order(tmp_path, one_thread):
    run_job(tmp_path, seeds="1005,3,998-999", subdirs=True, batch=2)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == [
        "000000/000003.png", "000000/000998.png", "000000/000999.png", "001000/001005.png"]  # fmt: skip
    with np.load(tmp_path / SAMPLES) as npz:
        assert npz["seeds"].tolist() == [3, 998, 999, 1005]


def test_cli_eval_prints_fd_and_accuracy(tmp_path, capsys, one_thread):
    pytest.importorskip("sklearn")
    code = main(["generate", "--seeds", "0-11", "--outdir", str(tmp_path), "--steps", "3", "--batch", "6",
                 "--labels", "balanced", "--eval", "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "12 seeds (0 already written): drew 12 images" in out and "FD " in out
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["eval"]["n"] == 12 and 0 <= record["eval"]["accuracy"] <= 1
    assert record["world_size"] == 1 and record["launcher"] == "python" and record["command"].startswith("diffkit")


@pytest.mark.parametrize("args, message", [
    (["--seeds", ""], "--seeds is empty"),
    (["--seeds", "0-x"], "malformed"),
    (["--seeds", "9-1"], "reversed"),
    (["--sampler", "nope"], "unknown sampler"),
    (["--steps", "0"], "must be >= 1"),
    (["--label", "12"], r"--label must be in \[0, 9\]"),
    (["--timesteps", "10,500"], "--timesteps:"),
    (["--timesteps", "10,a"], "comma-separated numbers"),
    (["--spacing", "nope"], "unknown spacing"),
    (["--spacing", "leading", "--steps", "1001"], "steps"),
    (["--device", "tpu"], "unknown --device"),
])  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    code = main(["generate", "--seeds", "0-3", "--outdir", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("diffkit generate: error: ")
    assert __import__("re").search(message, err), err


def test_unwritable_outdir_and_changed_options_exit_2(tmp_path, capsys, one_thread):
    (tmp_path / "file").write_text("")
    assert main(["generate", "--seeds", "0-3", "--outdir", str(tmp_path / "file" / "out"), "--device", "cpu"]) == 2
    assert "cannot write to --outdir" in capsys.readouterr().err
    assert main(["generate", "--seeds", "0-3", "--outdir", str(tmp_path / "o"), "--steps", "2", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["generate", "--seeds", "0-3", "--outdir", str(tmp_path / "o"), "--steps", "3", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "steps=2" in err and "steps=3" in err and "pass the same options to resume" in err


def test_more_processes_than_seeds_exits_2(tmp_path, capsys, monkeypatch):
    """The check runs before any process group: torchrun's environment alone decides it (real torchrun: other file)."""
    for name, value in {"RANK": "0", "WORLD_SIZE": "3", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "3"}.items():
        monkeypatch.setenv(name, value)
    assert main(["generate", "--seeds", "0-1", "--outdir", str(tmp_path)]) == 2
    assert "3 processes for 2 seed(s)" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")  # the other ranks raise the same error and leave the report to rank 0
    assert main(["generate", "--seeds", "0-1", "--outdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ""
    with pytest.raises(CollectiveError):
        Job(seeds=(0, 1), outdir=tmp_path).check(world_size=3)


def test_world_from_the_environment_and_threads(monkeypatch):
    from diffkit.generate.world import torch_threads, usable_cores

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    world = World.from_env()
    assert (world.rank, world.size, world.launched, world.main) == (0, 1, False, True)
    assert world.all_reduce_sum(torch.ones(2)).tolist() == [1, 1] and world.broadcast("x") == "x"
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="but not"):
        World.from_env()
    for name, value in {"WORLD_SIZE": "2", "LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="inconsistent"):
        World.from_env()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert torch_threads(local_size=2) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert torch_threads(local_size=2) == max(1, usable_cores() // 2)
