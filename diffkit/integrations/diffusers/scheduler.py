"""DiffkitScheduler: a registered diffkit sampler behind diffusers' scheduler protocol.

    pipe.scheduler = DiffkitScheduler.from_scheduler(pipe.scheduler, sampler="dpmpp_2m")

A diffusers pipeline calls ``set_timesteps``, then for each entry t of
``scheduler.timesteps``: ``scale_model_input``, the model, ``step``. There is no
second, stateful copy of the sampler here: the sampler function itself runs as a
:class:`~diffkit.integrations.coroutine.SamplerCoroutine`. The first ``step`` starts it
from the pipeline's latents; each ``step`` sends the model output and returns the state
of the sampler's next model call as ``prev_sample``; the last returns the sample. So a
pipeline's output equals ``diffkit.sample`` on the same model, seed and timesteps
(tests/test_integration_diffusers.py, <= 1e-5).

What a pipeline sees:

- ``timesteps``: the t of every model call, in order. A sampler with two calls per step
  (dpmpp_sde) lists its intermediate stage between visited timesteps, as diffusers' own
  second-order schedulers do, and ``order`` is its calls per step. int64 when every t
  is an integer (the discrete spacings), else float32.
- ``init_noise_sigma = 1`` and ``scale_model_input`` is the identity: the latents are the
  state x_t = alpha_t x0 + sigma_t eps that the model takes.
- ``add_noise(x0, noise, t) = alpha_t x0 + sigma_t noise`` (img2img, inpainting), and
  ``set_begin_index(k)`` starts the next run at ``timesteps[k]``, a step's first call
  (img2img passes ``t_start * order``). Without it the first ``step``'s timestep says
  where the run starts.
- Randomness: the generator of the first ``step`` drives the run. Pipelines draw the
  latents from the generator they pass, and ``diffkit.sample`` draws x_T and then the
  sampler's noise from one generator, so a seed gives the same sample in both.
- A pipeline that edits its latents between steps (an inpainting blend, a callback that
  returns latents): the sampler continues from the edited latents. (Under
  ``torch.inference_mode`` an in-place edit of the returned tensor goes unseen:
  inference tensors keep no version counter.)
- The sampler's options are the scheduler's. DDIMPipeline's ``eta`` argument is not read
  (a warning when it asks for noise the sampler does not add).
- ``set_timesteps`` and ``close()`` end a run left unfinished (a pipeline that stopped
  early or raised), as does dropping the scheduler; an exception in the sampler
  re-raises in ``step``. All state is the instance's: separate instances may run in
  separate threads.

From a diffusers config only the training keys are read (schedule, prediction type:
:mod:`diffkit.integrations.diffusers.config`); the old scheduler's sampling settings
(timestep_spacing, steps_offset, clip_sample, thresholding, Karras sigmas, solver
order) are not: the sampler and spacing are diffkit's, ``spacing=None`` being the
sampler's default as in ``diffkit.sample``.

Flow matching (SD3, Flux: a FlowMatchEulerDiscreteScheduler config, or a multistep one with
use_flow_sigmas), as diffusers' flow schedulers behave for their pipelines:

- ``timesteps`` are the model's time sigma * T, float32 (FlowMatch's t); the default grid
  is FlowMatch's ``shifted`` one, shifted once (diffusers shifts a static ``shift`` twice:
  diffkit.schedules.flow). ``init_noise_sigma = 1``, ``scale_model_input`` the identity.
- ``scale_noise(x0, t, noise) = (1 - sigma_t) x0 + sigma_t noise``: what flow img2img
  pipelines call instead of ``add_noise`` (the same forward process).
- ``set_timesteps(sigmas=..., mu=...)``: diffusers' flow sigmas (unshifted u in (0, 1],
  no final 0) and Flux's dynamic shift exp(mu), read as FlowMatchEulerDiscreteScheduler
  reads them (:mod:`diffkit.integrations.diffusers.flow`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput

from diffkit.conversions import PREDICTION_TYPES
from diffkit.integrations.coroutine import SamplerCoroutine, model_call_times
from diffkit.integrations.diffusers.config import (
    DEFAULTS,
    FLOW_KEYS,
    DynamicShift,
    config_from_schedule,
    schedule_from_config,
)
from diffkit.integrations.diffusers.flow import grid_schedule, timesteps_from_flow_sigmas
from diffkit.samplers.registry import get_sampler
from diffkit.samplers.run import state_dtype
from diffkit.schedules import FlowMatch, Linear, Schedule, default_spacing
from diffkit.schedules import timesteps as make_timesteps

# diffusers config keys that describe training: from_config(config, **kwargs) lets kwargs override them
TRAINING_KEYS = frozenset(DEFAULTS) | FLOW_KEYS | {"trained_betas", "variance_type", "timestep_type"}
PIPELINE_STEP_KWARGS = frozenset({"eta", "use_clipped_model_output"})  # DDIMPipeline's, accepted and not read
CALL_TIMES_CACHED = 16  # grids whose model call times an instance remembers


def _version(t: torch.Tensor) -> int | None:
    """The tensor's version counter; None for inference tensors, which keep none."""
    return None if t.is_inference() else t._version


