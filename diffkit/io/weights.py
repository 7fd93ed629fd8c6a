"""U-Net weight files, safe: safetensors by default, pickles only through ``torch.load(weights_only=True)``.

Also diffusers ``UNet2DModel`` directories (``load_diffusers_unet``), converted through
:mod:`diffkit.unet.diffusers_weights`.
Nothing here unpickles arbitrary classes. A ``.bin``/``.pt``/``.pth`` file is
read with PyTorch's restricted unpickler, which only rebuilds tensors and plain
containers; a file that asks for anything else (a class, ``os.system``, ...)
is refused with ValueError before any of its code runs.

Files diffkit writes are safetensors with the model's config as JSON in the
header metadata (key ``"config"``), written atomically: a temp file in the
same directory, fsync, then ``os.replace`` -- a crash never leaves a torn file
under the final name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from diffkit.io.tensorfile import read_tensors, save_tensors
from diffkit.unet import UNet, UNetConfig, load_state_dict_checked
from diffkit.unet.diffusers_weights import WEIGHT_FILES, convert_diffusers_state_dict, unet_config_from_diffusers

PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
SAFETENSORS_SUFFIX = ".safetensors"
CONFIG_KEY = "config"  # safetensors metadata key holding the config JSON


def save_weights(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], config: dict | None = None) -> None:
    """Atomically write ``state_dict`` (and ``config``, JSON in the metadata) to a ``.safetensors`` file."""
    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        raise ValueError(f"save_weights writes safetensors only; the path must end in {SAFETENSORS_SUFFIX}, got {path}")
    tensors = _plain_tensors(state_dict)
    metadata = {}
    if config is not None:
        if not isinstance(config, dict):
            raise TypeError(
                f"config must be a dict (e.g. dataclasses.asdict(unet.config)); got {type(config).__name__}"
            )
        metadata[CONFIG_KEY] = json.dumps(config, sort_keys=True)
    save_tensors(path, tensors, metadata)


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Read ``(state_dict, config)`` from a weight file; config is None when the file stores none.

    ``.safetensors`` files are read directly (config from their metadata); ``.bin``, ``.pt`` and
    ``.pth`` files go through ``torch.load(weights_only=True)`` and must hold a flat mapping of
    names to tensors (they carry no config).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weight file: {path}")
    if path.suffix == SAFETENSORS_SUFFIX:
        state_dict, metadata = read_tensors(path)
        try:
            config = json.loads(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else None
        except json.JSONDecodeError as err:
            raise ValueError(f"could not read {path} as a safetensors weight file: bad config JSON ({err})") from err
        return state_dict, config
    if path.suffix in PICKLE_SUFFIXES:
        return _load_pickled_tensors(path), None
    raise ValueError(f"unsupported weight file {path}; allowed suffixes: {[SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES]}")


def save_unet(path: str | os.PathLike, unet: UNet) -> None:
    """Save a UNet's weights and config so that ``load_unet(path)`` rebuilds it."""
    save_weights(path, unet.state_dict(), dataclasses.asdict(unet.config))


def load_unet(path: str | os.PathLike) -> UNet:
    """Build the UNet described by the config stored in ``path``, load its weights strictly, return it in eval mode."""
    state_dict, config = load_weights(path)
    if config is None:
        raise ValueError(
            f"{path} stores no UNet config; build the UNet yourself and call load_state_dict_checked(unet, state_dict)"
        )
    try:
        unet_config = UNetConfig.from_dict(config)
    except TypeError as err:
        raise ValueError(f"{path} stores an invalid UNet config: {err}") from err
    return unet_from_state_dict(unet_config, state_dict, source=str(path)).eval()


