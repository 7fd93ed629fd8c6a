"""Noise schedules (immutable float64 value objects, one contract: :mod:`diffkit.schedules.base`) and timestep spacings."""

from diffkit.schedules.base import Schedule
from diffkit.schedules.discrete import Cosine, DiscreteVP, Linear, ScaledLinear
from diffkit.schedules.spacing import SPACINGS, karras_sigmas, spacings, timesteps

__all__ = ["Cosine", "DiscreteVP", "Linear", "SPACINGS", "Schedule", "ScaledLinear", "karras_sigmas", "spacings",
           "timesteps"]
