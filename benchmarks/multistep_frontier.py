"""The multistep samplers against the exact ODE: fitted orders, and errors at 5-10 NFE (float64).

    OMP_NUM_THREADS=1 python -m benchmarks.multistep_frontier            # both parts, a few minutes
    OMP_NUM_THREADS=1 python -m benchmarks.multistep_frontier --part low  # only the low-NFE table

- orders: GaussianMixture.random(Linear(), dim=8, components=3, seed=1), 48 samples, steps
  40..320 on karras and logsnr grids; the least-squares slope of log RMS against log steps
  over 80..320 (the asymptotic range; 40 shows the approach) -- as tests/test_samplers_multistep.py.
- low NFE: GaussianMixture.random(schedule, dim=64) (4 components, seed 0) on Linear() and
  Cosine(), 256 samples, RMS to exact_sample at NFE 5, 6, 8, 10 (NFE = steps for all of these).

Writes benchmarks/results/multistep_frontier.json and .md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import diffkit
from diffkit.bench.metrics import rms
from diffkit.models import GaussianMixture, exact_sample
from diffkit.schedules import Cosine, Linear

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = (
    [("ddim", {}), ("dpmpp_2m", {}), ("dpmpp_3m", {}), ("dpmpp_3m", {"variant": "published"})]
    + [("unipc", {"order": k, "variant": v, "corrector": c}) for k in (1, 2, 3) for v in ("bh1", "bh2")
       for c in (True, False) if (k, c) != (1, False)]  # UniP-1 alone is DDIM
    + [("ipndm", {"order": k, "variant": v}) for k in (2, 3, 4) for v in ("variable", "fixed")]
    + [("deis", {"order": k, "variant": v}) for k in (2, 3) for v in ("tab", "logrho")]
)
SPACINGS = ("karras", "logsnr")


def label(name: str, options: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in options.items())


def orders(steps=(40, 80, 160, 320), fit_from: int = 80) -> list[dict]:
    schedule = Linear()
    model = GaussianMixture.random(schedule, dim=8, components=3, seed=1)
    x_T = torch.randn(48, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = exact_sample(model, schedule, x_T)
    rows = []
    for name, options in CONFIGS:
        row = {"sampler": label(name, options)}
        for spacing in SPACINGS:
            errs = [rms(diffkit.sample(model, schedule, name, n, x=x_T, spacing=spacing, **options), exact)
                    for n in steps]
            use = [i for i, n in enumerate(steps) if n >= fit_from]
            slope = np.polyfit(np.log([steps[i] for i in use]), np.log([errs[i] for i in use]), 1)[0]
            row[spacing] = {"order": -float(slope), "steps": list(steps), "rms": errs}
        rows.append(row)
        print(row["sampler"], {s: round(row[s]["order"], 2) for s in SPACINGS}, flush=True)
    return rows


def low_nfe(nfes=(5, 6, 8, 10)) -> list[dict]:
    rows = []
    for schedule in (Linear(), Cosine()):
        model = GaussianMixture.random(schedule, dim=64)
        x_T = torch.randn(256, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        exact = exact_sample(model, schedule, x_T)
        for name, options in CONFIGS:
            for spacing in SPACINGS:
                errs = [rms(diffkit.sample(model, schedule, name, n, x=x_T, spacing=spacing, **options), exact)
                        for n in nfes]
                rows.append({"schedule": type(schedule).__name__, "spacing": spacing,
                             "sampler": label(name, options), "nfe": list(nfes), "rms": errs})
        print(type(schedule).__name__, "done", flush=True)
    return rows


def markdown(result: dict) -> str:
    lines = ["# Multistep samplers against the exact ODE", "", __doc__.split("\n\n")[2], ""]
    if "orders" in result:
        lines += ["## Fitted order (steps 80-320)", "", "| sampler | karras | logsnr |", "|---|---:|---:|"]
        lines += [f"| {r['sampler']} | {r['karras']['order']:.2f} | {r['logsnr']['order']:.2f} |"
                  for r in result["orders"]]
    if "low_nfe" in result:
        nfes = result["low_nfe"][0]["nfe"]
        for sched in dict.fromkeys(r["schedule"] for r in result["low_nfe"]):
            for spacing in SPACINGS:
                lines += ["", f"## RMS to the exact ODE: {sched}, {spacing}", "",
                          "| sampler | " + " | ".join(f"NFE {n}" for n in nfes) + " |",
                          "|---|" + "---:|" * len(nfes)]
                lines += [f"| {r['sampler']} | " + " | ".join(f"{e:.3g}" for e in r["rms"]) + " |"
                          for r in result["low_nfe"] if r["schedule"] == sched and r["spacing"] == spacing]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("both", "orders", "low"), default="both")
    args = parser.parse_args(argv)
    result = {}
    if args.part in ("both", "orders"):
        result["orders"] = orders()
    if args.part in ("both", "low"):
        result["low_nfe"] = low_nfe()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "multistep_frontier.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "multistep_frontier.md").write_text(markdown(result))


if __name__ == "__main__":
    main()
