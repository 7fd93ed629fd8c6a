"""Fitted time grids (``diffkit.optimize_timesteps``) vs the default spacing: error at 5-10 NFE, and the fit's cost.

For each problem, deterministic sampler and NFE, every variant fits a grid on its own calibration
noise (seed 0) and is measured on a held-out noise (seed 1) by ``median_error``: the median over
samples of the per-sample RMS error against

- the exact probability-flow ODE (``exact_sample``) on the Gaussian mixtures: ``gmm2d`` and ``gmm64``
  (``diffkit.bench.gmm.GMM_MODELS``) on the linear and the cosine schedules;
- a 500-step dpmpp_2m solution (Karras) on the embedded digits model with classifier-free guidance
  w = 2, class-balanced labels (the calibration batch's labels cycle 0..9 too).

Variants (``VARIANTS``): the sampler's default spacing; GITS's grid alone with its three local costs;
the descent alone from the default grid; the default ``gits+refine``. Each fit reports its wall
time and its model calls per calibration sample (the teacher's and the sampler runs').
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from diffkit.bench.gmm import GMM_MODELS
from diffkit.bench.machine import machine_info
from diffkit.bench.metrics import median_error
from diffkit.bench.report import fmt, table
from diffkit.models import exact_sample
from diffkit.samplers import SAMPLERS, fit_timesteps, sample
from diffkit.schedules import Cosine, Linear, Schedule

NFES = (5, 6, 8, 10)
VARIANTS: dict[str, dict | None] = {  # label -> fit_timesteps options (None: the default spacing, no fit)
    "default spacing": None,
    "gits": {"method": "gits"},
    "gits, cost gits_l2": {"method": "gits", "cost": "gits_l2"},
    "gits, cost gits_dev": {"method": "gits", "cost": "gits_dev"},
    "refine": {"method": "refine"},
    "gits+refine (default)": {},
}
SCHEDULES = {"linear": Linear, "cosine": Cosine}
GMM_CALIBRATION, GMM_TEST = 256, 256  # samples (GITS's num_warmup is 256)
DIGITS_CALIBRATION, DIGITS_TEST = 16, 100
DIGITS_GUIDANCE = 2.0  # diffkit sample's default
DIGITS_REFERENCE_STEPS = 500  # dpmpp_2m, Karras: converged far below the errors measured here


@dataclass(frozen=True)
class Problem:
    """A model with held-out noise and its reference samples, and how to draw calibration noise for it."""

    name: str
    model: object
    schedule: Schedule
    shape: tuple[int, ...]  # of one sample
    dtype: torch.dtype
    x_test: torch.Tensor
    reference: torch.Tensor  # the exact (or converged) sample from x_test
    test_cond: dict | None
    calibration: int  # calibration samples
    calibration_cond: dict | None


def gmm_problem(model_name: str, schedule_name: str) -> Problem:
    """A Gaussian mixture on one schedule; the reference is the exact ODE solution (DOP853, float64)."""
    schedule = SCHEDULES[schedule_name]()
    model = GMM_MODELS[model_name](schedule)
    x = torch.randn(GMM_TEST, model.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return Problem(f"{model_name}-{schedule_name}", model, schedule, (model.dim,), torch.float64, x,
                   exact_sample(model, schedule, x), None, GMM_CALIBRATION, None)


def digits_problem() -> Problem:
    """The embedded digits model with guidance; the reference is a 500-step dpmpp_2m solution."""
    from diffkit.digits.pretrained import load_pretrained
    from diffkit.models import ClassifierFreeGuidance

    unet, schedule = load_pretrained()
    model = ClassifierFreeGuidance(unet, DIGITS_GUIDANCE, uncond={"y": unet.null_label})
    shape = (unet.config.in_channels, unet.config.resolution, unet.config.resolution)
    x = torch.randn(DIGITS_TEST, *shape, generator=torch.Generator().manual_seed(1))
    cond = {"y": torch.arange(DIGITS_TEST) % 10}
    with torch.inference_mode():
        reference = sample(model, schedule, "dpmpp_2m", DIGITS_REFERENCE_STEPS, x=x, cond=cond, spacing="karras")
    return Problem("digits", model, schedule, shape, torch.float32, x, reference, cond, DIGITS_CALIBRATION,
                   {"y": torch.arange(DIGITS_CALIBRATION) % 10})


def measure(problem: Problem, samplers: Iterable[str], nfes: Sequence[int] = NFES,
            variants: dict[str, dict | None] = VARIANTS) -> list[dict]:
    """One row per (sampler, NFE, variant): median error on the held-out noise, fit seconds and model calls."""
    rows = []
    for name in samplers:
        info = SAMPLERS[name]
        for nfe in nfes:
            steps = (nfe - 1) // info.evals_per_step + 1  # most visited timesteps within the NFE
            for label, options in variants.items():
                if options is not None and options.get("cost") == "gits_dev" and problem.schedule.zero_terminal_snr:
                    continue
                row = {"problem": problem.name, "sampler": name, "nfe": info.nfe(steps), "variant": label}
                grid = None
                if options is not None:
                    start = time.perf_counter()
                    calibration = (problem.calibration, *problem.shape)
                    fit = fit_timesteps(problem.model, problem.schedule, name, steps, calibration,
                                        generator=torch.Generator().manual_seed(0), cond=problem.calibration_cond,
                                        dtype=problem.dtype, **options)
                    row.update(seconds=time.perf_counter() - start, model_calls=fit.model_calls,
                               objective=fit.objective, start_objective=fit.start_objective)
                    grid = fit.timesteps
                with torch.inference_mode():
                    x = sample(problem.model, problem.schedule, name, None if grid is not None else steps,
                               x=problem.x_test, cond=problem.test_cond, timesteps=grid)
                row["median_error"] = median_error(x, problem.reference)
                row["timesteps"] = None if grid is None else grid.tolist()
                rows.append(row)
    return rows


def markdown(results: dict) -> str:
    """Per problem: median error by (sampler, variant) and NFE, then the default fit's seconds and model calls."""
    rows, machine = results["rows"], results["machine"]
    lines = ["# Fitted time grids vs the default spacing", "",
             f"Machine: {machine['cpu']}, {machine['cpu_count']} cores shared with other jobs (load average "
             f"{machine['loadavg_at_start']}), {machine['torch_threads']} torch thread(s), torch {machine['torch']}. "
             "Generated by `python -m benchmarks.bench_grids` (what is measured: `diffkit.bench.grids`).", "",
             "Median per-sample RMS error on held-out noise; GMM: against the exact ODE, digits: against a "
             f"{DIGITS_REFERENCE_STEPS}-step dpmpp_2m solution (guidance {DIGITS_GUIDANCE:g}). "
             f"Calibration: {GMM_CALIBRATION} (GMM) / {DIGITS_CALIBRATION} (digits) samples of seed 0.", ""]
    for problem in dict.fromkeys(r["problem"] for r in rows):
        mine = [r for r in rows if r["problem"] == problem]
        nfes = sorted({r["nfe"] for r in mine})
        keys = list(dict.fromkeys((r["sampler"], r["variant"]) for r in mine))
        cell = {(r["sampler"], r["variant"], r["nfe"]): r for r in mine}
        body = [[s, v] + [fmt(cell[(s, v, n)]["median_error"]) if (s, v, n) in cell else "-" for n in nfes]
                for s, v in keys]
        lines += [f"## {problem}", "", table(["sampler", "grid"] + [f"NFE {n}" for n in nfes], body, markdown=True), ""]
        fits = [(s, v) for s, v in keys if v.endswith("(default)")]
        cost = [[s] + [f"{cell[(s, v, n)]['seconds']:.2f} s / {cell[(s, v, n)]['model_calls']}" for n in nfes]
                for s, v in fits]
        lines += ["Fit cost of the default method (wall seconds / model calls per calibration sample):", "",
                  table(["sampler"] + [f"NFE {n}" for n in nfes], cost, markdown=True), ""]
    return "\n".join(lines)


def write(results: dict, out_dir: str | Path, stem: str = "grids") -> Path:
    """``out_dir/<stem>.json`` and ``.md``; returns the markdown's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    path = out_dir / f"{stem}.md"
    path.write_text(markdown(results))
    return path


def run(problems: Iterable[str], samplers: Iterable[str] | None = None, nfes: Sequence[int] = NFES) -> dict:
    """Measure ``problems`` (``gmm2d-linear``, ..., ``digits``) for the deterministic ``samplers`` (default: all)."""
    samplers = list(samplers or [n for n, i in SAMPLERS.items() if not i.stochastic])
    results = {"machine": machine_info(), "nfes": list(nfes), "rows": []}
    for name in problems:
        problem = digits_problem() if name == "digits" else gmm_problem(*name.split("-"))
        results["rows"] += measure(problem, samplers, nfes)
    return results
