"""Time ``diffkit sample`` at 1 torch thread and at one per core: on the machine as found, and with one core kept busy.

    python scripts/threads_under_load.py                 # --n 10 and --n 500, 7 interleaved repeats each
    python scripts/threads_under_load.py --repeats 3 --n 10

"+burner" adds a process that spins on one core (``python -c "while True: pass"``), as another job
on a shared machine would; it is stopped at the end. Each row shows the 1-minute load average its
runs started at, since other jobs count too. Prints the median sampling time that ``diffkit sample``
reports (model loading and PNG writing excluded) and the median wall time of the whole command.
The README's thread figures come from this script.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOOK = re.compile(r"sampling took ([0-9.]+) s")


def one_run(n: int, threads: int, out: str) -> tuple[float, float]:
    """(sampling seconds as diffkit reports them, wall seconds of the whole command)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    command = [sys.executable, "-m", "diffkit", "sample", "--n", str(n), "--no-progress", "--threads", str(threads),
               "--out", out]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    return float(TOOK.search(proc.stdout).group(1)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10, 500], help="sample counts to time")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats per setting")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout still stops the burner (finally below)
    cores = len(os.sched_getaffinity(0))
    settings = sorted({1, cores})
    out = os.path.join(tempfile.mkdtemp(), "threads.png")
    print(f"{cores} cores; torch threads {settings}; {args.repeats} interleaved repeats, medians")
    print(f"{'machine':<8} {'load':>5} {'--n':>5} {'threads':>7} {'sampling s':>10} {'wall s':>7}")
    for load in ("as found", "+burner"):
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "+burner" else None
        try:
            time.sleep(1.0 if burner else 0.0)
            for n in args.n:
                average = os.getloadavg()[0]  # at the start of this block: other jobs count too
                times: dict[int, list[tuple[float, float]]] = {t: [] for t in settings}
                for _ in range(args.repeats):
                    for threads in settings:
                        times[threads].append(one_run(n, threads, out))
                for threads in settings:
                    sampling = statistics.median(s for s, _ in times[threads])
                    wall = statistics.median(w for _, w in times[threads])
                    print(f"{load:<8} {average:>5.2f} {n:>5} {threads:>7} {sampling:>10.3f} {wall:>7.2f}", flush=True)
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()


if __name__ == "__main__":
    main()
