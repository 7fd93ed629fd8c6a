"""The reference U-Net: architecture, presets, config round trips and input validation."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
import torch

import diffkit.unet.blocks as blocks
from diffkit.kernels.attention import attention_ref
from diffkit.unet import PRESETS, UNet, UNetConfig, build_unet
from diffkit.unet.blocks import AttentionBlock, timestep_embedding

TINY = dict(in_channels=2, channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
            resolution=8, groups=4, dropout=0.0)  # fmt: skip


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Overwrite every parameter with N(0, 0.1^2): fresh UNets output exactly zero (zero-initialised last layers)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model.eval()


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_ddpm_cifar10_has_the_papers_parameter_count():
    # 35,746,307: diffusers' UNet2DModel in the google/ddpm-cifar10-32 configuration has exactly this
    # many parameters (checked against diffusers itself in test_unet_diffusers.py); the paper says 35.7M.
    assert n_params(build_unet("ddpm_cifar10")) == 35_746_307


def test_digits_small_preset_is_small_class_conditional_8x8():
    model = randomized(build_unet("digits_small"))
    cfg = model.config
    assert (cfg.in_channels, cfg.resolution, cfg.num_classes) == (1, 8, 10)
    assert 500_000 <= n_params(model) <= 2_000_000
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([1.0, 250.5, 999.0])
    y = torch.tensor([0, 9, model.null_label])
    with torch.no_grad():
        eps = model(x, t, y)
        eps_other = model(x, t, torch.tensor([1, 8, 3]))
    assert eps.shape == x.shape
    assert not torch.allclose(eps, eps_other)  # the label reaches the output


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="digits_small"):
        build_unet("ddpm_imagenet")


def test_constructor_defaults_match_config_defaults():
    defaults = {name: p.default for name, p in inspect.signature(UNet.__init__).parameters.items() if name != "self"}
    fields = {f.name: f.default for f in dataclasses.fields(UNetConfig)}
    assert defaults == fields


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip(name):
    cfg = PRESETS[name]
    restored = UNetConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert restored == cfg
    assert UNet.from_config(restored).config == cfg


def test_fresh_model_predicts_zero_and_every_parameter_gets_a_gradient():
    model = UNet(**TINY, num_classes=3)
    x, t, y = torch.randn(2, 2, 8, 8), torch.tensor([3.0, 7.5]), torch.tensor([0, 3])
    eps = model(x, t, y)
    assert torch.equal(eps, torch.zeros_like(x))  # zero-initialised output conv, as in Ho et al.
    randomized(model).train()
    model(x, t, y).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_output_shape_with_out_channels_and_non_square_input():
    model = randomized(UNet(**TINY, out_channels=5))
    with torch.no_grad():
        eps = model(torch.randn(2, 2, 8, 12), torch.tensor([10.0, 20.0]))
    assert eps.shape == (2, 5, 8, 12)


def test_fractional_timesteps_are_embedded_continuously():
    model = randomized(UNet(**TINY))
    x = torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        outs = [model(x, torch.tensor([t])) for t in (10.0, 10.25, 10.5, 11.0)]
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])
    # Continuity: the output moves less over a quarter step than over a whole one.
    assert (outs[1] - outs[0]).abs().max() < (outs[3] - outs[0]).abs().max()


def test_scalar_t_broadcasts_over_the_batch():
    model = randomized(UNet(**TINY))
    x = torch.randn(3, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor(42.5)), model(x, torch.full((3,), 42.5)))


def test_timestep_embedding_matches_the_closed_form_in_float64():
    t = torch.tensor([0.0, 1.5, 999.0], dtype=torch.float64)
    emb = timestep_embedding(t, 8, freq_shift=1.0, flip_sin_to_cos=False)
    freqs = torch.exp(-torch.log(torch.tensor(1e4, dtype=torch.float64)) * torch.arange(4) / 3)
    expected = torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], dim=1)
    torch.testing.assert_close(emb.double(), expected, rtol=0, atol=1e-4)  # float32 angles up to ~1e3
    flipped = timestep_embedding(t, 8, freq_shift=1.0, flip_sin_to_cos=True)
    torch.testing.assert_close(flipped, torch.cat([emb[:, 4:], emb[:, :4]], dim=1))


@pytest.mark.parametrize("heads", [1, 4])
def test_attention_block_matches_softmax_attention_in_float64(heads):
    block = randomized(AttentionBlock(16, heads=heads, groups=4, eps=1e-6)).double()
    x = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    tokens = block.norm(x).reshape(2, 16, 15).transpose(1, 2)
    q, k, v = (
        p(tokens).reshape(2, 15, heads, 16 // heads).transpose(1, 2) for p in (block.to_q, block.to_k, block.to_v)
    )
    out = block.to_out(attention_ref(q, k, v).transpose(1, 2).reshape(2, 15, 16))
    expected = x + out.transpose(1, 2).reshape(2, 16, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-12)  # same math, float64 round-off


def test_attention_goes_through_the_diffkit_kernel(monkeypatch):
    calls = []

    def recording_attention(q, k, v):
        calls.append(q.shape)
        return attention_ref(q, k, v)

    monkeypatch.setattr(blocks, "attention", recording_attention)
    model = UNet(**TINY, head_channels=8)
    with torch.no_grad():
        model(torch.randn(2, 2, 8, 8), torch.tensor([1.0, 2.0]))
    # Level 1 (4x4, 32 channels): 1 down + 2 up blocks, plus the middle block: 4 calls of [B, 4 heads, 16, 8].
    assert calls == [torch.Size([2, 4, 16, 8])] * 4


def test_float64_model_runs_in_float64():
    model = randomized(UNet(**TINY)).double()
    eps = model(torch.randn(1, 2, 8, 8, dtype=torch.float64), torch.tensor([5.0], dtype=torch.float64))
    assert eps.dtype == torch.float64


@pytest.mark.parametrize(
    "changes, error",
    [
        (dict(attention_resolutions=(16,)), ValueError),  # not a level resolution of an 8x8 model
        (dict(groups=5), ValueError),  # does not divide 16
        (dict(channel_mult=()), ValueError),
        (dict(channel_mult=(1, 2, 2, 2, 2)), ValueError),  # 8 is not divisible by 2**4
        (dict(dropout=1.0), ValueError),
        (dict(num_classes=0), ValueError),
        (dict(head_channels=7), ValueError),
        (dict(downsample_padding="same"), ValueError),
        (dict(channels=15), ValueError),
        (dict(num_res_blocks=2.0), TypeError),
        (dict(flip_sin_to_cos=1), TypeError),
    ],
)
def test_invalid_configs_are_rejected(changes, error):
    with pytest.raises(error):
        UNet(**{**TINY, **changes})


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="allowed"):
        UNetConfig.from_dict({"channels": 32, "chanel_mult": [1, 2]})


def test_inputs_are_validated():
    cond = UNet(**TINY, num_classes=3)
    uncond = UNet(**TINY)
    x, t = torch.randn(2, 2, 8, 8), torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="pass y"):
        cond(x, t)
    with pytest.raises(ValueError, match="unconditional"):
        uncond(x, t, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels must lie in"):
        cond(x, t, torch.tensor([0, 4]))  # 3 is the NULL label, 4 is out of range
    with pytest.raises(ValueError, match="integer"):
        cond(x, t, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        uncond(torch.randn(2, 3, 8, 8), t)
    with pytest.raises(ValueError, match="divisible"):
        uncond(torch.randn(2, 2, 8, 7), t)
    with pytest.raises(ValueError, match="t must"):
        uncond(x, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="t must"):
        uncond(x, 1.0)
