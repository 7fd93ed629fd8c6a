"""k-diffusion's sampling functions standing in for diffkit's samplers, and the conversions between the two.

k-diffusion works in the variance-exploding variables x_k = x / alpha and
sigma_k = sigma / alpha = exp(-lambda). ``load_k_diffusion_sampling()`` loads its
``sampling.py`` without importing the ``k_diffusion`` package (whose ``__init__``
needs torchvision and scikit-image); ``kdiffusion_denoiser(eps_model, schedule)`` is
the denoiser D(x_k, sigma_k) those functions expect, and ``kdiffusion_sigmas(schedule, ts)``
maps diffkit timesteps to k-diffusion's sigma array. Noise samplers convert between
the two conventions with :func:`lambda_noise_to_sigma_noise` and
:func:`sigma_noise_to_lambda_noise` (lambda = -log sigma_k).

k-diffusion is found on first use; without it (or without torchsde, which its
``sampling.py`` imports) these functions raise ImportError saying how to install them.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from diffkit.conversions import prediction_coefficients
from diffkit.samplers.model_calls import EpsModel
from diffkit.samplers.run import NoiseSampler
from diffkit.schedules import Schedule

SigmaNoiseSampler = Callable[[Any, Any], torch.Tensor]  # k-diffusion's noise(sigma, sigma_next)
BENCH_EXTRA = 'pip install -e ".[bench]"'  # diffusers and torchsde, for both families of peers
# k-diffusion's own dependencies include torchvision, which has no CPU build: it goes in without them.
INSTALL = f"{BENCH_EXTRA} && pip install --no-deps k-diffusion==0.1.1.post1"


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
        raise NotImplementedError("torchdiffeq is not installed (stubbed by diffkit.bench.peers)")

    stub.odeint = odeint
    return stub


@functools.cache
def load_k_diffusion_sampling() -> types.ModuleType:
    """k-diffusion's ``sampling`` module, loaded from its file under a private package name.

    Its imports that are unavailable here are stubbed: ``torchdiffeq`` (only the
    adaptive ODE sampler needs it; the stub is visible only while the file loads)
    and ``k_diffusion.utils`` (of which sampling.py uses only ``append_dims``).
    torchsde, scipy and tqdm are the real packages. Raises ImportError, saying how to
    install them, when k-diffusion or one of those is missing.
    """
    path = k_diffusion_sampling_path()
    if path is None:
        raise ImportError(f"k_diffusion is not installed (no sampling.py found): {INSTALL}")
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
    spec = importlib.util.spec_from_file_location(f"{_KD_PACKAGE}.sampling", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as err:  # torchsde, scipy or tqdm
        del sys.modules[spec.name]
        raise ImportError(f"k-diffusion's sampling.py needs {err.name or err}, which is not installed: {INSTALL}") \
            from err
    finally:
        if stubbed_torchdiffeq:
            del sys.modules["torchdiffeq"]
    package.sampling = module
    return module


def kdiffusion_denoiser(eps_model: EpsModel, schedule: Schedule) -> Callable[..., torch.Tensor]:
    """A k-diffusion denoiser D(x_k, sigma_k) around a diffkit model (k-diffusion's DiscreteEpsDDPMDenoiser).

    x_k = x / alpha is the VE state and sigma_k = sigma / alpha, per sample [B]. The
    model is called on the schedule's state x = x_k * alpha(t) at t = schedule.t_from_sigma_k(sigma_k)
    (for the discrete schedules log sigma_k is linear between integer t, the same rule as
    k-diffusion's ``sigma_to_t``), and D = x_k - sigma_k * eps for an eps-model, or the x0
    of :func:`diffkit.conversions.prediction_coefficients` for the other prediction types.
    Variance-preserving schedules take alpha = 1 / sqrt(sigma_k^2 + 1) (one tensor op, as
    k-diffusion's wrappers, which keeps the benchmarks' peer overhead as it was); the other
    families ask the schedule (``schedule.alpha(t)``, ~70 us more per call on a CPU).
    """
    kind = getattr(eps_model, "prediction_type", "epsilon")
    probe = np.linspace(schedule.t_min, schedule.t_max, 5)
    variance_preserving = bool(np.allclose(schedule.alpha(probe) ** 2 + schedule.sigma(probe) ** 2, 1.0, rtol=0,
                                           atol=1e-12))

    def denoiser(x_k: torch.Tensor, sigma_k: torch.Tensor, **cond: Any) -> torch.Tensor:
        t = schedule.t_from_sigma_k(sigma_k.to(torch.float64))
        t_dtype = torch.float64 if x_k.dtype == torch.float64 else torch.float32
        sigma = _append_dims(sigma_k.to(x_k.dtype), x_k.ndim)
        alpha = (sigma * sigma + 1).rsqrt() if variance_preserving else \
            _append_dims(schedule.alpha(t).to(x_k.dtype), x_k.ndim)
        x = x_k * alpha
        out = eps_model(x, t.to(t_dtype), **cond).to(x_k.dtype)
        if kind == "epsilon":
            return x_k - sigma * out
        a, b, _, _ = prediction_coefficients(kind, alpha, sigma * alpha)  # elementwise on tensors
        return a * x + b * out

    return denoiser


def kdiffusion_sigmas(schedule: Schedule, timesteps: Sequence[float] | np.ndarray, *,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """k-diffusion's sigma array for diffkit's visited ``timesteps``: sigma_k(t_i), then 0 (the final step)."""
    sigma_k = torch.as_tensor(schedule.sigma_k(np.asarray(timesteps, dtype=np.float64)), dtype=torch.float64)
    return torch.cat([sigma_k, sigma_k.new_zeros(1)]).to(dtype)


def vp_to_k(x: torch.Tensor, schedule: Schedule, t: float) -> torch.Tensor:
    """The VE state x_k = x / alpha_t that k-diffusion samplers start from."""
    return x / float(schedule.alpha(float(t)))


def lambda_noise_to_sigma_noise(noise_sampler: NoiseSampler) -> SigmaNoiseSampler:
    """diffkit's ``noise(lam_from, lam_to)`` as k-diffusion's ``noise(sigma, sigma_next)`` (lambda = -log sigma_k)."""

    def wrapped(sigma, sigma_next) -> torch.Tensor:
        return noise_sampler(-math.log(float(sigma)), -math.log(float(sigma_next)))

    return wrapped


def sigma_noise_to_lambda_noise(noise_sampler: SigmaNoiseSampler) -> NoiseSampler:
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
    "euler": "sample_euler",
    "euler_ancestral": "sample_euler_ancestral",
    "heun": "sample_heun",
    "dpmpp_2s_ancestral": "sample_dpmpp_2s_ancestral",
    "dpmpp_3m_sde": "sample_dpmpp_3m_sde",
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
