"""Reference agreement in the new families: diffusers' flow-matching and zero-SNR schedulers, k-diffusion and EDM.

Where a peer computes the same thing, diffkit reproduces it on the same grid. Where a
peer departs from the math (a double shift, a start short of pure noise, 2**-24 for
abar = 0, a model called at truncated timesteps), the test below says so with the
evidence and measures what it costs against the exact probability-flow ODE.

Tolerances: float64 at ~1e-10 where the peer keeps float64 (k-diffusion, diffusers'
DDIM with float64 tables); 1e-5 where diffusers forces float32: FlowMatchEuler,
DPMSolverMultistep and UniPC cast the state to float32 inside ``step`` and keep their
sigmas in float32 (relative 6e-8 per step on |x| < 5, at most 50 steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import noise

import diffkit
from diffkit.bench import peers
from diffkit.models import GaussianMixture, exact_sample, solve_probability_flow
from diffkit.samplers import SAMPLERS
from diffkit.schedules import EDM, ContinuousVP, DiscreteVP, FlowMatch, Linear, ScaledLinear, flux_mu, timesteps

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
FLOAT32_STATE = 1e-5  # see the module docstring


def _mixture_model(schedule, kind, dim=8):
    return GaussianMixture.random(schedule, dim=dim, components=3, seed=1).as_model(kind)


def _rms(a, b):
    return (a - b).pow(2).mean().sqrt().item()


# -- flow matching: FlowMatchEulerDiscreteScheduler -----------------------------------------------

def _flow_euler_peer(model, x, steps, *, shift=1.0, mu=None, sigmas=None):
    """diffusers' FlowMatchEulerDiscreteScheduler loop, as the SD3 / Flux pipelines run it; (sample, timesteps)."""
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=shift, use_dynamic_shifting=mu is not None)
    scheduler.set_timesteps(steps, mu=mu, sigmas=sigmas)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, t.to(x.dtype).expand(x.shape[0])), t, x).prev_sample
    return x, scheduler.timesteps.to(torch.float64).numpy()


FLOW_CONFIGS = {"static_shift_3": {"shift": 3.0}, "flux_mu_1024px": {"mu": flux_mu(4096)}}


@pytest.mark.parametrize("name", ["ddim", "euler"])
@pytest.mark.parametrize("config", list(FLOW_CONFIGS))
@pytest.mark.parametrize("steps", [5, 10, 28])
def test_flow_euler_matches_diffusers_on_its_grid(name, config, steps):
    # DDIM on flow matching is the flow Euler step x_n = x_t + (sigma_n - sigma_t) u (test_family_samplers.py).
    schedule = FlowMatch(**FLOW_CONFIGS[config])
    model = _mixture_model(schedule, "flow")
    x_T = noise((16, 8))
    theirs, ts = _flow_euler_peer(model, x_T, steps, **FLOW_CONFIGS[config])
    ours = SAMPLERS[name].fn(model, x_T, schedule, ts)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=FLOAT32_STATE)


@pytest.mark.parametrize("steps", [5, 10, 28])
def test_flow_default_grid_is_diffusers_shifted_once(steps):
    # With dynamic shifting (Flux) diffusers shifts linspace(1, 1/T, N) once: diffkit's default grid.
    mu = flux_mu(4096)
    model = _mixture_model(FlowMatch(mu=mu), "flow")
    x_T = noise((16, 8))
    theirs, ts = _flow_euler_peer(model, x_T, steps, mu=mu)
    np.testing.assert_allclose(timesteps(FlowMatch(mu=mu), steps), ts, rtol=1e-6)  # diffusers' float32 sigmas
    torch.testing.assert_close(diffkit.sample(model, FlowMatch(mu=mu), "ddim", steps, x=x_T), theirs,
                               rtol=0, atol=FLOAT32_STATE)
    # With a static shift, handing diffusers the unshifted u grid gives the same once-shifted grid.
    schedule = FlowMatch(shift=3.0)
    u = np.linspace(1.0, 1.0 / schedule.num_train_timesteps, steps)
    theirs, ts = _flow_euler_peer(model, x_T, steps, shift=3.0, sigmas=u)
    np.testing.assert_allclose(timesteps(schedule, steps), ts, rtol=1e-6)
    torch.testing.assert_close(diffkit.sample(model, schedule, "ddim", steps, x=x_T), theirs, rtol=0,
                               atol=FLOAT32_STATE)


