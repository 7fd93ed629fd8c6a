"""benchmarks/bench_kernels.py measures on a GPU only; here its code runs end to end.

Tiny CPU tensors under the Triton interpreter, every case called once by a stand-in
timer, so that a session lent a GPU does not find the script broken. Nothing is timed:
the checks are on what the script derives (bytes moved, errors) and on its tables.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_kernels_backend import DEVICE, kernels_run  # noqa: F401  (the fixture below)

from benchmarks import bench_kernels as bk

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
    assert list(steps) == [name for name, _, _ in bk.STEP_PATTERNS]
    n = math.prod(bk.STEP_SHAPES[0])
    # Bytes each update must move: x (fp32) and eps (fp16) read once; x_next and x0 written (fp32).
    assert steps["ddim (x, eps)"]["bytes"] == n * (4 + 2 + 8)
    assert steps["ddim without callback: step_next (x, eps)"]["bytes"] == n * (4 + 2 + 4)  # no x0
    assert steps["dpmpp_2m (x, eps, prev)"]["bytes"] == n * (4 + 2 + 8 + 4)
    for r in result["attention"]:  # the kernel agrees with SDPA to a few ulps of the dtype
        assert r["max_abs_err_vs_sdpa"] < 8 * torch.finfo(getattr(torch, r["dtype"])).eps
    assert {r["dtype"] for r in result["groupnorm_silu"]} == {"float16", "bfloat16", "float32"}
    md = bk.to_markdown(result)
    for section in ("## Step update", "## Attention", "## GroupNorm + SiLU"):
        assert section in md
    assert md.count("\n| ") == 3 + len(steps) + len(result["attention"]) + len(result["groupnorm_silu"])
