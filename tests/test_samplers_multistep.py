"""The multistep samplers (dpmpp_3m, unipc, ipndm, deis): coefficients, references, equivalences, orders, zero SNR.

References run in float64: diffusers' schedulers with float64 tables (as in
tests/test_reference_diffusers.py) and zju-pi/diff-sampler's solvers ported to
diffkit models (diffkit.bench.peers.diff_sampler).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import noise

import diffkit
from diffkit.bench import peers
from diffkit.bench.peers.diff_sampler import _ipndm_variable
from diffkit.models import GaussianMixture, exact_sample
from diffkit.samplers import SAMPLERS, sample_ddim, sample_dpmpp_2m
from diffkit.samplers.deis import vp_sde_time
from diffkit.samplers.multistep import adams_to_data_weights, eps_adams_weights
from diffkit.schedules import Cosine, Linear, timesteps

SCHEDULES = {"linear": Linear(), "cosine": Cosine()}
# diffusers 0.42 calls np.array on a tensor with copy=False; harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _case(schedule, batch=16):
    return GaussianMixture.random(schedule, dim=8, components=3, seed=1), noise((batch, 8), seed=0)


def _run(name, model, schedule, ts, x, **options):
    return SAMPLERS[name].fn(model, x, schedule, ts, **options)


# -- coefficients ----------------------------------------------------------------------------

@pytest.mark.parametrize("variable", [lambda lam: np.exp(-lam), lambda lam: -lam, vp_sde_time],
                         ids=["sigma_k", "log_sigma_k", "tau"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_adams_weights_integrate_the_interpolating_polynomial(variable, order):
    # For eps(s) a polynomial of degree < order in s the multistep update is exact:
    # sigma_n eps_0 - alpha_n sigma_k,0 eps_0 + sum_j w_j (eps_j - eps_0) = alpha_n * integral of eps dsigma_k.
    from scipy.integrate import quad

    lams, lam_n = [1.0, 0.6, 0.0, -0.9][:order], 1.7  # uneven steps, current node first
    sigma_n, alpha_n = math.sqrt(1 / (1 + math.exp(2 * lam_n))), math.sqrt(1 / (1 + math.exp(-2 * lam_n)))
    w = eps_adams_weights(lams, lam_n, sigma_n, variable)
    def power(lam, degree):
        return float(variable(np.array([lam]))[0]) ** degree

    for degree in range(order):
        ours = (sigma_n - alpha_n * math.exp(-lams[0])) * power(lams[0], degree) + sum(
            w_j * (power(lam, degree) - power(lams[0], degree)) for w_j, lam in zip(w, lams[1:]))
        exact = alpha_n * quad(lambda lam, d=degree: -power(lam, d) * math.exp(-lam), lams[0], lam_n,
                               epsabs=0, epsrel=1e-13)[0]
        assert ours == pytest.approx(exact, rel=1e-11, abs=1e-14)  # Gauss-Legendre and quad: float64 rounding


@pytest.mark.parametrize("variable, rel", [(lambda lam: np.exp(-lam), 1e-12), (lambda lam: -lam, 1e-12),
                                           (vp_sde_time, 1e-8)], ids=["sigma_k", "log_sigma_k", "tau"])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_to_data_weights_integrate_the_interpolating_polynomial_to_sigma_0(variable, rel, order):
    # The step to the data: x_0 = x0_0 + sum_j w_j (eps_j - eps_0) is exact for eps(s) of degree < order in s,
    # i.e. -sigma_k,0 eps_0 + sum_j w_j (eps_j - eps_0) = integral_{sigma_k,0}^{0} eps dsigma_k (adaptive quadrature).
    # Gauss-Laguerre: exact for polynomials in lambda, float64 rounding for sigma_k, <= 1e-9 for tau (measured).
    from scipy.integrate import quad

    lams = [1.0, 0.6, 0.0, -0.9][:order]
    w = adams_to_data_weights(lams, variable)

    def power(lam, degree):
        return float(variable(np.array([lam]))[0]) ** degree

    for degree in range(order):
        ours = -math.exp(-lams[0]) * power(lams[0], degree) + sum(
            w_j * (power(lam, degree) - power(lams[0], degree)) for w_j, lam in zip(w, lams[1:]))
        exact = -quad(lambda lam, d=degree: power(lam, d) * math.exp(-lam), lams[0], math.inf,
                      epsabs=0, epsrel=1e-13, limit=200)[0]
        assert ours == pytest.approx(exact, rel=rel, abs=1e-14)
    fixed = (23 / 12, -16 / 12, 5 / 12)  # equal-step coefficients: w_j = -sigma_k,0 c_j
    assert adams_to_data_weights([1.0, 0.6, 0.0], variable, fixed) == [-math.exp(-1.0) * c for c in fixed[1:]]


def test_adams_weights_drop_a_node_at_infinity():
    # A node at zero SNR (lambda = -inf) leaves the basis: the weights are those of the finite nodes.
    w = eps_adams_weights([0.5, -1.0, -math.inf], 1.0, 0.3, lambda lam: np.exp(-lam))
    assert w[1] == 0.0 and w[0] == eps_adams_weights([0.5, -1.0], 1.0, 0.3, lambda lam: np.exp(-lam))[0]


def test_diff_sampler_ipndm_v_is_exact_for_quadratics_only_on_equal_steps():
    # Why ipndm (variable) agrees with diff-sampler's ipndm_v only at orders 1-2: its order-3/4
    # coefficients integrate quadratics exactly on equal steps but not on uneven ones (ours do).
    def quadratic_error(t):
        c = _ipndm_variable(len(t) - 2, t, 3)
        nodes = [t[-2], t[-3], t[-4]]
        return sum(ci * (s - t[-2]) ** 2 for ci, s in zip(c, nodes)) - (t[-1] - t[-2]) ** 3 / 3

    assert abs(quadratic_error([4.0, 3.0, 2.0, 1.0])) < 1e-14
    assert abs(quadratic_error([8.0, 4.0, 2.0, 1.0])) > 0.1


# -- references --------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("steps", [5, 10, 25])
def test_dpmpp_3m_published_matches_diffusers(schedule_name, steps):
    pytest.importorskip("diffusers")
    schedule = SCHEDULES[schedule_name]
    model, x_T = _case(schedule)
    ours = diffkit.sample(model, schedule, "dpmpp_3m", steps, x=x_T, spacing="linspace", variant="published")
    theirs = peers.diffusers_dpmpp_3m(model, schedule, steps, x_T, spacing="linspace", exact_tables=True)
    # DPMSolverMultistepScheduler.step casts the state to float32 before each update (measured <= 1.2e-6).
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("corrector", [True, False])
def test_unipc_matches_diffusers(schedule_name, order, variant, corrector):
    """UniPCMultistepScheduler(predict_x0, solver_type, solver_order; disable_corrector) with float64 tables.

    Compared at the last model call (the state at the last visited timestep, every
    correction included) and at the result: diffusers' bh1 returns NaN there, since
    its last step to sigma = 0 multiplies B(h) = -h = -inf by a zero residual.
    """
    pytest.importorskip("diffusers")
    schedule, steps = SCHEDULES[schedule_name], 10
    model, x_T = _case(schedule)
    seen = []

    def recording(x, t):
        seen.append(x.clone())
        return model(x, t)

    states = []
    ours = diffkit.sample(model, schedule, "unipc", steps, x=x_T, spacing="linspace", order=order, variant=variant,
                          corrector=corrector, callback=lambda i, t, x, x0: states.append(x))
    theirs = peers.diffusers_unipc(recording, schedule, steps, x_T, spacing="linspace", exact_tables=True,
                                   solver_order=order, solver_type=variant,
                                   disable_corrector=() if corrector else range(steps))
    # Same float64 math in another order: rounding only, amplified by sigma_k <= 2e4 on cosine (measured 1e-11).
    torch.testing.assert_close(states[-1], seen[-1], rtol=1e-9, atol=1e-9)
    if variant == "bh2":
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)
    else:
        assert torch.isnan(theirs).all() and torch.isfinite(ours).all()


@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("steps", [15, 30])
def test_deis_logrho_matches_diffusers(schedule_name, steps):
    """DEISMultistepScheduler (log-rho, order 3) ends at sigma_k(t = 0): compare with our state at t = 0.

    From 15 steps on diffusers lowers no order at the end, so visiting its timesteps
    and then t = 0 is the same method.
    """
    pytest.importorskip("diffusers")
    schedule = SCHEDULES[schedule_name]
    model, x_T = _case(schedule)
    ts = list(peers.diffusers_timesteps("deis", schedule, steps)) + [0.0]
    states = []
    _run("deis", model, schedule, ts, x_T, variant="logrho", callback=lambda i, t, x, x0: states.append(x))
    theirs = peers.diffusers_deis(model, schedule, steps, x_T, exact_tables=True)
    # diffusers keeps its last sigma, sigma_k(0), in float32 (relative 3e-8 of a step ending at 0.01 or less).
    torch.testing.assert_close(states[-1], theirs, rtol=0, atol=1e-7)


DIFF_SAMPLER_CASES = (
    [("ipndm", "ipndm", {"variant": "fixed", "order": k}) for k in (1, 2, 3, 4)]
    + [("ipndm_v", "ipndm", {"variant": "variable", "order": k}) for k in (1, 2)]
    + [("deis", "deis", {"variant": "tab", "order": k}) for k in (1, 2, 3)]
    + [("dpm_pp", "dpmpp_3m", {"variant": "published"})]
)


@pytest.mark.parametrize("peer, name, options", DIFF_SAMPLER_CASES, ids=lambda c: str(c))
@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("spacing", ["karras", "logsnr"])
def test_matches_diff_sampler(peer, name, options, schedule_name, spacing):
    """diff-sampler's loop in EDM's variables (x_k = x / alpha, t = sigma_k) against ours, float64.

    dpm_pp runs to sigma = 0 with its lower_order_final (2M on the step before the
    last): the same as ours below 15 steps.
    """
    pytest.importorskip("scipy")
    schedule = SCHEDULES[schedule_name]
    model, x_T = _case(schedule)
    for steps in (6, 12):
        ts = timesteps(schedule, steps, spacing)
        ours = _run(name, model, schedule, ts, x_T, **options)
        theirs = peers.run_diff_sampler(peer, model, schedule, ts, x_T, order=options.get("order", 3))
        # The VE state is x / alpha, up to sigma_k(T-1) = 2e4 on cosine; measured <= 1e-10 after the final map.
        torch.testing.assert_close(ours, theirs, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("peer, variant, order", [("ipndm", "fixed", k) for k in (1, 2, 3, 4)]
                         + [("ipndm_v", "variable", k) for k in (1, 2)])
@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
@pytest.mark.parametrize("spacing", ["beta", "logsnr"])
def test_ipndm_final_adams_is_diff_samplers_ipndm_run_to_zero(peer, variant, order, schedule_name, spacing):
    # final="adams": the last step to sigma = 0 is the same Adams-Bashforth step, as diff-sampler's loop with
    # sigma_min = 0 and no denoising call takes it.
    from diffkit.bench.peers.diff_sampler import adams_sampler, kdiffusion_denoiser, vp_to_k

    schedule = SCHEDULES[schedule_name]
    model, x_T = _case(schedule)
    for steps in (6, 12):
        ts = timesteps(schedule, steps, spacing)
        ours = _run("ipndm", model, schedule, ts, x_T, variant=variant, order=order, final="adams")
        t = [float(s) for s in schedule.sigma_k(np.asarray(ts, dtype=np.float64))] + [0.0]
        theirs = adams_sampler(peer, kdiffusion_denoiser(model, schedule), vp_to_k(x_T, schedule, float(ts[0])), t,
                               order, denoise_to_zero=False)
        torch.testing.assert_close(ours, theirs, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("schedule_name", list(SCHEDULES))
def test_deis_final_adams_is_diff_samplers_deis_run_to_zero(order, schedule_name):
    # deis (tab) with final="adams": diff-sampler's deis loop over the visited sigma_k and then to sigma_k = 0 (its
    # tAB weights by adaptive quadrature of dsigma/dtau, whose 1/sqrt(tau) end point is integrable).
    from diffkit.bench.peers.diff_sampler import adams_sampler, kdiffusion_denoiser, vp_to_k

    schedule = SCHEDULES[schedule_name]
    model, x_T = _case(schedule)
    for steps in (6, 12):
        ts = timesteps(schedule, steps, "time_uniform", rho=2.0, endpoint=False)
        ours = _run("deis", model, schedule, ts, x_T, order=order, final="adams")
        t = [float(s) for s in schedule.sigma_k(np.asarray(ts, dtype=np.float64))] + [0.0]
        theirs = adams_sampler("deis", kdiffusion_denoiser(model, schedule), vp_to_k(x_T, schedule, float(ts[0])), t,
                               order, denoise_to_zero=False)
        torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("variant", ["tab", "logrho"])
def test_deis_final_adams_keeps_the_order_where_the_last_visited_point_is_far_from_the_data(variant, gmm8d, linear):
    x_T = noise((48, 8), seed=5)
    exact = exact_sample(gmm8d, linear, x_T)
    steps = np.array([20, 40, 80])
    orders = {}
    for final in ("data", "adams"):
        errs = [(_run("deis", gmm8d, linear, timesteps(linear, int(n), "sgm_uniform"), x_T, variant=variant,
                      final=final) - exact).pow(2).mean().sqrt().item() for n in steps]
        orders[final] = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert orders["data"] < 1.5 < orders["adams"], orders


def test_ipndm_final_adams_keeps_the_order_where_the_last_visited_point_is_far_from_the_data(gmm8d, linear):
    # On sgm_uniform (last visited t = T/N) the final jump caps "data" at first order; "adams" keeps more.
    x_T = noise((48, 8), seed=5)
    exact = exact_sample(gmm8d, linear, x_T)
    steps = np.array([20, 40, 80])
    orders = {}
    for final in ("data", "adams"):
        errs = [(_run("ipndm", gmm8d, linear, timesteps(linear, int(n), "sgm_uniform"), x_T, order=3,
                      variant="fixed", final=final) - exact).pow(2).mean().sqrt().item() for n in steps]
        orders[final] = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert orders["data"] < 1.5 < orders["adams"], orders


# -- equivalences ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options", [("ipndm", {"variant": "fixed"}), ("ipndm", {"variant": "variable"}),
                                           ("deis", {"variant": "tab"}), ("deis", {"variant": "logrho"}),
                                           ("unipc", {"corrector": False})])
def test_order_1_is_ddim(name, options, gmm8d, linear):
    ts = timesteps(linear, 8, "karras")
    x_T = noise((16, 8), seed=20)
    torch.testing.assert_close(_run(name, gmm8d, linear, ts, x_T, order=1, **options),
                               sample_ddim(gmm8d, x_T, linear, ts), rtol=1e-12, atol=1e-12)


def test_ipndm_variants_agree_on_steps_even_in_sigma_k(gmm8d, linear):
    # The equal-step Adams-Bashforth coefficients are the variable-step ones when the steps are equal.
    ts = linear.t_from_sigma_k(np.linspace(20.0, 0.5, 9))
    x_T = noise((16, 8), seed=21)
    torch.testing.assert_close(_run("ipndm", gmm8d, linear, ts, x_T, variant="fixed"),
                               _run("ipndm", gmm8d, linear, ts, x_T, variant="variable"), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("steps", [2, 3])
@pytest.mark.parametrize("variant", ["exact", "published"])
def test_dpmpp_3m_with_few_steps_is_dpmpp_2m(steps, variant, gmm8d, linear):
    ts = timesteps(linear, steps, "karras")
    x_T = noise((16, 8), seed=22)
    torch.testing.assert_close(_run("dpmpp_3m", gmm8d, linear, ts, x_T, variant=variant),
                               sample_dpmpp_2m(gmm8d, x_T, linear, ts), rtol=1e-12, atol=1e-12)


def test_unipc_order_2_without_corrector_is_dpmpp_2m(gmm8d, linear):
    # UniP-2 with B(h) = e^-h - 1 and rho = 1/2 is DPM-Solver++(2M), lower_order_final included.
    ts = timesteps(linear, 12, "karras")
    x_T = noise((16, 8), seed=23)
    torch.testing.assert_close(_run("unipc", gmm8d, linear, ts, x_T, order=2, corrector=False),
                               sample_dpmpp_2m(gmm8d, x_T, linear, ts), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps", [5, 10])
def test_unipc_order_3_without_corrector_is_dpmpp_3m_exact(steps, gmm8d, linear):
    # UniP-3 (bh2) integrates the quadratic through three x0 exactly, as dpmpp_3m "exact" does; below
    # 15 steps both take 2M on the step before the final one.
    ts = timesteps(linear, steps, "karras")
    x_T = noise((16, 8), seed=24)
    torch.testing.assert_close(_run("unipc", gmm8d, linear, ts, x_T, order=3, corrector=False),
                               _run("dpmpp_3m", gmm8d, linear, ts, x_T), rtol=1e-11, atol=1e-11)


# -- convergence to the exact probability-flow ODE ----------------------------------------------

# (sampler, options, accepted fitted order on karras and logsnr over steps 80-320). Measured with
# 48 samples (python -m benchmarks.multistep_frontier; karras/logsnr): dpmpp_3m 3.09/3.03, published
# 2.35/2.36, unipc order 3 4.55/4.61, without corrector 3.09/3.03, order 2 2.90/2.92, ipndm 3.65/3.67,
# fixed 2.15/2.02, deis 2.76/2.78, logrho 2.84/2.84. Each tends to its asymptotic order by 1280 steps
# (ipndm 4.00, deis 2.98 and 3.00, fixed ipndm 2.00).
ORDER_CASES = [
    ("dpmpp_3m", {}, 2.75, 3.4),
    ("dpmpp_3m", {"variant": "published"}, 1.9, 2.6),  # D2 is half the second derivative: second order
    ("unipc", {"order": 3}, 3.9, 5.0),  # UniP-3 + UniC: 4 claimed
    ("unipc", {"order": 3, "corrector": False}, 2.75, 3.4),
    ("unipc", {}, 2.5, 3.3),  # order 2 + UniC
    ("ipndm", {}, 3.3, 4.2),  # order 4, still approaching it
    ("ipndm", {"variant": "fixed"}, 1.8, 2.5),  # equal-step coefficients on uneven steps: second order
    ("deis", {}, 2.55, 3.3),  # order 3, approaching it
    ("deis", {"variant": "logrho"}, 2.55, 3.3),
]


@pytest.fixture(scope="module")
def ode_truth(gmm8d, linear):
    x_T = noise((16, 8), seed=5)
    return x_T, exact_sample(gmm8d, linear, x_T)


@pytest.mark.parametrize("name, options, lo, hi", ORDER_CASES, ids=lambda c: str(c))
@pytest.mark.parametrize("spacing", ["karras", "logsnr"])
def test_empirical_convergence_order(name, options, lo, hi, spacing, ode_truth, gmm8d, linear):
    x_T, exact = ode_truth
    steps = np.array([80, 160, 320])
    errs = [((diffkit.sample(gmm8d, linear, name, steps=int(n), x=x_T, spacing=spacing, **options) - exact) ** 2)
            .mean().sqrt().item() for n in steps]
    order = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
    assert lo <= order <= hi, (order, errs)


# -- zero terminal SNR ---------------------------------------------------------------------------

ZERO_SNR_CASES = [("dpmpp_3m", {}), ("dpmpp_3m", {"variant": "published"}), ("unipc", {}), ("unipc", {"order": 3}),
                  ("unipc", {"variant": "bh1"}),
                  ("ipndm", {}), ("ipndm", {"variant": "fixed"}), ("deis", {}), ("deis", {"variant": "logrho"})]


ZERO_SNR_STEPS = (4, 10, 25)


@pytest.fixture(scope="module")
def zero_snr():
    """Zero terminal SNR, a v-prediction model, x_T and the exact ODE to each trailing grid's last timestep."""
    schedule = Linear(rescale_zero_terminal_snr=True)
    model = GaussianMixture.random(schedule, dim=8, components=3, seed=1).as_model("v_prediction")
    x_T = noise((16, 8), seed=25)
    # 1e-8 tolerances: plenty for errors of 1e-3 and up, and 4x faster than the default 1e-10.
    exact = {n: exact_sample(model, schedule, x_T, t_end=timesteps(schedule, n, "trailing")[-1], rtol=1e-8, atol=1e-8)
             for n in ZERO_SNR_STEPS}
    return schedule, model, x_T, exact


