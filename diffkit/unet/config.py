"""The reference U-Net's configuration: a frozen, JSON-serialisable value object.

``dataclasses.asdict(config)`` gives plain Python values (tuples become lists
once through JSON); ``UNetConfig.from_dict`` turns such a dict back into a
config and refuses unknown keys, so a stored checkpoint always rebuilds the
exact architecture it was saved from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diffkit.conversions import PREDICTION_TYPES

DOWNSAMPLE_PADDINGS = ("asymmetric", "symmetric")


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of :class:`diffkit.unet.UNet`; defaults are Ho et al.'s CIFAR-10 model."""

    in_channels: int = 3  # channels of the input image x
    out_channels: int | None = None  # channels of the eps prediction; None means in_channels
    channels: int = 128  # base channel count ch; level i has ch * channel_mult[i] channels
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)  # one multiplier per resolution level
    num_res_blocks: int = 2  # ResBlocks per level on the way down (one more on the way up)
    attention_resolutions: tuple[int, ...] = (16,)  # spatial sizes (of the feature map) that get self-attention
    resolution: int = 32  # spatial size of the training images (square); places the attention levels
    dropout: float = 0.1  # dropout probability inside every ResBlock
    num_classes: int | None = None  # number of class labels; None builds an unconditional model
    num_heads: int = 1  # attention heads, used when head_channels is None
    head_channels: int | None = None  # channels per attention head; overrides num_heads when set
    groups: int = 32  # GroupNorm groups everywhere
    norm_eps: float = 1e-6  # GroupNorm epsilon (1e-6 as in the official TensorFlow code)
    freq_shift: float = 1.0  # sinusoidal embedding frequencies are exp(-ln(1e4) k / (ch/2 - freq_shift))
    flip_sin_to_cos: bool = False  # False: embedding is [sin, cos] (Ho et al.); True: [cos, sin]
    downsample_padding: str = "asymmetric"  # "asymmetric": pad right/bottom by 1 (TF SAME); "symmetric": pad 1
    prediction_type: str = "epsilon"  # what the output predicts (conversions.PREDICTION_TYPES); samplers read it

    def __post_init__(self) -> None:
        _check_int("in_channels", self.in_channels, minimum=1)
        if self.out_channels is not None:
            _check_int("out_channels", self.out_channels, minimum=1)
        _check_int("channels", self.channels, minimum=2)
        if self.channels % 2:
            raise ValueError(
                f"channels must be even (the time embedding has channels/2 frequencies); got {self.channels}"
            )
        object.__setattr__(self, "channel_mult", _int_tuple("channel_mult", self.channel_mult))
        object.__setattr__(
            self, "attention_resolutions", _int_tuple("attention_resolutions", self.attention_resolutions)
        )
        if not self.channel_mult:
            raise ValueError("channel_mult must name at least one level; got ()")
        _check_int("num_res_blocks", self.num_res_blocks, minimum=1)
        _check_int("resolution", self.resolution, minimum=1)
        levels = self.level_resolutions()
        if self.resolution % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(
                f"resolution {self.resolution} must be divisible by 2**(levels-1) = {2 ** (len(self.channel_mult) - 1)}"
            )
        unknown = sorted(set(self.attention_resolutions) - set(levels))
        if unknown:
            raise ValueError(f"attention_resolutions {unknown} are not level resolutions; allowed: {list(levels)}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1); got {self.dropout!r}")
        if self.num_classes is not None:
            _check_int("num_classes", self.num_classes, minimum=1)
        _check_int("num_heads", self.num_heads, minimum=1)
        if self.head_channels is not None:
            _check_int("head_channels", self.head_channels, minimum=1)
        _check_int("groups", self.groups, minimum=1)
        for ch in {self.channels * m for m in self.channel_mult}:
            if ch % self.groups:
                raise ValueError(f"groups={self.groups} must divide every level's channel count; {ch} is not divisible")
        for ch in self.attention_channels():
            heads = self.heads_at(ch)
            if ch % heads:
                raise ValueError(f"attention at {ch} channels cannot be split into {heads} heads")
        if not isinstance(self.norm_eps, (int, float)) or self.norm_eps <= 0:
            raise ValueError(f"norm_eps must be a positive float; got {self.norm_eps!r}")
        if not isinstance(self.freq_shift, (int, float)) or self.freq_shift >= self.channels // 2:
            raise ValueError(
                f"freq_shift must be a number below channels/2 = {self.channels // 2}; got {self.freq_shift!r}"
            )
        if not isinstance(self.flip_sin_to_cos, bool):
            raise TypeError(f"flip_sin_to_cos must be a bool; got {type(self.flip_sin_to_cos).__name__}")
        if self.downsample_padding not in DOWNSAMPLE_PADDINGS:
            raise ValueError(
                f"downsample_padding must be one of {DOWNSAMPLE_PADDINGS}; got {self.downsample_padding!r}"
            )
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}; got {self.prediction_type!r}")

    @property
    def output_channels(self) -> int:
        """Channels of the model output (out_channels, or in_channels when unset)."""
        return self.in_channels if self.out_channels is None else self.out_channels

    def level_resolutions(self) -> tuple[int, ...]:
        """Spatial size of the feature maps at each level, from the input resolution down."""
        return tuple(self.resolution // 2**i for i in range(len(self.channel_mult)))

    def attention_channels(self) -> tuple[int, ...]:
        """Widths of all attention blocks: the attention levels' and the middle block's."""
        levels = self.level_resolutions()
        widths = {self.channels * m for m, res in zip(self.channel_mult, levels) if res in self.attention_resolutions}
        return tuple(sorted(widths | {self.channels * self.channel_mult[-1]}))

    def heads_at(self, channels: int) -> int:
        """Number of attention heads in an attention block with ``channels`` channels."""
        if self.head_channels is None:
            return self.num_heads
        if channels % self.head_channels:
            raise ValueError(f"head_channels={self.head_channels} must divide the attention width {channels}")
        return channels // self.head_channels

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UNetConfig:
        """Rebuild a config from ``asdict`` output (possibly round-tripped through JSON)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a UNet config must be a mapping; got {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ValueError(f"unknown UNet config keys {unknown}; allowed: {allowed}")
        return cls(**dict(data))


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints; got {type(value).__name__}")
    for item in value:
        _check_int(f"every entry of {name}", item, minimum=1)
    return tuple(value)
