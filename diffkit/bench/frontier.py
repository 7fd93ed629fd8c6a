"""The low-NFE frontier: diffkit against its training-free peers on exact Gaussian-mixture problems.

For each problem (a mixture on a schedule) and NFE budget, three numbers are measured, each the
median over samples of the per-sample RMS error against the exact probability-flow ODE solution
(``exact_sample``) from the same x_T (``median_error``), on the EVALUATION noise:

(a) every peer (``diffkit.bench.frontier_peers.PEERS``: diffusers, k-diffusion, zju-pi/diff-sampler
    ports, iPNDM + GITS) within the budget; the best peer is the one with the lowest error on the
    evaluation noise itself (the peers' most favourable choice);
(b) diffkit's best configuration: every deterministic sampler configuration (``CONFIGS``) on every
    grid of ``grids`` (each spacing the schedule has, time_uniform rho = 2, the arcsine beta, and for
    ``final="adams"`` the open grids), some with the analytical first step (``afs``: one timestep
    more for the same calls), ``FITTED`` configurations on grids from ``diffkit.fit_timesteps``
    (its default method, with ``FIT_OPTIONS``; the fit's seconds and model calls are reported), and
    the default's sampler on a grid fitted from the default's grid (``start=``: "fitted from the
    default grid");
    the configuration is SELECTED on separate noise (its own exact solutions), then measured on the
    evaluation noise -- no choice is made on the noise the figures come from;
(c) ``diffkit.sample(model, schedule, steps=N)``: the default, only the budget given.

Three independent noises per problem (never shared): calibration (seed 0, 256 samples: the fits
and GITS's warm-up), selection (seed 2, 256) and evaluation (seed 1, 256). Every run's model calls
are counted by ``CountingModel``; a budget of n allows the most steps whose calls fit in n.
Everything is float64 on the CPU.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from diffkit.bench.frontier_peers import PEERS, run_peer
from diffkit.bench.latency import CountingModel
from diffkit.bench.machine import machine_info
from diffkit.bench.metrics import median_error
from diffkit.bench.report import fmt, table
from diffkit.models import GaussianMixture, exact_sample
from diffkit.samplers import SAMPLERS, fit_timesteps, sample
from diffkit.samplers.defaults import default_for
from diffkit.schedules import Cosine, Linear, Schedule, spacings, timesteps

NFES = (5, 6, 8, 10)
SCHEDULES: dict[str, Callable[[], Schedule]] = {"linear": Linear, "cosine": Cosine}
MODELS: dict[str, Callable[[Schedule], GaussianMixture]] = {
    "gmm2d": GaussianMixture.two_d,  # three well separated unequal modes in 2-D
    "gmm64": lambda schedule: GaussianMixture.random(schedule, dim=64, components=4, seed=0),
    "image3x8x8": lambda schedule: GaussianMixture.image(schedule, shape=(3, 8, 8)),  # smooth RGB fields
}
SAMPLES = 256  # per noise (GITS's num_warmup is 256)
SEEDS = {"calibration": 0, "evaluation": 1, "selection": 2}

# diffkit's deterministic configurations searched on every grid of ``grids``: (sampler, options)
CONFIGS: tuple[tuple[str, dict], ...] = (
    ("ddim", {}), ("heun", {}), ("dpmpp_2m", {}), ("dpmpp_3m", {}), ("dpmpp_3m", {"variant": "published"}),
    *(("unipc", {"order": k, "variant": v}) for k in (2, 3) for v in ("bh1", "bh2")),
    *(("ipndm", {"order": k, "variant": v}) for k in (2, 3, 4) for v in ("variable", "fixed")),
    *(("deis", {"order": k, "variant": v}) for k in (2, 3) for v in ("tab", "logrho")),
    *(("ipndm", {"order": k, "variant": "fixed", "final": "adams"}) for k in (2, 3, 4)),
    *(("deis", {"order": 3, "variant": v, "final": "adams"}) for v in ("tab", "logrho")),
    # with the analytical first step (afs): one timestep more for the same calls, the first without one
    *(("ipndm", {"order": k, "variant": "fixed", "final": "adams", "afs": True}) for k in (2, 3, 4)),
    ("ipndm", {"order": 3, "variant": "fixed", "afs": True}),
    ("deis", {"variant": "logrho", "final": "adams", "afs": True}), ("unipc", {"order": 3, "afs": True}),
    ("dpmpp_3m", {"afs": True}),
)
# configurations also run on grids fitted by diffkit.fit_timesteps (its default method, gits+refine)
FITTED: tuple[tuple[str, dict], ...] = (
    ("dpmpp_2m", {}), ("dpmpp_3m", {}), ("unipc", {"order": 3}), ("ipndm", {}), ("ipndm", {"variant": "fixed"}),
    ("ipndm", {"order": 3, "variant": "fixed"}), ("deis", {}), ("deis", {"variant": "logrho"}),
    ("ipndm", {"order": 3, "variant": "fixed", "final": "adams"}), ("deis", {"final": "adams"}),
    ("deis", {"variant": "logrho", "final": "adams"}),
    ("ipndm", {"order": 3, "variant": "fixed", "final": "adams", "afs": True}),
)
# fit_timesteps' refinement budget here: 32 sampler runs per refined timestep instead of its default 4
# (measured: 16 gave 1.2-3x lower error than 4 at NFE 5-6 on gmm2d and the image mixture for about twice the fit
# seconds; 32 another 1.3x on gmm2d-linear and 1.05x on the image mixture at NFE 5 for 1.6-1.75x the seconds)
FIT_OPTIONS = {"refine_evals": 32}


# Grids beyond each spacing at its defaults, as (spacing, grid options of diffkit.timesteps): DPM-Solver's
# "time_quadratic" (diff-sampler's DEIS grid), the beta spacing of the arcsine law (Beta(0.5, 0.5)), and for
# final="adams" the grids that end at t_min without their last point (no model call spent there).
EXTRA_GRIDS: tuple[tuple[str, dict], ...] = (("time_uniform", {"rho": 2.0}), ("beta", {"beta_shape": (0.5, 0.5)}))
OPEN_GRIDS: tuple[tuple[str, dict], ...] = tuple(
    (s, {**options, "endpoint": False})
    for s, options in (("karras", {}), ("logsnr", {}), ("time_uniform", {}), ("time_uniform", {"rho": 2.0})))


def grids(schedule: Schedule, options: dict) -> list[tuple[str, dict]]:
    """The grids a configuration is searched on, as (spacing, grid options): every spacing of ``schedule`` at its
    defaults, EXTRA_GRIDS, and OPEN_GRIDS where the final step keeps the sampler's order (``final="adams"``)."""
    return ([(s, {}) for s in spacings(schedule)] + list(EXTRA_GRIDS)
            + (list(OPEN_GRIDS) if options.get("final") == "adams" else []))


