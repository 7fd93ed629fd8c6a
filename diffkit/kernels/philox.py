"""The counter-based normal stream that the step-update kernel draws in-kernel, in plain PyTorch.

``step_update(..., noise_seed=s, noise_step=k)`` adds ``tl.randn(s, (k << 32) + i)``
at flat index i instead of reading a noise tensor. :func:`philox_normal_ref` computes
the same numbers without Triton, so the CPU path and the tests draw the same stream.
"""

from __future__ import annotations

import math

import torch

# Philox-4x32-10 constants, as in Salmon et al. (2011) and triton.language.random.
_M32 = 0xFFFFFFFF
_ROUND_A, _ROUND_B = 0xD2511F53, 0xCD9E8D57
_KEY_A, _KEY_B = 0x9E3779B9, 0xBB67AE85
_INT32_TO_UNIT = 4.6566127342e-10  # largest scale with (2**31 - 1) * scale < 1 in float32


def _mul_hi_lo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of a * b for a 32-bit constant a and uint32 values b (held in int64)."""
    b_hi, b_lo = b >> 16, b & 0xFFFF
    p_hi, p_lo = a * b_hi, a * b_lo  # both < 2**48: no int64 overflow
    mid = p_lo + ((p_hi & 0xFFFF) << 16)
    return (p_hi >> 16) + (mid >> 32), mid & _M32


def philox_normal_ref(seed: int, step: int, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """Standard normals of the in-kernel noise stream: ``tl.randn(seed, (step << 32) + i)`` at flat index i.

    Philox-4x32-10 with key = seed (64 bit) and counter = (i, step, 0, 0); the
    first two words become uniforms as ``tl.rand`` makes them and one
    Box-Muller output is kept. Float32, computed with the int64 arithmetic of
    plain PyTorch, so the stream does not depend on Triton or the device (up to
    the last ulps of log/cos/sin).
    """
    numel = math.prod(shape)
    c0 = torch.arange(numel, dtype=torch.int64, device=device)
    c1 = torch.full_like(c0, step)
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    k0, k1 = seed & _M32, (seed >> 32) & _M32
    for _ in range(10):
        hi_b, lo_b = _mul_hi_lo(_ROUND_B, c2)
        hi_a, lo_a = _mul_hi_lo(_ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + _KEY_A) & _M32, (k1 + _KEY_B) & _M32

    def uniform(bits: torch.Tensor) -> torch.Tensor:
        signed = torch.where(bits >= 2**31, bits - 2**32, bits)  # the int32 bit pattern
        folded = torch.where(signed < 0, -signed - 1, signed)  # ~x for negatives
        return folded.to(torch.float32) * torch.tensor(_INT32_TO_UNIT, dtype=torch.float32)

    u1 = torch.clamp_min(uniform(c0), 1.0e-7)
    theta = torch.tensor(6.283185307179586, dtype=torch.float32) * uniform(c1)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(theta)).reshape(shape)
