"""Loading a state dict into a module strictly, with one error that names every mismatch."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

_LISTED = 5  # how many offending keys an error message names


def load_state_dict_checked(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str = "state dict"
) -> None:
    """``module.load_state_dict(strict=True)`` with one ValueError naming missing/unexpected/misshapen keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshapen = [
        f"{k}: {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = [
        f"{len(keys)} {what} (e.g. {keys[:_LISTED]})"
        for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", misshapen))
        if keys
    ]
    if problems:
        raise ValueError(f"{source} does not match {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=True)
