"""The fused GroupNorm + SiLU kernel against its reference.

Kernels run on CUDA when there is one, else on the CPU through Triton's
interpreter (the ``kernels_run`` fixture of test_kernels_backend.py).
"""

from __future__ import annotations

import sys

import pytest
import torch

from test_kernels_backend import (  # noqa: F401  (kernels_run: the fixture below)
    DEVICE,
    assert_error_within_eager,
    count_launches,
    kernels_run,
)

from diffkit.kernels import reference_kernels
from diffkit.kernels.groupnorm_silu import (
    fused_groupnorm_silu,
    fused_groupnorm_silu_enabled,
    groupnorm_silu,
    groupnorm_silu_ref,
)

pytestmark = pytest.mark.usefixtures("kernels_run")

# (shape, groups): 2 values per group; several blocks in one chunk; several chunks of
# several blocks with a ragged last one (interpreter: 64-value blocks, 8 programs);
# one spatial dim; none.
SHAPES = [((1, 1, 2), 1), ((2, 6, 5, 7), 3), ((1, 4, 20, 20), 2), ((2, 4, 17), 2), ((3, 8), 4)]


def inputs(shape, dtype, offset=0.0, affine=True):
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(shape, generator=g) + offset).to(DEVICE, dtype)
    if not affine:
        return x, None, None
    w, b = torch.randn(2, shape[1], generator=g).to(DEVICE, dtype)
    return x, w, b


def assert_within_eager_error(x, groups, w, b):
    """The kernel's error vs float64 is bounded by eager's at x's dtype (assert_error_within_eager)."""
    wide = [None if t is None else t.double() for t in (w, b)]
    exact = groupnorm_silu_ref(x.double(), groups, *wide)
    fused = groupnorm_silu(x, groups, w, b, backend="triton")
    assert fused.dtype == x.dtype and fused.shape == x.shape and fused.is_contiguous()
    assert_error_within_eager(fused, groupnorm_silu_ref(x, groups, w, b), exact)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("shape", "groups"), SHAPES)
def test_matches_reference(shape, groups, dtype):
    x, w, b = inputs(shape, dtype)
    assert_within_eager_error(x, groups, w, b)


def test_without_affine():
    x, w, b = inputs((2, 6, 5, 7), torch.float32, affine=False)
    assert_within_eager_error(x, 3, w, b)


def test_large_mean_keeps_the_variance():
    # Mean 1000, std 3: E[x^2] - E[x]^2 in float32 would lose about 5 of the variance's 7 digits.
    x, w, b = inputs((1, 4, 20, 20), torch.float32, offset=1000.0)
    assert_within_eager_error(x, 2, w, b)


def test_channels_last_input():
    x, w, b = inputs((2, 6, 5, 7), torch.float16)
    assert_within_eager_error(x.contiguous(memory_format=torch.channels_last), 3, w, b)


def test_triton_backend_runs_the_kernel(monkeypatch):
    def no_reference(*args, **kwargs):
        raise AssertionError("the reference ran instead of the kernel")

    monkeypatch.setattr(sys.modules["diffkit.kernels.groupnorm_silu"], "groupnorm_silu_ref", no_reference)
    x, w, b = inputs((2, 6, 5, 7), torch.float32)
    groupnorm_silu(x, 3, w, b, backend="triton")


def test_auto_is_eager_until_a_benchmark_shows_the_kernel_faster():
    assert not fused_groupnorm_silu_enabled()
    x, w, b = inputs((2, 6, 5, 7), torch.float32)
    torch.testing.assert_close(groupnorm_silu(x, 3, w, b), groupnorm_silu_ref(x, 3, w, b), rtol=0, atol=0)


def test_auto_runs_the_kernel_only_where_it_can(monkeypatch):
    launches = count_launches(monkeypatch, "groupnorm_silu")
    x, w, b = inputs((2, 6, 5, 7), torch.float32)
    with fused_groupnorm_silu():
        groupnorm_silu(x, 3, w, b)  # the kernel runs here (GPU, or the interpreter on CPU)
        assert launches == {"groupnorm_silu": 1}
        with reference_kernels():  # where it cannot, eager answers
            groupnorm_silu(x, 3, w, b)
        groupnorm_silu(x.double(), 3, w.double(), b.double())  # a dtype it does not take: eager, no error
        assert launches == {"groupnorm_silu": 1}


def test_rejects_bad_input():
    x, w, b = inputs((2, 6, 5, 7), torch.float32)
    with pytest.raises(ValueError, match="auto, eager, triton"):
        groupnorm_silu(x, 3, w, b, backend="fused")
    with pytest.raises(ValueError, match="divisible"):
        groupnorm_silu(x, 4, w, b)
    with pytest.raises(ValueError, match="weight"):
        groupnorm_silu(x, 3, w[:5], b)
    with pytest.raises(ValueError, match="float16, bfloat16 and float32"):
        groupnorm_silu(x.double(), 3, w.double(), b.double(), backend="triton")
