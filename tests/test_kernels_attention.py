"""The fused attention kernel against its reference, and the backend policy of ``attention``.

Kernels run on CUDA when there is one, else on the CPU through Triton's
interpreter (the ``kernels_run`` fixture of test_kernels_backend.py).
"""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from test_kernels_backend import (  # noqa: F401  (kernels_run: the fixture below)
    DEVICE,
    assert_error_within_eager,
    count_launches,
    kernels_run,
)

from diffkit.kernels import attention, attention_ref, fused_attention, reference_kernels
from diffkit.kernels.attention import BACKENDS, SUPPORTED_HEAD_DIMS, fused_attention_enabled

pytestmark = pytest.mark.usefixtures("kernels_run")


def qkv(shape, dtype, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(shape, generator=g)).to(DEVICE, dtype) for _ in range(3)]


def assert_within_eager_error(q, k, v):
    """The kernel's error vs float64 is bounded by eager attention's at q's dtype (assert_error_within_eager)."""
    exact = attention_ref(q.double(), k.double(), v.double())
    fused = attention(q, k, v, backend="triton")
    assert fused.dtype == q.dtype and fused.shape == q.shape
    assert_error_within_eager(fused, attention_ref(q, k, v), exact)


@pytest.mark.parametrize("head_dim", SUPPORTED_HEAD_DIMS)
@pytest.mark.parametrize("length", [1, 17, 64, 100])  # one key; one partial block; whole blocks; a ragged tail
def test_float32_matches_reference(length, head_dim):
    assert_within_eager_error(*qkv((1, 2, length, head_dim), torch.float32))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("length", "head_dim"), [(17, 64), (64, 32), (100, 256)])
def test_low_precision_matches_reference(dtype, length, head_dim):
    assert_within_eager_error(*qkv((2, 1, length, head_dim), dtype))


def test_large_scores_stay_finite():
    # Scores around +-100 overflow exp() without the running-max subtraction.
    assert_within_eager_error(*qkv((1, 1, 100, 32), torch.float32, scale=4.0))


def test_strided_inputs_as_the_unet_passes_them():
    # [B, L, H, D] projections viewed as [B, H, L, D], as unet.blocks.AttentionBlock does.
    q, k, v = (t.transpose(1, 2) for t in qkv((2, 33, 2, 64), torch.float16))
    assert not q.is_contiguous()
    out = attention(q, k, v, backend="triton")
    assert out.stride() == torch.empty_like(q).stride()
    assert_within_eager_error(q, k, v)


def test_triton_backend_runs_the_kernel(monkeypatch):
    def no_reference(*args, **kwargs):
        raise AssertionError("the reference ran instead of the kernel")

    monkeypatch.setattr(sys.modules["diffkit.kernels.attention"], "attention_ref", no_reference)
    attention(*qkv((1, 1, 5, 32), torch.float32), backend="triton")


def test_auto_is_sdpa_until_a_benchmark_shows_the_kernel_faster():
    assert not fused_attention_enabled()
    q, k, v = qkv((1, 2, 9, 48), torch.float32)  # 48: a head dim the kernel does not take, SDPA does
    torch.testing.assert_close(attention(q, k, v), F.scaled_dot_product_attention(q, k, v), rtol=0, atol=0)


def test_auto_runs_the_kernel_only_where_it_can(monkeypatch):
    launches = count_launches(monkeypatch, "attention")
    q, k, v = qkv((1, 2, 9, 32), torch.float32)
    with fused_attention():
        attention(q, k, v)  # the kernel runs here (GPU, or the interpreter on CPU)
        assert launches == {"attention": 1}
        with reference_kernels():  # where it cannot, SDPA answers, never the reference
            module = sys.modules["diffkit.kernels.attention"]
            monkeypatch.setattr(module, "attention_ref", lambda *qkv_: pytest.fail("auto ran the reference"))
            torch.testing.assert_close(attention(q, k, v), F.scaled_dot_product_attention(q, k, v), rtol=0, atol=0)
        assert launches == {"attention": 1}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_agrees(backend):
    q, k, v = qkv((1, 2, 9, 32), torch.float32)
    torch.testing.assert_close(attention(q, k, v, backend=backend), attention_ref(q, k, v))


def test_rejects_bad_input():
    q, k, v = qkv((1, 2, 9, 32), torch.float32)
    with pytest.raises(ValueError, match="auto, sdpa, triton, reference"):
        attention(q, k, v, backend="flash")
    with pytest.raises(ValueError, match="32, 64, 128, 256"):
        attention(*qkv((1, 1, 4, 48), torch.float32), backend="triton")
    with pytest.raises(ValueError, match="one shape"):
        attention(q, k[:, :, :5], v)
    with pytest.raises(ValueError, match="dtype"):
        attention(q, k.half(), v)


def test_gradients_flow_through_the_reference():
    # The kernel is forward only; with autograd recording, "triton" runs the reference instead.
    q, k, v = (t.requires_grad_() for t in qkv((1, 1, 9, 32), torch.float32))
    attention(q, k, v, backend="triton").sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
