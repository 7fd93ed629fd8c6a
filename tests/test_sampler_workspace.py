"""Sampler runs write new states into buffers nothing else holds (``samplers.workspace``).

Reuse must change no value, never touch a tensor anyone else can see (the caller's
x_T, what a model or a callback kept, a view of it), and really stop the per-step
allocations (on the CPU each fresh tensor is new memory from the OS, whose page
faults cost as much as the update itself).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import diffkit
from diffkit.samplers import SAMPLERS, workspace
from diffkit.samplers.noise import randn
from diffkit.samplers.workspace import REUSE_MIN_BYTES, Workspace
from diffkit.schedules import Linear

ALL = list(SAMPLERS)
SHAPE = (2, 4, 64, 64)  # 128 KiB of float32: large enough to be reused (workspace.REUSE_MIN_BYTES)


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


def run(name, steps, x, callback=None, model=None):
    """``name`` with a model and noise that allocate nothing, so only the sampler's own tensors are counted."""
    eps, z = fixed(1) * 0.5, fixed(2)
    options = {"noise_sampler": lambda lam_from, lam_to: z} if name == "dpmpp_sde" else {}
    return diffkit.sample(model or (lambda x, t: eps), Linear(), name, steps=steps, x=x, callback=callback,
                          generator=torch.Generator().manual_seed(3), **options)


@pytest.mark.parametrize("name", ALL)
def test_reuse_changes_no_value(name, monkeypatch):
    reused = run(name, 8, fixed(0))
    monkeypatch.setattr(workspace, "REUSE_MIN_BYTES", float("inf"))  # every step allocates, same arithmetic
    fresh = run(name, 8, fixed(0))
    torch.testing.assert_close(reused, fresh, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL)
def test_a_callback_changes_no_value(name):
    plain = run(name, 8, fixed(0))
    shown = run(name, 8, fixed(0), callback=lambda *step: None)
    torch.testing.assert_close(plain, shown, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL)
def test_what_others_hold_is_never_written(name):
    x_T = fixed(0)
    eps = fixed(1) * 0.5
    kept_by_model, kept_by_callback = [], []

    def model(x, t):  # keeps x itself and a view of it: a model may
        kept_by_model.append((x, x[0, 0], x.clone()))
        return eps

    def callback(i, t, x, x0):
        kept_by_callback.append((x, x0, x.clone(), x0.clone()))

    out = run(name, 6, x_T, callback=callback, model=model)
    torch.testing.assert_close(x_T, fixed(0), rtol=0, atol=0)
    for x, view, copy in kept_by_model:
        assert torch.equal(x, copy) and torch.equal(view, copy[0, 0])
    for x, x0, copy_x, copy_x0 in kept_by_callback:
        assert torch.equal(x, copy_x) and torch.equal(x0, copy_x0)
    assert out.data_ptr() != x_T.data_ptr()


@pytest.mark.parametrize("name", ALL)
def test_allocations_do_not_grow_with_steps(name):
    # Steady state comes once the multistep history is full: dpmpp_3m_sde holds two earlier states,
    # so its buffers stop growing on the fifth step.
    counts = {}
    for steps in (6, 12):  # 6: past every multistep warm-up (dpmpp_3m, unipc hold 3 predictions from step 2 on)
        with CountFresh(SHAPE) as mode:
            run(name, steps, fixed(0))
        counts[steps] = mode.count
    assert counts[12] == counts[6], counts
    with CountFresh(SHAPE) as mode:  # the counter sees fresh tensors: with a callback they grow per step
        run(name, 12, fixed(0), callback=lambda *step: None)
    assert mode.count > counts[12]


def test_a_buffer_is_reused_only_when_nothing_holds_it():
    ws = Workspace()
    like = torch.empty(REUSE_MIN_BYTES // 4)
    first = ws.empty(like, torch.float32)
    assert ws.empty(like, torch.float32) is not first  # `first` still names it
    view = first[1:]
    del first
    assert all(b.data_ptr() != view.data_ptr() - 4 for b in [ws.empty(like, torch.float32)])  # a view holds it
    del view
    held = ws.empty(like, torch.float32)
    assert any(held is b for b in ws.buffers)
    small = torch.empty(REUSE_MIN_BYTES // 4 - 1)
    assert ws.empty(small, torch.float32) is None  # left to malloc


def test_model_writing_into_its_input_is_refused_and_x_T_is_untouched():
    x_T = fixed(0)

    def clobber(x, t):
        x.mul_(0)
        return x

    with pytest.raises(ValueError, match="wrote into the x it was given"):
        diffkit.sample(clobber, Linear(), "ddim", steps=3, x=x_T)
    torch.testing.assert_close(x_T, fixed(0), rtol=0, atol=0)


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

    fresh = randn(SHAPE, generators(), torch.device("cpu"), torch.float32)
    buffer = torch.full(SHAPE, float("nan"))
    assert randn(SHAPE, generators(), torch.device("cpu"), torch.float32, out=buffer) is buffer
    torch.testing.assert_close(buffer, fresh, rtol=0, atol=0)
    with pytest.raises(ValueError, match="out must be a torch.float16 tensor"):
        randn(SHAPE, generators(), torch.device("cpu"), torch.float16, out=buffer)
