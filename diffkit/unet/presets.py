"""Named U-Net configurations; ``build_unet(name)`` builds one, freshly initialised.

``ddpm_cifar10``
    Ho et al. 2020's CIFAR-10 model (Appendix B): 32x32x3 images, ch 128, multipliers (1, 2, 2, 2),
    2 ResBlocks per level, attention at 16x16, dropout 0.1, 35,746,307 parameters (the paper's
    "35.7M"; equal to diffusers' google/ddpm-cifar10-32 UNet2DModel, which ``diffusers_weights``
    converts into this layout).

``digits_small``
    A class-conditional model for scikit-learn's 8x8 digits (``sklearn.datasets.load_digits``),
    kept at their native 8x8x1 resolution: levels 8x8 -> 4x4 -> 2x2, attention at 4x4, ch 32,
    GroupNorm with 8 groups (32 would leave one channel per group at ch 32), 10 classes plus the
    NULL label 10 for classifier-free guidance, 1,624,577 parameters. Pixels (integers 0..16)
    are meant to be scaled to [-1, 1] as ``x / 8 - 1``.
"""

from __future__ import annotations

from diffkit.unet.config import UNetConfig
from diffkit.unet.model import UNet

PRESETS: dict[str, UNetConfig] = {
    "ddpm_cifar10": UNetConfig(
        in_channels=3,
        channels=128,
        channel_mult=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(16,),
        resolution=32,
        dropout=0.1,
    ),
    "digits_small": UNetConfig(
        in_channels=1,
        channels=32,
        channel_mult=(1, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(4,),
        resolution=8,
        dropout=0.1,
        num_classes=10,
        groups=8,
    ),
}


def build_unet(name: str) -> UNet:
    """A freshly initialised UNet of the preset ``name``; ValueError listing the presets otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown UNet preset {name!r}; allowed: {sorted(PRESETS)}")
    return UNet.from_config(PRESETS[name])
