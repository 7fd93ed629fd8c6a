"""Error measures for samplers, all returning host floats computed in float64.

- ``rms(x, ref)``: sqrt(mean((x - ref)^2)) over every value -- the global error of a
  deterministic sampler against the exact ODE solution from the same x_T.
- ``median_error(x, ref)``: median over samples of the per-sample RMS error. Robust to the few
  samples near a separatrix between modes that a coarse solver sends to the other mode (each
  an O(1) error that can dominate ``rms``).
- ``sliced_w2(x, y, proj)``: sliced Wasserstein-2 between two equal-size sample sets,
  sqrt( mean_p  mean_i (sort(x p)_i - sort(y p)_i)^2 ) over a FIXED set of unit
  directions p (``projections``), so numbers from different runs are comparable.
  With finite N it is biased upward by sampling noise: report it next to its noise
  floor, the same statistic between two independent exact sample sets of size N.
- ``mode_weight_tv(labels, weights)``: total variation 0.5 sum_k |n_k/N - pi_k| between
  the sampled and the true mode weights (floor: ~ sqrt(K / (2 pi N)) from multinomial noise).
- ``fit_order(nfe, err, lo, hi)``: least-squares slope of log err against log NFE over
  lo <= NFE <= hi; the empirical convergence order is minus that slope.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def _flat64(x: torch.Tensor) -> torch.Tensor:
    return x.detach().reshape(x.shape[0], -1).to(device="cpu", dtype=torch.float64)


def rms(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Root mean square of x - ref over all values (float64)."""
    if x.shape != ref.shape:
        raise ValueError(f"rms: shapes differ, {tuple(x.shape)} vs {tuple(ref.shape)}")
    return float((_flat64(x) - _flat64(ref)).pow(2).mean().sqrt())


def median_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Median over samples of sqrt(mean over values of (x - ref)^2) (float64)."""
    if x.shape != ref.shape:
        raise ValueError(f"median_error: shapes differ, {tuple(x.shape)} vs {tuple(ref.shape)}")
    return float((_flat64(x) - _flat64(ref)).pow(2).mean(dim=1).sqrt().median())


def projections(dim: int, count: int = 256, seed: int = 0) -> torch.Tensor:
    """``count`` fixed unit directions in R^dim, [count, dim] float64, reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(count, dim, generator=g, dtype=torch.float64)
    return p / p.norm(dim=1, keepdim=True)


def sliced_w2(x: torch.Tensor, y: torch.Tensor, proj: torch.Tensor) -> float:
    """Sliced Wasserstein-2 distance between equal-size sample sets x, y [N, ...] along ``proj`` [P, D]."""
    a, b = _flat64(x), _flat64(y)
    if a.shape != b.shape or a.shape[1] != proj.shape[1]:
        raise ValueError(f"sliced_w2: need x, y of one shape [N, D] with D = {proj.shape[1]}, got {a.shape}, {b.shape}")
    pa = torch.sort(a @ proj.T, dim=0).values
    pb = torch.sort(b @ proj.T, dim=0).values
    return float((pa - pb).pow(2).mean().sqrt())


def mode_weight_tv(labels: torch.Tensor, weights: torch.Tensor) -> float:
    """Total variation between the label histogram (labels in 0..K-1) and the true weights [K]."""
    K = weights.shape[0]
    counts = torch.bincount(labels.reshape(-1).cpu(), minlength=K).to(torch.float64)
    return float(0.5 * (counts / counts.sum() - weights.cpu().to(torch.float64)).abs().sum())


def fit_order(nfe: Sequence[float], err: Sequence[float], lo: float, hi: float) -> dict | None:
    """Least-squares fit log err = c - order * log NFE over lo <= NFE <= hi.

    Returns {"order", "c", "lo", "hi", "points"} or None when fewer than two usable
    points (positive, finite errors) lie in the range.
    """
    pts = [(n, e) for n, e in zip(nfe, err) if lo <= n <= hi and e is not None and math.isfinite(e) and e > 0]
    if len(pts) < 2:
        return None
    ln = np.log(np.array([p[0] for p in pts], dtype=np.float64))
    le = np.log(np.array([p[1] for p in pts], dtype=np.float64))
    slope, c = np.polyfit(ln, le, 1)
    return {"order": float(-slope), "c": float(c), "lo": float(lo), "hi": float(hi), "points": len(pts)}
