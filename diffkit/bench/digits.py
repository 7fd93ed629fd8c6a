"""Quality on the embedded trained digits model: FD, classifier accuracy, and RMS to a converged reference.

One path, ``measure`` (draw class-balanced samples, score them), serves both users:

- ``tasks``: the digits section of ``diffkit bench`` / ``benchmarks/run_full.py``;
- ``quality_report`` / ``quality_markdown``: ``python -m benchmarks.digits_quality``, the
  committed ``benchmarks/results/digits_quality.*`` (samplers at 10/20/50 steps without
  guidance, and guidance scales at dpmpp_2m, 20 steps).

For each sampler and NFE budget, N class-balanced samples are drawn from one seed (so every
sampler starts from the same x_T: ``diffkit.digits.evaluate.sample_digits`` draws x_T from the
generator first) and scored with ``diffkit.digits.evaluate``:

- FD to the 297 held-out digits in pixel space, next to its floor: the first N training
  digits vs the held-out split (FD is biased upwards at small N; compare at equal N);
- accuracy of the evaluation classifier on the samples' conditioning labels, next to the
  classifier's own held-out accuracy (its ceiling);
- deterministic samplers only: RMS (pixels in [-1, 1]) to a converged reference from the
  same x_T, DPM-Solver++(2M) with Karras spacing at ``reference_steps`` -- a model-agnostic
  convergence measure. The reference's own error is estimated by Richardson extrapolation
  from the same solver at half the steps: err(n) ~ |x_n - x_{n/2}| / (2^p - 1), p = 2.

Skipped, with the reason recorded, when the weights or scikit-learn are missing.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from diffkit.bench.gmm import steps_for_nfe
from diffkit.bench.machine import machine_info
from diffkit.bench.metrics import rms
from diffkit.samplers import SAMPLERS, get_sampler
from diffkit.schedules import Schedule

DEFAULTS = {"samples": 200, "nfes": (5, 10, 20, 50), "reference_steps": 250, "samplers": None}


def measure(model, schedule: Schedule, labels: torch.Tensor, *, sampler: str, steps: int, guidance: float = 1.0,
            seed: int = 0, spacing: str | None = None, batch_size: int = 500) -> tuple[torch.Tensor, dict]:
    """Samples for ``labels`` (``sample_digits``) and their scores: (samples, {"accuracy", "fd", "seconds"}).

    ``seconds`` is the sampling alone. ``batch_size`` splits the draw (and so the noise stream):
    keep it fixed to compare with earlier results.
    """
    from diffkit.digits import evaluate

    start = time.perf_counter()
    x0 = evaluate.sample_digits(model, schedule, labels, sampler=sampler, steps=steps, guidance=guidance, seed=seed,
                                spacing=spacing, batch_size=batch_size)
    seconds = time.perf_counter() - start
    return x0, {"accuracy": evaluate.classifier().accuracy(x0, labels), "fd": evaluate.digits_fd(x0),
                "seconds": seconds}


def available() -> str:
    """'' when the digits model and its evaluation can run here, else why not."""
    try:
        from diffkit.digits import evaluate  # noqa: F401
        from diffkit.digits.pretrained import DIGITS_WEIGHTS
    except ImportError as err:
        return f"diffkit.digits.evaluate unavailable ({err})"
    if not DIGITS_WEIGHTS.is_file():
        return f"no weights at {DIGITS_WEIGHTS}"
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "scikit-learn is not installed (needed for the data and the classifier)"
    return ""


def tasks(opts, out: dict) -> list:
    """Progress-bar tasks filling ``out["digits"]`` (or recording why it was skipped)."""
    why = available()
    if why:
        out["digits"] = {"skipped": why}
        return []
    from diffkit.digits import evaluate
    from diffkit.digits.pretrained import load_pretrained

    cfg = {**DEFAULTS, **opts.digits}
    samplers = cfg["samplers"] or opts.samplers
    n, ref_steps = int(cfg["samples"]), int(cfg["reference_steps"])
    sec = out["digits"] = {"samples": n, "rows": [], "seed": opts.seed}
    state: dict = {}

    def draw(sampler: str, steps: int, spacing: str | None = None):
        return measure(state["model"], state["schedule"], state["labels"], sampler=sampler, steps=steps,
                       seed=opts.seed, spacing=spacing, batch_size=n)

    def prepare():
        model, schedule = load_pretrained()
        state.update(model=model, schedule=schedule, labels=evaluate.balanced_labels(n))
        clf = evaluate.classifier()
        ref, score = draw("dpmpp_2m", ref_steps, "karras")
        state["ref"] = ref
        half, _ = draw("dpmpp_2m", ref_steps // 2, "karras")
        sec["reference"] = {"sampler": "dpmpp_2m", "spacing": "karras", "steps": ref_steps, "nfe": ref_steps,
                            "fd": score["fd"], "accuracy": score["accuracy"],
                            "rms_to_reference": rms(ref, half) / 3.0, "seconds": score["seconds"]}
        sec["floor"] = {"fd": evaluate.real_fd_floor(n), "accuracy": clf.heldout_accuracy,
                        "rms_to_reference": None}

    tasks = [("digits: load, classifier, reference", 40.0 + 1.5 * ref_steps * n / 200, prepare)]
    for sampler in samplers:
        info = get_sampler(sampler)
        for nfe in cfg["nfes"]:
            def work(sampler=sampler, nfe=nfe, info=info):
                steps = steps_for_nfe(sampler, nfe)
                x0, score = draw(sampler, steps)
                sec["rows"].append({
                    "sampler": sampler, "spacing": info.default_spacing, "steps": steps, "nfe": info.nfe(steps),
                    "budget": nfe, "fd": score["fd"], "accuracy": score["accuracy"],
                    "rms_to_reference": None if info.stochastic else rms(x0, state["ref"]),
                    "seconds": score["seconds"]})
            tasks.append((f"digits: {sampler} nfe {nfe}", 1.0 + nfe * n / 200, work))
    return tasks


def machine_text() -> str:
    """The machine, in the one line digits_quality.md has always printed (from ``machine_info``)."""
    info = machine_info()
    return (f"{info['cpu']} ({info['cpu_count']} vCPUs, shared with other jobs while measured), "
            f"{info['torch_threads']} torch thread(s), torch {info['torch']}, {platform.system()}")


def quality_report(n: int = 1000, steps: Sequence[int] = (10, 20, 50), samplers: Sequence[str] = tuple(SAMPLERS),
                   guidance: Sequence[float] = (1.0, 2.0, 3.0), seed: int = 0) -> dict:
    """Guidance scales at dpmpp_2m, 20 steps, then every sampler at ``steps`` without guidance (w = 1: it
    compares solvers, not guidance); ``n`` class-balanced samples per cell. One printed line per cell."""
    from diffkit.digits.evaluate import balanced_labels, classifier, real_fd_floor
    from diffkit.digits.pretrained import DIGITS_WEIGHTS, load_pretrained

    model, schedule = load_pretrained()
    clf = classifier()
    labels = balanced_labels(n, model.config.num_classes)
    report = {
        "machine": machine_text(),
        "weights": str(DIGITS_WEIGHTS.name),
        "n": n,
        "seed": seed,
        "classifier_heldout_accuracy": clf.heldout_accuracy,
        "fd_floor_real": {"train_1500_vs_heldout": real_fd_floor(), f"train_{n}_vs_heldout": real_fd_floor(n)},
        "guidance": [],
        "samplers": [],
    }
    for w in guidance:
        _, row = measure(model, schedule, labels, sampler="dpmpp_2m", steps=20, guidance=w, seed=seed)
        report["guidance"].append({"sampler": "dpmpp_2m", "steps": 20, "guidance": w, **row})
        print(f"dpmpp_2m 20 steps w={w:g}: accuracy {row['accuracy']:.3f} FD {row['fd']:.1f} ({row['seconds']:.0f} s)", flush=True)
    for name in samplers:
        for n_steps in steps:
            _, row = measure(model, schedule, labels, sampler=name, steps=n_steps, guidance=1.0, seed=seed)
            nfe = n_steps * SAMPLERS[name].evals_per_step
            report["samplers"].append({"sampler": name, "steps": n_steps, "nfe": nfe, "guidance": 1.0, **row})
            print(f"{name} {n_steps} steps: FD {row['fd']:.1f} accuracy {row['accuracy']:.3f} ({row['seconds']:.0f} s)", flush=True)
    return report


def write_quality(report: dict, steps: Sequence[int], out_dir: str | Path) -> Path:
    """``out_dir/digits_quality.json`` and ``.md`` (columns: ``steps``); returns the markdown's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    (out_dir / "digits_quality.json").write_text(json.dumps(report, indent=2) + "\n")
    path = out_dir / "digits_quality.md"
    path.write_text(quality_markdown(report, steps))
    return path


