"""Peers on the same models and the same x_T: diffusers' schedulers and k-diffusion's functions.

The peer loops themselves live in ``diffkit.bench.peers`` (shared with the reference
tests); this module only runs them beside diffkit and tabulates. Without diffusers /
k-diffusion installed, the peer sections say why they were skipped.

NFE is counted by wrapping the model (``CountingModel``), never assumed.
"""

from __future__ import annotations

import time

import torch

from diffkit.bench import overhead, peers
from diffkit.bench.gmm import GmmCase, quality_row, steps_for_nfe
from diffkit.bench.latency import CountingModel
from diffkit.samplers import SAMPLERS
from diffkit.schedules import timesteps as make_timesteps
from diffkit.schedules.base import Schedule

# (impl, peer name, spacing, options, deterministic): what each peer is compared on.
# diffusers' DDIM/DDPM cannot use Karras sigmas, so they are compared at linspace/leading.
PEER_RUNS: tuple[tuple[str, str, str, dict, bool], ...] = (
    ("diffusers", "ddim", "linspace", {"eta": 0.0}, True),
    ("diffusers", "dpmpp_2m", "karras", {}, True),
    ("diffusers", "dpmpp_2m", "linspace", {}, True),
    ("diffusers", "unipc", "karras", {}, True),
    ("diffusers", "euler", "karras", {}, True),
    ("diffusers", "ddpm", "leading", {}, False),
    ("diffusers", "dpmpp_2m_sde", "karras", {}, False),
    ("diffusers", "dpmpp_sde", "karras", {}, False),
    ("k-diffusion", "dpmpp_2m", "karras", {}, True),
    ("k-diffusion", "dpmpp_2m_sde", "karras", {}, False),
    ("k-diffusion", "dpmpp_sde", "karras", {}, False),
    # the same k-diffusion function with i.i.d. randn noise instead of its torchsde Brownian tree
    ("k-diffusion+randn", "dpmpp_2m_sde", "karras", {}, False),
)


def diffusers_available() -> str:
    """'' when the diffusers peers can run here, else why not."""
    try:
        import diffusers  # noqa: F401
    except ImportError:
        return "diffusers is not installed"
    return ""


def kdiffusion_available() -> tuple[bool, str]:
    """Whether k-diffusion's sampling functions load here, and why not."""
    try:
        peers.load_k_diffusion_sampling()
    except ImportError as err:
        return False, str(err)
    return True, ""


def run_peer(impl: str, name: str, model, schedule: Schedule, steps: int, x_T: torch.Tensor,
             spacing: str, options: dict, seed: int = 0) -> tuple[torch.Tensor, int]:
    """One peer sampling run from x_T; returns (sample, model calls)."""
    counter = CountingModel(model)
    opts = dict(options)
    with torch.inference_mode(), peers.quiet_torchsde():
        if impl == "diffusers":
            if name == "dpmpp_sde":
                opts["noise_sampler_seed"] = seed + 3
            x0 = peers.run_diffusers(name, counter, schedule, steps, x_T.clone(), spacing=spacing,
                                     generator=torch.Generator().manual_seed(seed + 3), **opts)
        else:
            torch.manual_seed(seed + 3)  # k-diffusion seeds its Brownian tree from the global generator
            if impl == "k-diffusion+randn":
                g = torch.Generator().manual_seed(seed + 3)
                opts["noise_sampler"] = lambda sigma, sigma_next: torch.randn(x_T.shape, generator=g, dtype=x_T.dtype)
            ts = make_timesteps(schedule, steps, spacing)
            x0 = peers.run_kdiffusion(name, counter, schedule, ts, x_T.clone(), **opts)
    return x0, counter.calls


def peer_quality_plan(nfes, include_kdiffusion: bool, samplers) -> list[tuple]:
    """(impl, name, spacing, options, deterministic, nfe) for the peers of ``samplers``.

    unipc and euler have no diffkit counterpart; they come along with dpmpp_2m, as references.
    """
    wanted = set(samplers) | ({"unipc", "euler"} if "dpmpp_2m" in samplers else set())
    return [run + (nfe,) for run in PEER_RUNS if run[1] in wanted
            and (include_kdiffusion or not run[0].startswith("k-diffusion")) for nfe in nfes]


def peer_quality(case: GmmCase, impl: str, name: str, spacing: str, options: dict,
                 deterministic: bool, nfe: int, seed: int = 0) -> dict:
    """One GMM quality row for a peer, measured exactly like diffkit's (``gmm.quality_row``)."""
    steps = steps_for_nfe(name, nfe) if name in SAMPLERS else max(2, nfe)
    start = time.perf_counter()
    x0, calls = run_peer(impl, name, case.model, case.schedule, steps, case.x_T, spacing, options, seed)
    seconds = time.perf_counter() - start
    return quality_row(case, x0, deterministic, impl=impl, sampler=name, spacing=spacing, steps=steps, nfe=calls,
                       budget=nfe, seconds=seconds)


def peer_overhead(shape: tuple[int, ...], samplers, steps: int, repeats: int = 5, warmup: int = 1) -> list[dict]:
    """Per-step overhead of diffkit vs diffusers vs k-diffusion around a zero-cost model, as ratios.

    Delegates to ``diffkit.bench.overhead.bench`` (same noise source on every side,
    interleaved repeats; see its docstring), one row per sampler at ``shape`` [B, C, H, W].
    """
    with peers.quiet_torchsde():
        return [overhead.bench(name, tuple(shape), steps, torch.float32, repeats, warmup) for name in samplers]
