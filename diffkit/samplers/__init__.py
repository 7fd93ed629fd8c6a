"""Interchangeable samplers over one eps-model interface, registered by name.

A sampler is a pure function that owns its loop, with one signature for all:

    sample_<name>(eps_model, x, schedule, timesteps, *, generator=None, callback=None, cond=None, **options) -> x0

Adding a sampler is one file, a registry entry and its tests:

1. ``diffkit/samplers/<name>.py``: the update equation, the paper (equation or
   algorithm number) and its equivalences in the docstring; the loop written as
   that math over a :class:`~diffkit.samplers.run.SamplerRun`::

       run = SamplerRun("<name>", eps_model, x, schedule, timesteps, generator=generator,
                        callback=callback, cond=cond)
       for step in run.steps:                  # step.at / step.to: Points (t, alpha, sigma, lam); step.h
           p = run.predict(x, step)            # p.x, p.eps, p.x0: LinCombs (lazy linear combinations)
           if step.final:                      # to the data, sigma = 0: a named special case
               x = p.x0
               continue
           x = (step.to.sigma / step.at.sigma) * p.x + ...   # the formula, in plain arithmetic
       return run.finish(x)

   Multistep history is local variables (any number of earlier ``p.x0`` / ``p.eps``);
   noise comes from ``run.randn()`` (seed compatible) or ``run.noise(noise_sampler, ...)``.
   A deterministic sampler offers the analytical first step by taking ``afs: bool = False``
   and passing ``afs=afs`` to ``SamplerRun`` (its first ``predict`` then makes no model call).
   Nothing else is needed: the run evaluates each new state in one pass (a fused
   kernel on GPUs), reuses buffers nobody holds, shows the callback every visited
   state, and checks the model's output.
2. ``registry.py``: one ``_info(...)`` entry (options with defaults, default spacing,
   stochastic or not, model calls per step).
3. Tests: reference agreement (diffusers / k-diffusion) where the math is the same,
   each docstring equivalence, the empirical order against the exact ODE
   (``tests/test_samplers.py``), and bad options.

Timesteps: ``diffkit.sample`` visits ``steps`` of a spacing (:mod:`diffkit.schedules.spacing`) or an
explicit grid (``timesteps=``); :mod:`diffkit.samplers.optimize` fits a grid to a model and a
sampler (``optimize_timesteps``), for any registered deterministic sampler.
"""

from diffkit.samplers.api import sample
from diffkit.samplers.brownian import BrownianNoise
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
from diffkit.samplers.optimize import GridFit, fit_timesteps, optimize_timesteps
from diffkit.samplers.registry import SAMPLERS, SamplerInfo, get_sampler
from diffkit.samplers.timetable import Grid
from diffkit.samplers.unipc import sample_unipc

__all__ = [
    "SAMPLERS",
    "BrownianNoise",
    "Grid",
    "GridFit",
    "SamplerInfo",
    "fit_timesteps",
    "get_sampler",
    "optimize_timesteps",
    "sample",
    "sample_ddim",
    "sample_ddpm",
    "sample_deis",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_2s_ancestral",
    "sample_dpmpp_3m",
    "sample_dpmpp_3m_sde",
    "sample_dpmpp_sde",
    "sample_euler",
    "sample_euler_ancestral",
    "sample_heun",
    "sample_ipndm",
    "sample_unipc",
]
