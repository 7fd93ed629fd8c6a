"""The flow / zero-SNR sampler-and-spacing benchmark runs on a tiny size and reports what it measured."""

from __future__ import annotations

from diffkit.bench import family_grids


def test_family_grids_measures_every_spacing_of_both_families():
    report = family_grids.measure(samples=4, nfes=(5,), samplers=("euler", "dpmpp_2m"))
    seen = {(r["problem"], r["spacing"]) for r in report["rows"]}
    flow, zero_snr = family_grids.PROBLEMS
    assert (flow, "shifted") in seen and (zero_snr, "trailing") in seen
    assert not {s for _, s in seen} & set(family_grids.ZERO_SNR_SPACINGS)  # undefined from pure noise
    assert all(0 < r["error"] < 10 and r["steps"] == 5 for r in report["rows"])
    text = family_grids.markdown(report)
    assert "| euler | shifted |" in text and "Best five per budget" in text
