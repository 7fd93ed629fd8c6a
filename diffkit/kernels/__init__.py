"""Fused kernels, each beside its plain-PyTorch reference.

Every public launcher falls back to its reference when Triton or a GPU is
absent, so callers never branch on the hardware themselves. Triton is imported
on the first launch, never by ``import diffkit``.

    step_update      the per-step sampler update (every sampler), fused in one pass;
                     step_next, its x_next alone when nothing reads x0
    attention        non-causal attention; SDPA by default, a flash-style kernel on request
    groupnorm_silu   GroupNorm + SiLU in two passes; eager by default, the kernel on request
"""

from diffkit.kernels._backend import reference_kernels
from diffkit.kernels.attention import attention, attention_ref, fused_attention
from diffkit.kernels.groupnorm_silu import fused_groupnorm_silu, groupnorm_silu, groupnorm_silu_ref
from diffkit.kernels.philox import philox_normal_ref
from diffkit.kernels.step_update import StepCoefficients, step_next, step_update, step_update_ref

__all__ = [
    "StepCoefficients",
    "attention",
    "attention_ref",
    "fused_attention",
    "fused_groupnorm_silu",
    "groupnorm_silu",
    "groupnorm_silu_ref",
    "philox_normal_ref",
    "reference_kernels",
    "step_next",
    "step_update",
    "step_update_ref",
]
