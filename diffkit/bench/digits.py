"""Quality on the embedded trained digits models: FD, classifier accuracy, and RMS to a converged reference.

Both embedded models (``diffkit.digits.pretrained.EMBEDDED_MODELS``: "digits", the DDPM eps model on
the Linear schedule, and "digits-flow", the rectified-flow model on FlowMatch) are measured the same
way, side by side. One path, ``measure`` (draw class-balanced samples, score them), serves both users:

- ``tasks``: the digits section of ``diffkit bench`` / ``benchmarks/run_full.py``;
- ``quality_report`` / ``quality_markdown``: ``python -m benchmarks.digits_quality``, the
  committed ``benchmarks/results/digits_quality.*`` (every sampler at 5/10/20 NFE without
  guidance, and guidance scales at dpmpp_2m, 20 steps, for each model).

Budgets are NFE (network evaluations): each sampler runs the most steps that fit
(``diffkit.bench.gmm.steps_for_nfe``: 2-evaluation samplers such as heun or dpmpp_sde get about
half the steps), on its default spacing where the model's schedule has it, else the schedule's own
(``diffkit.schedules.spacing.default_spacing``: FlowMatch's ``shifted`` grid). For each model,
sampler and budget, N class-balanced samples are drawn from one seed (so every sampler starts from
the same x_T: ``diffkit.digits.evaluate.sample_digits`` draws x_T from the generator first) and
scored with ``diffkit.digits.evaluate``:

- FD to the 297 held-out digits in pixel space, next to its floor: the first N training
  digits vs the held-out split (FD is biased upwards at small N; compare at equal N);
- accuracy of the evaluation classifier on the samples' conditioning labels, next to the
  classifier's own held-out accuracy (its ceiling);
- deterministic samplers only (``tasks``): RMS (pixels in [-1, 1]) to a converged reference from
  the same x_T, DPM-Solver++(2M) at ``reference_steps`` on Karras spacing (the model's own grid
  where Karras does not exist) -- a model-agnostic convergence measure. The reference's own error is
  estimated by Richardson extrapolation from the same solver at half the steps:
  err(n) ~ |x_n - x_{n/2}| / (2^p - 1), p = 2.

A model whose weights are missing, or every model without scikit-learn, is skipped with the reason recorded.
"""

from __future__ import annotations

import hashlib
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
from diffkit.schedules.spacing import default_spacing

MODELS = ("digits", "digits-flow")  # diffkit.digits.pretrained.EMBEDDED_MODELS, side by side
DEFAULTS = {"samples": 200, "nfes": (5, 10, 20, 50), "reference_steps": 250, "samplers": None, "models": MODELS}
QUALITY_NFES = (5, 10, 20)  # the committed digits_quality table's budgets


def measure(model, schedule: Schedule, labels: torch.Tensor, *, sampler: str | None, steps: int, guidance: float = 1.0,
            seed: int = 0, spacing: str | None = None, batch_size: int = 500,
            timesteps=None, options: dict | None = None) -> tuple[torch.Tensor, dict]:
    """Samples for ``labels`` (``sample_digits``) and their scores: (samples, {"accuracy", "fd", "seconds"}).

    ``timesteps``: an explicit grid instead of ``steps`` and ``spacing``; ``options``: the sampler's.
    ``seconds`` is the sampling alone. ``batch_size`` splits the draw (and so the noise stream):
    keep it fixed to compare with earlier results.
    """
    from diffkit.digits import evaluate

    start = time.perf_counter()
    x0 = evaluate.sample_digits(model, schedule, labels, sampler=sampler, steps=steps, guidance=guidance, seed=seed,
                                spacing=None if timesteps is not None else spacing, batch_size=batch_size,
                                timesteps=timesteps, options=options)
    seconds = time.perf_counter() - start
    return x0, {"accuracy": evaluate.classifier().accuracy(x0, labels), "fd": evaluate.digits_fd(x0),
                "seconds": seconds}


