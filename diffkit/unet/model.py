"""The reference U-Net: Ho et al. 2020's DDPM architecture as a diffkit model (eps, or its config's prediction_type).

Layout (``L = len(channel_mult)`` levels, ``ch_i = channels * channel_mult[i]``)::

    emb = MLP(sinusoid(t)) [+ label_embed(y)]                      4 * channels features
    h = conv_in(x)                                                  skips: [h]
    for level i = 0 .. L-1:   num_res_blocks x (ResBlock -> ch_i [-> attention])   push each h
                              Downsample (not on the last level)                     push h
    mid: ResBlock -> attention -> ResBlock
    for level i = L-1 .. 0:   (num_res_blocks + 1) x (concat popped skip -> ResBlock -> ch_i [-> attention])
                              Upsample (not on level 0)
    out = conv_out(SiLU(GroupNorm(h)))                             eps, or what config.prediction_type names

Attention sits at the levels whose feature-map size is in ``attention_resolutions``
and always in the middle block. Class conditioning adds a learned embedding of
the label to the time embedding; label ``num_classes`` is the reserved NULL
label (classifier-free guidance trains with it and samples with it as the
unconditional branch).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from diffkit.unet.blocks import AttentionBlock, Downsample, ResBlock, TimeEmbedding, Upsample, norm_silu
from diffkit.unet.config import UNetConfig


class DownLevel(nn.Module):
    """One resolution level of the encoder; pushes every intermediate feature map as a skip."""

    def __init__(self, cfg: UNetConfig, in_channels: int, out_channels: int, *, attend: bool, downsample: bool) -> None:
        super().__init__()
        emb = 4 * cfg.channels
        blocks = [(in_channels if j == 0 else out_channels, out_channels) for j in range(cfg.num_res_blocks)]
        self.res = nn.ModuleList(  # ResBlocks of this level
            ResBlock(cin, cout, emb, dropout=cfg.dropout, groups=cfg.groups, eps=cfg.norm_eps) for cin, cout in blocks
        )
        self.attn = nn.ModuleList(  # one attention block after each ResBlock, or none
            _attention(cfg, out_channels) for _ in blocks if attend
        )
        self.downsample = Downsample(out_channels, padding=cfg.downsample_padding) if downsample else None

    def forward(self, h: torch.Tensor, emb: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for j, block in enumerate(self.res):
            h = block(h, emb)
            if self.attn:
                h = self.attn[j](h)
            skips.append(h)
        if self.downsample is not None:
            h = self.downsample(h)
            skips.append(h)
        return h


class UpLevel(nn.Module):
    """One resolution level of the decoder; each ResBlock consumes one skip, concatenated on channels."""

    def __init__(
        self,
        cfg: UNetConfig,
        in_channels: int,
        out_channels: int,
        skip_channels: list[int],
        *,
        attend: bool,
        upsample: bool,
    ) -> None:
        super().__init__()
        emb = 4 * cfg.channels
        widths = [in_channels] + [out_channels] * (len(skip_channels) - 1)
        self.res = nn.ModuleList(  # ResBlocks of this level, one per popped skip
            ResBlock(cin + skip, out_channels, emb, dropout=cfg.dropout, groups=cfg.groups, eps=cfg.norm_eps)
            for cin, skip in zip(widths, skip_channels)
        )
        self.attn = nn.ModuleList(  # one attention block after each ResBlock, or none
            _attention(cfg, out_channels) for _ in skip_channels if attend
        )
        self.upsample = Upsample(out_channels) if upsample else None

    def forward(self, h: torch.Tensor, emb: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for j, block in enumerate(self.res):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if self.attn:
                h = self.attn[j](h)
        if self.upsample is not None:
            h = self.upsample(h)
        return h


class MidBlock(nn.Module):
    """ResBlock -> attention -> ResBlock at the lowest resolution."""

    def __init__(self, cfg: UNetConfig, channels: int) -> None:
        super().__init__()
        emb = 4 * cfg.channels
        self.res_1 = ResBlock(channels, channels, emb, dropout=cfg.dropout, groups=cfg.groups, eps=cfg.norm_eps)
        self.attn = _attention(cfg, channels)  # always present, as in the paper
        self.res_2 = ResBlock(channels, channels, emb, dropout=cfg.dropout, groups=cfg.groups, eps=cfg.norm_eps)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.res_2(self.attn(self.res_1(h, emb)), emb)


def _attention(cfg: UNetConfig, channels: int) -> AttentionBlock:
    return AttentionBlock(channels, heads=cfg.heads_at(channels), groups=cfg.groups, eps=cfg.norm_eps)


class UNet(nn.Module):
    """DDPM U-Net: ``forward(x, t, y=None) -> out`` with ``out.shape == x.shape[:1] + (out_channels, H, W)``.

    ``out`` is eps unless ``prediction_type`` (from the config; samplers read the attribute) says
    otherwise, e.g. "flow" for a rectified-flow model's velocity eps - x0.

    ``t`` is a float tensor [B] (or a scalar tensor) in training-timestep units; fractional values are fine.
    ``y`` is an integer tensor [B] of labels in ``[0, num_classes]`` (``num_classes`` is the NULL label),
    required exactly when the model is class-conditional. Label ranges are checked for CPU tensors only:
    checking a GPU tensor would force a host sync on every call.
    H and W must be divisible by ``2 ** (len(channel_mult) - 1)``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,  # channels of the input image x
        out_channels: int | None = None,  # channels of the eps prediction; None means in_channels
        channels: int = 128,  # base channel count ch
        channel_mult: tuple[int, ...] = (1, 2, 2, 2),  # per-level channel multipliers
        num_res_blocks: int = 2,  # ResBlocks per level on the way down
        attention_resolutions: tuple[int, ...] = (16,),  # feature-map sizes that get self-attention
        resolution: int = 32,  # spatial size of the training images
        dropout: float = 0.1,  # dropout probability inside ResBlocks
        num_classes: int | None = None,  # class count for conditioning; None is unconditional
        num_heads: int = 1,  # attention heads (when head_channels is None)
        head_channels: int | None = None,  # channels per attention head; overrides num_heads
        groups: int = 32,  # GroupNorm groups
        norm_eps: float = 1e-6,  # GroupNorm epsilon
        freq_shift: float = 1.0,  # time-embedding frequency denominator offset (1 in Ho et al.)
        flip_sin_to_cos: bool = False,  # time-embedding order: False is [sin, cos]
        downsample_padding: str = "asymmetric",  # "asymmetric" (TF SAME, Ho et al.) or "symmetric"
        prediction_type: str = "epsilon",  # what the output predicts (conversions.PREDICTION_TYPES)
    ) -> None:
        super().__init__()
        cfg = UNetConfig(
            in_channels=in_channels, out_channels=out_channels, channels=channels, channel_mult=channel_mult,
            num_res_blocks=num_res_blocks, attention_resolutions=attention_resolutions, resolution=resolution,
            dropout=dropout, num_classes=num_classes, num_heads=num_heads, head_channels=head_channels,
            groups=groups, norm_eps=norm_eps, freq_shift=freq_shift, flip_sin_to_cos=flip_sin_to_cos,
            downsample_padding=downsample_padding, prediction_type=prediction_type,
        )  # fmt: skip
        self.config = cfg
        self.prediction_type = cfg.prediction_type  # what samplers read (diffkit.samplers.model_calls)
        emb = 4 * cfg.channels
        self.time_embed = TimeEmbedding(
            cfg.channels, emb, freq_shift=cfg.freq_shift, flip_sin_to_cos=cfg.flip_sin_to_cos
        )
        # One extra row: index num_classes is the NULL label used for classifier-free guidance.
        self.label_embed = nn.Embedding(cfg.num_classes + 1, emb) if cfg.num_classes is not None else None
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.channels, 3, padding=1)

        widths = [cfg.channels * m for m in cfg.channel_mult]
        sizes = cfg.level_resolutions()
        last = len(widths) - 1
        skip_channels = [cfg.channels]  # widths of the skips, in push order (conv_in's output first)
        self.down = nn.ModuleList()
        ch = cfg.channels
        for i, width in enumerate(widths):
            attend = sizes[i] in cfg.attention_resolutions
            self.down.append(DownLevel(cfg, ch, width, attend=attend, downsample=i != last))
            skip_channels += [width] * (cfg.num_res_blocks + (i != last))
            ch = width
        self.mid = MidBlock(cfg, ch)
        self.up = nn.ModuleList()
        for i in reversed(range(len(widths))):
            popped = [skip_channels.pop() for _ in range(cfg.num_res_blocks + 1)]
            attend = sizes[i] in cfg.attention_resolutions
            self.up.append(UpLevel(cfg, ch, widths[i], popped, attend=attend, upsample=i != 0))
            ch = widths[i]
        self.norm_out = nn.GroupNorm(cfg.groups, ch, eps=cfg.norm_eps)
        self.conv_out = nn.Conv2d(ch, cfg.output_channels, 3, padding=1)
        # Zero-initialised like every last layer of a residual branch (the official code uses scale 1e-10).
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @classmethod
    def from_config(cls, config: UNetConfig) -> UNet:
        """Build a freshly initialised UNet from ``config``."""
        if not isinstance(config, UNetConfig):
            raise TypeError(f"from_config expects a UNetConfig; got {type(config).__name__} (use UNetConfig.from_dict)")
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})

    @property
    def null_label(self) -> int | None:
        """The label index meaning "no class" (``num_classes``), or None for an unconditional model."""
        return self.config.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Predict ``prediction_type`` (eps by default) of ``x = alpha_t x0 + sigma_t eps``.

        At timesteps ``t``, with labels ``y``.
        """
        t = self._check_inputs(x, t, y)
        emb = self.time_embed(t)
        if self.label_embed is not None:
            emb = emb + self.label_embed(y.long())
        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            h = level(h, emb, skips)
        h = self.mid(h, emb)
        for level in self.up:
            h = level(h, emb, skips)
        return self.conv_out(norm_silu(self.norm_out, h))

    def _check_inputs(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Validate shapes (host-side only, no device sync) and return t broadcast to [B]."""
        cfg = self.config
        factor = 2 ** (len(cfg.channel_mult) - 1)
        if x.ndim != 4 or x.shape[1] != cfg.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(
                f"x must have shape [B, {cfg.in_channels}, H, W] with H, W divisible by {factor}; got {tuple(x.shape)}"
            )
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"t must be a tensor of shape [B] (float timesteps); got {type(t).__name__}")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        t = t.to(x.device)
        if t.shape != x.shape[:1] or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(
                f"t must be a real tensor of shape [{x.shape[0]}] or a scalar; got {t.dtype} {tuple(t.shape)}"
            )
        if cfg.num_classes is None:
            if y is not None:
                raise ValueError("this UNet is unconditional (num_classes=None); do not pass y")
            return t
        if y is None:
            raise ValueError(
                f"this UNet is class-conditional: pass y, labels in [0, {cfg.num_classes}] ({cfg.num_classes} = NULL)"
            )
        if y.shape != x.shape[:1] or y.dtype.is_floating_point or y.is_complex() or y.dtype == torch.bool:
            raise ValueError(f"y must be an integer tensor of shape [{x.shape[0]}]; got {y.dtype} {tuple(y.shape)}")
        if y.device.type == "cpu" and y.numel():
            low, high = int(y.min()), int(y.max())
            if low < 0 or high > cfg.num_classes:
                raise ValueError(
                    f"labels must lie in [0, {cfg.num_classes}] ({cfg.num_classes} = NULL); got min {low}, max {high}"
                )
        return t
