"""Conversions between parameterisations (property tests) and the model wrappers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffkit.conversions import (
    PREDICTION_TYPES,
    eps_from_v,
    eps_from_x0,
    prediction_coefficients,
    prediction_target,
    score_from_eps,
    v_from_eps,
    x0_from_eps,
)
from diffkit.models import ClassifierFreeGuidance, EpsFromV, EpsFromX0, GaussianMixture
from diffkit.schedules import Linear


@settings(max_examples=50, deadline=None)
@given(st.floats(0.01, 1.56), st.integers(0, 2**31 - 1))
def test_round_trips(angle, seed):
    import math

    alpha, sigma = math.cos(angle), math.sin(angle)  # any point with alpha^2 + sigma^2 = 1
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    x = alpha * x0 + sigma * eps
    torch.testing.assert_close(x0_from_eps(x, eps, alpha, sigma), x0)
    torch.testing.assert_close(eps_from_x0(x, x0, alpha, sigma), eps)
    v = alpha * eps - sigma * x0
    torch.testing.assert_close(v_from_eps(x, eps, alpha, sigma), v)
    torch.testing.assert_close(eps_from_v(x, v, alpha, sigma), eps)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(PREDICTION_TYPES), st.floats(0.05, 2.0), st.floats(0.05, 2.0), st.integers(0, 2**31 - 1))
def test_training_targets_invert_to_x0_and_eps(kind, alpha, sigma, seed):
    # prediction_target is what prediction_coefficients reads back: x0 = a x + b target, eps = c x + d target,
    # at any (alpha, sigma) of any family (VP, flow's alpha = 1 - sigma, VE's alpha = 1).
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    x = alpha * x0 + sigma * eps
    out = prediction_target(kind, x0, eps, alpha, sigma)
    a, b, c, d = prediction_coefficients(kind, alpha, sigma)
    torch.testing.assert_close(a * x + b * out, x0)
    torch.testing.assert_close(c * x + d * out, eps)
    with pytest.raises(ValueError, match="allowed"):
        prediction_target("score", x0, eps, alpha, sigma)


def test_per_sample_coefficients_broadcast():
    x = torch.randn(3, 2, 5, dtype=torch.float64)
    alpha = torch.tensor([0.9, 0.5, 0.1], dtype=torch.float64)
    sigma = (1 - alpha**2).sqrt()
    eps = torch.randn_like(x)
    x0 = x0_from_eps(x, eps, alpha, sigma)
    for i in range(3):
        torch.testing.assert_close(x0[i], (x[i] - sigma[i] * eps[i]) / alpha[i])
    torch.testing.assert_close(score_from_eps(eps, sigma), -eps / sigma.view(3, 1, 1))


def test_v_and_x0_wrappers_recover_the_eps_model():
    s = Linear()
    gmm = GaussianMixture.two_d(s)
    x = torch.randn(6, 2, dtype=torch.float64)
    t = torch.linspace(0, 999, 6, dtype=torch.float64)
    eps = gmm(x, t)
    alpha, sigma = s.alpha(t), s.sigma(t)
    v_model = lambda x, t: v_from_eps(x, gmm(x, t), s.alpha(t), s.sigma(t))  # noqa: E731
    x0_model = lambda x, t: x0_from_eps(x, gmm(x, t), s.alpha(t), s.sigma(t))  # noqa: E731
    torch.testing.assert_close(EpsFromV(v_model, s)(x, t), eps)
    # eps from x0 divides by sigma: at t = 0 (sigma = 0.01) float64 still leaves ~1e-12 relative error.
    torch.testing.assert_close(EpsFromX0(x0_model, s)(x, t), eps, rtol=1e-9, atol=1e-9)
    assert alpha.shape == sigma.shape == (6,)


def test_guidance_is_one_batched_call():
    calls = []

    def model(x, t, y):
        calls.append((x.shape[0], y.tolist()))
        return x * 0 + y.view(-1, 1).to(x.dtype)  # eps = label, so guidance is easy to predict

    cfg = ClassifierFreeGuidance(model, 3.0, uncond={"y": 10})
    x, t, y = torch.zeros(2, 4), torch.zeros(2), torch.tensor([1, 2])
    eps = cfg(x, t, y=y)
    assert calls == [(4, [1, 2, 10, 10])]
    # eps_u + w (eps_c - eps_u) = 10 + 3 (y - 10)
    torch.testing.assert_close(eps, (10 + 3 * (y - 10)).view(-1, 1).float().expand(2, 4))


def test_guidance_needs_null_values():
    cfg = ClassifierFreeGuidance(lambda x, t, y: x, 2.0, uncond={"label": 0})
    with pytest.raises(ValueError, match="null value for every conditioning keyword"):
        cfg(torch.zeros(1, 2), torch.zeros(1), y=torch.tensor([1]))
    with pytest.raises(TypeError, match="guidance scale must be a number"):
        ClassifierFreeGuidance(lambda x, t: x, "3", uncond={})
