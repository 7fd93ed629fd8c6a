"""Reference implementations ("peers") of diffkit's samplers, run on a diffkit eps-model and schedule.

Shared by the reference tests (``tests/test_reference_*.py``, ``tests/test_seed_compat.py``)
and the benchmarks. Two families:

diffusers scheduler loops
    ``DIFFUSERS_PEERS[name](eps_model, schedule, steps, x, generator=..., spacing=..., **options)``
    runs the diffusers scheduler equivalent of diffkit sampler ``name`` exactly as a
    diffusers pipeline loop does::

        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            eps = model(scheduler.scale_model_input(x, t), t)
            x = scheduler.step(eps, t, x, generator=generator).prev_sample

    and returns the final sample. ``diffusers_scheduler(name, schedule, ...)`` builds
    the scheduler alone and ``diffusers_timesteps(...)`` gives the timesteps at which
    its loop calls the model. Names: the five diffkit samplers (ddpm, ddim, dpmpp_2m,
    dpmpp_2m_sde, dpmpp_sde) plus ``unipc`` and ``euler`` as extra references.

    The model receives the scheduler's timestep as a float tensor [B] (float64 when
    x is float64). Schedulers that work in sigma space (DPMSolverSDE, Euler) hold
    the variance-exploding state x_k = x / alpha; their ``scale_model_input`` maps it
    back to the VP state x, so the eps-model sees the same (x, t) as in the VP
    schedulers. One departure from pipelines, for exactness: a pipeline starts
    those schedulers from ``x_T * init_noise_sigma`` (= sigma_max), whereas the VP
    state x_T corresponds to x_T * sqrt(sigma_max^2 + 1); we use the latter.

k-diffusion
    ``load_k_diffusion_sampling()`` loads k-diffusion's ``sampling.py`` without
    importing the ``k_diffusion`` package (whose ``__init__`` needs torchvision and
    scikit-image); ``kdiffusion_denoiser(eps_model, schedule)`` is the denoiser
    D(x_k, sigma_k) those functions expect, and ``kdiffusion_sigmas(schedule, ts)``
    maps diffkit timesteps to k-diffusion's sigma array. Noise samplers convert
    between the two conventions with :func:`lambda_noise_to_sigma_noise` and
    :func:`sigma_noise_to_lambda_noise` (lambda = -log sigma_k).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffkit.schedules import Cosine, Linear, Schedule, ScaledLinear

EpsModel = Callable[..., torch.Tensor]
NoiseSampler = Callable[[Any, Any], torch.Tensor]
Generator = torch.Generator | Sequence[torch.Generator] | None

# -- diffusers ---------------------------------------------------------------------------


def diffusers_beta_config(schedule: Schedule) -> dict[str, Any]:
    """The diffusers scheduler arguments that rebuild ``schedule``'s betas.

    The three standard schedules map onto ``beta_schedule``; diffusers' cosine
    hard-codes s = 0.008 and max_beta = 0.999, so any other schedule is passed as
    ``trained_betas`` (rounded to float32 by diffusers, like every table it builds).
    """
    T = schedule.num_train_timesteps
    if type(schedule) is Linear:
        return dict(num_train_timesteps=T, beta_schedule="linear", beta_start=schedule.beta_start,
                    beta_end=schedule.beta_end)
    if type(schedule) is ScaledLinear:
        return dict(num_train_timesteps=T, beta_schedule="scaled_linear", beta_start=schedule.beta_start,
                    beta_end=schedule.beta_end)
    if type(schedule) is Cosine and schedule.s == 0.008 and schedule.max_beta == 0.999:
        return dict(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2")
    return dict(num_train_timesteps=T, trained_betas=np.asarray(schedule.betas).tolist())


@dataclass(frozen=True)
class _Peer:
    """How one diffusers scheduler stands in for a diffkit sampler."""

    scheduler: str  # class name in diffusers
    fixed: Mapping[str, Any]  # constructor arguments that make it this sampler
    spacings: tuple[str, ...]  # diffkit spacings it can reproduce ("karras" = use_karras_sigmas)
    default_spacing: str  # the scheduler's own default
    takes_generator: bool  # whether its step() draws from a generator
    sigma_space: bool  # whether its state is x_k = x / alpha (VE) instead of x (VP)


_DISCRETE = ("leading", "trailing", "linspace")
_SIGMA = _DISCRETE + ("karras",)
_PEERS: dict[str, _Peer] = {
    "ddpm": _Peer("DDPMScheduler", {"clip_sample": False}, _DISCRETE, "leading", True, False),
    "ddim": _Peer("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": True}, _DISCRETE, "leading",
                  True, False),
    "dpmpp_2m": _Peer("DPMSolverMultistepScheduler",
                      {"algorithm_type": "dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero",
                       "lower_order_final": True}, _SIGMA, "linspace", True, False),
    "dpmpp_2m_sde": _Peer("DPMSolverMultistepScheduler",
                          {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "final_sigmas_type": "zero",
                           "lower_order_final": True}, _SIGMA, "linspace", True, False),
    "dpmpp_sde": _Peer("DPMSolverSDEScheduler", {}, _SIGMA, "linspace", False, True),
    "unipc": _Peer("UniPCMultistepScheduler", {"final_sigmas_type": "zero"}, _SIGMA, "linspace", False, False),
    "euler": _Peer("EulerDiscreteScheduler", {"final_sigmas_type": "zero"}, _SIGMA, "linspace", True, True),
}
# Per-sampler options and the scheduler arguments they become.
_OPTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "ddpm": lambda variance="fixed_small": {"variance_type": variance},
    "ddim": lambda eta=0.0: {},  # eta is a step() argument, handled in the loop
    "dpmpp_2m": lambda: {},
    "dpmpp_2m_sde": lambda: {},
    "dpmpp_sde": lambda noise_sampler_seed=None: {"noise_sampler_seed": noise_sampler_seed},
    "unipc": lambda solver_order=2: {"solver_order": solver_order},
    "euler": lambda: {},
}


def _peer(name: str) -> _Peer:
    if name not in _PEERS:
        raise ValueError(f"no diffusers peer {name!r}; available: {', '.join(_PEERS)}")
    return _PEERS[name]


def diffusers_scheduler(name: str, schedule: Schedule, *, spacing: str | None = None, **options: Any):
    """A fresh diffusers scheduler equivalent to diffkit sampler ``name`` on ``schedule``.

    ``spacing`` is a diffkit spacing name (leading/trailing/linspace, or karras for the
    sigma-based schedulers, which sets ``use_karras_sigmas``); None keeps the
    scheduler's default. Options: ddpm ``variance`` (fixed_small|fixed_large),
    dpmpp_sde ``noise_sampler_seed``, unipc ``solver_order``.
    """
    import diffusers

    peer = _peer(name)
    spacing = peer.default_spacing if spacing is None else spacing
    if spacing not in peer.spacings:
        raise ValueError(f"diffusers peer {name!r} supports spacings {', '.join(peer.spacings)}, got {spacing!r}")
    try:
        extra = _OPTIONS[name](**{k: v for k, v in options.items() if not (name == "ddim" and k == "eta")})
    except TypeError as err:
        raise ValueError(f"diffusers peer {name!r}: bad options {sorted(options)} ({err})") from None
    kwargs = dict(diffusers_beta_config(schedule), **peer.fixed, **extra)
    if spacing == "karras":
        kwargs["use_karras_sigmas"] = True
    else:
        kwargs["timestep_spacing"] = spacing
    return getattr(diffusers, peer.scheduler)(**kwargs)


def diffusers_timesteps(name: str, schedule: Schedule, steps: int, *, spacing: str | None = None,
                        **options: Any) -> np.ndarray:
    """The timesteps (float64) at which the diffusers loop of ``name`` calls the model, in order.

    For dpmpp_sde these interleave the midpoint timesteps (2 steps - 1 calls).
    """
    scheduler = diffusers_scheduler(name, schedule, spacing=spacing, **options)
    scheduler.set_timesteps(steps)
    return scheduler.timesteps.to(torch.float64).numpy()


def run_diffusers(
    name: str,
    eps_model: EpsModel,
    schedule: Schedule,
    steps: int,
    x: torch.Tensor,
    *,
    generator: Generator = None,
    spacing: str | None = None,
    cond: Mapping[str, Any] | None = None,
    noise_sampler: NoiseSampler | None = None,
    scheduler: Any = None,
    exact_tables: bool = False,
    **options: Any,
) -> torch.Tensor:
    """Run diffusers' scheduler loop for sampler ``name`` from the VP state ``x`` (= x_T); returns the sample.

    ``noise_sampler`` (dpmpp_sde only) replaces the scheduler's torchsde Brownian tree:
    a k-diffusion-style callable ``(sigma, sigma_next) -> noise``. ``scheduler``
    reuses an already built scheduler (benchmarks); it must match ``name``.
    ``exact_tables`` swaps diffusers' float32 tables for float64 ones from ``schedule``
    (see :func:`use_float64_tables`), so that a float64 comparison measures the
    algorithm rather than diffusers' table rounding.
    """
    peer = _peer(name)
    eta = float(options.pop("eta", 0.0)) if name == "ddim" else None
    if scheduler is None:
        scheduler = diffusers_scheduler(name, schedule, spacing=spacing, **options)
    if exact_tables:
        use_float64_tables(scheduler, schedule)
    scheduler.set_timesteps(steps, device=x.device)
    if exact_tables:
        _float64_sigmas(scheduler, schedule)
    if noise_sampler is not None:
        if name != "dpmpp_sde":
            raise ValueError("noise_sampler is only used by the dpmpp_sde peer")
        scheduler.noise_sampler = noise_sampler  # the step() builds its own only when this is None
    step_kwargs: dict[str, Any] = {}
    if peer.takes_generator:
        step_kwargs["generator"] = generator
    if eta is not None:
        step_kwargs["eta"] = eta
    cond = dict(cond or {})
    batch = x.shape[0]
    t_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if peer.sigma_space:
        x = x * math.sqrt(float(scheduler.sigmas[0]) ** 2 + 1.0)  # x_k = x / alpha, see the module docstring
    else:
        x = x * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, t)
        eps = eps_model(model_input, t.to(t_dtype).expand(batch), **cond)
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
    return x


_TABLE_SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler")


def use_float64_tables(scheduler: Any, schedule: Schedule) -> None:
    """Replace a scheduler's float32 coefficient tables by float64 ones computed by ``schedule``.

    diffusers builds betas and abar in float32; at the noisy end of a schedule the
    data prediction x0 = x / alpha - sigma_k eps amplifies their rounding by
    sigma_k (about 2e4 at t = T-1 of the cosine schedule), which swamps any
    algorithmic difference. Only for the schedulers at integer timesteps
    (DDPM, DDIM, DPMSolverMultistep, UniPC); call before ``set_timesteps``.
    """
    if type(scheduler).__name__ not in _TABLE_SCHEDULERS:
        raise ValueError(f"float64 tables are supported for {', '.join(_TABLE_SCHEDULERS)}, "
                         f"not {type(scheduler).__name__}")
    abar = torch.from_numpy(np.array(schedule.alphas_cumprod))
    scheduler.betas = torch.from_numpy(np.array(schedule.betas))
    scheduler.alphas = 1.0 - scheduler.betas
    scheduler.alphas_cumprod = abar
    if hasattr(scheduler, "lambda_t"):  # the DPM-Solver family keeps alpha, sigma, lambda tables too
        scheduler.alpha_t = abar.sqrt()
        scheduler.sigma_t = (1.0 - abar).sqrt()
        scheduler.lambda_t = scheduler.alpha_t.log() - scheduler.sigma_t.log()
    if hasattr(scheduler, "one"):
        scheduler.one = torch.tensor(1.0, dtype=torch.float64)
    if hasattr(scheduler, "final_alpha_cumprod"):
        scheduler.final_alpha_cumprod = scheduler.final_alpha_cumprod.to(torch.float64)


def _float64_sigmas(scheduler: Any, schedule: Schedule) -> None:
    """After ``set_timesteps``: the sigma_k at the visited (integer) timesteps in float64, the final sigma kept."""
    if not hasattr(scheduler, "sigmas") or type(scheduler).__name__ in ("DDPMScheduler", "DDIMScheduler"):
        return
    if getattr(scheduler.config, "use_karras_sigmas", False):
        raise ValueError("exact_tables needs sigmas at the visited timesteps; karras sigmas are not")
    sigmas = scheduler.sigmas.to(torch.float64)
    ts = scheduler.timesteps.to(torch.float64).numpy()
    sigmas[: len(ts)] = torch.as_tensor(schedule.sigma_k(ts), dtype=torch.float64)
    scheduler.sigmas = sigmas


def _make_peer_fn(name: str) -> Callable[..., torch.Tensor]:
    def run(eps_model, schedule, steps, x, *, generator=None, spacing=None, cond=None, **options):
        return run_diffusers(name, eps_model, schedule, steps, x, generator=generator, spacing=spacing,
                             cond=cond, **options)

    run.__name__ = f"diffusers_{name}"
    run.__doc__ = f"diffusers' {_PEERS[name].scheduler} loop standing in for ``{name}`` (see run_diffusers)."
    return run


diffusers_ddpm = _make_peer_fn("ddpm")
diffusers_ddim = _make_peer_fn("ddim")
diffusers_dpmpp_2m = _make_peer_fn("dpmpp_2m")
diffusers_dpmpp_2m_sde = _make_peer_fn("dpmpp_2m_sde")
diffusers_dpmpp_sde = _make_peer_fn("dpmpp_sde")
diffusers_unipc = _make_peer_fn("unipc")
diffusers_euler = _make_peer_fn("euler")

DIFFUSERS_PEERS: Mapping[str, Callable[..., torch.Tensor]] = types.MappingProxyType({
    "ddpm": diffusers_ddpm,
    "ddim": diffusers_ddim,
    "dpmpp_2m": diffusers_dpmpp_2m,
    "dpmpp_2m_sde": diffusers_dpmpp_2m_sde,
    "dpmpp_sde": diffusers_dpmpp_sde,
    "unipc": diffusers_unipc,
    "euler": diffusers_euler,
})

# -- k-diffusion -----------------------------------------------------------------------

_KD_PACKAGE = "_diffkit_peers_k_diffusion"  # private name: the real ``k_diffusion`` stays unimported


def k_diffusion_sampling_path() -> str | None:
    """Path of k-diffusion's ``sampling.py``, found without importing the package; None if not installed."""
    try:
        spec = importlib.util.find_spec("k_diffusion")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "sampling.py")
        if os.path.isfile(path):
            return path
    return None


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """k_diffusion.utils.append_dims: trailing singleton dimensions up to ``target_dims``."""
    dims_to_append = target_dims - x.ndim
    if dims_to_append < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * dims_to_append]


