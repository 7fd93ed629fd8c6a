"""Building blocks of the reference U-Net (Ho et al. 2020, arXiv:2006.11239, Appendix B).

Parameter names mirror diffusers' ``UNet2DModel`` closely enough that the key
map in ``diffusers_weights.py`` stays a readable table; the computation is the
one of the official TensorFlow code (``diffusion_tf/models/unet.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffkit.kernels.attention import attention
from diffkit.kernels.groupnorm_silu import groupnorm_silu


def timestep_embedding(t: torch.Tensor, dim: int, *, freq_shift: float, flip_sin_to_cos: bool) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps ``t`` [B] -> [B, dim], float32.

    emb[k] = sin(t w_k), emb[dim/2 + k] = cos(t w_k), w_k = exp(-ln(10000) k / (dim/2 - freq_shift)).
    Computed in float32 like the official code and diffusers, so converted weights see the same inputs.
    """
    half = dim // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - freq_shift)
    angles = t.float()[:, None] * torch.exp(exponent)[None, :]
    sin, cos = torch.sin(angles), torch.cos(angles)
    return torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of t followed by Linear -> SiLU -> Linear, to ``4 * channels`` features."""

    def __init__(self, channels: int, out_features: int, *, freq_shift: float, flip_sin_to_cos: bool) -> None:
        super().__init__()
        self.channels = channels  # width of the sinusoidal embedding (the base channel count)
        self.freq_shift = freq_shift  # see timestep_embedding
        self.flip_sin_to_cos = flip_sin_to_cos  # see timestep_embedding
        self.linear_1 = nn.Linear(channels, out_features)
        self.linear_2 = nn.Linear(out_features, out_features)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.channels, freq_shift=self.freq_shift, flip_sin_to_cos=self.flip_sin_to_cos)
        emb = emb.to(self.linear_1.weight.dtype)
        return self.linear_2(F.silu(self.linear_1(emb)))


def norm_silu(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """SiLU(norm(x)) through :func:`diffkit.kernels.groupnorm_silu` (eager unless its fused kernel is switched on)."""
    return groupnorm_silu(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv -> (+ projected time embedding) -> GroupNorm -> SiLU -> dropout -> conv, plus skip."""

    def __init__(
        self, in_channels: int, out_channels: int, emb_features: int, *, dropout: float, groups: int, eps: float
    ) -> None:
        super().__init__()
        self.norm_1 = nn.GroupNorm(groups, in_channels, eps=eps)  # normalises the block input
        self.conv_1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)  # first 3x3 conv
        self.time_proj = nn.Linear(emb_features, out_channels)  # per-block projection of SiLU(embedding)
        self.norm_2 = nn.GroupNorm(groups, out_channels, eps=eps)  # normalises after the embedding is added
        self.dropout = nn.Dropout(dropout)  # before the second conv, as in the paper
        self.conv_2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)  # second 3x3 conv, zero-initialised
        # A 1x1 conv only where the residual changes width (the official code's NIN shortcut).
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        nn.init.zeros_(self.conv_2.weight)
        nn.init.zeros_(self.conv_2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv_1(norm_silu(self.norm_1, x))
        h = h + self.time_proj(F.silu(emb))[:, :, None, None]
        h = self.conv_2(self.dropout(norm_silu(self.norm_2, h)))
        return (x if self.skip is None else self.skip(x)) + h


class AttentionBlock(nn.Module):
    """x + to_out(attention(q, k, v)) with q, k, v linear projections of GroupNorm(x) over the H*W positions."""

    def __init__(self, channels: int, *, heads: int, groups: int, eps: float) -> None:
        super().__init__()
        self.heads = heads  # attention heads; each has channels / heads channels
        self.norm = nn.GroupNorm(groups, channels, eps=eps)  # normalises the block input
        self.to_q = nn.Linear(channels, channels)  # query projection
        self.to_k = nn.Linear(channels, channels)  # key projection
        self.to_v = nn.Linear(channels, channels)  # value projection
        self.to_out = nn.Linear(channels, channels)  # output projection, zero-initialised
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)  # [B, L, C]

        def split_heads(proj: nn.Linear) -> torch.Tensor:  # [B, L, C] -> [B, heads, L, C / heads]
            return proj(tokens).reshape(b, h * w, self.heads, c // self.heads).transpose(1, 2)

        out = attention(split_heads(self.to_q), split_heads(self.to_k), split_heads(self.to_v))
        out = self.to_out(out.transpose(1, 2).reshape(b, h * w, c))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    """Stride-2 3x3 conv halving the spatial size."""

    def __init__(self, channels: int, *, padding: str) -> None:
        super().__init__()
        # "asymmetric" pads only right/bottom, which is TensorFlow's SAME padding for a stride-2 conv
        # on even sizes (the official DDPM code); "symmetric" pads one pixel on every side.
        self.asymmetric = padding == "asymmetric"  # see above
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0 if self.asymmetric else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.asymmetric:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)  # smooths the nearest-neighbour copy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
