"""Reference agreement with k-diffusion's sampling functions, float64, same timesteps, shared noise.

k-diffusion works in the variance-exploding variables x_k = x / alpha and
sigma_k = exp(-lambda); diffkit.bench.peers loads its ``sampling.py`` without the
package (whose imports need torchvision) and wraps the diffkit eps-model as a
denoiser. Both sides visit the same Karras timesteps (k-diffusion gets their
sigma_k, then 0) and the SDE samplers draw from one Brownian path through the
lambda = -log sigma_k adapter (or, where k-diffusion draws torch.randn_like, from
one seed), so the results agree to float64 rounding.
"""

from __future__ import annotations

import pytest
import torch

import diffkit
from diffkit.bench import peers
from diffkit.samplers import BrownianNoise
from diffkit.schedules import Cosine, Linear, timesteps

if peers.k_diffusion_sampling_path() is None:
    pytest.skip("k-diffusion's sampling.py not found (pip install k-diffusion --no-deps)", allow_module_level=True)

SCHEDULES = {"linear": Linear(), "cosine": Cosine()}
STEPS = (5, 10, 25)
# Same float64 arithmetic in a different order (k-diffusion computes in x_k, diffkit in x;
# its sigmas pass through log/exp): differences of ~1e-13 observed, 1e-6 relative is the
# house tolerance for reference agreement.
RTOL, ATOL = 1e-6, 1e-9


def _setup(schedule_name: str, model_kind: str):
    schedule = SCHEDULES[schedule_name]
    if model_kind == "2d":
        model = diffkit.models.GaussianMixture.two_d(schedule)
    else:
        model = diffkit.models.GaussianMixture.random(schedule, dim=8, components=3, seed=1)
    x_T = torch.randn(16, model.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    T = schedule.num_train_timesteps
    noise = BrownianNoise(tuple(x_T.shape), float(schedule.lambda_(T - 1.0)), float(schedule.lambda_(0.0)),
                          seeds=[7], dtype=torch.float64)
    return schedule, model, x_T, noise


def test_loader_does_not_import_k_diffusion_package():
    import sys

    sampling = peers.load_k_diffusion_sampling()
    assert callable(sampling.sample_dpmpp_2m)
    assert "k_diffusion" not in sys.modules


def test_sigmas_and_denoiser_conventions():
    schedule = Linear()
    ts = timesteps(schedule, 10, "karras")
    sigmas = peers.kdiffusion_sigmas(schedule, ts)
    assert sigmas[-1] == 0 and len(sigmas) == len(ts) + 1
    torch.testing.assert_close(schedule.t_from_sigma_k(sigmas[:-1]), torch.from_numpy(ts), rtol=0, atol=1e-9)
    # D(x_k, sigma_k) is the model's x0 prediction: x0 = (x - sigma eps) / alpha at x = alpha x_k.
    model = diffkit.models.GaussianMixture.two_d(schedule)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.full((4,), 500.0, dtype=torch.float64)
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    x0 = (x - sigma[:, None] * model(x, t)) / alpha[:, None]
    D = peers.kdiffusion_denoiser(model, schedule)(x / alpha[:, None], schedule.sigma_k(t))
    torch.testing.assert_close(D, x0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "euler", "heun"])
@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("model_kind", ["2d", "8d"])
@pytest.mark.parametrize("steps", STEPS)
def test_ode_samplers_match_k_diffusion(sampler, schedule_name, model_kind, steps):
    """dpmpp_2m, euler (s_churn = 0) and heun (s_churn = 0) against k-diffusion's functions of the same names."""
    schedule, model, x_T, _ = _setup(schedule_name, model_kind)
    ts = timesteps(schedule, steps, "karras")
    ours = diffkit.sample(model, schedule, sampler, steps, x=x_T, spacing="karras")
    theirs = peers.run_kdiffusion(sampler, model, schedule, ts, x_T)
    torch.testing.assert_close(ours, theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("sampler", ["dpmpp_2m_sde", "dpmpp_sde", "euler_ancestral", "dpmpp_2s_ancestral",
                                     "dpmpp_3m_sde"])
@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("eta", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("steps", STEPS)
def test_sde_samplers_match_k_diffusion_with_shared_noise(sampler, schedule_name, eta, steps):
    schedule, model, x_T, noise = _setup(schedule_name, "8d")
    ts = timesteps(schedule, steps, "karras")
    parity = {"variant": "published"} if sampler == "dpmpp_3m_sde" else {}  # k-diffusion's 3M coefficient
    ours = diffkit.sample(model, schedule, sampler, steps, x=x_T, spacing="karras", eta=eta, noise_sampler=noise,
                          **parity)
    theirs = peers.run_kdiffusion(sampler, model, schedule, ts, x_T, eta=eta,
                                  noise_sampler=peers.lambda_noise_to_sigma_noise(noise))
    torch.testing.assert_close(ours, theirs, rtol=RTOL, atol=ATOL)


# EDM's ImageNet-64 churn (Karras et al. 2022, Table 5), and a lighter one: every churned sigma_k_hat stays
# below the schedule's sigma_k(t_max) ~ 157, where k-diffusion would call its model beyond the schedule
# (diffkit caps sigma_k_hat there; see sample_heun).
CHURN = [{"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}, {"s_churn": 5.0, "s_tmax": 10.0}]


@pytest.mark.parametrize("options", CHURN)
@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("steps", STEPS)
def test_heun_with_churn_matches_k_diffusion_from_the_same_seed(options, schedule_name, steps):
    """k-diffusion draws churn noise with torch.randn_like(x) at every step; diffkit the same from a generator."""
    schedule, model, x_T, _ = _setup(schedule_name, "8d")
    ts = timesteps(schedule, steps, "karras")
    ours = diffkit.sample(model, schedule, "heun", steps, x=x_T, spacing="karras",
                          generator=torch.Generator().manual_seed(5), **options)
    torch.manual_seed(5)  # a fresh torch.Generator seeded alike draws the global generator's stream
    theirs = peers.run_kdiffusion("heun", model, schedule, ts, x_T, **options)
    torch.testing.assert_close(ours, theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2s_ancestral"])
@pytest.mark.parametrize("eta", [1.0, 0.7])
def test_ancestral_samplers_match_k_diffusion_default_noise_from_the_same_seed(sampler, eta):
    """Without a noise_sampler k-diffusion draws torch.randn_like(x) per step; diffkit's default draws alike."""
    schedule, model, x_T, _ = _setup("linear", "8d")
    ts = timesteps(schedule, 10, "karras")
    ours = diffkit.sample(model, schedule, sampler, 10, x=x_T, spacing="karras", eta=eta,
                          generator=torch.Generator().manual_seed(6))
    torch.manual_seed(6)
    theirs = peers.run_kdiffusion(sampler, model, schedule, ts, x_T, eta=eta)
    torch.testing.assert_close(ours, theirs, rtol=RTOL, atol=ATOL)


def test_noise_adapters_round_trip():
    _, _, _, noise = _setup("linear", "8d")
    as_sigma = peers.lambda_noise_to_sigma_noise(noise)
    back = peers.sigma_noise_to_lambda_noise(as_sigma)
    torch.testing.assert_close(back(-2.0, 1.5), noise(-2.0, 1.5), rtol=1e-12, atol=1e-12)
