"""eps-models with ground truth, and wrappers that turn other parameterisations into eps-models."""

from diffkit.models.gaussian_mixture import GaussianMixture
from diffkit.models.ground_truth import exact_sample, solve_probability_flow
from diffkit.models.wrappers import ClassifierFreeGuidance, EpsFromV, EpsFromX0

__all__ = [
    "ClassifierFreeGuidance",
    "EpsFromV",
    "EpsFromX0",
    "GaussianMixture",
    "exact_sample",
    "solve_probability_flow",
]
