"""PNG plots of suite results (matplotlib, the ``bench`` extra; skipped with a reason without it).

- ``<stem>-<model>-error.png``: log-log error vs NFE -- rms to the exact ODE sample with the
  fitted order in the legend (peers dashed), and sliced W2 / mode-weight TV with their floors.
- ``<stem>-<model>-pareto.png``: quality vs latency for every sampler x steps, with the Pareto
  front. Latency per sample is NFE * t_eval + steps * t_overhead at the embedded U-Net's size
  (digits_small, largest measured batch) -- the GMM's own cost says nothing about real models;
  without latency results the x axis is NFE.
- ``<stem>-digits.png``: FD and classifier accuracy vs NFE on the trained model.
"""

from __future__ import annotations

from pathlib import Path

from diffkit.samplers import get_sampler

LATENCY_PRESET = "digits_small"


def latency_model(results: dict, preset: str = LATENCY_PRESET):
    """(seconds per sample of (sampler, steps), label) from measured t_eval and overhead; None if unmeasured."""
    lat = results.get("latency") or {}
    evals = [r for r in lat.get("evals", []) if r["model"] == preset]
    if not evals:
        return None
    ev = max(evals, key=lambda r: r["batch"])
    over = {r["sampler"]: r["seconds_per_step"] for r in lat.get("overhead", [])
            if r["model"] == preset and r["batch"] == ev["batch"] and r["impl"] == "diffkit"}

    def seconds(sampler: str, steps: int) -> float:
        nfe = get_sampler(sampler).nfe(steps)
        return (nfe * ev["seconds_per_eval"] + steps * over.get(sampler, 0.0)) / ev["batch"]

    return seconds, f"latency per sample, {preset} U-Net at batch {ev['batch']} (s)"


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated (lower x and lower y is better), sorted by x."""
    front, best = [], float("inf")
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def _error_plot(plt, results: dict, model: str, path: Path) -> None:
    sec = results["gmm"][model]
    rows = sec["rows"] + results.get("peers", {}).get("gmm", {}).get(model, [])
    orders = {(o["impl"], o["sampler"], o["spacing"]): o["order"]
              for o in sec.get("orders", []) if o["metric"] == "rms"}
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    series: dict[tuple, list] = {}
    for r in rows:
        series.setdefault((r["impl"], r["sampler"], r["spacing"]), []).append(r)
    for (impl, sampler, spacing), rs in series.items():
        rs = sorted(rs, key=lambda r: r["nfe"])
        style = "-o" if impl == "diffkit" else ("--x" if impl == "diffusers" else ":^")
        label = f"{impl} {sampler}@{spacing}"
        if rs[0]["rms"] is not None:
            order = orders.get((impl, sampler, spacing))
            axes[0].loglog([r["nfe"] for r in rs], [r["rms"] for r in rs], style, ms=3,
                           label=label + (f" (order {order:.2f})" if order is not None else ""))
        if impl == "diffkit":
            axes[1].loglog([r["nfe"] for r in rs], [r["sw2"] for r in rs], style, ms=3, label=label)
            axes[2].loglog([r["nfe"] for r in rs], [max(r["mode_tv"], 1e-5) for r in rs], style, ms=3, label=label)
    for ax, metric in ((axes[1], "sw2"), (axes[2], "mode_tv")):
        ax.axhline(sec["floor"][metric], color="k", lw=1, ls="--", label="noise floor (exact vs exact data)")
        ax.axhline(max(sec["exact_ode"][metric], 1e-5), color="grey", lw=1, ls=":", label="exact ODE vs data")
    titles = ("RMS to exact ODE sample (same x_T)", f"sliced W2 to data (N={sec['samples']})", "mode-weight TV")
    _finish(plt, fig, axes, [f"{model}: {t}" for t in titles], "NFE (model evaluations)", path, legend_size=6)


def _finish(plt, fig, axes, titles, xlabel: str, path: Path, legend_size: int = 7) -> None:
    """Shared axis dressing, then save and close."""
    for ax, title in zip(axes, titles):
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pareto_plot(plt, results: dict, model: str, path: Path) -> None:
    rows = results["gmm"][model]["rows"]
    lat = latency_model(results)
    xfun, xlabel = (lat if lat else (lambda s, n: float(get_sampler(s).nfe(n)), "NFE"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    keys = list(dict.fromkeys((r["sampler"], r["spacing"]) for r in rows))
    for ax, metric in zip(axes, ("rms", "sw2")):
        pts = []
        for key in keys:
            mine = [r for r in rows if (r["sampler"], r["spacing"]) == key and r.get(metric) is not None]
            xs = [xfun(r["sampler"], r["steps"]) for r in mine]
            pts += list(zip(xs, [r[metric] for r in mine]))
            if mine:
                ax.loglog(xs, [r[metric] for r in mine], "o", ms=4, color=f"C{keys.index(key) % 10}",
                          label=f"{key[0]}@{key[1]}")
        front = pareto_front(pts)
        ax.loglog([p[0] for p in front], [p[1] for p in front], "k-", lw=1, drawstyle="steps-post",
                  label="Pareto front")
        if metric == "sw2":
            ax.axhline(results["gmm"][model]["floor"]["sw2"], color="k", ls="--", lw=1, label="noise floor")
        ax.set_ylabel(metric)
    _finish(plt, fig, axes, [f"{model}: {m} vs latency (sampler x steps)" for m in ("rms", "sw2")], xlabel, path)


def _digits_plot(plt, results: dict, path: Path) -> None:
    dig = results["digits"]
    metrics = ("fd", "accuracy", "rms_to_reference")
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.8))
    lat = latency_model(results)
    xfun, xlabel = (lat if lat else (lambda s, n: float(get_sampler(s).nfe(n)), "NFE"))
    series: dict[tuple, list] = {}
    for r in dig["rows"]:
        series.setdefault((r.get("model", "digits"), r["sampler"], r["spacing"]), []).append(r)
    for (model, sampler, spacing), rs in series.items():
        rs = sorted(rs, key=lambda r: r["nfe"])
        style = "--" if model != "digits" else "-"  # the flow model dashed, beside the eps model
        for ax, metric in zip(axes, metrics):
            if rs[0][metric] is not None:
                ax.semilogx([r["nfe"] for r in rs], [r[metric] for r in rs], style + "o", ms=3,
                            label=f"{model}: {sampler}@{spacing}")
        axes[3].loglog([xfun(sampler, r["steps"]) for r in rs], [r["fd"] for r in rs], "o", ms=4,
                       label=f"{model}: {sampler}@{spacing}")
    front = pareto_front([(xfun(r["sampler"], r["steps"]), r["fd"]) for r in dig["rows"]])
    axes[3].loglog([p[0] for p in front], [p[1] for p in front], "k-", lw=1, drawstyle="steps-post",
                   label="Pareto front")
    for ax, metric in zip(axes, metrics + ("fd",)):
        if dig.get("floor", {}).get(metric) is not None:
            ax.axhline(dig["floor"][metric], color="k", ls="--", lw=1,
                       label="real digits (FD: train[:N] vs held-out; accuracy: classifier on held-out)")
    axes[2].set_yscale("log")
    axes[3].set_xlabel(xlabel)
    axes[3].set_title("digits: FD vs latency (sampler x steps)", fontsize=10)
    axes[3].grid(True, which="both", alpha=0.3)
    axes[3].legend(fontsize=7)
    titles = ("FD to held-out vs NFE", "classifier accuracy vs NFE", "RMS to converged reference vs NFE")
    _finish(plt, fig, axes[:3], [f"digits (N={dig['samples']}): {t}" for t in titles], "NFE", path)
def write_all(results: dict, out_dir: Path, stem: str) -> tuple[dict[str, Path], str]:
    """Write every plot the results support; returns ({name: path}, why none if empty)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, "matplotlib is not installed (pip install 'diffkit[bench]')"
    written = {}
    for model in results.get("gmm", {}):
        written[f"{model}-error"] = out_dir / f"{stem}-{model}-error.png"
        _error_plot(plt, results, model, written[f"{model}-error"])
        written[f"{model}-pareto"] = out_dir / f"{stem}-{model}-pareto.png"
        _pareto_plot(plt, results, model, written[f"{model}-pareto"])
    if (results.get("digits") or {}).get("rows"):
        written["digits"] = out_dir / f"{stem}-digits.png"
        _digits_plot(plt, results, written["digits"])
    return written, ""
