"""Present suite results: the printed table, JSON, a markdown summary, and (via ``plots``) PNGs.

Reading guide for the numbers:

- ``rms``: global error of a deterministic sampler against the exact ODE sample from the
  same x_T (data units). ``order``: minus the least-squares slope of log rms vs log NFE
  over the stated NFE range.
- ``sw2`` / ``mode_tv``: distance of N samples to N exact data samples; compare with the
  ``floor`` row (two independent exact data sets) -- differences below it are noise.
- latency: seconds per sample = seconds of one batch / batch size; ``*`` marks figures
  extrapolated as NFE * t_eval + steps * t_overhead instead of measured end to end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from diffkit.bench.machine import machine_tag
from diffkit.bench.metrics import fit_order


def fmt(value, digits: int = 3) -> str:
    """Compact number: 3 significant digits, '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.{digits - 1}e}"


def table(headers: Sequence[str], rows: Sequence[Sequence], markdown: bool = False) -> str:
    """A plain-text (aligned) or markdown table."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(headers)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells[1:]])
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])


def series_key(row: dict) -> str:
    return f"{row['impl']} {row['sampler']}@{row['spacing']}"


def quality_table(results: dict, model: str, markdown: bool = False) -> str:
    """One row per (impl, sampler, spacing, metric), one column per NFE budget, then the fitted order."""
    sec = results["gmm"][model]
    rows = sec["rows"] + results.get("peers", {}).get("gmm", {}).get(model, [])
    budgets = sorted({r["budget"] for r in rows})
    fits = {(o["impl"], o["sampler"], o["spacing"], o["metric"]): o["order"] for o in sec.get("orders", [])}
    series: dict[tuple, dict] = {}
    for r in rows:
        for metric in ("rms", "median", "rms_path", "sw2", "mode_tv"):
            if r.get(metric) is not None or (not r.get("finite", True) and metric != "rms_path"
                                             and (metric in ("sw2", "mode_tv") or r["deterministic"])):
                value = r[metric] if r.get("finite", True) else float("nan")  # a NaN sample: no metric is meaningful
                key = (series_key(r), metric, r["impl"], r["sampler"], r["spacing"])
                series.setdefault(key, {})[r["budget"]] = value
    out = []
    for (key, metric, impl, sampler, spacing), values in series.items():
        order = fits.get((impl, sampler, spacing, metric))
        out.append([key, metric] + [fmt(values.get(b)) for b in budgets] + [fmt(order, 2) if order else ""])
    for metric in ("sw2", "mode_tv"):
        spread = sec["floor"].get(f"{metric}_std")
        out.append([f"floor (mean of {sec['floor'].get('draws', '?')} draws)", metric]
                   + [fmt(sec["floor"][metric])] * len(budgets)
                   + [f"std {fmt(spread)}" if spread is not None else ""])
    for metric in ("sw2", "mode_tv"):
        out.append(["exact_ode", metric] + [fmt(sec["exact_ode"][metric])] * len(budgets) + [""])
    headers = ["sampler", "metric"] + [f"nfe {b}" for b in budgets] + ["order"]
    return table(headers, out, markdown)


def peer_ratio_table(results: dict, model: str, markdown: bool = False) -> str:
    """Peer error / diffkit error at equal NFE budget, for the same sampler and spacing."""
    sec = results["gmm"][model]
    mine = {(r["sampler"], r["spacing"], r["budget"]): r for r in sec["rows"]}
    peers = results.get("peers", {}).get("gmm", {}).get(model, [])
    budgets = sorted({r["budget"] for r in peers})
    series: dict[tuple, dict] = {}
    for r in peers:
        ours = mine.get((r["sampler"], r["spacing"], r["budget"]))
        if ours is None:
            continue
        metric = "rms" if r["deterministic"] else "sw2"
        ok = r.get("finite", True) and r[metric] is not None and ours[metric]
        series.setdefault((series_key(r), metric), {})[r["budget"]] = r[metric] / ours[metric] if ok else float("nan")
    rows = [[k, m] + [fmt(v.get(b)) for b in budgets] for (k, m), v in series.items()]
    return table(["peer / diffkit", "metric"] + [f"nfe {b}" for b in budgets], rows, markdown)


def latency_tables(results: dict, markdown: bool = False) -> str:
    """Model evaluation cost, per-step overhead (zero-cost model) with peer ratios, and latency per sample."""
    lat = results.get("latency") or {}
    parts = []
    if lat.get("evals"):
        peak = results["machine"].get("peak_gflops_fp32")
        rows = [[r["model"], r["batch"], fmt(1e3 * r["seconds_per_eval"]), fmt(r["gflop_per_eval"]),
                 fmt(r["gflops_achieved"]), fmt(100 * r["gflops_achieved"] / peak, 2) if peak else "-"]
                for r in lat["evals"]]
        parts.append(table(["model", "batch", "ms / eval", "GFLOP / eval", "GFLOP/s", "% of peak"], rows, markdown)
                     + (f"\n(peak: {results['machine'].get('peak_note')})" if peak else ""))
    if lat.get("overhead"):
        evals = {(r["model"], r["batch"]): r["seconds_per_eval"] for r in lat.get("evals", [])}
        rows = [[r["model"], r["batch"], r["sampler"], fmt(1e6 * r["seconds_per_step"]),
                 fmt(100 * r["seconds_per_step"] / evals[(r["model"], r["batch"])], 2)
                 if (r["model"], r["batch"]) in evals else "-"] for r in lat["overhead"]]
        parts.append("diffkit's own per-step overhead (zero-cost model, default noise source):\n\n"
                     + table(["shape of", "batch", "sampler", "us / step", "% of one eval"], rows, markdown))
    if lat.get("peer_overhead"):
        rows = []
        for r in lat["peer_overhead"]:
            us = r["us_per_step"]
            rows.append([r["model"], r["batch"], r["sampler"], fmt(us["diffkit"]), fmt(us["diffusers"]),
                         fmt(us.get("k-diffusion")), fmt(r["ratio_vs_diffusers"], 2),
                         fmt(r.get("ratio_vs_k_diffusion"), 2), fmt(r.get("ratio_vs_diffusers_without_noise"), 2)])
        parts.append("overhead vs peers (diffkit.bench.overhead.bench: same randn noise source on every side, "
                     "diffusers' default spacings; ratio < 1: diffkit is cheaper; the last column takes every "
                     "side's noise draws out):\n\n"
                     + table(["shape of", "batch", "sampler", "diffkit us/step", "diffusers us/step",
                              "k-diffusion us/step", "diffkit/diffusers", "diffkit/k-diffusion",
                              "diffkit/diffusers w/o noise"], rows, markdown))
    if lat.get("runs"):
        groups: dict[tuple, dict] = {}
        steps = sorted({r["steps"] for r in lat["runs"]})
        for r in lat["runs"]:
            mark = "" if r["measured"] else "*"
            groups.setdefault((r["model"], r["batch"], r["sampler"]), {})[r["steps"]] = (
                f"{fmt(1e3 * r['seconds_per_sample'])}{mark} ({fmt(1e3 * r['seconds_per_step'])})")
        rows = [[m, b, s] + [v.get(n, "-") for n in steps] for (m, b, s), v in groups.items()]
        checks = [r["seconds"] / r["extrapolated_seconds"] - 1 for r in lat["runs"] if r.get("extrapolated_seconds")]
        check = (f"; where both exist, measured / extrapolated - 1 lies in [{min(checks):+.1%}, {max(checks):+.1%}] "
                 f"over {len(checks)} runs") if checks else ""
        parts.append(table(["model", "batch", "sampler"] + [f"{n} steps: ms/sample (ms/step)" for n in steps],
                           rows, markdown) + f"\n(* extrapolated: NFE x t_eval + steps x t_overhead{check})")
    return "\n\n".join(parts)


def digits_table(results: dict, markdown: bool = False) -> str:
    """FD / accuracy / RMS to the converged reference, per embedded model, sampler and NFE budget."""
    dig = results.get("digits") or {}
    if "rows" not in dig:
        return f"digits: skipped ({dig.get('skipped', 'not requested')})"
    # Files from before the flow model hold one model's rows and one "reference".
    references = dig.get("references") or ({"digits": dig["reference"]} if "reference" in dig else {})
    rows = [[r.get("model", "digits"), r["sampler"], r["spacing"], r["steps"], r["nfe"], fmt(r.get("fd")),
             fmt(r.get("accuracy")), fmt(r.get("rms_to_reference"))] for r in dig["rows"]]
    labelled = [("floor", "", dig["floor"])] if "floor" in dig else []
    labelled += [(f"{name} reference", d.get("spacing", ""), d) for name, d in references.items()]
    for label, spacing, d in labelled:
        rows.append([label, "", spacing, d.get("steps", ""), d.get("nfe", ""), fmt(d.get("fd")), fmt(d.get("accuracy")),
                     fmt(d.get("rms_to_reference"))])
    fits = []
    series = dict.fromkeys((r.get("model", "digits"), r["sampler"]) for r in dig["rows"]
                           if r.get("rms_to_reference") is not None)
    for model, sampler in series:
        rs = [r for r in dig["rows"] if r.get("model", "digits") == model and r["sampler"] == sampler]
        fit = fit_order([r["nfe"] for r in rs], [r["rms_to_reference"] for r in rs], 10, 1e9)
        if fit is not None:
            fits.append(f"{model} {sampler} {fit['order']:.2f}")
    note = f"\n(order of rms to ref, NFE >= 10: {', '.join(fits)})" if fits else ""
    skipped = dig.get("skipped") or {}
    note += "".join(f"\n({name} skipped: {why})" for name, why in skipped.items())
    return table(["model", "sampler", "spacing", "steps", "nfe", "FD", "accuracy", "rms to ref"], rows, markdown) + note


def best_per_budget(results: dict, model: str) -> list[list]:
    """For each NFE budget: the diffkit sampler with the lowest rms (deterministic) and with the lowest sw2."""
    rows = results["gmm"][model]["rows"]
    floor = results["gmm"][model]["floor"]

    def at_floor(metric: str, value: float) -> str:
        # within one standard deviation of the noise floor: the ranking there is noise
        return " ~floor" if value <= floor[metric] + floor.get(f"{metric}_std", 0.0) else ""

    out = []
    for b in sorted({r["budget"] for r in rows}):
        at = [r for r in rows if r["budget"] == b]
        det = [r for r in at if r["rms"] is not None]
        best_rms = min(det, key=lambda r: r["rms"]) if det else None
        best_sw2 = min(at, key=lambda r: r["sw2"])
        best_tv = min(at, key=lambda r: r["mode_tv"])
        out.append([b,
                    f"{best_rms['sampler']}@{best_rms['spacing']} ({fmt(best_rms['rms'])})" if best_rms else "-",
                    f"{best_sw2['sampler']}@{best_sw2['spacing']} "
                    f"({fmt(best_sw2['sw2'])}{at_floor('sw2', best_sw2['sw2'])})",
                    f"{best_tv['sampler']}@{best_tv['spacing']} ({fmt(best_tv['mode_tv'])}"
                    f"{at_floor('mode_tv', best_tv['mode_tv'])})"])
    return out


NOTES = """\
How to read:

