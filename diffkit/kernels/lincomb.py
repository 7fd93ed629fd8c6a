"""A linear combination of tensors in one pass: how every sampler update is evaluated.

Math (coefficients are host floats, combined in float64 by the caller and rounded once):

    out = c_0 t_0 + c_1 t_1 + ... + c_{n-1} t_{n-1}

All terms share one shape and device and may differ in dtype (a float16 model
output beside a float32 sampler state): each is read in its own dtype and the sum
is formed in ``out``'s dtype. Samplers never call this directly: they write their
updates as formulas over :class:`diffkit.samplers.lincomb.LinComb` values, which
merge terms on the host and come here when a value is needed.

``lincomb_ref`` is the definition in eager PyTorch: one multiply into ``out``,
then one in-place ``add_(t, alpha=c)`` per further term (no temporaries). The
Triton kernel reads every term once and writes ``out`` once; it runs for float32
outputs on CUDA (or under the interpreter in tests), up to ``MAX_TERMS`` terms per
launch (more are folded into the output by further launches). Under
``torch.compile`` the plain sum runs, which inductor fuses itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from diffkit.kernels._backend import in_layout, interpreting, lazy_kernels, use_triton

MAX_TERMS = 8  # pointers per launch: enough for a 4th-order multistep update in (x, eps) form

Terms = Sequence[tuple[float, torch.Tensor]]


def lincomb_ref(terms: Terms, *, out: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The definition: sum_i c_i t_i in ``out`` (or a fresh tensor of ``dtype``, default the first term's)."""
    (c0, t0), rest = terms[0], terms[1:]
    dtype = out.dtype if out is not None else dtype or t0.dtype
    if t0.dtype == dtype:
        acc = torch.mul(t0, c0, out=out)
    else:  # multiplying first would round c0 t0 to t0's (lower) precision
        acc = (torch.empty_like(t0, dtype=dtype) if out is None else out).copy_(t0).mul_(c0)
    for c, t in rest:
        acc.add_(t, alpha=c)
    return acc


@lazy_kernels
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def lincomb_kernel(
        out_ptr,  # [n] float32, written: the combination
        t0_ptr, t1_ptr, t2_ptr, t3_ptr, t4_ptr, t5_ptr, t6_ptr, t7_ptr,  # [n] each, any float dtype; t_k read if k < N
        c0, c1, c2, c3, c4, c5, c6, c7,  # float32 coefficients
        n_elements,
        N: tl.constexpr,  # number of terms, 1..8
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_elements
        acc = c0 * tl.load(t0_ptr + offs, mask=mask).to(tl.float32)
        if N > 1:
            acc += c1 * tl.load(t1_ptr + offs, mask=mask).to(tl.float32)
        if N > 2:
            acc += c2 * tl.load(t2_ptr + offs, mask=mask).to(tl.float32)
        if N > 3:
            acc += c3 * tl.load(t3_ptr + offs, mask=mask).to(tl.float32)
        if N > 4:
            acc += c4 * tl.load(t4_ptr + offs, mask=mask).to(tl.float32)
        if N > 5:
            acc += c5 * tl.load(t5_ptr + offs, mask=mask).to(tl.float32)
        if N > 6:
            acc += c6 * tl.load(t6_ptr + offs, mask=mask).to(tl.float32)
        if N > 7:
            acc += c7 * tl.load(t7_ptr + offs, mask=mask).to(tl.float32)
        tl.store(out_ptr + offs, acc, mask=mask)

    configs = [
        triton.Config({"BLOCK": 1024}, num_warps=4),
        triton.Config({"BLOCK": 2048}, num_warps=8),
        triton.Config({"BLOCK": 4096}, num_warps=8),
    ]
    # The interpreter runs the first config only: autotuning it would time Python.
    return triton.autotune(configs[:1] if interpreting() else configs, key=["n_elements", "N"])(lincomb_kernel)


def _launch(terms: Terms, out: torch.Tensor) -> torch.Tensor:
    """Up to MAX_TERMS terms into ``out`` in one launch."""
    n = out.numel()
    if n == 0:
        return out
    tensors = [in_layout(t, out) for _, t in terms]
    coeffs = [float(c) for c, _ in terms]
    pad = MAX_TERMS - len(terms)
    _kernel()[lambda meta: (-(-n // meta["BLOCK"]),)](
        out, *tensors, *[tensors[0]] * pad, *coeffs, *[0.0] * pad, n, N=len(terms),  # padding is never read
    )
    return out


def lincomb(terms: Terms, *, out: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """sum_i c_i t_i: the fused kernel where it runs, else :func:`lincomb_ref` (same contract).

    ``terms`` is a non-empty sequence of (Python float, tensor) pairs of one shape and device.
    ``out`` (a tensor of that shape on that device, overlapping no term) receives the result;
    otherwise a fresh tensor of ``dtype`` (default: the first term's) does. Metadata checks only.
    """
    if not terms:
        raise ValueError("lincomb needs at least one (coefficient, tensor) term")
    first = terms[0][1]
    for c, t in terms:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"lincomb terms must be floating-point tensors, got {type(t).__name__}")
        if t.shape != first.shape or t.device != first.device:
            raise ValueError(f"lincomb terms must share one shape and device: {tuple(first.shape)} on "
                             f"{first.device} vs {tuple(t.shape)} on {t.device}")
        if not isinstance(c, (int, float)) or isinstance(c, bool):
            raise TypeError(f"lincomb coefficients must be Python numbers (host scalars), got {type(c).__name__}")
    if out is not None:
        if out.shape != first.shape or out.device != first.device:
            raise ValueError(f"out must have the terms' shape {tuple(first.shape)} on {first.device}, "
                             f"got {tuple(out.shape)} on {out.device}")
        if out.device.type != "meta" and out.untyped_storage().data_ptr() in {
                t.untyped_storage().data_ptr() for _, t in terms}:
            raise ValueError("out must not share memory with any term (the reference writes it before reading them)")
    return combine(terms, out, dtype)


def combine(terms: Terms, out: torch.Tensor | None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """:func:`lincomb` without its checks, for callers that guarantee them (``LinComb``)."""
    first = terms[0][1]
    target = out.dtype if out is not None else dtype or first.dtype
    if torch.compiler.is_compiling():  # plain ops: inductor fuses them, and out= is not functional
        acc = terms[0][0] * terms[0][1].to(target)
        for c, t in terms[1:]:
            acc = acc + c * t.to(target)
        return acc if out is None else out.copy_(acc)
    if target == torch.float32 and use_triton(*(t for _, t in terms)):  # use_triton: never while autograd records
        out = torch.empty_like(first, dtype=target) if out is None else out
        _launch(terms[:MAX_TERMS], out)
        for start in range(MAX_TERMS, len(terms), MAX_TERMS - 1):  # fold the rest in, out being term 0
            _launch([(1.0, out), *terms[start:start + MAX_TERMS - 1]], out)
        return out
    return lincomb_ref(terms, out=out, dtype=target)
