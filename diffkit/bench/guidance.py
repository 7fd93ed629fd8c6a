"""Guidance on the embedded digits model: classifier guidance scales, and solver order under strong CFG.

- ``classifier_guidance_rows``: the shipped noise-conditional classifier guiding the unconditional
  model (w = 0: Dhariwal & Nichol's setting) and the conditional one (w = 1), at several scales;
  accuracy of the evaluation SVC on the labels guided towards, and FD to the held-out digits.
- ``cfg_order_rows``: classifier-free guidance at w = 2, 4, 8 with first-order (ddim), second-order
  (dpmpp_2m; heun at two calls per step) and third-order multistep (dpmpp_3m_sde at eta = 0, i.e.
  DPM-Solver++(3M)) solvers at equal steps: FD, accuracy, and RMS (unclamped, [-1, 1] pixel scale)
  to a converged reference from the same x_T (dpmpp_2m, ``reference_steps``) on the first
  ``rms_n`` samples; plus guidance rescale and guidance intervals at w = 4.

Samples are drawn from one seed per row (x_T first, as ``sample_digits`` does), 500 per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

import diffkit
from diffkit.bench.metrics import rms
from diffkit.models import ClassifierFreeGuidance
from diffkit.samplers import SAMPLERS

BATCH = 500
ORDER_SAMPLERS = (("ddim", {}), ("dpmpp_2m", {}), ("heun", {}), ("dpmpp_3m_sde", {"eta": 0.0}))


def draw(eps_model, schedule, labels: torch.Tensor, sampler: str, steps: int, seed: int, **kw) -> torch.Tensor:
    """Unclamped samples for ``labels`` from ``eps_model`` (cond y=labels), x_T drawn first from ``seed``."""
    generator, out = torch.Generator().manual_seed(seed), []
    with torch.inference_mode():
        for chunk in labels.split(BATCH):
            out.append(diffkit.sample(eps_model, schedule, sampler, steps, shape=(len(chunk), 1, 8, 8),
                                      generator=generator, cond={"y": chunk}, **kw))
    return torch.cat(out)


def score(samples: torch.Tensor, labels: torch.Tensor) -> dict:
    """Accuracy on ``labels`` and FD to the held-out digits of the clamped samples."""
    from diffkit.digits.evaluate import classifier, digits_fd

    x = samples.clamp(-1, 1)
    return {"accuracy": classifier().accuracy(x, labels), "fd": digits_fd(x)}


def classifier_guidance_rows(model, schedule, labels: torch.Tensor, scales: Sequence[float] = (0, 1, 2, 4, 8),
                             cfg: Sequence[float] = (0.0, 1.0), sampler: str = "dpmpp_2m", steps: int = 20,
                             seed: int = 0) -> list[dict]:
    """One row per (classifier-free scale w in ``cfg``, classifier guidance scale)."""
    from diffkit.digits.classifier import load_classifier
    from diffkit.digits.evaluate import guided_model

    clf = load_classifier()[0]
    rows = []
    for w in cfg:
        for s in scales:
            x = draw(guided_model(model, schedule, w, float(s), clf), schedule, labels, sampler, steps, seed)
            rows.append({"cfg": w, "classifier_guidance": float(s), "sampler": sampler, "steps": steps,
                         **score(x, labels)})
            print(f"w={w:g} classifier guidance {s:g}: {rows[-1]}", flush=True)
    return rows


def cfg_order_rows(model, schedule, labels: torch.Tensor, scales: Sequence[float] = (2.0, 4.0, 8.0),
                   steps: Sequence[int] = (10, 20), reference_steps: int = 250, rms_n: int = 100,
                   seed: int = 0) -> list[dict]:
    """Solver order under classifier-free guidance (module docstring)."""
    rows = []
    for w in scales:
        guided = ClassifierFreeGuidance(model, w, uncond={"y": model.null_label})
        reference = draw(guided, schedule, labels[:rms_n], "dpmpp_2m", reference_steps, seed)
        for name, options in ORDER_SAMPLERS:
            for n in steps:
                x = draw(guided, schedule, labels, name, n, seed, **options)
                nfe = SAMPLERS[name].nfe(n)
                rows.append({"cfg": w, "sampler": name if not options else f"{name} (eta=0)", "steps": n, "nfe": nfe,
                             "rms_to_reference": rms(x[:rms_n], reference),
                             "outside_range": float((x.abs() > 1).double().mean()), **score(x, labels)})
                print(f"w={w:g} {name} {n} steps: {rows[-1]}", flush=True)
    return rows


def cfg_variant_rows(model, schedule, labels: torch.Tensor, w: float = 4.0, steps: int = 20, seed: int = 0,
                     rescales: Sequence[float] = (0.5, 0.7),
                     intervals: Sequence[tuple[float, float]] = ((0.3, 5.0), (0.0, 2.0), (1.0, float("inf"))),
                     ) -> list[dict]:
    """Guidance rescale and guidance intervals (sigma_k) at scale ``w`` with dpmpp_2m."""
    rows = []
    variants = [{"guidance_rescale": r} for r in rescales] + [{"interval": iv, "schedule": schedule}
                                                              for iv in intervals]
    for kw in [{}] + variants:
        guided = ClassifierFreeGuidance(model, w, uncond={"y": model.null_label}, **kw)
        x = draw(guided, schedule, labels, "dpmpp_2m", steps, seed)
        label = {k: (list(v) if k == "interval" else v) for k, v in kw.items() if k != "schedule"}
        rows.append({"cfg": w, "variant": label or "plain", "steps": steps, **score(x, labels)})
        print(f"w={w:g} {label or 'plain'}: {rows[-1]}", flush=True)
    return rows

