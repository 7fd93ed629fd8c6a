"""The digits fitted-grid benchmark runs on a tiny size for both embedded models and reports both grids."""

from __future__ import annotations

from diffkit.bench import digits_grids


def test_digits_grids_reports_default_and_fitted_for_both_models():
    rep = digits_grids.report(samplers=("ddim",), nfes=(5,), n=20, calibration=2)
    assert set(rep["models"]) == {"digits", "digits-flow"} and not rep["skipped"]
    grids = {(r["model"], r["grid"]) for r in rep["rows"] if r["sampler"] != "(default)"}
    assert grids == {("digits", "karras"), ("digits", "fitted"), ("digits-flow", "shifted"), ("digits-flow", "fitted")}
    # the defaults table's row: diffkit.sample with only the budget, labelled with the sampler and grid it ran
    defaults = {r["model"]: r["grid"] for r in rep["rows"] if r["sampler"] == "(default)" and r["grid"] != "fitted"}
    assert defaults == {"digits": "ipndm afs @ time_uniform rho=2 endpoint=False",
                        "digits-flow": "ipndm afs @ beta beta_shape=0.5,0.5"}
    fitted = [r for r in rep["rows"] if r["grid"] == "fitted"]
    assert all(len(r["timesteps"]) == r["steps"] and r["fit_seconds"] > 0 for r in fitted)
    # 5 calls: 5 timesteps, or 6 where the table takes the analytical first step (its first without a call)
    assert {r["steps"] for r in fitted if r["sampler"] == "ddim"} == {5}
    assert {r["steps"] for r in fitted if r["sampler"] == "(default)"} == {6}
    expected = {(m, s) for m in rep["models"] for s in ("(default)", "ddim")}  # the table's, fitted from its grid
    assert {(r["model"], r["sampler"]) for r in fitted} == expected
    assert "| ddim |" in digits_grids.markdown(rep) and "| (default) |" in digits_grids.markdown(rep)
