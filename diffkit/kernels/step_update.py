"""The per-step sampler update: one elementwise pass that every sampler shares.

Math (all coefficients are host scalars computed in float64 from the schedule,
so the update itself is schedule-agnostic):

    eps    = eps_u + w * (eps_c - eps_u)        only when ``eps_uncond`` is given
    x0     = (x - sigma * eps) / alpha          the data prediction at this step
    x_next = cx * base + c0 * x0 + c1 * prev + cn * noise   (base defaults to x)

``base`` is the state being advanced when it differs from the point where the
model was evaluated (the second stage of DPM++ SDE advances x_t using an x0
predicted at an intermediate point); by default it is ``x`` itself.
``prev`` is the multistep history (the previous x0 for DPM-Solver++(2M), the
first-stage x0 for DPM++ SDE) and ``noise`` a standard normal draw. Returns
``(x_next, x0)``; ``x0`` is the new history entry and what callbacks see.

Every registered sampler reduces to this form: DDPM's posterior mean is linear
in (x, x0); DDIM rewrites eps = (x - alpha x0) / sigma; DPM-Solver++ updates are
linear in x and in a combination of the current and previous x0.

The kernel makes one pass over memory: it reads x, eps (and, when given,
eps_uncond, base, prev, noise) once and writes x_next and x0, with the
coefficients combined on the host in float64 and rounded to float32 once:

    x0     = x * (1/alpha) - eps * (sigma/alpha)
    x_next = (cx + c0/alpha) * x - (c0 sigma/alpha) * eps + c1 * prev + cn * noise

(with ``base``: cx * base + (c0/alpha) * x - ...). A float32 state runs the
kernel; float64 and other states run the reference.

:func:`step_next` returns x_next alone, for loops in which nothing reads x0 (no
callback, and x0 is not the history): the kernel skips one full-tensor write, and
on CPU the expanded form above takes two eager passes fewer than the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffkit.kernels._backend import in_layout, interpreting, lazy_kernels, use_triton
from diffkit.kernels.philox import philox_normal_ref


@dataclass(frozen=True)
class StepCoefficients:
    """Host-side float64 scalars of one update (see the module docstring)."""

    alpha: float  # alpha_t = sqrt(abar_t) of the current state
    sigma: float  # sigma_t = sqrt(1 - abar_t) of the current state
    cx: float  # weight of the current state x
    c0: float  # weight of the current data prediction x0
    c1: float = 0.0  # weight of the history entry ``prev``
    cn: float = 0.0  # weight of the standard-normal ``noise``


def step_update_ref(
    x: torch.Tensor,
    eps: torch.Tensor,
    coeffs: StepCoefficients,
    prev: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    eps_uncond: torch.Tensor | None = None,
    guidance: float = 1.0,
    base: torch.Tensor | None = None,
    *,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition, in eager PyTorch, computed in ``x``'s dtype (the sampler state).

    ``out`` = (x_next, x0) buffers to write into instead of allocating (see :func:`step_update`).
    """
    # Each output is one tensor updated in place, with the scaled terms folded into
    # add(..., alpha=c): on CPU this moves about a third of the memory of one temporary per
    # product and sum (benchmarks/bench_overhead.py). Inputs are never written.
    eps = _guided(eps, eps_uncond, guidance, x.dtype)
    next_out, x0_out = (None, None) if out is None else out
    x0 = torch.sub(x, eps, alpha=coeffs.sigma, out=x0_out).div_(coeffs.alpha)  # (x - sigma eps) / alpha
    x_next = torch.mul(x if base is None else base, coeffs.cx, out=next_out).add_(x0, alpha=coeffs.c0)
    return _add_history_and_noise(x_next, coeffs, prev, noise), x0


def _guided(eps: torch.Tensor, eps_uncond: torch.Tensor | None, guidance: float, dtype: torch.dtype) -> torch.Tensor:
    """eps in the state's dtype, with classifier-free guidance eps_u + w (eps - eps_u) applied when given."""
    eps = eps.to(dtype)
    if eps_uncond is None:
        return eps
    eps_u = eps_uncond.to(dtype)
    return torch.sub(eps, eps_u).mul_(guidance).add_(eps_u)


def _x_next_expanded(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, out):
    """x_next of :func:`step_update_ref` in the kernel's expanded form, without materialising x0."""
    eps = _guided(eps, eps_uncond, guidance, x.dtype)
    a = coeffs.c0 / coeffs.alpha  # the weight of x in c0 x0 = (c0 / alpha) (x - sigma eps)
    if base is None:
        x_next = torch.mul(x, coeffs.cx + a, out=out)
    else:
        x_next = torch.mul(base, coeffs.cx, out=out).add_(x, alpha=a)
    x_next.add_(eps, alpha=-a * coeffs.sigma)
    return _add_history_and_noise(x_next, coeffs, prev, noise)