def test_diffusers_static_shift_is_applied_twice():
    """diffusers issue #13243 (open in 0.42.1): FlowMatchEulerDiscreteScheduler keeps sigma_min after shifting
    in __init__, then set_timesteps builds linspace(1, sigma_min) and shifts it again.

    Evidence: its grid is shift(linspace(1, shift(1/T), N)), ending at sigma = shift(shift(1/T))
    = 0.00893 for shift 3 instead of the table's least noise shift(1/T) = 0.00299. diffkit shifts
    once (as diffusers does with ``mu``). Against the exact ODE the double shift is not less
    accurate at these step counts (it shortens the last step): measured RMS errors of the
    Euler sample to the exact sample, diffusers / diffkit: 0.260 / 0.262 (5 steps),
    0.115 / 0.118 (10), 0.0407 / 0.0424 (28); diffkit's converge at first order to the exact
    sample (test_family_samplers.py::test_native_grids_converge_to_the_exact_ode).
    """
    schedule = FlowMatch(shift=3.0)
    T = schedule.num_train_timesteps
    model = _mixture_model(schedule, "flow")
    x_T = noise((16, 8))
    exact = exact_sample(model, schedule, x_T)
    for steps in (5, 10, 28):
        theirs, ts = _flow_euler_peer(model, x_T, steps, shift=3.0)
        once = schedule.shifted(np.float64(1.0 / T))
        np.testing.assert_allclose(ts / T, schedule.shifted(np.linspace(1.0, once, steps)), rtol=1e-6)
        assert ts[-1] / T == pytest.approx(schedule.shifted(once), rel=1e-6)
        assert once == pytest.approx(0.0029940, abs=1e-7)
        ours = diffkit.sample(model, schedule, "ddim", steps, x=x_T)
        assert 0.9 < _rms(theirs, exact) / _rms(ours, exact) < 1.0  # measured 0.957-0.994


# -- flow matching: the multistep schedulers with use_flow_sigmas --------------------------------------

MULTISTEP_FLOW_PEERS = {
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {"solver_order": 2}),
}


def _multistep_flow_peer(name, model, x, steps, *, shift=3.0, model_time="sigma"):
    """DPMSolverMultistep / UniPC with use_flow_sigmas, prediction_type="flow_prediction"; (sample, sigmas * T).

    ``model_time="sigma"`` calls the model at sigma * T, the time its step uses;
    "timesteps" at the scheduler's own ``timesteps``, int64 (as the pipelines do).
    """
    cls, options = MULTISTEP_FLOW_PEERS[name]
    scheduler = getattr(diffusers, cls)(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=shift,
                                        final_sigmas_type="zero", **options)
    scheduler.set_timesteps(steps)
    T = scheduler.config.num_train_timesteps
    grid = scheduler.sigmas[:-1].to(torch.float64) * T
    for t, t_sigma in zip(scheduler.timesteps, grid):
        t_model = t_sigma if model_time == "sigma" else t.to(torch.float64)
        x = scheduler.step(model(x, t_model.to(x.dtype).expand(x.shape[0])), t, x).prev_sample
    return x, grid.numpy()


@pytest.mark.parametrize("name", ["dpmpp_2m", "unipc"])
@pytest.mark.parametrize("steps", [5, 10, 28])
def test_multistep_flow_schedulers_match_on_their_grid(name, steps):
    schedule = FlowMatch(shift=3.0)
    model = _mixture_model(schedule, "flow")
    x_T = noise((16, 8))
    theirs, grid = _multistep_flow_peer(name, model, x_T, steps)
    ours = SAMPLERS[name].fn(model, x_T, schedule, grid)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=FLOAT32_STATE)


