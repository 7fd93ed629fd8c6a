"""Euler, Euler ancestral, Heun, DPM++(2S) ancestral and DPM++(3M) SDE: equivalences, orders, zero SNR, options.

Agreement with k-diffusion and diffusers sits with the other samplers' (test_reference_kdiffusion.py,
test_reference_diffusers.py, test_seed_compat.py); here are the docstrings' equivalences, the empirical
orders against the exact probability-flow ODE, the steps from zero SNR and bad options.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import noise

import diffkit
from diffkit.models import GaussianMixture
from diffkit.samplers import (
    SAMPLERS,
    BrownianNoise,
    sample_ddim,
    sample_dpmpp_2s_ancestral,
    sample_dpmpp_3m_sde,
    sample_dpmpp_sde,
    sample_euler,
    sample_euler_ancestral,
    sample_heun,
)
from diffkit.schedules import Linear, timesteps

NEW = ("euler", "euler_ancestral", "heun", "dpmpp_2s_ancestral", "dpmpp_3m_sde")
EXACT = {"rtol": 1e-12, "atol": 1e-12}  # the same arithmetic up to float64 rounding


@pytest.fixture(scope="module")
def zero_snr():
    """Zero terminal SNR (Lin et al. 2023) with a v-prediction model: sampling starts at alpha = 0, h = inf."""
    schedule = Linear(rescale_zero_terminal_snr=True)
    return schedule, GaussianMixture.random(schedule, dim=8, components=3, seed=1).as_model("v_prediction")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# -- documented equivalences --------------------------------------------------------------------

@pytest.mark.parametrize("case", ["linear_karras", "zero_snr_trailing"])
def test_euler_is_ddim_with_eta0(case, gmm8d, linear, zero_snr):
    schedule, model = (linear, gmm8d) if case == "linear_karras" else zero_snr
    ts = timesteps(schedule, 12, "karras" if case == "linear_karras" else "trailing")
    x_T = noise((16, 8), seed=20)
    torch.testing.assert_close(sample_euler(model, x_T, schedule, ts), sample_ddim(model, x_T, schedule, ts), **EXACT)


@pytest.mark.parametrize("case", ["linear_karras", "zero_snr_trailing"])
def test_euler_ancestral_with_eta0_is_euler(case, gmm8d, linear, zero_snr):
    schedule, model = (linear, gmm8d) if case == "linear_karras" else zero_snr
    ts = timesteps(schedule, 12, "karras" if case == "linear_karras" else "trailing")
    x_T = noise((16, 8), seed=21)
    ours = sample_euler_ancestral(model, x_T, schedule, ts, eta=0.0, generator=_gen(1))
    torch.testing.assert_close(ours, sample_euler(model, x_T, schedule, ts), **EXACT)


@pytest.mark.parametrize("eta", [0.5, 1.0])
@pytest.mark.parametrize("spacing", ["leading", "karras"])
def test_euler_ancestral_is_ddim_on_variance_preserving_schedules(eta, spacing, gmm8d, linear):
    # With alpha^2 + sigma^2 = 1, alpha_n up = eta (sigma_n / sigma_t) sqrt(1 - abar_t / abar_n), DDIM's noise
    # scale, and alpha_n down = sqrt(sigma_n^2 - up'^2); both draw in the model's dtype at every step.
    ts = timesteps(linear, 15, spacing)
    x_T = noise((16, 8), seed=22)
    a = sample_euler_ancestral(gmm8d, x_T, linear, ts, eta=eta, generator=_gen(2))
    b = sample_ddim(gmm8d, x_T, linear, ts, eta=eta, generator=_gen(2))
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)  # abar_t / abar_n vs sigma_k ratios: rounding only


@pytest.mark.parametrize("case", ["linear_karras", "zero_snr_trailing"])
def test_dpmpp_2s_ancestral_with_eta0_is_dpmpp_sde_with_eta0_and_r_half(case, gmm8d, linear, zero_snr):
    schedule, model = (linear, gmm8d) if case == "linear_karras" else zero_snr
    ts = timesteps(schedule, 12, "karras" if case == "linear_karras" else "trailing")
    x_T = noise((16, 8), seed=23)
    ours = sample_dpmpp_2s_ancestral(model, x_T, schedule, ts, eta=0.0)
    torch.testing.assert_close(ours, sample_dpmpp_sde(model, x_T, schedule, ts, eta=0.0, r=0.5), **EXACT)


def test_heun_without_churn_is_deterministic_and_draws_nothing(gmm8d, linear):
    ts = timesteps(linear, 8, "karras")
    x_T = noise((16, 8), seed=24)
    g = _gen(3)
    a = sample_heun(gmm8d, x_T, linear, ts, generator=g, s_tmin=0.1, s_tmax=10.0, s_noise=1.1)
    assert torch.equal(a, sample_heun(gmm8d, x_T, linear, ts))
    assert torch.equal(torch.randn(3, generator=g), torch.randn(3, generator=_gen(3)))  # generator untouched


# -- steps from zero SNR: limits, and first order where a stage is undefined ---------------------

@pytest.mark.parametrize("name, options", [
    ("euler", {}), ("euler_ancestral", {}), ("euler_ancestral", {"eta": 0.5}), ("heun", {}),
    ("heun", {"s_churn": 10.0}), ("dpmpp_2s_ancestral", {}), ("dpmpp_2s_ancestral", {"eta": 0.5}),
    ("dpmpp_3m_sde", {}), ("dpmpp_3m_sde", {"eta": 0.0}),
])
def test_zero_snr_v_prediction_gives_finite_samples(name, options, zero_snr):
    schedule, model = zero_snr
    x = diffkit.sample(model, schedule, name, 10, x=noise((64, 8), seed=25), spacing="trailing",
                       generator=_gen(4), **options)
    assert torch.isfinite(x).all()
    assert x.std() < 10  # a sample of the data (unit-scale mixture), not an overflow


def test_heun_step_from_zero_snr_is_euler(zero_snr):
    # Two visited timesteps: the step from alpha = 0 (Heun's corrector undefined) and the final one.
    schedule, model = zero_snr
    ts = timesteps(schedule, 2, "trailing")
    x_T = noise((16, 8), seed=26)
    torch.testing.assert_close(sample_heun(model, x_T, schedule, ts), sample_euler(model, x_T, schedule, ts), **EXACT)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_dpmpp_2s_ancestral_step_from_zero_snr_is_euler_ancestral(eta, zero_snr):
    # No midpoint on an infinite step: the Euler ancestral step (at eta = 1, down = 0: x = alpha_n x0 + sigma_n z).
    schedule, model = zero_snr
    ts = timesteps(schedule, 2, "trailing")
    x_T = noise((16, 8), seed=27)
    a = sample_dpmpp_2s_ancestral(model, x_T, schedule, ts, eta=eta, generator=_gen(5))
    b = sample_euler_ancestral(model, x_T, schedule, ts, eta=eta, generator=_gen(5))
    torch.testing.assert_close(a, b, **EXACT)


def test_dpmpp_3m_sde_history_skips_the_infinite_step(zero_snr):
    # k-diffusion's limit: after the step from zero SNR, r = h_inf / h = inf removes that step's differences,
    # so with 3 visited timesteps both steps are first order: Euler.
    schedule, model = zero_snr
    ts = timesteps(schedule, 3, "trailing")
    x_T = noise((16, 8), seed=28)
    torch.testing.assert_close(sample_dpmpp_3m_sde(model, x_T, schedule, ts, eta=0.0),
                               sample_euler(model, x_T, schedule, ts), **EXACT)


@pytest.mark.parametrize("name", NEW)
def test_model_calls_per_step(name, linear, zero_snr):
    # evals_per_step calls at every visited timestep but the last; the step from zero SNR takes one.
    class Counting:
        def __init__(self, model):
            self.model, self.calls = model, 0
            self.prediction_type = getattr(model, "prediction_type", "epsilon")

        def __call__(self, x, t):
            self.calls += 1
            return self.model(x, t)

    info = SAMPLERS[name]
    finite = Counting(GaussianMixture.random(linear, dim=8, components=3, seed=1))
    diffkit.sample(finite, linear, name, 7, x=noise((4, 8)), generator=_gen(6))
    assert finite.calls == info.nfe(7)
    schedule, model = zero_snr
    start = Counting(model)
    diffkit.sample(start, schedule, name, 7, x=noise((4, 8)), spacing="trailing", generator=_gen(6))
    assert start.calls == info.nfe(7) - (info.evals_per_step - 1)


# -- churn ----------------------------------------------------------------------------------------

def test_heun_churn_raises_the_noise_below_t_max_only(gmm8d, linear):
    ts = timesteps(linear, 6, "karras")  # starts at t_max: no noisier point to churn to
    seen = []
    sample_heun(gmm8d, noise((4, 8)), linear, ts, generator=_gen(7), s_churn=1.0,
                callback=lambda i, t, x, x0: seen.append(t))
    assert seen[0] == ts[0]
    assert all(t > t_i for t, t_i in zip(seen[1:], ts[1:]))  # sigma_k_hat = (1 + gamma) sigma_k at every other step
    seen.clear()  # only where s_tmin <= sigma_k <= s_tmax: here from the fourth visited timestep on
    s_tmax = math.sqrt(linear.sigma_k(ts[2]) * linear.sigma_k(ts[3]))
    sample_heun(gmm8d, noise((4, 8)), linear, ts, generator=_gen(7), s_churn=1.0, s_tmax=s_tmax,
                callback=lambda i, t, x, x0: seen.append(t))
    assert seen[:3] == list(ts[:3]) and all(t > t_i for t, t_i in zip(seen[3:], ts[3:]))


def test_heun_churn_is_seeded_noise(gmm8d, linear):
    ts = timesteps(linear, 8, "karras")
    x_T = noise((16, 8), seed=29)

    def run(seed):
        return sample_heun(gmm8d, x_T, linear, ts, generator=_gen(seed), s_churn=20.0)

    assert torch.equal(run(8), run(8))
    assert not torch.allclose(run(8), run(9))
    assert not torch.allclose(run(8), sample_heun(gmm8d, x_T, linear, ts))


# -- closed form: convergence to the exact probability-flow ODE -----------------------------------

@pytest.mark.parametrize("name, options, steps, lo, hi", [
    # Fitted over the asymptotic range (local slopes settle there; measured fits in the comments).
    ("euler", {}, (20, 50, 100, 200), 0.95, 1.1),  # 1.03
    ("heun", {}, (20, 50, 100, 200), 1.95, 2.25),  # 2.10 (local slopes 2.21, 2.05, 2.02)
    ("dpmpp_2s_ancestral", {"eta": 0.0}, (20, 50, 100, 200), 1.75, 2.1),  # 1.84 (local 1.76, 1.86, 1.91)
    # The published 3M's third-order term has half its Taylor coefficient (see sample_dpmpp_3m_sde and the
    # test below): local slopes 2.94, 3.28 up to 50 steps, then 2.42, 2.39, 2.21 and 2.04 at 800-1600 steps.
    ("dpmpp_3m_sde", {"eta": 0.0, "variant": "published"}, (100, 200, 400), 1.9, 2.5),  # 2.30
    ("dpmpp_3m_sde", {"eta": 0.0, "variant": "exact"}, (50, 100, 200), 2.75, 3.4),  # the factor 2 restored
])
def test_empirical_convergence_order(name, options, steps, lo, hi, ode_reference, gmm8d, linear):
    x_T, exact = ode_reference
    errs = [((diffkit.sample(gmm8d, linear, name, steps=n, x=x_T, spacing="karras", **options) - exact) ** 2)
            .mean().sqrt().item() for n in steps]
    order = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert lo <= order <= hi, (order, errs)


@pytest.mark.parametrize("variant, missed_share", [("published", 1.0), ("exact", 0.0)])
def test_dpmpp_3m_step_misses_half_of_the_second_order_term(variant, missed_share, linear):
    """With x0 quadratic in lambda the multistep differences are exact (d1 = h x0', d2 = h^2 x0'' / 2) and
    the exact step is alpha_n (1 - exp(-h)) x0 + alpha_n (phi_2 d1 - 2 phi_3 d2) + (sigma_n / sigma_t) x_t;
    DPM-Solver++(3M) as published (and k-diffusion, diffusers) takes phi_3 d2: it errs by alpha_n phi_3 d2."""
    from scipy.integrate import quad

    def x0(lam):
        return 0.3 + 0.7 * lam - 0.4 * lam**2

    class QuadraticData:  # predicts the data x0(lambda_t) whatever x_t: the ODE step is an integral of it
        prediction_type = "sample"

        def __call__(self, x, t):
            return x0(linear.lambda_(t))[:, None].expand_as(x).to(x.dtype)

    ts = timesteps(linear, 8, "karras")
    states = {}
    sample_dpmpp_3m_sde(QuadraticData(), noise((2, 3), seed=31), linear, ts, eta=0.0, variant=variant,
                        callback=lambda i, t, x, x0_: states.setdefault(i, x.clone()))
    lam = linear.lambda_(np.asarray(ts))
    alpha, sigma = linear.alpha(np.asarray(ts)), linear.sigma(np.asarray(ts))
    for i in (3, 4, 5):  # third-order steps i -> i + 1
        lam_t, lam_n = lam[i], lam[i + 1]
        h = lam_n - lam_t
        integral = quad(lambda u, lam_n=lam_n: math.exp(u - lam_n) * x0(u), lam_t, lam_n, epsabs=1e-14, epsrel=1e-11)[0]
        alpha_n = float(alpha[i + 1])
        exact = float(sigma[i + 1] / sigma[i]) * states[i] + alpha_n * integral
        phi_3 = (math.expm1(-h) / h + 1) / h - 0.5
        missed = missed_share * alpha_n * phi_3 * h**2 * -0.4  # alpha_n phi_3 d2, d2 = h^2 x0'' / 2; 0 when exact
        torch.testing.assert_close(states[i + 1] - exact, torch.full_like(exact, missed), rtol=1e-6, atol=1e-12)


# -- bad options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, match", [
    ("euler", {"eta": 0.5}, "allowed: none"),
    ("euler_ancestral", {"eta": 1.5}, "euler_ancestral: eta must be a number in"),
    ("dpmpp_2s_ancestral", {"eta": -0.1}, "dpmpp_2s_ancestral: eta must be a number in"),
    ("dpmpp_3m_sde", {"eta": True}, "dpmpp_3m_sde: eta must be a number in"),
    ("dpmpp_3m_sde", {"r": 0.5}, "allowed: eta, noise_sampler, variant"),
    ("dpmpp_3m_sde", {"variant": "taylor"}, "variant must be one of 'exact', 'published'"),
    ("heun", {"s_churn": -1.0}, "heun: s_churn must be a finite number >= 0"),
    ("heun", {"s_noise": math.inf}, "heun: s_noise must be a finite number >= 0"),
    ("heun", {"s_tmax": math.nan}, r"heun: s_tmax must be a number \(inf allowed\) >= 0"),
    ("heun", {"s_tmin": 2.0, "s_tmax": 1.0}, "heun: s_tmin must be <= s_tmax"),
    ("heun", {"eta": 1.0}, "allowed: s_churn, s_tmin, s_tmax, s_noise"),
])
def test_bad_options(name, options, match, gmm2d, linear):
    with pytest.raises(ValueError, match=match):
        diffkit.sample(gmm2d, linear, name, 5, x=noise((2, 2)), **options)


def test_noise_sampler_gets_the_step_in_lambda(gmm8d, linear):
    # Shared Brownian noise: called with (lambda_t, lambda_n) of each non-final step, like dpmpp_2m_sde.
    ts = timesteps(linear, 6, "karras")
    x_T = noise((4, 8), seed=30)
    brownian = BrownianNoise(tuple(x_T.shape), float(linear.lambda_(linear.t_max)), float(linear.lambda_(0.0)),
                             seeds=[3], dtype=torch.float64)
    calls = []

    def noise_sampler(a, b):
        calls.append((a, b))
        return brownian(a, b)

    for fn in (sample_euler_ancestral, sample_dpmpp_2s_ancestral, sample_dpmpp_3m_sde):
        calls.clear()
        fn(gmm8d, x_T, linear, ts, noise_sampler=noise_sampler)
        lam = linear.lambda_(np.asarray(ts))
        np.testing.assert_allclose(calls, np.stack([lam[:-1], lam[1:]], 1), rtol=1e-12)
