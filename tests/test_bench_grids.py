"""diffkit.bench.grids on tiny inputs: every variant measured, rows and tables complete (the numbers: benchmarks/)."""

from __future__ import annotations

import json

import torch

from diffkit.bench import grids
from diffkit.samplers import sample


def test_measure_and_write_on_a_tiny_mixture(gmm2d, linear, tmp_path):
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    reference = sample(gmm2d, linear, "dpmpp_2m", 200, x=x)
    problem = grids.Problem("tiny", gmm2d, linear, (2,), torch.float64, x, reference, None, 8, None)
    cheap = {label: None if opts is None else {**opts, "teacher_steps": 8, "teacher_substeps": 1, "refine_evals": 1}
             for label, opts in grids.VARIANTS.items()}
    rows = grids.measure(problem, ["ddim"], nfes=[3], variants=cheap)
    assert [r["variant"] for r in rows] == list(grids.VARIANTS)
    assert all(r["nfe"] == 3 and r["median_error"] > 0 for r in rows)
    fitted = [r for r in rows if r["timesteps"] is not None]
    assert all(len(r["timesteps"]) == 3 and r["model_calls"] > 0 and r["seconds"] > 0 for r in fitted)
    results = {"machine": {"cpu": "test", "cpu_count": 1, "loadavg_at_start": None, "torch_threads": 1,
                           "torch": torch.__version__}, "nfes": [3], "rows": rows}
    path = grids.write(results, tmp_path)
    text = path.read_text()
    assert "## tiny" in text and "| ddim | gits+refine (default) |" in text and "model calls" in text
    assert json.loads((tmp_path / "grids.json").read_text())["rows"][0]["variant"] == "default spacing"
