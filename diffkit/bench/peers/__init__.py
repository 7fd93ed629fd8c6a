"""Reference implementations ("peers") of diffkit's samplers, run on a diffkit eps-model and schedule.

Shared by the reference tests (``tests/test_reference_*.py``, ``tests/test_seed_compat.py``)
and the benchmarks (``diffkit.bench.peer_runs``, ``diffkit.bench.overhead``). Three families:

    diffusers    diffusers' scheduler loops, run as a pipeline runs them (``run_diffusers``,
                 ``DIFFUSERS_PEERS``, ``diffusers_scheduler``, float64 tables for exact comparisons)
    diff_sampler zju-pi/diff-sampler's multistep solvers (iPNDM, DEIS tAB, DPM-Solver++ 3M) ported to
                 diffkit models (``run_diff_sampler``); needs only scipy
    kdiffusion   k-diffusion's sampling functions (``run_kdiffusion``, ``KDIFFUSION_PEERS``), the
                 denoiser and sigmas they expect, and the noise-sampler conventions of both sides

Neither library is imported until a peer runs: importing this package needs neither.
They come with the ``bench`` extra, k-diffusion separately and without its dependencies::

    pip install -e ".[bench]" && pip install --no-deps k-diffusion==0.1.1.post1
"""

from diffkit.bench.peers.diff_sampler import run_diff_sampler
from diffkit.bench.peers.diffusers import (
    DIFFUSERS_PEERS,
    diffusers_beta_config,
    diffusers_ddim,
    diffusers_ddpm,
    diffusers_deis,
    diffusers_dpmpp_2m,
    diffusers_dpmpp_2m_sde,
    diffusers_dpmpp_3m,
    diffusers_dpmpp_3m_heun,
    diffusers_dpmpp_sde,
    diffusers_euler,
    diffusers_euler_ancestral,
    diffusers_scheduler,
    diffusers_timesteps,
    diffusers_unipc,
    quiet_torchsde,
    run_diffusers,
    use_float64_tables,
)
from diffkit.bench.peers.kdiffusion import (
    KDIFFUSION_PEERS,
    k_diffusion_sampling_path,
    kdiffusion_denoiser,
    kdiffusion_sigmas,
    lambda_noise_to_sigma_noise,
    load_k_diffusion_sampling,
    run_kdiffusion,
    sigma_noise_to_lambda_noise,
    vp_to_k,
)

__all__ = [
    "DIFFUSERS_PEERS",
    "KDIFFUSION_PEERS",
    "diffusers_beta_config",
    "diffusers_ddim",
    "diffusers_ddpm",
    "diffusers_deis",
    "diffusers_dpmpp_2m",
    "diffusers_dpmpp_2m_sde",
    "diffusers_dpmpp_3m",
    "diffusers_dpmpp_3m_heun",
    "diffusers_dpmpp_sde",
    "diffusers_euler",
    "diffusers_euler_ancestral",
    "diffusers_scheduler",
    "diffusers_timesteps",
    "diffusers_unipc",
    "k_diffusion_sampling_path",
    "kdiffusion_denoiser",
    "kdiffusion_sigmas",
    "lambda_noise_to_sigma_noise",
    "load_k_diffusion_sampling",
    "quiet_torchsde",
    "run_diff_sampler",
    "run_diffusers",
    "run_kdiffusion",
    "sigma_noise_to_lambda_noise",
    "use_float64_tables",
    "vp_to_k",
]
