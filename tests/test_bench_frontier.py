"""diffkit.bench.frontier on a tiny run (the figures themselves: benchmarks/results/frontier.md)."""

from __future__ import annotations

import json

import torch

from diffkit.bench import defaults_scan, frontier
from diffkit.bench.frontier_peers import PEERS
from diffkit.models import GaussianMixture
from diffkit.samplers.defaults import default_for
from diffkit.schedules import Linear


def test_tiny_run_measures_every_part_and_writes(tmp_path):
    peers = ([p for p in PEERS if p.library == "k-diffusion"][:1] + [p for p in PEERS if "GITS" in p.label]
             + [p for p in PEERS if p.label == "iPNDM (poly rho 7, AFS)"])
    results = frontier.run(["gmm2d"], ["linear"], [5], samples=16, peers=peers,
                           configs=(("ddim", {}), ("heun", {})), fitted=(("dpmpp_2m", {}),),
                           teacher_steps=8, teacher_substeps=1, refine_evals=1)
    (cell,) = results["cells"]
    assert [r["label"] for r in cell["peers"]] == [p.label for p in peers]
    assert all(r["calls"] <= 5 and r["error"] > 0 for r in cell["peers"])
    assert cell["peers"][-1]["calls"] == 5  # with AFS: 7 timestamps to sigma_min, the first without a call
    assert all(r["calls"] <= 5 for r in cell["candidates"])  # counted: heun takes 2 calls a step, 3 steps
    assert {r["spacing"] for r in cell["candidates"]} >= {"karras", "trailing", "fitted"}
    fitted = next(r for r in cell["candidates"] if r["spacing"] == "fitted")
    assert fitted["fit_seconds"] > 0 and len(fitted["timesteps"]) == 5
    chosen = default_for(Linear(), 5)  # the table's sampler, fitted from the table's grid
    refined = next(r for r in cell["candidates"] if r["spacing"] == "fitted from the default grid")
    assert (refined["sampler"], refined["options"], refined["calls"]) == (chosen.sampler, dict(chosen.options), 5)
    assert refined["timesteps"][0] == Linear().t_max and refined["fit_seconds"] > 0
    assert cell["best"] in [dict(r, error=cell["best"]["error"]) for r in cell["candidates"]]
    assert cell["ratio_default"] == cell["default"]["error"] / cell["best_peer"]["error"]
    path = frontier.write(results, tmp_path)
    text = path.read_text()
    assert "| gmm2d-linear |" in text and "best/peer" in text and "Machine:" in text
    rule = next(line for line in text.splitlines() if line.startswith("| `diffkit.sample"))  # one cell: its ratio
    assert rule.split(" | ")[1:3] == [f"{cell['ratio_default']:.2f}"] * 2 and rule.endswith("| 1 of 1 |") == (
        cell["ratio_default"] <= 1)
    # the same ratios against the peers without the analytical first step
    no_afs = min(r["error"] for r in cell["peers"] if "AFS" not in r["label"])
    assert f"`diffkit.sample(..., steps=N)`: {cell['default']['error'] / no_afs:.2f}-" in text
    assert json.loads((tmp_path / "frontier.json").read_text())["cells"][0]["nfe"] == 5
    assert (tmp_path / "frontier.png").stat().st_size > 0


def test_image_mixture_is_image_shaped_and_deterministic():
    a = GaussianMixture.image(Linear(), shape=(3, 4, 4), components=2, seed=3)
    b = GaussianMixture.image(Linear(), shape=(3, 4, 4), components=2, seed=3)
    assert a.event_shape == (3, 4, 4) and a.dim == 48
    torch.testing.assert_close(a.means, b.means)
    x = a.sample_data(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 3, 4, 4) and torch.isfinite(x).all()


def test_defaults_scan_scores_and_names_the_table_choice(tmp_path):
    afs = {"order": 3, "variant": "fixed", "final": "adams", "afs": True}  # the table's at 3 steps on Linear
    results = defaults_scan.scan(["linear", "flow"], ["gmm2d"], steps=[3], samples=8,
                                 configs=(("ddim", {}), ("ipndm", afs)))
    linear = dict(results["scores"]["linear"][3])
    choice = "ipndm order=3 variant=fixed final=adams afs=True @ time_uniform rho=2 endpoint=False"
    assert min(linear.values()) == 1.0 and choice in linear and "ddim @ time_uniform rho=2" in linear
    assert "ddim @ logsnr endpoint=False" not in linear  # open grids only where the final step keeps the order
    assert "ddim @ karras" not in dict(results["scores"]["flow"][3])  # no karras grid from zero SNR
    text = defaults_scan.write(results, tmp_path).read_text()
    assert f"| linear | 3 | {choice} |" in text
    assert json.loads((tmp_path / "frontier_defaults.json").read_text())["scores"]["flow"]["3"]