def test_multistep_flow_schedulers_start_short_of_pure_noise_and_truncate_the_model_time():
    """Two departures of DPMSolverMultistep / UniPC with use_flow_sigmas (diffusers 0.42.1), against the exact ODE.

    1. Neither starts at sigma = 1. DPMSolverMultistep's grid is shift(1 - linspace(0, 1 - 1/T, N + 1))
       without its last point, so it starts at shift(1 - 1/T) = 0.99967 (shift 3); UniPC replaces
       sigma = 1 by 1 - 1e-6 "to avoid inf torch.log(alpha_si)". Both read x_T ~ N(0, I) as the
       state at that sigma: the exact ODE from there misses the one from sigma = 1 by 2e-4 RMS
       (DPMSolverMultistep) and 6e-7 (UniPC). diffkit starts at alpha = 0 exactly.
    2. Both call the model at ``timesteps`` = int64(sigma * T) (truncated) while their update
       uses sigma: the model sees a time up to 1/T early, which moves DPMSolverMultistep's
       sample by 4e-4 to 9e-4 RMS (5-28 steps) against calling it at sigma * T.
    """
    schedule = FlowMatch(shift=3.0)
    T = schedule.num_train_timesteps
    model = _mixture_model(schedule, "flow")
    x_T = noise((16, 8))
    for cls, options in MULTISTEP_FLOW_PEERS.values():
        scheduler = getattr(diffusers, cls)(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0,
                                            final_sigmas_type="zero", **options)
        scheduler.set_timesteps(10)
        start = float(scheduler.sigmas[0])
        expected = 1 - 1e-6 if cls.startswith("UniPC") else float(schedule.shifted(np.float64(1 - 1 / T)))
        assert start == pytest.approx(expected, abs=1e-7) and start < 1.0
        np.testing.assert_array_equal(scheduler.timesteps.numpy(),
                                      np.floor(scheduler.sigmas[:-1].double().numpy() * T).astype(np.int64))
        t_end = float(scheduler.sigmas[-2]) * T
        from_one = solve_probability_flow(model, schedule, x_T, t_end=t_end)
        from_start = solve_probability_flow(model, schedule, x_T, t_start=start * T, t_end=t_end)
        offset = _rms(from_one, from_start)
        assert (1e-4 < offset < 1e-3) if cls.startswith("DPM") else (1e-7 < offset < 1e-5), (cls, offset)
    shipped, _ = _multistep_flow_peer("dpmpp_2m", model, x_T, 28, model_time="timesteps")
    exact_time, _ = _multistep_flow_peer("dpmpp_2m", model, x_T, 28)
    assert _rms(shipped, exact_time) > 1e-4  # measured 4.3e-4 at 28 steps (4.6e-4, 9.4e-4 at 5, 10)


# -- zero terminal SNR: DDIM, and the 2**-24 stand-in of the multistep schedulers ------------------------

ZERO_SNR = {"linear": Linear(rescale_zero_terminal_snr=True),
            "scaled_linear": ScaledLinear(rescale_zero_terminal_snr=True)}