@pytest.mark.parametrize("name, options", ZERO_SNR_CASES, ids=lambda c: str(c))
def test_zero_terminal_snr_gives_finite_samples_near_the_ode(name, options, zero_snr):
    # The first step starts at alpha = 0 (h = inf); multistep terms that reach back to it drop out.
    schedule, model, x_T, exact = zero_snr
    for steps in ZERO_SNR_STEPS:
        x = diffkit.sample(model, schedule, name, steps=steps, x=x_T, spacing="trailing", **options)
        ddim = diffkit.sample(model, schedule, "ddim", steps=steps, x=x_T, spacing="trailing")
        assert torch.isfinite(x).all()
        # Against the exact ODE to the same last timestep: DDIM's error or less, up to 2x (measured
        # 0.6-1.4x): trailing steps stay O(1) in lambda near the data, where 3M extrapolates poorly.
        err, err_ddim = ((x - exact[steps]) ** 2).mean().sqrt(), ((ddim - exact[steps]) ** 2).mean().sqrt()
        assert err < 2 * err_ddim, (steps, err, err_ddim)


@pytest.mark.parametrize("name, options", [("dpmpp_3m", {}), ("unipc", {"corrector": False}), ("ipndm", {}),
                                           ("deis", {}), ("deis", {"variant": "logrho"})], ids=lambda c: str(c))
