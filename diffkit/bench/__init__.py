"""Speed vs quality: every benchmark users may import, behind ``diffkit bench`` and the scripts in ``benchmarks/``.

The suite (``diffkit bench``, ``benchmarks/run_full.py``):

    metrics    sliced Wasserstein-2, mode-weight error, RMS, empirical convergence order
    gmm        quality against exact ground truth on the analytic Gaussian mixtures
    digits     quality on the embedded trained digits model (when its weights exist); also
               ``benchmarks/digits_quality.py``'s report
    latency    per-step / per-sample latency, the zero-cost model, the wall-clock timers
    peer_runs  diffusers schedulers and k-diffusion on the same models and x_T, as ratios
    suite      runs the pieces above with one progress bar and returns one JSON-able dict
    full       the committed full run's options, and merging a digits-only rerun into it
    report     the printed table, JSON, markdown summary and PNG plots (``plots``)
    machine    the one description of the machine the numbers come from

The peers and the stand-alone benchmarks (each run by the script of the same name in ``benchmarks/``):

    peers      diffusers' scheduler loops and k-diffusion's samplers on a diffkit eps-model
               (subpackage: ``peers.diffusers``, ``peers.kdiffusion``; also the reference tests')
    overhead   per-step sampler overhead, diffkit vs diffusers vs k-diffusion (bench_overhead)
    kernels    the fused Triton kernels against eager, torch.compile and SDPA on a GPU (bench_kernels)
    end_to_end the ddpm_cifar10 U-Net sampled eager, fused and as a CUDA graph on a GPU (bench_end_to_end)
    diffusers_adapter  scheduler overhead inside a diffusers pipeline: DiffkitScheduler vs diffusers' own
               scheduler for the same sampler (bench_diffusers_adapter)
    grids      fitted time grids (diffkit.optimize_timesteps) against the default spacing (bench_grids)

Every number is measured here, on the machine named in the results (see ``machine``).
"""

from diffkit.bench.metrics import fit_order, mode_weight_tv, projections, rms, sliced_w2
from diffkit.bench.suite import SuiteOptions, run_suite

__all__ = ["SuiteOptions", "fit_order", "mode_weight_tv", "projections", "rms", "run_suite", "sliced_w2"]
