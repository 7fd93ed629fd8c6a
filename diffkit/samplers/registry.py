"""The sampler registry: every sampler by name, with its options and defaults."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from diffkit.samplers.ddim import sample_ddim
from diffkit.samplers.ddpm import sample_ddpm
from diffkit.samplers.deis import sample_deis
from diffkit.samplers.dpmpp_2m import sample_dpmpp_2m
from diffkit.samplers.dpmpp_2m_sde import sample_dpmpp_2m_sde
from diffkit.samplers.dpmpp_2s_ancestral import sample_dpmpp_2s_ancestral
from diffkit.samplers.dpmpp_3m import sample_dpmpp_3m
from diffkit.samplers.dpmpp_3m_sde import sample_dpmpp_3m_sde
from diffkit.samplers.dpmpp_sde import sample_dpmpp_sde
from diffkit.samplers.euler import sample_euler
from diffkit.samplers.euler_ancestral import sample_euler_ancestral
from diffkit.samplers.heun import sample_heun
from diffkit.samplers.ipndm import sample_ipndm
from diffkit.samplers.unipc import sample_unipc


@dataclass(frozen=True)
class SamplerInfo:
    """A registered sampler: the function, its keyword options with defaults, and how it is used."""

    name: str
    fn: Callable[..., Any]
    description: str  # one line, shown by ``diffkit samplers``
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    default_spacing: str = "karras"
    stochastic: bool = False  # at the default options (ddim with eta > 0, heun with s_churn > 0 draw noise too)
    evals_per_step: int = 1  # model calls per visited timestep except the last, which always takes one

    def nfe(self, steps: int) -> int:
        """Number of model evaluations for ``steps`` visited timesteps."""
        return self.evals_per_step * (steps - 1) + 1

    def steps_for(self, calls: int, options: Mapping[str, Any] | None = None) -> int:
        """The most visited timesteps whose model calls fit in ``calls``: one more with ``afs`` in ``options``
        (the analytical first step takes no call)."""
        return (calls - 1) // self.evals_per_step + 1 + int(bool((options or {}).get("afs")))


def _info(name, fn, description, options=None, **kw) -> SamplerInfo:
    return SamplerInfo(name, fn, description, MappingProxyType(dict(options or {})), **kw)


SAMPLERS: MappingProxyType = MappingProxyType(
    {
        info.name: info
        for info in (
            _info("ddpm", sample_ddpm,
                  "DDPM ancestral sampling (Ho et al. 2020), respaced; variance fixed_small|fixed_large",
                  {"variance": "fixed_small"}, default_spacing="leading", stochastic=True),
            _info("ddim", sample_ddim, "DDIM (Song et al. 2021); eta=0 deterministic, eta=1 ancestral",
                  {"eta": 0.0}),
            _info("dpmpp_2m", sample_dpmpp_2m, "DPM-Solver++(2M) (Lu et al. 2022): 2nd-order multistep ODE solver",
                  {"afs": False}),
            _info("dpmpp_2m_sde", sample_dpmpp_2m_sde, "DPM-Solver++(2M) SDE: 2nd-order multistep SDE solver",
                  {"eta": 1.0, "noise_sampler": None}, stochastic=True),
            _info("dpmpp_sde", sample_dpmpp_sde, "DPM++ SDE: two-stage stochastic solver with Brownian-tree noise",
                  {"eta": 1.0, "r": 0.5, "noise_sampler": None}, stochastic=True, evals_per_step=2),
            _info("euler", sample_euler, "Euler in sigma_k (Karras et al. 2022, Alg. 2 without churn; = DDIM eta=0)"),
            _info("euler_ancestral", sample_euler_ancestral, "Euler ancestral: Euler to sigma_down, then noise up",
                  {"eta": 1.0, "noise_sampler": None}, stochastic=True),
            _info("heun", sample_heun, "Heun (Karras et al. 2022, Alg. 2): 2nd-order ODE solver; churn if s_churn > 0",
                  {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": math.inf, "s_noise": 1.0}, evals_per_step=2),
            _info("dpmpp_2s_ancestral", sample_dpmpp_2s_ancestral,
                  "DPM-Solver++(2S) ancestral: 2nd-order single-step solver with ancestral noise",
                  {"eta": 1.0, "noise_sampler": None}, stochastic=True, evals_per_step=2),
            _info("dpmpp_3m_sde", sample_dpmpp_3m_sde,
                  "DPM-Solver++(3M) SDE: three-step multistep SDE solver; variant exact|published (k-diffusion)",
                  {"eta": 1.0, "noise_sampler": None, "variant": "published"}, stochastic=True),
            _info("dpmpp_3m", sample_dpmpp_3m,
                  "DPM-Solver++(3M) (Lu et al. 2022): 3rd-order multistep; variant exact|published (diffusers)",
                  {"variant": "exact", "afs": False}),
            _info("unipc", sample_unipc,
                  "UniPC (Zhao et al. 2023): multistep predictor-corrector; order 1-3, variant bh1|bh2",
                  {"order": 2, "variant": "bh2", "corrector": True, "afs": False}),
            _info("ipndm", sample_ipndm,
                  "iPNDM (Zhang & Chen 2022): Adams-Bashforth on eps in sigma_k; order 1-4, variant variable|fixed, "
                  "final data|adams",
                  {"order": 4, "variant": "variable", "final": "data", "afs": False}),
            _info("deis", sample_deis,
                  "DEIS (Zhang & Chen 2022): eps extrapolated in time; order 1-3, variant tab|logrho (diffusers), "
                  "final data|adams",
                  {"order": 3, "variant": "tab", "final": "data", "afs": False}),
        )
    }
)


def get_sampler(name: str) -> SamplerInfo:
    """The registered sampler ``name``, or ValueError listing the registered names."""
    if not isinstance(name, str) or name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; registered samplers: {', '.join(SAMPLERS)}")
    return SAMPLERS[name]
