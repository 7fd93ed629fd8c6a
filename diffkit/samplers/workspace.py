"""Where one sampler call keeps its states: a new value reuses a buffer that nothing else holds.

On a CPU a fresh tensor of a few MB is new memory from the OS on every step
(glibc hands large freed blocks back), and faulting its pages in costs about as
much as the update itself (~300 us of a 700 us DDIM step at 16x4x64x64 on one
core; ``benchmarks/bench_overhead.py``). So the states a sampler run evaluates go
into buffers of this workspace, and a buffer is written again only when nothing
else refers to it: no Python reference besides the workspace's own (a sampler's
history, a model or a callback that kept it), and no other tensor on its storage
(a view kept anywhere). Nobody has to promise anything: a model may keep the x
it was given, a callback what it was shown. The caller's tensors are never
among the buffers, and everything is released when the call returns.

No reuse (fresh tensors, as plain PyTorch) for states under ``REUSE_MIN_BYTES``,
which malloc recycles itself, under ``torch.compile`` (it plans memory), and where
the storage-reference count is unavailable (the check would be blind).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch

# Below this size malloc serves and recycles blocks from its own heap, so fresh tensors cost no page
# faults and reuse would only add its checks (glibc's default mmap threshold, 128 KiB).
REUSE_MIN_BYTES = 128 * 1024

_storage_use_count: Callable[[int], int] | None = getattr(torch._C, "_storage_Use_Count", None)


def _references(buffers: list[torch.Tensor]) -> list[tuple[int, int]]:
    """(Python references, storage references) of each buffer, counted the way :meth:`Workspace.empty` counts."""
    use_count = _storage_use_count
    assert use_count is not None  # only called where the counter exists
    counts = []
    for buffer in buffers:
        counts.append((sys.getrefcount(buffer), use_count(buffer.untyped_storage()._cdata)))
    return counts


# What an unreferenced buffer counts, measured once on this interpreter (the list, the loop variable,
# the call's argument; its own tensor and the temporary storage object).
_FREE = _references([torch.empty(1)])[0] if _storage_use_count is not None else None


class Workspace:
    """Buffers of one sampler call; :meth:`empty` returns one nothing else holds, or a new one."""

    def __init__(self) -> None:
        self.buffers: list[torch.Tensor] = []
        self.enabled = _FREE is not None and not torch.compiler.is_compiling()

    def empty(self, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
        """A tensor shaped like ``like`` in ``dtype`` to write a new state into; None: let the op allocate."""
        if not self.enabled or like.numel() * dtype.itemsize < REUSE_MIN_BYTES:
            return None
        for buffer, counts in zip(self.buffers, _references(self.buffers)):
            if (counts == _FREE and buffer.shape == like.shape and buffer.dtype == dtype
                    and buffer.device == like.device):
                return buffer
        buffer = torch.empty_like(like, dtype=dtype)
        self.buffers.append(buffer)
        return buffer
