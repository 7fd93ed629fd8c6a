"""Non-causal multi-head attention forward.

Math, per batch b and head h, with q, k, v of shape [L, D] and scale s = 1/sqrt(D):

    out = softmax(s * q @ k^T, dim=-1) @ v

The fused kernel (flash-attention's forward, Dao et al. 2022, Algorithm 1)
gives each program BLOCK_M query rows and walks the keys BLOCK_N at a time
with an online softmax, so the [L, L] score matrix is never materialised. For
the key block j, with scores S_j = s * Q K_j^T (in base 2: S_j * log2(e)):

    m_new = max(m, rowmax(S_j))
    P_j   = exp2(S_j - m_new)
    l     = l * exp2(m - m_new) + rowsum(P_j)
    acc   = acc * exp2(m - m_new) + P_j V_j
    out   = acc / l                                    after the last block

Scores, m, l and acc are float32 whatever the input dtype; P_j is rounded to
the input dtype for the second product, as in flash-attention. Keys past L are
masked to -inf, so any L works; D must be one of ``SUPPORTED_HEAD_DIMS``.

Backend policy: SDPA stays the default. ``backend="auto"`` picks the fused
kernel only when :func:`fused_attention_enabled` says so, which it does not
until a GPU benchmark in ``benchmarks/results/`` (``benchmarks/bench_kernels.py``)
shows the kernel at least as fast as SDPA; none has been run yet.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from diffkit.kernels._backend import AutoPolicy, in_layout, interpreting, lazy_kernels, use_triton

SUPPORTED_HEAD_DIMS = (32, 64, 128, 256)
_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
BACKENDS = ("auto", "sdpa", "triton", "reference")

# measured_faster: True only with a benchmarks/results/ entry showing the kernel >= SDPA on the target GPU.
_AUTO = AutoPolicy("fused_attention", measured_faster=False)


def fused_attention_enabled() -> bool:
    """Whether ``backend="auto"`` uses the fused kernel where it runs; False until a GPU benchmark says otherwise."""
    return _AUTO.enabled()


def fused_attention(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Make ``backend="auto"`` use (or avoid) the fused kernel while inside, e.g. in the U-Net (benchmarks)."""
    return _AUTO.forced(enabled)


def attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The definition: softmax(q k^T / sqrt(D)) v in the inputs' dtype, shapes [B, H, L, D]."""
    scale = q.shape[-1] ** -0.5
    scores = torch.einsum("bhld,bhmd->bhlm", q, k) * scale
    return torch.einsum("bhlm,bhmd->bhld", scores.softmax(dim=-1), v)


@lazy_kernels
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def attention_kernel(
        q_ptr,  # [B, H, L, D] queries, any strides
        k_ptr,  # [B, H, L, D] keys, any strides
        v_ptr,  # [B, H, L, D] values, any strides
        o_ptr,  # [B, H, L, D] written: the output, any strides
        stride_qb, stride_qh, stride_ql, stride_qd,
        stride_kb, stride_kh, stride_kl, stride_kd,
        stride_vb, stride_vh, stride_vl, stride_vd,
        stride_ob, stride_oh, stride_ol, stride_od,
        H,  # heads
        L,  # sequence length
        qk_scale,  # log2(e) / sqrt(D): scores go straight to base 2
        HEAD_DIM: tl.constexpr,
        DOT_DTYPE: tl.constexpr,  # operand dtype of tl.dot: the input dtype (see _launch)
        DOT_PRECISION: tl.constexpr,  # "ieee" for float32 operands (no silent TF32)
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = (pid_bh // H).to(tl.int64)
        h = (pid_bh % H).to(tl.int64)
        q_ptr += b * stride_qb + h * stride_qh
        k_ptr += b * stride_kb + h * stride_kh
        v_ptr += b * stride_vb + h * stride_vh
        o_ptr += b * stride_ob + h * stride_oh

        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        row_ok = offs_m[:, None] < L
        q = tl.load(q_ptr + offs_m[:, None] * stride_ql + offs_d[None, :] * stride_qd, mask=row_ok, other=0.0)

        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
        for start_n in range(0, L, BLOCK_N):
            offs_n = start_n + tl.arange(0, BLOCK_N)
            key_ok = offs_n < L
            k_t = tl.load(  # [HEAD_DIM, BLOCK_N]: K_j transposed by the addressing
                k_ptr + offs_n[None, :] * stride_kl + offs_d[:, None] * stride_kd, mask=key_ok[None, :], other=0.0
            )
            s = tl.dot(q.to(DOT_DTYPE), k_t.to(DOT_DTYPE), input_precision=DOT_PRECISION) * qk_scale
            s = tl.where(key_ok[None, :], s, float("-inf"))
            # Every block holds at least one real key (start_n < L), so m_new is finite: no inf - inf.
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            rescale = tl.math.exp2(m_i - m_new)
            p = tl.math.exp2(s - m_new[:, None])
            l_i = l_i * rescale + tl.sum(p, axis=1)
            v = tl.load(
                v_ptr + offs_n[:, None] * stride_vl + offs_d[None, :] * stride_vd, mask=key_ok[:, None], other=0.0
            )
            pv = tl.dot(p.to(v.dtype).to(DOT_DTYPE), v.to(DOT_DTYPE), input_precision=DOT_PRECISION)
            acc = acc * rescale[:, None] + pv
            m_i = m_new
        out = acc / l_i[:, None]
        o_ptrs = o_ptr + offs_m[:, None] * stride_ol + offs_d[None, :] * stride_od
        tl.store(o_ptrs, out.to(o_ptr.dtype.element_ty), mask=row_ok)

    configs = [
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 32}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 32}, num_warps=4, num_stages=2),
        # float32 at head dim 256 needs ~70 KB of shared memory here, more in every config above.
        triton.Config({"BLOCK_M": 32, "BLOCK_N": 32}, num_warps=4, num_stages=1),
    ]
    # The interpreter runs one small config: autotuning it would time Python, and
    # 32-row blocks make the test lengths (64, 100) span several blocks.
    interpreted = [triton.Config({"BLOCK_M": 32, "BLOCK_N": 32})]
    return triton.autotune(interpreted if interpreting() else configs, key=["L", "HEAD_DIM"])(attention_kernel)