def test_zero_snr_step_after_the_start_is_first_order(name, options, zero_snr):
    # With 3 visited timesteps the second step's only history is the zero-SNR start: it drops out,
    # leaving DDIM (DPM-Solver-1) on every step.
    schedule, model, _, _ = zero_snr
    ts = timesteps(schedule, 3, "trailing")
    x_T = noise((16, 8), seed=26)
    torch.testing.assert_close(_run(name, model, schedule, ts, x_T, **options), sample_ddim(model, x_T, schedule, ts),
                               rtol=1e-12, atol=1e-12)


# -- options -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, match", [
    ("dpmpp_3m", {"variant": "taylor"}, "variant must be one of 'exact', 'published'"),
    ("unipc", {"order": 4}, r"order must be an integer in \[1, 3\]"),
    ("unipc", {"order": 2.0}, r"order must be an integer in \[1, 3\]"),
    ("unipc", {"variant": "bh3"}, "variant must be one of 'bh1', 'bh2'"),
    ("unipc", {"corrector": 1}, "corrector must be one of True, False"),
    ("ipndm", {"order": 0}, r"order must be an integer in \[1, 4\]"),
    ("ipndm", {"variant": "v"}, "variant must be one of 'variable', 'fixed'"),
    ("ipndm", {"final": "x0"}, "final must be one of 'data', 'adams'"),
    ("deis", {"order": 4}, r"order must be an integer in \[1, 3\]"),
    ("deis", {"variant": "rhoab"}, "variant must be one of 'tab', 'logrho'"),
])
def test_bad_options(name, options, match, gmm2d, linear):
    with pytest.raises(ValueError, match=f"{name}: {match}"):
        diffkit.sample(gmm2d, linear, name, steps=3, x=noise((2, 2)), **options)
