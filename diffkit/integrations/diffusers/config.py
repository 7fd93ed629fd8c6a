"""A diffusers scheduler config, read as what a model was trained on: its schedule and prediction type.

A diffusers config mixes two kinds of keys: how the model was trained (the noise
schedule, what the network predicts, what it takes as its timestep) and how one
scheduler samples (spacing, steps_offset, solver order, clipping, Karras sigmas).
diffkit keeps the first kind and brings its own second kind, so
:func:`schedule_from_config` reads only training keys. Two families (FAMILIES):

discrete VP (DDPM, DDIM, DPMSolverMultistep, Euler, ... configs):

    beta_schedule, beta_start, beta_end,      Linear | ScaledLinear | Cosine   (BETA_SCHEDULES)
    num_train_timesteps, rescale_betas_zero_snr
    prediction_type                           epsilon | v_prediction | sample | flow_prediction -> flow
                                              (PREDICTION_TYPES)

flow matching (SD3, Flux: FlowMatchEulerDiscreteScheduler's config, or DPMSolverMultistep /
UniPC with use_flow_sigmas=True), a :class:`~diffkit.schedules.FlowMatch`:

    num_train_timesteps
    shift (flow_shift with use_flow_sigmas)   the static grid shift: FlowMatch(shift=...)
    use_dynamic_shifting                      Flux: the grid's shift is exp(mu), mu given to set_timesteps
                                              per image size: FlowMatch(mu=...) then (DynamicShift)
    base_shift, max_shift,                    how pipelines compute mu (DynamicShift, passed through)
    base_image_seq_len, max_image_seq_len
    prediction_type                           absent: flow (FlowMatchEuler's model predicts the flow)

The schedule is diffkit's: its grid shifts once where diffusers' FlowMatchEulerDiscreteScheduler
shifts a static ``shift`` twice (diffkit.schedules.flow). With dynamic shifting the static
``shift`` is ignored, as diffusers ignores it.

ValueError naming what cannot be mapped: a family diffkit does not have here (EDM's
``sigma_data``, variance-exploding schedules), a beta schedule it lacks, tabulated
``trained_betas``, a learned variance (extra output channels), continuous timesteps
(t = log(sigma) / 4), and flow keys diffkit cannot honour exactly: ``invert_sigmas`` (the
model's time runs the other way), ``shift_terminal`` (a grid stretched to end elsewhere),
``stochastic_sampling`` (a sampler that re-noises each step: choose a diffkit sampler
instead) and, with dynamic shifting, a ``time_shift_type`` other than "exponential".
Sampling keys (timestep_spacing, steps_offset, clip_sample, thresholding, use_karras_sigmas,
solver settings, ...) are not read. No diffusers import: a config is a mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from diffkit.schedules import Cosine, FlowMatch, Linear, ScaledLinear, Schedule, flux_mu

# diffusers' defaults for the training keys (DDPMScheduler's), for configs that leave one out
DEFAULTS: Mapping[str, Any] = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
                               "beta_schedule": "linear", "prediction_type": "epsilon",
                               "rescale_betas_zero_snr": False}

# diffusers prediction_type -> diffkit's (diffkit.conversions.PREDICTION_TYPES)
PREDICTION_TYPES: Mapping[str, str] = {"epsilon": "epsilon", "v_prediction": "v_prediction", "sample": "sample",
                                       "flow_prediction": "flow"}

# the flow-matching keys read (or refused) here: from_config(config, **kwargs) lets kwargs override them
FLOW_KEYS = frozenset({"shift", "flow_shift", "use_flow_sigmas", "use_dynamic_shifting", "base_shift", "max_shift",
                       "base_image_seq_len", "max_image_seq_len", "invert_sigmas", "shift_terminal",
                       "stochastic_sampling", "time_shift_type"})


def _get(config: Mapping[str, Any], key: str) -> Any:
    value = config.get(key)
    return DEFAULTS[key] if value is None else value


def _discrete(cls: type) -> Callable[[Mapping[str, Any]], Schedule]:
    def build(config: Mapping[str, Any]) -> Schedule:
        return cls(num_train_timesteps=_get(config, "num_train_timesteps"), beta_start=_get(config, "beta_start"),
                   beta_end=_get(config, "beta_end"), rescale_zero_terminal_snr=_get(config, "rescale_betas_zero_snr"))
    return build


# beta_schedule -> the diffkit schedule with the same betas
# (diffusers' squaredcos_cap_v2 is s = 0.008, max_beta = 0.999)
BETA_SCHEDULES: Mapping[str, Callable[[Mapping[str, Any]], Schedule]] = {
    "linear": _discrete(Linear),
    "scaled_linear": _discrete(ScaledLinear),
    "squaredcos_cap_v2": lambda config: Cosine(num_train_timesteps=_get(config, "num_train_timesteps"),
                                               rescale_zero_terminal_snr=_get(config, "rescale_betas_zero_snr")),
}


def _betas(config: Mapping[str, Any]) -> Schedule:
    if config.get("trained_betas") is not None:
        raise ValueError("the config gives its betas as a table (trained_betas); diffkit has no schedule built "
                         "from a table of betas")
    name = _get(config, "beta_schedule")
    if name not in BETA_SCHEDULES:
        raise ValueError(f"beta_schedule {name!r} has no diffkit schedule; mapped: {', '.join(BETA_SCHEDULES)}")
    return BETA_SCHEDULES[name](config)


# flow keys diffkit cannot honour when set (truthy), and why
FLOW_REFUSED: Mapping[str, str] = {
    "invert_sigmas": "the model's time runs from data to noise (t = (1 - sigma) T); FlowMatch's is t = sigma T",
    "shift_terminal": "the grid is stretched to end at that sigma; FlowMatch's shifted grid ends at shift(1/T)",
    "stochastic_sampling": "the scheduler re-noises every step; choose a stochastic diffkit sampler instead "
                           "(e.g. sampler='euler_ancestral') and pass stochastic_sampling=False",
}


def _flow(config: Mapping[str, Any]) -> Schedule:
    for key, why in FLOW_REFUSED.items():
        if config.get(key):
            raise ValueError(f"{key}={config[key]!r}: {why}; diffkit cannot honour it exactly")
    T = _get(config, "num_train_timesteps")
    if config.get("use_dynamic_shifting"):
        kind = config.get("time_shift_type", "exponential")
        if kind != "exponential":
            raise ValueError(f"time_shift_type={kind!r}: diffkit's dynamic shift is the exponential one, "
                             "shift(u) = e^mu / (e^mu + 1/u - 1); diffusers' 'linear' has no FlowMatch")
        return FlowMatch(num_train_timesteps=T)  # shift: exp(mu) of set_timesteps; a static shift is ignored
    key = "flow_shift" if config.get("use_flow_sigmas") else "shift"
    shift = config.get(key)
    return FlowMatch(num_train_timesteps=T, shift=1.0 if shift is None else shift)


@dataclass(frozen=True)
class DynamicShift:
    """Flux-style dynamic shifting (``use_dynamic_shifting``): pipelines compute mu from the image size.

    diffkit's grid takes mu through ``set_timesteps(mu=...)`` (FlowMatch(mu=...)); these keys
    are how pipelines compute it (:meth:`mu`), kept in the scheduler's config for them.
    Defaults: FlowMatchEulerDiscreteScheduler's.
    """

    base_shift: float = 0.5  # mu at base_image_seq_len
    max_shift: float = 1.15  # mu at max_image_seq_len
    base_image_seq_len: int = 256  # latent tokens of the smallest image
    max_image_seq_len: int = 4096  # and of the largest

    def __post_init__(self) -> None:
        self.mu(self.base_image_seq_len)  # ValueError for bad sequence lengths

    def mu(self, image_seq_len: int) -> float:
        """mu for ``image_seq_len`` latent tokens, linear between the ends (diffkit.schedules.flux_mu)."""
        return flux_mu(image_seq_len, self.base_image_seq_len, self.max_image_seq_len, self.base_shift, self.max_shift)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DynamicShift | None:
        """The config's dynamic shifting, or None when it has none (``use_dynamic_shifting`` unset)."""
        if not config.get("use_dynamic_shifting"):
            return None
        return cls(**{key: config[key] for key in cls.__dataclass_fields__ if config.get(key) is not None})


