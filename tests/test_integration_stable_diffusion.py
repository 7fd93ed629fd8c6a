"""Stable Diffusion end to end, two routes, one result: a diffusers pipeline with DiffkitScheduler, and diffkit.sample.

Latent diffusion with text conditioning and classifier-free guidance, built locally
from small random components (a UNet2DConditionModel with cross-attention, an
AutoencoderKL; prompt embeddings passed directly, so no tokenizer or text encoder),
no downloads. StableDiffusionPipeline itself imports transformers, hence the skip.
"""

from __future__ import annotations

import pytest
import torch

import diffkit
from diffkit.models import ClassifierFreeGuidance, DiffusersUNet, LatentDiffusion
from diffkit.samplers import SAMPLERS
from diffkit.schedules import ScaledLinear, timesteps

pytest.importorskip("diffusers")
pytest.importorskip("transformers")
pytest.importorskip("greenlet")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)

from diffkit.integrations.diffusers import DiffkitScheduler

GUIDANCE, STEPS, SIZE = 5.0, 6, 16  # 16x16 images, 8x8x4 latents
PROMPTS = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(1))  # [B, tokens, cross_attention_dim]
NEGATIVE = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=12, attention_head_dim=2, norm_num_groups=4).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        norm_num_groups=4, layers_per_block=1).eval()
    # Stable Diffusion's training schedule, as its scheduler config states it
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1,
                              clip_sample=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _diffkit_model(pipe):
    """The same Stable-Diffusion-style model for diffkit.sample: U-Net with text via cross-attention, CFG, VAE."""
    guided = ClassifierFreeGuidance(DiffusersUNet(pipe.unet), GUIDANCE, uncond={"encoder_hidden_states": NEGATIVE})
    return LatentDiffusion(guided, pipe.vae)


def _call(pipe, output_type, seed=3, **kwargs):
    return pipe(prompt_embeds=PROMPTS, negative_prompt_embeds=NEGATIVE, guidance_scale=GUIDANCE, height=SIZE,
                width=SIZE, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(seed),
                output_type=output_type, **kwargs).images


@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_sde", "ddpm"])
def test_pipeline_equals_diffkit_sample(pipe, name):
    """Latents and decoded images: <= 1e-5 (measured: 0, the same float32 operations on both routes)."""
    pipe.scheduler = DiffkitScheduler.from_scheduler(pipe.scheduler, sampler=name)
    model = _diffkit_model(pipe)
    latents = diffkit.sample(model, ScaledLinear(), name, STEPS, shape=model.latent_shape(2, SIZE, SIZE),
                             generator=torch.Generator().manual_seed(3), cond={"encoder_hidden_states": PROMPTS})
    torch.testing.assert_close(_call(pipe, "latent"), latents, rtol=0, atol=1e-5)
    images = (model.decode(latents) / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(_call(pipe, "pt"), images, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_sde"])
def test_img2img_pipeline_equals_the_sampler_from_the_noised_image(pipe, name):
    """strength 0.6 of 6 steps: set_begin_index(t_start * order), add_noise at its timestep, the remaining grid."""
    img2img = StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
    img2img.set_progress_bar_config(disable=True)
    img2img.scheduler = DiffkitScheduler.from_scheduler(pipe.scheduler, sampler=name, spacing="trailing")
    image = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    ours = img2img(image=image, strength=0.6, prompt_embeds=PROMPTS, negative_prompt_embeds=NEGATIVE,
                   guidance_scale=GUIDANCE, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(5),
                   output_type="latent").images
    # The same by hand: what prepare_latents draws from the generator, then the sampler on the remaining grid.
    g = torch.Generator().manual_seed(5)
    model = _diffkit_model(pipe)
    x0 = pipe.vae.encode(2 * image - 1).latent_dist.sample(g) * pipe.vae.config.scaling_factor
    visited = timesteps(ScaledLinear(), STEPS, "trailing")[STEPS - int(STEPS * 0.6):]
    noise = torch.randn(x0.shape, generator=g)
    x = ScaledLinear().add_noise(x0, noise, torch.full((2,), visited[0]))
    ref = SAMPLERS[name].fn(model, x, ScaledLinear(), visited, generator=g, cond={"encoder_hidden_states": PROMPTS})
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
