"""Inpainting: sample the unknown region given the known one, by replacement and RePaint's resampling.

The replacement method (Song et al. 2021, sec. 5 / app. I.2; Lugmayr et al. 2022, eq. 8) merges,
at every step, the known pixels re-noised to the step's level into the state:

    x_t <- m * (alpha_t x_known + sigma_t z) + (1 - m) * x_t,     z ~ N(0, I) fresh each time

Here it is a model wrapper, :class:`ReplaceKnown`: the model sees the merged state, the sampler
keeps its own. That gives every sampler the replacement method's unknown region exactly, because
every sampler's update is a per-pixel linear combination, with scalar coefficients, of states and
model outputs: the unknown pixels of the sampler's state are the merged state's, the model's output
is the one it gives on the merged state, so by induction over steps (multistep histories and
intermediate stages included) the unknown pixels evolve as under the explicit merge, and the
known pixels of the sampler's state are never read by anything but themselves (tested: perturbing
them changes nothing in the unknown region; an explicit merge loop gives the same result for the
single-step samplers). The known region is overwritten with ``x_known`` at the end. Multi-stage
samplers (heun, dpmpp_sde) re-noise at every model call, intermediate stages included.

RePaint (Lugmayr et al. 2022, Algorithm 1 and sec. 4.3's jumps): the grid is cut into segments of
``jump`` steps; each segment that ends above the data is denoised ``resample`` times, and between
repetitions the state is noised forward again from the segment's end b to its start a with the
forward process q(x_a | x_b):

    x_a = (alpha_a / alpha_b) x_b + sigma_a sqrt(1 - exp(2 (lambda_a - lambda_b))) z

Each segment is a fresh sampler call (a :class:`~diffkit.samplers.Grid` partial run): multistep
histories restart at every segment, so with ``jump`` = 1 a multistep sampler takes first-order
steps throughout (dpmpp_2m becomes DDIM); larger jumps keep the history within a segment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from diffkit.editing.runs import SamplerFn, check_image, resolve, spacing_for
from diffkit.samplers.model_calls import EpsModel
from diffkit.samplers.noise import GeneratorArg, randn
from diffkit.samplers.run import state_dtype
from diffkit.samplers.timetable import Grid
from diffkit.schedules.base import Schedule
from diffkit.schedules.spacing import timesteps


def check_mask(mask: object, x_known: torch.Tensor) -> torch.Tensor:
    """``mask`` as a bool tensor broadcastable to ``x_known``, or ValueError saying what is allowed."""
    allowed = (f"the mask must be a tensor of 0s and 1s (1 = keep x_known there) whose shape broadcasts to "
               f"x_known's {tuple(x_known.shape)} (e.g. [B, 1, H, W] or [1, 1, H, W] for images)")
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{allowed}; got {type(mask).__name__}")
    try:
        shape = torch.broadcast_shapes(mask.shape, x_known.shape)
    except RuntimeError:
        shape = None
    if shape != x_known.shape:
        raise ValueError(f"{allowed}; got shape {tuple(mask.shape)}")
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{allowed}; got values other than 0 and 1")
    return (mask != 0).to(x_known.device)


class ReplaceKnown:
    """``model`` seeing x with its known pixels replaced by x_known re-noised to t (module docstring).

    z is drawn from ``generator`` at every call (seed compatible, shaped like x). The model's
    ``prediction_type`` passes through.
    """

    def __init__(self, model: EpsModel, schedule: Schedule, x_known: torch.Tensor, mask: torch.Tensor,
                 generator: GeneratorArg = None) -> None:
        self.model, self.schedule, self.generator = model, schedule, generator
        self.x_known, self.mask = x_known, check_mask(mask, x_known)
        self.prediction_type = getattr(model, "prediction_type", "epsilon")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        z = randn(x.shape, self.generator, x.device, x.dtype)
        known = self.schedule.add_noise(self.x_known.to(x.dtype), z, t)
        return self.model(torch.where(self.mask, known, x), t, **cond)


def renoise(schedule: Schedule, x: torch.Tensor, t_from: float, t_to: float, generator: GeneratorArg) -> torch.Tensor:
    """A draw of q(x_{t_to} | x_{t_from}) for t_to > t_from: the forward process between two times."""
    a_from, a_to = float(schedule.alpha(t_from)), float(schedule.alpha(t_to))
    lam_from, lam_to = float(schedule.lambda_(t_from)), float(schedule.lambda_(t_to))
    std = float(schedule.sigma(t_to)) * math.sqrt(-math.expm1(2.0 * (lam_to - lam_from)))
    return (a_to / a_from) * x + std * randn(x.shape, generator, x.device, x.dtype)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def inpaint(
    eps_model: EpsModel,
    schedule: Schedule,
    x_known: torch.Tensor,
    mask: torch.Tensor,
    sampler: str | SamplerFn = "dpmpp_2m",
    steps: int = 20,
    resample: int = 1,
    generator: GeneratorArg = None,
    *,
    jump: int = 1,
    spacing: str | None = None,
    cond: Mapping[str, Any] | None = None,
    **options: Any,
) -> torch.Tensor:
    """Samples equal to ``x_known`` where ``mask`` is 1 and drawn given it elsewhere (module docstring).

    ``mask`` holds 0s and 1s and broadcasts to ``x_known``'s shape. x_T is the generator's
    first draw; then the sampler's ``steps`` steps (its spacing, as ``diffkit.sample``), with
    :class:`ReplaceKnown` around the model. ``resample`` > 1 adds RePaint's resampling: each
    segment of ``jump`` steps above the data is denoised ``resample`` times (``resample`` = 1:
    one plain sampler call over the whole grid). The known region of the result is ``x_known``
    exactly.
    """
    fn, sampler_spacing = resolve(sampler, options)
    x_known = check_image("x_known", x_known)
    resample, jump = _positive_int("resample", resample), _positive_int("jump", jump)
    model = ReplaceKnown(eps_model, schedule, x_known, mask, generator)
    ts = timesteps(schedule, steps, spacing_for(schedule, spacing, sampler_spacing))
    x = randn(x_known.shape, generator, x_known.device, state_dtype(x_known))
    if resample == 1:
        x = fn(model, x, schedule, ts, generator=generator, cond=cond, **options)
    else:
        for start in range(0, len(ts), jump):
            segment, end = ts[start : start + jump], (ts[start + jump] if start + jump < len(ts) else None)
            for repeat in range(resample if end is not None else 1):
                if repeat > 0:  # jump back: noise the segment's end up to its start again (end is set)
                    x = renoise(schedule, x, end, segment[0], generator)  # type: ignore[arg-type]
                grid = Grid(segment, end=end)  # type: ignore[arg-type]  # Grid takes any 1-D array of times
                x = fn(model, x, schedule, grid, generator=generator, cond=cond, **options)
    return torch.where(model.mask, x_known.to(x.dtype), x)