- `rms`: global error of a deterministic sampler vs the exact probability-flow ODE sample from the same x_T
  (DOP853, rtol = atol = 1e-10, float64, then the same final map). `median`: median over samples of the
  per-sample error, robust to the few samples near a separatrix that a coarse solver sends to the other mode
  (they dominate `rms` and put kinks in its curve). `rms_path` (discrete spacings only): error vs the exact ODE
  stopped at the spacing's last visited timestep, i.e. without the final jump t_last -> 0 every solver shares.
- `order`: minus the least-squares slope of log error vs log NFE over the stated NFE range. With
  leading/linspace/trailing spacing t_last ~ T/steps, so the final jump's error ~ sigma_k(t_last)^2 tends to
  1/N and caps every solver near first order (dpmpp_2m measures 1.3-1.4 here, not 2); karras refines the whole path.
- `sw2`: sliced Wasserstein-2 to N exact data samples along fixed projections; `mode_tv`: total variation between
  sampled and true mode weights. Compare both with the `floor` rows (the same statistic for independent exact
  data sets of the same N, mean and std of 8 draws); `exact_ode` is the exact ODE's own distance to the data: \
one draw of x_T (the one every deterministic sampler shares), so judge it against the floor's std; \
re-drawing x_T moved it over 0.015-0.023 on gmm64 (floor ~0.017).
  Stochastic samplers are one seed each: differences within a floor std are noise.
