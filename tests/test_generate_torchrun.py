"""``torchrun --nproc_per_node=2 -m diffkit generate`` over gloo on the CPU: the same bytes as one process, a killed
rank resumed, and a bad argument reported once.

Each torchrun costs ~5-10 s here (two processes importing torch), so the runs are few and small: 23 seeds in
batches of 5 (the ranks get 3 and 2 batches, so one rank sits out a round), 3 steps of a stochastic sampler.
The reference is one process in this test process, with one thread as each rank has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffkit.generate import Job, World, generate, parse_seeds
from diffkit.generate.outdir import CONFIG, SAMPLES, written_seeds
from diffkit.generate.run import KILL_AFTER_ENV

ROOT = Path(__file__).resolve().parents[1]
SEEDS, SAMPLER, STEPS, BATCH = "0-22", "dpmpp_sde", 3, 5  # dpmpp_sde: Brownian-tree noise, seeded per sample
ARGS = ["--seeds", SEEDS, "--sampler", SAMPLER, "--steps", str(STEPS), "--batch", str(BATCH), "--device", "cpu"]


def torchrun(outdir: Path, *args: str, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop(KILL_AFTER_ENV, None)
    if kill is not None:
        env[KILL_AFTER_ENV] = kill
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "diffkit", "generate", "--outdir", str(outdir), *args]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> tuple[bytes, dict]:
    """samples.npz and run.json of the same job in one process, one thread."""
    pytest.importorskip("sklearn")
    outdir = tmp_path_factory.mktemp("one")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        job = Job(seeds=tuple(parse_seeds(SEEDS)), outdir=outdir, sampler=SAMPLER, steps=STEPS, batch=BATCH,
                  evaluate=True)  # fmt: skip
        record = generate(job, World())
    finally:
        torch.set_num_threads(threads)
    return (outdir / SAMPLES).read_bytes(), record


def test_two_processes_write_the_bytes_of_one(tmp_path, one_process):
    proc = torchrun(tmp_path, *ARGS, "--eval")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference, single = one_process
    assert (tmp_path / SAMPLES).read_bytes() == reference
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["world_size"] == 2 and record["backend"] == "gloo" and record["launcher"] == "torchrun"
    assert sorted(r["images"] for r in record["ranks"]) == [10, 13]  # batches 5,5,5 | 5,3
    # statistics summed in another order (all_reduce of two shards): float64 rounding, amplified by FD's square
    # roots of near-zero eigenvalues to ~1e-8 relative (see test_generate.py)
    assert record["eval"]["fd"] == pytest.approx(single["eval"]["fd"], rel=1e-6)
    assert record["eval"]["accuracy"] == single["eval"]["accuracy"]
    assert proc.stdout.count("23 seeds (0 already written)") == 1  # rank 0 alone reports
    assert "images/s" in proc.stderr and "eta" in proc.stderr  # rank 0's progress bar


def test_a_killed_rank_resumes_to_the_same_bytes(tmp_path, one_process):
    killed = torchrun(tmp_path, *ARGS, kill="1:3")  # rank 1 SIGKILLs itself after 3 files: mid-batch
    assert killed.returncode != 0 and not (tmp_path / SAMPLES).exists()
    partial = written_seeds(tmp_path, subdirs=False)
    assert 3 <= len(partial) < 23 and (tmp_path / CONFIG).exists()
    resumed = torchrun(tmp_path, *ARGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (tmp_path / SAMPLES).read_bytes() == one_process[0]
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["seeds_already_written"] == len(partial) and not list(tmp_path.glob(".*.tmp"))


def test_more_processes_than_seeds_is_one_line(tmp_path):
    proc = torchrun(tmp_path / "out", "--seeds", "7", "--device", "cpu")
    assert proc.returncode != 0
    assert proc.stderr.count("diffkit generate: error: 2 processes for 1 seed(s)") == 1, proc.stderr[-3000:]
    assert not (tmp_path / "out").exists()


def test_throughput_benchmark_runs_and_tabulates():
    from diffkit.bench.generate import markdown, throughput

    report = throughput(4, 1, ["--steps", "2", "--batch", "4"], cwd=ROOT, configs=((1, 1, None),),
                        progress=lambda line: None)
    (row,) = report["summary"]
    assert row["config"] == "1 x 1" and row["images_per_s_median"] > 0 and report["runs"][0]["images"] == 4
    assert "| 1 x 1 |" in markdown(report) and "torchrun --nnodes=2" in markdown(report)
