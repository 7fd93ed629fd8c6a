"""Which (sampler, options, spacing) to use when only the step count is given, per schedule family.

The data behind ``diffkit.samplers.defaults``. On the frontier's three Gaussian mixtures
(``diffkit.bench.frontier.MODELS``) in every schedule family (``FAMILIES``: the model in the
prediction type that family's models use), each configuration of ``CONFIGS`` on each spacing the
schedule has, and on the frontier's other grids (``diffkit.bench.frontier.grids``: time_uniform with
rho = 2, the arcsine beta, and for the configurations whose final step keeps their order,
``final="adams"``, the grids ending at t_min with ``endpoint=False``), runs ``steps`` steps from one
noise (seed 2, 128 samples) and is scored by its median per-sample error against the exact ODE
(``exact_sample``) divided by the best configuration's in the same (problem, steps) cell. A
configuration's score for a family and a step count is the geometric mean of that ratio over
the three mixtures; ``best`` lists the lowest. Only samplers with one model call a step are
candidates, so ``steps`` = NFE; a configuration with ``afs=True`` (the analytical first step) visits
``steps`` + 1 timesteps, the first without a model call.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from diffkit.bench.frontier import MODELS, grid_label, grids, label
from diffkit.bench.machine import machine_info
from diffkit.bench.metrics import median_error
from diffkit.bench.report import fmt, table
from diffkit.models import exact_sample
from diffkit.samplers import SAMPLERS, sample
from diffkit.samplers.defaults import default_for
from diffkit.schedules import EDM, ContinuousVP, Cosine, FlowMatch, Linear, ScaledLinear, default_spacing, timesteps

FAMILIES = {  # name -> (schedule, prediction type of its models)
    "linear": (Linear(), "epsilon"),
    "scaled_linear": (ScaledLinear(), "epsilon"),  # Stable Diffusion's: the table's scaled_linear row
    "cosine": (Cosine(), "epsilon"),
    "zero_snr": (Linear(rescale_zero_terminal_snr=True), "v_prediction"),
    "flow": (FlowMatch(shift=3.0), "flow"),
    "edm": (EDM(), "sample"),
    "continuous_vp": (ContinuousVP(), "epsilon"),
}
STEPS = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 30)
CONFIGS: tuple[tuple[str, dict], ...] = (
    ("ddim", {}), ("dpmpp_2m", {}), ("dpmpp_3m", {}), ("unipc", {"order": 3}),
    ("ipndm", {}), ("ipndm", {"order": 3, "variant": "fixed"}), ("ipndm", {"variant": "fixed"}),
    ("deis", {}), ("deis", {"variant": "logrho"}),
    ("ipndm", {"order": 3, "variant": "fixed", "final": "adams"}), ("ipndm", {"final": "adams"}),
    ("ipndm", {"order": 2, "variant": "fixed", "final": "adams"}),
    ("deis", {"final": "adams"}), ("deis", {"variant": "logrho", "final": "adams"}),
    # with the analytical first step (afs): n + 1 timesteps for n calls, the first taken without one
    ("ipndm", {"order": 3, "variant": "fixed", "afs": True}),
    ("ipndm", {"order": 3, "variant": "fixed", "final": "adams", "afs": True}),
    ("deis", {"variant": "logrho", "final": "adams", "afs": True}), ("unipc", {"order": 3, "afs": True}),
)
SAMPLES, SEED = 128, 2


def key(name: str, options: dict, spacing: str, grid_options: Mapping | None = None) -> str:
    return label(name, options) + f" @ {grid_label(spacing, grid_options)}"


def scan(families: Iterable[str] = tuple(FAMILIES), models: Iterable[str] = tuple(MODELS),
         steps: Sequence[int] = STEPS, configs=CONFIGS, samples: int = SAMPLES) -> dict:
    """Every configuration's error per (family, model, steps); and per (family, steps) the geometric-mean ratios."""
    if any(SAMPLERS[name].evals_per_step != 1 for name, _ in configs):
        raise ValueError("the scan compares samplers with one model call a step (steps = NFE)")
    start = time.perf_counter()
    rows = []
    for family in families:
        schedule, prediction = FAMILIES[family]
        for m in models:
            mixture = MODELS[m](schedule)
            model = mixture.as_model(prediction)
            x = torch.randn(samples, *mixture.event_shape, generator=torch.Generator().manual_seed(SEED),
                            dtype=torch.float64)
            exact = exact_sample(model, schedule, x)
            for n in steps:
                for name, options in configs:
                    for spacing, grid_options in grids(schedule, options):
                        try:  # no such grid here (karras at zero SNR, rho at t_min < 0) or repeated steps
                            ts = timesteps(schedule, SAMPLERS[name].steps_for(n, options), spacing, **grid_options)
                        except ValueError:
                            continue
                        x0 = sample(model, schedule, name, x=x, timesteps=ts, **options)
                        rows.append({"family": family, "model": m, "steps": n,
                                     "config": key(name, options, spacing, grid_options),
                                     "error": median_error(x0, exact)})
        print(f"{family} done ({time.perf_counter() - start:.0f} s)", flush=True)
    return {"machine": machine_info(), "steps": list(steps), "samples": samples, "rows": rows,
            "scores": scores(rows), "seconds": time.perf_counter() - start}


