"""diffusers' scheduler loops standing in for diffkit's samplers, on a diffkit eps-model and schedule.

``DIFFUSERS_PEERS[name](eps_model, schedule, steps, x, generator=..., spacing=..., **options)``
runs the diffusers scheduler equivalent of diffkit sampler ``name`` exactly as a
diffusers pipeline loop does::

    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        eps = model(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(eps, t, x, generator=generator).prev_sample

and returns the final sample. ``diffusers_scheduler(name, schedule, ...)`` builds
the scheduler alone and ``diffusers_timesteps(...)`` gives the timesteps at which
its loop calls the model. Names: the diffkit samplers ddpm, ddim, dpmpp_2m,
dpmpp_2m_sde, dpmpp_sde, dpmpp_3m (the published third-order update), dpmpp_3m_heun (k-diffusion's
3M, which dpmpp_3m_sde is at eta = 0),
unipc, ``deis`` (diffusers' log-rho DEIS, which ends at sigma_k(t=0): it returns that
state, not the data), and euler and euler_ancestral.

The model receives the scheduler's timestep as a float tensor [B] (float64 when
x is float64). Schedulers that work in sigma space (DPMSolverSDE, Euler, EulerAncestral) hold
the variance-exploding state x_k = x / alpha; their ``scale_model_input`` maps it
back to the VP state x, so the eps-model sees the same (x, t) as in the VP
schedulers. One departure from pipelines, for exactness: a pipeline starts
those schedulers from ``x_T * init_noise_sigma`` (= sigma_max), whereas the VP
state x_T corresponds to x_T * sqrt(sigma_max^2 + 1); we use the latter.

diffusers is imported on first use; without it these functions raise ImportError
naming the ``bench`` extra.
"""

from __future__ import annotations

import contextlib
import math
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diffkit.bench.peers.kdiffusion import BENCH_EXTRA, SigmaNoiseSampler
from diffkit.samplers.model_calls import EpsModel
from diffkit.schedules import Cosine, Linear, Schedule, ScaledLinear

Generator = torch.Generator | Sequence[torch.Generator] | None


def _diffusers() -> types.ModuleType:
    """The diffusers package, imported on first use."""
    try:
        import diffusers
    except ImportError as err:
        raise ImportError(f"the diffusers peers need diffusers, which is not installed: {BENCH_EXTRA}") from err
    return diffusers