def _add_history_and_noise(x_next, coeffs, prev, noise):
    """x_next += c1 prev + cn noise, in place, skipping absent or zero-weight terms."""
    if prev is not None and coeffs.c1 != 0.0:
        x_next.add_(prev, alpha=coeffs.c1)
    if noise is not None and coeffs.cn != 0.0:
        x_next.add_(noise.to(x_next.dtype), alpha=coeffs.cn)
    return x_next


@lazy_kernels
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit(do_not_specialize=["seed", "step"])
    def step_update_kernel(
        x_ptr,  # [n] float32: the state x at which the model was evaluated
        eps_ptr,  # [n] float16/bfloat16/float32: eps (the conditional one under guidance)
        uncond_ptr,  # [n] like eps: the unconditional eps, read when HAS_UNCOND
        base_ptr,  # [n] float32: the state being advanced, read when HAS_BASE
        prev_ptr,  # [n] float32: the history entry, read when HAS_PREV
        noise_ptr,  # [n] float16/bfloat16/float32: standard normals, read when HAS_NOISE
        x_next_ptr,  # [n] float32, written: the next state
        x0_ptr,  # [n] float32, written when STORE_X0: the data prediction (new history entry)
        n_elements,
        guidance,  # w
        inv_alpha,  # 1 / alpha
        sigma_over_alpha,  # sigma / alpha
        coef_x,  # weight of x in x_next: cx + c0 / alpha without base, c0 / alpha with it
        coef_eps,  # weight of eps in x_next: -c0 * sigma / alpha
        cx,  # weight of base
        c1,  # weight of prev
        cn,  # weight of the noise
        seed,  # key of the in-kernel noise, used when GEN_NOISE
        step,  # second counter word of the in-kernel noise
        HAS_UNCOND: tl.constexpr,
        HAS_BASE: tl.constexpr,
        HAS_PREV: tl.constexpr,
        HAS_NOISE: tl.constexpr,
        GEN_NOISE: tl.constexpr,
        STORE_X0: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_elements
        x = tl.load(x_ptr + offs, mask=mask)
        eps = tl.load(eps_ptr + offs, mask=mask).to(tl.float32)
        if HAS_UNCOND:
            eps_u = tl.load(uncond_ptr + offs, mask=mask).to(tl.float32)
            eps = eps_u + guidance * (eps - eps_u)
        x_next = coef_x * x + coef_eps * eps
        if HAS_BASE:
            x_next += cx * tl.load(base_ptr + offs, mask=mask)
        if HAS_PREV:
            x_next += c1 * tl.load(prev_ptr + offs, mask=mask)
        if HAS_NOISE:
            x_next += cn * tl.load(noise_ptr + offs, mask=mask).to(tl.float32)
        if GEN_NOISE:
            x_next += cn * tl.randn(seed, step.to(tl.int64) * 4294967296 + offs)
        tl.store(x_next_ptr + offs, x_next, mask=mask)
        if STORE_X0:
            tl.store(x0_ptr + offs, x * inv_alpha - eps * sigma_over_alpha, mask=mask)

    configs = [
        triton.Config({"BLOCK": 1024}, num_warps=4),
        triton.Config({"BLOCK": 2048}, num_warps=8),
        triton.Config({"BLOCK": 4096}, num_warps=8),
    ]
    # The interpreter runs the first config only: autotuning it would time Python.
    return triton.autotune(configs[:1] if interpreting() else configs, key=["n_elements"])(step_update_kernel)


def _launch(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, noise_seed, noise_step, outs, store_x0):
    x_next = torch.empty_like(x) if outs is None else outs[0]
    x0 = None if not store_x0 else torch.empty_like(x) if outs is None else outs[1]
    n = x.numel()
    if n == 0:
        return x_next, x0
    x_, eps_ = in_layout(x, x_next), in_layout(eps, x_next)
    present = lambda t: x_ if t is None else in_layout(t, x_next)  # noqa: E731  (x_ stands in, never read)
    alpha, sigma, cx, c0, c1, cn = (coeffs.alpha, coeffs.sigma, coeffs.cx, coeffs.c0, coeffs.c1, coeffs.cn)
    # Coefficients combined in float64 here, rounded to float32 once at launch.
    coef_x = c0 / alpha + (cx if base is None else 0.0)
    _kernel()[lambda meta: (-(-n // meta["BLOCK"]),)](
        x_, eps_, present(eps_uncond), present(base), present(prev), present(noise), x_next,
        x_next if x0 is None else x0, n,
        guidance, 1.0 / alpha, sigma / alpha, coef_x, -c0 * sigma / alpha, cx, c1, cn,
        0 if noise_seed is None else noise_seed, noise_step,
        HAS_UNCOND=eps_uncond is not None,
        HAS_BASE=base is not None,
        HAS_PREV=prev is not None and c1 != 0.0,
        HAS_NOISE=noise is not None and cn != 0.0,
        GEN_NOISE=noise_seed is not None and cn != 0.0,
        STORE_X0=store_x0,
    )
    return x_next, x0


def _eager(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, noise_seed, noise_step, outs, store_x0):
    """(x_next, x0), x0 None unless ``store_x0``: the kernel where it can run, else the references."""
    if x.dtype == torch.float32 and use_triton(x, eps, prev, noise, eps_uncond, base):
        return _launch(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, noise_seed, noise_step, outs, store_x0)
    if noise_seed is not None and coeffs.cn != 0.0:
        noise = philox_normal_ref(noise_seed, noise_step, x.shape, x.device)
    if store_x0:
        return step_update_ref(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, out=outs)
    out = None if outs is None else outs[0]
    return _x_next_expanded(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, out), None


@torch.library.custom_op("diffkit::step_update", mutates_args=())
def _step_update_op(
    x: torch.Tensor,
    eps: torch.Tensor,
    eps_uncond: torch.Tensor | None,
    base: torch.Tensor | None,
    prev: torch.Tensor | None,
    noise: torch.Tensor | None,
    alpha: float,
    sigma: float,
    cx: float,
    c0: float,
    c1: float,
    cn: float,
    guidance: float,
    noise_seed: int | None,
    noise_step: int,
    store_x0: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`step_update` / :func:`step_next` as one opaque op for ``torch.compile``.

    The coefficients come unpacked into floats; without ``store_x0`` the second
    output is an empty placeholder (ops return a fixed number of tensors).
    """
    coeffs = StepCoefficients(alpha, sigma, cx, c0, c1, cn)
    x_next, x0 = _eager(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, noise_seed, noise_step, None, store_x0)
    like = torch.empty_like(x)  # the layout the fake promises; the reference's eager ops may pick another
    return in_layout(x_next, like), x.new_empty(0) if x0 is None else in_layout(x0, like)


@_step_update_op.register_fake
def _(x, eps, eps_uncond, base, prev, noise, alpha, sigma, cx, c0, c1, cn, guidance, noise_seed, noise_step, store_x0):
    return torch.empty_like(x), torch.empty_like(x) if store_x0 else x.new_empty(0)


def step_update(
    x: torch.Tensor,
    eps: torch.Tensor,
    coeffs: StepCoefficients,
    prev: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    eps_uncond: torch.Tensor | None = None,
    guidance: float = 1.0,
    base: torch.Tensor | None = None,
    *,
    noise_seed: int | None = None,
    noise_step: int = 0,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sampler update; see :func:`step_update_ref` for the positional arguments.

    Runs the fused kernel for a float32 state on a CUDA device (or under the
    Triton interpreter), else the reference. Under ``torch.compile`` it is the
    custom op ``torch.ops.diffkit.step_update``, one opaque node; its float
    arguments are specialised, so coefficients that change every step recompile
    a graph that contains the update (compile the model, not the sampler loop).

    ``noise_seed`` (opt-in) draws the noise inside the kernel from the
    counter-based stream :func:`philox_normal_ref` at ``(noise_seed, noise_step)``
    instead of reading a ``noise`` tensor: one fewer tensor read and no separate
    randn launch, but a *different random stream* from ``torch.randn`` with a
    generator, so samples change (reproducibly: the reference path draws the
    same stream). Give a distinct ``noise_step`` per step.

    ``out`` = (x_next, x0): two tensors of x's shape, dtype, device and layout,
    sharing no memory with the inputs or each other, that receive the results
    (and are returned) instead of fresh allocations. Samplers pass back tensors
    their own loop made and no longer needs (:func:`diffkit.samplers.base.reusable`).
    Eager only, and not while autograd records the inputs.
    """
    return _update(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, noise_seed, noise_step, out, True)


def step_next(
    x: torch.Tensor,
    eps: torch.Tensor,
    coeffs: StepCoefficients,
    prev: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    eps_uncond: torch.Tensor | None = None,
    guidance: float = 1.0,
    base: torch.Tensor | None = None,
    *,
    noise_seed: int | None = None,
    noise_step: int = 0,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """x_next of :func:`step_update` alone (same arguments), for loops in which nothing reads x0.

    Same value up to rounding: the kernel leaves out the x0 store, and the CPU path
    computes x_next in the expanded form of the module docstring, never forming x0.
    ``out`` is one tensor, with the rules of :func:`step_update`'s.
    """
    outs = None if out is None else (out,)
    return _update(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, noise_seed, noise_step, outs, False)[0]


def _update(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, noise_seed, noise_step, outs, store_x0):
    _validate(x, eps, coeffs, prev, noise, eps_uncond, base, noise_seed, noise_step)
    if outs is not None:
        _validate_out(outs, 2 if store_x0 else 1, x, eps, prev, noise, eps_uncond, base)
    if torch.compiler.is_compiling():
        return torch.ops.diffkit.step_update(
            x, eps, eps_uncond, base, prev, noise,
            coeffs.alpha, coeffs.sigma, coeffs.cx, coeffs.c0, coeffs.c1, coeffs.cn, guidance,
            noise_seed, noise_step, store_x0,
        )
    # Eager calls skip the op's dispatcher: it costs tens of microseconds per call, a kernel's worth.
    return _eager(x, eps, coeffs, prev, noise, eps_uncond, guidance, base, noise_seed, noise_step, outs, store_x0)


def _validate(x, eps, coeffs, prev, noise, eps_uncond, base, noise_seed, noise_step) -> None:
    """Metadata checks only: nothing here reads tensor values (no host-device synchronisation)."""
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point state, got {x.dtype}")
    named = {"eps": eps, "prev": prev, "noise": noise, "eps_uncond": eps_uncond, "base": base}
    for name, t in named.items():
        if t is None:
            continue
        if t.shape != x.shape:
            raise ValueError(f"{name} must have x's shape {tuple(x.shape)}, got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device}, x on {x.device}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {t.dtype}")
    for name in ("prev", "base"):  # state tensors: mixing dtypes would silently promote the result
        if named[name] is not None and named[name].dtype != x.dtype:
            raise ValueError(f"{name} must have the state's dtype {x.dtype}, got {named[name].dtype}")
    if coeffs.alpha == 0.0:
        raise ValueError("alpha must be nonzero (x0 = (x - sigma * eps) / alpha)")
    if noise_seed is not None:
        if noise is not None:
            raise ValueError("give either noise or noise_seed, not both")
        if not 0 <= noise_seed < 2**63:
            raise ValueError(f"noise_seed must lie in [0, 2**63), got {noise_seed}")
        if not 0 <= noise_step < 2**31:
            raise ValueError(f"noise_step must lie in [0, 2**31), got {noise_step}")


def _validate_out(outs, count, x, *inputs) -> None:
    """``outs``: ``count`` writable buffers like ``x`` that overlap no input nor each other (metadata only)."""
    if not (isinstance(outs, tuple) and len(outs) == count and all(isinstance(t, torch.Tensor) for t in outs)):
        raise TypeError("out must be a tensor for step_next, a tuple of two tensors (x_next, x0) for step_update")
    if torch.compiler.is_compiling():
        raise ValueError("out is for eager calls only; under torch.compile the op returns fresh tensors")
    # Checked on every step of a sampler, so the common case (x dense, out alike) stays a few comparisons.
    shape, dtype, device, strides = x.shape, x.dtype, x.device, x.stride()
    for t in outs:
        if t.shape != shape or t.dtype != dtype or t.device != device or t.stride() != strides:
            layout = torch.empty_like(x, device="meta").stride()  # the layout fresh outputs get
            if t.shape == shape and t.dtype == dtype and t.device == device and t.stride() == layout:
                continue
            raise ValueError(
                f"out must match x (shape {tuple(shape)}, {dtype}, {device}, strides {layout}); "
                f"got shape {tuple(t.shape)}, {t.dtype}, {t.device}, strides {t.stride()}"
            )
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *inputs, *outs)):
        raise ValueError("out cannot be used while autograd records the update; pass out=None")
    if device.type == "meta":  # no memory to overlap
        return
    written = [t.untyped_storage().data_ptr() for t in outs]
    taken = {t.untyped_storage().data_ptr() for t in (x, *inputs) if t is not None}
    if len(set(written)) < len(written) or taken.intersection(written):
        raise ValueError("out buffers must not share memory with each other or with any input")
