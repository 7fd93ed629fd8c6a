"""Fuzzing every subcommand's arguments: ``diffkit`` exits 0, or exits 2 with one line, and never raises.

Hypothesis builds command lines from each subcommand's own options (read from the parser, so a new
option is fuzzed without touching this file) with values drawn from valid ones and from what a user
might type by mistake. The work is replaced by stand-ins that check what they are given: reaching
them with an unchecked value fails the test, as does any exception escaping ``main``.
"""

from __future__ import annotations

import argparse
import atexit
import math
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import bounded_memory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffkit.cli import build_parser, main
from diffkit.io.pretrained import save_pretrained
from diffkit.samplers import GridFit
from diffkit.schedules import Linear
from diffkit.unet import UNet, UNetConfig

TINY = UNetConfig(in_channels=1, channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                  resolution=8, groups=4, dropout=0.0, num_classes=10)  # fmt: skip
ROOT = Path(tempfile.mkdtemp(prefix="diffkit-cli-fuzz-"))  # hypothesis examples cannot use tmp_path
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)
(ROOT / "dir.png").mkdir()
(ROOT / "file").write_text("x")
(ROOT / "garbage.safetensors").write_bytes(b"garbage")
torch.manual_seed(0)
save_pretrained(ROOT / "tiny.safetensors", UNet.from_config(TINY), Linear())

NUMBERS = ["0", "1", "2", "3", "-1", "7", "20", "1000", "1001", "100000", "100001", str(2**63), str(2**64),
           "9" * 30, "0.5", "1e3", "nan", "inf", "-inf", "1e999", "0x10", "1_0", " 3", "", "٣", "5,10",
           "2 3"]  # fmt: skip
WORDS = ["", "ddim", "dpmpp_2m", "ddpm", "dpmpp_sde", "karras", "leading", "nope", "digits", "linear", "cpu",
         "cuda", "gmm2d", "digits_small", "ddim,dpmpp_2m", "--n", "-", "\x00", "é"]  # fmt: skip
PATHS = [str(ROOT / p) for p in ("out.png", "dir.png", "file/x.png", "new/deeper/o.png", "tiny.safetensors",
                                 "garbage.safetensors", "missing.safetensors", "w.safetensors", "ck.safetensors",
                                 "file", "bench", "grid.json")] + ["/proc/x.png", ""]  # fmt: skip
PATH_FLAGS = {"--out", "--checkpoint"}


