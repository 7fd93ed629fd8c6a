"""The peers of the low-NFE frontier (``diffkit.bench.frontier``), each at its own default time grid.

Every peer runs from the problem's x_T (the VP state at t_max) with a model wrapped to count
its calls: the NFE in the results is counted, never assumed. A budget of n calls runs each
peer at the most steps whose calls fit in n. The peers and the grids they use by default:

- diffusers (``diffkit.bench.peers.diffusers``): UniPCMultistepScheduler(solver_order=3) -- UniPC-3,
  DPMSolverMultistepScheduler (DPM-Solver++ 2M, a pipeline's usual default) and
  DEISMultistepScheduler(solver_order=3) at their default ``timestep_spacing="linspace"`` (with
  float64 tables: diffusers' float32 ones alone cost ~1e-3 on the cosine schedule, where sigma_k
  reaches 2e4), and the first two also with ``use_karras_sigmas=True`` (float32 tables: the
  float64 swap needs integer timesteps).
- k-diffusion (``sampling.py``): sample_dpmpp_2m, sample_lms (order 4), sample_heun (2 calls a
  step) and sample_dpmpp_3m_sde at eta = 0 (DPM-Solver++ 3M) on ``get_sigmas_karras`` (rho 7, its
  recommended grid), and sample_dpm_fast (DPM-Solver-fast, its own log-SNR steps).
- zju-pi/diff-sampler (``diffkit.bench.peers.diff_sampler``): iPNDM and iPNDM_v (max_order 4,
  polynomial rho 7), DEIS-tAB3 and tAB4 (time_uniform rho 2 in its VP-SDE time; its launch.sh
  passes max_order 4 under the name "DEIS-tAB3") and DPM-Solver++(3M) (logsnr; without the
  dynamic thresholding its port assumes pixel data for), as its launch.sh runs them, each both
  ways it ends: at sigma_min with NFE + 1 timestamps (its default) and with ``denoise_to_zero``;
  and each of those again with its analytical first step (``--afs``: one timestamp more, the
  first without a model call), which diffkit's samplers offer too (``afs=True``).
- iPNDM + GITS (``diffkit.bench.peers.gits``): GITS's own teacher, cost and dynamic programme on
  256 warm-up noises (the problem's calibration noise, never the evaluation x_T); its cost
  (seconds, model calls per warm-up sample) is reported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from diffkit.bench import peers
from diffkit.bench.latency import CountingModel
from diffkit.bench.peers import diff_sampler, gits
from diffkit.schedules import timesteps as make_timesteps


@dataclass(frozen=True)
class Peer:
    """One peer: its label, library, and ``run(model, schedule, nfe, x_T, warmup) -> (sample, extra)``."""

    label: str
    library: str
    run: Callable


def _diffusers(name: str, spacing: str | None, **options) -> Callable:
    def run(model, schedule, nfe, x, warmup):  # float64 tables where diffusers' timesteps allow them
        return peers.run_diffusers(name, model, schedule, nfe, x.clone(), spacing=spacing,
                                   exact_tables=spacing is None, **options), {}
    return run


def _kdiffusion(function: str, per_step: int = 1, **options) -> Callable:
    def run(model, schedule, nfe, x, warmup):
        fn = getattr(peers.load_k_diffusion_sampling(), function)
        steps = (nfe - 1) // per_step + 1  # calls: per_step (steps - 1) + 1
        sigmas = peers.kdiffusion_sigmas(schedule, make_timesteps(schedule, steps, "karras"), dtype=x.dtype)
        x_k = peers.vp_to_k(x, schedule, schedule.t_max)
        return fn(peers.kdiffusion_denoiser(model, schedule), x_k, sigmas, disable=True, **options), {}
    return run


def _dpm_fast(model, schedule, nfe, x, warmup):
    sigma = schedule.sigma_k(np.array([schedule.t_min, schedule.t_max], dtype=np.float64))
    x_k = peers.vp_to_k(x, schedule, schedule.t_max)
    return peers.load_k_diffusion_sampling().sample_dpm_fast(
        peers.kdiffusion_denoiser(model, schedule), x_k, float(sigma[0]), float(sigma[1]), nfe, disable=True), {}


def _diff_sampler(name: str, order: int, denoise_to_zero: bool, afs: bool = False) -> Callable:
    def run(model, schedule, nfe, x, warmup):
        return diff_sampler.run_diff_sampler_own(name, model, schedule, nfe, x, order=order,
                                                 denoise_to_zero=denoise_to_zero, afs=afs), {}
    return run


def _gits(model, schedule, nfe, x, warmup):
    counter = CountingModel(model)
    grid = gits.gits_grid(counter, schedule, nfe, warmup)
    extra = {"calibration_seconds": grid.seconds, "calibration_calls": counter.calls,  # batched: per warm-up sample
             "grid_sigma_k": grid.sigma_k, "grid_indices": grid.indices}
    return gits.run_gits_ipndm(model, schedule, grid, x), extra


def _no_noise(sigma, sigma_next):  # dpmpp_3m_sde at eta = 0 draws none; skips building a Brownian tree
    raise AssertionError("no noise at eta = 0")


PEERS: tuple[Peer, ...] = (
    Peer("UniPC-3 (linspace)", "diffusers", _diffusers("unipc", None, solver_order=3)),
    Peer("UniPC-3 (karras)", "diffusers", _diffusers("unipc", "karras", solver_order=3)),
    Peer("DPM-Solver++ 2M (linspace)", "diffusers", _diffusers("dpmpp_2m", None)),
    Peer("DPM-Solver++ 2M (karras)", "diffusers", _diffusers("dpmpp_2m", "karras")),
    Peer("DEIS logrho 3 (linspace)", "diffusers", _diffusers("deis", None, solver_order=3)),
    Peer("dpmpp_2m (karras)", "k-diffusion", _kdiffusion("sample_dpmpp_2m")),
    Peer("lms order 4 (karras)", "k-diffusion", _kdiffusion("sample_lms")),
    Peer("heun (karras)", "k-diffusion", _kdiffusion("sample_heun", per_step=2)),
    Peer("dpmpp_3m_sde eta=0 (karras)", "k-diffusion",
         _kdiffusion("sample_dpmpp_3m_sde", eta=0.0, noise_sampler=_no_noise)),
    Peer("dpm_fast (own steps)", "k-diffusion", _dpm_fast),
    *(Peer(f"{label} ({grid}{', denoise_to_zero' if dz else ''}{', AFS' if afs else ''})", "diff-sampler",
           _diff_sampler(name, order, dz, afs))
      for afs in (False, True)
      for name, order, label, grid in (("ipndm", 4, "iPNDM", "poly rho 7"), ("ipndm_v", 4, "iPNDM_v", "poly rho 7"),
                                       ("deis", 3, "DEIS-tAB3", "time_uniform rho 2"),
                                       ("deis", 4, "DEIS-tAB4", "time_uniform rho 2"),
                                       ("dpm_pp", 3, "DPM-Solver++(3M)", "logsnr"))
      for dz in (False, True)),
    Peer("iPNDM + GITS (GITS defaults)", "diff-sampler", _gits),
)


def run_peer(peer: Peer, model, schedule, nfe: int, x: torch.Tensor,
             warmup: torch.Tensor) -> tuple[torch.Tensor | None, dict]:
    """One run of ``peer`` within ``nfe`` calls: (sample, extra), extra with ``calls`` (counted) and ``seconds``.

    A peer that raises gives (None, {"failed": its error}): e.g. diffusers' UniPC with Karras sigmas
    on the cosine schedule, whose rounded timesteps repeat (``assert self.this_order > 0``).
    """
    counter = CountingModel(model)
    start = time.perf_counter()
    try:
        with torch.inference_mode(), peers.quiet_torchsde():
            x0, extra = peer.run(counter, schedule, nfe, x, warmup)
    except Exception as err:  # noqa: BLE001 -- a peer's own failure is a result, recorded as such
        return None, {"failed": f"{type(err).__name__}: {err}"[:200]}
    extra = dict(extra, seconds=time.perf_counter() - start)
    extra["calls"] = counter.calls - extra.get("calibration_calls", 0)
    if extra["calls"] > nfe:
        raise AssertionError(f"{peer.label}: {extra['calls']} model calls for a budget of {nfe}")
    return x0, extra
