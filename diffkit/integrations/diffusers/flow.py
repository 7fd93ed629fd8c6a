"""What flow-matching pipelines (SD3, Flux) pass to ``set_timesteps``, read onto a FlowMatch grid.

diffusers' flow schedulers take two arguments the VP ones do not, and DiffkitScheduler
reads them as FlowMatchEulerDiscreteScheduler does:

    mu       with use_dynamic_shifting (Flux), the grid's shift is exp(mu): FlowMatch(mu=mu);
             required then. With a static shift, ignored: FluxPipeline passes mu whatever
             the config (Flux.1-schnell's is static), and diffusers ignores it.
    sigmas   unshifted noise levels u in (0, 1], no final 0 (FluxPipeline: linspace(1, 1/N, N)),
             which the scheduler shifts: the visited timesteps are T shift(u).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from diffkit.integrations.diffusers.config import DynamicShift
from diffkit.schedules import FlowMatch, Schedule


def grid_schedule(schedule: Schedule, dynamic_shift: DynamicShift | None, mu: Any) -> Schedule:
    """The schedule whose grid ``set_timesteps(mu=mu)`` builds (module docstring); ValueError for a bad mu."""
    if mu is None:
        if dynamic_shift is not None:
            raise ValueError("the config sets use_dynamic_shifting: set_timesteps needs mu, the grid's shift exp(mu) "
                             "for this image size (pipelines compute it; scheduler.dynamic_shift.mu(image_seq_len))")
        return schedule
    if not isinstance(schedule, FlowMatch):
        raise ValueError(f"mu shifts a flow-matching grid (use_dynamic_shifting); {schedule!r} has none")
    if dynamic_shift is None:
        return schedule  # as diffusers: a static shift ignores mu
    return dataclasses.replace(schedule, mu=mu)


def timesteps_from_flow_sigmas(schedule: FlowMatch, sigmas: Any, steps: int | None) -> np.ndarray:
    """diffusers' flow sigmas (unshifted u in (0, 1]) as visited timesteps T shift(u), u = 1 pinned to T."""
    u = np.asarray(torch.as_tensor(sigmas).cpu(), dtype=np.float64)
    if u.ndim != 1 or u.size < 1 or not np.all((u > 0) & (u <= 1)):
        raise ValueError("on a flow-matching schedule sigmas are diffusers' flow sigmas: unshifted noise levels in "
                         "(0, 1] that the scheduler shifts, without a final 0 (FluxPipeline passes "
                         f"linspace(1, 1/N, N)); got {u.tolist()}")
    if steps is not None and steps != u.size:
        raise ValueError(f"num_inference_steps={steps} but {u.size} sigmas; pass one or the other")
    return np.where(u == 1.0, schedule.t_max, schedule.num_train_timesteps * schedule.shifted(u))