def budget(sampler: str, nfe: int, schedule: Schedule) -> dict:
    """``{"sampler", "spacing", "steps", "nfe", "budget"}``: the run of ``sampler`` that fits in ``nfe`` evaluations
    on ``schedule`` (module docstring)."""
    info = get_sampler(sampler)
    steps = steps_for_nfe(sampler, nfe)
    return {"sampler": sampler, "spacing": default_spacing(schedule, info.default_spacing), "steps": steps,
            "nfe": info.nfe(steps), "budget": nfe}


def available(name: str = "digits") -> str:
    """'' when the embedded model ``name`` and its evaluation can run here, else why not."""
    try:
        from diffkit.digits import evaluate  # noqa: F401
        from diffkit.digits.pretrained import embedded_model
    except ImportError as err:
        return f"diffkit.digits.evaluate unavailable ({err})"
    path = embedded_model(name).path
    if not path.is_file():
        return f"no weights at {path}"
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "scikit-learn is not installed (needed for the data and the classifier)"
    return ""


def describe(name: str, model, schedule: Schedule) -> dict:
    """What a report says about an embedded model: its file (and sha256), prediction type and schedule."""
    from diffkit.digits.pretrained import embedded_model
    from diffkit.io.pretrained import schedule_to_dict

    path = embedded_model(name).path
    return {"weights": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "prediction_type": model.prediction_type, "schedule": schedule_to_dict(schedule)}


def each_model(names: Sequence[str], report: dict):
    """(name, unet, schedule) of each embedded model in ``names`` that can run here, described into
    ``report["models"]``; the others are recorded under ``report["skipped"]`` with the reason."""
    from diffkit.digits.pretrained import load_embedded

    for name in names:
        why = available(name)
        if why:
            report["skipped"][name] = why
            continue
        model, schedule = load_embedded(name)
        report["models"][name] = describe(name, model, schedule)
        yield name, model, schedule


