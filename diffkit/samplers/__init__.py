"""Interchangeable samplers over one eps-model interface, registered by name."""

from diffkit.samplers.api import sample
from diffkit.samplers.brownian import BrownianNoise
from diffkit.samplers.ddim import sample_ddim
from diffkit.samplers.ddpm import sample_ddpm
from diffkit.samplers.dpmpp_2m import sample_dpmpp_2m
from diffkit.samplers.dpmpp_2m_sde import sample_dpmpp_2m_sde
from diffkit.samplers.dpmpp_sde import sample_dpmpp_sde
from diffkit.samplers.registry import SAMPLERS, SamplerInfo, get_sampler

__all__ = [
    "SAMPLERS",
    "BrownianNoise",
    "SamplerInfo",
    "get_sampler",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_sde",
]
