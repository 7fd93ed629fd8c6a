"""The fused linear combination against its reference: term counts, dtypes, odd sizes and layouts.

Kernels run on CUDA when there is one, else on the CPU through Triton's
interpreter (the ``kernels_run`` fixture of test_kernels_backend.py).
"""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test_kernels_backend import DEVICE, kernels_run  # noqa: F401  (the fixture below)

from diffkit.kernels import lincomb, lincomb_ref
from diffkit.kernels.lincomb import MAX_TERMS

pytestmark = pytest.mark.usefixtures("kernels_run")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def draw(shape, layout, dtype, seed):
    """A tensor of ``shape`` in the given memory layout (values from ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    if layout == "transposed":
        t = torch.randn(shape[::-1], generator=g).t()
    elif layout == "strided":
        t = torch.randn(shape[0], 2 * shape[1], generator=g)[:, ::2]
    else:
        t = torch.randn(shape, generator=g)
    return t.to(DEVICE, dtype)


def assert_within_eager_error(terms):
    """Kernel error vs float64 <= 2x eager's + 2 float32 roundings per term of the largest |c t|.

    Elementwise, so no reduction order moves the error between machines: each output
    element is rounded once per product and sum, in the kernel as in eager PyTorch.
    """
    exact = lincomb_ref([(c, t.double()) for c, t in terms])
    fused = lincomb(terms, dtype=torch.float32)
    eager = lincomb_ref(terms, dtype=torch.float32)
    assert fused.dtype == torch.float32 and fused.shape == exact.shape
    if not exact.numel():
        return
    scale = max(abs(c) * t.double().abs().max().item() for c, t in terms)
    slack = 2 * len(terms) * torch.finfo(torch.float32).eps * scale
    err_fused = (fused.double() - exact).abs().max().item()
    err_eager = (eager.double() - exact).abs().max().item()
    assert err_fused <= 2 * err_eager + slack, (err_fused, err_eager, slack)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.sampled_from([(1, 1), (1, 17), (3, 341), (31, 33)]),  # numel 1, 17, 1023, 1023
    layouts=st.lists(st.sampled_from(["contiguous", "transposed", "strided"]), min_size=1, max_size=11),
    dtypes=st.lists(st.sampled_from(DTYPES), min_size=11, max_size=11),
    coeffs=st.lists(st.floats(-20.0, 20.0, allow_nan=False), min_size=11, max_size=11),
)
def test_matches_reference(shape, layouts, dtypes, coeffs):
    # Up to 11 terms: more than one launch holds (MAX_TERMS = 8), so the folding is covered too.
    terms = [(coeffs[k], draw(shape, layout, dtypes[k], k)) for k, layout in enumerate(layouts)]
    assert_within_eager_error(terms)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_output_keeps_the_first_terms_layout(memory_format):
    x = draw((2, 3, 5, 7), "contiguous", torch.float32, 0).contiguous(memory_format=memory_format)
    eps = draw((2, 3, 5, 7), "contiguous", torch.float16, 1)  # another layout than x: copied, not misread
    out = lincomb([(0.9, x), (-0.3, eps)])
    assert out.stride() == x.stride()
    assert_within_eager_error([(0.9, x), (-0.3, eps)])


def test_float64_is_the_reference_exactly():
    terms = [(c, draw((4, 9), "contiguous", torch.float64, s)) for s, c in enumerate((0.5, 0.4, -0.2))]
    got = lincomb(terms)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, lincomb_ref(terms), rtol=0, atol=0)


def test_low_precision_first_term_is_not_rounded_before_the_sum():
    # c * t in float16 first would lose bits that a float32 result keeps.
    t = torch.full((3,), 1.0 + 2**-10, dtype=torch.float16, device=DEVICE)
    got = lincomb_ref([(1.0 + 2**-12, t)], dtype=torch.float32)
    torch.testing.assert_close(got.double(), t.double() * (1.0 + 2**-12), rtol=1e-7, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # the kernel, the reference
def test_out_receives_exactly_the_returned_values(dtype):
    terms = [(c, draw((3, 17), "contiguous", dtype, s)) for s, c in enumerate((0.9, 0.3, -0.2, 0.1))]
    want = lincomb(terms)
    out = torch.full_like(want, float("nan"))
    assert lincomb(terms, out=out) is out
    torch.testing.assert_close(out, want, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("terms", "out", "error", "message"),
    [
        ([], None, ValueError, "at least one"),
        ([(1.0, torch.zeros(2, 3)), (1.0, torch.zeros(2, 4))], None, ValueError, "one shape"),
        ([(torch.tensor(1.0), torch.zeros(2, 3))], None, TypeError, "Python numbers"),
        ([(True, torch.zeros(2, 3))], None, TypeError, "Python numbers"),
        ([(1.0, torch.zeros(2, 3, dtype=torch.int64))], None, TypeError, "floating-point"),
        ([(1.0, torch.zeros(2, 3))], torch.zeros(3, 2), ValueError, "out must have"),
    ],
)
def test_rejects_bad_input(terms, out, error, message):
    with pytest.raises(error, match=message):
        lincomb(terms, out=out)


def test_out_may_not_alias_a_term():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="share memory"):
        lincomb([(1.0, x), (2.0, torch.ones(2, 3))], out=x)


def test_float32_runs_the_kernel(monkeypatch):
    def no_reference(*args, **kwargs):
        raise AssertionError("the reference ran instead of the kernel")

    monkeypatch.setattr(sys.modules["diffkit.kernels.lincomb"], "lincomb_ref", no_reference)
    x = draw((2, 3), "contiguous", torch.float32, 0)
    lincomb([(0.5, x)] * (MAX_TERMS + 3))


@pytest.mark.skipif(DEVICE != "cuda", reason="host-device synchronisation needs a GPU to happen")
def test_no_host_device_synchronisation():
    x, prev = (draw((4, 1000), "contiguous", torch.float32, s) for s in range(2))
    eps = draw((4, 1000), "transposed", torch.float16, 2)
    terms = [(0.8, x), (0.1, eps), (0.2, prev)]
    lincomb(terms)  # autotuning syncs, once per size
    torch.cuda.set_sync_debug_mode("error")
    try:
        lincomb(terms)
    finally:
        torch.cuda.set_sync_debug_mode("default")
