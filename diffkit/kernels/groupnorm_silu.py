"""GroupNorm followed by SiLU in two kernels: x read twice, y written once, no intermediate.

Math, for x of shape [N, C, *S] cut into G groups of C/G channels; group (n, g)
holds the K = (C/G) * prod(S) values x_i of its channels, and c(i) is the
channel of value i:

    mean  = (1/K) sum_i x_i
    var   = (1/K) sum_i (x_i - mean)^2                 biased, as F.group_norm
    z_i   = (x_i - mean) / sqrt(var + eps) * w[c(i)] + b[c(i)]
    y_i   = silu(z_i) = z_i * sigmoid(z_i)

In a contiguous [N, C, *S] tensor each group is one contiguous run of K values,
cut into SPLIT chunks so that a few groups still fill the GPU:

    pass 1  program (group, chunk) reduces its chunk, one block at a time, to
            (count, mean, M2) of x_i - x_0 with Chan et al.'s pairwise update,
            into a float32 [N*G, SPLIT, 3] buffer;
    pass 2  program (group, chunk) merges the SPLIT partials of its group the
            same way, then normalises, scales, shifts and applies SiLU to its chunk.

Subtracting the group's first value x_0 ("shifted data", Chan, Golub & LeVeque
1983) keeps the float32 mean small when the group's mean is large against its
spread, so (x_i - x_0) - mean loses no digits; the pairwise update avoids the
E[x^2] - E[x]^2 cancellation.

Statistics and arithmetic are float32 for float16/bfloat16/float32 inputs; y is
rounded to x's dtype once. ``backend="auto"`` stays eager: no GPU benchmark has
shown the kernel faster yet (``benchmarks/bench_kernels.py`` measures it).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from diffkit.kernels._backend import AutoPolicy, in_layout, interpreting, lazy_kernels, use_triton

BACKENDS = ("auto", "eager", "triton")
_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

# measured_faster: True only with a benchmarks/results/ entry showing the kernel faster than eager and
# than torch.compile of the pair on the target GPU.
_AUTO = AutoPolicy("fused_groupnorm_silu", measured_faster=False)

# Programs to aim for across both grids: enough to keep every SM of a large GPU busy.
_TARGET_PROGRAMS = 1024


def fused_groupnorm_silu_enabled() -> bool:
    """Whether ``backend="auto"`` uses the fused kernel where it runs; False until a GPU benchmark says otherwise."""
    return _AUTO.enabled()


def fused_groupnorm_silu(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Make ``backend="auto"`` use (or avoid) the fused kernel while inside, e.g. in the U-Net (benchmarks)."""
    return _AUTO.forced(enabled)


