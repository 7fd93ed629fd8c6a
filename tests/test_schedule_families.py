"""The schedule families (flow matching, EDM, continuous VP, zero terminal SNR) against the contract.

Property tests (hypothesis) of each family's invariants, exact endpoints, native grids,
the spacing a sampler gets by default, storage, and the exact models: the Gaussian
mixture's x = alpha x0* + sigma eps* identity and the probability-flow ODE against its
closed form for Gaussian data, in every family.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

import diffkit
from diffkit.conversions import PREDICTION_TYPES, prediction_coefficients
from diffkit.io.pretrained import schedule_from_dict, schedule_to_dict
from diffkit.models import GaussianMixture, from_prediction, solve_probability_flow
from diffkit.schedules import (EDM, ContinuousVP, Cosine, FlowMatch, Linear, ScaledLinear, default_spacing, flux_mu,
                               timesteps)

# One representative of each family; zero terminal SNR is a flag of the discrete VP schedules.
FAMILIES = {
    "linear": Linear(),
    "zero_snr": Linear(rescale_zero_terminal_snr=True),
    "flow": FlowMatch(shift=3.0),
    "edm": EDM(),
    "continuous_vp": ContinuousVP(),
}


@st.composite
def flow_schedules(draw):
    T = draw(st.integers(2, 4000))
    if draw(st.booleans()):
        return FlowMatch(T, mu=draw(st.floats(-3.0, 3.0)))
    return FlowMatch(T, shift=draw(st.floats(0.05, 20.0)))


@st.composite
def edm_schedules(draw):
    lo = draw(st.floats(1e-4, 1.0))
    return EDM(sigma_min=lo, sigma_max=lo * draw(st.floats(2.0, 1e5)), sigma_data=draw(st.floats(0.05, 2.0)))


@st.composite
def continuous_schedules(draw):
    lo = draw(st.floats(0.0, 1.0))
    return ContinuousVP(beta_min=lo, beta_max=lo + draw(st.floats(0.5, 40.0)), t_min=draw(st.floats(1e-5, 0.1)))


NEW_FAMILIES = st.one_of(flow_schedules(), edm_schedules(), continuous_schedules())


@st.composite
def zero_snr_schedules(draw):
    T = draw(st.integers(2, 4000))
    kind = draw(st.sampled_from([Linear, ScaledLinear, Cosine]))
    if kind is Cosine:
        return Cosine(T, rescale_zero_terminal_snr=True)
    hi = min(0.9, 40.0 / T)  # as tests/test_schedules.py: abar_{T-1} stays a normal float64 before rescaling
    start = draw(st.floats(1e-6, hi / 2))
    return kind(T, start, draw(st.floats(start * 1.01 + 1e-7, hi)), rescale_zero_terminal_snr=True)


def _inside(s, u):
    """The time a fraction u of the way from t_min to t_max."""
    return s.t_min + u * (s.t_max - s.t_min)


# -- properties of every new family ---------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(NEW_FAMILIES, st.lists(st.integers(0, 10**6), min_size=2, max_size=16, unique=True))
def test_alpha_sigma_lambda_are_consistent_and_monotone(s, ks):
    t = np.array([_inside(s, k / 10**6) for k in sorted(ks)])  # at least 1e-6 of the range apart
    alpha, sigma, lam = s.alpha(t), s.sigma(t), s.lambda_(t)
    assert np.all(sigma > 0) and np.all(alpha >= 0)
    assert np.all(np.diff(lam) < 0)  # half log-SNR strictly decreasing in t
    finite = alpha > 0
    np.testing.assert_allclose(lam[finite], np.log(alpha[finite] / sigma[finite]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.sigma_k(t)[finite], sigma[finite] / alpha[finite], rtol=1e-12)
    if isinstance(s, FlowMatch):
        np.testing.assert_allclose(alpha + sigma, 1.0, rtol=0, atol=2e-16)
    elif isinstance(s, EDM):
        assert np.all(alpha == 1.0) and np.all(sigma == t)
    else:
        np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, rtol=0, atol=1e-15)


@settings(max_examples=80, deadline=None)
@given(NEW_FAMILIES, st.floats(0.0, 1.0))
def test_t_from_lambda_inverts_lambda(s, u):
    t = _inside(s, u)
    # The inverses are closed forms: exact up to float64 rounding of a few operations on t.
    assert float(s.t_from_lambda(s.lambda_(t))) == pytest.approx(t, rel=1e-11, abs=1e-12 * s.t_max)
    assert float(s.t_from_sigma_k(s.sigma_k(t))) == pytest.approx(t, rel=1e-11, abs=1e-12 * s.t_max)


@settings(max_examples=40, deadline=None)
@given(NEW_FAMILIES)
def test_endpoints_are_exact_and_inverses_clamp(s):
    assert s.t_min < s.t_max
    assert s.sigma(s.t_min) > 0 and s.sigma(s.t_max) > 0
    if isinstance(s, FlowMatch):  # pure noise at t = T: no small number standing in for zero
        assert s.alpha(s.t_max) == 0.0 and s.lambda_(s.t_max) == -math.inf and s.sigma_k(s.t_max) == math.inf
        assert s.zero_terminal_snr and s.sigma(s.t_max) == 1.0
        assert s.t_from_lambda(-math.inf) == s.t_max
    else:
        assert not s.zero_terminal_snr and math.isfinite(s.lambda_(s.t_max))
    assert s.t_from_lambda(1e6) == s.t_min and s.t_from_lambda(-1e6) == s.t_max


@settings(max_examples=60, deadline=None)
@given(zero_snr_schedules(), st.floats(0.0, 1.0))
def test_zero_terminal_snr_rescaling_is_exact(s, u):
    # Lin et al. 2023, Algorithm 1: sqrt(abar) shifted and scaled so that abar_{T-1} = 0 and abar_0 is kept.
    plain = dataclasses.replace(s, rescale_zero_terminal_snr=False)
    root, old = np.sqrt(s.alphas_cumprod), np.sqrt(plain.alphas_cumprod)
    assert s.alphas_cumprod[-1] == 0.0 and s.betas[-1] == 1.0 and np.all(np.diff(s.alphas_cumprod) < 0)
    np.testing.assert_allclose(root, (old - old[-1]) * old[0] / (old[0] - old[-1]), rtol=1e-9, atol=1e-15)
    T = s.num_train_timesteps
    assert s.alpha(T - 1.0) == 0.0 and s.lambda_(T - 1.0) == -math.inf and s.t_from_lambda(-math.inf) == T - 1
    assert s.default_spacing == "trailing" and timesteps(s, 1)[0] == T - 1
    # Fractional t, the last segment (alpha linear in t, down to 0) included: monotone, and inverted.
    t = u * (T - 1)
    lam = np.asarray(s.lambda_(np.array([0.0, t, (t + T - 1) / 2, T - 1.0])))
    assert np.all(lam[1:] <= lam[:-1]) and lam[0] > lam[-1]  # -inf <= -inf where t rounds to T-1
    if t < T - 1:
        assert float(s.t_from_lambda(s.lambda_(t))) == pytest.approx(t, abs=1e-6 * max(1.0, T / 100))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_accessors_keep_the_kind_of_their_input(name):
    s = FAMILIES[name]
    t = np.linspace(s.t_min, s.t_max, 7)
    for method in (s.alpha, s.sigma, s.lambda_, s.sigma_k):
        arr = method(t)
        assert isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.shape == (7,)
        scalar = method(float(t[3]))
        assert isinstance(scalar, float) and scalar == arr[3]
        tensor = method(torch.from_numpy(t).float())  # float32 in, float64 out
        assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64
    lam = s.lambda_(t)
    assert isinstance(s.t_from_lambda(lam), np.ndarray) and isinstance(s.t_from_lambda(float(lam[2])), float)


def test_flow_time_is_sigma_times_T():
    # diffusers' SD3 convention: the model is called with timestep = sigma * num_train_timesteps.
    s = FlowMatch(num_train_timesteps=1000, shift=3.0)
    t = np.array([1000.0, 750.0, 3.0])
    np.testing.assert_array_equal(s.sigma(t), t / 1000)
    np.testing.assert_array_equal(s.alpha(t), 1 - t / 1000)
    assert EDM().sigma(17.5) == 17.5  # EDM: the time is sigma itself


def test_continuous_vp_integrates_beta():
    # log alpha(t) = -1/2 int_0^t beta(s) ds with beta linear (Song et al. 2021, eq. 33), checked by quadrature.
    s = ContinuousVP(beta_min=0.1, beta_max=20.0)
    for t in (1e-3, 0.1, 0.5, 1.0):
        integral, _ = quad(lambda r: s.beta_min + r * (s.beta_max - s.beta_min), 0.0, t, epsabs=1e-15, epsrel=1e-13)
        assert math.log(s.alpha(t)) == pytest.approx(-0.5 * integral, rel=1e-12)
    # It is the limit of DDPM's linear schedule with betas beta(t) / T (Song et al. 2021, appendix B):
    # log(1 - beta) = -beta - beta^2 / 2 costs the discrete chain O(1/T) in log alpha (0.034 at t = 1, T = 1000).
    ts = np.array([0.1, 0.5, 1.0])
    gaps = [np.abs(np.log(Linear(T, 0.1 / T, 20.0 / T).alpha(ts * T - 1)) - np.log(s.alpha(ts))).max()
            for T in (1000, 10000)]
    assert gaps[0] < 0.04 and gaps[1] / gaps[0] == pytest.approx(0.1, rel=0.02), gaps


# -- native grids and default spacings -------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(flow_schedules(), st.integers(1, 2000))
def test_flow_grid_is_the_shifted_linspace(s, steps):
    t = timesteps(s, steps)  # the default spacing: "shifted"
    assert t.shape == (steps,) and t[0] == s.t_max
    assert np.all(np.diff(t) < 0) and t.min() >= s.t_min
    T, k = s.num_train_timesteps, s.grid_shift
    u = np.linspace(1.0, 1.0 / T, steps)
    np.testing.assert_allclose(t, T * k * u / (1 + (k - 1) * u), rtol=1e-13)
    if steps > 1:
        assert t[-1] == s.t_min  # the least noisy training time, T shift(1/T)


def test_dynamic_shift_is_the_static_shift_exp_mu():
    # Flux's exponential time shift e^mu / (e^mu + 1/u - 1) is the static shift with s = e^mu.
    mu = flux_mu(4096)
    assert mu == pytest.approx(1.15)  # diffusers' calculate_shift at max_image_seq_len
    assert flux_mu(256) == pytest.approx(0.5)
    u = np.linspace(1.0, 1e-3, 9)
    np.testing.assert_allclose(timesteps(FlowMatch(mu=mu), 9) / 1000, math.exp(mu) / (math.exp(mu) + 1 / u - 1),
                               rtol=1e-13)
    np.testing.assert_array_equal(timesteps(FlowMatch(mu=mu), 9), timesteps(FlowMatch(shift=math.exp(mu)), 9))


@settings(max_examples=40, deadline=None)
@given(continuous_schedules(), st.integers(1, 500))
def test_continuous_vp_linspace_is_uniform_in_t(s, steps):
    t = timesteps(s, steps, "linspace")
    np.testing.assert_array_equal(t, np.linspace(1.0, s.t_min, steps))


@pytest.mark.parametrize("name, sampler_default, expected", [
    ("linear", "karras", "karras"), ("linear", "leading", "leading"),
    ("zero_snr", "karras", "trailing"), ("zero_snr", "leading", "trailing"),  # Lin et al.: start at t = T-1
    ("flow", "karras", "shifted"), ("flow", "leading", "shifted"),
    ("edm", "karras", "karras"), ("edm", "leading", "karras"),
    ("continuous_vp", "logsnr", "logsnr"), ("continuous_vp", "leading", "karras"),
])
def test_a_sampler_gets_its_spacing_where_the_family_has_it(name, sampler_default, expected):
    assert default_spacing(FAMILIES[name], sampler_default) == expected


@pytest.mark.parametrize("name", ["zero_snr", "flow"])
@pytest.mark.parametrize("spacing", ["karras", "logsnr"])
def test_generic_spacings_need_a_finite_start(name, spacing):
    with pytest.raises(ValueError, match="starts at zero SNR.*use one of: "):
        timesteps(FAMILIES[name], 10, spacing)


def test_every_sampler_runs_on_every_family_with_its_defaults():
    for name, s in FAMILIES.items():
        kind = {"zero_snr": "v_prediction", "flow": "flow", "edm": "sample"}.get(name, "epsilon")
        model = GaussianMixture.two_d(s).as_model(kind)
        for sampler in diffkit.SAMPLERS:
            x = diffkit.sample(model, s, sampler, steps=6, shape=(4, 2), dtype=torch.float64,
                               generator=torch.Generator().manual_seed(0))
            assert torch.isfinite(x).all(), (name, sampler)


# -- invalid parameters ----------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: FlowMatch(shift=0.0), r"shift must be a finite number > 0, got 0.0"),
    (lambda: FlowMatch(shift=-3.0), r"shift must be a finite number > 0"),
    (lambda: FlowMatch(shift=math.inf), r"shift must be a finite number > 0"),
    (lambda: FlowMatch(shift=math.nan), r"shift must be a finite number > 0"),
    (lambda: FlowMatch(shift=3.0, mu=1.0), "pass a static shift or a dynamic mu, not both"),
    (lambda: FlowMatch(mu=math.nan), "mu must be a finite number or None"),
    (lambda: FlowMatch(mu=1000.0), r"mu must lie in \[-700, 700\]"),
    (lambda: FlowMatch(num_train_timesteps=1), "num_train_timesteps must be an integer >= 2"),
    (lambda: FlowMatch(num_train_timesteps=1000.0), "num_train_timesteps must be an integer"),
    (lambda: EDM(sigma_min=80.0, sigma_max=0.002), "need 0 < sigma_min < sigma_max"),
    (lambda: EDM(sigma_min=1.0, sigma_max=1.0), "need 0 < sigma_min < sigma_max"),
    (lambda: EDM(sigma_min=0.0), r"sigma_min must be a finite number > 0"),
    (lambda: EDM(sigma_max=math.inf), r"sigma_max must be a finite number > 0"),
    (lambda: EDM(sigma_data=-0.5), r"sigma_data must be a finite number > 0"),
    (lambda: ContinuousVP(beta_min=20.0, beta_max=0.1), "need 0 <= beta_min < beta_max"),
    (lambda: ContinuousVP(beta_min=-0.1), "need 0 <= beta_min < beta_max"),
    (lambda: ContinuousVP(t_min=0.0), r"t_min must lie in \(0, 1\)"),
    (lambda: ContinuousVP(t_min=1.0), r"t_min must lie in \(0, 1\)"),
    (lambda: ContinuousVP(beta_max=math.nan), "beta_max must be a finite number"),
])
def test_invalid_schedules_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_shift_too_large_for_the_grid_is_rejected():
    with pytest.raises(ValueError, match="squeezes 50 steps onto duplicate float64 timesteps"):
        timesteps(FlowMatch(shift=1e300), 50)


def test_timesteps_outside_a_family_are_rejected():
    model = GaussianMixture.two_d(EDM()).as_model("sample")
    with pytest.raises(ValueError, match=r"must lie in \[t_min, t_max\]=\[0.002, 80\] for EDM"):
        diffkit.samplers.sample_ddim(model, torch.zeros(2, 2), EDM(), [100.0, 1.0])
    with pytest.raises(ValueError, match=r"must lie in \[t_min, t_max\]=\[2.99401, 1000\] for FlowMatch"):
        diffkit.samplers.sample_ddim(model, torch.zeros(2, 2), FlowMatch(shift=3.0), [1000.0, 1.0])


# -- storage ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", [*FAMILIES.values(), FlowMatch(mu=0.7), EDM(0.01, 10.0, 1.0),
                                      ContinuousVP(0.2, 10.0, 1e-5), Cosine(rescale_zero_terminal_snr=True)])
def test_every_family_is_stored_and_restored(schedule):
    stored = json.loads(json.dumps(schedule_to_dict(schedule)))
    assert schedule_from_dict(stored) == schedule


# -- the exact models in every family --------------------------------------------------------------

@pytest.mark.parametrize("name", list(FAMILIES))
def test_mixture_posterior_means_satisfy_the_forward_process(name):
    s = FAMILIES[name]
    g = GaussianMixture.random(s, dim=6, components=3, seed=2)
    t = torch.tensor([s.t_max, s.t_max * 0.9 + s.t_min * 0.1, 0.5 * (s.t_min + s.t_max), s.t_min] * 4,
                     dtype=torch.float64)
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * s.sigma(t)[:, None]
    x0, eps = g.posterior_means(x, t)
    alpha, sigma = s.alpha(t)[:, None], s.sigma(t)[:, None]
    # x = alpha x0* + sigma eps* holds exactly for the posterior means; rounding scales with |x|.
    torch.testing.assert_close(alpha * x0 + sigma * eps, x, rtol=1e-12, atol=1e-12)
    for kind in PREDICTION_TYPES:  # every prediction type reads back as the same pair
        out = g.as_model(kind)(x, t)
        for i in range(16):
            if kind == "epsilon" and alpha[i] == 0:  # eps determines no x0 at zero SNR: v and flow do
                continue
            a, b, c, d = prediction_coefficients(kind, float(alpha[i]), float(sigma[i]))
            torch.testing.assert_close(a * x[i] + b * out[i], x0[i], rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(c * x[i] + d * out[i], eps[i], rtol=1e-10, atol=1e-10)


def _gaussian_flow_map(g, s, x, t_from, t_to):
    """Closed form of the probability-flow ODE for Gaussian data N(mu, S = U diag(v) U^T).

    The marginal at t is N(alpha mu, alpha^2 S + sigma^2 I), and the ODE carries each
    eigen-coordinate of x - alpha mu scaled by sqrt(alpha^2 v + sigma^2) unchanged.
    """
    mu, v, U = g.means[0], g._evals[0], g._evecs[0]

    def scale(t):
        return torch.sqrt(s.alpha(t) ** 2 * v + s.sigma(t) ** 2)

    y = (x - s.alpha(t_from) * mu) @ U / scale(t_from)
    return s.alpha(t_to) * mu + (y * scale(t_to)) @ U.T


@pytest.mark.parametrize("name", list(FAMILIES))
def test_ground_truth_ode_matches_the_closed_form(name):
    s = FAMILIES[name]
    single = GaussianMixture.random(s, dim=4, components=1, seed=4)
    kind = {"zero_snr": "v_prediction", "flow": "flow", "edm": "sample"}.get(name, "epsilon")
    x_T = torch.randn(8, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * s.sigma(s.t_max)
    t_mid = float(s.t_from_lambda(0.5 * (s.lambda_(s.t_min) + max(s.lambda_(s.t_max), -5.0))))
    for t_end in (t_mid, s.t_min):  # from t_max, zero SNR included, to the middle and to the end
        ode = solve_probability_flow(single.as_model(kind), s, x_T, t_end=t_end)
        exact = _gaussian_flow_map(single, s, x_T, s.t_max, t_end)
        # DOP853 at rtol = atol = 1e-10 on O(1) values (O(sigma_max) = 80 for EDM).
        torch.testing.assert_close(ode, exact, rtol=1e-8, atol=1e-8 * float(s.sigma(s.t_max)))


@pytest.mark.parametrize("name", ["edm", "flow", "linear"])
def test_edm_preconditioning_reads_the_schedule_sigma_data(name):
    # EDM's D = c_skip x_k + c_out F(c_in x_k, c_noise) around the F that makes D exact, in any family.
    s = FAMILIES[name] if name != "edm" else EDM(sigma_data=1.3)
    g = GaussianMixture.two_d(s)
    sd = getattr(s, "sigma_data", 0.5)

    def network(x_in, c_noise):  # F = (D - c_skip x_k) / c_out, with D the exact x0*
        sk = torch.exp(4 * c_noise.to(torch.float64))[:, None]
        x_k = x_in * torch.sqrt(sk**2 + sd**2)
        t = torch.as_tensor(s.t_from_sigma_k(sk[:, 0]))
        x0 = g.posterior_means(x_k * s.alpha(t)[:, None], t)[0]
        return (x0 - sd**2 / (sk**2 + sd**2) * x_k) / (sk * sd / torch.sqrt(sk**2 + sd**2))

    model = from_prediction(network, "edm", s)
    assert model.sigma_data == sd
    t = torch.linspace(s.t_min, s.t_max * 0.99, 5, dtype=torch.float64)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    torch.testing.assert_close(model(x, t), g.posterior_means(x, t)[0], rtol=1e-9, atol=1e-9)
