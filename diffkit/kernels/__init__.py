"""Fused kernels, each beside its plain-PyTorch reference.

Every public launcher falls back to its reference when Triton or a GPU is
absent, so callers never branch on the hardware themselves. Triton is imported
on the first launch, never by ``import diffkit``.

    lincomb          a linear combination of tensors in one pass: how every sampler update is evaluated
    attention        non-causal attention; SDPA by default, a flash-style kernel on request
    groupnorm_silu   GroupNorm + SiLU in two passes; eager by default, the kernel on request
"""

from diffkit.kernels._backend import reference_kernels
from diffkit.kernels.attention import attention, attention_ref, fused_attention
from diffkit.kernels.groupnorm_silu import fused_groupnorm_silu, groupnorm_silu, groupnorm_silu_ref
from diffkit.kernels.lincomb import lincomb, lincomb_ref

__all__ = [
    "attention",
    "attention_ref",
    "fused_attention",
    "fused_groupnorm_silu",
    "groupnorm_silu",
    "groupnorm_silu_ref",
    "lincomb",
    "lincomb_ref",
    "reference_kernels",
]
