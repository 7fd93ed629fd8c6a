"""Map diffusers ``UNet2DModel`` DDPM weights (e.g. google/ddpm-cifar10-32) onto the reference UNet.

Pure state-dict work; reading a diffusers model directory is ``diffkit.io.weights.load_diffusers_unet``.

Two pieces, both explicit:

* ``unet_config_from_diffusers(config)`` reads a diffusers ``config.json`` dict (missing keys take
  diffusers' own defaults, ``DIFFUSERS_DEFAULTS``) and refuses every option the reference UNet
  cannot express, naming it.
* ``diffusers_key_table(cfg)`` is the key map, diffusers name -> diffkit name, one entry per tensor.
  ``convert_diffusers_state_dict`` applies it and refuses unknown or missing keys. Checkpoints from
  diffusers < 0.15 name attention weights ``query/key/value/proj_attn``; those are renamed first
  (``LEGACY_ATTENTION_NAMES``), as diffusers itself does on load.

Equivalences used (diffusers 0.42.1 source): ``downsample_padding=0`` pads right/bottom by one
before a stride-2 conv (our "asymmetric"); ``attention_head_dim=None`` means one head as wide as
the block; ResBlocks add ``time_emb_proj(SiLU(emb))`` after ``conv1``; the time MLP is
Linear -> SiLU -> Linear on ``get_timestep_embedding(t, ch, flip_sin_to_cos, freq_shift)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from diffkit.unet.config import UNetConfig

# UNet2DModel.__init__ defaults in diffusers 0.42.1 (a test compares them with the installed diffusers).
DIFFUSERS_DEFAULTS: dict[str, Any] = {
    "sample_size": None, "in_channels": 3, "out_channels": 3, "center_input_sample": False,
    "time_embedding_type": "positional", "time_embedding_dim": None, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    "mid_block_type": "UNetMidBlock2D",
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (224, 448, 672, 896), "layers_per_block": 2, "mid_block_scale_factor": 1,
    "downsample_padding": 1, "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0, "act_fn": "silu",
    "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": None, "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
    "num_class_embeds": None, "num_train_timesteps": None,
}  # fmt: skip

# Options the reference UNet has no counterpart for: each must keep one of these values.
_FIXED: dict[str, tuple[Any, ...]] = {
    "center_input_sample": (False,),
    "time_embedding_type": ("positional",),
    "mid_block_type": ("UNetMidBlock2D",),
    "mid_block_scale_factor": (1,),
    "downsample_type": ("conv",),
    "upsample_type": ("conv",),
    "act_fn": ("silu", "swish"),
    "resnet_time_scale_shift": ("default",),
    "add_attention": (True,),
    "class_embed_type": (None,),
    "num_class_embeds": (None,),  # diffusers' label table has no NULL row; ours does
}
_DOWN_BLOCKS = {"DownBlock2D": False, "AttnDownBlock2D": True}  # block type -> has attention
_UP_BLOCKS = {"UpBlock2D": False, "AttnUpBlock2D": True}
_PADDINGS = {0: "asymmetric", 1: "symmetric"}  # diffusers downsample_padding -> ours

RESNET_NAMES = (
    ("norm1", "norm_1"),
    ("conv1", "conv_1"),
    ("time_emb_proj", "time_proj"),
    ("norm2", "norm_2"),
    ("conv2", "conv_2"),
)
SHORTCUT_NAMES = (("conv_shortcut", "skip"),)
ATTENTION_NAMES = (("group_norm", "norm"), ("to_q", "to_q"), ("to_k", "to_k"), ("to_v", "to_v"), ("to_out.0", "to_out"))
LEGACY_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def unet_config_from_diffusers(config: Mapping[str, Any]) -> UNetConfig:
    """The UNetConfig equivalent to a diffusers ``UNet2DModel`` config; ValueError for what has no equivalent."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (a diffusers config.json); got {type(config).__name__}")
    unknown = sorted(k for k in config if not k.startswith("_") and k not in DIFFUSERS_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown UNet2DModel config keys {unknown}; known: {sorted(DIFFUSERS_DEFAULTS)}")
    c = {**DIFFUSERS_DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    for key, allowed in _FIXED.items():
        if c[key] not in allowed:
            raise ValueError(
                f"unsupported UNet2DModel option {key}={c[key]!r}; the reference UNet needs one of {allowed}"
            )
    widths = list(c["block_out_channels"])
    ch = widths[0]
    if any(w % ch for w in widths):
        raise ValueError(f"block_out_channels {widths} must all be multiples of the first")
    if c["time_embedding_dim"] not in (None, 4 * ch):
        raise ValueError(
            f"time_embedding_dim must be None or 4 * block_out_channels[0] = {4 * ch}; got {c['time_embedding_dim']}"
        )
    if c["attn_norm_num_groups"] not in (None, c["norm_num_groups"]):
        raise ValueError(f"attn_norm_num_groups must be None or norm_num_groups; got {c['attn_norm_num_groups']}")
    if c["downsample_padding"] not in _PADDINGS:
        raise ValueError(f"downsample_padding must be one of {sorted(_PADDINGS)}; got {c['downsample_padding']!r}")
    resolution = c["sample_size"]
    if isinstance(resolution, (list, tuple)):
        if len(set(resolution)) != 1:
            raise ValueError(f"only square sample_size is supported; got {resolution}")
        resolution = resolution[0]
    if not isinstance(resolution, int):
        raise ValueError(f"sample_size must be set (it places the attention levels); got {resolution!r}")
    down, up = list(c["down_block_types"]), list(c["up_block_types"])
    for kind, names, allowed in (("down", down, _DOWN_BLOCKS), ("up", up, _UP_BLOCKS)):
        bad = [n for n in names if n not in allowed]
        if bad or len(names) != len(widths):
            raise ValueError(f"{kind}_block_types must be {len(widths)} of {sorted(allowed)}; got {names}")
    attends = [_DOWN_BLOCKS[n] for n in down]
    if attends != [_UP_BLOCKS[n] for n in reversed(up)]:
        raise ValueError(f"attention must sit at the same levels going down and up; got {down} and {up}")
    head_dim = c["attention_head_dim"]
    return UNetConfig(
        in_channels=c["in_channels"],
        out_channels=c["out_channels"],
        channels=ch,
        channel_mult=tuple(w // ch for w in widths),
        num_res_blocks=c["layers_per_block"],
        attention_resolutions=tuple(resolution // 2**i for i, a in enumerate(attends) if a),
        resolution=resolution,
        dropout=float(c["dropout"]),
        num_heads=1,
        head_channels=head_dim,  # None: one head as wide as the block, as in diffusers
        groups=c["norm_num_groups"],
        norm_eps=float(c["norm_eps"]),
        freq_shift=float(c["freq_shift"]),
        flip_sin_to_cos=bool(c["flip_sin_to_cos"]),
        downsample_padding=_PADDINGS[c["downsample_padding"]],
    )


def diffusers_key_table(cfg: UNetConfig) -> dict[str, str]:
    """The key map: every diffusers ``UNet2DModel`` state-dict key -> the reference UNet's key.

    In short (``*`` is ``weight`` or ``bias``; up level ``k`` counts from the lowest resolution in both)::

        conv_in.*                                   conv_in.*
        time_embedding.linear_{1,2}.*               time_embed.linear_{1,2}.*
        down_blocks.i.resnets.j.<resnet>.*          down.i.res.j.<RESNET_NAMES / SHORTCUT_NAMES>.*
        down_blocks.i.attentions.j.<attention>.*    down.i.attn.j.<ATTENTION_NAMES>.*
        down_blocks.i.downsamplers.0.conv.*         down.i.downsample.conv.*
        mid_block.resnets.{0,1}.*                   mid.res_{1,2}.*
        mid_block.attentions.0.*                    mid.attn.*
        up_blocks.k.{resnets,attentions}.j.*        up.k.{res,attn}.j.*
        up_blocks.k.upsamplers.0.conv.*             up.k.upsample.conv.*
        conv_norm_out.*, conv_out.*                 norm_out.*, conv_out.*
    """
    table: dict[str, str] = {}

    def add(src: str, dst: str, names: tuple[tuple[str, str], ...]) -> None:
        for src_name, dst_name in names:
            for param in ("weight", "bias"):
                table[_join(src, src_name, param)] = _join(dst, dst_name, param)

    def resnet(src: str, dst: str, *, shortcut: bool) -> None:
        add(src, dst, RESNET_NAMES + (SHORTCUT_NAMES if shortcut else ()))

    add("", "", (("conv_in", "conv_in"),))
    add("time_embedding", "time_embed", (("linear_1", "linear_1"), ("linear_2", "linear_2")))
    widths = [cfg.channels * m for m in cfg.channel_mult]
    sizes, last = cfg.level_resolutions(), len(widths) - 1
    width_in = cfg.channels
    for i, width in enumerate(widths):
        for j in range(cfg.num_res_blocks):
            resnet(
                f"down_blocks.{i}.resnets.{j}", f"down.{i}.res.{j}", shortcut=(width_in if j == 0 else width) != width
            )
            if sizes[i] in cfg.attention_resolutions:
                add(f"down_blocks.{i}.attentions.{j}", f"down.{i}.attn.{j}", ATTENTION_NAMES)
        if i != last:
            add(f"down_blocks.{i}.downsamplers.0", f"down.{i}.downsample", (("conv", "conv"),))
        width_in = width
    resnet("mid_block.resnets.0", "mid.res_1", shortcut=False)
    add("mid_block.attentions.0", "mid.attn", ATTENTION_NAMES)
    resnet("mid_block.resnets.1", "mid.res_2", shortcut=False)
    for k, i in enumerate(reversed(range(len(widths)))):
        for j in range(cfg.num_res_blocks + 1):
            # Up ResBlocks always change width: their input is the feature map concatenated with a skip.
            resnet(f"up_blocks.{k}.resnets.{j}", f"up.{k}.res.{j}", shortcut=True)
            if sizes[i] in cfg.attention_resolutions:
                add(f"up_blocks.{k}.attentions.{j}", f"up.{k}.attn.{j}", ATTENTION_NAMES)
        if i != 0:
            add(f"up_blocks.{k}.upsamplers.0", f"up.{k}.upsample", (("conv", "conv"),))
    add("", "", (("conv_norm_out", "norm_out"), ("conv_out", "conv_out")))
    return table


def convert_diffusers_state_dict(state_dict: Mapping[str, torch.Tensor], cfg: UNetConfig) -> dict[str, torch.Tensor]:
    """Rename a diffusers ``UNet2DModel`` state dict to the reference UNet's keys (tensors are not copied)."""
    renamed = {_modern_attention_name(key): value for key, value in state_dict.items()}
    table = diffusers_key_table(cfg)
    missing = [k for k in table if k not in renamed]
    unexpected = [k for k in renamed if k not in table]
    if missing or unexpected:
        raise ValueError(
            f"state dict does not match the diffusers UNet2DModel layout of {cfg}: "
            f"{len(missing)} missing keys (e.g. {missing[:5]}), {len(unexpected)} unknown keys (e.g. {unexpected[:5]})"
        )
    return {table[key]: renamed[key] for key in table}


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _modern_attention_name(key: str) -> str:
    """``...attentions.0.query.weight`` -> ``...attentions.0.to_q.weight`` (pre-0.15 diffusers names)."""
    parts = key.split(".")
    if len(parts) >= 3 and parts[-2] in LEGACY_ATTENTION_NAMES and "attentions" in parts:
        return ".".join(parts[:-2] + [LEGACY_ATTENTION_NAMES[parts[-2]], parts[-1]])
    return key