@contextlib.contextmanager
def quiet_torchsde():
    """Silence one harmless warning: diffusers' DPMSolverSDE asks torchsde for a t a float32 rounding early."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Should have ta>=t0", category=UserWarning)
        yield


def diffusers_beta_config(schedule: Schedule) -> dict[str, Any]:
    """The diffusers scheduler arguments that rebuild ``schedule``'s betas.

    The three standard schedules map onto ``beta_schedule`` (plus ``rescale_betas_zero_snr``
    with zero terminal SNR); diffusers' cosine hard-codes s = 0.008 and max_beta = 0.999,
    so any other schedule is passed as ``trained_betas`` (already rescaled; rounded to
    float32 by diffusers, like every table it builds).
    """
    T = schedule.num_train_timesteps
    rescale = {"rescale_betas_zero_snr": True} if schedule.rescale_zero_terminal_snr else {}
    if type(schedule) is Linear:
        return dict(num_train_timesteps=T, beta_schedule="linear", beta_start=schedule.beta_start,
                    beta_end=schedule.beta_end, **rescale)
    if type(schedule) is ScaledLinear:
        return dict(num_train_timesteps=T, beta_schedule="scaled_linear", beta_start=schedule.beta_start,
                    beta_end=schedule.beta_end, **rescale)
    if type(schedule) is Cosine and schedule.s == 0.008 and schedule.max_beta == 0.999:
        return dict(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2", **rescale)
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


# diffkit's prediction types in diffusers' names (the others are spelled alike).
DIFFUSERS_PREDICTION_TYPES: Mapping[str, str] = types.MappingProxyType({"flow": "flow_prediction"})
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
    "dpmpp_3m": _Peer("DPMSolverMultistepScheduler",
                      {"algorithm_type": "dpmsolver++", "solver_order": 3, "final_sigmas_type": "zero",
                       "lower_order_final": True}, _SIGMA, "linspace", True, False),
    "unipc": _Peer("UniPCMultistepScheduler", {"final_sigmas_type": "zero", "predict_x0": True}, _SIGMA, "linspace",
                   False, False),
    # DEIS (log-rho) has no final_sigmas_type: its last step ends at sigma_k(t=0), not at the data.
    "deis": _Peer("DEISMultistepScheduler", {"algorithm_type": "deis", "lower_order_final": True}, _SIGMA,
                  "linspace", False, False),
    "euler": _Peer("EulerDiscreteScheduler", {"final_sigmas_type": "zero"}, _SIGMA, "linspace", True, True),
    "euler_ancestral": _Peer("EulerAncestralDiscreteScheduler", {}, _DISCRETE, "linspace", True, True),
    # The deterministic DPM-Solver++(3M) that dpmpp_3m_sde is at eta = 0 (k-diffusion's second-order
    # warm-up step is the "heun" solver_type; every step but the last to sigma = 0 at full order).
    "dpmpp_3m_heun": _Peer("DPMSolverMultistepScheduler",
                      {"algorithm_type": "dpmsolver++", "solver_order": 3, "solver_type": "heun",
                       "final_sigmas_type": "zero", "lower_order_final": False}, _SIGMA, "linspace", True, False),
}
# Per-sampler options and the scheduler arguments they become.
_OPTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "ddpm": lambda variance="fixed_small": {"variance_type": variance},
    "ddim": lambda eta=0.0: {},  # eta is a step() argument, handled in the loop
    "dpmpp_2m": lambda: {},
    "dpmpp_2m_sde": lambda: {},
    "dpmpp_sde": lambda noise_sampler_seed=None: {"noise_sampler_seed": noise_sampler_seed},
    "dpmpp_3m": lambda: {},
    "unipc": lambda solver_order=2, solver_type="bh2", disable_corrector=(): {
        "solver_order": solver_order, "solver_type": solver_type, "disable_corrector": list(disable_corrector)},
    "deis": lambda solver_order=3: {"solver_order": solver_order},
    "euler": lambda: {},
    "euler_ancestral": lambda: {},
    "dpmpp_3m_heun": lambda: {},
}


def _peer(name: str) -> _Peer:
    if name not in _PEERS:
        raise ValueError(f"no diffusers peer {name!r}; available: {', '.join(_PEERS)}")
    return _PEERS[name]


def diffusers_scheduler(name: str, schedule: Schedule, *, spacing: str | None = None,
                        prediction_type: str = "epsilon", **options: Any):
    """A fresh diffusers scheduler equivalent to diffkit sampler ``name`` on ``schedule``.

    ``spacing`` is a diffkit spacing name (leading/trailing/linspace, or karras for the
    sigma-based schedulers, which sets ``use_karras_sigmas``); None keeps the
    scheduler's default. ``prediction_type`` is the model's, in diffkit's names.
    Options: ddpm ``variance`` (fixed_small|fixed_large), dpmpp_sde ``noise_sampler_seed``,
    unipc ``solver_order``, ``solver_type`` (bh1|bh2) and ``disable_corrector`` (step indices),
    deis ``solver_order``.
    """
    peer = _peer(name)
    spacing = peer.default_spacing if spacing is None else spacing
    if spacing not in peer.spacings:
        raise ValueError(f"diffusers peer {name!r} supports spacings {', '.join(peer.spacings)}, got {spacing!r}")
    try:
        extra = _OPTIONS[name](**{k: v for k, v in options.items() if not (name == "ddim" and k == "eta")})
    except TypeError as err:
        raise ValueError(f"diffusers peer {name!r}: bad options {sorted(options)} ({err})") from None
    kwargs = dict(diffusers_beta_config(schedule), **peer.fixed, **extra)
    kwargs["prediction_type"] = DIFFUSERS_PREDICTION_TYPES.get(prediction_type, prediction_type)
    if spacing == "karras":
        kwargs["use_karras_sigmas"] = True
    else:
        kwargs["timestep_spacing"] = spacing
    return getattr(_diffusers(), peer.scheduler)(**kwargs)


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
    noise_sampler: SigmaNoiseSampler | None = None,
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
        scheduler = diffusers_scheduler(name, schedule, spacing=spacing,
                                        prediction_type=getattr(eps_model, "prediction_type", "epsilon"), **options)
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


_TABLE_SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler",
                     "DEISMultistepScheduler")


def use_float64_tables(scheduler: Any, schedule: Schedule) -> None:
    """Replace a scheduler's float32 coefficient tables by float64 ones computed by ``schedule``.

    diffusers builds betas and abar in float32; at the noisy end of a schedule the
    data prediction x0 = x / alpha - sigma_k eps amplifies their rounding by
    sigma_k (about 2e4 at t = T-1 of the cosine schedule), which swamps any
    algorithmic difference. Only for the schedulers at integer timesteps
    (DDPM, DDIM, DPMSolverMultistep, UniPC, DEISMultistep); call before ``set_timesteps``.
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
diffusers_dpmpp_3m = _make_peer_fn("dpmpp_3m")
diffusers_unipc = _make_peer_fn("unipc")
diffusers_deis = _make_peer_fn("deis")
diffusers_euler = _make_peer_fn("euler")
diffusers_euler_ancestral = _make_peer_fn("euler_ancestral")
diffusers_dpmpp_3m_heun = _make_peer_fn("dpmpp_3m_heun")

DIFFUSERS_PEERS: Mapping[str, Callable[..., torch.Tensor]] = types.MappingProxyType({
    "ddpm": diffusers_ddpm,
    "ddim": diffusers_ddim,
    "dpmpp_2m": diffusers_dpmpp_2m,
    "dpmpp_2m_sde": diffusers_dpmpp_2m_sde,
    "dpmpp_sde": diffusers_dpmpp_sde,
    "dpmpp_3m": diffusers_dpmpp_3m,
    "unipc": diffusers_unipc,
    "deis": diffusers_deis,
    "euler": diffusers_euler,
    "euler_ancestral": diffusers_euler_ancestral,
    "dpmpp_3m_heun": diffusers_dpmpp_3m_heun,
})