def unet_from_state_dict(config: UNetConfig, state_dict: Mapping[str, torch.Tensor], *, source: str) -> UNet:
    """The UNet of ``config`` holding ``state_dict``, checked against it before anything is allocated.

    A config read from a file could describe a network of any size (``channels=10**9``). Weights
    must come with the file, so the architecture is bounded by it first: every ResBlock holds
    several tensors, so a config with more blocks than the file has tensors cannot match; then a
    skeleton built on the meta device (no memory) must not have more parameters than the file
    holds values. Only then is the real network built and loaded strictly.
    """
    blocks = len(config.channel_mult) * (2 * config.num_res_blocks + 1)
    if blocks > len(state_dict):
        raise ValueError(f"{source} does not match its config: {blocks} ResBlocks need more tensors than "
                         f"the {len(state_dict)} it holds")
    try:
        with torch.device("meta"):
            skeleton = UNet.from_config(config)
    except (RuntimeError, TypeError, OverflowError) as err:  # sizes beyond int64: "Storage size calculation overflowed"
        raise ValueError(f"{source} does not match its config: a network of those sizes cannot be built "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
    need = sum(v.numel() for v in skeleton.state_dict().values())
    have = sum(v.numel() for v in state_dict.values())
    if need > have:
        raise ValueError(f"{source} does not match its config: the config describes {need:,} parameters, "
                         f"the file holds {have:,} values")
    unet = UNet.from_config(config)
    load_state_dict_checked(unet, state_dict, source=source)
    return unet


def _load_pickled_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"refusing to load {path}: torch.load(weights_only=True) rejected it ({_rejection_reason(err)}); "
            "only tensors/state dicts are allowed. It holds other objects or is corrupt: never unpickle it "
            "unrestricted; convert trusted weights to safetensors instead"
        ) from err
    except Exception as err:  # corrupt files raise anything from torch.load: IndexError, UnicodeDecodeError, ...
        raise ValueError(f"could not read {path} as a PyTorch tensor file ({type(err).__name__}: "
                         f"{' '.join(str(err).split())[:200]})") from err
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path} holds a {type(loaded).__name__}; expected a flat mapping of names to tensors")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"{path} must map names to tensors; entry {key!r} is a {type(value).__name__}")
    return dict(loaded)


def _rejection_reason(err: Exception) -> str:
    """The specific sentence of torch's weights-only error (e.g. "unsupported GLOBAL posix.system ..."),
    without its generic advice to retry with ``weights_only=False`` or to allowlist globals."""
    text = str(err).split("WeightsUnpickler error:", 1)[-1]
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    specific = [p for p in paragraphs if not p.startswith(("Weights only load failed", "Check the documentation"))]
    return specific[-1].split(". ")[0].rstrip(".") if specific else type(err).__name__


def _plain_tensors(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies with no two entries sharing storage (safetensors refuses aliases)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict must map str to torch.Tensor; entry {key!r} is a {type(value).__name__}")
        tensor = value.detach().to("cpu").contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen and tensor.numel():
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[key] = tensor
    return out


def load_diffusers_unet(
    source: str | os.PathLike | Mapping[str, torch.Tensor], config: Mapping[str, Any] | None = None
) -> UNet:
    """A reference UNet (in eval mode) holding diffusers ``UNet2DModel`` weights.

    ``source`` is a diffusers model directory (``config.json`` plus ``diffusion_pytorch_model.safetensors``
    or ``.bin``), a single weight file, or an in-memory state dict; ``config`` (the diffusers config
    dict) is required unless ``source`` is a directory. ``.bin`` files are read with
    ``torch.load(weights_only=True)``: pickles holding anything but tensors are refused.
    """
    if isinstance(source, Mapping):
        state_dict = dict(source)
    else:
        path = Path(source)
        if path.is_dir():
            if config is None:
                config = json.loads((path / "config.json").read_text())
            files = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
            if not files:
                raise ValueError(f"{path} holds none of {list(WEIGHT_FILES)}")
            path = files[0]
        state_dict, _ = load_weights(path)
    if config is None:
        raise ValueError("pass the diffusers config dict (config.json) along with a weight file or state dict")
    cfg = unet_config_from_diffusers(config)
    converted = convert_diffusers_state_dict(state_dict, cfg)
    return unet_from_state_dict(cfg, converted, source="converted diffusers state dict").eval()
