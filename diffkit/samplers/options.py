"""Validation of sampler options, shared so that every sampler words its errors alike."""

from __future__ import annotations


def check_eta(name: str, eta: float) -> float:
    """eta in [0, 1] as a float, else ValueError."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"{name}: eta must be a number in [0, 1], got {eta!r}")
    return float(eta)
