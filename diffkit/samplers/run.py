"""One sampler call: what a sampler function gets from ``SamplerRun`` so its loop reads as its math.

    run = SamplerRun("ddim", eps_model, x, schedule, timesteps, generator=generator, callback=callback, cond=cond)
    for step in run.steps:                   # Step: .at, .to (None on the final step), .h
        p = run.predict(x, step)             # Prediction: p.x, p.eps, p.x0 (LinCombs)
        x = p.x0 if step.final else ...      # the update, written as its formula
    return run.finish(x)

Everything a sampler would otherwise repeat lives here: validating the timesteps,
checked model calls (and the callback, shown every visited timestep's state and
data prediction), seed-compatible noise, evaluating LinCombs into the states'
workspace (:mod:`diffkit.samplers.workspace`), and the finiteness check at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from diffkit.samplers.lincomb import LinComb
from diffkit.samplers.model_calls import Callback, EpsModel, ModelCalls, Prediction, analytic_prediction
from diffkit.samplers.noise import GeneratorArg, check_generator, randn
from diffkit.samplers.options import check_choice
from diffkit.samplers.timetable import Grid, Point, Step, TimestepsLike, make_steps, points_at_lambda
from diffkit.samplers.workspace import Workspace
from diffkit.schedules.base import Schedule

NoiseSampler = Callable[[float, float], torch.Tensor]


def state_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 when given float64, float32 otherwise (fp16/bf16 models keep a float32 state)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class SamplerRun:
    """The steps, model calls, noise and workspace of one sampler call (see the module docstring)."""

    def __init__(
        self,
        name: str,  # the sampler's name, for error messages
        eps_model: EpsModel,  # eps(x_t, t, **cond)
        x: torch.Tensor,  # x_T, the caller's: never written
        schedule: Schedule,  # the forward process
        timesteps: TimestepsLike | Grid,  # visited timesteps, strictly decreasing, in [t_min, t_max]; or a Grid
        *,
        generator: GeneratorArg = None,  # randomness of the stochastic samplers
        callback: Callback | None = None,  # callback(i, t, x_t, x0) at every visited timestep
        cond: Mapping[str, Any] | None = None,  # keyword arguments of every model call
        afs: bool = False,  # the analytical first step: no model call at the first timestep (analytic_prediction)
    ) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 1 or x.shape[0] < 1:
            raise TypeError(f"{name}: x must be a floating-point tensor of shape [B, ...] with B >= 1, got "
                            f"{type(x).__name__ if not isinstance(x, torch.Tensor) else f'{x.dtype} {tuple(x.shape)}'}")
        if callback is not None and not callable(callback):
            raise TypeError(f"{name}: callback must be callable as callback(i, t, x_t, x0), "
                            f"got {type(callback).__name__}")
        check_generator(generator, x.shape[0])
        self.name, self.schedule, self.generator, self.callback = name, schedule, generator, callback
        self.steps: tuple[Step, ...] = make_steps(schedule, timesteps)
        # Noise only on the way down: a stochastic step up in noise is not a sampler's.
        self.denoising = self.steps[0].to.t < self.steps[0].at.t
        self.calls = ModelCalls(name, eps_model, x, cond)
        self.calls.record_start(x)
        self.workspace = Workspace()
        self.x_T, self.dtype = x, state_dtype(x)
        self._step = 0
        self.afs = check_choice(name, "afs", afs, (False, True))
        if self.afs and (len(self.steps) < 2 or not self.denoising):
            raise ValueError(f"{name}: afs (the analytical first step) needs a denoising grid of at least 2 "
                             f"timesteps (it replaces the first model call), got {len(self.steps)} timestep(s)"
                             f"{'' if self.denoising else ' going up in noise'}")

    def points_at_lambda(self, lams: Sequence[float]) -> list[Point]:
        """Points between visited timesteps (multi-stage steps) at the half log-SNRs ``lams``."""
        return points_at_lambda(self.schedule, lams) if len(lams) else []

    def predict(self, x: torch.Tensor | LinComb, at: Step | Point) -> Prediction:
        """The model at state ``x``: at a visited timestep (a Step; shown to the callback) or a Point of a stage."""
        if isinstance(at, Step):
            self._step, where = at.i, at.at
        else:
            where = at
        state = self.state(x)
        if self.afs and isinstance(at, Step) and at.i == 0:  # x_T as the noise: no model call
            p = analytic_prediction(state, where, self.calls.model_dtype)
        else:
            p = self.calls(state, where, self._step)
        if self.callback is not None and isinstance(at, Step):
            self.callback(at.i, where.t, state, p.x0.evaluate(dtype=self.dtype))
        return p

    def state(self, x: torch.Tensor | LinComb) -> torch.Tensor:
        """``x`` as a tensor of the state dtype, written into the workspace when it has to be computed."""
        if x is self.x_T:  # a copy: not even a model that writes into its input may touch the caller's x_T
            return x.to(self.dtype, copy=True)
        if isinstance(x, torch.Tensor):
            return x if x.dtype == self.dtype else x.to(self.dtype)
        return x.evaluate(self.workspace.empty(x.first, self.dtype), self.dtype)

    def randn(self, dtype: torch.dtype = torch.float32) -> LinComb:
        """A standard-normal draw shaped like x, from ``generator`` exactly as diffusers draws (seed compatible)."""
        self._check_denoising()
        x = self.x_T
        return LinComb.of(randn(x.shape, self.generator, x.device, dtype, out=self.workspace.empty(x, dtype)))

    def noise(self, noise_sampler: NoiseSampler, lam_from: float, lam_to: float) -> LinComb:
        """``noise_sampler(lam_from, lam_to)``, checked: a standard-normal draw shaped like x."""
        self._check_denoising()
        z = noise_sampler(lam_from, lam_to)
        if not isinstance(z, torch.Tensor) or z.shape != self.x_T.shape or not z.is_floating_point():
            got = f"{z.dtype} {tuple(z.shape)}" if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"{self.name}: noise_sampler must return a float tensor of x's shape "
                             f"{tuple(self.x_T.shape)}, got {got}")
        return LinComb.of(z)

    def _check_denoising(self) -> None:
        if not self.denoising:
            raise ValueError(f"{self.name} draws noise, so it only denoises: a grid that goes up in noise "
                             "(inversion) needs a deterministic sampler")

    def finish(self, x: torch.Tensor | LinComb) -> torch.Tensor:
        """The sample as a tensor, after checking that every model output was finite."""
        sample = self.state(x)
        self.calls.check_finite()
        return sample
