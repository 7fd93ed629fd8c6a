"""The GPU benchmarks (diffkit.bench.kernels, diffkit.bench.end_to_end) measure on a GPU only; here their code runs.

Tiny CPU tensors under the Triton interpreter, every case called once by a stand-in
timer, so that a session lent a GPU does not find benchmarks/bench_kernels.py and
bench_end_to_end.py broken. Nothing is timed: the checks are on what the benchmarks
derive (bytes moved, errors, agreement of the eager and fused runs) and on their
tables. Only the CUDA-graph capture is left to the GPU.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_kernels_backend import DEVICE, count_launches, kernels_run  # noqa: F401  (the fixture below)

from diffkit.bench import end_to_end as e2e
from diffkit.bench import kernels as bk
from diffkit.schedules import Linear
from diffkit.unet import UNet, UNetConfig

pytestmark = [
    pytest.mark.usefixtures("kernels_run"),
    pytest.mark.skipif(DEVICE != "cpu", reason="on a GPU, run the script itself"),
]


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(bk, "DEVICE", "cpu")
    monkeypatch.setattr(bk, "time_us", lambda fn: (fn(), 1.0)[1])  # each case runs once; "1 us" is a stand-in
    monkeypatch.setattr(bk, "fresh_compile", lambda fn: fn)  # inductor's C++ build takes minutes on 2 cores
    monkeypatch.setattr(bk, "STEP_SHAPES", [(1, 3, 5, 7)])
    monkeypatch.setattr(bk, "ATTENTION_CASES", [(1, 1, 32)])
    monkeypatch.setattr(bk, "ATTENTION_LENGTHS", [17])
    monkeypatch.setattr(bk, "GROUPNORM_CASES", [((1, 4, 3, 5), 2)])


def test_every_section_runs_and_tabulates(tiny):
    result = {
        "machine": {"gpu": "stand-in", "torch": torch.__version__, "date_utc": "-"}, "triton": "-",
        "peak_tb_s": 3.35, "peak_tflops": 989.0,
        "step_update": bk.bench_step_update(False, 3.35),
        "attention": bk.bench_attention(False, 989.0),
        "groupnorm_silu": bk.bench_groupnorm_silu(False, 3.35),
    }
    steps = {r["pattern"]: r for r in result["step_update"]}
    assert list(steps) == [name for name, _ in bk.STEP_PATTERNS]
    n = math.prod(bk.STEP_SHAPES[0])
    # Bytes each update must move: every term read once (fp32 4 B, fp16 2 B), x_next written (fp32).
    assert steps["ddim (x, eps)"]["bytes"] == n * (4 + 2 + 4)
    assert steps["dpmpp_2m (x, eps, x_prev, eps_prev)"]["bytes"] == n * (4 + 2 + 4 + 2 + 4)
    for r in result["attention"]:  # the kernel agrees with SDPA to a few ulps of the dtype
        assert r["max_abs_err_vs_sdpa"] < 8 * torch.finfo(getattr(torch, r["dtype"])).eps
    assert {r["dtype"] for r in result["groupnorm_silu"]} == {"float16", "bfloat16", "float32"}
    md = bk.to_markdown(result)
    for section in ("## Step update", "## Attention", "## GroupNorm + SiLU"):
        assert section in md
    assert md.count("\n| ") == 3 + len(steps) + len(result["attention"]) + len(result["groupnorm_silu"])


def test_end_to_end_modes_agree_and_tabulate(monkeypatch):
    # ddpm_cifar10's layout, narrowed (the interpreter runs each kernel program in Python):
    # attention at 4x4 with one 64-wide head, as the real model's one 256-wide head at 16x16.
    config = UNetConfig(channels=32, channel_mult=(1, 2), num_res_blocks=1, resolution=8,
                        attention_resolutions=(4,), groups=4, dropout=0.0)
    unet = UNet.from_config(config).eval()
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    runs = e2e.sampling_modes(unet, Linear(), x_T, steps=2)
    launches = count_launches(monkeypatch, "attention", "lincomb", "groupnorm_silu")  # fused runs them
    outputs = {"eager": runs["eager"]()}
    assert launches == {"attention": 0, "lincomb": 0, "groupnorm_silu": 0}
    outputs["fused"] = runs["fused"]()
    # Per step: 4 attention blocks at 4x4 (1 down, 1 mid, 2 up); 8 ResBlocks with two GroupNorm+SiLU
    # each (2 down, 2 mid, 4 up) and the output head's; one update (one linear combination).
    assert launches == {"attention": 2 * 4, "lincomb": 2, "groupnorm_silu": 2 * (2 * 8 + 1)}
    # Same loop, float32 throughout: the fused attention and update differ from SDPA and the eager
    # update by summation order only (a few ulps per step of |x0| <= ~1/alpha_999 ~ 160).
    torch.testing.assert_close(outputs["fused"], outputs["eager"], rtol=1e-4, atol=1e-4)
    results = e2e.summarize({"eager": 2.0, "fused": 1.0}, outputs, batch=1, steps=2)
    assert results["fused"]["speedup_vs_eager"] == 2.0 and results["eager"]["max_abs_diff_vs_eager"] == 0.0
    md = e2e.to_markdown(results, {"model": "narrow", "batch": 1, "steps": 2, "sampler": "dpmpp_2m",
                                   "dtype": "fp32", "repeats": 1}, {"device": "stand-in", "torch": torch.__version__})
    assert md.count("\n| ") == 1 + len(results)