@pytest.mark.parametrize("schedule_name", list(ZERO_SNR))
@pytest.mark.parametrize("steps", [5, 10, 25, 50])
def test_ddim_matches_diffusers_at_zero_terminal_snr(schedule_name, steps):
    """DDIMScheduler(rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction")."""
    schedule = ZERO_SNR[schedule_name]
    model = _mixture_model(schedule, "v_prediction")
    x_T = noise((16, 8))
    ours = diffkit.sample(model, schedule, "ddim", steps, x=x_T)  # trailing is the zero-SNR default
    assert timesteps(schedule, steps)[0] == schedule.t_max
    # As shipped: x0 = alpha x - sigma v needs no division, so float32 tables cost ~1e-6 (measured <= 2.1e-6).
    torch.testing.assert_close(ours, peers.run_diffusers("ddim", model, schedule, steps, x_T, spacing="trailing"),
                               rtol=0, atol=FLOAT32_STATE)
    # With float64 tables the algorithms agree to float64 rounding (measured <= 7e-15).
    theirs = peers.run_diffusers("ddim", model, schedule, steps, x_T, spacing="trailing", exact_tables=True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


@dataclass(frozen=True)
class _AbarFloor(DiscreteVP):
    """ScaledLinear with zero terminal SNR, except abar_{T-1} = 2**-24: diffusers' stand-in, as a schedule."""

    num_train_timesteps: int = 1000
    rescale_zero_terminal_snr: bool = False

    def _make_betas(self) -> np.ndarray:
        zero_snr = ZERO_SNR["scaled_linear"]
        betas = np.array(zero_snr.betas)
        betas[-1] = 1.0 - 2.0**-24 / zero_snr.alphas_cumprod[-2]
        return betas


@pytest.mark.parametrize("name", ["dpmpp_2m", "unipc"])
def test_multistep_schedulers_replace_zero_terminal_snr_by_2_pow_minus_24(name):
    """DPMSolverMultistep, UniPC (and Euler) set abar_{T-1} = 2**-24 under rescale_betas_zero_snr "so first
    sigma is not inf": they start at sigma_k = 4096 (alpha = 2**-12), not at pure noise.

    Evidence: with that value written into a diffkit schedule, diffkit reproduces them (float64
    tables: <= 1.3e-6). Against the exact ODE, starting at alpha = 2**-12 instead of 0 moves
    the exact sample by 3e-5 to 3e-4 RMS (measured, 5-50 trailing steps); diffkit starts at
    alpha = 0 and converges to the exact sample (test_family_samplers.py). For the rescaled
    *linear* schedule the stand-in even breaks monotonicity: 2**-24 > abar_{T-2} = 4.2e-9.
    """
    zero_snr, floor = ZERO_SNR["scaled_linear"], _AbarFloor()
    cls = {"dpmpp_2m": diffusers.DPMSolverMultistepScheduler, "unipc": diffusers.UniPCMultistepScheduler}[name]
    shipped = cls(**peers.diffusers_beta_config(zero_snr))
    assert float(shipped.alphas_cumprod[-1]) == 2.0**-24 and zero_snr.alphas_cumprod[-1] == 0.0
    linear = cls(**peers.diffusers_beta_config(ZERO_SNR["linear"])).alphas_cumprod
    assert linear[-1] > linear[-2]  # abar increases at the last timestep: sigma_k(T-1) < sigma_k(T-2)
    x_T = noise((16, 8))
    for steps in (5, 10, 25):
        model_floor = _mixture_model(floor, "v_prediction")
        theirs = peers.run_diffusers(name, model_floor, floor, steps, x_T, spacing="trailing", exact_tables=True)
        ours = diffkit.sample(model_floor, floor, name, steps, x=x_T, spacing="trailing")
        torch.testing.assert_close(ours, theirs, rtol=0, atol=FLOAT32_STATE)
        t_end = timesteps(zero_snr, steps, "trailing")[-1]
        moved = _rms(exact_sample(model_floor, floor, x_T, t_end=t_end),
                     exact_sample(_mixture_model(zero_snr, "v_prediction"), zero_snr, x_T, t_end=t_end))
        assert 1e-5 < moved < 1e-3, moved


# -- EDM and the continuous VP SDE: k-diffusion and EDM's own sampler ------------------------------------

KD_FAMILIES = {"edm": (EDM(), "sample"), "continuous_vp": (ContinuousVP(), "epsilon")}


def test_edm_default_grid_is_k_diffusion_karras():
    kd = peers.load_k_diffusion_sampling()
    for steps in (2, 18, 50):
        theirs = kd.get_sigmas_karras(steps, 0.002, 80.0, rho=7.0).to(torch.float64).numpy()
        # k-diffusion ramps in float32 and raises to the 7th power: 7 x 6e-8 relative, and some rounding.
        np.testing.assert_allclose(timesteps(EDM(), steps), theirs[:-1], rtol=2e-6)
        np.testing.assert_allclose(timesteps(EDM(), steps), _edm_time_steps(steps)[:-1], rtol=1e-13)


@pytest.mark.parametrize("family", list(KD_FAMILIES))
@pytest.mark.parametrize("name, kd_name", [("ddim", "sample_euler"), ("dpmpp_2m", "sample_dpmpp_2m"),
                                           ("euler", "sample_euler"), ("heun", "sample_heun")])
@pytest.mark.parametrize("steps", [5, 18, 40])
def test_k_diffusion_samplers_match(family, name, kd_name, steps):
    # Euler in k-diffusion's variables (x / alpha, sigma_k) is DDIM: x_n = alpha_n x0 + sigma_n eps.
    schedule, kind = KD_FAMILIES[family]
    model = _mixture_model(schedule, kind)
    x_T = noise((16, 8)) * float(schedule.sigma(schedule.t_max))
    ts = timesteps(schedule, steps, "karras")
    theirs = getattr(peers.load_k_diffusion_sampling(), kd_name)(
        peers.kdiffusion_denoiser(model, schedule), peers.vp_to_k(x_T, schedule, ts[0]),
        peers.kdiffusion_sigmas(schedule, ts), disable=True)
    ours = SAMPLERS[name].fn(model, x_T, schedule, ts)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)  # both float64


