"""Reference agreement with diffusers' schedulers, in float64, on exact Gaussian-mixture eps-models.

The diffusers side runs exactly as a pipeline loop does (diffkit.bench.peers).
diffusers builds its tables (betas, abar, sigmas) in float32, and at the noisy
end x0 = x / alpha - sigma_k eps amplifies that rounding by sigma_k (about 2e4 at
t = T-1 of the cosine schedule). So the algorithm is compared with diffusers'
tables swapped for float64 ones (``exact_tables=True``), and, separately, the
tables themselves are compared within float32 rounding, and diffusers as shipped
is compared on the linear schedule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import diffkit
from diffkit.bench import peers
from diffkit.schedules import Cosine, Linear, ScaledLinear, timesteps

pytest.importorskip("diffusers")
# diffusers 0.42 calls np.array on a tensor with copy=False; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SCHEDULES = {"linear": Linear(), "cosine": Cosine(), "scaled_linear": ScaledLinear()}
STEPS = (5, 10, 25, 50)
F32_EPS = float(torch.finfo(torch.float32).eps)


def _model_and_noise(schedule, kind: str, batch: int = 16):
    if kind == "2d":
        model = diffkit.models.GaussianMixture.two_d(schedule)
    else:
        model = diffkit.models.GaussianMixture.random(schedule, dim=8, components=3, seed=1)
    x_T = torch.randn(batch, model.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return model, x_T


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_tables_match_diffusers_within_float32_rounding(name):
    from diffusers import DDPMScheduler

    schedule = SCHEDULES[name]
    ref = DDPMScheduler(**peers.diffusers_beta_config(schedule))
    T = schedule.num_train_timesteps
    # Each diffusers beta is one float32 rounding (plus a few ulps of float32 linspace arithmetic).
    np.testing.assert_allclose(ref.betas.double().numpy(), schedule.betas, rtol=8 * F32_EPS, atol=0)
    # abar is a float32 cumulative product of T rounded factors: relative error <= ~2 T eps32.
    np.testing.assert_allclose(ref.alphas_cumprod.double().numpy(), schedule.alphas_cumprod, rtol=2 * T * F32_EPS,
                               atol=0)


@pytest.mark.parametrize(
    "sampler, spacing",
    # Where the conventions coincide: DDPM/DDIM "leading" and "trailing"; DPMSolverMultistep
    # "linspace" and "trailing" (its "leading" divides by steps + 1, DDIM's "linspace" does not round alike).
    [("ddpm", "leading"), ("ddpm", "trailing"), ("ddim", "leading"), ("ddim", "trailing"),
     ("dpmpp_2m", "linspace"), ("dpmpp_2m", "trailing")],
)
@pytest.mark.parametrize("steps", (1, 5, 10, 25, 50, 100))
def test_timesteps_match_diffusers(sampler, spacing, steps):
    schedule = Linear()
    theirs = peers.diffusers_timesteps(sampler, schedule, steps, spacing=spacing)
    if spacing == "leading" and steps == 1:
        # diffusers visits t = 0 alone, so its "sample" is the starting noise; diffkit refuses the step count.
        assert list(theirs) == [0]
        with pytest.raises(ValueError, match="visits only t=0"):
            timesteps(schedule, steps, spacing)
        return
    np.testing.assert_array_equal(timesteps(schedule, steps, spacing), theirs)


# (sampler, spacing, absolute tolerance and its reason)
EXACT_CASES = {
    # Same float64 coefficients, same float64 state: only float64 rounding separates them.
    "ddim": ("leading", 1e-10),
    # DPMSolverMultistepScheduler.step casts the state to float32 before each update
    # (relative 6e-8 per step on |x| < 5, at most 50 steps): 1e-5 bounds it.
    "dpmpp_2m": ("linspace", 1e-5),
}


@pytest.mark.parametrize("sampler", list(EXACT_CASES))
@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("model_kind", ["2d", "8d"])
@pytest.mark.parametrize("steps", STEPS)
def test_matches_diffusers_with_float64_tables(sampler, schedule_name, model_kind, steps):
    """ddim (eta=0) = DDIMScheduler(set_alpha_to_one=True); dpmpp_2m = DPMSolverMultistepScheduler(dpmsolver++, 2)."""
    spacing, atol = EXACT_CASES[sampler]
    schedule = SCHEDULES[schedule_name]
    model, x_T = _model_and_noise(schedule, model_kind)
    ours = diffkit.sample(model, schedule, sampler, steps, x=x_T, spacing=spacing)
    theirs = peers.DIFFUSERS_PEERS[sampler](model, schedule, steps, x_T, spacing=spacing, exact_tables=True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("sampler, spacing", [("ddim", "leading"), ("dpmpp_2m", "linspace"), ("euler", "leading"),
                                             ("euler", "trailing")])
@pytest.mark.parametrize("steps", STEPS)
def test_matches_diffusers_as_shipped_on_linear(sampler, spacing, steps):
    """diffusers with its own float32 tables: the linear schedule is well conditioned (sigma_k(T-1) ~ 157).

    euler = EulerDiscreteScheduler, which also steps a float32 state (so no float64-table comparison);
    its "linspace" visits fractional timesteps, unlike diffkit's, hence "leading" and "trailing".
    """
    schedule = Linear()
    model, x_T = _model_and_noise(schedule, "8d")
    ours = diffkit.sample(model, schedule, sampler, steps, x=x_T, spacing=spacing)
    theirs = peers.DIFFUSERS_PEERS[sampler](model, schedule, steps, x_T, spacing=spacing)
    # float32 tables (relative ~1e-6 on abar) amplified by sigma_k <= 157 in x0: 1e-5 absolute.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("spacing", ["linspace", "trailing"])
@pytest.mark.parametrize("steps", STEPS)
def test_dpmpp_3m_sde_with_eta0_is_diffusers_dpm_solver_3m(schedule_name, spacing, steps):
    """dpmpp_3m_sde(eta=0) = DPMSolverMultistepScheduler(dpmsolver++, solver_order=3, solver_type="heun",
    lower_order_final=False): the deterministic DPM-Solver++(3M), with float64 tables."""
    schedule = SCHEDULES[schedule_name]
    model, x_T = _model_and_noise(schedule, "8d")
    ours = diffkit.sample(model, schedule, "dpmpp_3m_sde", steps, x=x_T, spacing=spacing, eta=0.0, variant="published")
    theirs = peers.diffusers_dpmpp_3m_heun(model, schedule, steps, x_T, spacing=spacing, exact_tables=True)
    # DPMSolverMultistepScheduler steps a float32 state (see EXACT_CASES): 1e-5 (measured <= 1e-6).
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps", (5, 10, 25))
def test_dpmpp_sde_drift_matches_diffusers_dpmsolver_sde(steps):
    """DPMSolverSDEScheduler (karras) with the noise switched off on both sides: the deterministic part.

    With noise on, diffusers evaluates the Brownian path at float32-rounded sigmas
    (its midpoint lambda is off by ~1e-5), so only the drift is compared exactly.
    """
    schedule = Linear()
    model, x_T = _model_and_noise(schedule, "8d")

    def no_noise(a, b):
        return torch.zeros_like(x_T)

    ours = diffkit.sample(model, schedule, "dpmpp_sde", steps, x=x_T, spacing="karras", noise_sampler=no_noise)
    theirs = peers.diffusers_dpmpp_sde(model, schedule, steps, x_T, spacing="karras", noise_sampler=no_noise)
    # diffusers keeps sigmas in float32 (relative 6e-8, times sigma_k <= 157 in the VE state): 1e-5.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["unipc", "euler"])
def test_extra_peers_converge_to_the_same_sample(name):
    """UniPC and Euler (linspace) are benchmark references: at 50 steps they land near diffkit's DPM-Solver++(2M)."""
    schedule = Linear()
    model, x_T = _model_and_noise(schedule, "2d", batch=8)
    ours = diffkit.sample(model, schedule, "dpmpp_2m", 50, x=x_T, spacing="linspace")
    theirs = peers.DIFFUSERS_PEERS[name](model, schedule, 50, x_T)
    # Different solvers (Euler is first order) of one ODE at 50 steps: agreement to the discretisation error.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0.05)
