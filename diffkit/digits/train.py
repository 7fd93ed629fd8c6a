"""Train a diffusion model with the DDPM or the flow-matching objective, resumable bit for bit.

Each step draws x0 from the data, then a time t and noise eps as the objective says
(:mod:`diffkit.digits.objectives`: ``ddpm``, t ~ U{0, ..., T-1} and target eps, Ho et al.
2020, Algorithm 1; ``flow``, sigma logit-normal (``flow_uniform``: uniform) and target
eps - x0, rectified flow), forms x_t = alpha_t x0 + sigma_t eps with ``schedule.add_noise``
and minimises ||target - model(x_t, t)||^2 with AdamW (linear learning-rate warm-up,
gradient-norm clipping). The objective is the only difference: the loop, EMA, checkpoints
and resume are shared, and the model must say it predicts the objective's target (its
``prediction_type``; "epsilon" when it has none). An exponential moving average (EMA) of the weights is
kept alongside; it is what gets shipped and sampled. With ``label_dropout`` p
every label is replaced by the null label with probability p, which trains the
unconditional model used by classifier-free guidance (Ho & Salimans 2022).

Checkpoints are safetensors (never pickle) written atomically: model, EMA and
AdamW state as tensors, the step and optimizer hyper-parameters as JSON
metadata, and both random states (the data generator's and torch's global one,
which drives dropout). Resuming from step k and training to N therefore gives
exactly the weights of an uninterrupted N-step run (same machine, same thread
count). Training runs inside ``torch.random.fork_rng``: the caller's global
random state is left untouched.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from diffkit.digits.objectives import get_objective
from diffkit.io.pretrained import CONFIG_KEY, EMA_PREFIX, KIND_KEY, SCHEDULE_KEY, schedule_to_dict
from diffkit.io.tensorfile import check_writable, read_tensors, save_tensors
from diffkit.progress import ProgressBar
from diffkit.schedules import Schedule

MODEL_PREFIX = "model."
OPTIM_PREFIX = "optim."
RNG_TORCH = "rng.torch"  # torch's global CPU random state (dropout)
RNG_DATA = "rng.data"  # the data generator's state (batches, t, eps, label dropout)
LOSS_SMOOTHING = 0.98  # running loss shown in the progress bar: an EMA over ~50 steps
CHECKPOINT_METADATA = ("step", "running_loss", "param_groups", "options", SCHEDULE_KEY)  # besides KIND_KEY
ADAMW_STATE = ("step", "exp_avg", "exp_avg_sq")  # what torch's AdamW keeps per parameter (amsgrad off)
TENSOR_COUNT = "tensors"  # metadata: how many tensors the checkpoint holds (a lost optimizer entry is detected)


@dataclass(frozen=True)
class TrainOptions:
    """Hyper-parameters of :func:`train`; all but ``steps`` must match when resuming."""

    batch_size: int = 128  # images per step, drawn with replacement; at most the number of images
    lr: float = 1e-3  # AdamW learning rate after warm-up
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    warmup_steps: int = 0  # the learning rate ramps linearly from lr/warmup_steps to lr over these steps
    ema_decay: float = 0.999  # EMA decay; early on min(ema_decay, (1+step)/(10+step)) so the EMA forgets the init
    grad_clip: float | None = 1.0  # clip the global gradient norm to this; None disables clipping
    label_dropout: float = 0.0  # probability of replacing a label by null_label (classifier-free guidance)
    null_label: int | None = None  # the "no class" label; required when label_dropout > 0
    seed: int = 0  # seeds the data generator and torch's global random state (dropout)
    objective: str = "ddpm"  # the loss: a name in diffkit.digits.objectives.OBJECTIVES ("ddpm", "flow", ...)

    def __post_init__(self) -> None:
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int; got {self.batch_size!r}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a finite number > 0; got {self.lr!r}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0; got {self.weight_decay!r}")
        if not (isinstance(self.warmup_steps, int) and self.warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an int >= 0; got {self.warmup_steps!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1); got {self.ema_decay!r}")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ValueError(f"grad_clip must be a finite number > 0, or None; got {self.grad_clip!r}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must lie in [0, 1); got {self.label_dropout!r}")
        if self.label_dropout > 0 and self.null_label is None:
            raise ValueError("label_dropout > 0 needs null_label (the model's 'no class' label)")
        get_objective(self.objective)  # ValueError listing the objectives
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise ValueError(f"seed must be an int in [0, 2**64); got {self.seed!r}")


@dataclass
class TrainResult:
    """The trained model, its EMA copy (eval mode), the final step and the losses of this call's steps."""

    model: nn.Module
    ema: nn.Module
    step: int
    losses: list[float] = field(default_factory=list)


