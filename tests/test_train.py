"""diffkit.digits.train and ``diffkit train``: the DDPM and flow objectives, exact resume, safe atomic checkpoints."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open
from torch import nn

from diffkit.cli import main
from diffkit.digits.data import NUM_TRAIN, load_digits
from diffkit.io.pretrained import load_pretrained, save_pretrained
from diffkit.io.tensorfile import safetensors_bytes
from diffkit.schedules import Cosine, FlowMatch, Linear
from diffkit.digits.objectives import get_objective
from diffkit.digits.train import TrainOptions, train
from diffkit.unet import UNet, UNetConfig

NUM_CLASSES = 3
TINY_UNET = UNetConfig(in_channels=1, channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(2,),
                       resolution=4, groups=4, dropout=0.1, num_classes=NUM_CLASSES)  # fmt: skip


class TinyEps(nn.Module):
    """A small eps-model with dropout (so the global random state matters) and a label embedding."""

    def __init__(self, channels: int = 1, hidden: int = 16) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(channels + 1, hidden, 3, padding=1)
        self.label = nn.Embedding(NUM_CLASSES + 1, hidden)
        self.drop = nn.Dropout(0.2)
        self.conv_out = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        time = (t / 1000).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        h = torch.relu(self.conv_in(torch.cat([x, time], 1)))
        if y is not None:
            h = h + self.label(y)[:, :, None, None]
        return self.conv_out(self.drop(h))


class TinyFlow(TinyEps):
    """TinyEps saying it predicts the flow velocity (what the flow objective trains)."""

    prediction_type = "flow"


def tiny_unet(objective: str = "ddpm") -> UNet:
    """The tiny UNet, predicting what ``objective`` trains."""
    return UNet.from_config(dataclasses.replace(TINY_UNET, prediction_type=get_objective(objective).prediction_type))


OBJECTIVE_SETUPS = {  # objective -> (tiny model class, schedule)
    "ddpm": (TinyEps, Linear()),
    "flow": (TinyFlow, FlowMatch()),
    "flow_uniform": (TinyFlow, FlowMatch()),
}


def toy_data(n: int = 32, size: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand((n, 1, size, size), generator=gen) * 2 - 1, torch.randint(NUM_CLASSES, (n,), generator=gen)


def fresh(model_cls=TinyEps, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return model_cls()


OPTIONS = TrainOptions(batch_size=8, lr=1e-2, warmup_steps=3, ema_decay=0.9, grad_clip=0.5, label_dropout=0.3,
                       null_label=NUM_CLASSES, seed=7)  # fmt: skip


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("unet", [False, True], ids=["tiny", "unet"])
@pytest.mark.parametrize("objective", ["ddpm", "flow"])
@pytest.mark.parametrize("stop_at", [1, 4])
def test_resume_is_bit_exact(tmp_path, unet, objective, stop_at):
    images, labels = toy_data()
    tiny, schedule = OBJECTIVE_SETUPS[objective]
    make_model = (lambda: tiny_unet(objective)) if unet else tiny
    options = dataclasses.replace(OPTIONS, objective=objective)
    steps = 7
    straight = train(fresh(make_model), images, labels, schedule, steps, options)
    ckpt = tmp_path / "ckpt.safetensors"
    train(fresh(make_model), images, labels, schedule, stop_at, options, checkpoint_path=ckpt)
    # A different initialisation: everything must come from the checkpoint.
    resumed = train(fresh(make_model, seed=99), images, labels, schedule, steps, options,
                    checkpoint_path=ckpt, resume=True)  # fmt: skip
    assert resumed.step == steps and len(resumed.losses) == steps - stop_at
    assert resumed.losses == straight.losses[stop_at:]
    assert_same_weights(resumed.model, straight.model)
    assert_same_weights(resumed.ema, straight.ema)


def test_resume_from_a_periodic_checkpoint(tmp_path):
    images, labels = toy_data()
    ckpt = tmp_path / "ckpt.safetensors"
    straight = train(fresh(), images, labels, Linear(), 6, OPTIONS, checkpoint_path=ckpt, checkpoint_every=2)
    with safe_open(str(ckpt), "pt") as f:
        assert f.metadata()["step"] == "6"
    # Rewind: train 4 steps with checkpoints every 2 (last write at step 4), then resume to 6.
    train(fresh(), images, labels, Linear(), 4, OPTIONS, checkpoint_path=ckpt, checkpoint_every=2)
    resumed = train(fresh(), images, labels, Linear(), 6, OPTIONS, checkpoint_path=ckpt, resume=True)
    assert_same_weights(resumed.model, straight.model)


def test_training_leaves_the_global_random_state_alone():
    images, labels = toy_data()
    before = torch.get_rng_state()
    train(fresh(), images, labels, Linear(), 2, OPTIONS)
    assert torch.equal(torch.get_rng_state(), before)


def test_training_reduces_the_loss():
    images, labels = toy_data(n=64)
    options = TrainOptions(batch_size=32, lr=3e-3, seed=0)
    result = train(fresh(), images, labels, Linear(), 150, options)
    first, last = sum(result.losses[:20]) / 20, sum(result.losses[-20:]) / 20
    assert last < 0.8 * first  # the untrained conv predicts eps at loss ~1; 150 steps learn a good part of it


def test_unconditional_training_passes_no_labels():
    seen = []

    class Recorder(TinyEps):
        def forward(self, x, t, y=None):
            seen.append(y)
            return super().forward(x, t, y)

    images, _ = toy_data()
    train(fresh(Recorder), images, None, Linear(), 2, TrainOptions(batch_size=4))
    assert seen == [None, None]


def test_label_dropout_uses_the_null_label():
    seen = []

    class Recorder(TinyEps):
        def forward(self, x, t, y=None):
            seen.append(y.clone())
            return super().forward(x, t, y)

    images, labels = toy_data(n=256)
    options = TrainOptions(batch_size=256, label_dropout=0.5, null_label=NUM_CLASSES)
    train(fresh(Recorder), images, labels, Linear(), 1, options)
    null_fraction = (seen[0] == NUM_CLASSES).float().mean().item()
    assert 0.35 < null_fraction < 0.65  # Binomial(256, 0.5): 0.5 +- 4.7 standard deviations


def test_checkpoint_is_safetensors_with_everything_needed(tmp_path):
    images, labels = toy_data()
    ckpt = tmp_path / "ckpt.safetensors"
    train(UNet.from_config(TINY_UNET), images, labels, Cosine(), 2, OPTIONS, checkpoint_path=ckpt)
    with safe_open(str(ckpt), "pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert {"rng.torch", "rng.data"} <= keys
    assert any(k.startswith("optim.") and k.endswith("exp_avg_sq") for k in keys)
    assert any(k.startswith("ema.") for k in keys) and any(k.startswith("model.") for k in keys)
    assert meta["kind"] == "train_checkpoint" and meta["step"] == "2"
    assert json.loads(meta["schedule"])["name"] == "Cosine"
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write cleaned up its temp file
    # The checkpoint doubles as a pretrained file (its EMA weights, with the schedule it was trained on).
    model, schedule = load_pretrained(ckpt)
    assert schedule == Cosine() and model.config == TINY_UNET


def test_resume_refuses_changed_options_and_missing_files(tmp_path):
    images, labels = toy_data()
    ckpt = tmp_path / "ckpt.safetensors"
    with pytest.raises(FileNotFoundError):
        train(fresh(), images, labels, Linear(), 2, OPTIONS, checkpoint_path=ckpt, resume=True)
    train(fresh(), images, labels, Linear(), 2, OPTIONS, checkpoint_path=ckpt)
    changed = TrainOptions(**{**OPTIONS.__dict__, "batch_size": 4})
    with pytest.raises(ValueError, match="options differ"):
        train(fresh(), images, labels, Linear(), 4, changed, checkpoint_path=ckpt, resume=True)
    with pytest.raises(ValueError, match="schedule"):
        train(fresh(), images, labels, Cosine(), 4, OPTIONS, checkpoint_path=ckpt, resume=True)
    with pytest.raises(ValueError, match="past steps"):
        train(fresh(), images, labels, Linear(), 1, OPTIONS, checkpoint_path=ckpt, resume=True)


@pytest.mark.parametrize(
    "bad", [dict(batch_size=0), dict(lr=0.0), dict(ema_decay=1.0), dict(label_dropout=0.1), dict(grad_clip=-1.0)]
)
def test_invalid_options_are_rejected(bad):
    with pytest.raises(ValueError):
        TrainOptions(**bad)


def test_pretrained_round_trip(tmp_path):
    model = UNet.from_config(TINY_UNET)
    save_pretrained(tmp_path / "w.safetensors", model, Cosine(num_train_timesteps=500))
    loaded, schedule = load_pretrained(tmp_path / "w.safetensors")
    assert schedule == Cosine(num_train_timesteps=500)
    assert_same_weights(loaded, model)


def test_safetensors_writer_is_deterministic_and_readable():
    import safetensors.torch

    gen = torch.Generator().manual_seed(0)
    tensors = {"w": torch.randn((3, 5), generator=gen), "step": torch.tensor(4.0), "ids": torch.arange(7),
               "half": torch.randn(4, generator=gen).bfloat16(), "empty": torch.zeros(0, 2),
               "mask": torch.tensor([True])}  # fmt: skip
    metadata = {"b": "2", "a": "1", "config": json.dumps({"x": [1, 2]})}
    payload = safetensors_bytes(tensors, metadata)
    # Same bytes whatever the insertion order (safetensors' own writer orders metadata by hash).
    assert payload == safetensors_bytes(dict(reversed(tensors.items())), dict(reversed(metadata.items())))
    loaded = safetensors.torch.load(payload)
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    header_len = int.from_bytes(payload[:8], "little")
    assert header_len % 8 == 0 and json.loads(payload[8 : 8 + header_len])["__metadata__"] == metadata


def test_digits_split_is_fixed_and_disjoint():
    train_split, heldout = load_digits("train"), load_digits("heldout")
    assert len(train_split) == NUM_TRAIN and len(heldout) == 1797 - NUM_TRAIN
    assert train_split.images.shape == (NUM_TRAIN, 1, 8, 8)
    assert train_split.images.min() == -1 and train_split.images.max() == 1
    flat = {tuple(x.flatten().tolist()) for x in heldout.images}
    overlap = sum(tuple(x.flatten().tolist()) in flat for x in train_split.images)
    assert overlap < 10  # a few digits are pixel-identical duplicates in load_digits itself; indices are disjoint
    assert torch.equal(load_digits("train").labels, train_split.labels)  # deterministic


def test_cli_train_then_resume(tmp_path, capsys):
    out, ckpt = tmp_path / "digits.safetensors", tmp_path / "ckpt.safetensors"
    args = ["train", "--steps", "2", "--batch-size", "4", "--out", str(out), "--checkpoint", str(ckpt),
            "--threads", "1"]
    assert main(args) == 0
    assert main([*args[:2], "3", *args[3:], "--resume"]) == 0
    model, schedule = load_pretrained(out)
    assert schedule == Linear() and model.config.num_classes == 10
    assert main(["train", "--steps", "1", "--out", str(tmp_path / "x.pt")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err
