"""iPNDM on GITS's time steps, with GITS's own defaults: a port of zju-pi/diff-sampler's ``gits-main``.

Chen et al. 2024, "On the Trajectory Regularity of ODE-based Diffusion Sampling" (ICML). Sources,
followed step by step in their own (EDM) variables -- x_k = x / alpha, time t = sigma_k -- in our own
code: ``gits-main/gits_utils.py`` (``get_dp_list``, ``dp``, ``cal_deviation``), ``gits-main/solvers.py``
(``ipndm_sampler``, ``get_schedule``) and the flags of ``gits-main/launch.sh`` for iPNDM on CIFAR-10
(``--solver=ipndm --max_order=4 --schedule_type=polynomial --schedule_rho=7 --dp=True --metric=dev
--coeff=1.15 --num_steps_tea=61``), with ``sample.py``'s defaults for the rest (``--solver_tea=ipndm``,
``--num_warmup=256``, ``--afs=False``, ``--denoise_to_zero=False``):

1. Teacher: iPNDM (max_order 4) over 61 sigma_k of Karras' polynomial schedule (rho 7) from
   sigma_max to sigma_min, from 256 warm-up noises; its states x_i and directions d_i = (x_i - D_i) / t_i.
2. Cost of jumping from candidate i to j by one Euler step, x' = x_i + (t_j - t_i) d_i, with the
   ``dev`` metric: mean over the batch of the distance of x' from the chord x_0 -> x_{M-1} of the
   teacher's own trajectory, minus the teacher's mean distance at j (signed, as in the source).
3. Dynamic programme (``dp``): V[i, 1] = cost[i, M-1]; V[j, k] = min_{j<i<M-1} cost[j, i] + coeff V[i, k-1];
   the path from 0 with K = NFE jumps, ending at M-1 (sigma_min).
4. The student: iPNDM (max_order 4) on those K + 1 timestamps; its sample is the state at sigma_min
   (NFE = K: no final denoising call).

This shares only the model with diffkit (through the k-diffusion denoiser adapter); none of
``diffkit.samplers.optimize``. sigma_min = sigma_k(t_min) and sigma_max = sigma_k(t_max), as
diff-sampler's ``CFGPrecond`` sets them for a discrete VP model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from diffkit.bench.peers.diff_sampler import adams_sampler, edm_schedule
from diffkit.bench.peers.kdiffusion import kdiffusion_denoiser, vp_to_k
from diffkit.samplers.model_calls import EpsModel
from diffkit.schedules import Schedule

NUM_STEPS_TEA = 61  # launch.sh --num_steps_tea
COEFF = 1.15  # --coeff
NUM_WARMUP = 256  # --num_warmup (sample.py default)
MAX_ORDER = 4  # --max_order (launch.sh, iPNDM)
RHO = 7.0  # --schedule_rho, polynomial


@dataclass(frozen=True)
class GitsGrid:
    """The grid GITS selects: sigma_k from sigma_max to sigma_min, and what choosing it cost."""

    sigma_k: list[float]  # K + 1 timestamps
    indices: list[int]  # their positions in the teacher's 61
    model_calls: int  # per warm-up sample (the teacher: 60)
    seconds: float


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).to(torch.float64)


def deviation(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """``cal_deviation``: per sample, the distance of each of ``points`` [P, B, D] from the line start -> end [B, D]."""
    chord = end - start
    unit = chord / chord.norm(dim=-1, keepdim=True)
    ac = end - points
    return (ac - (ac * unit).sum(-1, keepdim=True) * unit).norm(dim=-1)  # [P, B]


def cost_matrix(t: list[float], states: list[torch.Tensor], directions: list[torch.Tensor]) -> np.ndarray:
    """GITS's ``dev`` cost matrix [M, M] (zero where j <= i), from one batch of teacher trajectories."""
    M = len(t)
    x = torch.stack([_flat(s) for s in states])  # [M, B, D]
    start, end = x[0], x[-1]
    dev_tea = torch.cat([deviation(x[1:-1], start, end).mean(dim=1), x.new_zeros(1)])  # point j at j - 1
    cost = np.zeros((M, M))
    for i in range(M - 1):
        jumps = x[i][None] + (torch.tensor(t[i + 1:], dtype=torch.float64) - t[i]).view(-1, 1, 1) * _flat(directions[i])
        dev_stu = deviation(jumps, start, end).mean(dim=1)  # [M - 1 - i]
        cost[i, i + 1:] = (dev_stu - dev_tea[i:]).numpy()
    return cost


def dp(cost: np.ndarray, nfe: int, coeff: float = COEFF) -> list[int]:
    """``dp``: the K = ``nfe`` jumps from teacher point 0 to M - 1 minimising the weighted sum of costs."""
    M = cost.shape[0]
    V = np.full((M, nfe + 1), np.inf)
    V[:, 1] = cost[:, -1]
    for k in range(2, nfe + 1):
        for j in range(M - 1):
            V[j, k] = min((cost[j, i] + coeff * V[i, k - 1] for i in range(j + 1, M - 1)), default=np.inf)
    path = [0]
    for k in range(nfe, 1, -1):  # the first i reaching the minimum, as the source's scan
        w = path[-1]
        path.append(next(i for i in range(w + 1, M - 1) if V[w, k] == cost[w, i] + coeff * V[i, k - 1]))
    return path + [M - 1]


def gits_grid(eps_model: EpsModel, schedule: Schedule, nfe: int, warmup: torch.Tensor,
              cond: dict | None = None) -> GitsGrid:
    """GITS's coarse grid for ``nfe`` steps, from the VP warm-up noise ``warmup`` [num_warmup, ...] (GITS: 256)."""
    start = time.perf_counter()
    sigma = schedule.sigma_k(np.array([schedule.t_min, schedule.t_max], dtype=np.float64))
    t = edm_schedule("polynomial", NUM_STEPS_TEA, float(sigma[0]), float(sigma[1]), RHO)
    denoiser = kdiffusion_denoiser(eps_model, schedule)
    trajectory: list = []
    with torch.inference_mode():
        adams_sampler("ipndm", lambda x, s: denoiser(x, s, **(cond or {})), vp_to_k(warmup, schedule, schedule.t_max),
                      t, MAX_ORDER, denoise_to_zero=False, trajectory=trajectory)
    path = dp(cost_matrix(t, *trajectory), nfe)
    return GitsGrid([t[i] for i in path], path, NUM_STEPS_TEA - 1, time.perf_counter() - start)


def run_gits_ipndm(eps_model: EpsModel, schedule: Schedule, grid: GitsGrid, x: torch.Tensor,
                   cond: dict | None = None) -> torch.Tensor:
    """iPNDM (max_order 4) over ``grid`` from the VP x_T ``x``: the state x_k at sigma_min (NFE = len(grid) - 1)."""
    denoiser = kdiffusion_denoiser(eps_model, schedule)
    return adams_sampler("ipndm", lambda x_k, s: denoiser(x_k, s, **(cond or {})),
                         vp_to_k(x, schedule, schedule.t_max), grid.sigma_k, MAX_ORDER, denoise_to_zero=False)