@dataclass
class _Run:
    """Everything one training run threads through its steps and checkpoints."""

    model: nn.Module
    ema: nn.Module
    optimizer: torch.optim.Optimizer
    data_rng: torch.Generator  # all data-side randomness: batches, t, eps, label dropout (in this order)
    images: torch.Tensor
    labels: torch.Tensor | None
    schedule: Schedule
    options: TrainOptions


def train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    schedule: Schedule,
    steps: int,
    options: TrainOptions | None = None,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` (``model(x_t, t, y=labels)``, predicting the objective's target) in place for ``steps`` steps.

    ``images`` is [N, C, H, W] in the model's data space, ``labels`` [N] integers or None for an
    unconditional model. With ``checkpoint_path`` a checkpoint is written every ``checkpoint_every``
    steps (0: only at the end) and after the last step; ``resume=True`` continues from it (the
    checkpoint must exist and have been written with the same ``options``).
    """
    options = options or TrainOptions()
    _check_data(images, labels, steps)
    predicts, target = getattr(model, "prediction_type", "epsilon"), get_objective(options.objective).prediction_type
    if predicts != target:
        raise ValueError(f"the {options.objective!r} objective trains a {target!r} model, but the model's "
                         f"prediction_type is {predicts!r} (build it with prediction_type={target!r})")
    if options.batch_size > len(images):
        raise ValueError(f"batch_size {options.batch_size} is larger than the data ({len(images)} images); "
                         f"allowed: 1..{len(images)}")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs checkpoint_path")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ValueError("checkpoint_every must be an int >= 0 (0: only after the last step); "
                         f"got {checkpoint_every!r}")
    if checkpoint_path is not None:
        check_writable(checkpoint_path)  # now, not at the first checkpoint after minutes of training
    device = next(model.parameters()).device
    run = _Run(
        model=model,
        ema=copy.deepcopy(model).eval().requires_grad_(False),
        optimizer=torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay),
        data_rng=torch.Generator().manual_seed(options.seed),
        images=images.to(device),
        labels=None if labels is None else labels.to(device),
        schedule=schedule,
        options=options,
    )
    result = TrainResult(model=model, ema=run.ema, step=0)
    running = math.nan
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        if resume:
            result.step, running = _load_checkpoint(run, checkpoint_path)
            if result.step > steps:
                raise ValueError(f"checkpoint {checkpoint_path} is at step {result.step}, past steps={steps}")
        model.train()
        with ProgressBar(steps, "steps", start=result.step, enabled=progress) as bar:  # ends its line on Ctrl-C too
            for step in range(result.step, steps):
                loss = _train_step(run, step)
                result.losses.append(loss)
                running = loss if math.isnan(running) else LOSS_SMOOTHING * running + (1 - LOSS_SMOOTHING) * loss
                result.step = step + 1
                last = result.step == steps
                if checkpoint_path is not None and (last or (checkpoint_every and result.step % checkpoint_every == 0)):
                    _save_checkpoint(run, checkpoint_path, result.step, running)
                bar.update(result.step, f"loss {running:.4f}")
    model.eval()
    return result


def _train_step(run: _Run, step: int) -> float:
    model, images, labels, options = run.model, run.images, run.labels, run.options
    n, device = images.shape[0], images.device
    batch = options.batch_size
    # Every random draw comes from data_rng on the CPU, in a fixed order, so a resumed run replays it exactly.
    index = torch.randint(n, (batch,), generator=run.data_rng).to(device)
    x_t, t, target = get_objective(options.objective).draw(run.schedule, images[index], run.data_rng)
    drop = torch.rand(batch, generator=run.data_rng).to(device) < options.label_dropout
    cond = {}
    if labels is not None:
        cond["y"] = torch.where(drop, torch.full_like(labels[index], options.null_label or 0), labels[index])
    loss = F.mse_loss(model(x_t, t.to(images.dtype), **cond), target)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if options.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
    warmup = min(1.0, (step + 1) / options.warmup_steps) if options.warmup_steps else 1.0
    for group in run.optimizer.param_groups:
        group["lr"] = options.lr * warmup
    run.optimizer.step()
    _update_ema(run.ema, model, min(options.ema_decay, (1 + step) / (10 + step)))
    return float(loss.detach())


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for ema_p, p in zip(ema.parameters(), model.parameters()):
        ema_p.lerp_(p, 1.0 - decay)
    for ema_b, b in zip(ema.buffers(), model.buffers()):
        ema_b.copy_(b)


def _check_data(images: torch.Tensor, labels: torch.Tensor | None, steps: int) -> None:
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a positive int; got {steps!r}")
    if not isinstance(images, torch.Tensor) or images.ndim < 2 or not images.is_floating_point() or not len(images):
        raise ValueError(f"images must be a non-empty float tensor [N, ...]; got {getattr(images, 'shape', images)!r}")
    if labels is not None and (labels.shape != images.shape[:1] or labels.dtype != torch.int64):
        raise ValueError(f"labels must be int64 of shape [N]=[{len(images)}]; got {labels.dtype} {tuple(labels.shape)}")


# -- checkpoints ---------------------------------------------------------------------------------------


def _save_checkpoint(run: _Run, path: str | os.PathLike, step: int, running_loss: float) -> None:
    tensors = {MODEL_PREFIX + k: v for k, v in run.model.state_dict().items()}
    tensors.update({EMA_PREFIX + k: v for k, v in run.ema.state_dict().items()})
    state = run.optimizer.state_dict()
    for index, param_state in state["state"].items():
        for name, value in param_state.items():
            tensors[f"{OPTIM_PREFIX}{index}.{name}"] = torch.as_tensor(value)
    tensors[RNG_TORCH] = torch.get_rng_state()
    tensors[RNG_DATA] = run.data_rng.get_state()
    metadata = {
        KIND_KEY: "train_checkpoint",
        TENSOR_COUNT: str(len(tensors)),
        "step": str(step),
        "running_loss": repr(running_loss),
        "param_groups": json.dumps(state["param_groups"]),
        "options": json.dumps(dataclasses.asdict(run.options), sort_keys=True),
        SCHEDULE_KEY: json.dumps(schedule_to_dict(run.schedule), sort_keys=True),
    }
    config = getattr(run.model, "config", None)
    if dataclasses.is_dataclass(config):
        metadata[CONFIG_KEY] = json.dumps(dataclasses.asdict(config), sort_keys=True)
    save_tensors(path, tensors, metadata)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, metadata)`` of a training checkpoint.

    Every entry :func:`train` needs is checked present and well-formed. The metadata's JSON fields
    come back parsed and ``step`` as an int. ValueError names the file and what is missing or
    malformed; nothing is restored here, so a bad file changes nothing.
    """
    tensors, raw = read_tensors(path)
    if raw.get(KIND_KEY) != "train_checkpoint":
        raise ValueError(f"{path} is not a diffkit training checkpoint (its metadata has no kind=train_checkpoint)")
    missing = [key for key in CHECKPOINT_METADATA if key not in raw] + [key for key in (RNG_TORCH, RNG_DATA)
                                                                         if key not in tensors]
    for prefix in (MODEL_PREFIX, EMA_PREFIX):
        if not any(key.startswith(prefix) for key in tensors):
            missing.append(f"{prefix}*")
    if missing:
        raise ValueError(f"{path} is an incomplete training checkpoint: missing {', '.join(missing)}")
    if TENSOR_COUNT in raw and raw[TENSOR_COUNT] != str(len(tensors)):  # absent in checkpoints of diffkit 0.1
        raise ValueError(f"{path} is an incomplete training checkpoint: it holds {len(tensors)} tensors, "
                         f"its metadata lists {raw[TENSOR_COUNT][:20]}")
    metadata: dict = dict(raw)
    try:
        for key in ("options", "param_groups", SCHEDULE_KEY):
            metadata[key] = json.loads(raw[key])
        metadata["step"] = int(raw["step"])
        metadata["running_loss"] = float(raw["running_loss"])
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{path} has a malformed training checkpoint entry: {str(err)[:200]}") from None
    if (metadata["step"] < 0 or not isinstance(metadata["options"], dict)
            or not isinstance(metadata["param_groups"], list)):
        raise ValueError(f"{path} has a malformed training checkpoint entry (step, options or param_groups)")
    for key in (RNG_TORCH, RNG_DATA):
        if tensors[key].dtype != torch.uint8 or tensors[key].ndim != 1:
            raise ValueError(f"{path}: {key} must be a 1-D uint8 random state, got {tensors[key].dtype} "
                             f"{tuple(tensors[key].shape)}")
    return tensors, metadata


def _load_checkpoint(run: _Run, path: str | os.PathLike) -> tuple[int, float]:
    """Restore everything in place; returns ``(step, running_loss)``."""
    from diffkit.unet import load_state_dict_checked

    tensors, metadata = read_checkpoint(path)
    saved = {"objective": "ddpm", **metadata["options"]}  # checkpoints from before objectives: ddpm
    differ = {k: (saved.get(k), v) for k, v in dataclasses.asdict(run.options).items() if saved.get(k) != v}
    if differ:
        raise ValueError(f"cannot resume {path} exactly: options differ (checkpoint, now): {differ}")
    if metadata[SCHEDULE_KEY] != schedule_to_dict(run.schedule):
        raise ValueError(f"cannot resume {path}: it was trained with schedule {json.dumps(metadata[SCHEDULE_KEY])}")
    param_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in _strip(tensors, OPTIM_PREFIX).items():
        index, _, name = key.partition(".")
        if not index.isdigit() or not name:
            raise ValueError(f"{path}: optimizer entry {OPTIM_PREFIX}{key} is not {OPTIM_PREFIX}<index>.<name>")
        param_state.setdefault(int(index), {})[name] = value
    _check_adamw_state(param_state, list(run.model.parameters()), path)  # before the model is touched
    load_state_dict_checked(run.model, _strip(tensors, MODEL_PREFIX), source=f"{path} (model)")
    load_state_dict_checked(run.ema, _strip(tensors, EMA_PREFIX), source=f"{path} (ema)")
    try:
        run.optimizer.load_state_dict({"state": param_state, "param_groups": metadata["param_groups"]})
        torch.set_rng_state(tensors[RNG_TORCH])
        run.data_rng.set_state(tensors[RNG_DATA])
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        raise ValueError(f"cannot resume {path}: its optimizer or random state does not fit this run "
                         f"({type(err).__name__}: {str(err)[:200]})") from None
    return metadata["step"], metadata["running_loss"]


def _check_adamw_state(param_state: dict[int, dict[str, torch.Tensor]], params: list[nn.Parameter], path) -> None:
    """Every stored parameter state is AdamW's, complete and of its parameter's shape (else it fails steps later)."""
    for index, state in sorted(param_state.items()):
        if index >= len(params):
            raise ValueError(f"{path}: optimizer state for parameter {index}, but the model has {len(params)}")
        missing = [key for key in ADAMW_STATE if key not in state]
        if missing:
            raise ValueError(f"{path} is an incomplete training checkpoint: missing "
                             f"{', '.join(f'{OPTIM_PREFIX}{index}.{key}' for key in missing)}")
        for key in ("exp_avg", "exp_avg_sq"):
            if state[key].shape != params[index].shape or not state[key].is_floating_point():
                raise ValueError(f"{path}: {OPTIM_PREFIX}{index}.{key} is {state[key].dtype} "
                                 f"{tuple(state[key].shape)}, its parameter {tuple(params[index].shape)}")
        if state["step"].numel() != 1:
            raise ValueError(f"{path}: {OPTIM_PREFIX}{index}.step must hold one number")


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
