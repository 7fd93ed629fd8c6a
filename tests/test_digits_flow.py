"""The rectified-flow digits model: the flow objective, model files that say what they predict, the embedded
"digits-flow" model from the CLI with every sampler, and the digits benchmark over both embedded models."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from diffkit.cli import main
from diffkit.digits.objectives import OBJECTIVES, Objective, get_objective
from diffkit.digits.pretrained import EMBEDDED_MODELS, embedded_model, load_embedded
from diffkit.digits.train import TrainOptions, train
from diffkit.io.pretrained import load_pretrained, save_pretrained
from diffkit.io.tensorfile import read_tensors, save_tensors
from diffkit.models import from_prediction
from diffkit.models.wrappers import ClassifierFreeGuidance
from diffkit.samplers import SAMPLERS, sample
from diffkit.schedules import FlowMatch, Linear
from diffkit.unet import UNet, UNetConfig

TINY = UNetConfig(in_channels=1, channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                  resolution=8, groups=4, dropout=0.0, num_classes=10)  # fmt: skip


def tiny_unet(prediction_type: str = "flow", seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet.from_config(dataclasses.replace(TINY, prediction_type=prediction_type))


def batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return torch.rand((n, 1, 8, 8), generator=gen) * 2 - 1, torch.randint(10, (n,), generator=gen)


# -- the objective ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["flow", "flow_uniform"])
def test_flow_objective_is_rectified_flow(name):
    x0, _ = batch()
    x_t, t, target = get_objective(name).draw(FlowMatch(), x0, torch.Generator().manual_seed(5))
    # Replay the generator: sigma first (logit-normal or uniform), then eps.
    gen = torch.Generator().manual_seed(5)
    sigma = torch.sigmoid(torch.randn(16, generator=gen)) if name == "flow" else torch.rand(16, generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    s = sigma.view(-1, 1, 1, 1)
    torch.testing.assert_close(t, 1000 * sigma)  # the model time t = sigma T
    torch.testing.assert_close(x_t, (1 - s) * x0 + s * eps)  # float32 rounding of the two forms only
    assert torch.equal(target, eps - x0)  # the velocity dx_t/dsigma


def test_ddpm_objective_draws_what_the_shipped_model_was_trained_with():
    # The order of draws (t, then eps) is what makes scripts/train_digits.sh reproduce its file bit for bit.
    x0, _ = batch()
    x_t, t, target = get_objective("ddpm").draw(Linear(), x0, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    t_ref = torch.randint(1000, (16,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    assert torch.equal(t, t_ref) and torch.equal(target, eps)
    assert torch.equal(x_t, Linear().add_noise(x0, eps, t_ref))


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_a_gradient_step_lowers_the_loss_on_a_fixed_batch(name):
    objective = get_objective(name)
    schedule = Linear() if objective.time == "discrete" else FlowMatch()
    model = tiny_unet(objective.prediction_type)
    x0, y = batch(32)
    x_t, t, target = objective.draw(schedule, x0, torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = F.mse_loss(model(x_t, t, y=y), target)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = F.mse_loss(model(x_t, t, y=y), target)
    assert after < before


def test_objectives_are_checked():
    with pytest.raises(ValueError, match="allowed: ddpm, flow, flow_uniform"):
        TrainOptions(objective="score")
    with pytest.raises(ValueError, match="unknown time density"):
        Objective("flow", "beta")
    x0, y = batch(4)
    # The model must say it predicts the objective's target: its file will.
    with pytest.raises(ValueError, match="prediction_type='flow'"):
        train(tiny_unet("epsilon"), x0, y, FlowMatch(), 1, TrainOptions(batch_size=2, objective="flow"))


def test_checkpoints_from_before_objectives_resume_as_ddpm(tmp_path):
    x0, y = batch(8)
    options = TrainOptions(batch_size=4)
    ckpt = tmp_path / "ckpt.safetensors"
    train(tiny_unet("epsilon"), x0, y, Linear(), 1, options, checkpoint_path=ckpt)
    tensors, metadata = read_tensors(ckpt)
    old = json.loads(metadata["options"])
    del old["objective"]
    save_tensors(ckpt, tensors, {**metadata, "options": json.dumps(old)})
    assert train(tiny_unet("epsilon"), x0, y, Linear(), 2, options, checkpoint_path=ckpt, resume=True).step == 2


def test_cli_trains_a_flow_model(tmp_path):
    out = tmp_path / "flow.safetensors"
    assert main(["train", "--objective", "flow", "--steps", "1", "--batch-size", "4", "--out", str(out),
                 "--threads", "1"]) == 0
    model, schedule = load_pretrained(out)
    assert model.prediction_type == "flow" and schedule == FlowMatch()


# -- model files say what they predict ---------------------------------------------------------------


def test_model_file_round_trip_keeps_the_prediction_type(tmp_path):
    model = tiny_unet("flow")
    save_pretrained(tmp_path / "f.safetensors", model, FlowMatch())
    loaded, schedule = load_pretrained(tmp_path / "f.safetensors")
    assert loaded.prediction_type == "flow" and loaded.config == model.config and schedule == FlowMatch()
    assert ClassifierFreeGuidance(loaded, 2.0, {"y": 10}).prediction_type == "flow"
    # A file from before the field (its config JSON has no prediction_type) is an eps model.
    tensors, metadata = read_tensors(tmp_path / "f.safetensors")
    config = json.loads(metadata["config"])
    del config["prediction_type"]
    save_tensors(tmp_path / "old.safetensors", tensors, {**metadata, "config": json.dumps(config)})
    assert load_pretrained(tmp_path / "old.safetensors")[0].prediction_type == "epsilon"
    save_tensors(tmp_path / "bad.safetensors", tensors,
                 {**metadata, "config": json.dumps({**config, "prediction_type": "x"})})
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        load_pretrained(tmp_path / "bad.safetensors")


def test_samplers_read_the_unets_prediction_type():
    model = tiny_unet("flow", seed=1)
    y = torch.arange(3)

    def draw(m, schedule):
        return sample(m, schedule, "dpmpp_2m", 4, shape=(3, 1, 8, 8), generator=torch.Generator().manual_seed(0),
                      cond={"y": y})

    plain = lambda x, t, **cond: model(x, t, **cond)  # noqa: E731  (no prediction_type attribute: read as eps)
    with torch.no_grad():
        assert torch.equal(draw(model, FlowMatch()), draw(from_prediction(plain, "flow", FlowMatch()), FlowMatch()))
        assert not torch.equal(draw(model, Linear()), draw(plain, Linear()))


# -- the embedded models by name, from the CLI ---------------------------------------------------------


def test_embedded_models_by_name():
    assert set(EMBEDDED_MODELS) == {"digits", "digits-flow"}
    assert embedded_model("digits").path.name == "digits.safetensors"
    with pytest.raises(ValueError, match="allowed: digits, digits-flow"):
        embedded_model("cifar")


def test_embedded_flow_model_loads_as_a_flow_model():
    model, schedule = load_embedded("digits-flow")
    assert model.prediction_type == "flow" and isinstance(schedule, FlowMatch)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_cli_samples_the_flow_model_with_every_sampler(tmp_path, capsys, sampler):
    out = tmp_path / "flow.png"
    assert main(["sample", "--model", "digits-flow", "--sampler", sampler, "--n", "2", "--steps", "3",
                 "--guidance", "1", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "(shifted spacing)" in capsys.readouterr().out  # the flow schedule's own grid, not the sampler's default


def test_cli_model_and_checkpoint_are_exclusive(tmp_path, capsys):
    path = tmp_path / "t.safetensors"
    save_pretrained(path, tiny_unet("epsilon"), Linear())
    assert main(["sample", "--model", "digits", "--checkpoint", str(path), "--out", str(tmp_path / "x.png")]) == 2
    assert "not both" in capsys.readouterr().err
    # A spacing the checkpoint's schedule lacks is a one-line error naming the ones it has.
    assert main(["sample", "--checkpoint", str(path), "--spacing", "shifted", "--out", str(tmp_path / "x.png")]) == 2
    assert "unknown spacing 'shifted'; allowed: leading" in capsys.readouterr().err


def test_embedded_flow_model_draws_recognisable_digits():
    from diffkit.digits.evaluate import evaluate_sampler, real_fd_floor

    model, schedule = load_embedded("digits-flow")
    result = evaluate_sampler(model, schedule, sampler="euler", steps=10, n=100, guidance=1.0, seed=0)
    # Chance is 10%; benchmarks/results/digits_quality.md has the 1,000-sample numbers at every budget.
    assert result["accuracy"] >= 0.9
    assert result["fd"] < 2 * real_fd_floor(100)


# -- the digits benchmark covers both models -----------------------------------------------------------


def test_digits_benchmark_measures_both_models_side_by_side():
    from diffkit.bench import digits, report

    opts = SimpleNamespace(digits={"samples": 20, "nfes": (5,), "reference_steps": 4, "samplers": ("heun",)},
                           samplers=(), seed=0)
    out: dict = {}
    for _, _, work in digits.tasks(opts, out):
        work()
    sec = out["digits"]
    assert [(r["model"], r["spacing"], r["steps"], r["nfe"]) for r in sec["rows"]] == [
        ("digits", "karras", 3, 5), ("digits-flow", "shifted", 3, 5)]  # heun: 2 evaluations per step but the last
    assert sec["models"]["digits-flow"]["prediction_type"] == "flow"
    assert sec["references"]["digits-flow"]["spacing"] == "shifted"
    assert "digits-flow reference" in report.digits_table(out)

    quality = digits.quality_report(n=20, nfes=(5,), samplers=("ddim",), guidance=(1.0,))
    assert [(r["model"], r["spacing"]) for r in quality["samplers"]] == [("digits", "karras"),
                                                                          ("digits-flow", "shifted")]
    text = digits.quality_markdown(quality)
    assert "| sampler | digits 5 | digits-flow 5 |" in text and "| ddim |" in text
