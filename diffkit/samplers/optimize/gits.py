"""GITS: the coarse grid by dynamic programming over the teacher's candidates.

Chen et al. 2024, "On the Trajectory Regularity of ODE-based Diffusion Sampling" (ICML),
Section 4 and code zju-pi/diff-sampler ``gits-main/gits_utils.py`` (``get_dp_list``, ``dp``),
ported to diffkit's conventions. With the teacher's state x_i and predictions x0_i, eps_i at
candidate i (M candidates, t_max first) and its sample x_end, the local cost of stepping from
candidate i to a later node j is the distance between one first-order step (DDIM, Euler in
GITS's EDM coordinates) and the teacher's own state there:

    cost[i, j] = mean_b || (alpha_j x0_i + sigma_j eps_i - x_j) / c_j ||    i < j < M
    cost[i, M] = mean_b || x0_i - x_end ||                                   the final step, to the data

M being the end node, reached by diffkit's final step x = x0. ``cost`` picks c_j and the metric:

- ``"l2"`` (default): c_j = sqrt(alpha_j^2 + sigma_j^2), the scale-free (VP) coordinates, finite at
  zero terminal SNR;
- ``"gits_l2"``: c_j = alpha_j, GITS's coordinates (EDM's x = x_t / alpha_t) with its ``l2`` metric;
- ``"gits_dev"``: GITS's default ``dev`` metric in its coordinates: the difference between the
  step's and the teacher's distances from the chord x_T / alpha_T -> x_end (undefined at zero SNR).

Measured (``benchmarks/results/grids.md``): ``l2`` beats ``gits_dev`` in 34 of 40 (problem,
sampler, NFE) cells; on the Gaussian mixtures the coordinates hardly matter, but on the digits
model GITS's weigh the first steps by 1/alpha (~160 at t_max), spend 3 of 5 steps above
t = 830 and lose to Karras spacing (median error 1.64 vs 0.26 at 5 NFE with dpmpp_2m), while
``l2`` beats it (0.21).

The dynamic programme, with K = steps transitions from node 0 = t_max:

    V[i, 1] = cost[i, M]                                   one step to the end ("cost at the end")
    V[j, k] = min_{j < i < M} cost[j, i] + coeff V[i, k-1]  k = 2..K

and the grid is the argmin path from node 0; ``coeff`` = 1.15 (GITS's default) weighs the
later steps more. The student visits the path's K candidates, then steps to the data.
"""

from __future__ import annotations

import numpy as np
import torch

from diffkit.samplers.optimize.teacher import Trajectory

GITS_COEFF = 1.15  # GITS's --coeff default (gits-main/sample.py)
COSTS = ("l2", "gits_l2", "gits_dev")  # see the module docstring


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).to(torch.float64)


def _deviation(y: torch.Tensor, start: torch.Tensor, chord: torch.Tensor) -> torch.Tensor:
    """Per-sample distance of y [..., B, D] from the line through ``start`` along the unit ``chord``.

    GITS's ``cal_deviation``.
    """
    d = y - start
    return (d - (d * chord).sum(-1, keepdim=True) * chord).norm(dim=-1)


def cost_matrix(traj: Trajectory, cost: str = "l2") -> np.ndarray:
    """[M, M+1] costs (inf where j <= i): the first-order step from candidate i to j (M: the end), see above."""
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; allowed: {', '.join(COSTS)}")
    M = len(traj.t)
    scale = np.hypot(traj.alpha, traj.sigma) if cost == "l2" else traj.alpha
    if cost == "gits_dev" and not scale[0] > 0:
        raise ValueError("cost 'gits_dev' measures from the chord x_T / alpha_T, which is infinite at zero terminal "
                         "SNR; use 'l2' or 'gits_l2'")
    scale = np.where(scale > 0, scale, 1.0)  # alpha = 0 only at t_max, never a step's target
    ref = torch.stack([_flat(x) / c for x, c in zip(traj.x, scale)] + [_flat(traj.end)])  # [M+1, B, D]
    x0 = torch.stack([_flat(x) for x in traj.x0])
    eps = torch.stack([(_flat(x) - a * _flat(d)) / s for x, d, a, s in zip(traj.x, traj.x0, traj.alpha, traj.sigma)])
    a = torch.from_numpy(np.append(traj.alpha / scale, 1.0)).view(-1, 1, 1)  # a step's x0 and eps weights, scaled
    s = torch.from_numpy(np.append(traj.sigma / scale, 0.0)).view(-1, 1, 1)
    start, chord = ref[0], ref[-1] - ref[0]
    chord = chord / chord.norm(dim=-1, keepdim=True)
    costs = np.full((M, M + 1), np.inf)
    for i in range(M):
        step = a[i + 1 :] * x0[i] + s[i + 1 :] * eps[i]  # DDIM from candidate i to every later node
        if cost == "gits_dev":
            miss = _deviation(step, start, chord) - _deviation(ref[i + 1 :], start, chord)
        else:
            miss = (step - ref[i + 1 :]).norm(dim=-1)
        costs[i, i + 1 :] = miss.mean(dim=-1).numpy()
    return costs


def dp_path(cost: np.ndarray, steps: int, coeff: float = GITS_COEFF) -> list[int]:
    """Candidate indices 0 = p_0 < ... < p_{steps-1} minimising GITS's recursion (see the module docstring)."""
    M = cost.shape[0]
    if not 1 <= steps <= M:
        raise ValueError(f"need 1 <= steps <= {M} candidates, got {steps}")
    step = cost[:, :M]  # transitions between candidates (inf unless j > i)
    V = np.full((steps + 1, M), np.inf)
    choice = np.zeros((steps + 1, M), dtype=np.int64)
    V[1] = cost[:, M]
    for k in range(2, steps + 1):
        total = step + coeff * V[k - 1][None, :]  # [j, i]: first step j -> i, then k-1 more
        choice[k] = np.argmin(total, axis=1)
        V[k] = total[np.arange(M), choice[k]]
    if not np.isfinite(V[steps][0]):
        raise ValueError(f"no path of {steps} steps through {M} candidates")
    path, node = [0], 0
    for k in range(steps, 1, -1):
        node = int(choice[k][node])
        path.append(node)
    return path
