"""Quality on the embedded trained digits model: FD, classifier accuracy, and RMS to a converged reference.

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

import time

from diffkit.bench.gmm import steps_for_nfe
from diffkit.bench.metrics import rms
from diffkit.samplers import get_sampler

DEFAULTS = {"samples": 200, "nfes": (5, 10, 20, 50), "reference_steps": 250, "samplers": None}


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
        return evaluate.sample_digits(state["model"], state["schedule"], state["labels"], sampler=sampler,
                                      steps=steps, seed=opts.seed, spacing=spacing, batch_size=n)

    def prepare():
        model, schedule = load_pretrained()
        state.update(model=model, schedule=schedule, labels=evaluate.balanced_labels(n))
        clf = evaluate.classifier()
        start = time.perf_counter()
        ref = state["ref"] = draw("dpmpp_2m", ref_steps, "karras")
        seconds = time.perf_counter() - start
        half = draw("dpmpp_2m", ref_steps // 2, "karras")
        sec["reference"] = {"sampler": "dpmpp_2m", "spacing": "karras", "steps": ref_steps, "nfe": ref_steps,
                            "fd": evaluate.digits_fd(ref), "accuracy": clf.accuracy(ref, state["labels"]),
                            "rms_to_reference": rms(ref, half) / 3.0, "seconds": seconds}
        sec["floor"] = {"fd": evaluate.real_fd_floor(n), "accuracy": clf.heldout_accuracy,
                        "rms_to_reference": None}

    tasks = [("digits: load, classifier, reference", 40.0 + 1.5 * ref_steps * n / 200, prepare)]
    for sampler in samplers:
        info = get_sampler(sampler)
        for nfe in cfg["nfes"]:
            def work(sampler=sampler, nfe=nfe, info=info):
                steps = steps_for_nfe(sampler, nfe)
                start = time.perf_counter()
                x0 = draw(sampler, steps)
                seconds = time.perf_counter() - start
                sec["rows"].append({
                    "sampler": sampler, "spacing": info.default_spacing, "steps": steps, "nfe": info.nfe(steps),
                    "budget": nfe, "fd": evaluate.digits_fd(x0),
                    "accuracy": evaluate.classifier().accuracy(x0, state["labels"]),
                    "rms_to_reference": None if info.stochastic else rms(x0, state["ref"]), "seconds": seconds})
            tasks.append((f"digits: {sampler} nfe {nfe}", 1.0 + nfe * n / 200, work))
    return tasks