def scores(rows: list[dict]) -> dict:
    """family -> steps -> [(config, geometric-mean ratio to the cell's best)], best first."""
    best = {}
    for r in rows:
        cell = (r["family"], r["model"], r["steps"])
        best[cell] = min(best.get(cell, math.inf), r["error"])
    logs: dict = {}
    for r in rows:
        ratio = r["error"] / best[(r["family"], r["model"], r["steps"])]
        logs.setdefault(r["family"], {}).setdefault(r["steps"], {}).setdefault(r["config"], []).append(
            math.log(ratio) if ratio > 0 and math.isfinite(ratio) else math.inf)
    models = {f: len({r["model"] for r in rows if r["family"] == f}) for f in logs}
    return {f: {n: sorted(((c, math.exp(sum(v) / len(v))) for c, v in per.items() if len(v) == models[f]),
                          key=lambda cv: cv[1])
                for n, per in by_steps.items()} for f, by_steps in logs.items()}


def markdown(results: dict, top: int = 3) -> str:
    m = results["machine"]
    lines = ["# Defaults per step count: the scan", "",
             f"Machine: {m['cpu']}, {m['cpu_count']} cores shared, {m['torch_threads']} torch thread(s); "
             f"{m['date_utc']}; {results['seconds']:.0f} s. Generated by `python -m benchmarks.frontier --defaults` "
             "(what is measured: `diffkit.bench.defaults_scan`).", "", __doc__.split("\n\n")[1], ""]
    lines += ["## The table's choice (diffkit.samplers.defaults) and its score", "",
              "Geometric-mean ratio to the best configuration of each cell (1.00: the best); "
              "the former default, dpmpp_2m on the sampler's karras (or the schedule's own spacing), beside it.", ""]
    body = []
    for family, by_steps in results["scores"].items():
        schedule = FAMILIES[family][0]
        for n, ranked in by_steps.items():
            score = dict(ranked)
            d = default_for(schedule, int(n))
            given = {k: v for k, v in d.options.items() if v != SAMPLERS[d.sampler].options.get(k)}  # as CONFIGS
            mine = key(d.sampler, given, d.spacing, d.grid_options)
            old = key("dpmpp_2m", {}, default_spacing(schedule, "karras"))
            body.append([family, n, mine, fmt(score.get(mine)), fmt(score.get(old))])
    lines += [table(["family", "steps", "default", "score", "dpmpp_2m (former default)"], body, markdown=True), ""]
    for family, by_steps in results["scores"].items():
        body = [[n] + [f"{c} ({s:.2f})" for c, s in ranked[:top]] for n, ranked in by_steps.items()]
        lines += [f"## {family}", "", table(["steps"] + [f"#{i + 1} (geo-mean ratio)" for i in range(top)], body,
                                           markdown=True), ""]
    return "\n".join(lines)


KEEP = 15  # configurations per (family, steps) written to the JSON, best first (the run holds them all)


def write(results: dict, out_dir: str | Path, stem: str = "frontier_defaults") -> Path:
    """``.md`` and a ``.json`` of the scores (the ``KEEP`` best per family and step count; no raw rows)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    kept = {f: {n: [[c, round(v, 4)] for c, v in ranked[:KEEP]] for n, ranked in by_steps.items()}
            for f, by_steps in results["scores"].items()}
    slim = {k: v for k, v in results.items() if k != "rows"} | {"scores": kept}
    (out_dir / f"{stem}.json").write_text(json.dumps(slim, indent=1) + "\n")
    path = out_dir / f"{stem}.md"
    path.write_text(markdown(results))
    return path
