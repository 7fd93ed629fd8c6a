"""When a Triton kernel may run.

Importing this module never touches CUDA and never imports Triton: both are
looked up lazily, on the first launch, so ``import diffkit`` works on a
CPU-only machine without Triton installed.

A kernel runs when Triton is importable and either the tensors live on a CUDA
device, or ``TRITON_INTERPRET=1`` is set and they live on the CPU (that is how
the test suite exercises the kernels on machines without a GPU).

Triton reads ``TRITON_INTERPRET`` twice: when ``@triton.jit`` decorates a
function (so each kernel module builds its kernels lazily, once per mode, see
:func:`interpreting`), and once when ``triton`` itself is first imported: the
library's own ``@triton.jit`` helpers (``tl.sum``, ``tl.sigmoid``, ``tl.randn``)
only run under the interpreter if ``triton`` was imported with the variable
set. :func:`use_triton` therefore refuses the interpreter when ``triton`` was
imported without it, and :func:`triton_on` imports it the right way.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

K = TypeVar("K")

_REFERENCE_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("diffkit_reference_only", default=False)


@contextlib.contextmanager
def reference_kernels() -> Iterator[None]:
    """Run every launcher's plain-PyTorch reference while inside (benchmarks: eager vs fused)."""
    token = _REFERENCE_ONLY.set(True)
    try:
        yield
    finally:
        _REFERENCE_ONLY.reset(token)


class AutoPolicy:
    """Whether a launcher's ``backend="auto"`` picks its fused kernel.

    ``measured_faster`` is the default, written in the kernel's module and set to
    True only with a ``benchmarks/results/`` entry showing the kernel faster on a
    GPU; :meth:`forced` overrides it while inside (benchmarks compare both ways).
    """

    def __init__(self, name: str, *, measured_faster: bool) -> None:
        self.measured_faster = measured_faster
        self._override: contextvars.ContextVar[bool | None] = contextvars.ContextVar(f"diffkit_{name}", default=None)

    def enabled(self) -> bool:
        override = self._override.get()
        return self.measured_faster if override is None else override

    @contextlib.contextmanager
    def forced(self, enabled: bool = True) -> Iterator[None]:
        token = self._override.set(bool(enabled))
        try:
            yield
        finally:
            self._override.reset(token)


@functools.cache
def triton_installed() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when Triton's CPU interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _interpreter_ready() -> bool:
    """Whether the interpreter can run kernels that call Triton's own jitted helpers."""
    triton = sys.modules.get("triton")
    if triton is None:  # the first launch imports it while TRITON_INTERPRET=1 is set
        return True
    return type(triton.language.standard.sigmoid).__name__ == "InterpretedFunction"


def use_triton(*tensors: torch.Tensor | None) -> bool:
    """Whether a Triton kernel can run on ``tensors`` (all on one device; None entries skipped).

    Not when autograd wants a graph through them: the kernels are forward only,
    so the references (which autograd follows) run instead. Called on every
    sampler update, so the common CPU answer comes first and cheaply.
    """
    present = [t for t in tensors if t is not None]
    kind = present[0].device.type
    if kind == "cuda":
        runs = triton_installed()
    elif kind == "cpu":
        runs = interpreting() and triton_installed() and _interpreter_ready()
    else:
        return False
    if not runs or _REFERENCE_ONLY.get():
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in present))


def lazy_kernels(build: Callable[[], K]) -> Callable[[], K]:
    """Wrap ``build`` (which imports Triton and returns jitted kernels) to run on first use.

    Cached once per interpreter mode, because ``@triton.jit`` decides between a
    compiled and an interpreted kernel when it decorates.
    """
    cached = functools.cache(lambda interpret: build())
    return lambda: cached(interpreting())


def in_layout(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` in the memory layout of ``like`` (a copy only when the strides differ).

    Elementwise kernels then walk every operand with one flat index, and custom
    ops return exactly the layout their fake implementation promises.
    """
    return t if t.stride() == like.stride() else torch.empty_like(like, dtype=t.dtype).copy_(t)


@contextlib.contextmanager
def triton_on(device: torch.device | str) -> Iterator[bool]:
    """Let the kernels run on ``device`` while inside (tests); yields whether they will.

    On CUDA this changes nothing. On the CPU it sets ``TRITON_INTERPRET=1``,
    imports ``triton`` under it if nothing imported it yet, and restores the
    variable on exit; it yields False when ``triton`` was already imported
    without the variable (the launchers then fall back to their references).
    """
    device = torch.device(device)
    if device.type != "cpu":
        yield triton_installed() and device.type == "cuda"
        return
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        if triton_installed():
            import triton  # noqa: F401  (the import itself is the point)
        yield use_triton(torch.empty(0))
    finally:
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before
