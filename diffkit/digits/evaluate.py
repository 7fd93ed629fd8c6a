"""Sample quality on the digits: classifier accuracy of class-conditional samples and Frechet distance.

Both metrics work in the dataset's own pixel space (64 pixels with values 0..16,
samples mapped back from [-1, 1] with ``diffkit.digits.data.to_pixels``):

- **Accuracy.** An RBF support-vector classifier (``sklearn.svm.SVC()``, default
  hyper-parameters) fitted on the 1,500-image train split; a sample drawn for
  label y counts as correct when the classifier says y. The classifier itself
  scores ``classifier().heldout_accuracy`` on the 297 held-out digits, the
  ceiling for this metric.
- **Frechet distance** (FD; FID without the Inception network):
  ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` between Gaussians fitted
  to two sets of 64-D pixel vectors. Samples are compared with the held-out split;
  the real-vs-real floor is train split vs held-out split. FD is biased upwards
  for small sets, so compare numbers computed with the same set sizes.

scikit-learn is needed here (for the classifier and the data), as for ``diffkit.digits.data``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from diffkit.digits.data import NUM_CLASSES, load_digits, to_pixels
from diffkit.models.guidance import ClassifierFreeGuidance, ClassifierGuidance, RescheduledClassifier
from diffkit.models.prediction import Predictor
from diffkit.progress import ProgressBar
from diffkit.samplers import sample
from diffkit.samplers.defaults import default_for
from diffkit.schedules import Schedule


def flat_pixels(images: torch.Tensor) -> np.ndarray:
    """[N, 1, 8, 8] in [-1, 1] -> [N, 64] float64 pixels in 0..16."""
    return to_pixels(images).reshape(len(images), -1).double().numpy()


@dataclass(frozen=True)
class DigitsClassifier:
    """The SVC fitted on the train split, and its accuracy on the held-out split."""

    svc: object
    heldout_accuracy: float

    def predict(self, images: torch.Tensor) -> np.ndarray:
        return self.svc.predict(flat_pixels(images))

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of ``images`` ([-1, 1] scale) classified as their ``labels``."""
        return float(np.mean(self.predict(images) == labels.cpu().numpy()))


@lru_cache(maxsize=1)
def classifier() -> DigitsClassifier:
    """The evaluation classifier (fitted once per process, deterministic: SVC involves no randomness)."""
    from sklearn.svm import SVC

    train, heldout = load_digits("train"), load_digits("heldout")
    svc = SVC().fit(flat_pixels(train.images), train.labels.numpy())
    heldout_accuracy = float(np.mean(svc.predict(flat_pixels(heldout.images)) == heldout.labels.numpy()))
    return DigitsClassifier(svc=svc, heldout_accuracy=heldout_accuracy)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FD between Gaussians fitted to the rows of ``a`` [N, D] and ``b`` [M, D] (float64 throughout)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two sets of >= 2 vectors of one dimension; got {a.shape} and {b.shape}")
    return gaussian_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def gaussian_frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))``: FD between two Gaussians (float64)."""
    # tr (C_a C_b)^(1/2) = tr (C_a^(1/2) C_b C_a^(1/2))^(1/2): a symmetric PSD matrix, so eigh is exact and
    # stable even when both covariances are singular (digits have pixels that are always 0).
    root_a = _psd_sqrt(cov_a)
    tr_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum()
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_root)


def moments_from_sums(n: int, total: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, unbiased covariance, as ``np.cov``) of ``n`` vectors from their sum and the sum of their outer products.

    The form of statistics summed over shards (``all_reduce``), never over the vectors themselves.
    """
    if n < 2:
        raise ValueError(f"need >= 2 vectors for a covariance; got {n}")
    mean = total / n
    return mean, (outer - n * np.outer(mean, mean)) / (n - 1)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def digits_fd(samples: torch.Tensor) -> float:
    """FD between ``samples`` ([-1, 1] scale) and the 297 held-out digits, in 0..16 pixel space."""
    return frechet_distance(flat_pixels(samples), flat_pixels(load_digits("heldout").images))


def real_fd_floor(n: int | None = None) -> float:
    """FD between the train split (its first ``n`` images, default all 1,500) and the held-out split (297).

    What real data scores; pass the sample count (e.g. 1000) for a floor with the same bias as the samples'.
    """
    train = load_digits("train").images
    return frechet_distance(flat_pixels(train[:n]), flat_pixels(load_digits("heldout").images))


