"""Models with ground truth, and the wrappers that present any network as what samplers consume.

GaussianMixture        exact posterior means for Gaussian-mixture data, in every family and prediction type
exact_sample           the exact probability-flow ODE solution (ground truth for deterministic samplers)
from_prediction        a network predicting eps, x0, v, the flow velocity or an EDM denoiser, for samplers
ClassifierFreeGuidance eps_u + w (eps_c - eps_u) from one batched call; guidance rescale, guidance interval
ClassifierGuidance     eps - scale sigma_t grad log p(y | x_t) of a noise-aware classifier
RescheduledClassifier  a classifier trained on one schedule, asked about another's x_t (equal lambda)
DiffusersUNet          a diffusers U-Net (UNet2DConditionModel: text via cross-attention) as a diffkit model
LatentDiffusion        a model on latents and the VAE that decodes its samples (Stable-Diffusion style)
EpsFromV, EpsFromX0    v- and x0-prediction networks as eps-models (VP schedules; prefer from_prediction)
"""

from diffkit.models.diffusers_unet import DiffusersUNet
from diffkit.models.gaussian_mixture import GaussianMixture
from diffkit.models.guidance import ClassifierFreeGuidance, ClassifierGuidance, RescheduledClassifier
from diffkit.models.ground_truth import exact_sample, solve_probability_flow
from diffkit.models.latent import LatentDiffusion
from diffkit.models.prediction import EDMPreconditioned, Predictor, from_prediction
from diffkit.models.wrappers import EpsFromV, EpsFromX0

__all__ = [
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "RescheduledClassifier",
    "DiffusersUNet",
    "EDMPreconditioned",
    "EpsFromV",
    "EpsFromX0",
    "GaussianMixture",
    "LatentDiffusion",
    "Predictor",
    "exact_sample",
    "from_prediction",
    "solve_probability_flow",
]
