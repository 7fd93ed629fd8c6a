"""Validation of sampler options, shared so that every sampler words its errors alike."""

from __future__ import annotations

import math
from typing import TypeVar, cast


C = TypeVar("C")  # an option's type: str, bool, ...


def check_eta(name: str, eta: float) -> float:
    """eta in [0, 1] as a float, else ValueError."""
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"{name}: eta must be a number in [0, 1], got {eta!r}")
    return float(eta)


def check_nonnegative(name: str, option: str, value: float, *, finite: bool = True) -> float:
    """``value`` as a float >= 0 (finite unless ``finite`` is False), else ValueError."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value >= 0.0
    if not ok or (finite and not math.isfinite(value)):
        kind = "a finite number" if finite else "a number (inf allowed)"
        raise ValueError(f"{name}: {option} must be {kind} >= 0, got {value!r}")
    return float(value)


def check_order(name: str, order: int, highest: int) -> int:
    """A multistep order: an integer in [1, highest], else ValueError."""
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= highest:
        raise ValueError(f"{name}: order must be an integer in [1, {highest}], got {order!r}")
    return order


def check_choice(name: str, option: str, value: object, allowed: tuple[C, ...]) -> C:
    """``value`` if it is one of ``allowed``, else ValueError listing them."""
    if isinstance(value, bool) is not isinstance(allowed[0], bool) or value not in allowed:
        raise ValueError(f"{name}: {option} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return cast(C, value)


def check_fraction(name: str, option: str, value: float) -> float:
    """``value`` as a float strictly between 0 and 1, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"{name}: {option} must be a number in (0, 1), got {value!r}")
    return float(value)


def check_noise_sampler(name: str, noise_sampler: object) -> object:
    """``noise_sampler`` if it is None or callable as noise_sampler(lambda_from, lambda_to), else TypeError."""
    if noise_sampler is not None and not callable(noise_sampler):
        raise TypeError(f"{name}: noise_sampler must be None or callable as noise_sampler(lambda_from, lambda_to), "
                        f"got {type(noise_sampler).__name__}")
    return noise_sampler
