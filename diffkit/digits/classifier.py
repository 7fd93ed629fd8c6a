"""A noise-conditional digits classifier: log p(y | x_t) for classifier guidance on the embedded model.

Dhariwal & Nichol 2021 (sec. 4) guide with a classifier trained on noisy images x_t =
alpha_t x0 + sigma_t eps at every t of the diffusion's schedule. This one is trained on the
1,500-image train split with the embedded model's schedule (Linear, T = 1000) and is called
with that schedule's time t, as the model is:

    h = SiLU(FiLM_1(GroupNorm(conv 3x3, 1 -> 32)))             8x8
    h = SiLU(FiLM_2(GroupNorm(conv 3x3 stride 2, 32 -> 64)))   4x4
    h = SiLU(FiLM_3(GroupNorm(conv 3x3, 64 -> 64)))            4x4
    logits = Linear(flatten(h))                                 10 classes

FiLM_i(h) = h (1 + scale_i(t)) + shift_i(t), from an MLP of the sinusoidal embedding of t.
SiLU keeps log p(y | x_t) smooth in x_t (guidance uses its gradient). ``CLASSIFIER_WEIGHTS``
is shipped (safetensors, config and schedule in the metadata);
``scripts/train_digits_classifier.sh`` reproduces it bit for bit
(:mod:`diffkit.digits.train_classifier`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffkit.io.pretrained import CONFIG_KEY, SCHEDULE_KEY, schedule_from_dict, schedule_to_dict
from diffkit.io.tensorfile import read_tensors, save_tensors
from diffkit.schedules import Schedule
from diffkit.unet.blocks import timestep_embedding
from diffkit.unet.state_dict import load_state_dict_checked

CLASSIFIER_WEIGHTS = Path(__file__).resolve().parent / "weights" / "digits_classifier.safetensors"
KIND = "noisy_classifier"  # metadata "kind" of classifier files


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of :class:`NoisyDigitsClassifier`."""

    channels: int = 32  # width of the first conv; the others have twice as many
    time_channels: int = 32  # width of the sinusoidal embedding of t
    num_classes: int = 10  # digits 0..9
    resolution: int = 8  # images are resolution x resolution, one channel
    groups: int = 8  # GroupNorm groups


class NoisyDigitsClassifier(nn.Module):
    """``logits(x_t, t)`` [B, num_classes] and ``log_prob(x_t, t, y)`` [B] for noisy digits (module docstring)."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        c, e = config.channels, config.time_channels
        widths = (c, 2 * c, 2 * c)
        self.convs = nn.ModuleList([nn.Conv2d(1, c, 3, padding=1), nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
                                    nn.Conv2d(2 * c, 2 * c, 3, padding=1)])
        self.norms = nn.ModuleList(nn.GroupNorm(config.groups, w) for w in widths)
        self.time = nn.Sequential(nn.Linear(e, 2 * e), nn.SiLU(), nn.Linear(2 * e, 2 * sum(widths)))
        self.head = nn.Linear(2 * c * (config.resolution // 2) ** 2, config.num_classes)
        self.widths = widths

    def logits(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.config.time_channels, freq_shift=1.0, flip_sin_to_cos=False)
        film = self.time(emb.to(self.head.weight.dtype)).split([w for w in self.widths for _ in range(2)], dim=1)
        h = x.to(self.head.weight.dtype)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            scale, shift = film[2 * i][:, :, None, None], film[2 * i + 1][:, :, None, None]
            h = F.silu(norm(conv(h)) * (1 + scale) + shift)
        return self.head(h.flatten(1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.logits(x, t)

    def log_prob(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p(y | x_t) [B] for labels ``y`` [B]: ``ClassifierGuidance``'s ``log_prob``."""
        return torch.log_softmax(self.logits(x, t), dim=1).gather(1, y.long().view(-1, 1)).squeeze(1)


def save_classifier(path: str | os.PathLike, model: NoisyDigitsClassifier, schedule: Schedule) -> None:
    """Write the weights with the config and the training schedule in the metadata (atomically)."""
    metadata = {"kind": KIND, CONFIG_KEY: json.dumps(asdict(model.config), sort_keys=True),
                SCHEDULE_KEY: json.dumps(schedule_to_dict(schedule), sort_keys=True)}
    save_tensors(path, {k: v.contiguous() for k, v in model.state_dict().items()}, metadata)


def load_classifier(path: str | os.PathLike | None = None) -> tuple[NoisyDigitsClassifier, Schedule]:
    """``(classifier in eval mode, the schedule it was trained on)``; default: the shipped one."""
    path = Path(CLASSIFIER_WEIGHTS if path is None else path)
    tensors, metadata = read_tensors(path)
    if metadata.get("kind") != KIND:
        raise ValueError(f"{path} is not a noise-conditional classifier file (metadata kind {metadata.get('kind')!r})")
    try:
        config = ClassifierConfig(**json.loads(metadata[CONFIG_KEY]))
        schedule = schedule_from_dict(json.loads(metadata[SCHEDULE_KEY]))
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} has malformed classifier metadata: {err}") from err
    model = NoisyDigitsClassifier(config)
    load_state_dict_checked(model, tensors, source=str(path))
    return model.eval().requires_grad_(False), schedule
