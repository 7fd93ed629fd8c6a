"""Guidance wrappers: classifier guidance against the Gaussian mixture's exact classes, CFG's rescale and interval."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_data_statistics, noise

import diffkit
from diffkit.conversions import PREDICTION_TYPES
from diffkit.models import ClassifierFreeGuidance, ClassifierGuidance, GaussianMixture
from diffkit.models.prediction import Predictor
from diffkit.schedules import EDM, Cosine, FlowMatch, Linear

FAMILIES = {
    "linear": Linear(),
    "zero_snr": Linear(rescale_zero_terminal_snr=True),
    "flow": FlowMatch(shift=3.0),
    "edm": EDM(),
}


def component(mixture: GaussianMixture, k: int) -> GaussianMixture:
    """Component k of ``mixture`` alone: the exact model of the data of class k."""
    return GaussianMixture(mixture.schedule, torch.ones(1, dtype=torch.float64), mixture.means[k : k + 1],
                           mixture.covariances[k : k + 1])


def takes_label(model: Predictor) -> Predictor:
    """An unconditional model that accepts (and ignores) the label the classifier reads."""
    return Predictor(lambda x, t, y: model(x, t), model.prediction_type)


@pytest.mark.parametrize("kind", PREDICTION_TYPES)
@pytest.mark.parametrize("family", FAMILIES)
def test_the_exact_classifier_at_scale_1_gives_the_class_model_exactly(family, kind):
    schedule = FAMILIES[family]
    mixture = GaussianMixture.random(schedule, dim=6, components=3, seed=2)
    ts = torch.linspace(schedule.t_min, schedule.t_max, 9, dtype=torch.float64)[:-1]  # alpha > 0
    guided = ClassifierGuidance(takes_label(mixture.as_model(kind)), mixture.classifier_log_prob, 1.0, schedule)
    assert guided.prediction_type == kind
    x = noise((8, 6), seed=3) * 2
    for k in range(3):
        want = component(mixture, k).as_model(kind)
        for t in ts:
            tt = torch.full((8,), float(t), dtype=torch.float64)
            torch.testing.assert_close(guided(x, tt, y=torch.full((8,), k)), want(x, tt), rtol=1e-7, atol=1e-9)


def test_guidance_is_zero_where_alpha_is_zero():
    schedule = FAMILIES["zero_snr"]
    mixture = GaussianMixture.random(schedule, dim=4, components=2, seed=0)
    model = takes_label(mixture.as_model("v_prediction"))
    guided = ClassifierGuidance(model, mixture.classifier_log_prob, 3.0, schedule)
    x, t = noise((5, 4)), torch.full((5,), schedule.t_max, dtype=torch.float64)
    torch.testing.assert_close(guided(x, t, y=torch.zeros(5, dtype=torch.long)), model(x, t, y=None))


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "dpmpp_2m_sde"])
def test_guided_samples_of_class_k_are_samples_of_component_k(sampler, linear):
    mixture = GaussianMixture.two_d(linear)
    guided = ClassifierGuidance(takes_label(mixture.as_model()), mixture.classifier_log_prob, 1.0, linear)
    n = 3000
    for k in (1, 2):  # the two smaller modes: unguided, 70% / 80% of samples land elsewhere
        x = diffkit.sample(guided, linear, sampler, 40, shape=(n, 2), dtype=torch.float64,
                           generator=torch.Generator().manual_seed(k), cond={"y": torch.full((n,), k)})
        assert_data_statistics(x, component(mixture, k))


def test_the_model_runs_without_autograd_and_the_classifier_with_it(gmm2d, linear):
    seen = {}

    def model(x, t, y):
        seen["model"] = torch.is_grad_enabled()
        return gmm2d(x, t)

    def log_prob(x, t, y):
        seen["classifier"] = x.requires_grad
        return gmm2d.classifier_log_prob(x, t, y)

    guided = ClassifierGuidance(model, log_prob, 2.0, linear)
    x, t, y = noise((4, 2)), torch.full((4,), 500.0, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    out = guided(x, t, y=y)
    assert seen == {"model": False, "classifier": True} and not out.requires_grad
    with torch.inference_mode():
        torch.testing.assert_close(guided(x, t, y=y), out)


def test_scale_zero_is_the_model(gmm2d, linear):
    guided = ClassifierGuidance(lambda x, t, y: gmm2d(x, t), gmm2d.classifier_log_prob, 0.0, linear)
    x, t = noise((3, 2)), torch.full((3,), 100.0, dtype=torch.float64)
    torch.testing.assert_close(guided(x, t, y=torch.zeros(3, dtype=torch.long)), gmm2d(x, t), rtol=0, atol=0)


@pytest.mark.parametrize(
    "log_prob, error, message",
    [
        (lambda x, t, y: x.sum(), ValueError, r"shape \[B\]=\[3\]"),
        (lambda x, t, y: x, ValueError, r"shape \[B\]=\[3\]"),
        (lambda x, t, y: [0.0, 0.0, 0.0], ValueError, r"shape \[B\]=\[3\]"),
        (lambda x, t, y: torch.zeros(3), ValueError, "does not depend on x_t"),
    ],
)
def test_a_classifier_must_return_one_log_probability_per_sample(log_prob, error, message, gmm2d, linear):
    guided = ClassifierGuidance(lambda x, t, y: gmm2d(x, t), log_prob, 1.0, linear)
    with pytest.raises(error, match=message):
        guided(noise((3, 2)), torch.full((3,), 10.0, dtype=torch.float64), y=torch.zeros(3, dtype=torch.long))


def test_bad_classifier_guidance_arguments(gmm2d, linear):
    with pytest.raises(TypeError, match="log_prob must be callable"):
        ClassifierGuidance(gmm2d, None, 1.0, linear)
    with pytest.raises(TypeError, match="must be a number"):
        ClassifierGuidance(gmm2d, gmm2d.classifier_log_prob, "2", linear)
    with pytest.raises(ValueError, match="must be finite"):
        ClassifierGuidance(gmm2d, gmm2d.classifier_log_prob, float("inf"), linear)


# -- classifier-free guidance: rescale and interval -----------------------------------------------------


def two_branch_model(x, t, y):
    """A conditional model whose branches differ in scale and offset (label 9 is the null label)."""
    scale = torch.where(y == 9, 1.0, 1.5).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return scale * x + (y.to(x.dtype) / 10).view(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("phi", [0.0, 0.3, 0.7, 1.0])
def test_guidance_rescale_matches_diffusers(phi):
    pipeline = pytest.importorskip("diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion")
    x, t, y = noise((3, 2, 4, 4), seed=1), torch.full((3,), 10.0), torch.tensor([1, 4, 7])
    cfg = ClassifierFreeGuidance(two_branch_model, 5.0, {"y": 9}, guidance_rescale=phi)
    out_c, out_u = two_branch_model(x, t, y), two_branch_model(x, t, torch.full_like(y, 9))
    plain = out_u + 5.0 * (out_c - out_u)
    torch.testing.assert_close(cfg(x, t, y=y), pipeline.rescale_noise_cfg(plain, out_c, guidance_rescale=phi),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("schedule", [Linear(), EDM(), FlowMatch()], ids=["linear", "edm", "flow"])
def test_guidance_interval_guides_only_inside_it_in_sigma_k(schedule):
    lo, hi = 0.5, 4.0
    ts = torch.linspace(schedule.t_min, schedule.t_max, 41, dtype=torch.float64)
    sigma_k = schedule.sigma_k(ts)
    x, y = noise((41, 3), seed=2), torch.full((41,), 3)
    plain = ClassifierFreeGuidance(two_branch_model, 4.0, {"y": 9})(x, ts, y=y)
    cond = two_branch_model(x, ts, y)
    out = ClassifierFreeGuidance(two_branch_model, 4.0, {"y": 9}, interval=(lo, hi), schedule=schedule)(x, ts, y=y)
    inside = (sigma_k > lo) & (sigma_k <= hi)
    assert 0 < int(inside.sum()) < 41
    torch.testing.assert_close(out[inside], plain[inside], rtol=0, atol=0)
    torch.testing.assert_close(out[~inside], cond[~inside], rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"interval": (2.0, 1.0)}, "0 <= sigma_lo < sigma_hi"),
        ({"interval": (1.0, 1.0)}, "0 <= sigma_lo < sigma_hi"),
        ({"interval": (-1.0, 1.0)}, "0 <= sigma_lo < sigma_hi"),
        ({"interval": (0.0, float("nan"))}, "0 <= sigma_lo < sigma_hi"),
        ({"interval": (1.0,)}, "a pair"),
        ({"interval": "ab"}, "a pair"),
        ({"interval": (0.1, 1.0), "schedule": None}, "needs the schedule"),
        ({"guidance_rescale": 1.5}, r"guidance_rescale must be a number in \[0, 1\]"),
        ({"guidance_rescale": True}, r"guidance_rescale must be a number in \[0, 1\]"),
    ],
)
def test_bad_cfg_options_say_what_is_allowed(kwargs, message):
    kwargs = {"schedule": Linear(), **kwargs}
    with pytest.raises(ValueError, match=message):
        ClassifierFreeGuidance(two_branch_model, 2.0, {"y": 9}, **kwargs)


def test_an_infinite_interval_top_keeps_guidance_at_zero_snr():
    schedule = FAMILIES["zero_snr"]
    t = torch.full((2,), schedule.t_max, dtype=torch.float64)
    x, y = noise((2, 3)), torch.tensor([1, 2])
    plain = ClassifierFreeGuidance(two_branch_model, 3.0, {"y": 9})(x, t, y=y)
    cfg = ClassifierFreeGuidance(two_branch_model, 3.0, {"y": 9}, interval=(0.0, float("inf")), schedule=schedule)
    torch.testing.assert_close(cfg(x, t, y=y), plain, rtol=0, atol=0)


@pytest.mark.parametrize("other", [FlowMatch(), FlowMatch(shift=3.0), Cosine()], ids=repr)
def test_rescheduled_classifier_is_the_exact_classifier_of_the_other_family(other):
    # The same mixture on two schedules: the Linear one's exact classifier, rescheduled, is the other's exact one
    # wherever the other's noise level lies in Linear's range (all three times below do).
    from diffkit.models.guidance import RescheduledClassifier

    linear = GaussianMixture.random(Linear(), dim=8, components=3, seed=1)
    target = GaussianMixture.random(other, dim=8, components=3, seed=1)
    classifier = RescheduledClassifier(linear.classifier_log_prob, Linear(), other)
    x = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1])
    for fraction in (0.9, 0.5, 0.1):
        t = torch.full((5,), fraction * other.t_max, dtype=torch.float64)
        torch.testing.assert_close(classifier(x, t, y=y), target.classifier_log_prob(x, t, y), rtol=1e-10, atol=1e-10)
    at_pure_noise = classifier(x, torch.full((5,), float(other.t_max), dtype=torch.float64), y=y)
    assert torch.isfinite(at_pure_noise).all()
