"""Digits quality at 5 and 10 NFE with grids fitted to the model, beside the default grids, for both embedded models.

For each embedded model ("digits": eps on Linear; "digits-flow": velocity on FlowMatch), each
deterministic sampler and each budget, two runs from the same x_T (``n`` class-balanced samples,
no guidance, seed 0, as ``benchmarks/results/digits_quality.md``):

- default: the sampler's default spacing where the schedule has it, else the schedule's own;
- fitted: ``diffkit.optimize_timesteps`` for this model, sampler and step count, calibrated on
  ``calibration`` samples drawn from a separate seed (never the evaluation noise), with the
  same labels cycle; its wall seconds are reported beside the gain;

and, first, the row "(default)": ``diffkit.sample`` with only the budget, the sampler and grid
of the defaults table (``diffkit.samplers.defaults``) for the model's schedule; its fitted grid is
the table's sampler fitted from the table's grid (``start=``).

Scores: FD to the held-out digits and classifier accuracy (``diffkit.digits.evaluate``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from diffkit.bench.digits import budget, each_model, machine_text, measure
from diffkit.bench.frontier import grid_label
from diffkit.samplers import SAMPLERS as SAMPLER_INFO
from diffkit.samplers.defaults import default_for

SAMPLERS = ("ddim", "euler", "dpmpp_2m", "dpmpp_3m", "unipc", "ipndm", "deis")
NFES = (5, 10)
CALIBRATION_SEED = 1000  # the fitted grids' calibration noise; evaluation uses seed 0


def report(models: Sequence[str] = ("digits", "digits-flow"), samplers: Sequence[str] = SAMPLERS,
           nfes: Sequence[int] = NFES, n: int = 1000, calibration: int = 16) -> dict:
    """{"machine", "n", "calibration", "models", "skipped", "rows": [{model, sampler, nfe, grid, fd, ...}]}."""
    from diffkit.digits.evaluate import balanced_labels

    labels = balanced_labels(n)
    out: dict = {"machine": machine_text(), "n": n, "calibration": calibration, "nfes": list(nfes), "models": {},
                 "skipped": {}, "rows": []}
    for name, model, schedule in each_model(models, out):
        shape = (calibration, model.config.in_channels, model.config.resolution, model.config.resolution)
        cond = {"y": balanced_labels(calibration)}
        for nfe in nfes:  # the defaults table: nfe model calls (nfe + 1 timesteps where it takes afs)
            chosen = default_for(schedule, nfe)
            start = chosen.timesteps(schedule, nfe)
            _, score = measure(model, schedule, labels, sampler=None, steps=nfe)
            afs = " afs" if chosen.options.get("afs") else ""  # nfe + 1 timesteps, the first without a call
            grid = f"{chosen.sampler}{afs} @ {grid_label(chosen.spacing, chosen.grid_options)}"
            row = {"model": name, "sampler": "(default)", "nfe": nfe, "budget": nfe, "steps": len(start)}
            out["rows"].append({**row, "grid": grid, "options": dict(chosen.options), **score})
            # ... and the table's sampler on a grid fitted from the table's grid
            fitted = _fitted(model, schedule, labels, chosen.sampler, len(start), shape, cond, start=start,
                             **chosen.options)
            out["rows"].append({**row, **fitted})
            print(f"{name} default NFE {nfe}: FD {score['fd']:.1f} ({grid}) -> {fitted['fd']:.1f} (fitted from it "
                  f"in {fitted['fit_seconds']:.0f} s)", flush=True)
        for sampler in samplers:
            for nfe in nfes:
                row = {"model": name, **budget(sampler, nfe, schedule)}
                _, score = measure(model, schedule, labels, sampler=sampler, steps=row["steps"], spacing=row["spacing"])
                out["rows"].append({**row, "grid": row["spacing"], **score})
                fitted = _fitted(model, schedule, labels, sampler, row["steps"], shape, cond)
                out["rows"].append({**row, **fitted})
                print(f"{name} {sampler} NFE {nfe}: FD {score['fd']:.1f} ({row['spacing']}) -> {fitted['fd']:.1f} "
                      f"(fitted in {fitted['fit_seconds']:.0f} s)", flush=True)
    return out


def _fitted(model, schedule, labels, sampler: str, steps: int, shape: tuple, cond: dict, **fit_options) -> dict:
    """``diffkit.optimize_timesteps`` on the calibration noise (timed), then ``labels`` sampled on the grid with
    ``sampler`` and the sampler options among ``fit_options``: the row's fitted fields."""
    import diffkit

    start = time.perf_counter()
    with torch.inference_mode():
        grid = diffkit.optimize_timesteps(model, schedule, sampler, steps, shape,
                                          generator=torch.Generator().manual_seed(CALIBRATION_SEED), cond=cond,
                                          **fit_options)
    seconds = time.perf_counter() - start
    options = {k: v for k, v in fit_options.items() if k in SAMPLER_INFO[sampler].options}
    _, score = measure(model, schedule, labels, sampler=sampler, steps=steps, timesteps=grid, options=options)
    return {"grid": "fitted", "fit_seconds": seconds, "timesteps": [float(t) for t in grid], **score}


def markdown(rep: dict) -> str:
    lines = ["# Digits quality with grids fitted to the model (5 and 10 NFE, no guidance)", "",
             f"Machine: {rep['machine']}. {rep['n']} class-balanced samples per cell, seed 0; fitted grids: "
             f"`diffkit.optimize_timesteps` on {rep['calibration']} calibration samples of another seed. Generated "
             "by `python -m benchmarks.digits_grids` (what is measured: `diffkit.bench.digits_grids`). Cells: FD "
             "(classifier accuracy); fit: wall seconds of optimize_timesteps. The (default) row's fitted grid starts "
             "from the table's grid.", ""]
    for name in rep["models"]:
        lines += [f"## {name}", "", "| sampler | " + " | ".join(f"NFE {n} default | NFE {n} fitted | fit s"
                                                            for n in rep["nfes"]) + " |",
                  "|---|" + "---:|---:|---:|" * len(rep["nfes"])]
        for sampler in dict.fromkeys(r["sampler"] for r in rep["rows"] if r["model"] == name):
            cells = []
            for nfe in rep["nfes"]:
                pair = {r["grid"] == "fitted": r for r in rep["rows"]
                        if (r["model"], r["sampler"], r["budget"]) == (name, sampler, nfe)}
                d, f = pair.get(False), pair.get(True)
                cells += [f"{d['fd']:.1f} ({100 * d['accuracy']:.1f}%) {d['grid']}" if d else "-",
                          f"{f['fd']:.1f} ({100 * f['accuracy']:.1f}%)" if f else "-",
                          f"{f['fit_seconds']:.0f}" if f else "-"]
            lines.append(f"| {sampler} | " + " | ".join(cells) + " |")
        lines.append("")
    for name, why in rep["skipped"].items():
        lines.append(f"{name}: skipped ({why})")
    return "\n".join(lines) + "\n"
