"""Property tests (hypothesis) of schedules, the continuous-time accessors and timestep spacings."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from diffkit.schedules import EDM, SPACINGS, ContinuousVP, Cosine, FlowMatch, Linear, ScaledLinear, timesteps
from diffkit.schedules.spacing import DISCRETE_SPACINGS, timesteps_from

T_RANGE = st.integers(min_value=2, max_value=4000)
INTEGER_SPACINGS = DISCRETE_SPACINGS + ("simple",)  # integer timesteps of DiscreteVP, steps <= T


@st.composite
def schedules(draw):
    T = draw(T_RANGE)
    kind = draw(st.sampled_from(["linear", "scaled_linear", "cosine"]))
    if kind == "cosine":
        return Cosine(T, s=draw(st.floats(0.0, 0.1)), max_beta=draw(st.floats(0.5, 0.999)))
    # Keep sum(beta) moderate so abar_{T-1} stays a normal float64 (>= ~e^-40).
    hi = min(0.9, 40.0 / T)
    start = draw(st.floats(1e-6, hi / 2))
    end = draw(st.floats(start * 1.01 + 1e-7, hi))
    assume(start < end)
    return (Linear if kind == "linear" else ScaledLinear)(T, start, end)


@settings(max_examples=60, deadline=None)
@given(schedules())
def test_tables_are_valid(s):
    assert np.all((s.betas > 0) & (s.betas < 1))
    abar = s.alphas_cumprod
    assert np.all((abar > 0) & (abar <= 1))
    assert np.all(np.diff(abar) < 0)
    lam = s.lambda_(np.arange(s.num_train_timesteps, dtype=np.float64))
    assert np.all(np.diff(lam) < 0)


@settings(max_examples=60, deadline=None)
@given(schedules(), st.floats(0.0, 1.0))
def test_continuous_accessors_are_consistent(s, u):
    t = u * (s.num_train_timesteps - 1)
    a, sg = s.alpha(t), s.sigma(t)
    # alpha^2 + sigma^2 = 1 up to float64 rounding of two square roots.
    assert a * a + sg * sg == pytest.approx(1.0, abs=1e-12)
    assert s.abar(t) == pytest.approx(a * a, rel=1e-12)
    assert math.log(a / sg) == pytest.approx(s.lambda_(t), rel=1e-9, abs=1e-9)
    assert s.sigma_k(t) == pytest.approx(sg / a, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(schedules(), st.floats(0.0, 1.0))
def test_inverses_round_trip(s, u):
    T = s.num_train_timesteps
    t = u * (T - 1)
    # The inverse solves a linear equation on one segment: error ~ eps / slope of log sigma_k.
    tol = 1e-6 * max(1.0, T / 100)
    assert s.t_from_lambda(s.lambda_(t)) == pytest.approx(t, abs=tol)
    assert s.t_from_sigma_k(s.sigma_k(t)) == pytest.approx(t, abs=tol)
    if s.sigma(t) < 1 - 1e-9:  # sigma -> 1 loses the information needed to invert in float64
        assert s.t_from_sigma(s.sigma(t)) == pytest.approx(t, abs=max(tol, 1e-4))


@settings(max_examples=30, deadline=None)
@given(schedules())
def test_interpolation_is_exact_at_integer_timesteps(s):
    ts = np.arange(s.num_train_timesteps, dtype=np.float64)
    np.testing.assert_allclose(s.abar(ts), s.alphas_cumprod, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(schedules(), st.sampled_from(SPACINGS), st.data())
def test_timesteps_strictly_decreasing_in_range(s, spacing, data):
    T = s.num_train_timesteps
    lowest = 2 if spacing == "leading" else 1  # leading with one step would visit t = 0 alone (refused below)
    steps = data.draw(st.integers(lowest, T if spacing in INTEGER_SPACINGS else 2 * T + 10))
    ts = timesteps(s, steps, spacing)
    assert ts.shape == (steps,)
    assert np.all(ts >= 0) and np.all(ts <= T - 1)
    assert np.all(np.diff(ts) < 0)
    if spacing in INTEGER_SPACINGS:
        assert np.all(ts == np.round(ts))


@settings(max_examples=40, deadline=None)
@given(schedules(), st.integers(1, 64), st.integers(0, 2**31 - 1))
def test_add_noise_keeps_unit_variance(s, batch, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, 4096, generator=g, dtype=torch.float64)
    noise = torch.randn(batch, 4096, generator=g, dtype=torch.float64)
    t = torch.rand(batch, generator=g, dtype=torch.float64) * (s.num_train_timesteps - 1)
    xt = s.add_noise(x0, noise, t)
    # Each row holds 4096 unit-variance values: its sample variance has std ~ sqrt(2/4096) = 0.022.
    torch.testing.assert_close(xt.var(dim=1), torch.ones(batch, dtype=torch.float64), atol=0.12, rtol=0)


def test_add_noise_is_the_forward_process():
    s = Linear()
    x0, noise = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    t = torch.tensor([0, 500, 999])
    abar = torch.from_numpy(s.alphas_cumprod[[0, 500, 999]]).unsqueeze(1)
    torch.testing.assert_close(s.add_noise(x0, noise, t), abar.sqrt() * x0 + (1 - abar).sqrt() * noise)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Linear(1000, 0.02, 0.01), "beta_start < beta_end"),
        (lambda: Linear(1000, 0.01, 0.01), "beta_start < beta_end"),
        (lambda: Linear(1000, 0.1, 1.0), "beta_end < 1"),
        (lambda: Linear(1000, 0.0, 0.02), "0 < beta_start"),
        (lambda: ScaledLinear(1, 1e-4, 0.02), "num_train_timesteps"),
        (lambda: Linear(1.5, 1e-4, 0.02), "num_train_timesteps"),
        # checked before any table is built: 10**9 timesteps would take ~32 GB of tables
        (lambda: Linear(10**9), r"num_train_timesteps must be an integer >= 2 and <= 100,000"),
        (lambda: Cosine(100_001), "num_train_timesteps"),
        (lambda: Cosine(1000, s=-0.1), "s must be"),
        (lambda: Cosine(1000, max_beta=1.0), "max_beta"),
    ],
)
def test_invalid_schedules_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_tables_reject_betas_outside_open_interval():
    # Constructors validate their parameters; the table check guards any subclass's betas.
    from dataclasses import dataclass

    from diffkit.schedules import DiscreteVP

    @dataclass(frozen=True)
    class Fixed(DiscreteVP):
        num_train_timesteps: int = 3
        top: float = 1.0
        rescale_zero_terminal_snr: bool = False

        def _make_betas(self):
            return np.array([0.1, 0.2, self.top])

    with pytest.raises(ValueError, match=r"every beta must lie in \(0, 1\)"):
        _ = Fixed(top=1.0).betas
    with pytest.raises(ValueError, match=r"every beta must lie in \(0, 1\)"):
        _ = Fixed(top=0.0).betas
    with pytest.raises(ValueError, match="abar underflows"):
        _ = Linear(4000, 0.4, 0.5).alphas_cumprod


@pytest.mark.parametrize(
    "steps, spacing, match",
    [
        (0, "linspace", "steps must be an integer >= 1"),
        (-3, "karras", "steps must be an integer >= 1"),
        (2.5, "karras", "steps must be an integer >= 1"),
        (1001, "leading", "steps must be <= T"),
        (1001, "linspace", "steps must be <= T"),
        (1, "leading", "visits only t=0, so the sample would be the starting noise"),
        (100_001, "karras", r"steps must be an integer >= 1 and <= 100,000"),
        (True, "karras", "steps must be an integer"),
        (10, "cosine", "unknown spacing 'cosine'; allowed: leading, trailing, linspace, karras, logsnr, "
                       "time_uniform, sgm_uniform, simple, beta"),
        (1001, "simple", "steps must be <= T"),
    ],
)
def test_invalid_timesteps_rejected(steps, spacing, match):
    with pytest.raises(ValueError, match=match):
        timesteps(Linear(), steps, spacing)


def test_karras_never_duplicates_where_diffusers_does():
    # diffusers rounds Karras sigmas of a cosine schedule to integer timesteps and repeats some;
    # diffkit keeps fractional timesteps.
    ts = timesteps(Cosine(), 100, "karras")
    assert len(np.unique(ts)) == 100


def test_schedules_are_immutable_values():
    a, b = Linear(), Linear()
    assert a == b and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.beta_end = 0.03  # type: ignore[misc]
    with pytest.raises(ValueError):
        a.betas[0] = 0.5


# -- the time-based spacings, against the definitions they name ------------------------------

def _comfy_simple(T, steps):
    # ComfyUI comfy/samplers.py simple_scheduler, on the index of its sigma table (sigmas[i] at timestep i).
    ss = T / steps
    return [T - 1 - int(x * ss) for x in range(steps)]


def _comfy_beta(T, steps):
    # ComfyUI beta_scheduler: the table index rint(ppf(1 - i/N) * (T - 1)), consecutive repeats dropped.
    from scipy.stats import beta

    ts = np.rint(beta.ppf(1 - np.linspace(0, 1, steps, endpoint=False), 0.6, 0.6) * (T - 1))
    return [t for k, t in enumerate(ts) if k == 0 or t != ts[k - 1]], ts


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 10, 20, 30, 333, 999, 1000])
def test_simple_is_comfyui_simple(steps):
    assert timesteps(Linear(), steps, "simple").tolist() == _comfy_simple(1000, steps)


@pytest.mark.parametrize("steps", [1, 4, 10, 25, 50])
def test_sgm_uniform_is_comfyui_sgm_uniform(steps):
    # ComfyUI: linspace(timestep(sigma_max), timestep(sigma_min), N + 1)[:-1] = linspace(T - 1, 0, N + 1)[:-1],
    # then sigma(t) by log-sigma interpolation, the same rule as DiscreteVP's continuous t.
    np.testing.assert_allclose(timesteps(Linear(), steps, "sgm_uniform"), np.linspace(999, 0, steps + 1)[:-1],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 2, 5, 10, 30, 100])
def test_beta_is_comfyui_beta_where_it_has_no_repeats(steps):
    ours = timesteps(Linear(), steps, "beta")
    theirs, _ = _comfy_beta(1000, steps)
    assert ours.tolist() == theirs


@pytest.mark.parametrize("steps", [150, 500])
def test_beta_stays_fractional_where_comfyui_drops_repeats(steps):
    ours = timesteps(Linear(), steps, "beta")
    theirs, rounded = _comfy_beta(1000, steps)
    assert len(theirs) < steps  # ComfyUI samples fewer steps than asked
    assert ours.shape == (steps,) and np.all(np.diff(ours) < 0)
    np.testing.assert_array_equal(np.rint(ours), rounded)  # the same quantiles, unrounded


def test_time_uniform_is_the_rho_family_in_t():
    s = Linear()
    np.testing.assert_allclose(timesteps(s, 5, "time_uniform"), np.linspace(999, 0, 5), rtol=0, atol=1e-12)
    # rho = 2 is DPM-Solver's time_quadratic: t = linspace(sqrt(t_max), sqrt(t_min), N)^2.
    np.testing.assert_allclose(timesteps(s, 5, "time_uniform", rho=2), np.linspace(999**0.5, 0, 5) ** 2, rtol=1e-12)


@pytest.mark.parametrize("spacing", ["karras", "time_uniform"])
def test_rho_is_an_option_of_the_rho_spacings_only(spacing):
    assert not np.array_equal(timesteps(Linear(), 6, spacing, rho=3), timesteps(Linear(), 6, spacing))
    with pytest.raises(ValueError, match="rho applies to the spacings karras, time_uniform, not 'beta'"):
        timesteps(Linear(), 6, "beta", rho=3)
    with pytest.raises(ValueError, match="rho must be a finite number > 0"):
        timesteps(Linear(), 6, spacing, rho=0)


@pytest.mark.parametrize("schedule", [Linear(), Cosine(), EDM(), ContinuousVP()], ids=repr)
@pytest.mark.parametrize("spacing, rho", [("karras", None), ("logsnr", None), ("time_uniform", None),
                                          ("time_uniform", 2.0)])
@pytest.mark.parametrize("steps", [1, 2, 5, 17])
def test_endpoint_false_is_the_grid_one_longer_without_its_last_point(schedule, spacing, rho, steps):
    # numpy's linspace(endpoint=False): the last visited point lies above t_min, which the closed grid ends on.
    got = timesteps(schedule, steps, spacing, rho=rho, endpoint=False)
    np.testing.assert_array_equal(got, timesteps(schedule, steps + 1, spacing, rho=rho)[:-1])
    assert got[-1] > schedule.t_min
    t_start = 0.5 * (schedule.t_min + schedule.t_max)  # partial runs (img2img) too
    np.testing.assert_array_equal(timesteps_from(schedule, steps, spacing, t_start, rho=rho, endpoint=False),
                                  timesteps_from(schedule, steps + 1, spacing, t_start, rho=rho)[:-1])


@pytest.mark.parametrize("steps", [1, 3, 9, 25])  # odd: no point at q = 1/2, where rounding 499.5 is a tie
def test_beta_shape_half_half_is_the_arcsine_grid(steps):
    # Beta(0.5, 0.5) is the arcsine law: F^-1(q) = sin^2(pi q / 2), so t_i = t_min + (t_max - t_min) cos^2(pi i / 2N);
    # DiscreteVP rounds to integer timesteps as ComfyUI's beta_scheduler does, other families stay fractional.
    arcsine = np.cos(0.5 * np.pi * np.arange(steps) / steps) ** 2
    np.testing.assert_array_equal(timesteps(Cosine(), steps, "beta", beta_shape=(0.5, 0.5)), np.rint(999 * arcsine))
    flow = FlowMatch(shift=3.0)
    np.testing.assert_allclose(timesteps(flow, steps, "beta", beta_shape=(0.5, 0.5)),
                               flow.t_min + (flow.t_max - flow.t_min) * arcsine, rtol=1e-12)
    np.testing.assert_array_equal(timesteps(Linear(), steps, "beta", beta_shape=(0.6, 0.6)),
                                  timesteps(Linear(), steps, "beta"))  # ComfyUI's default shape


def test_beta_shape_is_an_option_of_the_beta_spacing_only():
    with pytest.raises(ValueError, match="beta_shape applies to the spacing 'beta', not 'karras'"):
        timesteps(Linear(), 6, "karras", beta_shape=(0.5, 0.5))
    for bad in ((0.5,), (0.5, 0.0), (0.5, float("inf")), (True, 0.5), "0.5,0.5"):
        with pytest.raises(ValueError, match="beta_shape must be two finite numbers > 0"):
            timesteps(Linear(), 6, "beta", beta_shape=bad)


@pytest.mark.parametrize("spacing", ["sgm_uniform", "simple", "beta", "leading", "trailing", "linspace"])
def test_endpoint_is_an_option_of_the_spacings_that_end_at_t_min_only(spacing):
    with pytest.raises(ValueError, match="endpoint=False applies to the spacings that end at t_min "
                                         r"\(karras, logsnr, time_uniform\)"):
        timesteps(Linear(), 6, spacing, endpoint=False)
    with pytest.raises(TypeError, match="endpoint must be True or False"):
        timesteps(Linear(), 6, "logsnr", endpoint=0)


TIME_SPACINGS = ("time_uniform", "sgm_uniform", "simple", "beta", "leading", "trailing", "linspace")


@settings(max_examples=60, deadline=None)
@given(T_RANGE, st.sampled_from([Linear, ScaledLinear, Cosine]), st.sampled_from(TIME_SPACINGS), st.data())
def test_zero_terminal_snr_starts_at_pure_noise_without_repeats(T, family, spacing, data):
    s = family(T, rescale_zero_terminal_snr=True)
    lowest = 2 if spacing == "leading" else 1  # leading with one step would visit t = 0 alone (refused)
    steps = data.draw(st.integers(lowest, T if spacing in INTEGER_SPACINGS else 2 * T + 10))
    ts = timesteps(s, steps, spacing)
    assert ts.shape == (steps,) and np.all(np.diff(ts) < 0) and ts.min() >= 0 and ts.max() <= T - 1
    if spacing != "leading":
        assert ts[0] == T - 1 and s.alpha(ts[0]) == 0.0


@pytest.mark.parametrize("spacing", ["karras", "logsnr"])
def test_zero_terminal_snr_refuses_the_lambda_spacings(spacing):
    with pytest.raises(ValueError, match="starts at zero SNR.*use one of: leading, trailing, linspace, time_uniform, "
                                         "sgm_uniform, simple, beta"):
        timesteps(Linear(rescale_zero_terminal_snr=True), 10, spacing)