def quality_markdown(report: dict, steps: Sequence[int]) -> str:
    """digits_quality.md: the guidance table, then FD (accuracy) by sampler and steps."""
    n = report["n"]
    floors = report["fd_floor_real"]
    lines = [
        "# Digits sample quality (embedded `digits_small` model)",
        "",
        f"Machine: {report['machine']}. {n} class-balanced samples per cell, seed {report['seed']}; "
        f"generated by `python -m benchmarks.digits_quality` ({time.strftime('%Y-%m-%d', time.gmtime())}).",
        "",
        f"Classifier (RBF SVC on raw pixels, fitted on the 1,500-digit train split): "
        f"{report['classifier_heldout_accuracy']:.1%} on the 297 held-out digits (the ceiling).",
        f"Real-vs-real FD floor: {floors[f'train_{n}_vs_heldout']:.1f} ({n} train digits vs held-out; "
        f"{floors['train_1500_vs_heldout']:.1f} with all 1,500).",
        "",
        "## Classifier-free guidance (dpmpp_2m, 20 steps)",
        "",
        "| guidance w | accuracy | FD | seconds |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['guidance']:g} | {r['accuracy']:.1%} | {r['fd']:.1f} | {r['seconds']:.1f} |" for r in report["guidance"]]
    lines += [
        "",
        "## Frechet distance by sampler and steps (no guidance, w = 1; lower is better)",
        "",
        "| sampler | " + " | ".join(f"{s} steps" for s in steps) + " |",
        "|---|" + "---:|" * len(steps),
    ]
    by_sampler: dict[str, dict[int, dict]] = {}
    for r in report["samplers"]:
        by_sampler.setdefault(r["sampler"], {})[r["steps"]] = r
    for name, cells in by_sampler.items():
        row = [f"{cells[s]['fd']:.1f} ({cells[s]['accuracy']:.1%})" if s in cells else "-" for s in steps]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Cells: FD (classifier accuracy). dpmpp_sde makes 2 network evaluations per step. Wall seconds per",
        "cell are in the JSON (shared machine: indicative only).",
        "",
    ]
    return "\n".join(lines)
