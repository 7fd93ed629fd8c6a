"""Samplers against the closed form (Gaussian mixture), their documented equivalences, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_data_statistics, noise

import diffkit
from diffkit.models import GaussianMixture, exact_sample
from diffkit.samplers import SAMPLERS, sample_ddim, sample_ddpm, sample_dpmpp_2m, sample_dpmpp_2m_sde
from diffkit.schedules import Linear, timesteps

ALL = list(SAMPLERS)
DETERMINISTIC = {"ddim": {}, "dpmpp_2m": {}}


# -- closed form: sample statistics ---------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_samples_match_the_data_distribution(name, gmm2d, linear):
    n = 4000
    steps = 250 if name == "ddpm" else 60
    x = diffkit.sample(gmm2d, linear, name, steps=steps, x=noise((n, 2), seed=3),
                       generator=torch.Generator().manual_seed(4))
    assert_data_statistics(x, gmm2d)


# -- closed form: convergence to the exact probability-flow ODE ------------------------------

@pytest.mark.parametrize("name, lo, hi", [("ddim", 0.85, 1.45), ("dpmpp_2m", 1.75, 2.4)])
def test_empirical_convergence_order(name, lo, hi, ode_reference, gmm8d, linear):
    # Karras spacing refines the whole path, including the last visited timestep (t = 0).
    x_T, exact = ode_reference
    nfes = np.array([10, 20, 50, 100, 200])
    errs = [((diffkit.sample(gmm8d, linear, name, steps=int(n), x=x_T, spacing="karras") - exact) ** 2)
            .mean().sqrt().item() for n in nfes]
    order = -np.polyfit(np.log(nfes), np.log(errs), 1)[0]
    assert lo <= order <= hi, (order, errs)


def test_linspace_final_jump_sets_a_first_order_floor(ode_reference, gmm8d, linear):
    # With linspace the last visited timestep is ~T/N, and the final jump from it to the
    # data is taken in one step by every solver. Even an exact solve down to that timestep
    # (the floor) then converges only like sigma_k(T/N)^2 -> 1/N: the discretisation, not a bug.
    x_T, exact = ode_reference
    steps = np.array([20, 50, 100, 200])  # last visited timesteps 50, 20, 10, 5 (no rounding jitter)
    floors, errs = [], []
    for n in steps:
        t_last = timesteps(linear, int(n), "linspace")[-1]
        floors.append(((exact_sample(gmm8d, linear, x_T, t_end=t_last) - exact) ** 2).mean().sqrt().item())
        x = diffkit.sample(gmm8d, linear, "dpmpp_2m", steps=int(n), x=x_T, spacing="linspace")
        errs.append(((x - exact) ** 2).mean().sqrt().item())
    # The one-step jump from t_last errs by ~ c sigma_k(t_last)^2, and sigma_k(t)^2 ~ beta_0 t for
    # small t: so the floor tends to first order in N (measured c: 1.6, 2.7, 3.0, 3.0 for N = 20..200).
    ratio = [f / linear.sigma_k(timesteps(linear, int(n), "linspace")[-1]) ** 2 for f, n in zip(floors, steps)]
    assert abs(ratio[-1] / ratio[-2] - 1) < 0.1, ratio
    order = -np.polyfit(np.log(steps[-2:]), np.log(floors[-2:]), 1)[0]
    assert order < 1.5, (order, floors)  # far from the solver's second order
    # The second-order solver's error is the size of the floor (measured 0.70-1.06 x), while the
    # same solver on karras spacing, which refines the path to t = 0, is far more accurate.
    assert all(0.5 <= e / f <= 2.0 for e, f in zip(errs, floors)), (errs, floors)
    karras = diffkit.sample(gmm8d, linear, "dpmpp_2m", steps=int(steps[-1]), x=x_T, spacing="karras")
    assert ((karras - exact) ** 2).mean().sqrt().item() < 0.2 * errs[-1]


# -- documented equivalences ------------------------------------------------------------------

def test_ddim_eta1_on_full_grid_is_ddpm_fixed_small():
    s = Linear(100)
    model = GaussianMixture.two_d(s)
    ts = timesteps(s, 100, "leading")
    x_T = noise((16, 2), seed=7)
    a = sample_ddim(model, x_T, s, ts, generator=torch.Generator().manual_seed(8), eta=1.0)
    b = sample_ddpm(model, x_T, s, ts, generator=torch.Generator().manual_seed(8), variance="fixed_small")
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)  # same math, float64 rounding only


def test_dpmpp_2m_sde_with_eta0_is_dpmpp_2m(gmm2d, linear):
    ts = timesteps(linear, 15, "karras")
    x_T = noise((16, 2), seed=9)
    a = sample_dpmpp_2m_sde(gmm2d, x_T, linear, ts, eta=0.0)
    b = sample_dpmpp_2m(gmm2d, x_T, linear, ts)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spacing", ["karras", "leading"])
def test_dpm_solver_1_is_ddim(gmm2d, linear, spacing):
    # With two visited timesteps DPM-Solver++(2M) takes one first-order step (DPM-Solver-1)
    # and the final step: exactly DDIM.
    ts = timesteps(linear, 2, spacing)
    x_T = noise((16, 2), seed=10)
    torch.testing.assert_close(sample_dpmpp_2m(gmm2d, x_T, linear, ts), sample_ddim(gmm2d, x_T, linear, ts),
                               rtol=1e-12, atol=1e-12)


def test_dpmpp_sde_same_seed_is_consistent_across_step_counts(gmm2d, linear):
    # Brownian-tree noise: the same seed follows one Brownian path, so finer step counts
    # converge to one sample instead of decorrelating.
    x_T = noise((256, 2), seed=11)
    out = {n: diffkit.sample(gmm2d, linear, "dpmpp_sde", steps=n, x=x_T, generator=torch.Generator().manual_seed(12))
           for n in (50, 100)}
    other = diffkit.sample(gmm2d, linear, "dpmpp_sde", steps=100, x=x_T, generator=torch.Generator().manual_seed(13))
    same_seed = (out[50] - out[100]).norm(dim=1).median()
    other_seed = (other - out[100]).norm(dim=1).median()
    assert same_seed < 0.25 * other_seed, (same_seed, other_seed)


# -- interface: dtypes, callbacks, progress, no host sync -------------------------------------

@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype, state", [(torch.float16, torch.float32), (torch.bfloat16, torch.float32),
                                          (torch.float32, torch.float32), (torch.float64, torch.float64)])
def test_state_dtype_and_model_dtype(name, dtype, state, gmm2d, linear):
    seen = set()

    def model(x, t):
        seen.add((x.dtype, t.dtype))
        return gmm2d(x.double(), t.double()).to(x.dtype)

    x = diffkit.sample(model, linear, name, steps=4, x=noise((8, 2)).to(dtype),
                       generator=torch.Generator().manual_seed(0))
    assert x.dtype == state and torch.isfinite(x).all()
    assert {d for d, _ in seen} == {dtype}  # the model sees its own dtype; the state stays >= float32
    assert {td for _, td in seen} == {torch.float64 if dtype == torch.float64 else torch.float32}


@pytest.mark.parametrize("name", ALL)
def test_callback_sees_every_step(name, gmm2d, linear):
    calls = []
    steps = 6
    diffkit.sample(gmm2d, linear, name, steps=steps, x=noise((4, 2)),
                   callback=lambda i, t, x, x0: calls.append((i, t, x.shape, x0.shape)))
    assert [c[0] for c in calls] == list(range(steps))
    assert all(c[2] == c[3] == (4, 2) for c in calls)
    assert np.all(np.diff([c[1] for c in calls]) < 0)


def test_progress_bar_goes_to_stderr(gmm2d, linear, capsys):
    diffkit.sample(gmm2d, linear, "ddim", steps=5, x=noise((4, 2)), progress=True)
    err = capsys.readouterr().err
    assert "5/5 steps" in err


@pytest.mark.parametrize("name", ALL)
def test_loop_never_reads_tensor_values(name, linear):
    # Meta tensors carry no values: .item(), bool(tensor) or a copy to the host would raise.
    # A loop that runs on them has no host-device synchronisation and is CUDA-graph capturable.
    def model(x, t):
        return torch.empty_like(x)

    x = torch.empty(4, 3, 8, 8, device="meta")
    out = diffkit.sample(model, linear, name, steps=5, x=x, generator=torch.Generator().manual_seed(0))
    assert out.device.type == "meta" and out.shape == x.shape


def test_x_drawn_from_shape_and_generator(gmm2d, linear):
    a = diffkit.sample(gmm2d, linear, "ddim", steps=3, shape=(5, 2), generator=torch.Generator().manual_seed(1))
    b = diffkit.sample(gmm2d, linear, "ddim", steps=3,
                       x=torch.randn((5, 2), generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(a, b)


def test_sampler_function_can_be_passed(gmm2d, linear):
    x = diffkit.sample(gmm2d, linear, sample_ddim, steps=3, x=noise((4, 2)))
    torch.testing.assert_close(x, diffkit.sample(gmm2d, linear, "ddim", steps=3, x=noise((4, 2)), spacing="karras"))


# -- bad input ---------------------------------------------------------------------------------

def test_unknown_sampler_lists_the_registry(gmm2d, linear):
    with pytest.raises(ValueError,
                       match="unknown sampler 'no_such_sampler'; registered samplers: ddpm, ddim, dpmpp_2m"):
        diffkit.sample(gmm2d, linear, "no_such_sampler", x=noise((2, 2)))


def test_unknown_option_lists_allowed(gmm2d, linear):
    with pytest.raises(ValueError, match="no option.*order; allowed: eta"):
        diffkit.sample(gmm2d, linear, "ddim", x=noise((2, 2)), order=3)
    with pytest.raises(ValueError, match="no option.*eta; allowed: afs$"):
        diffkit.sample(gmm2d, linear, "dpmpp_2m", x=noise((2, 2)), eta=0.5)
    with pytest.raises(ValueError, match="allowed: none"):
        diffkit.sample(gmm2d, linear, "euler", x=noise((2, 2)), eta=0.5)


@pytest.mark.parametrize("kwargs, match", [
    ({"spacing": "cosine"}, "unknown spacing"),
    ({"steps": 0}, "steps must be"),
    ({"steps": 1001, "spacing": "leading"}, "steps must be <= T"),
    ({"eta": 1.5}, "eta must be a number in"),
    ({"sampler": "ddpm", "variance": "learned"}, "unknown variance 'learned'; allowed: fixed_small, fixed_large"),
])
def test_bad_arguments(kwargs, match, gmm2d, linear):
    kwargs = {"sampler": "ddim", **kwargs}
    with pytest.raises(ValueError, match=match):
        diffkit.sample(gmm2d, linear, x=noise((2, 2)), **kwargs)


def test_x_and_shape_are_exclusive(gmm2d, linear):
    with pytest.raises(ValueError, match="exactly one of x"):
        diffkit.sample(gmm2d, linear, "ddim", x=noise((2, 2)), shape=(2, 2))
    with pytest.raises(ValueError, match="exactly one of x"):
        diffkit.sample(gmm2d, linear, "ddim")


def test_model_output_of_wrong_shape(linear):
    with pytest.raises(ValueError, match=r"model output at step 0 \(t=999\) has shape \(2, 3\), expected.*\(2, 2\)"):
        diffkit.sample(lambda x, t: torch.zeros(2, 3), linear, "ddim", x=noise((2, 2)))


@pytest.mark.parametrize("name", ALL)
def test_non_finite_model_output_names_step_and_t(name, gmm2d, linear):
    ts = timesteps(linear, 5, "karras")

    def model(x, t):
        eps = gmm2d(x, t)
        return eps * math.nan if float(t[0]) == ts[2] else eps

    # heun's corrector and dpmpp_2s_ancestral's midpoint (at eta = 1: lambda_s = lambda_n) of step 1 call the
    # model at t_2 before step 2 does: the first non-finite output is then step 1's.
    step = 1 if name in ("heun", "dpmpp_2s_ancestral") else 2
    with pytest.raises(ValueError, match=rf"non-finite values \(NaN/inf\) at step {step}, t={ts[2]:.4g}"):
        SAMPLERS[name].fn(model, noise((3, 2)), linear, ts, generator=torch.Generator().manual_seed(0))


def test_bad_timesteps_and_generators(gmm2d, linear):
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample_ddim(gmm2d, noise((2, 2)), linear, [10, 10, 5])
    with pytest.raises(ValueError, match="must lie in"):
        sample_ddim(gmm2d, noise((2, 2)), linear, [1000.0, 5])
    with pytest.raises(ValueError, match="got 3 generators for a batch of 2"):
        diffkit.sample(gmm2d, linear, "ddpm", x=noise((2, 2)), generator=[torch.Generator()] * 3)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        diffkit.sample(gmm2d, linear, "ddpm", x=noise((2, 2)), generator=42)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        sample_ddim(gmm2d, torch.zeros(2, 2, dtype=torch.long), linear, [5.0])


def test_conditioning_on_another_device_is_rejected(linear):
    with pytest.raises(ValueError, match=r"cond\['y'\] is on meta but x is on cpu"):
        diffkit.sample(lambda x, t, y: x, linear, "ddim", x=noise((2, 2)), cond={"y": torch.zeros(2, device="meta")})


def test_steps_go_to_the_actual_next_timestep(gmm2d, linear):
    # diffusers' DDIM with "linspace" steps to t - T/N instead of the next listed timestep;
    # diffkit always uses the list. Irregular timesteps make the difference visible.
    ts = [900.0, 500.0, 123.0, 7.0]
    x = noise((8, 2), seed=14)
    expected = x.clone()
    for t, t_next in zip(ts, ts[1:] + [None]):
        tt = torch.full((8,), t, dtype=torch.float64)
        x0 = (expected - linear.sigma(t) * gmm2d(expected, tt)) / linear.alpha(t)
        if t_next is None:
            expected = x0
        else:
            eps = (expected - linear.alpha(t) * x0) / linear.sigma(t)
            expected = linear.alpha(t_next) * x0 + linear.sigma(t_next) * eps
    torch.testing.assert_close(sample_ddim(gmm2d, x, linear, ts), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA generator")
def test_generator_on_another_device_is_rejected(gmm2d, linear):
    with pytest.raises(ValueError, match=r"generators on \['cuda'\] cannot draw noise for a tensor on cpu"):
        diffkit.sample(gmm2d, linear, "ddpm", x=noise((2, 2)), generator=torch.Generator(device="cuda"))


@pytest.mark.parametrize("name", [n for n, info in SAMPLERS.items() if "eta" in info.options])
def test_eta_zero_from_zero_snr_is_finite(name):
    # eta * h with h = inf on the step from zero SNR: eta = 0 must give 0, not nan.
    schedule = Linear(rescale_zero_terminal_snr=True)
    model = GaussianMixture.two_d(schedule).as_model("v_prediction")
    x = diffkit.sample(model, schedule, name, steps=6, x=noise((8, 2), seed=1), spacing="trailing", eta=0.0)
    assert torch.isfinite(x).all()


# -- explicit grids ----------------------------------------------------------------------------

def test_explicit_timesteps_equal_the_spacing_they_come_from(gmm2d, linear):
    grid = timesteps(linear, 7, "beta")
    ours = diffkit.sample(gmm2d, linear, "dpmpp_2m", x=noise((8, 2)), timesteps=grid)
    torch.testing.assert_close(ours, diffkit.sample(gmm2d, linear, "dpmpp_2m", 7, x=noise((8, 2)), spacing="beta"),
                               rtol=0, atol=0)
    for as_given in (grid.tolist(), torch.from_numpy(grid)):  # any 1-D sequence; steps may repeat its length
        torch.testing.assert_close(diffkit.sample(gmm2d, linear, "dpmpp_2m", 7, x=noise((8, 2)), timesteps=as_given),
                                   ours, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"timesteps": [999, 500, 500, 0]}, r"timesteps must be strictly decreasing \(no duplicates\)"),
    ({"timesteps": [0, 500, 999]}, "timesteps must be strictly decreasing"),
    ({"timesteps": [1500, 500, 0]},
     r"timesteps must lie in \[t_min, t_max\]=\[0, 999\] for Linear, got range \[0, 1500\]"),
    ({"timesteps": [999, -1]}, r"must lie in \[t_min, t_max\]=\[0, 999\]"),
    ({"timesteps": [999, float("nan")]}, r"must lie in \[t_min, t_max\]"),
    ({"timesteps": []}, "timesteps must be a non-empty 1-D sequence"),
    ({"timesteps": [[999, 0]]}, "timesteps must be a non-empty 1-D sequence"),
    ({"timesteps": [999, 500, 0], "spacing": "karras"}, "either an explicit timesteps grid or a spacing, not both"),
    ({"timesteps": [999, 500, 0], "steps": 4}, "steps=4 contradicts the explicit grid of 3 timesteps"),
])
def test_bad_explicit_timesteps(kwargs, match, gmm2d, linear):
    with pytest.raises(ValueError, match=match):
        diffkit.sample(gmm2d, linear, "ddim", x=noise((2, 2)), **kwargs)
