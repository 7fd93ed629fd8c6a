"""Noise schedules (immutable float64 value objects) and timestep spacings."""

from diffkit.schedules.base import Schedule
from diffkit.schedules.discrete import Cosine, Linear, ScaledLinear
from diffkit.schedules.spacing import SPACINGS, karras_sigmas, timesteps

__all__ = ["Cosine", "Linear", "SPACINGS", "Schedule", "ScaledLinear", "karras_sigmas", "timesteps"]
