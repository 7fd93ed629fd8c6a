"""Latent diffusion (Rombach et al. 2022): a model on latents and the VAE that decodes them.

    model = LatentDiffusion(DiffusersUNet(unet), vae)    # vae: e.g. a diffusers AutoencoderKL (duck-typed)
    z = diffkit.sample(model, schedule, "dpmpp_2m", 20, shape=model.latent_shape(1, 512, 512), cond=...)
    images = model.decode(z)                             # in [-1, 1]

The wrapper is the model it wraps (calls and ``prediction_type`` pass through) plus the
VAE's side. Latents are trained scaled, z = scaling_factor (E(x) - shift_factor), so

    decode(z) = D(z / scaling_factor + shift_factor)

as diffusers' pipelines decode them. The factors and the latent geometry come from
``vae.config`` (``scaling_factor``, ``shift_factor``, ``latent_channels``, the VAE's
2^(levels - 1) downsampling) unless given; shift_factor is 0 for SD 1.x/2.x and SDXL.
"""

from __future__ import annotations

from typing import Any

import torch

from diffkit.models.prediction import Model


def _config(vae: Any, key: str) -> Any:
    return getattr(getattr(vae, "config", None), key, None)


class LatentDiffusion:
    """A model on latents (any diffkit model) and the VAE that decodes its samples."""

    def __init__(
        self,
        model: Model,  # the diffkit model on latents, e.g. DiffusersUNet(unet), possibly guided
        vae: Any,  # has decode(z) -> tensor, or an object with .sample (diffusers' DecoderOutput)
        scaling_factor: float | None = None,  # latents = scaling_factor * (E(x) - shift); default vae.config's
        shift_factor: float | None = None,  # default vae.config's, else 0
        latent_channels: int | None = None,  # for latent_shape; default vae.config's
        downscale: int | None = None,  # image size / latent size; default 2^(len(vae.config.block_out_channels) - 1)
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable as model(x, t, **cond), got {type(model).__name__}")
        if not callable(getattr(vae, "decode", None)):
            raise TypeError(f"vae must have a decode(latents) method, got {type(vae).__name__}")
        scaling_factor = _config(vae, "scaling_factor") if scaling_factor is None else scaling_factor
        if not isinstance(scaling_factor, (int, float)) or isinstance(scaling_factor, bool) or scaling_factor <= 0:
            raise ValueError("scaling_factor must be a number > 0 (none in vae.config: pass it), "
                             f"got {scaling_factor!r}")
        levels = _config(vae, "block_out_channels")
        self.model, self.vae, self.scaling_factor = model, vae, float(scaling_factor)
        self.shift_factor = float(shift_factor if shift_factor is not None else _config(vae, "shift_factor") or 0.0)
        self.latent_channels = latent_channels if latent_channels is not None else _config(vae, "latent_channels")
        self.downscale = downscale if downscale is not None else (2 ** (len(levels) - 1) if levels else None)

    @property
    def prediction_type(self) -> str:
        return getattr(self.model, "prediction_type", "epsilon")

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        return self.model(x, t, **cond)

    def latent_shape(self, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
        """The latents' shape [B, C, H / downscale, W / downscale] for images of ``height`` x ``width``."""
        if self.latent_channels is None or self.downscale is None:
            raise ValueError("latent_shape needs latent_channels and downscale (not in vae.config: pass them)")
        if height % self.downscale or width % self.downscale:
            raise ValueError(f"height and width must be multiples of {self.downscale}, got {height} x {width}")
        return (batch, self.latent_channels, height // self.downscale, width // self.downscale)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Images D(z / scaling_factor + shift_factor), in the VAE's range ([-1, 1] for Stable Diffusion's)."""
        z = latents / self.scaling_factor
        if self.shift_factor:
            z = z + self.shift_factor
        out = self.vae.decode(z.to(getattr(self.vae, "dtype", z.dtype)))
        return out if isinstance(out, torch.Tensor) else out.sample
