"""Non-causal multi-head attention forward.

Math, per batch b and head h, with q, k, v of shape [L, D] and scale s = 1/sqrt(D):

    out = softmax(s * q @ k^T, dim=-1) @ v

The fused kernel (to come) tiles over keys with an online softmax, so the
[L, L] score matrix is never materialised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The definition: softmax(q k^T / sqrt(D)) v in the inputs' dtype, shapes [B, H, L, D]."""
    scale = q.shape[-1] ** -0.5
    scores = torch.einsum("bhld,bhmd->bhlm", q, k) * scale
    return torch.einsum("bhlm,bhmd->bhld", scores.softmax(dim=-1), v)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention over tensors of shape [B, H, L, D]; SDPA until the fused kernel lands."""
    if q.ndim != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"attention expects q, k, v of one shape [B, H, L, D]; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    return F.scaled_dot_product_attention(q, k, v)
