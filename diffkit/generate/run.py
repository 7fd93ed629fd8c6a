"""``generate(job)``: draw a job's seeds on every process, resume what is missing, assemble, evaluate, record.

The order of a run (the collectives are the same on every rank, so a failure anywhere ends the job):

1. every rank checks the arguments and loads the model (the CLI has set its threads: ``world.torch_threads``);
2. the ranks join the process group; rank 0 checks the output directory (its config.json), removes
   a killed run's temporary files, lists the seeds already written and broadcasts the batches still
   to draw; every rank checks that it sees the same directory (a multi-node job needs a shared one);
3. round after round each rank draws one batch and writes its files; a sum over ranks of the
   images written feeds rank 0's progress bar (images/s and ETA of the whole job);
4. rank 0 assembles ``samples.npz`` from the files; with ``evaluate`` every rank sums the
   statistics of its share of the samples and one ``all_reduce`` gives the metrics;
5. rank 0 writes ``run.json``.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import time
from pathlib import Path

import numpy as np
import torch

import diffkit
from diffkit.generate.job import CollectiveError, Job, Loaded, draw_batch, job_record, load, shares
from diffkit.generate.outdir import CONFIG, RUN, check_config, clean_temporaries, write_samples, written_seeds
from diffkit.generate.samplefile import sample_path, sample_png
from diffkit.generate.seeds import batches
from diffkit.generate.world import World
from diffkit.io.tensorfile import write_atomic
from diffkit.progress import ProgressBar

KILL_AFTER_ENV = "DIFFKIT_GENERATE_KILL_AFTER"  # "RANK:N": rank RANK SIGKILLs itself after N files (the resume test)

Todo = list[tuple[list[int], int]]  # (a batch's seeds, how many of them have no file yet)


def generate(job: Job, world: World, command: str = "") -> dict:
    """Run ``job`` as this process's part of ``world``; the run record (what run.json holds) on every rank."""
    start = time.perf_counter()
    job.check(world.size)
    if job.evaluate:
        from diffkit.generate.evaluate import check_digits_setup

        check_digits_setup()
    device = world.device(job.device)
    loaded = load(job, device)
    if job.evaluate:
        from diffkit.generate.evaluate import check_digits_model

        check_digits_model(loaded.shape, loaded.num_classes)
    world.connect(device)
    try:
        status = world.broadcast(_prepare(job, loaded) if world.main else None)
        if isinstance(status, str):
            raise CollectiveError(status)
        todo, already = status
        _check_shared(job.outdir, loaded.config, world)
        timings = {"load_s": time.perf_counter() - start}
        drawn, seconds = _draw(job, loaded, world, todo, already, device)
        timings["generate_s"] = seconds
        per_rank = torch.zeros(world.size, 2, dtype=torch.float64)
        per_rank[world.rank] = torch.tensor([drawn, seconds], dtype=torch.float64)
        per_rank = world.all_reduce_sum(per_rank)
        mark = time.perf_counter()
        error = None
        if world.main:
            try:
                write_samples(job.outdir, job.seeds, job.subdirs)
            except ValueError as err:
                error = str(err)
        error = world.broadcast(error)
        if error is not None:
            raise CollectiveError(error)
        timings["assemble_s"] = time.perf_counter() - mark
        metrics = None
        if job.evaluate:
            from diffkit.generate.evaluate import evaluate_digits

            mark = time.perf_counter()
            metrics = evaluate_digits(world, job.outdir, job.seeds, job.subdirs)
            timings["evaluate_s"] = time.perf_counter() - mark
        timings["total_s"] = time.perf_counter() - start
        record = _record(job, world, command, device, already, per_rank, timings, metrics)
        if world.main:
            _write_record(job.outdir / RUN, record)
        return record
    finally:
        world.close()