@dataclass(frozen=True)
class Family:
    """A training-schedule family diffusers configs describe: how to recognise it, and its diffkit schedule."""

    name: str
    recognise: Callable[[Mapping[str, Any]], bool]
    build: Callable[[Mapping[str, Any]], Schedule] | None  # None: diffkit has no such schedule here
    unmapped: str = ""  # the key(s) that would need the missing family, for the error
    prediction_type: str = "epsilon"  # diffusers' name, for configs without a prediction_type


# The first family that recognises a config builds its schedule. A family added to
# diffkit.schedules becomes mappable by giving its entry a ``build``.
FAMILIES: tuple[Family, ...] = (
    Family("flow matching", lambda c: "shift" in c or bool(c.get("use_flow_sigmas")), _flow,
           prediction_type="flow_prediction"),
    Family("EDM", lambda c: "sigma_data" in c, None, "sigma_data, sigma_min, sigma_max"),
    Family("discrete VP (betas)", lambda c: "beta_schedule" in c or "trained_betas" in c, _betas),
)


def schedule_from_config(config: Mapping[str, Any]) -> tuple[Schedule, str]:
    """(schedule, diffkit prediction type) of the model a diffusers scheduler ``config`` was made for.

    ValueError, naming the key, for anything the module docstring lists as not mapped. With
    dynamic shifting (:meth:`DynamicShift.from_config`) the schedule is unshifted FlowMatch;
    its grid is FlowMatch(mu=...) for each mu.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"a diffusers scheduler config is a mapping (scheduler.config), got {type(config).__name__}")
    family = next((f for f in FAMILIES if f.recognise(config)), None)
    if family is None:
        raise ValueError("the config names no training schedule diffkit knows (no beta_schedule, shift or "
                         f"sigma_data; keys: {', '.join(sorted(k for k in config if not k.startswith('_')))})")
    if family.build is None:
        raise ValueError(f"the config describes a {family.name} schedule ({family.unmapped}); diffkit has no "
                         f"{family.name} schedule to map it to yet")
    if str(config.get("variance_type")).startswith("learned"):
        raise ValueError(f"variance_type={config['variance_type']!r}: the model predicts its variance in extra "
                         "output channels; diffkit's samplers use their own variances and take eps-shaped outputs")
    if config.get("timestep_type", "discrete") != "discrete":
        raise ValueError(f"timestep_type={config['timestep_type']!r}: the model takes log(sigma) / 4 as its timestep "
                         "(EDM-style preconditioning), not the training timestep diffkit's discrete schedules pass")
    kind = config.get("prediction_type") or family.prediction_type
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type {kind!r} is not mapped; mapped: {', '.join(PREDICTION_TYPES)}")
    return family.build(config), PREDICTION_TYPES[kind]


def config_from_schedule(schedule: Schedule, prediction_type: str,
                         dynamic_shift: DynamicShift | None = None) -> dict[str, Any]:
    """The training keys of a diffusers config for ``schedule`` and a diffkit ``prediction_type`` (the inverse).

    FlowMatch gives FlowMatchEulerDiscreteScheduler's keys: ``shift`` (exp(mu) for a
    FlowMatch(mu=...), the same grid), and with ``dynamic_shift`` use_dynamic_shifting and
    its keys (the schedule then unshifted: each grid's mu comes to set_timesteps).
    """
    kinds = {v: k for k, v in PREDICTION_TYPES.items()}
    if prediction_type not in kinds:
        raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: {', '.join(kinds)}")
    if type(schedule) is FlowMatch:
        return _flow_config(schedule, dynamic_shift) | {"prediction_type": kinds[prediction_type]}
    if dynamic_shift is not None:
        raise ValueError(f"dynamic shifting shifts a flow-matching grid; {schedule!r} is not FlowMatch")
    name = next((n for n, cls in (("linear", Linear), ("scaled_linear", ScaledLinear), ("squaredcos_cap_v2", Cosine))
                 if type(schedule) is cls), None)
    if name == "squaredcos_cap_v2" and (schedule.s, schedule.max_beta) != (0.008, 0.999):
        name = None  # diffusers' cosine fixes both
    if name is None:
        raise ValueError(f"{schedule!r} has no diffusers config; mapped: Linear, ScaledLinear, "
                         "Cosine(s=0.008, max_beta=0.999), FlowMatch")
    config = {"num_train_timesteps": schedule.num_train_timesteps, "beta_schedule": name,
              "rescale_betas_zero_snr": schedule.rescale_zero_terminal_snr, "prediction_type": kinds[prediction_type]}
    if name != "squaredcos_cap_v2":
        config.update(beta_start=schedule.beta_start, beta_end=schedule.beta_end)
    return config


def _flow_config(schedule: FlowMatch, dynamic_shift: DynamicShift | None) -> dict[str, Any]:
    config = {"num_train_timesteps": schedule.num_train_timesteps, "shift": schedule.grid_shift,
              "use_dynamic_shifting": dynamic_shift is not None}
    if dynamic_shift is not None:
        if schedule.grid_shift != 1.0:
            raise ValueError(f"with dynamic shifting the shift is exp(mu) of each grid; {schedule!r} already has one")
        config.update(asdict(dynamic_shift))
    return config
