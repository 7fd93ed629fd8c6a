"""Every ``diffkit`` error is exit status 2 and one line, raised before the work; Ctrl-C is one line too.

The work itself (sampling, training, the benchmark suite) is replaced by a stand-in that fails the
test if it is reached, so each case also proves the error came first. The issue's cases, one
category per table: output paths, argument values, resources, resume files, step counts.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import diffkit
from diffkit.cli import main
from diffkit.digits.pretrained import DIGITS_WEIGHTS
from diffkit.io.pretrained import save_pretrained
from diffkit.io.tensorfile import read_tensors, safetensors_bytes
from diffkit.progress import ProgressBar
from diffkit.schedules import Linear
from diffkit.unet import UNet, UNetConfig

REPO = Path(__file__).resolve().parents[1]
TINY = UNetConfig(in_channels=1, channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                  resolution=8, groups=4, dropout=0.0, num_classes=10)  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths the cases refer to by name."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    save_pretrained(root / "tiny.safetensors", UNet.from_config(TINY), Linear())
    shutil.copy(root / "tiny.safetensors", root / "weights.png")  # a checkpoint that --out could name
    tensors, metadata = read_tensors(root / "tiny.safetensors")
    (root / "huge_T.safetensors").write_bytes(safetensors_bytes(
        tensors, {**metadata, "schedule": '{"name": "Linear", "num_train_timesteps": 1000000000}'}))  # fmt: skip
    (root / "a_file").write_text("not a folder")
    (root / "a_dir").mkdir()
    (root / "existing_ckpt.safetensors").write_bytes(b"")
    unwritable = Path("/proc/diffkit-no-such-dir") if os.geteuid() == 0 else root / "read_only"
    if os.geteuid() != 0:
        unwritable.mkdir()
        unwritable.chmod(0o555)
    return {"root": root, "tiny": root / "tiny.safetensors", "weights.png": root / "weights.png",
            "huge_T": root / "huge_T.safetensors", "a_file": root / "a_file", "a_dir": root / "a_dir",
            "unwritable": unwritable, "existing_ckpt": root / "existing_ckpt.safetensors"}  # fmt: skip


@pytest.fixture
def no_work(monkeypatch):
    """Make reaching the work a test failure (AssertionError is not one of the errors main reports)."""

    def reached(*args, **kwargs):
        raise AssertionError("the work started before the error")

    import diffkit.bench
    import diffkit.digits.evaluate
    import diffkit.digits.train

    monkeypatch.setattr(diffkit.digits.evaluate, "sample_digits", reached)
    monkeypatch.setattr(diffkit.digits.train, "train", reached)
    monkeypatch.setattr(diffkit.bench, "run_suite", reached)
    monkeypatch.setattr(diffkit, "sample", reached)


def _expand(argv: list[str], files: dict) -> list[str]:
    """``{name}`` in an argument is a path from ``files``; ``{name}/x`` a path inside it."""
    out = []
    for arg in argv:
        if arg.startswith("{"):
            name, _, rest = arg[1:].partition("}")
            arg = str(files[name]) + rest
        out.append(arg)
    return out


def _one_line_error(capsys, argv, files, message, code=2) -> str:
    assert main(_expand(argv, files)) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("diffkit"), err
    assert message in err, err
    return err


SAMPLE = ["sample", "--checkpoint", "{tiny}", "--n", "2", "--steps", "2", "--out", "{root}/ok.png"]
SAMPLE_CASES = {
    # output paths
    "out is a directory": (["--out", "{a_dir}"], "--out must end in .png"),
    "out is a directory named .png": (["--out", "{a_dir}/.."], "--out must end in .png"),
    "out's parent is a file": (["--out", "{a_file}/x.png"], "is not a directory"),
    "out not writable": (["--out", "{unwritable}/x.png"], "cannot write"),
    "out is the checkpoint": (["--checkpoint", "{weights.png}", "--out", "{weights.png}"],
                              "is the checkpoint being read"),
    "out has a null byte": (["--out", "a\x00b.png"], "cannot write"),
    # argument values
    "seed beyond 64 bits": (["--seed", str(2**64)],
                            "argument --seed: expected an integer in [0, 18446744073709551615]"),
    "seed negative": (["--seed", "-1"], "argument --seed: expected an integer in [0,"),
    "seed not a number": (["--seed", "0x10"], "argument --seed: expected an integer"),
    "columns zero": (["--columns", "0"], "argument --columns: expected an integer >= 1, got '0'"),
    "columns negative": (["--columns", "-2"], "argument --columns: expected an integer >= 1"),
    "guidance nan": (["--guidance", "nan"], "argument --guidance: expected a finite number, got 'nan'"),
    "guidance inf": (["--guidance", "inf"], "argument --guidance: expected a finite number, got 'inf'"),
    "guidance overflow": (["--guidance", "1e999"], "argument --guidance: expected a finite number"),
    "threads zero": (["--threads", "0"], "argument --threads: expected an integer in [1,"),
    "threads beyond the cores": (["--threads", "100000"], "argument --threads: expected an integer in [1,"),
    "steps zero": (["--steps", "0"], "argument --steps: expected an integer in [1, 100000], got '0'"),
    "n zero": (["--n", "0"], "argument --n: expected an integer >= 1"),
    "digits beyond 4300": (["--n", "9" * 5000], "argument --n: expected an integer >= 1, got '99999"),
    "label out of range": (["--label", "10"], "--label must be in [0, 9]; got 10"),
    "unknown sampler": (["--sampler", "euler_magic"], "unknown sampler 'euler_magic'; registered samplers: ddpm"),
    "unknown spacing": (["--spacing", "cubic"], "unknown spacing 'cubic'; allowed: leading"),
    "unknown flag": (["--bogus"], "unrecognized arguments: --bogus"),
    "missing value": (["--n"], "argument --n: expected one argument"),
    # resources
    "grid of ten million digits": (["--n", "10000000"], "the PNG grid of 10000000 samples would have"),
    "schedule of a billion steps": (["--checkpoint", "{huge_T}"],
                                    "num_train_timesteps must be an integer >= 2 and <= 100,000"),
    # step counts that cannot give a sample
    "ddpm with one step": (["--sampler", "ddpm", "--steps", "1"], "visits only t=0, so the sample would be"),
    "leading beyond T": (["--spacing", "leading", "--steps", "1001"], "steps must be <= T=1000"),
}


@pytest.mark.parametrize("extra, message", SAMPLE_CASES.values(), ids=SAMPLE_CASES.keys())
def test_sample_errors(files, no_work, capsys, extra, message):
    _one_line_error(capsys, SAMPLE + extra, files, message)
    assert not (files["root"] / "ok.png").exists()


TRAIN = ["train", "--steps", "2", "--batch-size", "4", "--out", "{root}/w.safetensors"]
TRAIN_CASES = {
    "out is a directory": (["--out", "{a_dir}"], "--out must end in .safetensors"),
    "out's parent is a file": (["--out", "{a_file}/w.safetensors"], "is not a directory"),
    "out not writable": (["--out", "{unwritable}/w.safetensors"], "cannot write"),
    "out is the checkpoint": (["--checkpoint", "{root}/w.safetensors"], "--out and --checkpoint are the same file"),
    "out is the shipped model": (["--out", str(DIGITS_WEIGHTS)], "is the digits model shipped with diffkit"),
    "checkpoint would be overwritten": (["--checkpoint", "{existing_ckpt}"], "exists; add --resume to continue it"),
    "resume without a checkpoint flag": (["--resume"], "--resume needs --checkpoint"),
    "resume from nothing": (["--resume", "--checkpoint", "{root}/none.safetensors"], "--resume: no checkpoint at"),
    "checkpoint not safetensors": (["--checkpoint", "{root}/c.pt"], "--checkpoint must end in .safetensors"),
    "checkpoint-every zero": (["--checkpoint-every", "0"], "argument --checkpoint-every: expected an integer >= 1"),
    "checkpoint-every negative": (["--checkpoint-every", "-5"],
                                  "argument --checkpoint-every: expected an integer >= 1"),
    "batch larger than the data": (["--batch-size", "1501"], "--batch-size must be in [1, 1500]"),
    "lr zero": (["--lr", "0"], "argument --lr: expected a finite number > 0"),
    "lr nan": (["--lr", "nan"], "argument --lr: expected a finite number > 0"),
    "ema-decay one": (["--ema-decay", "1"], "argument --ema-decay: expected a finite number in [0, 1)"),
    "label-dropout inf": (["--label-dropout", "inf"], "argument --label-dropout"),
    "seed beyond 64 bits": (["--seed", str(2**64)], "argument --seed: expected an integer in [0,"),
    "threads zero": (["--threads", "0"], "argument --threads"),
    "unknown preset": (["--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    "steps zero": (["--steps", "0"], "argument --steps: expected an integer >= 1"),
}


@pytest.mark.parametrize("extra, message", TRAIN_CASES.values(), ids=TRAIN_CASES.keys())
def test_train_errors(files, no_work, capsys, extra, message):
    _one_line_error(capsys, TRAIN + extra, files, message)
    assert not (files["root"] / "w.safetensors").exists()


def test_train_refuses_an_incomplete_checkpoint_by_name(files, capsys, tmp_path):
    ckpt = tmp_path / "ckpt.safetensors"
    args = ["train", "--steps", "1", "--batch-size", "4", "--out", str(tmp_path / "w.safetensors"),
            "--checkpoint", str(ckpt)]
    assert main(args) == 0
    capsys.readouterr()
    tensors, metadata = read_tensors(ckpt)
    del tensors["rng.data"]
    ckpt.write_bytes(safetensors_bytes(tensors, metadata))
    err = _one_line_error(capsys, [*args[:2], "2", *args[3:], "--resume"], files, "incomplete training checkpoint")
    assert "missing rng.data" in err


OTHER_CASES = {
    "bench: batch zero": (["bench", "--batch", "0"], "argument --batch: expected an integer in [1, 4096], got '0'"),
    "bench: NFE one": (["bench", "--steps", "1"], "argument --steps: expected an integer in [2, 1000], got '1'"),
    "bench: NFE beyond T": (["bench", "--steps", "5,2000"], "argument --steps: expected an integer in [2, 1000]"),
    "bench: samples": (["bench", "--samples", "15"], "argument --samples: expected an integer in [16, 1000000]"),
    "bench: samplers": (["bench", "--samplers", "ddim,no_such"], "unknown sampler(s) no_such; allowed: ddpm"),
    "bench: out is a file": (["bench", "--out", "{a_file}"], "--out {a_file} is a file"),
    "bench: device": (["bench", "--device", "tpu"], "device 'tpu' is not available here"),
    "demo: n": (["demo", "--n", "1"], "argument --n: expected an integer in [2, 1000000]"),
    "demo: one step": (["demo", "--steps", "1"], "argument --steps: expected an integer in [2, 1000]"),
    "demo: seed": (["demo", "--seed", str(2**64 - 1)], "argument --seed"),
    "no command": ([], "the following arguments are required: command"),
    "unknown command": (["smaple"], "argument command: invalid choice: 'smaple'"),
}


@pytest.mark.parametrize("argv, message", OTHER_CASES.values(), ids=OTHER_CASES.keys())
def test_other_errors(files, no_work, capsys, argv, message):
    _one_line_error(capsys, argv, files, message.replace("{a_file}", str(files["a_file"])))


def test_bench_takes_the_batch_its_help_shows_and_writes_outside_the_repository(files, monkeypatch, capsys):
    import diffkit.bench
    from diffkit.bench import report

    seen = {}
    monkeypatch.setattr(diffkit.bench, "run_suite", lambda opts: seen.setdefault("opts", opts))
    monkeypatch.setattr(report, "write", lambda results, out, plots: seen.setdefault("out", out) and {})
    monkeypatch.setattr(report, "render", lambda results: "")
    assert main(["bench", "--quick", "--batch", "1", "--out", str(files["root"] / "bench")]) == 0
    assert seen["opts"].latency_batches == (1,)
    from diffkit.cli.bench import DEFAULT_OUT

    assert not Path(DEFAULT_OUT).parts[0] == "benchmarks"
    git = shutil.which("git")
    if git and (REPO / ".git").exists():  # the default output folder is ignored by git
        assert subprocess.run([git, "-C", str(REPO), "check-ignore", "-q", f"{DEFAULT_OUT}/bench.json"]).returncode == 0


# -- --help, --version, what the report says ---------------------------------------------------------


@pytest.mark.parametrize("command", ["sample", "train", "demo", "bench", "samplers"])
def test_help_shows_defaults(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "(default: 1)" in out or "(default: " in out  # --threads at least
    if command == "sample":
        assert "--steps STEPS         sampler steps (default: 20)" in out and "(default: samples.png)" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"diffkit {diffkit.__version__}"


def test_sample_report_says_what_was_measured(files, monkeypatch, capsys):
    import diffkit.digits.evaluate

    monkeypatch.setattr(diffkit.digits.evaluate, "sample_digits",
                        lambda model, schedule, labels, **kw: torch.zeros(len(labels), 1, 8, 8))  # fmt: skip
    out = files["root"] / "r.png"
    assert main(["sample", "--checkpoint", str(files["tiny"]), "--n", "501", "--steps", "4", "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "501 samples, dpmpp_2m, 4 steps (karras spacing), guidance 2" in report
    assert "(loading and PNG writing not included)" in report and "on 1 thread" in report
    assert "ms/step for 2 batches of up to 500 (4 U-Net calls per batch on up to 1000 images each)" in report


# -- progress and Ctrl-C -----------------------------------------------------------------------------


def test_piped_progress_prints_a_handful_of_lines():
    stream = io.StringIO()  # not a terminal
    with ProgressBar(100_000, stream=stream) as bar:
        for i in range(100_000):
            bar.update(i + 1)
    assert 2 <= stream.getvalue().count("\n") <= 11


def test_sample_shows_progress_across_batches(files, capsys):
    assert main(["sample", "--checkpoint", str(files["tiny"]), "--n", "3", "--steps", "30",
                 "--out", str(files["root"] / "p.png")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "30/30 steps" in err and 2 <= err.count("\n") <= 11


def test_ctrl_c_in_sample_is_one_line(files, monkeypatch, capsys):
    import diffkit.digits.evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(diffkit.digits.evaluate, "sample_digits", interrupted)
    _one_line_error(capsys, SAMPLE, files, "diffkit sample: interrupted", code=130)


def test_ctrl_c_in_train_says_how_to_resume(files, monkeypatch, capsys, tmp_path):
    import diffkit.digits.train as training

    real_step, calls = training._train_step, []

    def step(run, i):
        calls.append(i)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step(run, i)

    monkeypatch.setattr(training, "_train_step", step)
    ckpt = tmp_path / "ckpt.safetensors"
    args = ["train", "--steps", "6", "--batch-size", "4", "--checkpoint-every", "2", "--checkpoint", str(ckpt),
            "--out", str(tmp_path / "w.safetensors")]  # fmt: skip
    assert main(args) == 130
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (f"diffkit train: interrupted; {ckpt} holds step 2 of 6: "
                    "to continue, run the same command with --resume")
    monkeypatch.setattr(training, "_train_step", real_step)
    assert main([*args, "--resume"]) == 0 and (tmp_path / "w.safetensors").is_file()


# -- nothing a user runs overwrites shipped or committed files ----------------------------------------


def test_train_script_leaves_the_shipped_weights_alone(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    before = hashlib.sha256(DIGITS_WEIGHTS.read_bytes()).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "train_digits.sh"), "--steps", "1", "--batch-size", "4"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "digits.safetensors").is_file() and "differs from the shipped" in proc.stdout
    assert hashlib.sha256(DIGITS_WEIGHTS.read_bytes()).hexdigest() == before