def grid_label(spacing: str, grid_options: Mapping | None = None) -> str:
    """e.g. ``time_uniform rho=2 endpoint=False``, ``beta beta_shape=0.5,0.5``."""
    def text(v) -> str:
        if isinstance(v, (tuple, list)):
            return ",".join(f"{x:g}" for x in v)
        return f"{v:g}" if isinstance(v, float) else str(v)

    return spacing + "".join(f" {k}={text(v)}" for k, v in (grid_options or {}).items())


def label(name: str, options: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in options.items())


@dataclass(frozen=True)
class Problem:
    """A mixture on a schedule with its three noises and the exact ODE solutions from two of them."""

    name: str  # e.g. gmm64-cosine
    model: GaussianMixture
    schedule: Schedule
    noise: dict  # SEEDS' names -> x_T [SAMPLES, *event_shape] float64
    exact: dict  # "selection", "evaluation" -> exact_sample from that noise


def problem(model_name: str, schedule_name: str, samples: int = SAMPLES) -> Problem:
    schedule = SCHEDULES[schedule_name]()
    model = MODELS[model_name](schedule)
    noise = {k: torch.randn(samples, *model.event_shape, generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float64) for k, seed in SEEDS.items()}
    exact = {k: exact_sample(model, schedule, noise[k]) for k in ("selection", "evaluation")}
    return Problem(f"{model_name}-{schedule_name}", model, schedule, noise, exact)


def _counted(model, schedule: Schedule, *args, **kwargs) -> tuple[torch.Tensor, int]:
    """``diffkit.sample(model, schedule, *args, **kwargs)`` and the model calls it made."""
    counter = CountingModel(model)
    with torch.inference_mode():
        return sample(counter, schedule, *args, **kwargs), counter.calls