def tasks(opts, out: dict) -> list:
    """Progress-bar tasks filling ``out["digits"]`` (or recording why it was skipped).

    ``out["digits"]``: ``rows`` (one per model, sampler and budget), ``references`` and ``models`` (by
    model name), ``floor``, and ``skipped`` (by model name) for models that cannot run here.
    """
    cfg = {**DEFAULTS, **opts.digits}
    why = {name: available(name) for name in cfg["models"]}
    names = [name for name in cfg["models"] if not why[name]]
    if not names:
        out["digits"] = {"skipped": "; ".join(f"{name}: {reason}" for name, reason in why.items())}
        return []
    from diffkit.digits import evaluate
    from diffkit.digits.pretrained import load_embedded

    samplers = cfg["samplers"] or opts.samplers
    n, ref_steps = int(cfg["samples"]), int(cfg["reference_steps"])
    sec = out["digits"] = {"samples": n, "rows": [], "seed": opts.seed, "models": {}, "references": {},
                           "skipped": {name: reason for name, reason in why.items() if reason}}
    state: dict = {}

    def draw(name: str, sampler: str, steps: int, spacing: str):
        model, schedule = state[name]
        return measure(model, schedule, state["labels"], sampler=sampler, steps=steps, seed=opts.seed,
                       spacing=spacing, batch_size=n)

    def prepare_floor():
        state["labels"] = evaluate.balanced_labels(n)
        sec["floor"] = {"fd": evaluate.real_fd_floor(n), "accuracy": evaluate.classifier().heldout_accuracy,
                        "rms_to_reference": None}

    def prepare(name: str):
        model, schedule = state[name] = load_embedded(name)
        sec["models"][name] = describe(name, model, schedule)
        spacing = default_spacing(schedule, "karras")
        ref, score = draw(name, "dpmpp_2m", ref_steps, spacing)
        state["ref", name] = ref
        half, _ = draw(name, "dpmpp_2m", ref_steps // 2, spacing)
        sec["references"][name] = {"sampler": "dpmpp_2m", "spacing": spacing, "steps": ref_steps, "nfe": ref_steps,
                                   "fd": score["fd"], "accuracy": score["accuracy"],
                                   "rms_to_reference": rms(ref, half) / 3.0, "seconds": score["seconds"]}

    out_tasks = [("digits: classifier, floor", 20.0, prepare_floor)]
    for name in names:
        out_tasks.append((f"{name}: load, reference", 20.0 + 1.5 * ref_steps * n / 200,
                          lambda name=name: prepare(name)))
        for sampler in samplers:
            info = get_sampler(sampler)
            for nfe in cfg["nfes"]:
                def work(name=name, sampler=sampler, nfe=nfe, info=info):
                    row = {"model": name, **budget(sampler, nfe, state[name][1])}
                    x0, score = draw(name, sampler, row["steps"], row["spacing"])
                    sec["rows"].append({**row, "fd": score["fd"], "accuracy": score["accuracy"],
                                        "rms_to_reference": None if info.stochastic else rms(x0, state["ref", name]),
                                        "seconds": score["seconds"]})
                out_tasks.append((f"{name}: {sampler} nfe {nfe}", 1.0 + nfe * n / 200, work))
    return out_tasks


def machine_text() -> str:
    """The machine, in the one line digits_quality.md has always printed (from ``machine_info``)."""
    info = machine_info()
    return (f"{info['cpu']} ({info['cpu_count']} vCPUs, shared with other jobs while measured), "
            f"{info['torch_threads']} torch thread(s), torch {info['torch']}, {platform.system()}")


def quality_report(n: int = 1000, nfes: Sequence[int] = QUALITY_NFES, samplers: Sequence[str] = tuple(SAMPLERS),
                   guidance: Sequence[float] = (1.0, 2.0, 3.0), seed: int = 0, models: Sequence[str] = MODELS) -> dict:
    """For each embedded model: guidance scales at dpmpp_2m, 20 steps, then every sampler at the ``nfes`` budgets
    without guidance (w = 1: it compares solvers, not guidance); ``n`` class-balanced samples per cell. One printed
    line per cell. Models that cannot run here are listed under ``skipped``."""
    from diffkit.digits.evaluate import balanced_labels, classifier, real_fd_floor

    clf = classifier()
    labels = balanced_labels(n)
    report = {
        "machine": machine_text(),
        "n": n,
        "seed": seed,
        "nfes": list(nfes),
        "classifier_heldout_accuracy": clf.heldout_accuracy,
        "fd_floor_real": {"train_1500_vs_heldout": real_fd_floor(), f"train_{n}_vs_heldout": real_fd_floor(n)},
        "models": {},
        "skipped": {},
        "guidance": [],
        "samplers": [],
    }
    for name, model, schedule in each_model(models, report):
        for w in guidance:
            row = {"model": name, **budget("dpmpp_2m", 20, schedule), "guidance": w}
            _, score = measure(model, schedule, labels, sampler="dpmpp_2m", steps=row["steps"], guidance=w, seed=seed,
                               spacing=row["spacing"])
            report["guidance"].append({**row, **score})
            print(f"{name}: dpmpp_2m 20 steps w={w:g}: accuracy {score['accuracy']:.3f} FD {score['fd']:.1f} "
                  f"({score['seconds']:.0f} s)", flush=True)
        for sampler in samplers:
            for nfe in nfes:
                row = {"model": name, **budget(sampler, nfe, schedule), "guidance": 1.0}
                _, score = measure(model, schedule, labels, sampler=sampler, steps=row["steps"], seed=seed,
                                   spacing=row["spacing"])
                report["samplers"].append({**row, **score})
                print(f"{name}: {sampler} NFE {row['nfe']} ({row['steps']} steps, {row['spacing']}): "
                      f"FD {score['fd']:.1f} accuracy {score['accuracy']:.3f} ({score['seconds']:.0f} s)", flush=True)
    return report


def write_quality(report: dict, out_dir: str | Path) -> Path:
    """``out_dir/digits_quality.json`` and ``.md``; returns the markdown's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    (out_dir / "digits_quality.json").write_text(json.dumps(report, indent=2) + "\n")
    path = out_dir / "digits_quality.md"
    path.write_text(quality_markdown(report))
    return path


def _cell(row: dict | None) -> str:
    return f"{row['fd']:.1f} ({row['accuracy']:.1%})" if row else "-"


def quality_markdown(report: dict) -> str:
    """digits_quality.md: the models, the guidance table, FD (accuracy) by sampler and NFE for the models side by
    side, and the best sampler of each model per budget."""
    n, nfes, names = report["n"], report["nfes"], list(report["models"])
    floors = report["fd_floor_real"]
    lines = [
        "# Digits sample quality: the embedded eps model and the rectified-flow model, side by side",
        "",
        f"Machine: {report['machine']}. {n} class-balanced samples per cell, seed {report['seed']}; "
        f"generated by `python -m benchmarks.digits_quality` ({time.strftime('%Y-%m-%d', time.gmtime())}).",
        "",
        "| model | predicts | schedule | weights (sha256) |",
        "|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        lines.append(f"| {name} | {m['prediction_type']} | {m['schedule']['name']} | "
                     f"{m['weights']} ({m['sha256'][:12]}) |")
    lines += [f"| {name} | skipped: {why} | | |" for name, why in report.get("skipped", {}).items()]
    lines += [
        "",
        f"Classifier (RBF SVC on raw pixels, fitted on the 1,500-digit train split): "
        f"{report['classifier_heldout_accuracy']:.1%} on the 297 held-out digits (the ceiling).",
        f"Real-vs-real FD floor: {floors[f'train_{n}_vs_heldout']:.1f} ({n} train digits vs held-out; "
        f"{floors['train_1500_vs_heldout']:.1f} with all 1,500).",
        "",
        "## Frechet distance (classifier accuracy) by sampler and NFE (no guidance, w = 1; lower FD is better)",
        "",
        "| sampler | " + " | ".join(f"{name} {b}" for name in names for b in nfes) + " |",
        "|---|" + "---:|" * (len(names) * len(nfes)),
    ]
    cells = {(r["model"], r["sampler"], r["budget"]): r for r in report["samplers"]}
    for sampler in dict.fromkeys(r["sampler"] for r in report["samplers"]):
        lines.append(f"| {sampler} | " + " | ".join(_cell(cells.get((name, sampler, b))) for name in names
                                                     for b in nfes) + " |")
    lines += [
        "",
        "## Best sampler per NFE budget",
        "",
        "| NFE | " + " | ".join(f"{name}: best (FD, accuracy) | {name}: median FD" for name in names) + " |",
        "|---:|" + "---|---:|" * len(names),
    ]
    for b in nfes:
        parts = []
        for name in names:
            at = [r for r in report["samplers"] if r["model"] == name and r["budget"] == b]
            best = min(at, key=lambda r: r["fd"])
            fds = sorted(r["fd"] for r in at)
            median = (fds[(len(fds) - 1) // 2] + fds[len(fds) // 2]) / 2
            parts.append(f"{best['sampler']} ({_cell(best)}) | {median:.1f}")
        lines.append(f"| {b} | " + " | ".join(parts) + " |")
    lines += [
        "",
        "## Classifier-free guidance (dpmpp_2m, 20 steps)",
        "",
        "| model | guidance w | accuracy | FD | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['guidance']:g} | {r['accuracy']:.1%} | {r['fd']:.1f} | {r['seconds']:.1f} |"
              for r in report["guidance"]]
    lines += [
        "",
        "Columns are NFE budgets (network evaluations per sample): each sampler runs the most steps that fit",
        "(heun, dpmpp_sde and dpmpp_2s_ancestral make 2 evaluations per step but the last, so 5 NFE is 3 steps),",
        "on its default spacing where the model's schedule has it, else the schedule's own (FlowMatch: `shifted`);",
        "steps and spacing of every cell, and its wall seconds (shared machine: indicative only), are in the JSON.",
        "",
    ]
    return "\n".join(lines)
