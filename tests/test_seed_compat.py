"""Seed compatibility: one torch.Generator gives diffusers' samples, and per-sample generators batch-free samples.

diffkit draws its noise exactly as diffusers' ``randn_tensor`` does, in the same
order and dtype (x_T first, then one draw per step where the scheduler draws),
so a seed carries over between the libraries. The diffusers loops run as
shipped (float32 tables) on the linear schedule, whose float32 rounding stays
below 1e-5 in the samples (see test_reference_diffusers.py).
"""

from __future__ import annotations

import pytest
import torch

import diffkit
from diffkit.bench import peers
from diffkit.schedules import Linear

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SCHEDULE = Linear()
SHAPE = (4, 8)  # [B, D] of the random 8-D mixture
# float32 tables in diffusers (relative ~1e-6 on abar, amplified by sigma_k <= 157; EulerAncestral also
# steps a float32 state): 1e-5 absolute.
ATOL = 1e-5
# (diffkit sampler, options, spacing): the cases where diffusers' scheduler draws the same stream.
CASES = {
    "ddpm_fixed_small": ("ddpm", {"variance": "fixed_small"}, "leading"),
    "ddpm_fixed_large": ("ddpm", {"variance": "fixed_large"}, "leading"),
    "ddim_eta1": ("ddim", {"eta": 1.0}, "leading"),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {}, "linspace"),
    # EulerAncestralDiscreteScheduler's "linspace" visits fractional timesteps; "leading" ones are diffkit's.
    "euler_ancestral": ("euler_ancestral", {}, "leading"),
}


def _model():
    return diffkit.models.GaussianMixture.random(SCHEDULE, dim=SHAPE[1], components=3, seed=1)


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def _diffusers_sample(name, options, spacing, steps, generator):
    """What a diffusers pipeline does: x_T = randn_tensor(shape, generator), then the scheduler loop."""
    from diffusers.utils.torch_utils import randn_tensor

    x_T = randn_tensor(SHAPE, generator=generator, device=torch.device("cpu"), dtype=torch.float64)
    return peers.run_diffusers(name, _model(), SCHEDULE, steps, x_T, generator=generator, spacing=spacing, **options)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("steps", (5, 20))
def test_same_generator_same_sample_as_diffusers_given_x_T(case, steps):
    name, options, spacing = CASES[case]
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = diffkit.sample(_model(), SCHEDULE, name, steps, x=x_T, spacing=spacing,
                          generator=torch.Generator().manual_seed(42), **options)
    theirs = peers.run_diffusers(name, _model(), SCHEDULE, steps, x_T, spacing=spacing,
                                 generator=torch.Generator().manual_seed(42), **options)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=ATOL)


@pytest.mark.parametrize("case", list(CASES))
def test_same_generator_draws_x_T_like_randn_tensor(case):
    name, options, spacing = CASES[case]
    ours = diffkit.sample(_model(), SCHEDULE, name, 10, shape=SHAPE, dtype=torch.float64, spacing=spacing,
                          generator=torch.Generator().manual_seed(3), **options)
    theirs = _diffusers_sample(name, options, spacing, 10, torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=ATOL)


@pytest.mark.parametrize("case", list(CASES))
def test_list_of_generators_like_diffusers(case):
    name, options, spacing = CASES[case]
    seeds = [11, 12, 13, 14]
    ours = diffkit.sample(_model(), SCHEDULE, name, 10, shape=SHAPE, dtype=torch.float64, spacing=spacing,
                          generator=_gens(seeds), **options)
    theirs = _diffusers_sample(name, options, spacing, 10, _gens(seeds))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=ATOL)


@pytest.mark.parametrize("sampler", list(diffkit.SAMPLERS))
def test_sample_k_does_not_depend_on_batch_size(sampler):
    """With one generator per sample, sample k is the same in a batch of 4 and alone or in a batch of 2."""
    options = {"eta": 1.0} if sampler == "ddim" else {}
    seeds = [21, 22, 23, 24]
    full = diffkit.sample(_model(), SCHEDULE, sampler, 8, shape=SHAPE, dtype=torch.float64,
                          generator=_gens(seeds), **options)
    pair = diffkit.sample(_model(), SCHEDULE, sampler, 8, shape=(2, SHAPE[1]), dtype=torch.float64,
                          generator=_gens(seeds[2:]), **options)
    single = diffkit.sample(_model(), SCHEDULE, sampler, 8, shape=(1, SHAPE[1]), dtype=torch.float64,
                            generator=_gens(seeds[1:2]), **options)
    # Identical noise; the model's batched float64 linear algebra may round differently per batch size.
    torch.testing.assert_close(pair, full[2:], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(single, full[1:2], rtol=1e-12, atol=1e-12)
