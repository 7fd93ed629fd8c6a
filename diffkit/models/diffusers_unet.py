"""A diffusers U-Net as a diffkit model, text (cross-attention) conditioning passed through ``cond``.

    model = DiffusersUNet(unet)                 # a UNet2DConditionModel or UNet2DModel instance (duck-typed)
    x0 = diffkit.sample(model, schedule, "dpmpp_2m", 20, shape=..., cond={"encoder_hidden_states": prompt_embeds})

Each call is ``unet(x, t, encoder_hidden_states=..., class_labels=..., added_cond_kwargs={...},
return_dict=False)[0]``: ``encoder_hidden_states`` (text embeddings [B, L, D], which the
cross-attention layers attend to) and ``class_labels`` go to the U-Net by name, and any
other cond key (SDXL's ``text_embeds``, ``time_ids``) into ``added_cond_kwargs``. Every
condition stays a top-level tensor [B, ...], which is what lets
:class:`~diffkit.models.ClassifierFreeGuidance` batch the conditional and the null
branch in one call. diffusers is not imported: any module with that call works.
"""

from __future__ import annotations

from typing import Any

import torch

from diffkit.models.prediction import Model, Predictor

NAMED_INPUTS = ("encoder_hidden_states", "class_labels")  # cond keys the U-Net takes as its own arguments


class DiffusersUNet(Predictor):
    """``unet`` called as a diffkit model (module docstring); ``prediction_type`` is what its output is."""

    def __init__(self, unet: Model, prediction_type: str = "epsilon") -> None:
        super().__init__(unet, prediction_type)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **cond: Any) -> torch.Tensor:
        kwargs = {key: cond.pop(key) for key in NAMED_INPUTS if key in cond}
        if cond:
            kwargs["added_cond_kwargs"] = cond
        return self.model(x, t, **kwargs, return_dict=False)[0]
