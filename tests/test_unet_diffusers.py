"""diffusers UNet2DModel weights in the reference UNet, and the DiffusersEpsModel adapter."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from diffkit.conversions import eps_from_v, eps_from_x0  # noqa: E402
from diffkit.io.weights import load_diffusers_unet  # noqa: E402
from diffkit.schedules import Linear  # noqa: E402
from diffkit.unet import (  # noqa: E402
    PRESETS,
    DiffusersEpsModel,
    UNet,
    convert_diffusers_state_dict,
    diffusers_key_table,
    unet_config_from_diffusers,
)
from diffkit.unet.diffusers_weights import DIFFUSERS_DEFAULTS  # noqa: E402

# google/ddpm-cifar10-32's config.json (its "dropout" is absent, so diffusers' default 0.0 applies).
DDPM_CIFAR10 = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=2, norm_num_groups=32, norm_eps=1e-6, freq_shift=1, flip_sin_to_cos=False,
    downsample_padding=0, attention_head_dim=None, act_fn="silu", time_embedding_type="positional",
    center_input_sample=False, mid_block_scale_factor=1,
)  # fmt: skip
# The same layout, narrower: numeric agreement at a fraction of the cost.
SMALL_CIFAR_LAYOUT = {**DDPM_CIFAR10, "block_out_channels": (32, 64, 64, 64), "norm_num_groups": 8}
# Other conventions the converter must honour: symmetric padding, [cos, sin], shift 0, several heads,
# attention at two levels, one ResBlock per level, different in/out channels.
OTHER_CONVENTIONS = dict(
    sample_size=16, in_channels=1, out_channels=2, block_out_channels=(16, 32, 48),
    down_block_types=("AttnDownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "AttnUpBlock2D"),
    layers_per_block=1, norm_num_groups=8, norm_eps=1e-5, freq_shift=0, flip_sin_to_cos=True,
    downsample_padding=1, attention_head_dim=8,
)  # fmt: skip
# Float32 agreement bound: the same math, but not bit-identical kernels (e.g. attention over differently
# strided views); observed differences are <= 2e-6 on outputs of magnitude ~2, so 1e-5 leaves a 5x margin.
ATOL = 1e-5


def diffusers_unet(config: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(**config).eval()


def random_inputs(model: torch.nn.Module, batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    size = model.config.sample_size
    x = torch.randn(batch, model.config.in_channels, size, size, generator=gen)
    t = torch.cat([torch.tensor([0.0, 999.0]), 1000 * torch.rand(batch - 2, generator=gen)])[:batch]  # fractional
    return x, t


def assert_same_outputs(reference: torch.nn.Module, converted: UNet, batch: int) -> None:
    x, t = random_inputs(reference, batch)
    with torch.no_grad():
        expected = reference(x, t).sample
        actual = converted(x, t)
    assert expected.abs().max() > 0.1  # a meaningful comparison, not two near-zero tensors
    torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)


def test_defaults_table_matches_installed_diffusers():
    signature = inspect.signature(diffusers.UNet2DModel.__init__).parameters
    installed = {name: p.default for name, p in signature.items() if name != "self"}
    assert installed == DIFFUSERS_DEFAULTS


def test_full_size_ddpm_cifar10_converts_exactly():
    reference = diffusers_unet(DDPM_CIFAR10)
    assert sum(p.numel() for p in reference.parameters()) == 35_746_307
    cfg = unet_config_from_diffusers(dict(reference.config))
    # diffusers spells out out_channels and leaves dropout at 0 (inference-only config).
    assert dataclasses.replace(cfg, dropout=0.1, out_channels=None) == PRESETS["ddpm_cifar10"]
    table = diffusers_key_table(cfg)
    assert set(table) == set(reference.state_dict())
    converted = load_diffusers_unet(reference.state_dict(), dict(reference.config))
    assert set(table.values()) == set(converted.state_dict())
    assert_same_outputs(reference, converted, batch=2)


@pytest.mark.parametrize("config", [SMALL_CIFAR_LAYOUT, OTHER_CONVENTIONS], ids=["cifar_layout", "other_conventions"])
def test_converted_weights_reproduce_diffusers(config):
    reference = diffusers_unet(config)
    converted = load_diffusers_unet(reference.state_dict(), dict(reference.config))
    assert not converted.training  # loaders return eval-mode models, like from_pretrained
    assert_same_outputs(reference, converted, batch=4)


def test_pre_0_15_attention_names_are_accepted():
    reference = diffusers_unet(SMALL_CIFAR_LAYOUT)
    legacy = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    state = {}
    for key, value in reference.state_dict().items():
        for new, old in legacy.items():
            key = key.replace(f".{new}.", f".{old}.")
        state[key] = value
    assert any(".proj_attn." in key for key in state)
    assert_same_outputs(reference, load_diffusers_unet(state, dict(reference.config)), batch=2)


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_loads_a_diffusers_model_directory(tmp_path, safe):
    reference = diffusers_unet(SMALL_CIFAR_LAYOUT)
    reference.save_pretrained(tmp_path, safe_serialization=safe)
    assert_same_outputs(reference, load_diffusers_unet(tmp_path), batch=2)


def test_unknown_and_missing_keys_are_refused_by_name():
    reference = diffusers_unet(SMALL_CIFAR_LAYOUT)
    cfg = unet_config_from_diffusers(dict(reference.config))
    state = dict(reference.state_dict())
    del state["mid_block.attentions.0.to_k.bias"]
    state["mid_block.attentions.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"1 missing keys.*to_k\.bias.*1 unknown keys.*extra\.weight"):
        convert_diffusers_state_dict(state, cfg)


def test_shape_mismatches_are_refused_by_name():
    reference = diffusers_unet(SMALL_CIFAR_LAYOUT)
    state = dict(reference.state_dict())
    state["conv_out.bias"] = torch.zeros(4)
    with pytest.raises(ValueError, match=r"shape mismatches.*conv_out\.bias"):
        load_diffusers_unet(state, dict(reference.config))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(center_input_sample=True), "center_input_sample"),
        (dict(time_embedding_type="fourier"), "time_embedding_type"),
        (dict(num_class_embeds=10), "num_class_embeds"),
        (dict(resnet_time_scale_shift="scale_shift"), "resnet_time_scale_shift"),
        (
            dict(down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D")),
            "down_block_types",
        ),
        (dict(up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D")), "same levels"),
        (dict(block_out_channels=(32, 48, 64, 64)), "multiples"),
        (dict(sample_size=None), "sample_size"),
        (dict(downsample_padding=2), "downsample_padding"),
        (dict(conv_in_kernel=3), "unknown UNet2DModel config keys"),
    ],
)
def test_unsupported_diffusers_options_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        unet_config_from_diffusers({**SMALL_CIFAR_LAYOUT, **changes})


def test_missing_config_keys_take_diffusers_defaults():
    # A hub config.json lists only what differed from the defaults of its diffusers version.
    cfg = unet_config_from_diffusers({"sample_size": 64, "_class_name": "UNet2DModel"})
    assert cfg.channel_mult == (1, 2, 3, 4) and cfg.attention_resolutions == (32, 16, 8)
    assert (cfg.head_channels, cfg.flip_sin_to_cos, cfg.freq_shift) == (8, True, 0.0)


# --- the adapter -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_reference():
    return diffusers_unet({**OTHER_CONVENTIONS, "out_channels": 1})  # eps has x's shape


def test_adapter_passes_eps_through(small_reference):
    x, t = random_inputs(small_reference, batch=3)
    model = DiffusersEpsModel(small_reference)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), small_reference(x, t).sample, rtol=0, atol=0)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_adapter_converts_v_and_x0_at_the_schedules_alpha_sigma(small_reference, prediction_type):
    schedule = Linear()
    x, t = random_inputs(small_reference, batch=3)
    model = DiffusersEpsModel(small_reference, schedule, prediction_type=prediction_type)
    with torch.no_grad():
        out = small_reference(x, t).sample
        eps = model(x, t)
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    assert alpha.dtype == sigma.dtype == torch.float64
    assert model.prediction_type == "epsilon"  # what samplers read: the adapter already converted to eps
    convert = eps_from_v if prediction_type == "v_prediction" else eps_from_x0
    torch.testing.assert_close(eps, convert(x, out, alpha, sigma), rtol=0, atol=0)
    # The same, written out in float64: eps = sigma x + alpha v, or eps = (x - alpha x0) / sigma.
    a, s, x64, out64 = alpha[:, None, None, None], sigma[:, None, None, None], x.double(), out.double()
    manual = s * x64 + a * out64 if prediction_type == "v_prediction" else (x64 - a * out64) / s
    # float32 arithmetic; at t=0 (sigma ~ 0.01) the x0 conversion amplifies round-off by 1/sigma.
    torch.testing.assert_close(eps.double(), manual, rtol=1e-5, atol=1e-4)


def test_adapter_rejects_bad_arguments(small_reference):
    with pytest.raises(ValueError, match="epsilon"):
        DiffusersEpsModel(small_reference, Linear(), prediction_type="x0")
    with pytest.raises(ValueError, match="needs a schedule"):
        DiffusersEpsModel(small_reference, prediction_type="v_prediction")
    x, t = random_inputs(small_reference, batch=2)
    with pytest.raises(TypeError, match="unexpected conditioning"):
        DiffusersEpsModel(small_reference)(x, t, context=x)
