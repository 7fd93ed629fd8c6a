"""Weight files: safetensors round trips, atomic writes, and pickles that must never run code."""

from __future__ import annotations

import dataclasses
import os
import pickle
import shlex

import pytest
import torch

import diffkit.io.weights as checkpoint
from diffkit.io.weights import load_diffusers_unet, load_unet, load_weights, save_unet, save_weights
from diffkit.unet import UNet

TINY = dict(in_channels=1, channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
            resolution=8, groups=4, num_classes=3)  # fmt: skip


class MarkerPayload:
    """A pickle that, when unpickled by an unrestricted loader, runs a shell command creating ``marker``."""

    def __init__(self, marker: os.PathLike) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def tiny_unet() -> UNet:
    torch.manual_seed(0)
    model = UNet(**TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model.eval()


def test_the_payload_is_live_under_plain_pickle(tmp_path):
    # Guards the tests below: they would pass vacuously if the payload could not run at all.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(MarkerPayload(marker)))
    assert marker.exists()


def write_malicious(path, marker, fmt: str) -> None:
    payload = {"evil": MarkerPayload(marker), "weight": torch.zeros(2)}
    if fmt == "torch.save":  # zip container, like every .pt/.bin written by torch >= 1.6
        torch.save(payload, path)
    else:  # a bare pickle stream at torch's pickle protocol, as in its legacy format
        path.write_bytes(pickle.dumps(payload, protocol=2))


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth"])
@pytest.mark.parametrize("fmt", ["torch.save", "raw pickle"])
def test_malicious_pickles_are_refused_without_running(tmp_path, suffix, fmt):
    path, marker = tmp_path / f"weights{suffix}", tmp_path / "pwned"
    write_malicious(path, marker, fmt)
    with pytest.raises(ValueError, match=r"refusing to load .*weights.*system.*only tensors/state dicts are allowed"):
        load_weights(path)
    assert not marker.exists()


def test_malicious_diffusers_directory_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    write_malicious(tmp_path / "diffusion_pytorch_model.bin", marker, "torch.save")
    (tmp_path / "config.json").write_text('{"sample_size": 8}')
    with pytest.raises(ValueError, match="diffusion_pytorch_model.bin"):
        load_diffusers_unet(tmp_path)
    assert not marker.exists()


def test_plain_state_dict_pickles_load(tmp_path):
    model = tiny_unet()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    state, config = load_weights(tmp_path / "w.pt")
    assert config is None
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("content", [torch.zeros(3), {"w": torch.zeros(1), "step": 3}], ids=["tensor", "non-tensor"])
def test_pickles_that_are_not_state_dicts_are_refused(tmp_path, content):
    torch.save(content, tmp_path / "w.pt")
    with pytest.raises(ValueError, match="w.pt"):
        load_weights(tmp_path / "w.pt")


@pytest.mark.parametrize("name", ["w.pt", "w.safetensors"])
def test_corrupt_files_are_refused(tmp_path, name):
    (tmp_path / name).write_bytes(b"not a weight file at all")
    with pytest.raises(ValueError, match=f"(could not read|refusing to load) .*{name}"):
        load_weights(tmp_path / name)


def test_missing_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_weights(tmp_path / "nope.pt")


def test_unknown_suffixes_are_refused(tmp_path):
    (tmp_path / "w.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"allowed suffixes.*\.safetensors"):
        load_weights(tmp_path / "w.ckpt")


def test_save_unet_load_unet_round_trip(tmp_path):
    model = tiny_unet()
    save_unet(tmp_path / "m.safetensors", model)
    restored = load_unet(tmp_path / "m.safetensors")
    assert restored.config == model.config and not restored.training
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([3.5, 900.0]), torch.tensor([1, 3])
    with torch.no_grad():
        assert torch.equal(restored(x, t, y), model(x, t, y))
    state, config = load_weights(tmp_path / "m.safetensors")
    assert config == {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()}


def test_save_weights_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "new_dir" / "m.safetensors"  # missing directories are created
    save_weights(path, {"a": torch.ones(2)}, {"version": 1})
    save_weights(path, {"a": torch.full((2,), 2.0)}, {"version": 2})  # overwriting is fine
    assert os.listdir(path.parent) == ["m.safetensors"]  # no temp files left behind

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_weights(path, {"a": torch.full((2,), 3.0)}, {"version": 3})
    monkeypatch.undo()
    state, config = load_weights(path)
    assert config == {"version": 2} and torch.equal(state["a"], torch.full((2,), 2.0))
    assert os.listdir(path.parent) == ["m.safetensors"]


def test_save_weights_handles_shared_and_strided_tensors(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    save_weights(tmp_path / "w.safetensors", {"a": base, "tied": base, "t": base.T})
    state, config = load_weights(tmp_path / "w.safetensors")
    assert config is None
    assert torch.equal(state["tied"], base) and torch.equal(state["t"], base.T)


def test_save_weights_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=".safetensors"):
        save_weights(tmp_path / "w.pt", {"a": torch.ones(1)})
    with pytest.raises(TypeError, match="torch.Tensor"):
        save_weights(tmp_path / "w.safetensors", {"a": 1.0})
    with pytest.raises(TypeError, match="config must be a dict"):
        save_weights(tmp_path / "w.safetensors", {"a": torch.ones(1)}, config=[1, 2])


def test_load_unet_names_what_does_not_match(tmp_path):
    model = tiny_unet()
    state = dict(model.state_dict())
    del state["mid.attn.to_k.bias"]
    state["mid.attn.extra"] = torch.zeros(1)
    state["conv_out.weight"] = torch.zeros(2, 16, 3, 3)
    save_weights(tmp_path / "m.safetensors", state, dataclasses.asdict(model.config))
    with pytest.raises(ValueError) as info:
        load_unet(tmp_path / "m.safetensors")
    message = str(info.value)
    assert "missing keys" in message and "mid.attn.to_k.bias" in message
    assert "unexpected keys" in message and "mid.attn.extra" in message
    assert "shape mismatches" in message and "conv_out.weight" in message


def test_load_unet_needs_a_stored_config(tmp_path):
    save_weights(tmp_path / "m.safetensors", tiny_unet().state_dict())
    with pytest.raises(ValueError, match="stores no UNet config"):
        load_unet(tmp_path / "m.safetensors")