def _edm_time_steps(steps, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    i = torch.arange(steps, dtype=torch.float64)
    t = (sigma_max ** (1 / rho) + i / (steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([t, t.new_zeros(1)]).numpy()


def _edm_sampler(denoiser, x_T, steps, *, S_churn=0.0, S_min=0.0, S_max=math.inf, S_noise=1.0):
    """Karras et al. 2022, Algorithm 2 (NVlabs/edm ``edm_sampler``): Heun with churn; written for this test.

    x_T is the state at sigma_max; noise from torch's global generator, one draw per step.
    """
    t = torch.from_numpy(_edm_time_steps(steps))
    x_next = x_T.to(torch.float64)
    for i, (t_cur, t_next) in enumerate(zip(t[:-1], t[1:])):
        gamma = min(S_churn / steps, math.sqrt(2) - 1) if S_min <= t_cur <= S_max else 0.0
        t_hat = t_cur + gamma * t_cur
        x_hat = x_next + (t_hat**2 - t_cur**2).sqrt() * S_noise * torch.randn_like(x_next)
        d_cur = (x_hat - denoiser(x_hat, t_hat.expand(len(x_hat)))) / t_hat
        x_next = x_hat + (t_next - t_hat) * d_cur
        if i < steps - 1:  # second order, except into sigma = 0
            d_prime = (x_next - denoiser(x_next, t_next.expand(len(x_hat)))) / t_next
            x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


EDM_CHURN = {"S_churn": 40.0, "S_min": 0.05, "S_max": 50.0}  # EDM's ImageNet-64 settings (Table 5), S_noise 1.003


@pytest.mark.parametrize("S_noise", [0.0, 1.003])
def test_edm_sampler_port_is_k_diffusion_heun(S_noise):
    # Checks the port above: the same algorithm and the same noise draws as k-diffusion's sample_heun.
    schedule = EDM()
    denoiser = peers.kdiffusion_denoiser(_mixture_model(schedule, "sample"), schedule)
    x_T = noise((16, 8)) * 80.0
    torch.manual_seed(0)
    ours = _edm_sampler(denoiser, x_T, 18, **EDM_CHURN, S_noise=S_noise)
    torch.manual_seed(0)
    theirs = peers.load_k_diffusion_sampling().sample_heun(
        denoiser, x_T, torch.from_numpy(_edm_time_steps(18)), disable=True, s_churn=EDM_CHURN["S_churn"],
        s_tmin=EDM_CHURN["S_min"], s_tmax=EDM_CHURN["S_max"], s_noise=S_noise)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("churn", [False, True])
@pytest.mark.parametrize("name", ["heun"])
def test_heun_on_edm_is_edm_sampler(name, churn):
    # With S_noise = 0 the churn is deterministic (sigma is raised, no noise added): exact comparison.
    options = {}
    if churn:
        wanted = {"s_churn", "s_tmin", "s_tmax", "s_noise"}
        if not wanted <= set(SAMPLERS[name].options):
            pytest.skip(f"heun has options {sorted(SAMPLERS[name].options)}, not k-diffusion's {sorted(wanted)}")
        options = {"s_churn": EDM_CHURN["S_churn"], "s_tmin": EDM_CHURN["S_min"], "s_tmax": EDM_CHURN["S_max"],
                   "s_noise": 0.0}
    schedule = EDM()
    model = _mixture_model(schedule, "sample")
    x_T = noise((16, 8)) * 80.0
    ours = diffkit.sample(model, schedule, name, 18, x=x_T, **options)  # EDM's default: karras, rho = 7
    edm_options = {**EDM_CHURN, "S_noise": 0.0} if churn else {}
    theirs = _edm_sampler(peers.kdiffusion_denoiser(model, schedule), x_T, 18, **edm_options)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
