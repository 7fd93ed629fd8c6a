"""A generation job: what it draws (``Job``), how one batch is drawn, and how the batches are shared out.

Determinism. Seed k's sample depends on ``torch.Generator().manual_seed(k)`` alone: x_T is its
first draw (as diffusers' ``randn_tensor`` draws it, so a pipeline seeded with k starts from the
same x_T), then the label (``labels="random"``), then every noise draw of a stochastic sampler
(a list of per-sample generators: :mod:`diffkit.samplers.noise`, and the Brownian tree's seeds in
:mod:`diffkit.samplers.brownian`). Given such a list, every registered sampler computes sample k
bitwise independently of the rest of its batch (``tests/test_generate.py`` checks each one with
an element-wise model).

Networks are not batch-invariant bit for bit: their kernels (oneDNN on CPUs, cuDNN/cuBLAS on
GPUs) pick their blocking by batch size, and the digits U-Net's output for one input moves by a
few float32 ulps between batch sizes. So batches are fixed: consecutive runs of ``batch`` seeds
of the seed list, whatever the number of processes; processes take whole batches round-robin,
and a resumed run redraws a batch whole unless all of its files exist. The model then sees the
very tensors one uninterrupted process would feed it, and every file is bitwise that process's
(same ``batch``, device kind and threads per process). Across ``batch`` values the samples agree
up to the model's float rounding (measured in the tests).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from diffkit.models.wrappers import ClassifierFreeGuidance
from diffkit.samplers.model_calls import EpsModel
from diffkit.samplers.noise import randn
from diffkit.samplers.registry import SamplerInfo, get_sampler
from diffkit.samplers.timetable import make_steps
from diffkit.schedules import Schedule
from diffkit.schedules.spacing import spacings, timesteps as make_timesteps

# random: drawn from the seed's generator after x_T (as EDM); balanced: seed % classes
LABEL_RULES = ("random", "balanced")
UNCONDITIONAL = -1  # the label recorded for samples of an unconditional model


class CollectiveError(ValueError):
    """A user error that every process raises alike (it follows from the arguments, or from rank 0's broadcast).

    Only rank 0 reports it, so a bad argument prints one line whatever the number of processes.
    """


@dataclass(frozen=True)
class Job:
    """What to draw and where: everything ``diffkit generate`` takes."""

    seeds: tuple[int, ...]  # one sample per seed (see diffkit.generate.seeds for the syntax)
    outdir: Path  # where {seed:06d}.png, samples.npz and run.json go
    model: Path | None = None  # a pretrained file (diffkit.io.pretrained); None: the embedded digits model
    sampler: str = "dpmpp_2m"  # a registered sampler
    steps: int = 20  # visited timesteps (ignored when timesteps is given)
    spacing: str | None = None  # timestep spacing; None: the sampler's own
    timesteps: tuple[float, ...] | None = None  # explicit visited timesteps, strictly decreasing
    label: int | None = None  # draw every seed for this class
    labels: str = "random"  # otherwise: one of LABEL_RULES
    guidance: float = 1.0  # classifier-free guidance scale w (1: the conditional model alone)
    batch: int = 64  # seeds per model batch (fixes the batches: see the module docstring)
    device: str = "cpu"  # "cpu" or "cuda" (each process on GPU LOCAL_RANK)
    subdirs: bool = False  # files in folders of 1,000 seeds
    evaluate: bool = False  # FD and classifier accuracy at the end (digits models)

    def check(self, world_size: int) -> None:
        """CollectiveError for arguments that cannot work, before anything is loaded."""
        if not self.seeds:
            raise CollectiveError("--seeds is empty")
        if world_size > len(self.seeds):
            raise CollectiveError(f"{world_size} processes for {len(self.seeds)} seed(s): use at most as many "
                                  f"processes as seeds")  # fmt: skip
        if self.batch < 1 or self.steps < 1:
            raise CollectiveError(f"--batch and --steps must be >= 1; got --batch {self.batch} --steps {self.steps}")
        if self.labels not in LABEL_RULES:
            raise CollectiveError(f"unknown --labels {self.labels!r}; allowed: {', '.join(LABEL_RULES)}")
        if not math.isfinite(self.guidance):
            raise CollectiveError(f"--guidance must be a finite number; got {self.guidance}")
        if self.timesteps is not None and self.spacing is not None:
            raise CollectiveError("pass --spacing or --timesteps, not both")
        try:
            get_sampler(self.sampler)
        except ValueError as err:
            raise CollectiveError(str(err)) from None


@dataclass(frozen=True)
class Loaded:
    """A job's model, ready to draw: the eps-model (guided or not), schedule, sampler and timesteps."""

    eps_model: EpsModel  # eps(x_t, t, y=labels): the network, or its classifier-free guidance
    schedule: Schedule
    info: SamplerInfo
    timesteps: np.ndarray
    shape: tuple[int, int, int]  # [C, H, W] of one sample
    num_classes: int | None  # None: unconditional
    config: dict  # what determines the samples (outdir.check_config compares it on resume)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(job: Job, device: torch.device) -> Loaded:
    """The job's model on ``device`` with its schedule and timesteps; CollectiveError for arguments it rules out."""
    from diffkit.digits.pretrained import DEFAULT_MODEL, EMBEDDED_MODELS
    from diffkit.io.pretrained import load_pretrained

    name = DEFAULT_MODEL if job.model is None else str(job.model)
    path = EMBEDDED_MODELS[name].path if name in EMBEDDED_MODELS else Path(name)
    unet, schedule = load_pretrained(path)
    cfg = unet.config
    classes = cfg.num_classes
    if classes is None and (job.label is not None or job.guidance != 1.0):
        raise CollectiveError("this model is unconditional: --label and --guidance do not apply")
    if job.label is not None and classes is not None and not 0 <= job.label < classes:
        raise CollectiveError(f"--label must be in [0, {classes - 1}]; got {job.label}")
    if job.spacing is not None and job.spacing not in spacings(schedule):
        raise CollectiveError(f"unknown spacing {job.spacing!r}; allowed: {', '.join(spacings(schedule))}")
    info = get_sampler(job.sampler)
    try:
        if job.timesteps is not None:
            ts = np.asarray(job.timesteps, dtype=np.float64)
            make_steps(schedule, ts)
        else:
            ts = make_timesteps(schedule, job.steps, job.spacing or info.default_spacing)
    except ValueError as err:
        raise CollectiveError(f"--timesteps: {err}" if job.timesteps is not None else str(err)) from None
    unet = unet.to(device)
    guided = job.guidance != 1.0
    eps_model = ClassifierFreeGuidance(unet, job.guidance, uncond={"y": unet.null_label}) if guided else unet
    label = "none" if classes is None else (f"class {job.label}" if job.label is not None else job.labels)
    config = {
        "model_sha256": file_sha256(path), "sampler": info.name, "steps": len(ts),
        "spacing": "explicit" if job.timesteps is not None else job.spacing or info.default_spacing,
        "timesteps": [float(t) for t in ts],
        "guidance": job.guidance, "labels": label, "batch": job.batch, "device": device.type, "subdirs": job.subdirs,
    }  # fmt: skip
    shape = (cfg.in_channels, cfg.resolution, cfg.resolution)
    return Loaded(eps_model, schedule, info, ts, shape, classes, config)


def draw_labels(
    job: Job, seeds: Sequence[int], generators: Sequence[torch.Generator], classes: int | None
) -> torch.Tensor:
    """The labels of ``seeds`` (int64), each drawn from its own generator with ``labels="random"``."""
    if classes is None:
        return torch.full((len(seeds),), UNCONDITIONAL, dtype=torch.int64)
    if job.label is not None:
        return torch.full((len(seeds),), job.label, dtype=torch.int64)
    if job.labels == "balanced":
        return torch.tensor([seed % classes for seed in seeds], dtype=torch.int64)
    return torch.cat([torch.randint(classes, (1,), generator=g) for g in generators])


def draw_batch(
    job: Job, loaded: Loaded, seeds: Sequence[int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples float32 [B, C, H, W] in [-1, 1] on the CPU, labels int64 [B]) of ``seeds``, one generator each."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    x_T = randn((len(seeds), *loaded.shape), generators, device, torch.float32)  # first draw of each generator
    labels = draw_labels(job, seeds, generators, loaded.num_classes)
    cond = None if loaded.num_classes is None else {"y": labels.to(device)}
    with torch.inference_mode():
        x0 = loaded.info.fn(loaded.eps_model, x_T, loaded.schedule, loaded.timesteps, generator=generators, cond=cond)
    return x0.clamp(-1, 1).float().cpu(), labels


def shares(todo: Sequence[Sequence[int]], rank: int, size: int) -> list[Sequence[int] | None]:
    """Rank ``rank``'s batch in each round: batch r * size + rank of ``todo``, None when the round has none for it.

    Every rank gets the same number of rounds, so the per-round collectives line up.
    """
    rounds = math.ceil(len(todo) / size)
    return [todo[r * size + rank] if r * size + rank < len(todo) else None for r in range(rounds)]


def job_record(job: Job) -> dict:
    """The job as JSON-able values (for run.json)."""
    record = asdict(job)
    seeds = record.pop("seeds")
    record["seeds"] = {"count": len(seeds), "first": seeds[0], "last": seeds[-1]}
    record["outdir"], record["model"] = str(job.outdir), None if job.model is None else str(job.model)
    return record
