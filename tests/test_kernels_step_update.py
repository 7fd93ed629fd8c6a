"""The fused per-step update against its reference: every optional input, dtype, odd size and layout.

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

from diffkit.kernels import StepCoefficients, step_next, step_update, step_update_ref
from diffkit.kernels.philox import philox_normal_ref

pytestmark = pytest.mark.usefixtures("kernels_run")
LOW_PRECISION = [torch.float32, torch.float16, torch.bfloat16]


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


def magnitude(x, eps, coeffs, prev, noise, eps_uncond, guidance, base):
    """Elementwise sums of |terms| of each output: the scale of one float32 rounding of it."""
    e = eps.abs() if eps_uncond is None else eps_uncond.abs() + abs(guidance) * (eps.abs() + eps_uncond.abs())
    x0 = (x.abs() + coeffs.sigma * e) / coeffs.alpha
    x_next = abs(coeffs.cx) * (x if base is None else base).abs() + abs(coeffs.c0) * x0
    if prev is not None:
        x_next = x_next + abs(coeffs.c1) * prev.abs()
    if noise is not None:
        x_next = x_next + abs(coeffs.cn) * noise.abs()
    return x_next, x0


def assert_within_eager_error(x, eps, coeffs, prev=None, noise=None, eps_uncond=None, guidance=1.0, base=None):
    """Kernel error vs a float64 reference <= 2x eager's error + 4 float32 roundings of the largest term.

    Checked for both outputs of step_update and for step_next's x_next alone.
    """
    args = (x, eps, coeffs, prev, noise, eps_uncond, guidance, base)
    wide = [t.double() if isinstance(t, torch.Tensor) else t for t in args]
    exact = step_update_ref(*wide)
    eager = step_update_ref(*args)
    fused = step_update(*args)
    mags = magnitude(*wide)
    checks = zip(("x_next", "x0", "step_next"), (*fused, step_next(*args)), (*eager, eager[0]),
                 (*exact, exact[0]), (*mags, mags[0]))
    for name, f, e, ex, mag in checks:
        assert f.dtype == x.dtype and f.shape == x.shape, name
        err_fused = (f.double() - ex).abs().max().item() if f.numel() else 0.0
        err_eager = (e.double() - ex).abs().max().item() if f.numel() else 0.0
        slack = 4 * torch.finfo(torch.float32).eps * (mag.max().item() if f.numel() else 0.0)
        assert err_fused <= 2 * err_eager + slack, (name, err_fused, err_eager, slack)


coefficient = st.floats(-2.0, 2.0, allow_nan=False)


@settings(max_examples=20, deadline=None)
@given(
    shape=st.sampled_from([(1, 1), (1, 17), (3, 341), (31, 33)]),  # numel 1, 17, 1023, 1023
    layout=st.sampled_from(["contiguous", "transposed", "strided"]),
    eps_dtype=st.sampled_from(LOW_PRECISION),
    alpha=st.floats(0.01, 1.0),
    sigma=st.floats(0.0, 10.0),
    cx=coefficient,
    c0=coefficient,
    c1=coefficient,
    cn=coefficient,
    guidance=st.floats(0.0, 10.0),
    inputs=st.sets(st.sampled_from(["prev", "noise", "eps_uncond", "base"])),
)
def test_matches_reference(shape, layout, eps_dtype, alpha, sigma, cx, c0, c1, cn, guidance, inputs):
    coeffs = StepCoefficients(alpha=alpha, sigma=sigma, cx=cx, c0=c0, c1=c1, cn=cn)
    x = draw(shape, layout, torch.float32, 0)
    eps = draw(shape, "contiguous", eps_dtype, 1)
    optional = {
        "prev": draw(shape, layout, torch.float32, 2),
        "noise": draw(shape, "transposed", eps_dtype, 3),
        "eps_uncond": draw(shape, "strided", eps_dtype, 4),
        "base": draw(shape, "contiguous", torch.float32, 5),
    }
    given_ = {k: v for k, v in optional.items() if k in inputs}
    assert_within_eager_error(x, eps, coeffs, guidance=guidance, **given_)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_output_keeps_the_state_layout(memory_format):
    x = draw((2, 3, 5, 7), "contiguous", torch.float32, 0).contiguous(memory_format=memory_format)
    eps = draw((2, 3, 5, 7), "contiguous", torch.float16, 1)  # another layout than x: copied, not misread
    coeffs = StepCoefficients(alpha=0.6, sigma=0.8, cx=0.9, c0=0.3)
    x_next, x0 = step_update(x, eps, coeffs)
    assert x_next.stride() == x.stride() and x0.stride() == x.stride()
    assert_within_eager_error(x, eps, coeffs)


def test_float64_state_is_the_reference_exactly():
    x, eps, prev = (draw((4, 9), "contiguous", torch.float64, s) for s in range(3))
    coeffs = StepCoefficients(alpha=0.3, sigma=0.95, cx=0.5, c0=0.4, c1=-0.2)
    for got, want in zip(step_update(x, eps, coeffs, prev), step_update_ref(x, eps, coeffs, prev)):
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    # step_next expands x0 instead of rounding it first: equal up to float64 rounding of terms ~|x| / alpha.
    next_only = step_next(x, eps, coeffs, prev)
    assert next_only.dtype == torch.float64
    torch.testing.assert_close(next_only, step_update_ref(x, eps, coeffs, prev)[0], rtol=1e-13, atol=1e-13)


def test_in_kernel_noise_is_the_documented_stream():
    shape = (3, 1000)
    x = torch.zeros(shape, device=DEVICE)
    pure_noise = StepCoefficients(alpha=1.0, sigma=0.0, cx=0.0, c0=0.0, cn=1.0)
    for seed, step in [(0, 0), (7, 3), (2**40 + 5, 999)]:
        drawn, _ = step_update(x, x, pure_noise, noise_seed=seed, noise_step=step)
        # Same Philox words; Box-Muller's log/cos may differ in the last ulps between libraries.
        torch.testing.assert_close(drawn, philox_normal_ref(seed, step, shape, x.device), rtol=1e-5, atol=1e-5)
    first, _ = step_update(x, x, pure_noise, noise_seed=7, noise_step=1)
    second, _ = step_update(x, x, pure_noise, noise_seed=7, noise_step=2)
    assert not torch.equal(first, second)


def test_philox_reference_is_standard_normal():
    n = 200_000
    z = philox_normal_ref(123, 4, (n,), torch.device("cpu")).double()
    # Sample mean and variance within 5 standard errors of N(0, 1)'s (se = 1/sqrt(n), sqrt(2/n)).
    assert abs(z.mean().item()) < 5 / n**0.5
    assert abs(z.var().item() - 1) < 5 * (2 / n) ** 0.5
    assert abs((z > 1.96).double().mean().item() - 0.025) < 5 * (0.025 * 0.975 / n) ** 0.5


def test_noise_seed_matches_passing_its_stream_as_noise():
    x, eps = draw((5, 13), "contiguous", torch.float32, 0), draw((5, 13), "contiguous", torch.float32, 1)
    coeffs = StepCoefficients(alpha=0.7, sigma=0.71, cx=0.8, c0=0.1, cn=0.3)
    seeded = step_update(x, eps, coeffs, noise_seed=11, noise_step=2)
    explicit = step_update(x, eps, coeffs, noise=philox_normal_ref(11, 2, x.shape, x.device))
    for a, b in zip(seeded, explicit):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eps": torch.zeros(2, 4)}, "shape"),
        ({"prev": torch.zeros(2, 3, dtype=torch.float64)}, "dtype"),
        ({"noise": torch.zeros(2, 3), "noise_seed": 1}, "not both"),
        ({"noise_seed": -1}, "noise_seed"),
        ({"coeffs": StepCoefficients(alpha=0.0, sigma=1.0, cx=0.0, c0=1.0)}, "alpha"),
    ],
)
def test_rejects_bad_input(change, message):
    args = {"x": torch.zeros(2, 3), "eps": torch.zeros(2, 3), "coeffs": StepCoefficients(1.0, 0.0, 1.0, 0.0)}
    with pytest.raises(ValueError, match=message):
        step_update(**{**args, **change})



@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # the kernel, the reference
@pytest.mark.parametrize("with_base", [False, True])
def test_out_receives_exactly_the_returned_values(dtype, with_base):
    x, eps, prev, noise, base = (draw((3, 17), "contiguous", dtype, s) for s in range(5))
    coeffs = StepCoefficients(alpha=0.6, sigma=0.8, cx=0.9, c0=0.3, c1=-0.2, cn=0.1)
    args = (x, eps, coeffs, prev, noise, None, 1.0, base if with_base else None)
    want = step_update(*args)
    out = (torch.full_like(x, float("nan")), torch.full_like(x, float("nan")))
    got = step_update(*args, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
    buffer = torch.full_like(x, float("nan"))
    assert step_next(*args, out=buffer) is buffer
    torch.testing.assert_close(buffer, step_next(*args), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("make_out", "error", "message"),
    [
        (lambda x: torch.zeros(2, 3), TypeError, "tuple of two"),
        (lambda x: (torch.zeros(2, 4), torch.zeros(2, 3)), ValueError, "must match x"),
        (lambda x: (torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3)), ValueError, "must match x"),
        (lambda x: (torch.zeros(3, 2).t(), torch.zeros(2, 3)), ValueError, "strides"),
        (lambda x: (x, torch.zeros(2, 3)), ValueError, "share memory"),
        (lambda x: (lambda b: (b, b))(torch.zeros(2, 3)), ValueError, "share memory"),
        (lambda x: (torch.zeros(2, 3),), TypeError, "tuple of two"),
    ],
)
def test_rejects_bad_out(make_out, error, message):
    x = torch.zeros(2, 3)
    with pytest.raises(error, match=message):
        step_update(x, torch.zeros(2, 3), StepCoefficients(1.0, 0.0, 1.0, 0.0), out=make_out(x))


def test_step_next_out_is_one_tensor_apart_from_the_inputs():
    x, c = torch.zeros(2, 3), StepCoefficients(1.0, 0.0, 1.0, 0.0)
    with pytest.raises(TypeError, match="a tensor for step_next"):
        step_next(x, torch.zeros(2, 3), c, out=(torch.zeros(2, 3), torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="share memory"):
        step_next(x, torch.zeros(2, 3), c, out=x)


def test_out_is_refused_while_autograd_records():
    x = torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="autograd"):
        step_update(x, torch.zeros(2, 3), StepCoefficients(1.0, 0.0, 1.0, 0.0), out=(torch.zeros(2, 3),) * 2)


def test_float32_state_runs_the_kernel(monkeypatch):
    def no_reference(*args, **kwargs):
        raise AssertionError("the reference ran instead of the kernel")

    monkeypatch.setattr(sys.modules["diffkit.kernels.step_update"], "step_update_ref", no_reference)
    x = draw((2, 3), "contiguous", torch.float32, 0)
    step_update(x, x, StepCoefficients(alpha=0.5, sigma=0.5, cx=1.0, c0=1.0))


@pytest.mark.skipif(DEVICE != "cuda", reason="host-device synchronisation needs a GPU to happen")
def test_no_host_device_synchronisation():
    x, prev = (draw((4, 1000), "contiguous", torch.float32, s) for s in range(2))
    eps, eps_u = (draw((4, 1000), "transposed", torch.float16, s) for s in range(2, 4))
    coeffs = StepCoefficients(alpha=0.7, sigma=0.71, cx=0.8, c0=0.1, c1=0.2, cn=0.3)
    step_update(x, eps, coeffs, prev, None, eps_u, 5.0, noise_seed=1)  # autotuning syncs, once per size
    torch.cuda.set_sync_debug_mode("error")
    try:
        step_update(x, eps, coeffs, prev, None, eps_u, 5.0, noise_seed=1, noise_step=2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
