"""Refinement: coordinate descent on the student's global error against the teacher's sample.

LD3 (Tong et al. 2025, "Learning to Discretize Denoising Diffusion ODEs", ICLR) fits the
timesteps by minimising the distance between the student's sample and the teacher's, from
the same noise, by backpropagating through the solver. diffkit's samplers compute their
coefficients as host floats (no autograd through the timesteps, and no model gradients
needed), so the same objective is minimised without derivatives:

    E(t_1..t_{N-1}) = mean_b || sampler(x_T^b; t_max, t_1, ..., t_{N-1}) - x_end^b ||

by a compass search on one timestep at a time. t_0 (t_max) stays. Each other t_k moves by
+-step_k in the coordinate u (the candidates' index, interpolated: the Karras sigma_k^(1/7)
ramp, so a step means much the same anywhere on the path), staying strictly between its
neighbours (t_{N-1} may reach t_min); a move is kept only if E drops, and then its direction
is tried first next time; step_k starts at half the room to the nearer neighbour and halves
whenever neither move helps. The sweeps over k repeat until the budget of evaluations is
spent or every step is below ``MIN_GAP``. Each evaluation is one run of the real sampler on
the calibration batch, so whatever the sampler (multistep history, several stages) the
objective is exactly what sampling will do. E never increases.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MIN_GAP = 1e-3  # least distance in u between neighbouring timesteps (u spans the M - 1 candidate intervals)


class Coordinates:
    """u <-> t: the fractional candidate index, piecewise linear between candidates (t decreasing in u)."""

    def __init__(self, candidates: np.ndarray) -> None:
        self.t = candidates
        self.top = float(len(candidates) - 1)

    def to_t(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, np.arange(len(self.t)), self.t)

    def to_u(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self.t[::-1], np.arange(len(self.t))[::-1].astype(np.float64))


def pattern_search(
    objective: Callable[[np.ndarray], float],  # E(grid) for a strictly decreasing grid
    coords: Coordinates,
    grid: np.ndarray,  # the start, t_0 = t_max
    start_value: float,  # E(grid)
    max_evals: int,  # objective evaluations allowed
) -> tuple[np.ndarray, float, int]:
    """(grid, E(grid), evaluations) after the search of the module docstring."""
    n = len(grid)
    u = coords.to_u(grid)
    step = np.zeros(n)
    for k in range(1, n):  # half the room to the nearer neighbour (t_{N-1} at t_min: to its upper one)
        room = [r for r in (u[k] - u[k - 1], (u[k + 1] if k + 1 < n else coords.top) - u[k]) if r > MIN_GAP]
        step[k] = 0.5 * min(room) if room else 0.0
    sign = np.ones(n)
    best, evals = start_value, 0
    while evals < max_evals and np.any(step[1:] > MIN_GAP):
        for k in range(1, n):
            if step[k] <= MIN_GAP or evals >= max_evals:
                continue
            hi = coords.top if k == n - 1 else u[k + 1] - MIN_GAP
            for move in (sign[k] * step[k], -sign[k] * step[k]):
                trial = u[k] + move
                if not u[k - 1] + MIN_GAP <= trial <= hi or evals >= max_evals:
                    continue
                candidate = u.copy()
                candidate[k] = trial
                value = objective(_grid(coords, candidate, grid[0]))
                evals += 1
                if value < best:
                    best, u, sign[k] = value, candidate, np.sign(move)
                    break
            else:
                step[k] *= 0.5
    return (_grid(coords, u, grid[0]) if best < start_value else grid), best, evals


def _grid(coords: Coordinates, u: np.ndarray, t_max: float) -> np.ndarray:
    t = coords.to_t(u)
    t[0] = t_max
    return t
