"""Samplers write each step over the tensors their loop no longer needs (``base.reusable``).

Reuse must change no value, never touch a tensor the caller can see, and really
stop the per-step allocations (on the CPU each fresh tensor is new memory from
the OS, whose page faults cost as much as the update itself).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import diffkit
from diffkit.schedules import Linear
from diffkit.samplers import SAMPLERS
from diffkit.samplers import base
from diffkit.samplers.base import REUSE_MIN_BYTES, reusable

ALL = list(SAMPLERS)
SHAPE = (2, 4, 64, 64)  # 128 KiB of float32: large enough to be reused (base.REUSE_MIN_BYTES)


class CountFresh(TorchDispatchMode):
    """Counts operator results of ``shape`` that are new memory (not out= or in-place writes, not meta)."""

    def __init__(self, shape):
        super().__init__()
        self.shape, self.count = torch.Size(shape), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        fresh = isinstance(result, torch.Tensor) and not func._schema.is_mutable and result.device.type != "meta"
        if fresh and result.shape == self.shape:
            self.count += 1
        return result


def fixed(seed):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def run(name, steps, x, callback=None):
    """``name`` with a model and noise that allocate nothing, so only the sampler's own tensors are counted."""
    eps, z = fixed(1) * 0.5, fixed(2)
    options = {"noise_sampler": lambda lam_from, lam_to: z} if name == "dpmpp_sde" else {}
    return diffkit.sample(lambda x, t: eps, Linear(), name, steps=steps, x=x, callback=callback,
                          generator=torch.Generator().manual_seed(3), **options)


@pytest.mark.parametrize("name", ALL)
def test_reuse_changes_no_value(name, monkeypatch):
    reused = run(name, 8, fixed(0))
    monkeypatch.setattr(base, "REUSE_MIN_BYTES", float("inf"))  # every step allocates, same arithmetic
    fresh = run(name, 8, fixed(0))
    torch.testing.assert_close(reused, fresh, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL)
def test_without_a_callback_the_samples_are_the_same(name):
    # Without a callback ddpm, ddim and dpmpp_sde's second stage skip x0 (step_next): same
    # update up to float32 rounding of terms of size ~|x| / alpha_t (alpha_t >= 0.006 here).
    plain = run(name, 8, fixed(0))
    shown = run(name, 8, fixed(0), callback=lambda *step: None)
    torch.testing.assert_close(plain, shown, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ALL)
def test_caller_tensors_are_never_written(name):
    x_T = fixed(0)
    seen = []
    out = run(name, 6, x_T, callback=lambda i, t, x, x0: seen.append((x.clone(), x0.clone(), x, x0)))
    torch.testing.assert_close(x_T, fixed(0), rtol=0, atol=0)
    for copy_x, copy_x0, x, x0 in seen:  # what the callback kept still holds what it was shown
        assert torch.equal(copy_x, x) and torch.equal(copy_x0, x0)
    assert out.data_ptr() != x_T.data_ptr()


@pytest.mark.parametrize("name", ALL)
def test_allocations_do_not_grow_with_steps(name):
    counts = {}
    for steps in (4, 8):
        with CountFresh(SHAPE) as mode:
            run(name, steps, fixed(0))
        counts[steps] = mode.count
    assert counts[8] == counts[4], counts
    with CountFresh(SHAPE) as mode:  # the counter sees fresh tensors: with a callback they grow per step
        run(name, 8, fixed(0), callback=lambda *step: None)
    assert mode.count > counts[8]


def test_small_tensors_are_left_to_malloc():
    big, small = torch.zeros(REUSE_MIN_BYTES // 4), torch.zeros(REUSE_MIN_BYTES // 4 - 1)
    assert reusable(None, big, big) and not reusable(None, small, small)
    assert not reusable(lambda *step: None, big)  # a callback may keep what it was shown


def test_no_reuse_while_autograd_records():
    # Gradients through the sampler: out= writes are not differentiable, so every step allocates.
    weight = torch.tensor(0.5, requires_grad=True)
    x = diffkit.sample(lambda x, t: weight * x, Linear(), "dpmpp_2m", steps=5, x=fixed(0))
    x.sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad)


@pytest.mark.parametrize("per_sample", [False, True])
def test_noise_drawn_into_a_buffer_is_the_same_draw(per_sample):
    def generators():
        seeds = range(SHAPE[0]) if per_sample else [5]
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return gens if per_sample else gens[0]

    fresh = base.randn(SHAPE, generators(), torch.device("cpu"), torch.float32)
    buffer = torch.full(SHAPE, float("nan"))
    assert base.randn(SHAPE, generators(), torch.device("cpu"), torch.float32, out=buffer) is buffer
    torch.testing.assert_close(buffer, fresh, rtol=0, atol=0)
    with pytest.raises(ValueError, match="out must be a torch.float16 tensor"):
        base.randn(SHAPE, generators(), torch.device("cpu"), torch.float16, out=buffer)
