"""The latent-diffusion wrapper and the diffusers U-Net adapter (duck-typed: stubs here, no diffusers)."""

from __future__ import annotations

import types

import pytest
import torch

import diffkit
from diffkit.models import ClassifierFreeGuidance, DiffusersUNet, LatentDiffusion


class StubUNet:
    """Records how it is called; returns x * 0.1 (+ 0.01 * mean of the text embeddings, so conditioning shows)."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, encoder_hidden_states=None, class_labels=None, added_cond_kwargs=None, return_dict=True):
        self.calls.append({"encoder_hidden_states": encoder_hidden_states, "class_labels": class_labels,
                           "added_cond_kwargs": added_cond_kwargs, "return_dict": return_dict})
        out = 0.1 * x
        if encoder_hidden_states is not None:
            out = out + 0.01 * encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        return (out,)


class StubVAE:
    config = types.SimpleNamespace(scaling_factor=0.5, shift_factor=0.25, latent_channels=4,
                                   block_out_channels=(8, 16, 32))
    dtype = torch.float32

    def decode(self, z):
        return types.SimpleNamespace(sample=z.repeat_interleave(4, dim=-1).repeat_interleave(4, dim=-2)[:, :3])


def test_unet_adapter_routes_conditions():
    unet = StubUNet()
    model = DiffusersUNet(unet, "v_prediction")
    assert model.prediction_type == "v_prediction"
    x, t = torch.ones(2, 4, 2, 2), torch.full((2,), 5.0)
    text, pooled, ids = torch.ones(2, 3, 6), torch.ones(2, 6), torch.ones(2, 6)
    model(x, t, encoder_hidden_states=text, text_embeds=pooled, time_ids=ids)
    call = unet.calls[-1]
    assert call["encoder_hidden_states"] is text and call["return_dict"] is False
    assert call["added_cond_kwargs"] == {"text_embeds": pooled, "time_ids": ids}  # SDXL's added conditions
    model(x, t)  # an unconditional UNet2DModel: no condition keywords at all
    assert unet.calls[-1]["added_cond_kwargs"] is None and unet.calls[-1]["encoder_hidden_states"] is None
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusersUNet(unet, "eps")


def test_guidance_keeps_the_prediction_type():
    guided = ClassifierFreeGuidance(DiffusersUNet(StubUNet(), "v_prediction"), 3.0,
                                    uncond={"encoder_hidden_states": torch.zeros(2, 3, 6)})
    assert guided.prediction_type == "v_prediction"
    assert LatentDiffusion(guided, StubVAE()).prediction_type == "v_prediction"


def test_latent_diffusion_samples_latents_and_decodes_them():
    vae = StubVAE()
    model = LatentDiffusion(ClassifierFreeGuidance(DiffusersUNet(StubUNet()), 2.0,
                                                   uncond={"encoder_hidden_states": torch.zeros(2, 3, 6)}), vae)
    assert model.latent_shape(2, 32, 16) == (2, 4, 8, 4)  # 2^(3 levels - 1) = 4x downsampling
    z = diffkit.sample(model, diffkit.schedules.ScaledLinear(), "ddim", 5, shape=model.latent_shape(2, 32, 16),
                       generator=torch.Generator().manual_seed(0), cond={"encoder_hidden_states": torch.ones(2, 3, 6)})
    images = model.decode(z)
    torch.testing.assert_close(images, vae.decode(z / 0.5 + 0.25).sample)  # D(z / scaling + shift)
    assert images.shape == (2, 3, 32, 16)
    with pytest.raises(ValueError, match="multiples of 4"):
        model.latent_shape(1, 30, 16)


def test_latent_diffusion_needs_its_factors():
    class Bare:
        def decode(self, z):
            return z

    with pytest.raises(ValueError, match="scaling_factor"):
        LatentDiffusion(StubUNet(), Bare())
    model = LatentDiffusion(StubUNet(), Bare(), scaling_factor=2.0)
    torch.testing.assert_close(model.decode(torch.ones(1, 4, 2, 2)), torch.full((1, 4, 2, 2), 0.5))
    with pytest.raises(ValueError, match="latent_channels and downscale"):
        model.latent_shape(1, 8, 8)
    with pytest.raises(TypeError, match="decode"):
        LatentDiffusion(StubUNet(), object(), scaling_factor=1.0)