def _prepare(job: Job, loaded: Loaded) -> tuple[Todo, int] | str:
    """Rank 0: (the batches still to draw, seeds already written), or the error every rank should raise."""
    try:
        resuming = check_config(job.outdir, loaded.config)
        have = set()
        if resuming:
            clean_temporaries(job.outdir)
            have = written_seeds(job.outdir, job.subdirs)
    except (ValueError, OSError) as err:
        return str(err)
    todo = [(b, sum(seed not in have for seed in b)) for b in batches(list(job.seeds), job.batch)]
    todo = [(b, missing) for b, missing in todo if missing]
    return todo, len(job.seeds) - sum(missing for _, missing in todo)


def _check_shared(outdir: Path, config: dict, world: World) -> None:
    """CollectiveError unless every rank reads rank 0's config.json (a multi-node job needs a shared --outdir)."""
    try:
        seen = json.loads((outdir / CONFIG).read_text()) == config
    except (OSError, ValueError):
        seen = False
    blind = int(world.all_reduce_sum(torch.tensor([0.0 if seen else 1.0], dtype=torch.float64)).item())
    if blind:
        raise CollectiveError(f"{blind} of {world.size} processes cannot see {outdir / CONFIG}: --outdir must be a "
                              f"directory that every node shares")  # fmt: skip


def _kill_after(rank: int) -> int | None:
    """The file count after which this rank kills itself (KILL_AFTER_ENV; tests only), None normally."""
    value = os.environ.get(KILL_AFTER_ENV, "")
    target, _, count = value.partition(":")
    return int(count) if value and int(target) == rank else None


def _draw(job: Job, loaded: Loaded, world: World, todo: Todo, already: int, device: torch.device) -> tuple[int, float]:
    """Draw and write this rank's batches; (files written, seconds)."""
    kill = _kill_after(world.rank)
    bar = ProgressBar(len(job.seeds), "images", start=already, enabled=world.main)
    start, written, done = time.perf_counter(), 0, already
    for share in shares(todo, world.rank, world.size):
        new = 0
        if share is not None:
            seeds, new = share
            images, labels = draw_batch(job, loaded, seeds, device)
            for seed, image, label in zip(seeds, images, labels.tolist()):
                write_atomic(sample_path(job.outdir, seed, job.subdirs), sample_png(image, seed, label), durable=False)
                written += 1
                if kill is not None and written >= kill:
                    os.kill(os.getpid(), signal.SIGKILL)
        done += int(world.all_reduce_sum(torch.tensor([new], dtype=torch.float64)).item())
        bar.update(done)
    bar.close()
    return written, time.perf_counter() - start


def _machine(device: torch.device) -> dict:
    from diffkit.bench.machine import cpu_model

    return {
        "host": platform.node(), "cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,  # shared machines
    }  # fmt: skip


def _record(job, world, command, device, already, per_rank, timings, metrics) -> dict:
    generated = int(per_rank[:, 0].sum())
    return {
        "command": command,
        "launcher": "torchrun" if world.launched else "python",
        "world_size": world.size,
        "nodes": world.size // world.local_size,
        "backend": world.backend,
        "threads_per_process": torch.get_num_threads(),
        "device": str(device),
        "versions": {"diffkit": diffkit.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},  # fmt: skip
        "machine": _machine(device),
        "job": job_record(job),
        "seeds_already_written": already,
        "images_generated": generated,
        "images_per_s": generated / timings["generate_s"] if timings["generate_s"] > 0 else None,
        "timings": {key: round(value, 4) for key, value in timings.items()},
        "ranks": [{"rank": r, "images": int(n), "generate_s": round(float(s), 4)} for r, (n, s) in enumerate(per_rank)],
        "eval": metrics,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def _write_record(path: Path, record: dict) -> None:
    """run.json: this run's record, with the earlier runs' (a resumed job keeps its history)."""
    previous = []
    try:
        old = json.loads(path.read_text())
        previous = old.pop("previous_runs", []) + [old]
    except (OSError, ValueError):
        pass
    text = json.dumps({**record, "previous_runs": previous}, indent=1)
    write_atomic(path, (text + "\n").encode())


def command_line(argv: list[str]) -> str:
    """``diffkit <argv>`` as a shell would take it (run.json's "launcher" says whether torchrun started it)."""
    return shlex.join(["diffkit", *argv])