def diffkit_candidates(p: Problem, nfe: int, configs=CONFIGS, fitted=FITTED, refine_default: bool = True,
                       **fit_options) -> list[dict]:
    """Every configuration's error on the selection noise (the fits on the calibration noise, timed); with
    ``refine_default`` also the defaults table's choice on a grid fitted from the table's grid."""
    rows = []
    for name, options in configs:
        for spacing, grid_options in grids(p.schedule, options):
            try:  # a grid that cannot give this many distinct steps here
                ts = timesteps(p.schedule, SAMPLERS[name].steps_for(nfe, options), spacing, **grid_options)
            except ValueError:
                continue
            x0, calls = _counted(p.model, p.schedule, name, x=p.noise["selection"], timesteps=ts, **options)
            rows.append({"sampler": name, "options": options, "spacing": grid_label(spacing, grid_options),
                         "timesteps": ts.tolist(), "steps": len(ts),
                         "calls": calls,
                         "selection_error": median_error(x0, p.exact["selection"])})
    fit_options = {**FIT_OPTIONS, **fit_options}
    rows += [_fitted(p, name, options, SAMPLERS[name].steps_for(nfe, options), "fitted", **fit_options)
             for name, options in fitted]
    if refine_default:  # the table's sampler, its grid (nfe calls) the fit's start
        chosen = default_for(p.schedule, nfe)
        start = chosen.timesteps(p.schedule, nfe)
        rows.append(_fitted(p, chosen.sampler, dict(chosen.options), len(start), "fitted from the default grid",
                            start=start, **fit_options))
    return rows


def _fitted(p: Problem, name: str, options: dict, steps: int, spacing_label: str, **fit_options) -> dict:
    """A candidate on a grid of ``diffkit.fit_timesteps`` (calibration noise, timed), scored on the selection noise."""
    start = time.perf_counter()
    fit = fit_timesteps(p.model, p.schedule, name, steps, tuple(p.noise["calibration"].shape),
                        generator=torch.Generator().manual_seed(SEEDS["calibration"]), dtype=torch.float64,
                        **fit_options, **options)
    seconds = time.perf_counter() - start
    x0, calls = _counted(p.model, p.schedule, name, x=p.noise["selection"], timesteps=fit.timesteps, **options)
    return {"sampler": name, "options": options, "spacing": spacing_label, "steps": len(fit.timesteps),
            "calls": calls, "timesteps": fit.timesteps.tolist(), "fit_seconds": seconds, "fit_calls": fit.model_calls,
            "selection_error": median_error(x0, p.exact["selection"])}


def evaluate(p: Problem, row: dict) -> float:
    """A diffkit configuration's error on the evaluation noise."""
    x0, calls = _counted(p.model, p.schedule, row["sampler"], x=p.noise["evaluation"], timesteps=row["timesteps"],
                         **row["options"])
    assert calls == row["calls"], (row, calls)
    return median_error(x0, p.exact["evaluation"])


def measure(p: Problem, nfes: Sequence[int] = NFES, peers=PEERS, **candidate_options) -> list[dict]:
    """One cell per NFE: the peers, diffkit's candidates, its selected best and its default."""
    cells = []
    for nfe in nfes:
        cell: dict = {"problem": p.name, "nfe": nfe, "peers": []}
        for peer in peers:
            x0, extra = run_peer(peer, p.model, p.schedule, nfe, p.noise["evaluation"], p.noise["calibration"])
            extra = {k: v for k, v in extra.items() if k not in ("grid_sigma_k", "grid_indices")}
            cell["peers"].append({"label": peer.label, "library": peer.library, **extra,
                                  "error": None if x0 is None else median_error(x0, p.exact["evaluation"])})
        cell["candidates"] = diffkit_candidates(p, nfe, **candidate_options)
        best = min(cell["candidates"], key=lambda r: r["selection_error"])
        cell["best"] = dict(best, error=evaluate(p, best))
        x0, calls = _counted(p.model, p.schedule, steps=nfe, x=p.noise["evaluation"])
        cell["default"] = {"calls": calls, "error": median_error(x0, p.exact["evaluation"])}
        ok = [r for r in cell["peers"] if r["error"] is not None and math.isfinite(r["error"])]
        cell["best_peer"] = min(ok, key=lambda r: r["error"])
        cell["ratio_best"] = cell["best"]["error"] / cell["best_peer"]["error"]
        cell["ratio_default"] = cell["default"]["error"] / cell["best_peer"]["error"]
        cells.append(cell)
        print(f"{p.name} NFE {nfe}: best peer {cell['best_peer']['label']} {fmt(cell['best_peer']['error'])}, "
              f"diffkit best {config_label(cell['best'])} {fmt(cell['best']['error'])} "
              f"(x{cell['ratio_best']:.2f}), default {fmt(cell['default']['error'])} (x{cell['ratio_default']:.2f})",
              flush=True)
    return cells


