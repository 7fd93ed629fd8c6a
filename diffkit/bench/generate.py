"""Throughput of ``diffkit generate``: images/s with 1 and 2 processes, run as a user runs it.

Each configuration is a fresh command in a subprocess, in a fresh output folder:

- ``1 process x T threads``: ``python -m diffkit generate ...`` with OMP_NUM_THREADS=T;
- ``P processes x 1 thread``: ``torchrun --standalone --nproc_per_node=P -m diffkit generate ...``;
- ``... passive``: the same with OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep at a barrier instead of
  spinning: on a machine shared with other work, a spinning thread burns the time slice its
  descheduled partner needs).

Two figures per run: ``images/s`` of the drawing phase (from run.json: images over the slowest
rank's drawing time, files included) and ``end-to-end`` (seeds over the command's wall time:
interpreter and torch start-up, model load, rendezvous, samples.npz). The configurations are
interleaved, repeat after repeat, so that load from other work on a shared machine falls on
all of them alike; the table gives the median and the spread (min-max) over the repeats.

Run by ``benchmarks/generate_throughput.py``; results in ``benchmarks/results/generate_throughput_<device>.*``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diffkit.bench.machine import cpu_model
from diffkit.bench.report import table

# (processes, threads per process, OMP_WAIT_POLICY or None for the default) on this 2-core machine
CONFIGS = ((1, 1, None), (1, 2, None), (1, 2, "PASSIVE"), (2, 1, None))

GPU_COMMANDS = """\
# one GPU
diffkit generate --seeds 0-49999 --outdir out --device cuda --batch 1024 --eval
# all GPUs of one node
torchrun --standalone --nproc_per_node=8 -m diffkit generate --seeds 0-49999 --outdir out --device cuda \\
    --batch 1024 --eval
# two nodes (run on each, NODE = 0 and 1; --outdir on a filesystem both nodes share)
torchrun --nnodes=2 --node_rank=NODE --master_addr=HOST0 --master_port=29500 --nproc_per_node=8 \\
    -m diffkit generate --seeds 0-49999 --outdir /shared/out --device cuda --batch 1024 --eval"""


def command(processes: int, outdir: Path, args: list[str]) -> list[str]:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    launcher = [sys.executable] if processes == 1 else torchrun
    return [*launcher, "-m", "diffkit", "generate", "--outdir", str(outdir), *args]


def run_once(processes: int, threads: int, wait_policy: str | None, args: list[str], cwd: Path) -> dict:
    """One fresh run of ``diffkit generate args`` on ``processes`` x ``threads``; its figures."""
    with tempfile.TemporaryDirectory(prefix="diffkit-generate-bench-") as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        env.pop("OMP_WAIT_POLICY", None)
        if wait_policy is not None:
            env["OMP_WAIT_POLICY"] = wait_policy
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        start = time.perf_counter()
        proc = subprocess.run(command(processes, Path(tmp), args), cwd=cwd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command(processes, Path(tmp), args))} failed:\n{proc.stderr[-2000:]}")
        record = json.loads((Path(tmp) / "run.json").read_text())
    images = record["images_generated"]
    slowest = max(r["generate_s"] for r in record["ranks"])
    return {"processes": processes, "threads": threads, "wait_policy": wait_policy, "images": images,
            "images_per_s": images / slowest, "end_to_end_images_per_s": images / wall, "wall_s": wall,
            "timings": record["timings"], "loadavg_1min_before": load}  # fmt: skip


def label(row: dict) -> str:
    """``2 x 1`` (processes x threads), with `` passive`` under OMP_WAIT_POLICY=PASSIVE."""
    policy = f" {row['wait_policy'].lower()}" if row["wait_policy"] else ""
    return f"{row['processes']} x {row['threads']}{policy}"


def throughput(seeds: int, repeats: int, args: list[str], cwd: Path, configs=CONFIGS, progress=print) -> dict:
    """Interleaved repeats of every configuration; rows of every run and the summary per configuration."""
    full_args = ["--seeds", f"0-{seeds - 1}", "--device", "cpu", *args]
    runs = []
    for repeat in range(repeats):
        for processes, threads, wait_policy in configs:
            row = {"repeat": repeat, **run_once(processes, threads, wait_policy, full_args, cwd)}
            runs.append(row)
            progress(f"repeat {repeat + 1}/{repeats}: {label(row)}: "
                     f"{row['images_per_s']:.1f} images/s drawing, "
                     f"{row['end_to_end_images_per_s']:.1f} end to end")  # fmt: skip
    summary = []
    for config in configs:
        mine = [r for r in runs if (r["processes"], r["threads"], r["wait_policy"]) == config]
        draw, e2e = [r["images_per_s"] for r in mine], [r["end_to_end_images_per_s"] for r in mine]
        summary.append({"config": label(mine[0]), "images_per_s_median": statistics.median(draw),
                        "images_per_s_min": min(draw), "images_per_s_max": max(draw),
                        "end_to_end_median": statistics.median(e2e), "end_to_end_min": min(e2e),
                        "end_to_end_max": max(e2e)})  # fmt: skip
    machine = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    return {"machine": machine, "seeds": seeds, "repeats": repeats, "args": full_args, "summary": summary,
            "runs": runs, "gpu_commands": GPU_COMMANDS,
            "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip


def paired_ratios(report: dict, config: str) -> list[float]:
    """Drawing images/s of ``config`` over the first configuration's in the same repeat (the load drifts)."""
    runs = report["runs"]
    first = {r["repeat"]: r["images_per_s"] for r in runs if label(r) == report["summary"][0]["config"]}
    return [r["images_per_s"] / first[r["repeat"]] for r in runs if label(r) == config]


def markdown(report: dict) -> str:
    rows = []
    for s in report["summary"]:
        ratios = paired_ratios(report, s["config"])
        rows.append([s["config"], f"{s['images_per_s_median']:.1f}",
                     f"{s['images_per_s_min']:.1f}-{s['images_per_s_max']:.1f}",
                     f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
                     f"{s['end_to_end_median']:.1f}", f"{s['end_to_end_min']:.1f}-{s['end_to_end_max']:.1f}"])
    loads = [r["loadavg_1min_before"] for r in report["runs"] if r["loadavg_1min_before"] is not None]
    lines = [
        "# diffkit generate: throughput",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cpu_count']} cores, shared with other work "
        f"(1-minute load average before the runs: {min(loads, default=0):.1f}-{max(loads, default=0):.1f}); "
        f"{report['date_utc']}.",
        "",
        f"`diffkit generate {' '.join(report['args'])}`: {report['seeds']} images per run, "
        f"{report['repeats']} interleaved repeats; median and spread (min-max) over the repeats.",
        "",
        table(["processes x threads", "images/s (drawing)", "spread", f"vs {rows[0][0]}, same repeat",
               "images/s (end to end)", "spread"],
              rows, markdown=True),
        "",
        "Drawing: images over the slowest rank's drawing time (files included). End to end: images over the "
        "command's wall time (start-up, model load, rendezvous, samples.npz). `passive`: OMP_WAIT_POLICY=PASSIVE "
        "(OpenMP threads sleep at barriers instead of spinning). The ratio column pairs each run with the first "
        "configuration's run of the same repeat: median (min-max) of those ratios.",
        "",
        "On GPUs (not measured here):",
        "",
        "```bash",
        report["gpu_commands"],
        "```",
    ]
    return "\n".join(lines) + "\n"


def write(report: dict, results: Path, device: str = "cpu") -> Path:
    """``generate_throughput_<device>.json`` and ``.md`` under ``results``; the JSON path."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"generate_throughput_{device}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(report))
    return path
