"""Speed vs quality: the benchmark suite behind ``diffkit bench`` and ``benchmarks/run_full.py``.

    metrics   sliced Wasserstein-2, mode-weight error, RMS, empirical convergence order
    gmm       quality against exact ground truth on the analytic Gaussian mixtures
    digits    quality on the embedded trained digits model (when its weights exist)
    latency   per-step / per-sample latency and the samplers' own overhead (zero-cost model)
    peer_runs diffusers schedulers and k-diffusion on the same models and x_T, as ratios
    suite     runs the pieces above with one progress bar and returns one JSON-able dict
    report    the printed table, JSON, markdown summary and PNG plots

Every number is measured here, on the machine named in the results (see ``machine``).
"""

from diffkit.bench.metrics import fit_order, mode_weight_tv, projections, rms, sliced_w2
from diffkit.bench.suite import SuiteOptions, run_suite

__all__ = ["SuiteOptions", "fit_order", "mode_weight_tv", "projections", "rms", "run_suite", "sliced_w2"]