def _host_float(t: Any, sync: bool = False) -> float | None:
    """``t`` as a float when reading it costs no device sync (or ``sync``), else None."""
    if isinstance(t, (int, float, np.number)):
        return float(t)
    if isinstance(t, torch.Tensor) and t.numel() == 1 and (sync or t.device.type == "cpu"):
        return float(t)
    return None


class DiffkitScheduler(SchedulerMixin, ConfigMixin):
    """A diffkit sampler as a diffusers scheduler (module docstring).

    ``DiffkitScheduler(sampler="dpmpp_2m", spacing=None, timesteps=None, schedule=Linear(),
    prediction_type="epsilon", dynamic_shift=None, **options)``; usually built with
    :meth:`from_scheduler` or :meth:`from_config`, which read ``schedule``, ``prediction_type``
    and ``dynamic_shift`` from a diffusers config. ``timesteps`` fixes the visited timesteps
    (the pipeline must then ask for that many steps).
    """

    order = 1  # diffusers reads it on the class too; an instance has its sampler's model calls per step
    init_noise_sigma = 1.0

    def __init__(
        self,
        sampler: str = "dpmpp_2m",  # a registered sampler (diffkit.SAMPLERS)
        spacing: str | None = None,  # a diffkit spacing; None: the sampler's default where the schedule has it
        timesteps: Sequence[float] | None = None,  # fixed visited timesteps instead of a spacing
        *,
        schedule: Schedule | None = None,  # the training schedule; None: diffusers' default, Linear()
        prediction_type: str = "epsilon",  # what the model predicts, in diffkit's names
        dynamic_shift: DynamicShift | None = None,  # flow matching: each grid's mu comes to set_timesteps
        **options: Any,  # the sampler's options
    ) -> None:
        info = get_sampler(sampler)
        unknown = sorted(set(options) - set(info.options))
        if unknown:
            raise ValueError(f"sampler {info.name!r} has no option(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(info.options) or 'none'}")
        if options.get("afs"):  # the pipeline's loop starts with a model call at t_max: nothing to skip there
            raise ValueError(f"afs=True (the analytical first step) is not available in a diffusers pipeline, whose "
                             f"loop calls the model at the first timestep; use diffkit.sample with {info.name!r} "
                             "for it")
        if spacing is not None and timesteps is not None:
            raise ValueError("pass spacing or timesteps, not both")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: {', '.join(PREDICTION_TYPES)}")
        schedule = Linear() if schedule is None else schedule
        fixed = None if timesteps is None else [float(t) for t in np.asarray(timesteps, dtype=np.float64)]
        self.register_to_config(**config_from_schedule(schedule, prediction_type, dynamic_shift),
                                sampler=info.name, spacing=spacing, timesteps=fixed, sampler_options=dict(options))
        self.schedule, self.sampler_info, self.model_prediction_type = schedule, info, prediction_type
        self.dynamic_shift = dynamic_shift
        self._grid_schedule = schedule  # the schedule of the current timesteps: FlowMatch(mu=...) when dynamic
        self.order = info.evals_per_step
        self._options = {**info.options, **options}
        self.num_inference_steps: int | None = None
        self.timesteps = torch.arange(schedule.num_train_timesteps - 1, -1, -1)  # until set_timesteps
        self._calls: tuple[float, ...] | None = None  # t of every model call, float64
        self._call_values: list[float] = []  # the same as scheduler.timesteps holds them (float32 / int)
        self._starts: dict[int, int] = {}  # call index -> visited index, where a step starts
        self._visited = np.empty(0)
        self._begin_index: int | None = None
        self._call_times_cache: dict[tuple[Schedule, bytes], tuple[float, ...]] = {}  # grid -> model call times
        self._reset_run()

    def _reset_run(self) -> None:
        self._run: SamplerCoroutine | None = None
        self._step_index: int | None = None  # index into timesteps of the next step()
        self._generator = None
        self._given: torch.Tensor | None = None  # the latents step() returned last, and their version
        self._given_version: int | None = None

    # -- construction from diffusers ----------------------------------------------------

    @classmethod
    def from_config(cls, config: Mapping[str, Any], return_unused_kwargs: bool = False, **kwargs: Any):
        """A DiffkitScheduler for the model ``config`` (any diffusers scheduler's) was made for.

        kwargs: ``sampler``, ``spacing``, ``timesteps``, the sampler's options, and training
        keys overriding the config's (e.g. ``rescale_betas_zero_snr=True``). A DiffkitScheduler's
        own config round-trips (its sampler and options are kept unless ``sampler`` changes).
        """
        config = dict(config)
        config.update({k: kwargs.pop(k) for k in list(kwargs) if k in TRAINING_KEYS})
        schedule, kind = schedule_from_config(config)
        own = {k: config[k] for k in ("sampler", "spacing", "timesteps") if config.get(k) is not None}
        same_sampler = kwargs.get("sampler", own.get("sampler")) == own.get("sampler")
        options = dict(config.get("sampler_options") or {}) if same_sampler else {}
        for key in ("sampler", "spacing", "timesteps"):
            if key in kwargs:
                own[key] = kwargs.pop(key)
        scheduler = cls(**own, schedule=schedule, prediction_type=kind, dynamic_shift=DynamicShift.from_config(config),
                        **options, **kwargs)
        return (scheduler, {}) if return_unused_kwargs else scheduler

    @classmethod
    def from_scheduler(cls, scheduler: Any, **kwargs: Any) -> DiffkitScheduler:
        """``from_config(scheduler.config, **kwargs)``: replaces a pipeline's scheduler for the same model."""
        config = getattr(scheduler, "config", None)
        if not isinstance(config, Mapping):
            raise TypeError(f"expected a diffusers scheduler (with a .config mapping), got {type(scheduler).__name__}")
        return cls.from_config(config, **kwargs)

    # -- the protocol -------------------------------------------------------------------

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: Sequence[float] | None = None,  # custom visited timesteps (retrieve_timesteps)
        sigmas: Sequence[float] | None = None,  # custom sigmas: k-diffusion's ending with 0; flow: unshifted u
        mu: float | None = None,  # flow matching with use_dynamic_shifting: the grid's shift is exp(mu)
    ) -> None:
        """Choose the visited timesteps and list every model call in ``self.timesteps``; ends an unfinished run."""
        self.close()
        schedule = grid_schedule(self.schedule, self.dynamic_shift, mu)
        visited = self._visited_timesteps(schedule, num_inference_steps, timesteps, sigmas)
        calls = self._call_times(schedule, visited)
        starts, j = {}, 0
        for i, t in enumerate(calls):
            if j < len(visited) and t == visited[j]:
                starts[i], j = j, j + 1
        # flow matching's time is continuous (diffusers' flow schedulers: float32 throughout)
        integral = not self._flow and all(float(t).is_integer() for t in calls)
        table = torch.tensor(calls, dtype=torch.int64 if integral else torch.float32)
        self._calls, self._call_values, self._starts, self._visited = calls, table.tolist(), starts, visited
        self._grid_schedule = schedule
        self.timesteps = table.to(device) if device is not None else table
        self.num_inference_steps = len(visited)
        self._begin_index = None

    @property
    def _flow(self) -> bool:
        return isinstance(self.schedule, FlowMatch)

    def _visited_timesteps(self, schedule: Schedule, steps: int | None, timesteps: Any, sigmas: Any) -> np.ndarray:
        if timesteps is not None and sigmas is not None:
            raise ValueError("pass timesteps or sigmas, not both")
        if timesteps is not None:
            return np.asarray(torch.as_tensor(timesteps).cpu(), dtype=np.float64)
        if sigmas is not None and self._flow:
            return timesteps_from_flow_sigmas(schedule, sigmas, steps)
        if sigmas is not None:
            sigmas = np.asarray(torch.as_tensor(sigmas).cpu(), dtype=np.float64)
            if sigmas.ndim != 1 or sigmas.size < 2 or sigmas[-1] != 0:
                raise ValueError("sigmas are k-diffusion sigmas (sigma / alpha) of the visited timesteps followed "
                                 f"by the final 0, as diffusers takes them; got {sigmas.tolist()}")
            return np.asarray(schedule.t_from_sigma_k(sigmas[:-1]), dtype=np.float64)
        if self.config.timesteps is not None:
            fixed = np.asarray(self.config.timesteps, dtype=np.float64)
            if steps is not None and steps != len(fixed):
                raise ValueError(f"this scheduler visits the {len(fixed)} timesteps it was given; "
                                 f"ask the pipeline for num_inference_steps={len(fixed)}, not {steps}")
            return fixed
        if steps is None:
            raise ValueError("set_timesteps needs num_inference_steps (or timesteps, or sigmas)")
        spacing = self.config.spacing or default_spacing(schedule, self.sampler_info.default_spacing)
        return make_timesteps(schedule, steps, spacing)

    def _call_times(self, schedule: Schedule, visited: np.ndarray) -> tuple[float, ...]:
        """model_call_times on ``visited``, remembered: pipelines ask for the same grid call after call."""
        key = (schedule, visited.tobytes())
        calls = self._call_times_cache.get(key)
        if calls is None:
            calls = model_call_times(self.sampler_info.fn, schedule, visited,
                                     prediction_type=self.model_prediction_type, options=self._options)
            if len(self._call_times_cache) >= CALL_TIMES_CACHED:
                del self._call_times_cache[next(iter(self._call_times_cache))]
            self._call_times_cache[key] = calls
        return calls

    def set_begin_index(self, begin_index: int = 0) -> None:
        """Start the next run at ``timesteps[begin_index]``, where a step starts (img2img: ``t_start * order``)."""
        self._check_start(begin_index)
        self._begin_index = begin_index

    def _check_start(self, k: int) -> int:
        """The visited index a run starting at call ``k`` begins from; ValueError if it cannot start there."""
        if self._calls is None:
            raise ValueError("call set_timesteps first")
        if k not in self._starts:
            raise ValueError(f"a run can start only where a step starts, at timesteps[k] for k in "
                             f"{sorted(self._starts)}; got {k!r}")
        j = self._starts[k]
        if k > 0 and self._call_times(self._grid_schedule, self._visited[j:]) != self._calls[k:]:
            raise ValueError(f"sampler {self.sampler_info.name!r} started at timesteps[{k}] makes other model "
                             "calls than the rest of scheduler.timesteps lists")
        return j

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        """The identity: the latents are the state the model takes."""
        return sample

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """x_t = alpha_t x0 + sigma_t noise, with one t for the batch or one per sample."""
        t = torch.as_tensor(timesteps, device=original_samples.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(original_samples.shape[0])
        return self.schedule.add_noise(original_samples, noise, t)

    def scale_noise(self, sample: torch.Tensor, timestep: Any, noise: torch.Tensor) -> torch.Tensor:
        """``add_noise`` as flow img2img pipelines call it: on FlowMatch x_t = (1 - sigma_t) x0 + sigma_t noise."""
        return self.add_noise(sample, noise, timestep)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Any,
        sample: torch.Tensor,
        generator: torch.Generator | list[torch.Generator] | None = None,
        return_dict: bool = True,
        **pipeline_kwargs: Any,
    ) -> SchedulerOutput | tuple[torch.Tensor]:
        """The model's output at ``timestep``.

        Returns the latents of the next model call (the sample after the last).
        """
        unknown = sorted(set(pipeline_kwargs) - PIPELINE_STEP_KWARGS)
        if unknown:
            raise TypeError(f"step() got unexpected keyword argument(s) {', '.join(unknown)}")
        if self._run is None:
            self._start(timestep, sample, generator)
            self._warn_eta(pipeline_kwargs.get("eta"))
        else:
            self._check_step(timestep, generator)
        edited = None if sample is self._given and _version(sample) == self._given_version else sample
        try:
            x = self._run.send(model_output, edited)
        except BaseException:
            self._reset_run()  # the sampler raised: the run is over
            raise
        self._step_index += 1
        if self._run.finished:
            self._run = None
            prev = x.to(sample.dtype)
        else:  # the pipeline's own tensor: nothing it does to it reaches the sampler's state unannounced
            prev = x.to(sample.dtype, copy=True)
        self._given, self._given_version = prev, _version(prev)
        return SchedulerOutput(prev_sample=prev) if return_dict else (prev,)

    def _start(self, timestep: Any, sample: torch.Tensor, generator: Any) -> None:
        if self._calls is None:
            raise ValueError("call set_timesteps before step")
        if self._step_index is not None:
            raise ValueError(f"this run made all its {len(self._calls)} model calls; call set_timesteps to start "
                             "another")
        k = self._begin_index
        if k is None:  # where the first timestep is: reading it syncs once per run, as diffusers' schedulers do
            t = _host_float(timestep, sync=True)
            k = next((i for i in sorted(self._starts) if t in (self._call_values[i], self._calls[i])), None)
            if k is None:
                raise ValueError(f"step() got timestep {t:g}, where no step of scheduler.timesteps starts")
        j = self._check_start(k)
        self._run = SamplerCoroutine(self.sampler_info.fn, sample.to(state_dtype(sample)), self._grid_schedule,
                                     self._visited[j:], prediction_type=self.model_prediction_type,
                                     generator=generator, options=self._options)
        self._step_index, self._generator = k, generator
        self._check_step(timestep, generator)
        try:
            self._run.start()  # up to the first model call: at the pipeline's latents, whose output step() has
        except BaseException:
            self._reset_run()
            raise
        self._given, self._given_version = sample, _version(sample)

    def _check_step(self, timestep: Any, generator: Any) -> None:
        i = self._step_index
        if generator is not None and generator is not self._generator:
            raise ValueError("step() got another generator than the one its run started with; pass the same one "
                             "to every step (only the first step's is used)")
        t = _host_float(timestep)
        if t is not None and t not in (self._call_values[i], self._calls[i]):
            self.close()
            raise ValueError(f"step() got timestep {t:g}, but the sampler's next model call is at timesteps[{i}] = "
                             f"{self._call_values[i]:g}; call step() once per entry of scheduler.timesteps, in order")

    def _warn_eta(self, eta: float | None) -> None:
        ours = self._options.get("eta", 0.0)
        if eta is not None and eta != 0 and eta != ours:
            warnings.warn(f"DiffkitScheduler: the pipeline's eta={eta} is not used; sampler "
                          f"{self.sampler_info.name!r} runs with its own options (eta={ours}). Set them on the "
                          "scheduler, e.g. DiffkitScheduler.from_scheduler(..., eta=...)", stacklevel=3)

    def close(self) -> None:
        """End an unfinished run (its worker unwinds); the next step() after set_timesteps starts a new one."""
        if self._run is not None:
            self._run.close()
        self._reset_run()

    # -- what else pipelines read ----------------------------------------------------

    @property
    def step_index(self) -> int | None:
        """Index into ``timesteps`` of the next step() of the current run (None before its first)."""
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        """Where the next run starts, if set_begin_index chose it."""
        return self._begin_index

    def __len__(self) -> int:
        return self.schedule.num_train_timesteps

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles carry the configuration and timesteps, never a run in progress."""
        state = dict(self.__dict__)
        state.update(_run=None, _step_index=None, _generator=None, _given=None, _given_version=None,
                     sampler_info=self.sampler_info.name)  # the registry entry, by name
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, sampler_info=get_sampler(state["sampler_info"]))

