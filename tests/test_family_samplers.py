"""Every registered sampler in every schedule family, against the closed form (Gaussian mixtures).

Deterministic samplers converge to the exact probability-flow ODE solution with their
order; stochastic ones reproduce the data statistics; every sampler gives finite samples
at zero terminal SNR; the documented equivalences hold in every family. New samplers are
covered by registering them (``SamplerInfo.stochastic`` says which test applies).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_data_statistics, noise

import diffkit
from diffkit.conversions import PREDICTION_TYPES
from diffkit.models import GaussianMixture, exact_sample, from_prediction
from diffkit.samplers import SAMPLERS, sample_ddim, sample_ddpm
from diffkit.schedules import EDM, ContinuousVP, Cosine, FlowMatch, Linear, ScaledLinear, timesteps
from diffkit.schedules.spacing import karras_sigmas

# family -> (schedule, the prediction type its models use)
FAMILIES = {
    "linear": (Linear(), "epsilon"),
    "zero_snr": (Linear(rescale_zero_terminal_snr=True), "v_prediction"),
    "flow": (FlowMatch(shift=3.0), "flow"),
    "edm": (EDM(), "sample"),
    "continuous_vp": (ContinuousVP(), "epsilon"),
}
DETERMINISTIC = [name for name, info in SAMPLERS.items() if not info.stochastic]
STOCHASTIC = [name for name, info in SAMPLERS.items() if info.stochastic]
# Expected convergence order (lo, hi) by sampler; a sampler not listed must at least converge (order >= 0.85).
# Measured on the grid below (rho = 2, N = 25..200), every family: ddim 1.02, dpmpp_2m 1.95-2.06.
# Heun's fitted slope may exceed 2 at these N (its early steps start far from the asymptotic regime).
ORDERS = {"ddim": (0.85, 1.3), "euler": (0.85, 1.3), "dpmpp_2m": (1.75, 2.4), "heun": (1.75, 3.0)}
DEFAULT_ORDER = (0.85, math.inf)


def flow_karras(schedule, steps: int, rho: float = 2.0) -> np.ndarray:
    """A Karras ramp in s = sigma_k / (1 + sigma_k) (the flow-matching sigma), for every family.

    s lies in (0, 1] in every family, zero SNR included (s = 1), so the ramp refines the
    whole path: near pure noise it is uniform in s, i.e. in alpha / sigma, and near the
    data it is a Karras ramp in sigma_k. (Karras or logsnr spacings need a finite
    sigma_k at t_max; a ramp in VP sigma, uniform in sigma = sqrt(1 - alpha^2), leaves
    alpha ~ N^-1/2 after the first step and so measures first order for every solver.)
    """
    s_min = float(schedule.sigma_k(schedule.t_min))
    s_max = float(schedule.sigma_k(schedule.t_max))
    lo, hi = s_min / (1 + s_min), (1.0 if math.isinf(s_max) else s_max / (1 + s_max))
    u = karras_sigmas(lo, hi, steps, rho)
    with np.errstate(divide="ignore"):
        t = np.asarray(schedule.t_from_lambda(np.log1p(-u) - np.log(u)), dtype=np.float64)
    t[0], t[-1] = schedule.t_max, schedule.t_min  # the inverse is exact only up to rounding
    return t


def _setup(family: str, dim: int = 8, components: int = 3, seed: int = 1):
    schedule, kind = FAMILIES[family]
    mixture = GaussianMixture.random(schedule, dim=dim, components=components, seed=seed)
    return schedule, mixture, mixture.as_model(kind)


def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).pow(2).mean().sqrt().item()


# -- deterministic samplers: the order of convergence to the exact ODE, in every family -------------

@pytest.fixture(scope="module")
def ode_references():
    cache = {}

    def get(family):
        if family not in cache:
            schedule, _, model = _setup(family)
            x_T = noise((48, 8), seed=5) * float(schedule.sigma(schedule.t_max))
            cache[family] = x_T, exact_sample(model, schedule, x_T)
        return cache[family]

    return get


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_converge_with_their_order(name, family, ode_references):
    schedule, _, model = _setup(family)
    x_T, exact = ode_references(family)
    steps = np.array([25, 50, 100, 200])
    errs = [_rms(SAMPLERS[name].fn(model, x_T, schedule, flow_karras(schedule, int(n))), exact) for n in steps]
    order = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    lo, hi = ORDERS.get(name, DEFAULT_ORDER)
    assert lo <= order <= hi, (name, family, order, errs)


@pytest.mark.parametrize("family", ["flow", "zero_snr"])
def test_native_grids_converge_to_the_exact_ode(family, ode_references):
    # The families' own grids (shifted, trailing) from pure noise: DDIM converges at first order.
    # (On them, second-order solvers are pre-asymptotic at these step counts: the shifted grid's
    # last step spans sigma 1/N -> 1/T, the trailing grid's final jump starts at t ~ T/N.)
    schedule, _, model = _setup(family)
    x_T, exact = ode_references(family)
    steps = np.array([25, 50, 100, 200])
    errs = [_rms(diffkit.sample(model, schedule, "ddim", steps=int(n), x=x_T), exact) for n in steps]
    order = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert 0.85 <= order <= 1.3, (order, errs)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_prediction_type_gives_the_same_samples(family):
    # The exact model predicting eps, x0, v or the flow velocity is one model: samplers read all alike.
    schedule, mixture, _ = _setup(family, dim=4)
    x_T = noise((16, 4), seed=6) * float(schedule.sigma(schedule.t_max))
    ts = flow_karras(schedule, 12)
    outs = {kind: diffkit.samplers.sample_dpmpp_2m(mixture.as_model(kind), x_T, schedule, ts)
            for kind in PREDICTION_TYPES if not (kind == "epsilon" and schedule.zero_terminal_snr)}
    for kind, out in outs.items():
        torch.testing.assert_close(out, outs["sample"], rtol=1e-10, atol=1e-10, msg=kind)


# -- stochastic samplers: the data statistics, in every family ---------------------------------------

@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "linear"])  # linear: tests/test_samplers.py
@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_match_the_data_distribution(name, family):
    schedule, kind = FAMILIES[family]
    mixture = GaussianMixture.two_d(schedule)
    n = 4000
    steps = 250 if name == "ddpm" else 60
    if name == "dpmpp_3m_sde" and family == "flow":
        # The shifted grid ends with one long step (sigma 0.05 -> 0.003 at 60 steps, step ratio ~0.2):
        # 3M's second differences of the noisy x0 history amplify the injected noise there
        # (covariance 1.6 vs 1.26 at 60 steps, 1.30 at 150; 2M SDE: 1.30 at 60). k-diffusion's
        # 3M SDE, which this one equals, does the same. Measured at the step count where it converges.
        steps = 150
    x_T = noise((n, 2), seed=3) * float(schedule.sigma(schedule.t_max))
    x = diffkit.sample(mixture.as_model(kind), schedule, name, steps=steps, x=x_T,
                       generator=torch.Generator().manual_seed(4))
    assert_data_statistics(x, mixture)


# -- zero terminal SNR: every sampler, from pure noise -----------------------------------------------

@pytest.mark.parametrize("schedule", [Linear(rescale_zero_terminal_snr=True), Cosine(rescale_zero_terminal_snr=True),
                                      ScaledLinear(rescale_zero_terminal_snr=True)], ids=type)
@pytest.mark.parametrize("name", list(SAMPLERS))
@pytest.mark.parametrize("steps", [1, 2, 5, 25])
def test_every_sampler_is_finite_from_zero_terminal_snr(name, schedule, steps):
    ts = timesteps(schedule, steps, "trailing")
    assert ts[0] == schedule.t_max and schedule.alpha(ts[0]) == 0.0  # the first step starts at lambda = -inf
    model = GaussianMixture.random(schedule, dim=8, components=3, seed=1).as_model("v_prediction")
    x = SAMPLERS[name].fn(model, noise((32, 8), seed=7), schedule, ts, generator=torch.Generator().manual_seed(8))
    assert torch.isfinite(x).all()


# -- documented equivalences, in every family ---------------------------------------------------------

@pytest.mark.parametrize("family", list(FAMILIES))
def test_ddim_eta1_is_ddpm_fixed_small_in_every_family(family):
    # Both are the posterior q(x_n | x_t, x0): x_n = (sigma_n / sigma_t) e^-h x_t + alpha_n (1 - e^-2h) x0
    # + sigma_n sqrt(1 - e^-2h) z, on any grid (the same noise draws, step for step).
    schedule, _, model = _setup(family, dim=2)
    ts = flow_karras(schedule, 20)
    x_T = noise((16, 2), seed=7) * float(schedule.sigma(schedule.t_max))
    a = sample_ddim(model, x_T, schedule, ts, generator=torch.Generator().manual_seed(8), eta=1.0)
    b = sample_ddpm(model, x_T, schedule, ts, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_ddim_on_flow_matching_is_the_flow_euler_step():
    # x_n - x_t = (sigma_n - sigma_t)(eps - x0) = (sigma_n - sigma_t) u: the flow ODE's Euler step.
    schedule, _, model = _setup("flow", dim=4)
    ts = timesteps(schedule, 10)
    x = expected = noise((8, 4), seed=9)
    for t, t_next in zip(ts, list(ts[1:]) + [0.0]):
        u = model(expected, torch.full((8,), t, dtype=torch.float64))
        expected = expected + (t_next - t) / schedule.num_train_timesteps * u
    torch.testing.assert_close(sample_ddim(model, x, schedule, ts), expected, rtol=1e-12, atol=1e-12)


# -- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SAMPLERS))
def test_an_eps_model_cannot_start_from_pure_noise(name):
    schedule = FlowMatch()
    model = GaussianMixture.two_d(schedule)  # an eps-model: x0 = (x - sigma eps) / alpha is undefined at alpha = 0
    with pytest.raises(ValueError, match=rf"{name}: an epsilon-prediction model determines no x0 where alpha = 0.*"
                                         r"v_prediction, flow or sample model.*at step 0 \(t=1000\)"):
        diffkit.sample(model, schedule, name, steps=5, x=noise((2, 2)), generator=torch.Generator().manual_seed(0))


def test_unknown_prediction_types_list_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown prediction_type 'flow_prediction'; allowed: epsilon, sample, "
                                         "v_prediction, flow, edm"):
        from_prediction(lambda x, t: x, "flow_prediction", FlowMatch())
    def model(x, t):
        return x

    model.prediction_type = "velocity"
    with pytest.raises(ValueError, match="prediction_type is 'velocity'; allowed: epsilon, sample, v_prediction, flow"):
        diffkit.sample(model, FlowMatch(), "ddim", steps=3, x=noise((2, 2)))


def test_a_model_of_another_parameterisation_shape_is_rejected():
    # e.g. a network that also returns its learned variance (2x the channels), read as a flow model.
    model = from_prediction(lambda x, t: torch.cat([x, x], dim=1), "flow", FlowMatch())
    with pytest.raises(ValueError, match=r"model output at step 0 \(t=1000\) has shape \(2, 6, 4\), expected the "
                                         r"input's shape \(2, 3, 4\)"):
        diffkit.sample(model, FlowMatch(), "dpmpp_2m", steps=3, x=noise((2, 3, 4)))
