"""Editing with any sampler and schedule family: image-to-image, inpainting, inversion.

img2img      noise the input to a level (``strength``), then sample from there (SDEdit)
inpaint      sample the unknown region given the known one: replacement, RePaint's resampling
invert       the deterministic ODE run backwards, from data to the noise that samples it

Each one calls registered sampler functions over explicit timesteps or a
:class:`~diffkit.samplers.Grid` (partial runs, runs upwards), so it works with every
sampler that can take the grid, every schedule family and every prediction type.
"""

from diffkit.editing.img2img import img2img, noise_fraction, start_time
from diffkit.editing.inpaint import ReplaceKnown, check_mask, inpaint, renoise
from diffkit.editing.invert import invert

__all__ = ["ReplaceKnown", "check_mask", "img2img", "inpaint", "invert", "noise_fraction", "renoise", "start_time"]