- NFE counts actual model calls. Peers run on the same model and the same x_T. diffusers' DDIM `linspace` visits
  linspace(0, T-1, steps) (t = 0 included) while diffkit's drops t = 0, so that pair differs in grid.
"""


def render(results: dict, markdown: bool = False) -> str:
    """The whole report as text (printed) or markdown (written)."""
    m = results["machine"]
    h = "## " if markdown else "== "
    lines = [("# " if markdown else "") + "diffkit bench",
             f"machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} with {m['torch_threads']} thread(s), "
             f"device {m['device']}, {m['date_utc']}"
             + (f", load average at start {', '.join(f'{v:.1f}' for v in m['loadavg_at_start'])}"
                if m.get("loadavg_at_start") else "")]
    if markdown:
        lines += ["", NOTES]
    for model, sec in results.get("gmm", {}).items():
        lo, hi = sec["order_range"]
        lines += ["", f"{h}{model}: quality vs exact ground truth (N = {sec['samples']}, D = {sec['dim']}, float64; "
                      f"orders fitted over NFE {lo:g}..{hi:g})", "", quality_table(results, model, markdown)]
        lines += ["", f"best diffkit sampler per NFE budget ({model}):", "",
                  table(["nfe", "lowest rms", "lowest sw2", "lowest mode_tv"], best_per_budget(results, model),
                        markdown)]
        if results.get("peers", {}).get("gmm", {}).get(model):
            lines += ["", f"{h}{model}: peers at equal NFE (ratio > 1: the peer's error is larger)", "",
                      peer_ratio_table(results, model, markdown)]
    if "digits" in results:
        lines += ["", f"{h}digits (trained models: eps and rectified flow)", "", digits_table(results, markdown)]
    if any((results.get("latency") or {}).values()):
        lines += ["", f"{h}latency ({m['device']}, {m['torch_threads']} thread(s))", "",
                  latency_tables(results, markdown)]
    lines += ["", f"peers: diffusers {results['peers']['diffusers']}; k-diffusion {results['peers']['k-diffusion']}"]
    return "\n".join(lines) + "\n"


def _finite(value):
    """The results with NaN/inf replaced by None (strict JSON); rows keep their ``finite`` flag."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write(results: dict, out_dir: str | Path, stem: str | None = None, plots: bool = True) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and the PNG plots to ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or f"bench-{machine_tag(results['machine'])}"
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    paths["json"].write_text(json.dumps(_finite(results), indent=1, default=str, allow_nan=False) + "\n")
    body = render(results, markdown=True)
    if plots:
        from diffkit.bench import plots as plot_module

        written, why = plot_module.write_all(results, out_dir, stem)
        paths.update(written)
        body += "\n" + ("\n".join(f"![{k}]({p.name})" for k, p in written.items()) if written else f"(no plots: {why})")
        body += "\n"
    paths["markdown"].write_text(body)
    return paths


def write_results(stem: str | Path, report: dict, markdown: str) -> Path:
    """Write ``report`` as ``stem.json`` and ``markdown`` as ``stem.md`` (the results scripts' output); the .md path."""
    out = Path(stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown)
    return out.with_suffix(".md")
