"""zju-pi/diff-sampler's multistep solvers, ported to run on a diffkit eps-model (a reference for the tests).

Source: github.com/zju-pi/diff-sampler (the GITS / AMED authors' solver collection),
``diff-solvers-main/solvers.py`` (``ipndm_sampler``, ``ipndm_v_sampler``,
``deis_sampler``, ``dpm_pp_sampler``) and ``diff-solvers-main/solver_utils.py``
(``get_deis_coeff_list``, ``edm2t``, ``multistep_dpm_solver_third_update``). This is
our own code following those functions step by step, in their variables: EDM's
variance-exploding state x_k = x / alpha, time t = sigma_k = exp(-lambda), the
denoiser D(x_k, sigma_k) = x0 and its direction d = (x_k - D) / t = eps.

On diffkit's visited timesteps t_0 > ... > t_{N-1} the loop runs over
sigma_k(t_0), ..., sigma_k(t_{N-1}) and ends with diff-sampler's
``denoise_to_zero`` (x0 = D at the last one), which is diffkit's final step; the
result is that x0, comparable with a diffkit sampler's output.

One departure, for exactness: diff-sampler integrates the DEIS tAB coefficients
with a left Riemann sum of 10,000 points (relative error ~1e-4, so the weights
of a step do not even sum to its sigma_k increment); here they come from adaptive
quadrature (scipy ``quad``) of the same integrand. AFS (analytical first step) is
off by default, as in diff-sampler; ``afs=True`` turns it on (the first direction
d = x_k / sqrt(1 + sigma_k^2) without a model call, as its solvers.py writes it).
Its ``dpm_pp_sampler`` and ``unipc_sampler`` apply ``dynamic_thresholding_fn`` to every
data prediction whatever the flags (clamp to [-1, 1], or rescale by the 99.5% quantile of |x0| when that exceeds 1),
which assumes pixel data; the port of ``dpm_pp`` leaves it out.

The peers at diff-sampler's own settings (``run_diff_sampler_own``): its time grids
(``solver_utils.get_schedule``: ``edm_schedule``) between sigma_min = sigma_k(t_min)
and sigma_max = sigma_k(t_max) (as its ``CFGPrecond`` sets them for a discrete VP
model), the grid each solver is run with in ``diff-solvers-main/launch.sh``
(``OWN_GRIDS``), and its NFE convention: ``num_steps`` = NFE + 1 timestamps, the
sample being the state at sigma_min (``denoise_to_zero`` False, its default), or
NFE timestamps and a final denoising call (``denoise_to_zero`` True).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from diffkit.bench.peers.kdiffusion import kdiffusion_denoiser, vp_to_k
from diffkit.samplers.model_calls import EpsModel
from diffkit.schedules import Schedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _ipndm_fixed(i: int, t: Sequence[float], order: int) -> list[float]:
    """``ipndm_sampler``: Adams-Bashforth weights for equal steps, times the step (eps newest first)."""
    table = {1: [1.0], 2: [3 / 2, -1 / 2], 3: [23 / 12, -16 / 12, 5 / 12], 4: [55 / 24, -59 / 24, 37 / 24, -9 / 24]}
    return [(t[i + 1] - t[i]) * c for c in table[order]]


def _ipndm_variable(i: int, t: Sequence[float], order: int) -> list[float]:
    """``ipndm_v_sampler``: its closed-form variable-step coefficients, times the step."""
    h = t[i + 1] - t[i]
    if order == 1:
        return [h]
    h1 = t[i] - t[i - 1]
    if order == 2:
        return [h * (2 + h / h1) / 2, -h * (h / h1) / 2]
    h2 = t[i - 1] - t[i - 2]
    temp1 = (1 - h / (3 * (h + h1)) * (h * (h + h1)) / (h1 * (h1 + h2))) / 2
    if order == 3:
        c = [(2 + h / h1) / 2 + temp1, -(h / h1) / 2 - (1 + h1 / h2) * temp1, temp1 * h1 / h2]
        return [h * ci for ci in c]
    h3 = t[i - 2] - t[i - 3]
    temp2 = (((1 - h / (3 * (h + h1))) / 2 + (1 - h / (2 * (h + h1))) * h / (6 * (h + h1 + h2)))
             * (h * (h + h1) * (h + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3)))
    g = h1 * (h1 + h2) / (h2 * (h2 + h3))
    c = [(2 + h / h1) / 2 + temp1 + temp2,
         -(h / h1) / 2 - (1 + h1 / h2) * temp1 - (1 + h1 / h2 + g) * temp2,
         temp1 * h1 / h2 + (h1 / h2 + g * (1 + h2 / h3)) * temp2,
         -temp2 * g * h1 / h2]
    return [h * ci for ci in c]


# ``edm2t``: the VP-SDE (linear beta) through sigma(eps_s) = sigma_min and sigma(1) = sigma_max, EDM's defaults.
def _vp_beta(eps_s: float = 1e-3, sigma_min: float = 0.002, sigma_max: float = 80.0) -> tuple[float, float]:
    beta_d = 2 * (np.log(sigma_min**2 + 1) / eps_s - np.log(sigma_max**2 + 1)) / (eps_s - 1)
    return float(np.log(sigma_max**2 + 1) - 0.5 * beta_d), float(beta_d)  # (beta_min, beta_d)


def _deis_tab(i: int, t: Sequence[float], order: int) -> list[float]:
    """``get_deis_coeff_list(deis_mode="tab")``: integral of the Lagrange basis in tau against dsigma(tau)."""
    from scipy.integrate import quad

    if order == 1:
        return [t[i + 1] - t[i]]
    beta_min, beta_d = _vp_beta()
    tau = [(math.sqrt(beta_min**2 + 2 * beta_d * math.log(s**2 + 1)) - beta_min) / beta_d for s in t]
    nodes = [tau[i - k] for k in range(order)]

    def dsigma(u: float) -> float:  # d sigma / d tau, diff-sampler's ``cal_intergrand``
        e = 0.5 * beta_d * u * u + beta_min * u
        return (beta_d * u + beta_min) * math.exp(e) / (2 * math.sqrt(math.expm1(e)))

    def basis(j: int, u: float) -> float:
        return math.prod((u - nodes[k]) / (nodes[j] - nodes[k]) for k in range(order) if k != j)

    return [quad(lambda u, j=j: dsigma(u) * basis(j, u), tau[i], tau[i + 1], epsabs=0, epsrel=1e-13, limit=200)[0]
            for j in range(order)]


_COEFFICIENTS = {"ipndm": _ipndm_fixed, "ipndm_v": _ipndm_variable, "deis": _deis_tab}


def adams_sampler(name: str, denoise: Denoiser, x_k: torch.Tensor, t: Sequence[float], order: int, *,
                  denoise_to_zero: bool = True, trajectory: list | None = None, afs: bool = False) -> torch.Tensor:
    """diff-sampler's ipndm / ipndm_v / deis loop: x_k <- x_k + sum_j c_j d_j with warm-up order min(order, i + 1).

    Returns D(x_k, t[-1]) (``denoise_to_zero``) or the state at t[-1]. ``trajectory``, if given,
    receives (states, directions): the M states at t and the M - 1 directions d (``return_inters``,
    ``return_eps``). ``afs``: its analytical first step, d = x_k / sqrt(1 + t_0^2) without a call.
    """
    d_hist: list[torch.Tensor] = []  # newest first
    states, directions = [x_k], []
    ones = x_k.new_ones(x_k.shape[0])
    for i in range(len(t) - 1):
        if afs and i == 0:
            d = x_k / math.sqrt(1 + t[0] ** 2)
        else:
            d = (x_k - denoise(x_k, t[i] * ones)) / t[i]
        d_hist = [d, *d_hist][:order]
        coeffs = _COEFFICIENTS[name](i, t, len(d_hist))
        x_k = x_k + sum(c * dj for c, dj in zip(coeffs, d_hist))
        if trajectory is not None:
            states.append(x_k)
            directions.append(d)
    if trajectory is not None:
        trajectory[:] = [states, directions]
    return denoise(x_k, t[-1] * ones) if denoise_to_zero else x_k


def dpm_pp_sampler(denoise: Denoiser, x_k: torch.Tensor, t: Sequence[float], order: int = 3, *,
                   afs: bool = False) -> torch.Tensor:
    """``dpm_pp_sampler`` with lower_order_final over ``t`` (ending at 0: the last step is the data prediction);
    ``afs``: its analytical first step, D = x_k - t_0 x_k / sqrt(1 + t_0^2) without a call."""
    ones = x_k.new_ones(x_k.shape[0])
    lam = [-math.log(s) if s > 0 else math.inf for s in t]
    models: list[torch.Tensor] = []  # oldest first, as diff-sampler's buffer
    for i in range(len(t) - 1):
        if afs and i == 0:
            models.append(x_k - t[0] * x_k / math.sqrt(1 + t[0] ** 2))
        else:
            models.append(denoise(x_k, t[i] * ones))
        step_order = i + 1 if i + 1 < order else min(order, len(t) - (i + 1))
        h = lam[i + 1] - lam[i]
        phi_1 = math.expm1(-h)
        x_new = (t[i + 1] / t[i]) * x_k - phi_1 * models[-1]
        if step_order >= 2:
            r0 = (lam[i] - lam[i - 1]) / h
            D1_0 = (models[-1] - models[-2]) / r0
        if step_order == 2:
            x_new = x_new - 0.5 * phi_1 * D1_0
        elif step_order == 3:
            r1 = (lam[i - 1] - lam[i - 2]) / h
            D1_1 = (models[-2] - models[-3]) / r1
            D1 = D1_0 + r0 / (r0 + r1) * (D1_0 - D1_1)
            D2 = (D1_0 - D1_1) / (r0 + r1)
            phi_2 = phi_1 / h + 1.0
            x_new = x_new + phi_2 * D1 - (phi_2 / h - 0.5) * D2
        x_k, models = x_new, models[-3:]
    return x_k


def edm_schedule(kind: str, num_steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> list[float]:
    """``solver_utils.get_schedule``: ``num_steps`` sigma_k from sigma_max to sigma_min (float64).

    polynomial: Karras' rho schedule; logsnr: uniform in lambda = -log sigma_k; time_uniform: the
    VP-SDE through sigma(eps_s) = sigma_min, sigma(1) = sigma_max, its time t from 1 to eps_s = 1e-3
    spaced as (1 + i / (N - 1) (eps_s^(1/rho) - 1))^rho.
    """
    i = np.arange(num_steps) / (num_steps - 1)
    if kind == "polynomial":
        return list((sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho)
    if kind == "logsnr":
        return list(np.exp(-np.linspace(-math.log(sigma_max), -math.log(sigma_min), num_steps)))
    if kind == "time_uniform":
        beta_min, beta_d = _vp_beta(1e-3, sigma_min, sigma_max)
        t = (1 + i * (1e-3 ** (1 / rho) - 1)) ** rho
        return list(np.sqrt(np.expm1(0.5 * beta_d * t**2 + beta_min * t)))
    raise ValueError(f"unknown diff-sampler schedule {kind!r}; allowed: polynomial, logsnr, time_uniform")


# The grid each solver is run with in diff-solvers-main/launch.sh (CIFAR-10, EDM), and its max_order there.
OWN_GRIDS: dict[str, tuple[str, float, int]] = {
    "ipndm": ("polynomial", 7.0, 4),
    "ipndm_v": ("polynomial", 7.0, 4),
    "deis": ("time_uniform", 2.0, 4),  # launch.sh: "DEIS-tAB3" with --max_order=4
    "dpm_pp": ("logsnr", 7.0, 3),
}


def run_diff_sampler_own(name: str, eps_model: EpsModel, schedule: Schedule, nfe: int, x: torch.Tensor, *,
                         order: int | None = None, denoise_to_zero: bool = False, afs: bool = False) -> torch.Tensor:
    """diff-sampler's solver ``name`` on its own grid (``OWN_GRIDS``) with ``nfe`` model calls, from the VP x_T ``x``.

    Returns the state x_k = x / alpha at sigma_min, or with ``denoise_to_zero`` the data
    prediction there (module docstring). ``order`` defaults to launch.sh's max_order. ``afs``: its
    analytical first step, which saves the first call, so the grid has one timestamp more.
    """
    kind, rho, own_order = OWN_GRIDS[name]
    sigma_k = schedule.sigma_k(np.array([schedule.t_min, schedule.t_max], dtype=np.float64))
    points = (nfe if denoise_to_zero else nfe + 1) + int(afs)
    t = edm_schedule(kind, points, float(sigma_k[0]), float(sigma_k[1]), rho)
    denoise = kdiffusion_denoiser(eps_model, schedule)
    x_k = vp_to_k(x, schedule, schedule.t_max)
    if name == "dpm_pp":  # its last step to sigma = 0 is the denoising call
        return dpm_pp_sampler(denoise, x_k, [*t, 0.0] if denoise_to_zero else t, order or own_order, afs=afs)
    return adams_sampler(name, denoise, x_k, t, order or own_order, denoise_to_zero=denoise_to_zero, afs=afs)


def run_diff_sampler(name: str, eps_model: EpsModel, schedule: Schedule, timesteps: Sequence[float],
                     x: torch.Tensor, *, order: int, afs: bool = False) -> torch.Tensor:
    """diff-sampler's solver ``name`` (ipndm, ipndm_v, deis, dpm_pp) from the VP state ``x`` at ``timesteps[0]``."""
    denoise = kdiffusion_denoiser(eps_model, schedule)
    t = [float(s) for s in schedule.sigma_k(np.asarray(timesteps, dtype=np.float64))]
    x_k = vp_to_k(x, schedule, float(timesteps[0]))
    if name == "dpm_pp":
        return dpm_pp_sampler(denoise, x_k, [*t, 0.0], order, afs=afs)
    if name not in _COEFFICIENTS:
        raise ValueError(f"no diff-sampler peer {name!r}; available: {', '.join([*_COEFFICIENTS, 'dpm_pp'])}")
    return adams_sampler(name, denoise, x_k, t, order, afs=afs)
