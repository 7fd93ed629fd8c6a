"""SD3 and Flux pipelines with DiffkitScheduler, end to end: the same latents as diffkit.sample.

StableDiffusion3Pipeline and FluxPipeline built locally from tiny random transformers
(SD3Transformer2DModel, FluxTransformer2DModel), with prompt embeddings passed directly
(no tokenizers or text encoders) and latents returned (no VAE), no downloads. Both
pipelines import transformers, hence the skip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import diffkit
from diffkit.models import ClassifierFreeGuidance, Predictor
from diffkit.schedules import FlowMatch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("greenlet")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)

from diffkit.integrations.diffusers import DiffkitScheduler
from diffkit.integrations.diffusers.flow import timesteps_from_flow_sigmas

GUIDANCE, STEPS, SIZE = 5.0, 6, 64  # without a VAE the pipelines take 8x latents: 8x8 latents


def _embeddings(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


PROMPTS, NEGATIVE = _embeddings(1, 2, 5, 12), _embeddings(2, 2, 5, 12)  # [B, tokens, joint_attention_dim]
POOLED, NEGATIVE_POOLED = _embeddings(3, 2, 6), _embeddings(4, 2, 6)  # [B, pooled_projection_dim]


@pytest.fixture(scope="module")
def sd3():
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=2, joint_attention_dim=12,
                                        caption_projection_dim=16, pooled_projection_dim=6).eval()
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                    vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                                    text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("name", ["euler", "dpmpp_2m", "dpmpp_sde"])
def test_sd3_pipeline_equals_diffkit_sample(sd3, name):
    """Text conditioning and classifier-free guidance: <= 1e-5 (measured: 0, the same float32 operations on both
    routes). SD3 passes step() no generator: a stochastic sampler draws from torch's global one, on both routes
    here (dpmpp_sde: two model calls per step, order 2)."""
    sd3.scheduler = DiffkitScheduler.from_scheduler(sd3.scheduler, sampler=name)
    x_T = _embeddings(5, 2, 4, 8, 8)
    torch.manual_seed(6)
    ours = sd3(prompt_embeds=PROMPTS, negative_prompt_embeds=NEGATIVE, pooled_prompt_embeds=POOLED,
               negative_pooled_prompt_embeds=NEGATIVE_POOLED, guidance_scale=GUIDANCE, height=SIZE, width=SIZE,
               num_inference_steps=STEPS, latents=x_T, output_type="latent").images

    def transformer(x, t, encoder_hidden_states, pooled_projections):
        return sd3.transformer(hidden_states=x, timestep=t.float(), encoder_hidden_states=encoder_hidden_states,
                               pooled_projections=pooled_projections, return_dict=False)[0]

    model = ClassifierFreeGuidance(Predictor(transformer, "flow"), GUIDANCE,
                                   uncond={"encoder_hidden_states": NEGATIVE, "pooled_projections": NEGATIVE_POOLED})
    torch.manual_seed(6)
    with torch.no_grad():
        ref = diffkit.sample(model, FlowMatch(shift=3.0), name, STEPS, x=x_T,
                             cond={"encoder_hidden_states": PROMPTS, "pooled_projections": POOLED})
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dynamic", [True, False])  # Flux.1-dev's config, Flux.1-schnell's
def test_flux_pipeline_equals_diffkit_sample(dynamic):
    """FluxPipeline passes sigmas = linspace(1, 1/N, N) and mu from the image's token count whatever the config:
    the scheduler samples FlowMatch(mu=mu) on T shift(sigmas) with dynamic shifting, and ignores mu with
    schnell's static shift 1, as diffusers does. <= 1e-5 (measured: 0)."""
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=8, num_attention_heads=2, joint_attention_dim=12,
                                         pooled_projection_dim=6, axes_dims_rope=(2, 2, 4)).eval()
    source = FlowMatchEulerDiscreteScheduler(shift=3.0 if dynamic else 1.0, use_dynamic_shifting=dynamic)
    pipe = FluxPipeline(transformer=transformer, scheduler=DiffkitScheduler.from_scheduler(source, sampler="dpmpp_2m"),
                        vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
    pipe.set_progress_bar_config(disable=True)
    x_T = _embeddings(5, 2, 16, 16)  # packed latents: [B, 4 x 4 tokens, 4 channels x 2 x 2]
    ours = pipe(prompt_embeds=PROMPTS, pooled_prompt_embeds=POOLED, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                latents=x_T, output_type="latent").images
    image_ids = pipe._prepare_latent_image_ids(2, 4, 4, x_T.device, x_T.dtype)

    def flux(x, t):
        return transformer(hidden_states=x, timestep=t.float() / 1000, pooled_projections=POOLED,
                           encoder_hidden_states=PROMPTS, txt_ids=torch.zeros(5, 3), img_ids=image_ids,
                           return_dict=False)[0]

    schedule = FlowMatch(mu=pipe.scheduler.dynamic_shift.mu(16)) if dynamic else FlowMatch()
    grid = timesteps_from_flow_sigmas(schedule, np.linspace(1.0, 1 / STEPS, STEPS), None)
    with torch.no_grad():
        ref = diffkit.sample(Predictor(flux, "flow"), schedule, "dpmpp_2m", x=x_T, timesteps=grid)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