def config_label(row: dict) -> str:
    return f"{label(row['sampler'], row['options'])} @ {row['spacing']}"


def run(models: Iterable[str] = tuple(MODELS), schedules: Iterable[str] = tuple(SCHEDULES),
        nfes: Sequence[int] = NFES, samples: int = SAMPLES, **measure_options) -> dict:
    start = time.perf_counter()
    results: dict = {"machine": machine_info(), "nfes": list(nfes), "samples": samples, "cells": []}
    for m in models:
        for s in schedules:
            results["cells"] += measure(problem(m, s, samples), nfes, **measure_options)
    results["seconds"] = time.perf_counter() - start
    return results


def ratio_table(results: dict, key: str, markdown: bool = True) -> str:
    """Problems x NFE: ``key`` (ratio_best or ratio_default) per cell."""
    nfes = results["nfes"]
    cell = {(c["problem"], c["nfe"]): c for c in results["cells"]}
    problems = list(dict.fromkeys(c["problem"] for c in results["cells"]))
    body = [[p] + [f"{cell[(p, n)][key]:.2f}" if (p, n) in cell else "-" for n in nfes] for p in problems]
    return table(["problem"] + [f"NFE {n}" for n in nfes], body, markdown=markdown)


def without_afs(results: dict) -> str:
    """The default and diffkit's best against the best peer at its own defaults, the analytical first step off
    (the peers as diff-sampler and GITS ship them): one line each, range, median, cells within the target."""
    lines = []
    for key, name, target in (("default", "`diffkit.sample(..., steps=N)`", 1.0), ("best", "diffkit's best", 0.5)):
        ratios = sorted(c[key]["error"] / min(r["error"] for r in c["peers"] if r["error"] is not None
                                              and math.isfinite(r["error"]) and "AFS" not in r["label"])
                        for c in results["cells"])
        median = (ratios[(len(ratios) - 1) // 2] + ratios[len(ratios) // 2]) / 2
        lines.append(f"- {name}: {ratios[0]:.2f}-{ratios[-1]:.2f}x, median {median:.2f}x, at or below {target:g} "
                     f"in {sum(r <= target for r in ratios)} of {len(ratios)} cells")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = ["# The low-NFE frontier: diffkit against its peers on exact Gaussian mixtures", "",
             f"Machine: {m['cpu']}, {m['cpu_count']} cores shared with other jobs (load average "
             f"{m['loadavg_at_start']}), {m['torch_threads']} torch thread(s), torch {m['torch']}, "
             f"diffusers {m.get('diffusers')}; {m['date_utc']}; whole run {results['seconds']:.0f} s. "
             "Generated by `python -m benchmarks.frontier` (what is measured: `diffkit.bench.frontier`).", "",
             __doc__.split("\n\n", 1)[1], "",
             "## Ratios to the best peer (target: best <= 0.5, default <= 1.0)", "",
             "diffkit's best configuration / best peer:", "", ratio_table(results, "ratio_best"), "",
             "`diffkit.sample(..., steps=N)` / best peer:", "", ratio_table(results, "ratio_default"), "",
             "Against the best peer without the analytical first step (every peer at its own defaults):", "",
             without_afs(results), "",
             "## One rule for every cell", "",
             "The best peer above is chosen per cell, after the fact. Each fixed rule over all the cells, as the "
             "ratio of its error to that per-cell best peer (geometric mean, worst, cells at or below 1; "
             "the ten best by geometric mean):", "", rule_table(results), ""]
    for p in dict.fromkeys(c["problem"] for c in results["cells"]):
        lines += [f"## {p}", ""]
        body = []
        for c in (c for c in results["cells"] if c["problem"] == p):
            best, peer = c["best"], c["best_peer"]
            fit = f"{best['fit_seconds']:.2f} s, {best['fit_calls']} calls/sample" if "fit_seconds" in best else "none"
            body.append([c["nfe"], f"{peer['label']} ({peer['library']})", fmt(peer["error"]), config_label(best),
                         fmt(best["error"]), fit, fmt(c["default"]["error"]),
                         f"{c['ratio_best']:.2f}", f"{c['ratio_default']:.2f}"])
        lines += [table(["NFE", "best peer", "error", "diffkit best (selected on separate noise)", "error",
                         "calibration", "default", "best/peer", "default/peer"], body, markdown=True), "",
                  "Every peer's error (NFE as columns):", "", _peer_table(results, p), ""]
    return "\n".join(lines)


def rule_table(results: dict, top: int = 10) -> str:
    """The default and every peer over all cells: ratio to each cell's best peer (a failed run counts as inf)."""
    logs: dict[str, list[float]] = {"`diffkit.sample(..., steps=N)` (diffkit)": [
        math.log(c["ratio_default"]) for c in results["cells"]]}
    for c in results["cells"]:
        for r in c["peers"]:
            ok = r["error"] is not None and math.isfinite(r["error"]) and r["error"] > 0
            ratio = r["error"] / c["best_peer"]["error"] if ok else math.inf
            logs.setdefault(f"{r['label']} ({r['library']})", []).append(math.log(ratio))
    rows = sorted((math.exp(sum(v) / len(v)), max(v), sum(x <= 0 for x in v), len(v), k) for k, v in logs.items())
    body = [[k, f"{g:.2f}", f"{math.exp(w):.2f}", f"{n} of {total}"] for g, w, n, total, k in rows[:top]]
    return table(["rule", "geometric mean", "worst", "cells <= 1"], body, markdown=True)


def _peer_table(results: dict, problem_name: str) -> str:
    cells = [c for c in results["cells"] if c["problem"] == problem_name]
    labels = list(dict.fromkeys(r["label"] for c in cells for r in c["peers"]))
    err = {(c["nfe"], r["label"]): r["error"] for c in cells for r in c["peers"]}
    body = [[lab] + [fmt(err.get((c["nfe"], lab))) if err.get((c["nfe"], lab)) is not None else "failed"
                     for c in cells] for lab in labels]
    body += [["diffkit best"] + [fmt(c["best"]["error"]) for c in cells],
             ["diffkit default"] + [fmt(c["default"]["error"]) for c in cells]]
    return table(["peer"] + [f"NFE {c['nfe']}" for c in cells], body, markdown=True)


def plot(results: dict, path: Path) -> Path | None:
    """Error vs NFE per problem: every peer (grey), the best peer, diffkit's best and its default."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    problems = list(dict.fromkeys(c["problem"] for c in results["cells"]))
    cols = min(3, len(problems))
    rows = -(-len(problems) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    for ax, p in zip(axes.flat, problems):
        cells = [c for c in results["cells"] if c["problem"] == p]
        nfe = [c["nfe"] for c in cells]
        for lab in dict.fromkeys(r["label"] for c in cells for r in c["peers"]):
            ys = [next((r["error"] for r in c["peers"] if r["label"] == lab), None) for c in cells]
            ax.plot(nfe, [math.nan if y is None else y for y in ys], color="0.8", lw=0.8)
        ax.plot(nfe, [c["best_peer"]["error"] for c in cells], "k-o", ms=4, label="best peer")
        ax.plot(nfe, [0.5 * c["best_peer"]["error"] for c in cells], "k:", lw=1, label="0.5 x best peer (target)")
        ax.plot(nfe, [c["best"]["error"] for c in cells], "C0-o", ms=4, label="diffkit best")
        ax.plot(nfe, [c["default"]["error"] for c in cells], "C1--s", ms=4, label="diffkit.sample(steps=N)")
        ax.set_yscale("log")
        ax.set_title(p, fontsize=10)
        ax.set_xlabel("NFE (counted)")
        ax.set_ylabel("median error vs exact ODE")
    for ax in list(axes.flat)[len(problems):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"Error vs NFE (grey: every peer); {results['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


KEEP = 10  # diffkit candidates per cell written to the JSON, best (on the selection noise) first


def _slim(results: dict) -> dict:
    """The results with each cell's candidates cut to the ``KEEP`` best (the run holds them all)."""
    cells = [dict(c, candidates=sorted(c["candidates"], key=lambda r: r["selection_error"])[:KEEP])
             for c in results["cells"]]
    return dict(results, cells=cells)


def write(results: dict, out_dir: str | Path, stem: str = "frontier") -> Path:
    """``out_dir/<stem>.json``, ``.md`` and ``.png``; returns the markdown's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(_slim(results), indent=1) + "\n")
    plot(results, out_dir / f"{stem}.png")
    path = out_dir / f"{stem}.md"
    path.write_text(markdown(results))
    return path