def groupnorm_silu_ref(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """The definition: ``silu(group_norm(x))`` in eager PyTorch."""
    return F.silu(F.group_norm(x, num_groups, weight, bias, eps))


@lazy_kernels
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def groupnorm_stats_kernel(
        x_ptr,  # [N*G, K] input, contiguous
        part_ptr,  # [N*G, SPLIT, 3] float32, written: (count, mean, M2) of each chunk, shifted by x_0
        K,  # values per group
        CHUNK,  # values per chunk, a multiple of BLOCK
        SPLIT,  # chunks per group
        BLOCK: tl.constexpr,
    ):
        group = tl.program_id(0).to(tl.int64)
        chunk = tl.program_id(1)
        shift = tl.load(x_ptr + group * K).to(tl.float32)
        start = chunk * CHUNK
        end = tl.minimum(start + CHUNK, K)
        count = 0.0
        mean = 0.0
        m2 = 0.0
        for off in range(start, end, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = offs < end
            x = tl.load(x_ptr + group * K + offs, mask=mask, other=0.0).to(tl.float32)
            x = tl.where(mask, x - shift, 0.0)
            n_b = tl.sum(mask.to(tl.float32), axis=0)
            mean_b = tl.sum(x, axis=0) / n_b
            dev = tl.where(mask, x - mean_b, 0.0)
            total = count + n_b
            delta = mean_b - mean
            mean += delta * (n_b / total)
            m2 += tl.sum(dev * dev, axis=0) + delta * delta * (count * n_b / total)
            count = total
        out = part_ptr + (group * SPLIT + chunk) * 3
        tl.store(out, count)
        tl.store(out + 1, mean)
        tl.store(out + 2, m2)

    @triton.jit
    def groupnorm_silu_apply_kernel(
        x_ptr,  # [N*G, K] input, contiguous
        w_ptr,  # [C] weight, read when HAS_WEIGHT
        b_ptr,  # [C] bias, read when HAS_BIAS
        part_ptr,  # [N*G, SPLIT, 3] float32: pass 1's partials (of x - x_0)
        y_ptr,  # [N*G, K] written: the output, x's dtype
        K,  # values per group
        CHUNK,  # values per chunk, a multiple of BLOCK
        SPLIT,  # chunks per group
        G,  # groups
        CHANNELS_PER_GROUP,
        SPATIAL,  # values per channel, prod(S)
        eps,
        HAS_WEIGHT: tl.constexpr,
        HAS_BIAS: tl.constexpr,
        SPLIT_POW2: tl.constexpr,  # SPLIT rounded up to a power of two (a tl.arange length)
        BLOCK: tl.constexpr,
    ):
        group = tl.program_id(0).to(tl.int64)
        chunk = tl.program_id(1)
        idx = tl.arange(0, SPLIT_POW2)
        parts = part_ptr + (group * SPLIT + idx) * 3
        have = idx < SPLIT
        counts = tl.load(parts, mask=have, other=0.0)
        means = tl.load(parts + 1, mask=have, other=0.0)
        total = tl.sum(counts, axis=0)
        mean = tl.sum(counts * means, axis=0) / total
        dev = means - mean
        var = tl.sum(tl.load(parts + 2, mask=have, other=0.0) + counts * dev * dev, axis=0) / total
        rstd = 1.0 / tl.sqrt(var + eps)
        shift = tl.load(x_ptr + group * K).to(tl.float32)
        first_channel = (group % G) * CHANNELS_PER_GROUP
        start = chunk * CHUNK
        end = tl.minimum(start + CHUNK, K)
        for off in range(start, end, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = offs < end
            x = tl.load(x_ptr + group * K + offs, mask=mask, other=0.0).to(tl.float32)
            z = ((x - shift) - mean) * rstd
            channel = first_channel + offs // SPATIAL
            if HAS_WEIGHT:
                z = z * tl.load(w_ptr + channel, mask=mask, other=0.0).to(tl.float32)
            if HAS_BIAS:
                z = z + tl.load(b_ptr + channel, mask=mask, other=0.0).to(tl.float32)
            y = z * tl.sigmoid(z)
            tl.store(y_ptr + group * K + offs, y.to(y_ptr.dtype.element_ty), mask=mask)

    return groupnorm_stats_kernel, groupnorm_silu_apply_kernel


def _launch(x, num_groups, weight, bias, eps):
    x = x.contiguous()  # each group must be one contiguous run
    y = torch.empty_like(x)
    N, C = x.shape[:2]
    K = x.numel() // (N * num_groups) if N * num_groups else 0
    if K == 0:
        return y
    # One explicit config, not an autotuned list: the chunk geometry below depends on the block.
    # The interpreter takes small blocks and few programs so that small test shapes span
    # several blocks per chunk and several chunks per group.
    block, num_warps, target_programs = (64, 1, 8) if interpreting() else (1024, 4, _TARGET_PROGRAMS)
    blocks_per_group = -(-K // block)
    split = min(blocks_per_group, max(1, target_programs // (N * num_groups)))
    chunk = -(-blocks_per_group // split) * block
    split = -(-K // chunk)  # the last chunks may have come out empty: drop them
    parts = torch.empty((N * num_groups, split, 3), dtype=torch.float32, device=x.device)
    stats, apply = _kernels()
    grid = (N * num_groups, split)
    stats[grid](x, parts, K, chunk, split, BLOCK=block, num_warps=num_warps)
    apply[grid](
        x, x if weight is None else weight, x if bias is None else bias, parts, y,
        K, chunk, split, num_groups, C // num_groups, K // (C // num_groups), eps,
        HAS_WEIGHT=weight is not None,
        HAS_BIAS=bias is not None,
        SPLIT_POW2=1 << (split - 1).bit_length(),
        BLOCK=block,
        num_warps=num_warps,
    )
    return y


def _groupnorm_silu_eager(x, num_groups, weight, bias, eps):
    """The kernel where it can run, else the reference."""
    if x.dtype in _KERNEL_DTYPES and use_triton(x, weight, bias):
        return _launch(x, num_groups, weight, bias, eps)
    return groupnorm_silu_ref(x, num_groups, weight, bias, eps)


@torch.library.custom_op("diffkit::groupnorm_silu", mutates_args=())
def _groupnorm_silu_op(
    x: torch.Tensor, num_groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """The "triton" backend as one opaque op for ``torch.compile``."""
    y = _groupnorm_silu_eager(x, num_groups, weight, bias, eps)
    return in_layout(y, torch.empty_like(x, memory_format=torch.contiguous_format))  # the layout the fake promises


@_groupnorm_silu_op.register_fake
def _(x, num_groups, weight, bias, eps):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def groupnorm_silu(
    x: torch.Tensor,
    num_groups: int,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """``silu(group_norm(x, num_groups, weight, bias, eps))`` for x of shape [N, C, *S].

    ``backend``: "eager" (:func:`groupnorm_silu_ref`), "triton" (the fused
    kernel, output contiguous, or the reference where Triton or a GPU is absent
    or autograd needs a graph: the kernel is forward only),
    or "auto": eager unless :func:`fused_groupnorm_silu_enabled` and the kernel can
    run on these tensors (CUDA and Triton, no autograd graph wanted).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown groupnorm_silu backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if x.ndim < 2 or num_groups < 1 or x.shape[1] % num_groups:
        raise ValueError(f"x must be [N, C, *S] with C divisible by num_groups={num_groups}; got {tuple(x.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.shape != (x.shape[1],) or t.device != x.device):
            raise ValueError(
                f"{name} must have shape ({x.shape[1]},) on {x.device}; got {tuple(t.shape)} on {t.device}"
            )
    if backend == "auto":
        # Only where the kernel itself runs (CUDA, or the interpreter in tests), never its fallback.
        fused = fused_groupnorm_silu_enabled() and x.dtype in _KERNEL_DTYPES and use_triton(x, weight, bias)
        backend = "triton" if fused else "eager"
    if backend == "eager":
        return groupnorm_silu_ref(x, num_groups, weight, bias, eps)
    if x.dtype not in _KERNEL_DTYPES:
        raise ValueError(f"the fused groupnorm_silu kernel supports float16, bfloat16 and float32; got {x.dtype}")
    # Eager calls skip the op's dispatcher: it costs tens of microseconds per call.
    run = torch.ops.diffkit.groupnorm_silu if torch.compiler.is_compiling() else _groupnorm_silu_eager
    return run(x, num_groups, weight, bias, eps)
