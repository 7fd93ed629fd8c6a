"""Models with ground truth, and the wrappers that present any network as what samplers consume.

GaussianMixture        exact posterior means for Gaussian-mixture data, in every family and prediction type
exact_sample           the exact probability-flow ODE solution (ground truth for deterministic samplers)
from_prediction        a network predicting eps, x0, v, the flow velocity or an EDM denoiser, for samplers
ClassifierFreeGuidance eps_u + w (eps_c - eps_u) from one batched call
EpsFromV, EpsFromX0    v- and x0-prediction networks as eps-models (VP schedules; prefer from_prediction)
"""

from diffkit.models.gaussian_mixture import GaussianMixture
from diffkit.models.ground_truth import exact_sample, solve_probability_flow
from diffkit.models.prediction import EDMPreconditioned, Predictor, from_prediction
from diffkit.models.wrappers import ClassifierFreeGuidance, EpsFromV, EpsFromX0

__all__ = [
    "ClassifierFreeGuidance",
    "EDMPreconditioned",
    "EpsFromV",
    "EpsFromX0",
    "GaussianMixture",
    "Predictor",
    "exact_sample",
    "from_prediction",
    "solve_probability_flow",
]