def _options(command: str) -> list[argparse.Action]:
    parser, _ = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [a for a in sub._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


@st.composite
def command_lines(draw, command: str) -> list[str]:
    argv = [command]
    for action in draw(st.lists(st.sampled_from(_options(command)), max_size=6, unique_by=id)):
        flag = action.option_strings[-1]
        argv.append(flag)
        if action.nargs == 0:
            continue
        pool = PATHS if flag in PATH_FLAGS else NUMBERS if action.type is not None else WORDS
        if action.choices:
            pool = [*map(str, action.choices), *WORDS[-4:]]
        count = draw(st.integers(1, 3)) if action.nargs == "+" else 1
        argv += [draw(st.sampled_from(pool)) for _ in range(count)]
    if draw(st.booleans()):  # a stray value or an unknown flag now and then
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--bogus", "stray", "-x"])))
    return argv


def _stand_ins(monkeypatch) -> dict:
    """Replace the work by checks of what it is given; returns what was reached."""
    import diffkit.bench
    import diffkit.digits.evaluate
    import diffkit.digits.train
    from diffkit.bench import report

    reached: dict = {}

    def sample_digits(model, schedule, labels, *, sampler, steps, guidance, seed, spacing, batch_size, progress,
                      timesteps=None, classifier_guidance=0.0, classifier=None, classifier_schedule=None):
        assert 1 <= steps <= 100_000 and math.isfinite(guidance) and 0 <= seed < 2**64 and len(labels) >= 1
        reached["sample"] = True
        return torch.zeros(len(labels), 1, 8, 8)

    def train(model, images, labels, schedule, steps, options, *, checkpoint_path, checkpoint_every, resume, progress):
        assert steps >= 1 and checkpoint_every >= 1 and options.batch_size <= len(images)
        reached["train"] = True
        return diffkit.digits.train.TrainResult(model=model, ema=model, step=steps)

    def run_suite(opts):
        assert all(2 <= n <= 1000 for n in opts.nfes) and all(1 <= b <= 4096 for b in opts.latency_batches)
        reached["bench"] = True
        return {}

    def fit_timesteps(model, schedule, sampler, steps, shape, *, generator, cond, method, spacing, refine_evals):
        assert 1 <= steps <= 100_000 and 1 <= shape[0] <= 4096 and refine_evals >= 0 and len(cond["y"]) == shape[0]
        reached["fit-timesteps"] = True
        grid = diffkit.timesteps(schedule, steps, spacing or "karras")
        return GridFit(grid, 0.5, grid, 1.0, None, 1, 1, 2)

    def sample(model, schedule, name, steps, x, **kw):
        assert 2 <= steps <= 1000 and 2 <= len(x) <= 1_000_000
        reached["demo"] = True
        return x

    monkeypatch.setattr(diffkit.digits.evaluate, "sample_digits", sample_digits)
    monkeypatch.setattr(diffkit.digits.train, "train", train)
    monkeypatch.setattr(diffkit.bench, "run_suite", run_suite)
    monkeypatch.setattr(report, "write", lambda results, out, plots: {})
    monkeypatch.setattr(report, "render", lambda results: "")
    monkeypatch.setattr(diffkit, "sample", sample)
    monkeypatch.setattr(diffkit.samplers, "fit_timesteps", fit_timesteps)
    monkeypatch.setattr(diffkit.models, "exact_sample", lambda model, schedule, x: x)
    monkeypatch.setattr(diffkit.unet, "build_unet", lambda preset: UNet.from_config(TINY))
    return reached


def _run(argv: list[str], capsys) -> None:
    threads = torch.get_num_threads()
    for stale in ("w.safetensors", "ck.safetensors"):
        (ROOT / stale).unlink(missing_ok=True)  # a previous example's output must not change this one's meaning
    try:
        with pytest.MonkeyPatch.context() as monkeypatch, bounded_memory():
            _stand_ins(monkeypatch)
            monkeypatch.chdir(ROOT)  # default outputs (samples.png, timesteps.json, runs/) land there, not here
            code = main(argv)
    finally:
        torch.set_num_threads(threads)  # --threads applies to this process
    captured = capsys.readouterr()
    assert code in (0, 2), (argv, code)
    if code == 2:
        lines = captured.err.splitlines()
        # the last line: "diffkit <command>: error: ..." ("diffkit: error: unrecognized arguments" from the top parser)
        assert len(lines) >= 1 and lines[-1].startswith("diffkit") and ": error: " in lines[-1], (argv, lines)
        assert "Traceback" not in captured.err


@pytest.mark.parametrize("command, examples", [("sample", 60), ("train", 60), ("bench", 60), ("demo", 60),
                                               ("samplers", 20), ("fit-timesteps", 40)])  # fmt: skip
def test_fuzz_command(command, examples, capsys):
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(argv=command_lines(command))
    def fuzz(argv):
        _run(argv, capsys)

    fuzz()


def test_the_fuzzer_reaches_the_work(capsys):
    """Guards the fuzz tests above: with valid arguments every stand-in is reached (they are not vacuous)."""
    valid = {
        "sample": ["sample", "--checkpoint", str(ROOT / "tiny.safetensors"), "--out", str(ROOT / "out.png")],
        "train": ["train", "--out", str(ROOT / "w.safetensors"), "--batch-size", "4"],
        "bench": ["bench", "--quick", "--out", str(ROOT / "bench")],
        "demo": ["demo", "--n", "4", "--steps", "2"],
        "fit-timesteps": ["fit-timesteps", "--checkpoint", str(ROOT / "tiny.safetensors"), "--out",
                          str(ROOT / "grid.json")],
    }
    with pytest.MonkeyPatch.context() as monkeypatch:
        reached = _stand_ins(monkeypatch)
        for argv in valid.values():
            assert main(argv) == 0, capsys.readouterr().err
        assert set(reached) == set(valid)