def _torchdiffeq_stub() -> types.ModuleType:
    stub = types.ModuleType("torchdiffeq")

    def odeint(*args, **kwargs):
        raise NotImplementedError("torchdiffeq is not installed (stubbed by benchmarks.peers)")

    stub.odeint = odeint
    return stub


@functools.cache
def load_k_diffusion_sampling() -> types.ModuleType:
    """k-diffusion's ``sampling`` module, loaded from its file under a private package name.

    Its imports that are unavailable here are stubbed: ``torchdiffeq`` (only the
    adaptive ODE sampler needs it; the stub is visible only while the file loads)
    and ``k_diffusion.utils`` (of which sampling.py uses only ``append_dims``).
    torchsde, scipy and tqdm are the real packages. Raises ImportError when
    k-diffusion is not installed.
    """
    path = k_diffusion_sampling_path()
    if path is None:
        raise ImportError("k_diffusion is not installed (no sampling.py found)")
    package = types.ModuleType(_KD_PACKAGE)
    package.__path__ = []  # a package, so that ``from . import utils`` resolves inside it
    utils = types.ModuleType(f"{_KD_PACKAGE}.utils")
    utils.append_dims = _append_dims
    package.utils = utils
    sys.modules[_KD_PACKAGE] = package
    sys.modules[f"{_KD_PACKAGE}.utils"] = utils
    stubbed_torchdiffeq = importlib.util.find_spec("torchdiffeq") is None
    if stubbed_torchdiffeq:
        sys.modules["torchdiffeq"] = _torchdiffeq_stub()
    try:
        spec = importlib.util.spec_from_file_location(f"{_KD_PACKAGE}.sampling", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        if stubbed_torchdiffeq:
            del sys.modules["torchdiffeq"]
    package.sampling = module
    return module


def kdiffusion_denoiser(eps_model: EpsModel, schedule: Schedule) -> Callable[..., torch.Tensor]:
    """A k-diffusion denoiser D(x_k, sigma_k) around a diffkit eps-model (k-diffusion's DiscreteEpsDDPMDenoiser).

    x_k = x / alpha is the VE state and sigma_k = sigma / alpha, per sample [B]. The
    model is called on the VP state x = x_k * alpha, alpha = 1 / sqrt(sigma_k^2 + 1),
    at t = schedule.t_from_sigma_k(sigma_k) (log sigma_k linear between integer t, the
    same rule as k-diffusion's ``sigma_to_t``), and D = x_k - sigma_k * eps.
    """

    def denoiser(x_k: torch.Tensor, sigma_k: torch.Tensor, **cond: Any) -> torch.Tensor:
        t = schedule.t_from_sigma_k(sigma_k.to(torch.float64))
        t_dtype = torch.float64 if x_k.dtype == torch.float64 else torch.float32
        sigma = _append_dims(sigma_k.to(x_k.dtype), x_k.ndim)
        eps = eps_model(x_k * (sigma * sigma + 1).rsqrt(), t.to(t_dtype), **cond)
        return x_k - sigma * eps.to(x_k.dtype)

    return denoiser


def kdiffusion_sigmas(schedule: Schedule, timesteps: Sequence[float] | np.ndarray, *,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """k-diffusion's sigma array for diffkit's visited ``timesteps``: sigma_k(t_i), then 0 (the final step)."""
    sigma_k = torch.as_tensor(schedule.sigma_k(np.asarray(timesteps, dtype=np.float64)), dtype=torch.float64)
    return torch.cat([sigma_k, sigma_k.new_zeros(1)]).to(dtype)


def vp_to_k(x: torch.Tensor, schedule: Schedule, t: float) -> torch.Tensor:
    """The VE state x_k = x / alpha_t that k-diffusion samplers start from."""
    return x / float(schedule.alpha(float(t)))


def lambda_noise_to_sigma_noise(noise_sampler: Callable[[float, float], torch.Tensor]) -> NoiseSampler:
    """diffkit's ``noise(lam_from, lam_to)`` as k-diffusion's ``noise(sigma, sigma_next)`` (lambda = -log sigma_k)."""

    def wrapped(sigma, sigma_next) -> torch.Tensor:
        return noise_sampler(-math.log(float(sigma)), -math.log(float(sigma_next)))

    return wrapped


def sigma_noise_to_lambda_noise(noise_sampler: NoiseSampler) -> Callable[[float, float], torch.Tensor]:
    """Wrap k-diffusion's ``noise(sigma, sigma_next)`` as diffkit's ``noise(lam_from, lam_to)``."""

    def wrapped(lam_from: float, lam_to: float) -> torch.Tensor:
        return noise_sampler(torch.tensor(math.exp(-lam_from), dtype=torch.float64),
                             torch.tensor(math.exp(-lam_to), dtype=torch.float64))

    return wrapped


# diffkit sampler name -> k-diffusion sampling function name, where the math is the same.
KDIFFUSION_PEERS: Mapping[str, str] = types.MappingProxyType({
    "dpmpp_2m": "sample_dpmpp_2m",
    "dpmpp_2m_sde": "sample_dpmpp_2m_sde",
    "dpmpp_sde": "sample_dpmpp_sde",
})


def run_kdiffusion(
    name: str,
    eps_model: EpsModel,
    schedule: Schedule,
    timesteps: Sequence[float] | np.ndarray,
    x: torch.Tensor,
    *,
    cond: Mapping[str, Any] | None = None,
    denoiser: Callable[..., torch.Tensor] | None = None,
    sigmas: torch.Tensor | None = None,
    **options: Any,
) -> torch.Tensor:
    """k-diffusion's sampler for diffkit sampler ``name`` from the VP state ``x`` at ``timesteps[0]``.

    Visits the same timesteps (as sigmas, then 0) and returns the sample (x_k = x at
    sigma = 0). ``options`` go to the k-diffusion function (eta, noise_sampler, r,
    ...); ``denoiser``/``sigmas`` may be prebuilt (benchmarks).
    """
    if name not in KDIFFUSION_PEERS:
        raise ValueError(f"no k-diffusion peer {name!r}; available: {', '.join(KDIFFUSION_PEERS)}")
    fn = getattr(load_k_diffusion_sampling(), KDIFFUSION_PEERS[name])
    denoiser = kdiffusion_denoiser(eps_model, schedule) if denoiser is None else denoiser
    sigmas = kdiffusion_sigmas(schedule, timesteps, dtype=x.dtype) if sigmas is None else sigmas
    x_k = vp_to_k(x, schedule, float(timesteps[0]))
    return fn(denoiser, x_k, sigmas, extra_args=dict(cond or {}), disable=True, **options)
