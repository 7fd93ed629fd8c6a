"""``benchmarks/guidance_editing.py``: run the guidance and editing measurements and write their tables.

``measure(parts, quick)`` runs the parts of :mod:`diffkit.bench.guidance` and
:mod:`diffkit.bench.editing` (the full sizes, or small ones with ``quick``); ``markdown(report)``
renders the report the way ``benchmarks/results/guidance_editing.md`` shows it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from diffkit.bench import editing, guidance
from diffkit.bench.digits import machine_text
from diffkit.bench.report import fmt, table

PARTS = ("classifier_guidance", "cfg_order", "cfg_variants", "inpainting", "inversion", "img2img")


def measure(parts: Sequence[str] = PARTS, quick: bool = False) -> dict:
    """Every part in ``parts``, as {"machine", "quick", part: rows}."""
    report: dict = {"machine": machine_text(), "quick": quick, "date": time.strftime("%Y-%m-%d", time.gmtime())}
    digits_parts = {"classifier_guidance", "cfg_order", "cfg_variants"} & set(parts)
    if digits_parts:
        from diffkit.digits.evaluate import balanced_labels, real_fd_floor
        from diffkit.digits.pretrained import load_pretrained

        model, schedule = load_pretrained()
        labels = balanced_labels(100 if quick else 1000)
        report["digits_n"], report["fd_floor_real"] = len(labels), real_fd_floor(len(labels))
    if "classifier_guidance" in parts:
        report["classifier_guidance"] = guidance.classifier_guidance_rows(
            model, schedule, labels, scales=(0, 2) if quick else (0, 1, 2, 4, 8), cfg=(0.0,) if quick else (0.0, 1.0))
    if "cfg_order" in parts:
        report["cfg_order"] = guidance.cfg_order_rows(
            model, schedule, labels[:500] if not quick else labels, scales=(4.0,) if quick else (2.0, 4.0, 8.0),
            steps=(5,) if quick else (5, 10, 20), reference_steps=20 if quick else 250, rms_n=20 if quick else 100)
    if "cfg_variants" in parts:
        report["cfg_variants"] = guidance.cfg_variant_rows(model, schedule, labels[:500] if not quick else labels,
                                                           steps=5 if quick else 20)
    if "inpainting" in parts:
        report["inpainting"] = editing.inpainting_rows(
            **({"n": 200, "steps": (10,), "resamples": (1, 2), "jumps": ((10, 2, 5),)} if quick else {}))
    if "inversion" in parts:
        report["inversion"] = editing.inversion_rows(**({"steps": (5, 10), "n": 20, "digits": 10} if quick else {}))
    if "img2img" in parts:
        report["img2img"] = editing.img2img_rows(**({"strengths": (0.3, 1.0), "n": 200, "steps": 5} if quick else {}))
    return report


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def markdown(report: dict) -> str:
    """The report as the markdown of ``benchmarks/results/guidance_editing.md``."""
    lines = ["# Guidance and editing, measured", "",
             f"Machine: {report['machine']}; {report['date']}; `python -m benchmarks.guidance_editing`"
             + (" --quick (small, noisy)" if report["quick"] else "") + ".", ""]
    if "digits_n" in report:
        lines += [f"Digits: the embedded model; FD to the 297 held-out digits (real-vs-real floor at "
                  f"{report['digits_n']} samples: {report['fd_floor_real']:.1f}), accuracy of the evaluation SVC "
                  "on the labels sampled for.", ""]
    if "classifier_guidance" in report:
        rows = [[fmt(r["cfg"]), fmt(r["classifier_guidance"]), _pct(r["accuracy"]), f"{r['fd']:.1f}"]
                for r in report["classifier_guidance"]]
        lines += ["## Classifier guidance (dpmpp_2m, 20 steps; w = 0: the unconditional model)", "",
                  table(["CFG w", "classifier scale", "accuracy", "FD"], rows, markdown=True), ""]
    if "cfg_order" in report:
        rows = [[fmt(r["cfg"]), r["sampler"], r["steps"], r["nfe"], fmt(r["rms_to_reference"]),
                 _pct(r["outside_range"]), _pct(r["accuracy"]), f"{r['fd']:.1f}"] for r in report["cfg_order"]]
        lines += ["## Solver order under classifier-free guidance", "",
                  "RMS to a converged reference (dpmpp_2m, 250 steps, same x_T) before clamping; "
                  "'outside' = fraction of pixels beyond [-1, 1] before clamping.", "",
                  table(["w", "sampler", "steps", "NFE", "RMS to reference", "outside", "accuracy", "FD"], rows,
                        markdown=True), ""]
    if "cfg_variants" in report:
        rows = [[fmt(r["cfg"]), str(r["variant"]), _pct(r["accuracy"]), f"{r['fd']:.1f}"]
                for r in report["cfg_variants"]]
        lines += ["## Guidance rescale and guidance interval (dpmpp_2m, 20 steps; intervals in sigma_k)", "",
                  table(["w", "variant", "accuracy", "FD"], rows, markdown=True), ""]
    if "inpainting" in report:
        inp, fl = report["inpainting"], report["inpainting"]["floors"]
        rows = [[r["sampler"], r["steps"], r["resample"], r["jump"], r["nfe"], fmt(r["joint_sw2"]),
                 fmt(r["joint_mode_tv"]), fmt(r["hard_sw2"]), fmt(r["hard_mean_error"]), _pct(r["hard_main_weight"])]
                for r in inp["rows"]]
        lines += ["## Inpainting vs the exact conditional (8-D mixture, 4 known coordinates)", "",
                  f"{inp['n']} samples per cell. Floors (two exact sample sets): joint SW2 {fmt(fl['joint_sw2'])}, "
                  f"hard SW2 {fmt(fl['hard_sw2'])}; the exact conditional's mass on its main component: "
                  f"{_pct(fl['hard_main_weight'])}.", "",
                  table(["sampler", "steps", "resample", "jump", "NFE", "joint SW2", "joint mode TV", "hard SW2",
                         "hard mean error", "hard main mass"], rows, markdown=True), ""]
    if "inversion" in report:
        rows = [[r["case"], r["sampler"], r["steps"], fmt(r["ode"]), fmt(r["sample"]), fmt(r["final_step_floor"])]
                for r in report["inversion"]]
        lines += ["## Inversion round trip x0 -> x_T -> x0 (RMS)", "",
                  "'ODE': back down the same grid to t_min; 'sample': diffkit.sample with the same steps "
                  "(adds the final step to the data, whose floor is the last column).", "",
                  table(["data", "sampler", "steps", "ODE round trip", "sample round trip", "final-step floor"], rows,
                        markdown=True), ""]
    if "img2img" in report:
        rows = [[r["case"], fmt(r["strength"]), fmt(r.get("t_start")), fmt(r.get("rms_to_input")),
                 fmt(r.get("sw2_to_data")), _pct(r["accuracy_target"]) if "accuracy_target" in r else "-",
                 _pct(r["accuracy_source"]) if "accuracy_source" in r else "-",
                 f"{r['fd']:.1f}" if "fd" in r else "-"] for r in report["img2img"]]
        lines += ["## img2img by strength (dpmpp_2m, 20 steps; digits at CFG w = 2)", "",
                  table(["case", "strength", "t_start", "RMS to input", "SW2 to data", "accuracy (target)",
                         "accuracy (source)", "FD"], rows, markdown=True), ""]
    return "\n".join(lines)
