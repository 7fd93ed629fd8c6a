"""The benchmark suite: metric closed forms, and a small ``diffkit bench --quick`` run end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from diffkit.bench import fit_order, mode_weight_tv, projections, rms, sliced_w2
from diffkit.bench.plots import pareto_front
from diffkit.cli import main
from diffkit.samplers import SAMPLERS


def test_sliced_w2_closed_forms():
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    proj = projections(3, 64)
    assert torch.allclose(proj.norm(dim=1), torch.ones(64, dtype=torch.float64))
    assert sliced_w2(x, x[torch.randperm(500)], proj) == 0.0  # a permutation is the same empirical measure
    shift = torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64)
    # a translation moves every projection by p.shift, exactly (sorting is unchanged)
    expected = float((proj @ shift).pow(2).mean().sqrt())
    assert sliced_w2(x + shift, x, proj) == pytest.approx(expected, rel=1e-12)


def test_mode_weight_tv_and_rms():
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)
    assert mode_weight_tv(labels, weights) == pytest.approx(0.0, abs=1e-15)
    assert mode_weight_tv(torch.zeros(10, dtype=torch.long), weights) == pytest.approx(0.5)  # 0.5 (0.5 + 0.3 + 0.2)
    assert rms(torch.ones(4, 2), torch.zeros(4, 2)) == 1.0


def test_fit_order_recovers_power_law():
    nfe = [5, 10, 20, 50, 100, 1000]
    fit = fit_order(nfe, [3.0 * n**-2.0 for n in nfe], lo=10, hi=100)
    assert fit["order"] == pytest.approx(2.0, abs=1e-9)  # polyfit in float64: rounding only and fit["points"] == 3
    assert fit_order(nfe, [1.0] * 6, lo=200, hi=300) is None  # fewer than two points in range


def test_pareto_front():
    assert pareto_front([(1, 5), (2, 3), (3, 4), (4, 1)]) == [(1, 5), (2, 3), (4, 1)]


def test_bench_quick_end_to_end(tmp_path, capsys):
    samplers = ["ddim", "dpmpp_2m", "dpmpp_sde"]
    code = main(["bench", "--quick", "--no-progress", "--samplers", ",".join(samplers), "--steps", "5,10,20",
                 "--out", str(tmp_path)])
    assert code == 0
    assert "gmm2d" in capsys.readouterr().out
    (json_path,) = tmp_path.glob("*.json")
    assert json_path.with_suffix(".md").is_file()
    pytest.importorskip("matplotlib")
    assert len(list(tmp_path.glob("*.png"))) == 2  # error vs NFE, Pareto front
    results = json.loads(json_path.read_text())
    assert results["machine"]["cpu"] and results["machine"]["torch"] == torch.__version__
    sec = results["gmm"]["gmm2d"]
    rows = sec["rows"]
    assert {r["sampler"] for r in rows} == set(samplers)
    for r in rows:
        assert r["nfe"] == SAMPLERS[r["sampler"]].nfe(r["steps"]) and r["nfe"] <= r["budget"]
        assert math.isfinite(r["sw2"]) and r["sw2"] > 0 and 0 <= r["mode_tv"] <= 1
        assert (r["rms"] is None) == SAMPLERS[r["sampler"]].stochastic
    # second order converges: each NFE doubling must cut the error, by at least 1.5x from 10 to 20
    # (measured 0.215 -> 0.101 at N=256; order ~2 would give 4x asymptotically)
    errs = [r["rms"] for r in sorted(rows, key=lambda r: r["nfe"])
            if r["sampler"] == "dpmpp_2m" and r["spacing"] == "karras"]
    assert errs[0] > errs[1] > 1.5 * errs[2]
    assert errs[0] < 1.0  # data span ~2.5 units: anything above 1 means a broken sampler, not a coarse one
    for key in ("floor", "exact_ode"):
        assert 0 < sec[key]["sw2"] < 1 and 0 <= sec[key]["mode_tv"] < 0.5
    lat = results["latency"]
    assert all(r["seconds_per_eval"] > 0 for r in lat["evals"])
    # Overhead vs peers counts every side's noise draws of x's size: none for the deterministic
    # samplers, two per step but the last (whose single model call is the data prediction) for dpmpp_sde.
    peer_rows = {r["sampler"]: r for r in lat["peer_overhead"]}
    assert set(peer_rows) == set(samplers)
    for name, r in peer_rows.items():
        expected = 2 * (r["steps"] - 1) if name == "dpmpp_sde" else 0
        assert set(r["noise_draws"].values()) == {expected}, (name, r["noise_draws"])
    assert all(r["seconds"] > 0 and r["seconds_per_sample"] > 0 for r in lat["runs"])
    assert all(0 < r["seconds_per_step"] for r in lat["overhead"])
