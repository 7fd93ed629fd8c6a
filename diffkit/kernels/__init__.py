"""Fused kernels, each beside its plain-PyTorch reference.

Every public launcher falls back to its reference when Triton or a GPU is
absent, so callers never branch on the hardware themselves.
"""

from diffkit.kernels.attention import attention, attention_ref
from diffkit.kernels.step_update import StepCoefficients, step_update, step_update_ref

__all__ = ["StepCoefficients", "attention", "attention_ref", "step_update", "step_update_ref"]
