"""Run the benchmark suite: plan every measurement, run it under one progress bar, return one dict.

The result (JSON-able) has the sections ``machine``, ``options``, ``gmm`` (per mixture: floors,
rows, orders), ``peers`` (rows on the same mixtures and overhead rows), ``digits`` (quality on
the trained model, or why it was skipped) and ``latency`` (model evaluations, sampler
overhead, per-sampler latency). See ``diffkit.bench.report`` for how it is presented.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from diffkit.bench import digits as digits_bench
from diffkit.bench import gmm, latency, peer_runs
from diffkit.bench.machine import machine_info
from diffkit.progress import ProgressBar
from diffkit.samplers import SAMPLERS
from diffkit.schedules import Linear

FULL_NFES = (5, 10, 20, 50, 100, 200, 500, 1000)
QUICK_NFES = (5, 10, 20)
GMM_SAMPLES = {"gmm2d": 4096, "gmm64": 1024}  # N per mixture in the full run
QUICK_SAMPLES = 256
UNET_SHAPES = {"digits_small": (1, 8, 8), "ddpm_cifar10": (3, 32, 32)}
MEASURE_LIMIT_S = 3.0  # measure whole runs when the estimate is below this; extrapolate above it
OVERHEAD_STEPS = 50  # steps of the zero-cost overhead loops


@dataclass(frozen=True)
class SuiteOptions:
    """What to run; ``SuiteOptions.quick()`` is the small version (tests, --quick)."""

    models: tuple[str, ...] = ("gmm2d", "gmm64", "digits")  # quality models: gmm2d, gmm64, digits
    samplers: tuple[str, ...] = tuple(SAMPLERS)  # diffkit samplers to measure
    nfes: tuple[int, ...] = FULL_NFES  # model-evaluation budgets; each sampler takes the most steps that fit
    samples: int | None = None  # N per mixture; None: GMM_SAMPLES
    max_nfe: dict = field(default_factory=dict)  # per-model cap on the budgets, e.g. {"gmm64": 500}
    extra_spacings: tuple[str, ...] = ("linspace",)  # also run deterministic samplers at these spacings
    order_range: tuple[float, float] = gmm.ORDER_RANGE  # NFE range of the order fit
    peers: bool = True  # diffusers / k-diffusion side by side
    latency_models: tuple[str, ...] = ("digits_small", "ddpm_cifar10")  # U-Net presets timed ("" = none)
    latency_batches: tuple[int, ...] = (1, 64)
    latency_steps: tuple[int, ...] = (10, 20, 50)
    digits: dict = field(default_factory=dict)  # options of the digits section (digits.DEFAULTS: samples, nfes, ...)
    device: str = "cpu"  # device of the U-Net latency runs (mixtures: CPU float64; digits: CPU)
    seed: int = 0
    progress: bool = True

    @classmethod
    def quick(cls, **overrides) -> "SuiteOptions":
        """Seconds, not minutes: small N, three budgets, the small U-Net at batch 1."""
        base = dict(models=("gmm2d",), nfes=QUICK_NFES, samples=QUICK_SAMPLES, latency_models=("digits_small",),
                    latency_batches=(1,), latency_steps=(5,), digits={"samples": 32, "nfes": (5, 10),
                                                                      "reference_steps": 50})
        return cls(**{**base, **overrides})


Task = tuple[str, float, Callable[[], None]]  # (label, weight for the progress bar, work)


def _gmm_tasks(opts: SuiteOptions, out: dict, with_peers: bool, kd_ok: bool) -> list[Task]:
    tasks: list[Task] = []
    for name in [m for m in opts.models if m in gmm.GMM_MODELS]:
        n = opts.samples or GMM_SAMPLES[name]
        section = out.setdefault("gmm", {}).setdefault(name, {"samples": n, "rows": []})
        state: dict = {}
        scale = n * (1 if name == "gmm2d" else 16) / 4096  # rough cost per model call, for the bar only

        def prepare(name=name, n=n, section=section, state=state):
            state["case"] = case = gmm.prepare_case(name, n, opts.seed, Linear())
            section.update(gmm.floors(case), dim=case.model.dim, weights=case.model.weights.tolist())

        tasks.append((f"{name}: exact ODE (DOP853, rtol 1e-10)", 300 * scale, prepare))
        nfes = [b for b in opts.nfes if b <= opts.max_nfe.get(name, b)]
        for sampler, spacing, nfe in gmm.gmm_plan(opts.samplers, nfes, opts.extra_spacings):
            def work(sampler=sampler, spacing=spacing, nfe=nfe, section=section, state=state):
                section["rows"].append(gmm.run_sampler(state["case"], sampler, spacing, nfe, opts.seed))
            tasks.append((f"{name}: {sampler}@{spacing} nfe {nfe}", (nfe + 5) * scale, work))
        if with_peers:
            prows = out.setdefault("peers", {}).setdefault("gmm", {}).setdefault(name, [])
            for impl, pname, spacing, options, det, nfe in peer_runs.peer_quality_plan(nfes, kd_ok, opts.samplers):
                def work(impl=impl, pname=pname, spacing=spacing, options=options, det=det, nfe=nfe, state=state,
                         prows=prows):
                    prows.append(peer_runs.peer_quality(state["case"], impl, pname, spacing, options, det, nfe,
                                                        opts.seed))
                tasks.append((f"{name}: {impl} {pname}@{spacing} nfe {nfe}", (nfe + 5) * scale, work))
    return tasks


def _latency_tasks(opts: SuiteOptions, out: dict, with_peers: bool) -> list[Task]:
    from diffkit.unet import build_unet

    tasks: list[Task] = []
    sec = out.setdefault("latency", {"evals": [], "overhead": [], "peer_overhead": [], "runs": []})
    schedule = Linear()
    for preset in [p for p in opts.latency_models if p]:
        shape = UNET_SHAPES[preset]
        holder: dict = {}

        def build(preset=preset, holder=holder):
            torch.manual_seed(opts.seed)
            holder["net"] = build_unet(preset).eval().to(opts.device)
            holder["cond_fn"] = (lambda b: {"y": torch.zeros(b, dtype=torch.long, device=opts.device)}) \
                if holder["net"].config.num_classes else None

        tasks.append((f"{preset}: build", 1.0, build))
        for batch in opts.latency_batches:
            size = batch * (1 if preset == "digits_small" else 40)

            def evals(preset=preset, batch=batch, holder=holder, shape=shape):
                repeats = 2 if preset == "ddpm_cifar10" and batch > 8 else 5
                row = latency.model_eval(holder["net"], shape, batch, holder["cond_fn"], repeats=repeats)
                sec["evals"].append(dict(row, model=preset))

            tasks.append((f"{preset}: model eval, batch {batch}", 2 + size * 0.2, evals))
            for sampler in opts.samplers:
                def overhead(sampler=sampler, batch=batch, shape=shape, preset=preset):
                    row = latency.sampler_overhead(sampler, schedule, shape, batch, OVERHEAD_STEPS)
                    sec["overhead"].append(dict(row, model=preset, impl="diffkit"))
                tasks.append((f"{preset}: overhead {sampler}, batch {batch}", 1.0, overhead))
            if with_peers:
                def poverhead(batch=batch, shape=shape, preset=preset):
                    rows = peer_runs.peer_overhead((batch,) + shape, opts.samplers, OVERHEAD_STEPS)
                    sec["peer_overhead"] += [dict(r, model=preset, batch=batch) for r in rows]
                tasks.append((f"{preset}: overhead vs peers, batch {batch}", 3.0 * len(opts.samplers), poverhead))
            for sampler in opts.samplers:
                for steps in opts.latency_steps:
                    def run(sampler=sampler, steps=steps, batch=batch, shape=shape, preset=preset, holder=holder):
                        ev = next(r for r in sec["evals"] if r["model"] == preset and r["batch"] == batch)
                        ov = next(r for r in sec["overhead"] if r["model"] == preset and r["batch"] == batch
                                  and r["sampler"] == sampler and r["impl"] == "diffkit")
                        est = latency.extrapolated_latency(sampler, batch, steps, ev["seconds_per_eval"],
                                                           ov["seconds_per_step"])
                        row = dict(est, model=preset)
                        if est["seconds"] < MEASURE_LIMIT_S:
                            cheap = est["seconds"] < MEASURE_LIMIT_S / 10  # repeat cheap runs for a stable median
                            measured = latency.sampler_latency(sampler, holder["net"], schedule, shape, batch, steps,
                                                               holder["cond_fn"], repeats=3 if cheap else 1,
                                                               warmup=1 if cheap else 0)
                            row = dict(measured, model=preset, extrapolated_seconds=est["seconds"])
                        sec["runs"].append(row)
                    tasks.append((f"{preset}: {sampler} {steps} steps, batch {batch}", 1 + size * 0.02 * steps, run))
    return tasks


def run_suite(opts: SuiteOptions) -> dict:
    """Run everything ``opts`` asks for; returns the results dict (see the module docstring)."""
    unknown = sorted(set(opts.samplers) - set(SAMPLERS))
    if unknown:
        raise ValueError(f"unknown sampler(s) {', '.join(unknown)}; registered: {', '.join(SAMPLERS)}")
    bad_models = sorted(set(opts.models) - set(gmm.GMM_MODELS) - {"digits"})
    if bad_models:
        raise ValueError(f"unknown model(s) {', '.join(bad_models)}; allowed: {', '.join(gmm.GMM_MODELS)}, digits")
    bad_presets = sorted(set(p for p in opts.latency_models if p) - set(UNET_SHAPES))
    if bad_presets:
        raise ValueError(f"unknown latency model(s) {', '.join(bad_presets)}; allowed: {', '.join(UNET_SHAPES)}")
    out: dict = {"machine": machine_info(opts.device), "options": dataclasses.asdict(opts)}
    why = peer_runs.diffusers_available() if opts.peers else "not requested"
    kd_ok, kd_why = peer_runs.kdiffusion_available() if not why else (False, why)
    out["peers"] = {"diffusers": why or "ok", "k-diffusion": kd_why or "ok"}
    tasks = _gmm_tasks(opts, out, not why, kd_ok)
    if "digits" in opts.models:
        tasks += digits_bench.tasks(opts, out)
    tasks += _latency_tasks(opts, out, not why)
    with ProgressBar(sum(w for _, w, _ in tasks), None, enabled=opts.progress) as bar:
        for label, weight, work in tasks:
            bar.update(bar.done, label)
            work()
            bar.advance(weight, label)
    for name, section in out.get("gmm", {}).items():
        rows = section["rows"] + out.get("peers", {}).get("gmm", {}).get(name, [])
        section["orders"] = gmm.orders(rows, *opts.order_range)
        section["order_range"] = list(opts.order_range)
    return out