def _launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    import triton.language as tl

    B, H, L, D = q.shape
    out = torch.empty_like(q)
    if out.numel() == 0:
        return out
    dot_dtype = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32}[q.dtype]
    if interpreting() and dot_dtype == tl.bfloat16:
        # Triton's interpreter multiplies bfloat16 operands as their uint16 bit patterns; products
        # of bfloat16 values are exact in float32, so float32 operands give what tensor cores compute.
        dot_dtype = tl.float32
    _kernel()[lambda meta: (-(-L // meta["BLOCK_M"]), B * H)](
        q, k, v, out, *q.stride(), *k.stride(), *v.stride(), *out.stride(), H, L, math.log2(math.e) / math.sqrt(D),
        HEAD_DIM=D,
        DOT_DTYPE=dot_dtype,
        DOT_PRECISION="ieee" if dot_dtype == tl.float32 else "tf32",  # tf32 is ignored for 16-bit operands
    )
    return out


def _fused_attention_eager(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The kernel where it can run, else the reference."""
    return _launch(q, k, v) if use_triton(q, k, v) else attention_ref(q, k, v)


@torch.library.custom_op("diffkit::fused_attention", mutates_args=())
def _fused_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The "triton" backend as one opaque op for ``torch.compile``."""
    return in_layout(_fused_attention_eager(q, k, v), torch.empty_like(q))  # the layout the fake promises


@_fused_attention_op.register_fake
def _(q, k, v):
    return torch.empty_like(q)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    """Attention over tensors of shape [B, H, L, D].

    ``backend``: "sdpa" (``F.scaled_dot_product_attention``), "triton" (the fused
    kernel, or its reference where Triton or a GPU is absent or autograd needs a
    graph: the kernel is forward only), "reference"
    (:func:`attention_ref`), or "auto": SDPA unless :func:`fused_attention_enabled` and
    the kernel can run on these tensors (CUDA and Triton, no autograd graph wanted).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if q.ndim != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(
            f"attention expects q, k, v of one shape [B, H, L, D]; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.dtype != q.dtype or v.dtype != q.dtype or k.device != q.device or v.device != q.device:
        raise ValueError(
            f"attention expects q, k, v on one device with one dtype; got {q.dtype}/{q.device}, "
            f"{k.dtype}/{k.device}, {v.dtype}/{v.device}"
        )
    if backend == "auto":
        kernel_takes = q.shape[-1] in SUPPORTED_HEAD_DIMS and q.dtype in _KERNEL_DTYPES
        # Only where the kernel itself runs (CUDA, or the interpreter in tests): its reference,
        # which materialises the scores, is never picked over SDPA.
        fused = fused_attention_enabled() and kernel_takes and use_triton(q, k, v)
        backend = "triton" if fused else "sdpa"
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    if backend == "reference":
        return attention_ref(q, k, v)
    if q.shape[-1] not in SUPPORTED_HEAD_DIMS:
        raise ValueError(
            f"the fused attention kernel supports head dims {', '.join(map(str, SUPPORTED_HEAD_DIMS))}; "
            f"got {q.shape[-1]} (use backend='sdpa')"
        )
    if q.dtype not in _KERNEL_DTYPES:
        raise ValueError(f"the fused attention kernel supports float16, bfloat16 and float32; got {q.dtype}")
    # Eager calls skip the op's dispatcher: it costs tens of microseconds per call.
    return (torch.ops.diffkit.fused_attention if torch.compiler.is_compiling() else _fused_attention_eager)(q, k, v)
