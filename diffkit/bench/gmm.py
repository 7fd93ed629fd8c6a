"""Quality against exact ground truth on the analytic Gaussian mixtures (float64 throughout).

Two measures per (sampler, spacing, NFE), all from one fixed x_T ~ N(0, I) of N samples:

- Deterministic samplers (``SAMPLERS[name].stochastic`` is False): the global error
  ``rms(x0, exact)`` against ``exact_sample`` -- the probability-flow ODE solved by
  DOP853 at rtol = atol = 1e-10 from the same x_T, then the same final map -- and the
  empirical order, the least-squares slope of log RMS against log NFE (``fit_order``).
- Every sampler: the distance to the data, sliced W2 to N exact data samples along
  fixed projections and the mode-weight total variation, each next to its noise floor
  (the same statistic for a second, independent set of N exact data samples). The
  exact ODE's own output is reported too: no sampler can beat it by more than noise.

Spacing matters for the order: karras (and logsnr) refine the whole path, while with
leading/linspace/trailing the last visited timestep is ~T/steps, so the final jump to
the data shrinks only like 1/N and every solver looks first order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from diffkit.bench.metrics import fit_order, median_error, mode_weight_tv, projections, rms, sliced_w2
from diffkit.models import GaussianMixture, exact_sample
from diffkit.samplers import SAMPLERS, get_sampler, sample
from diffkit.schedules import Linear, timesteps
from diffkit.schedules.spacing import DISCRETE_SPACINGS
from diffkit.schedules.base import Schedule

GMM_MODELS: dict[str, Callable[[Schedule], GaussianMixture]] = {
    "gmm2d": GaussianMixture.two_d,  # three well separated unequal modes in 2-D
    "gmm64": lambda schedule: GaussianMixture.random(schedule, dim=64, components=4, seed=0),
}
ORDER_RANGE = (20, 500)  # NFE range of the order fit: past the pre-asymptotic start, above the ODE-tolerance floor
NUM_PROJECTIONS = 256  # fixed directions for sliced W2 (seed 0)
FLOOR_DRAWS = 8  # independent exact data sets behind each noise floor (mean and std reported)


@dataclass(frozen=True)
class GmmCase:
    """One mixture with its fixed start noise, exact ODE samples and two independent data sets."""

    name: str
    schedule: Schedule
    model: GaussianMixture
    x_T: torch.Tensor  # [N, D] float64 start noise, shared by every sampler (and peer)
    exact: torch.Tensor  # exact_sample(model, schedule, x_T)
    data: torch.Tensor  # N exact data samples: the reference set
    data_floor: torch.Tensor  # N more, independent: gives the noise floor
    proj: torch.Tensor  # [P, D] projections of sliced W2
    path_exact: dict = field(default_factory=dict)  # t_end -> exact_sample to t_end (discrete spacings' floor)


def steps_for_nfe(name: str, nfe: int) -> int:
    """Most visited timesteps whose NFE does not exceed ``nfe`` (at least 2)."""
    info = get_sampler(name)
    return max(2, (nfe - 1) // info.evals_per_step + 1)


def prepare_case(name: str, n: int, seed: int = 0, schedule: Schedule | None = None) -> GmmCase:
    """Build the mixture ``name`` (see GMM_MODELS), draw x_T and the data sets, solve the exact ODE."""
    if name not in GMM_MODELS:
        raise ValueError(f"unknown mixture {name!r}; allowed: {', '.join(GMM_MODELS)}")
    schedule = schedule or Linear()
    model = GMM_MODELS[name](schedule)
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn((n,) + model.event_shape, generator=g, dtype=torch.float64)
    data = model.sample_data(n, torch.Generator().manual_seed(seed + 1))
    data_floor = model.sample_data(n, torch.Generator().manual_seed(seed + 2))
    exact = exact_sample(model, schedule, x_T)
    return GmmCase(name, schedule, model, x_T, exact, data, data_floor, projections(model.dim, NUM_PROJECTIONS))


def distribution_errors(case: GmmCase, x0: torch.Tensor) -> dict[str, float]:
    """Sliced W2 to the reference data set and mode-weight TV of samples x0."""
    return {
        "sw2": sliced_w2(x0, case.data, case.proj),
        "mode_tv": mode_weight_tv(case.model.assign_modes(x0), case.model.weights),
    }


def floors(case: GmmCase, draws: int = FLOOR_DRAWS) -> dict[str, dict[str, float]]:
    """Noise floors and the exact ODE's own distance to the data.

    The floor is the mean (and standard deviation, ``*_std``) over ``draws`` independent
    sets of N exact data samples: one draw alone fluctuates by tens of percent at small N.
    """
    n = case.x_T.shape[0]
    sets = [case.data_floor] + [case.model.sample_data(n, torch.Generator().manual_seed(1000 + k))
                                for k in range(draws - 1)]
    values = [distribution_errors(case, s) for s in sets]
    floor = {}
    for metric in values[0]:
        v = torch.tensor([d[metric] for d in values], dtype=torch.float64)
        floor[metric], floor[f"{metric}_std"] = float(v.mean()), float(v.std()) if draws > 1 else 0.0
    floor["draws"] = draws
    return {"floor": floor, "exact_ode": distribution_errors(case, case.exact)}


def quality_row(case: GmmCase, x0: torch.Tensor, deterministic: bool, **fields) -> dict:
    """One result row: the given fields, RMS to the exact ODE (deterministic only) and the distribution errors."""
    row = dict(fields, model=case.name, deterministic=deterministic, finite=bool(torch.isfinite(x0).all()))
    row["rms"] = rms(x0, case.exact) if deterministic else None
    row["median"] = median_error(x0, case.exact) if deterministic else None
    row.update(distribution_errors(case, x0))
    return row


def run_sampler(case: GmmCase, name: str, spacing: str | None, nfe: int, seed: int = 0) -> dict:
    """Run diffkit sampler ``name`` at the largest step count within ``nfe`` model calls; one row."""
    info = get_sampler(name)
    steps = steps_for_nfe(name, nfe)
    spacing = spacing or info.default_spacing
    generator = torch.Generator().manual_seed(seed + 3) if info.stochastic else None
    start = time.perf_counter()
    x0 = sample(case.model, case.schedule, name, steps, x=case.x_T.clone(), generator=generator, spacing=spacing)
    seconds = time.perf_counter() - start
    row = quality_row(case, x0, not info.stochastic, impl="diffkit", sampler=name, spacing=spacing, steps=steps,
                      nfe=info.nfe(steps), budget=nfe, seconds=seconds)
    if not info.stochastic and spacing in DISCRETE_SPACINGS:
        row["rms_path"] = rms(x0, exact_to_last_step(case, float(timesteps(case.schedule, steps, spacing)[-1])))
    return row


def exact_to_last_step(case: GmmCase, t_last: float) -> torch.Tensor:
    """The exact ODE from x_T to ``t_last``, then the final map (cached): the floor of a spacing ending there.

    ``rms_path`` against it isolates a solver's error on the visited path from the
    final jump t_last -> 0 that every solver shares on leading/linspace/trailing.
    """
    if t_last not in case.path_exact:
        case.path_exact[t_last] = exact_sample(case.model, case.schedule, case.x_T, t_end=t_last) if t_last > 0 \
            else case.exact
    return case.path_exact[t_last]


def gmm_plan(samplers: Iterable[str], nfes: Iterable[int], extra_spacings: Iterable[str] = ()) -> list[tuple]:
    """(sampler, spacing, nfe) runs: every sampler at its default spacing, deterministic ones also at extras."""
    plan = []
    for name in samplers:
        info = get_sampler(name)
        spacings = [info.default_spacing] + ([s for s in extra_spacings if s != info.default_spacing]
                                             if not info.stochastic else [])
        plan += [(name, spacing, nfe) for spacing in spacings for nfe in nfes]
    return plan


def orders(rows: list[dict], lo: float = ORDER_RANGE[0], hi: float = ORDER_RANGE[1]) -> list[dict]:
    """Empirical order of every deterministic (impl, sampler, spacing) series in ``rows``.

    Fitted for ``rms`` and ``median`` (to the exact sample at t = 0) and, where present,
    ``rms_path`` (to the exact ODE at the spacing's last visited timestep).
    """
    series: dict[tuple, list[tuple[int, float]]] = {}
    for row in rows:
        for metric in ("rms", "median", "rms_path"):
            if row.get(metric) is not None:
                key = (row["model"], row["impl"], row["sampler"], row["spacing"], metric)
                series.setdefault(key, []).append((row["nfe"], row[metric]))
    out = []
    for (model, impl, name, spacing, metric), pts in series.items():
        fit = fit_order([p[0] for p in pts], [p[1] for p in pts], lo, hi)
        if fit is not None:
            out.append(dict(fit, model=model, impl=impl, sampler=name, spacing=spacing, metric=metric))
    return out


def all_samplers() -> list[str]:
    """Every registered sampler name."""
    return list(SAMPLERS)
