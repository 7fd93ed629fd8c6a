"""The reference DDPM U-Net, its presets, safe checkpoints and diffusers weight conversion.

UNet, UNetConfig                  the model ``eps = unet(x, t, y=None)`` and its frozen config
PRESETS, build_unet(name)         "ddpm_cifar10" (35.7M, Ho et al.), "digits_small" (8x8x1, 10 classes)
save_weights / load_weights       safetensors (+ config JSON); .bin/.pt/.pth only via weights_only
save_unet / load_unet             a UNet with its config, rebuilt exactly
load_diffusers_unet               diffusers UNet2DModel weights (e.g. google/ddpm-cifar10-32) -> UNet
DiffusersEpsModel                 any diffusers UNet2DModel as a diffkit eps-model
"""

from diffkit.unet.adapter import PREDICTION_TYPES, DiffusersEpsModel
from diffkit.unet.checkpoint import load_state_dict_checked, load_unet, load_weights, save_unet, save_weights
from diffkit.unet.config import UNetConfig
from diffkit.unet.diffusers_weights import (
    convert_diffusers_state_dict,
    diffusers_key_table,
    load_diffusers_unet,
    unet_config_from_diffusers,
)
from diffkit.unet.model import UNet
from diffkit.unet.presets import PRESETS, build_unet

__all__ = [
    "PREDICTION_TYPES",
    "PRESETS",
    "DiffusersEpsModel",
    "UNet",
    "UNetConfig",
    "build_unet",
    "convert_diffusers_state_dict",
    "diffusers_key_table",
    "load_diffusers_unet",
    "load_state_dict_checked",
    "load_unet",
    "load_weights",
    "save_unet",
    "save_weights",
    "unet_config_from_diffusers",
]
