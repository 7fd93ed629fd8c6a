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
imported without it, and :func:`cpu_interpreter` imports it the right way.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

K = TypeVar("K")


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


def use_triton(*tensors: torch.Tensor) -> bool:
    """Whether a Triton kernel can run on ``tensors`` (all on one device)."""
    if not triton_installed():
        return False
    device = tensors[0].device
    if device.type == "cuda":
        return True
    return device.type == "cpu" and interpreting() and _interpreter_ready()


def lazy_kernels(build: Callable[[], K]) -> Callable[[], K]:
    """Wrap ``build`` (which imports Triton and returns jitted kernels) to run on first use.

    Cached once per interpreter mode, because ``@triton.jit`` decides between a
    compiled and an interpreted kernel when it decorates.
    """
    cached = functools.cache(lambda interpret: build())
    return lambda: cached(interpreting())


@contextlib.contextmanager
def cpu_interpreter() -> Iterator[bool]:
    """Run Triton kernels on CPU tensors through the interpreter while inside (tests).

    Imports ``triton`` under ``TRITON_INTERPRET=1`` if nothing imported it yet,
    and restores the variable on exit. Yields whether the interpreter is usable:
    False when ``triton`` was already imported without the variable, in which
    case the launchers fall back to their references.
    """
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
