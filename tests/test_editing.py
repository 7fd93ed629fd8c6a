"""Editing: img2img's start and grid, inversion round trips, inpainting's replacement and RePaint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_data_statistics, noise

import diffkit
from diffkit.editing import ReplaceKnown, noise_fraction, start_time
from diffkit.models import GaussianMixture
from diffkit.samplers import SAMPLERS, Grid
from diffkit.samplers.noise import randn
from diffkit.schedules import EDM, FlowMatch, Linear, timesteps
from diffkit.schedules.spacing import spacings, timesteps_from

FAMILIES = {
    "linear": (Linear(), "epsilon"),
    "zero_snr": (Linear(rescale_zero_terminal_snr=True), "v_prediction"),
    "flow": (FlowMatch(shift=3.0), "flow"),
    "edm": (EDM(), "sample"),
}
DETERMINISTIC = [name for name, info in SAMPLERS.items() if not info.stochastic]


def rms(a, b):
    return (a - b).pow(2).mean().sqrt().item()


def gen(seed):
    return torch.Generator().manual_seed(seed)


# -- img2img -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_strength_is_a_fraction_of_the_noise_range(family):
    schedule = FAMILIES[family][0]
    lo, hi = noise_fraction(schedule, schedule.t_min), noise_fraction(schedule, schedule.t_max)
    starts = [start_time(schedule, s) for s in (0.05, 0.2, 0.5, 0.8, 0.99)]
    assert all(a < b for a, b in zip(starts, starts[1:]))
    for s, t in zip((0.05, 0.2, 0.5, 0.8, 0.99), starts):
        assert noise_fraction(schedule, t) == pytest.approx(lo + s * (hi - lo), rel=1e-9)
    assert start_time(schedule, 1.0) == schedule.t_max


@pytest.mark.parametrize("sampler, options, spacing", [("ddim", {"eta": 1.0}, None), ("dpmpp_2m", {}, None),
                                                       ("ddpm", {}, "leading")])
def test_strength_1_is_plain_sampling_from_the_noised_input(sampler, options, spacing, gmm8d, linear):
    x0 = gmm8d.sample_data(6, gen(0))
    edited = diffkit.img2img(gmm8d, linear, x0, 1.0, sampler, 8, gen(1), spacing=spacing, **options)
    g = gen(1)
    z = torch.randn(x0.shape, generator=g, dtype=torch.float64)  # the first draw
    x_T = linear.add_noise(x0, z, torch.full((6,), 999.0))
    plain = diffkit.sample(gmm8d, linear, sampler, 8, x=x_T, generator=g, spacing=spacing, **options)
    torch.testing.assert_close(edited, plain, rtol=0, atol=0)


@pytest.mark.parametrize("strength", [0.1, 0.6])
def test_img2img_takes_exactly_steps_fresh_steps_from_the_start(strength, gmm8d, linear):
    x0, steps = gmm8d.sample_data(4, gen(0)), 7
    seen = []
    edited = diffkit.img2img(gmm8d, linear, x0, strength, "dpmpp_2m", steps, gen(2),
                             callback=lambda i, t, x, x0: seen.append(t))
    t_start = start_time(linear, strength)
    assert len(seen) == steps and seen[0] == pytest.approx(t_start)
    ts = timesteps_from(linear, steps, "karras", t_start)
    x_start = linear.add_noise(x0, torch.randn(x0.shape, generator=gen(2), dtype=torch.float64),
                               torch.full((4,), t_start, dtype=torch.float64))
    torch.testing.assert_close(edited, SAMPLERS["dpmpp_2m"].fn(gmm8d, x_start, linear, ts))  # a fresh history


def test_small_strengths_return_nearly_the_input(gmm8d, linear):
    x0 = gmm8d.sample_data(32, gen(0))
    for strength in (0.001, 0.01):
        edited = diffkit.img2img(gmm8d, linear, x0, strength, "dpmpp_2m", 5, gen(1))
        assert rms(edited, x0) < 2 * noise_fraction(linear, start_time(linear, strength))


@pytest.mark.parametrize("strength", [0.3, 0.7])
def test_img2img_of_data_samples_keeps_the_data_distribution(strength, gmm2d, linear):
    # x_t of data samples is exactly distributed as the noisy marginal, so an exact solver returns the data law.
    x0 = gmm2d.sample_data(3000, gen(3))
    edited = diffkit.img2img(gmm2d, linear, x0, strength, "dpmpp_2m", 20, gen(4))
    assert_data_statistics(edited, gmm2d)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_img2img_in_every_family(family, strength):
    schedule, kind = FAMILIES[family]
    mixture = GaussianMixture.random(schedule, dim=8, components=3, seed=1)
    x0 = mixture.sample_data(16, gen(0))
    for sampler in SAMPLERS:
        out = diffkit.img2img(mixture.as_model(kind), schedule, x0, strength, sampler, 6, gen(1))
        assert torch.isfinite(out).all(), sampler


@pytest.mark.parametrize("strength", [0, -0.5, 1.01, float("nan"), True, "0.5", None])
def test_strength_outside_0_1_is_refused(strength, gmm8d, linear):
    with pytest.raises(ValueError, match=r"strength must be a number in \(0, 1\]"):
        diffkit.img2img(gmm8d, linear, noise((2, 8)), strength)


@pytest.mark.parametrize("family", FAMILIES)
def test_grids_from_a_start_time(family):
    schedule = FAMILIES[family][0]
    for spacing in spacings(schedule):
        if spacing in ("karras", "logsnr") and schedule.zero_terminal_snr:
            continue  # not from t_max; from below it they exist (next assertion)
        np.testing.assert_array_equal(timesteps_from(schedule, 9, spacing, schedule.t_max),
                                      timesteps(schedule, 9, spacing))
    t_start = start_time(schedule, 0.4)
    for spacing in spacings(schedule):
        t = timesteps_from(schedule, 9, spacing, t_start)
        assert len(t) == 9 and t[0] == t_start and np.all(np.diff(t) < 0) and t[-1] >= schedule.t_min
    root = schedule.sigma_k(timesteps_from(schedule, 9, "karras", t_start)) ** (1 / 7)
    np.testing.assert_allclose(np.diff(root), np.diff(root)[0], rtol=1e-6)  # a Karras ramp from t_start


def test_bad_start_times(linear):
    with pytest.raises(ValueError, match=r"t_start must lie in \(t_min, t_max\]"):
        timesteps_from(linear, 5, "karras", 0.0)
    with pytest.raises(ValueError, match="too close to t_min"):
        timesteps_from(linear, 50, "trailing", 5e-324)


# -- inversion -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler, options", [("ddim", {}), ("dpmpp_2m", {}), ("heun", {}),
                                              ("dpmpp_3m_sde", {"eta": 0.0})])
def test_inversion_round_trips_converge(sampler, options, gmm8d, linear):
    x0 = gmm8d.sample_data(16, gen(5))
    errs = []
    for steps in (10, 40):
        x_T = diffkit.invert(gmm8d, linear, x0, sampler, steps, **options)
        up = timesteps(linear, steps, "karras")
        back = SAMPLERS[sampler].fn(gmm8d, x_T, linear, Grid(up[:-1], end=up[-1]), **options)  # the ODE back
        errs.append(rms(back, x0))
    assert errs[1] < errs[0] / 3, errs
    full = diffkit.sample(gmm8d, linear, sampler, 40, x=x_T, **options)  # and the final step to the data
    floor = rms(SAMPLERS["ddim"].fn(gmm8d, x0, linear, [linear.t_min]), x0)  # x0 denoised as if at t_min
    assert rms(full, x0) < errs[1] + 2 * floor


@pytest.mark.parametrize("sampler, options", [("ddpm", {}), ("ddim", {"eta": 0.5}), ("dpmpp_2m_sde", {})])
def test_inversion_refuses_noise(sampler, options, gmm8d, linear):
    with pytest.raises(ValueError, match="only denoises"):
        diffkit.invert(gmm8d, linear, noise((2, 8)), sampler, 5, **options)


def test_inversion_needs_two_points(gmm8d, linear):
    with pytest.raises(ValueError, match="steps >= 2"):
        diffkit.invert(gmm8d, linear, noise((2, 8)), "ddim", 1)
    with pytest.raises(ValueError, match="has no option"):
        diffkit.invert(gmm8d, linear, noise((2, 8)), "ddim", 5, churn=1)


def test_editing_refuses_the_analytical_first_step(gmm8d, linear):
    # afs takes x_t for pure noise at the first timestep; every edit starts from an image
    with pytest.raises(ValueError, match="afs=True .* not available here"):
        diffkit.invert(gmm8d, linear, noise((2, 8)), "ipndm", 5, afs=True)
    with pytest.raises(ValueError, match="afs=True .* not available here"):
        diffkit.img2img(gmm8d, linear, noise((2, 8)), 0.5, "ipndm", 5, afs=True)


# -- inpainting ----------------------------------------------------------------------------------------


def half_mask(n, dim=8):
    return (torch.arange(dim) < dim // 2).expand(n, dim)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("resample", [1, 2])
def test_inpainting_keeps_the_known_region_exactly(sampler, resample, gmm8d, linear):
    x_known = gmm8d.sample_data(4, gen(0))
    out = diffkit.inpaint(gmm8d, linear, x_known, half_mask(4), sampler, 4, resample, gen(1), jump=2)
    assert torch.equal(out[:, :4], x_known[:, :4]) and torch.isfinite(out).all()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_the_samplers_own_known_pixels_are_never_read(sampler, gmm8d, linear):
    # With the wrapper, the unknown region evolves as under the explicit merge for every sampler:
    # nothing the sampler keeps in the known region reaches it.
    x_known, mask = gmm8d.sample_data(4, gen(0)), half_mask(4)
    x_T = noise((4, 8), seed=1)
    other = torch.where(mask, noise((4, 8), seed=2) * 5, x_T)
    ts = timesteps(linear, 5, "karras")
    runs = [SAMPLERS[sampler].fn(ReplaceKnown(gmm8d, linear, x_known, mask, gen(3)), x, linear, ts, generator=gen(4))
            for x in (x_T, other)]
    torch.testing.assert_close(runs[0][:, 4:], runs[1][:, 4:], rtol=0, atol=0)


@pytest.mark.parametrize("sampler, options",
                         [("ddim", {}), ("ddpm", {}), ("euler_ancestral", {}), ("ddim", {"eta": 1.0})])
def test_the_wrapper_is_the_replacement_method(sampler, options, gmm8d, linear):
    x_known, mask, steps = gmm8d.sample_data(4, gen(0)), half_mask(4), 6
    out = diffkit.inpaint(gmm8d, linear, x_known, mask, sampler, steps, generator=gen(1), **options)
    spacing = SAMPLERS[sampler].default_spacing
    ts = timesteps(linear, steps, spacing)
    g, fn = gen(1), SAMPLERS[sampler].fn
    x = torch.randn(4, 8, generator=g, dtype=torch.float64)
    for i, t in enumerate(ts):  # merge the re-noised known pixels, then one step of the sampler
        z = torch.randn(4, 8, generator=g, dtype=torch.float64)
        x = torch.where(mask, linear.add_noise(x_known, z, torch.full((4,), t, dtype=torch.float64)), x)
        x = fn(gmm8d, x, linear, Grid([t], end=ts[i + 1] if i + 1 < steps else None), generator=g, **options)
    torch.testing.assert_close(out, torch.where(mask, x_known, x), rtol=1e-12, atol=1e-12)


def test_empty_and_full_masks(gmm8d, linear):
    x_known = gmm8d.sample_data(3, gen(0))
    none_known = diffkit.inpaint(gmm8d, linear, x_known, torch.zeros(3, 8), "dpmpp_2m", 6, generator=gen(1))
    plain = diffkit.sample(gmm8d, linear, "dpmpp_2m", 6, x=torch.randn(3, 8, generator=gen(1), dtype=torch.float64))
    torch.testing.assert_close(none_known, plain, rtol=0, atol=0)
    all_known = diffkit.inpaint(gmm8d, linear, x_known, torch.ones(1, 8), "dpmpp_2m", 6, 3, gen(1))
    assert torch.equal(all_known, x_known)


def test_repaint_segments_are_partial_runs(gmm8d, linear):
    x_known, mask = gmm8d.sample_data(3, gen(0)), half_mask(3)
    ts = timesteps(linear, 4, "karras")
    out = diffkit.inpaint(gmm8d, linear, x_known, mask, "ddim", 4, 2, gen(1), jump=2)
    g, fn = gen(1), SAMPLERS["ddim"].fn
    model = ReplaceKnown(gmm8d, linear, x_known, mask, g)
    x = randn((3, 8), g, torch.device("cpu"), torch.float64)
    first = Grid(ts[:2], end=ts[2])
    x = fn(model, x, linear, first)
    a_to, a_from = float(linear.alpha(ts[0])), float(linear.alpha(ts[2]))
    s_to, s_from = float(linear.sigma(ts[0])), float(linear.sigma(ts[2]))
    x = (a_to / a_from) * x + math.sqrt(s_to**2 - (a_to / a_from * s_from) ** 2) * torch.randn(3, 8, generator=g,
                                                                                            dtype=torch.float64)
    x = fn(model, x, linear, first)
    x = fn(model, x, linear, ts[2:])
    torch.testing.assert_close(out, torch.where(mask, x_known, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.ones(4, 7), "broadcasts to x_known's"),
        (torch.ones(2, 4, 8), "broadcasts to x_known's"),
        (torch.full((4, 8), 0.5), "0s and 1s"),
        (torch.full((1, 8), 2), "0s and 1s"),
        ([[1] * 8] * 4, "0s and 1s"),
    ],
)
def test_bad_masks_say_what_is_allowed(mask, message, gmm8d, linear):
    with pytest.raises(ValueError, match=message):
        diffkit.inpaint(gmm8d, linear, noise((4, 8)), mask)


@pytest.mark.parametrize("kwargs", [{"resample": 0}, {"resample": 1.5}, {"jump": 0}, {"resample": True}])
def test_bad_resampling_is_refused(kwargs, gmm8d, linear):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        diffkit.inpaint(gmm8d, linear, noise((4, 8)), half_mask(4), **kwargs)


@pytest.mark.parametrize("family", FAMILIES)
def test_inpainting_in_every_family(family):
    schedule, kind = FAMILIES[family]
    mixture = GaussianMixture.random(schedule, dim=8, components=3, seed=1)
    x_known = mixture.sample_data(8, gen(0))
    for sampler in ("dpmpp_2m", "ddpm", "heun"):
        out = diffkit.inpaint(mixture.as_model(kind), schedule, x_known, half_mask(8), sampler, 6, 2, gen(1))
        assert torch.isfinite(out).all() and torch.equal(out[:, :4], x_known[:, :4])


def mixture_density(mixture, x):
    """The data density of ``mixture`` at the rows of ``x`` [n, D]."""
    comps = torch.distributions.MultivariateNormal(mixture.means, mixture.covariances)
    return (comps.log_prob(x.unsqueeze(1)).exp() * mixture.weights).sum(1)


@pytest.mark.parametrize("x_0", [-1.2, 0.95, 2.0])
def test_the_exact_conditional_of_the_mixture_is_bayes_rule(x_0, gmm2d):
    cond = gmm2d.conditional(torch.tensor([True, False]), torch.tensor([x_0, 0.0]))
    grid = torch.linspace(-4, 4, 40001, dtype=torch.float64)
    joint = mixture_density(gmm2d, torch.stack([torch.full_like(grid, x_0), grid], 1))
    want = joint / torch.trapezoid(joint, grid)  # p(x_1 | x_0) by Bayes' rule
    torch.testing.assert_close(mixture_density(cond, grid.view(-1, 1)), want, rtol=1e-6, atol=1e-9)


def test_bad_conditionals(gmm2d):
    with pytest.raises(ValueError, match="some known and some not"):
        gmm2d.conditional(torch.tensor([True, True]), torch.zeros(2))
    with pytest.raises(ValueError, match="D=2 values"):
        gmm2d.conditional(torch.tensor([True, False, False]), torch.zeros(3))


@pytest.mark.parametrize("sampler, options", [("ddpm", {}), ("ddim", {"eta": 1.0}), ("euler_ancestral", {}),
                                              ("dpmpp_sde", {"eta": 0.0}), ("dpmpp_2s_ancestral", {"eta": 0.0}),
                                              ("dpmpp_2s_ancestral", {}), ("heun", {})])
def test_partial_runs_of_single_step_samplers_compose(sampler, options, gmm8d, linear):
    # RePaint's segments are partial runs: without a history, two of them are the whole run.
    x_T, ts, fn = noise((4, 8), seed=1), timesteps(linear, 8, "karras"), SAMPLERS[sampler].fn
    whole = fn(gmm8d, x_T, linear, ts, generator=gen(2), **options)
    g = gen(2)
    half = fn(gmm8d, x_T, linear, Grid(ts[:3], end=ts[3]), generator=g, **options)
    torch.testing.assert_close(fn(gmm8d, half, linear, ts[3:], generator=g, **options), whole, rtol=1e-12, atol=1e-12)


def test_resampling_moves_inpainting_towards_the_exact_conditional():
    # Known half midway between two components: the exact conditional puts > 99.9% of its mass on one of
    # them; the replacement method finds it for about half the samples (measured 0.50-0.58 over three
    # seeds at n = 400), RePaint with 8 resamples for more (0.68-0.70), and halves the mean's error.
    g = GaussianMixture.random(Linear(), dim=8, components=3, seed=1)
    known = torch.arange(8) < 4
    hard = torch.zeros(8, dtype=torch.float64)
    hard[:4] = 0.5 * (g.means[0, :4] + g.means[1, :4])
    cond = g.conditional(known, hard)
    main = int(cond.weights.argmax())
    found, error = [], []
    for resample in (1, 8):
        out = diffkit.inpaint(g, g.schedule, hard.expand(400, 8), known.expand(400, 8), "ddpm", 25, resample, gen(0))
        found.append(float((cond.assign_modes(out[:, 4:]) == main).double().mean()))
        error.append(float((out[:, 4:].mean(0) - cond.mean()).norm()))
    assert cond.weights[main] > 0.999 and found[0] < 0.65 < found[1] and error[1] < error[0] / 1.5
