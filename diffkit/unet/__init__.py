"""The reference DDPM U-Net, its presets and the diffusers weight mapping (files: :mod:`diffkit.io.weights`).

UNet, UNetConfig                  the model ``eps = unet(x, t, y=None)`` and its frozen config
PRESETS, build_unet(name)         "ddpm_cifar10" (35.7M, Ho et al.), "digits_small" (8x8x1, 10 classes)
load_state_dict_checked           a strict load with one error naming every mismatched key
convert_diffusers_state_dict      diffusers UNet2DModel state dict -> UNet keys (explicit key table)
DiffusersEpsModel                 any diffusers UNet2DModel as a diffkit eps-model
"""

from diffkit._deprecated import moved_attribute
from diffkit.unet.adapter import PREDICTION_TYPES, DiffusersEpsModel
from diffkit.unet.config import UNetConfig
from diffkit.unet.diffusers_weights import convert_diffusers_state_dict, diffusers_key_table, unet_config_from_diffusers
from diffkit.unet.model import UNet
from diffkit.unet.presets import PRESETS, build_unet
from diffkit.unet.state_dict import load_state_dict_checked

__all__ = [
    "PREDICTION_TYPES",
    "PRESETS",
    "DiffusersEpsModel",
    "UNet",
    "UNetConfig",
    "build_unet",
    "convert_diffusers_state_dict",
    "diffusers_key_table",
    "load_state_dict_checked",
    "unet_config_from_diffusers",
]


def __getattr__(name: str) -> object:
    # 0.1's file functions (load_unet, save_weights, ...) now live in diffkit.io.weights.
    return moved_attribute(__name__, name)