def balanced_labels(n: int, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """0, 1, ..., num_classes-1, 0, 1, ...: n labels as evenly spread over the classes as possible."""
    return torch.arange(n) % num_classes


def guided_model(model: torch.nn.Module, schedule: Schedule, guidance: float = 1.0, classifier_guidance: float = 0.0,
                 classifier=None, classifier_schedule: Schedule | None = None):
    """The eps-model ``sample_digits`` samples, called with ``y=labels``.

    Classifier-free guidance at scale w = ``guidance``: eps_u + w (eps_c - eps_u) in one batched
    call; w = 1 is the conditional model alone and w = 0 the unconditional one (the null label),
    each one network call. Then classifier guidance at ``classifier_guidance`` with ``classifier``
    (a :class:`~diffkit.digits.classifier.NoisyDigitsClassifier`; default: the shipped one) for
    the same labels: ``guidance=0`` with it is Dhariwal & Nichol's guided unconditional model.
    A classifier trained on another schedule than the model's (``classifier_schedule``; the
    shipped one: Linear) is asked at equal noise (:class:`~diffkit.models.RescheduledClassifier`),
    so it guides the rectified-flow model too.
    """
    if guidance == 1.0:
        eps_model = model
    elif guidance == 0.0:  # the unconditional branch alone, predicting what the model predicts
        eps_model = Predictor(lambda x, t, y: model(x, t, y=torch.full_like(y, model.null_label)),
                              getattr(model, "prediction_type", "epsilon"))
    else:
        eps_model = ClassifierFreeGuidance(model, guidance, uncond={"y": model.null_label})
    if classifier_guidance == 0.0:
        return eps_model
    if classifier is None:
        from diffkit.digits.classifier import load_classifier

        classifier, classifier_schedule = load_classifier()
    log_prob = classifier.log_prob
    if classifier_schedule is not None and classifier_schedule != schedule:
        log_prob = RescheduledClassifier(log_prob, classifier_schedule, schedule)
    return ClassifierGuidance(eps_model, log_prob, classifier_guidance, schedule)


def sample_digits(
    model: torch.nn.Module,
    schedule: Schedule,
    labels: torch.Tensor,
    *,
    sampler: str | None = "dpmpp_2m",
    steps: int = 20,
    guidance: float = 1.0,
    seed: int = 0,
    spacing: str | None = None,
    batch_size: int = 500,
    progress: bool = False,
    classifier_guidance: float = 0.0,
    classifier=None,
    classifier_schedule: Schedule | None = None,
    timesteps: np.ndarray | None = None,
    options: Mapping[str, Any] | None = None,
) -> torch.Tensor:
    """Class-conditional samples [N, C, H, W] in [-1, 1], one per label, drawn in batches.

    ``timesteps`` is an explicit grid (see :func:`diffkit.sample`), in place of ``steps`` and ``spacing``.
    ``sampler=None`` takes the sampler and grid from the defaults table, as :func:`diffkit.sample` does;
    ``options`` are the named sampler's (e.g. ``{"order": 3}``).

    ``guidance`` is the classifier-free guidance scale w (eps_u + w (eps_c - eps_u)); w = 1 calls the
    conditional model alone (one network evaluation per step instead of a doubled batch).
    ``classifier_guidance`` adds classifier guidance at that scale (:func:`guided_model`).
    ``progress`` draws one bar over every batch's steps.
    """
    cfg = model.config
    _check_sampling(labels, cfg.num_classes, guidance, seed, batch_size)
    eps_model = guided_model(model, schedule, guidance, classifier_guidance, classifier, classifier_schedule)
    generator = torch.Generator().manual_seed(seed)
    shape = (cfg.in_channels, cfg.resolution, cfg.resolution)
    chunks = labels.split(batch_size)
    out = []
    if timesteps is not None:  # visited timesteps per batch, for the progress bar
        per_batch = len(timesteps)
    elif sampler is None and spacing is None:  # the table's grid (one timestep more where it takes afs)
        per_batch = len(default_for(schedule, steps).timesteps(schedule, steps))
    else:
        per_batch = steps
    with torch.inference_mode(), ProgressBar(len(chunks) * per_batch, "steps", enabled=progress) as bar:
        callback = (lambda i, t, x, x0: bar.advance(1)) if progress else None
        for chunk in chunks:
            x = sample(eps_model, schedule, sampler, None if timesteps is not None else steps,
                       shape=(len(chunk), *shape), generator=generator, spacing=spacing, cond={"y": chunk},
                       callback=callback, timesteps=timesteps, **dict(options or {}))  # fmt: skip
            out.append(x.clamp(-1, 1))
    return torch.cat(out)


def _check_sampling(labels: torch.Tensor, num_classes: int | None, guidance: float, seed: int, batch_size: int) -> None:
    if num_classes is None:
        raise ValueError("sample_digits needs a class-conditional model; this one has num_classes=None")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != 1 or not len(labels):
        raise ValueError(f"labels must be a non-empty 1-D int64 tensor; got {getattr(labels, 'dtype', type(labels))} "
                         f"{tuple(getattr(labels, 'shape', ()))}")
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]; got [{int(labels.min())}, {int(labels.max())}]")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
        raise ValueError(f"guidance must be a finite number; got {guidance!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64); got {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")


def evaluate_sampler(
    model: torch.nn.Module,
    schedule: Schedule,
    *,
    sampler: str = "dpmpp_2m",
    steps: int = 20,
    n: int = 1000,
    guidance: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy and FD of ``n`` class-balanced samples, with the wall time it took to draw them."""
    labels = balanced_labels(n, model.config.num_classes)
    start = time.perf_counter()
    samples = sample_digits(model, schedule, labels, sampler=sampler, steps=steps, guidance=guidance, seed=seed)
    seconds = time.perf_counter() - start
    return {
        "accuracy": classifier().accuracy(samples, labels),
        "fd": digits_fd(samples),
        "seconds": seconds,
    }
