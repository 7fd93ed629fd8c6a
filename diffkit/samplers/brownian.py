"""Brownian-tree noise: the same seed gives the same Brownian path whatever the step count.

A Brownian motion W on normalised time u in [0, 1] (u is lambda rescaled from
the schedule's full range, so the path does not depend on which timesteps a
sampler visits) is defined by a binary tree of Brownian-bridge draws:

    W(0) = 0,   W(1) = z_root,
    W(mid) = (W(left) + W(right)) / 2 + sqrt(width / 4) * z_node

where each z is a standard normal seeded deterministically from (seed, level,
index). W at any u descends ``depth`` levels and interpolates linearly inside the
final interval of width 2^-depth. A step from u_a to u_b receives
(W(u_b) - W(u_a)) / sqrt(|u_b - u_a|), a standard normal for every step size,
and coarse and fine step sequences see increments of one path (Li et al. 2020's
virtual Brownian tree; k-diffusion's BrownianTreeNoiseSampler does the same
through torchsde). Draws use CPU generators, so results agree across devices.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch

_MASK = (1 << 63) - 1
ZERO_SNR_LAMBDA = -20.0  # lower end of the path at zero terminal SNR (alpha = 2e-9: below any trained range)


def _mix(*values: int) -> int:
    """A splitmix64-style hash of integers into a 63-bit seed."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & _MASK


class BrownianNoise:
    """A noise sampler ``noise(lam_from, lam_to) -> Tensor`` of standard normals shaped like one batch."""

    def __init__(
        self,
        shape: tuple[int, ...],  # [B, ...], the shape of one noise draw
        lam_min: float,  # lower end of the lambda range the path covers
        lam_max: float,  # upper end of the lambda range the path covers
        seeds: Sequence[int],  # one seed for the whole batch, or one per sample (then sample k is batch-free)
        device: torch.device | str = "cpu",  # where the returned noise lives
        dtype: torch.dtype = torch.float32,  # dtype of the returned noise
        depth: int = 16,  # tree depth: the path is exact Brownian down to 2^-depth of the range
    ) -> None:
        if not lam_max > lam_min:
            raise ValueError(f"BrownianNoise: need lam_max > lam_min, got [{lam_min}, {lam_max}]")
        if len(seeds) not in (1, shape[0]):
            raise ValueError(f"BrownianNoise: pass 1 seed or one per sample ({shape[0]}), got {len(seeds)}")
        if not 1 <= depth <= 40:
            raise ValueError(f"BrownianNoise: depth must be in [1, 40], got {depth}")
        self.shape, self.lam_min, self.lam_max = tuple(shape), float(lam_min), float(lam_max)
        self.seeds, self.device, self.dtype, self.depth = [int(s) for s in seeds], torch.device(device), dtype, depth
        self._cache: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()
        self._cache_size = 4 * depth + 8

    def _normal(self, level: int, index: int) -> torch.Tensor:
        key = (level, index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        g = torch.Generator()
        if len(self.seeds) == 1:
            z = torch.randn(self.shape, generator=g.manual_seed(_mix(self.seeds[0], level, index)))
        else:
            rows = [torch.randn(self.shape[1:], generator=g.manual_seed(_mix(s, level, index))) for s in self.seeds]
            z = torch.stack(rows)
        z = z.to(device=self.device, dtype=torch.float64 if self.dtype == torch.float64 else torch.float32)
        self._cache[key] = z
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return z

    def _w(self, u: float) -> torch.Tensor:
        """W(u) for u in [0, 1]."""
        u = min(max(u, 0.0), 1.0)
        left, right = 0.0, 1.0
        w_left, w_right = torch.zeros_like(self._normal(0, 1)), self._normal(0, 1)
        index = 0  # of the current interval at this level
        for level in range(1, self.depth + 1):
            mid = 0.5 * (left + right)
            w_mid = 0.5 * (w_left + w_right) + math.sqrt((right - left) / 4) * self._normal(level, 2 * index + 1)
            if u < mid:
                right, w_right, index = mid, w_mid, 2 * index
            else:
                left, w_left, index = mid, w_mid, 2 * index + 1
        frac = (u - left) / (right - left)
        return w_left + frac * (w_right - w_left)

    def __call__(self, lam_from: float, lam_to: float) -> torch.Tensor:
        """(W(lam_to) - W(lam_from)) / sqrt(|lam_to - lam_from|) in normalised time; ends clamped to the range."""
        lam_from = min(max(lam_from, self.lam_min), self.lam_max)
        lam_to = min(max(lam_to, self.lam_min), self.lam_max)
        span = self.lam_max - self.lam_min
        ua, ub = (lam_from - self.lam_min) / span, (lam_to - self.lam_min) / span
        if ua == ub:
            raise ValueError("BrownianNoise: zero-length interval")
        dw = (self._w(ub) - self._w(ua)) / math.sqrt(abs(ub - ua))
        return (dw if ub > ua else -dw).to(self.dtype)


def brownian_for(
    x: torch.Tensor, schedule, generator: torch.Generator | Sequence[torch.Generator] | None
) -> BrownianNoise:
    """A BrownianNoise covering the schedule's whole lambda range, seeded from ``generator`` (one draw each).

    At zero terminal SNR the range starts at ``ZERO_SNR_LAMBDA`` instead of -inf: a step from
    lambda = -inf draws the path's increment from there.
    """
    lam_lo = max(float(schedule.lambda_(schedule.t_max)), ZERO_SNR_LAMBDA)
    lam_hi = float(schedule.lambda_(schedule.t_min))
    if generator is None:
        gens: list[torch.Generator | None] = [None]
    elif isinstance(generator, torch.Generator):
        gens = [generator]
    else:
        gens = list(generator)
    seeds = [int(torch.randint(0, 2**62, (1,), generator=g, device=g.device if g else "cpu")) for g in gens]
    return BrownianNoise(tuple(x.shape), lam_lo, lam_hi, seeds, x.device, torch.float32)
