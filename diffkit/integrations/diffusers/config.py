"""A diffusers scheduler config, read as what a model was trained on: its schedule and prediction type.

A diffusers config mixes two kinds of keys: how the model was trained (the noise
schedule, what the network predicts, what it takes as its timestep) and how one
scheduler samples (spacing, steps_offset, solver order, clipping, Karras sigmas).
diffkit keeps the first kind and brings its own second kind, so
:func:`schedule_from_config` reads only training keys:

    beta_schedule, beta_start, beta_end,      Linear | ScaledLinear | Cosine   (BETA_SCHEDULES)
    num_train_timesteps, rescale_betas_zero_snr
    prediction_type                           epsilon | v_prediction | sample | flow_prediction -> flow
                                              (PREDICTION_TYPES)

and raises ValueError naming what it cannot map: a training-schedule family diffkit
does not have here (flow matching's ``shift``, EDM's ``sigma_data``, variance-exploding
schedules: see FAMILIES), a beta schedule it lacks, tabulated ``trained_betas``, a
learned variance (extra output channels), continuous timesteps (t = log(sigma) / 4).
Sampling keys (timestep_spacing, steps_offset, clip_sample, thresholding,
use_karras_sigmas, solver settings, ...) are not read. No diffusers import: a config is
a mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from diffkit.schedules import Cosine, Linear, ScaledLinear, Schedule

# diffusers' defaults for the training keys (DDPMScheduler's), for configs that leave one out
DEFAULTS: Mapping[str, Any] = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
                               "beta_schedule": "linear", "prediction_type": "epsilon",
                               "rescale_betas_zero_snr": False}

# diffusers prediction_type -> diffkit's (diffkit.conversions.PREDICTION_TYPES)
PREDICTION_TYPES: Mapping[str, str] = {"epsilon": "epsilon", "v_prediction": "v_prediction", "sample": "sample",
                                       "flow_prediction": "flow"}


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


@dataclass(frozen=True)
class Family:
    """A training-schedule family diffusers configs describe: how to recognise it, and its diffkit schedule."""

    name: str
    recognise: Callable[[Mapping[str, Any]], bool]
    build: Callable[[Mapping[str, Any]], Schedule] | None  # None: diffkit has no such schedule here
    unmapped: str = ""  # the key(s) that would need the missing family, for the error


# The first family that recognises a config builds its schedule. A family added to
# diffkit.schedules becomes mappable by giving its entry a ``build``.
FAMILIES: tuple[Family, ...] = (
    Family("flow matching", lambda c: "shift" in c or bool(c.get("use_flow_sigmas")), None,
           "shift / use_flow_sigmas, flow_shift"),
    Family("EDM", lambda c: "sigma_data" in c, None, "sigma_data, sigma_min, sigma_max"),
    Family("discrete VP (betas)", lambda c: "beta_schedule" in c or "trained_betas" in c, _betas),
)


def schedule_from_config(config: Mapping[str, Any]) -> tuple[Schedule, str]:
    """(schedule, diffkit prediction type) of the model a diffusers scheduler ``config`` was made for.

    ValueError, naming the key, for anything the module docstring lists as not mapped.
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
    kind = _get(config, "prediction_type")
    if kind not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type {kind!r} is not mapped; mapped: {', '.join(PREDICTION_TYPES)}")
    return family.build(config), PREDICTION_TYPES[kind]


def config_from_schedule(schedule: Schedule, prediction_type: str) -> dict[str, Any]:
    """The training keys of a diffusers config for ``schedule`` and a diffkit ``prediction_type`` (the inverse)."""
    name = next((n for n, cls in (("linear", Linear), ("scaled_linear", ScaledLinear), ("squaredcos_cap_v2", Cosine))
                 if type(schedule) is cls), None)
    if name == "squaredcos_cap_v2" and (schedule.s, schedule.max_beta) != (0.008, 0.999):
        name = None  # diffusers' cosine fixes both
    if name is None:
        raise ValueError(f"{schedule!r} has no diffusers beta_schedule; mapped: Linear, ScaledLinear, "
                         "Cosine(s=0.008, max_beta=0.999)")
    kinds = {v: k for k, v in PREDICTION_TYPES.items()}
    if prediction_type not in kinds:
        raise ValueError(f"unknown prediction_type {prediction_type!r}; allowed: {', '.join(kinds)}")
    config = {"num_train_timesteps": schedule.num_train_timesteps, "beta_schedule": name,
              "rescale_betas_zero_snr": schedule.rescale_zero_terminal_snr, "prediction_type": kinds[prediction_type]}
    if name != "squaredcos_cap_v2":
        config.update(beta_start=schedule.beta_start, beta_end=schedule.beta_end)
    return config
