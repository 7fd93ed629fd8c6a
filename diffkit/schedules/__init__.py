"""Noise schedules (immutable float64 value objects, one contract: :mod:`diffkit.schedules.base`) and timestep spacings.

Families: the discrete VP schedules (``Linear``, ``Cosine``, ``ScaledLinear``, optionally with zero
terminal SNR), flow matching (``FlowMatch``), EDM / variance exploding (``EDM``) and the continuous
VP SDE (``ContinuousVP``).
"""

from diffkit.schedules.base import Schedule
from diffkit.schedules.continuous import ContinuousVP
from diffkit.schedules.discrete import Cosine, DiscreteVP, Linear, ScaledLinear
from diffkit.schedules.edm import EDM
from diffkit.schedules.flow import FlowMatch, flux_mu
from diffkit.schedules.spacing import SPACINGS, default_spacing, karras_sigmas, spacings, timesteps

__all__ = ["EDM", "ContinuousVP", "Cosine", "DiscreteVP", "FlowMatch", "Linear", "SPACINGS", "Schedule",
           "ScaledLinear", "default_spacing", "flux_mu", "karras_sigmas", "spacings", "timesteps"]
