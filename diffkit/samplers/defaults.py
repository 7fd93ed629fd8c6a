"""What ``diffkit.sample`` runs when the sampler is not given: a measured table, by schedule family and budget.

The budget is in STEPS (visited timesteps). Every sampler in the table takes one model call
a step, so N steps are N model evaluations (NFE = N).

    family          steps      sampler (options)                                  spacing
    discrete_vp     1-6        ipndm (order=3, variant=fixed)                     beta
      (Linear,      7-12       ipndm (order=3, variant=fixed)                     logsnr
      ScaledLinear) 13-        deis (order=3, variant=logrho)                     logsnr
    cosine          1-4        ipndm (order=3, variant=fixed)                     beta
                    5-24       ipndm (order=3, variant=fixed, final=adams)        beta
                    25-        deis (order=3, variant=logrho)                     logsnr
    continuous_vp   1-12       ipndm (order=3, variant=fixed)                     logsnr
                    13-        deis (order=3, variant=logrho)                     logsnr
    edm (and any    1-         ipndm (order=3, variant=fixed)                     logsnr
      other schedule with finite SNR at t_max)
    zero_snr        1-4        ipndm (order=3, variant=fixed)                     beta
                    5-         ipndm (order=3, variant=fixed, final=adams)        beta
      (flow matching; discrete VP with zero terminal SNR; any schedule with alpha(t_max) = 0)

Where it comes from (``benchmarks/results/frontier_defaults.md``, ``python -m benchmarks.frontier
--defaults``, ``diffkit.bench.defaults_scan``): eleven one-call-a-step configurations on every
spacing of each family, at 2-30 steps, on three exact Gaussian mixtures (2-D, 64-D, 3x8x8
image-shaped) in each family, scored by the geometric mean of their error against the exact ODE
over the best configuration's in the same cell. iPNDM with the fixed (equal-step) third-order
coefficients is the most accurate at low budgets in every family. On ``beta``, whose last visited
point lies well above the data, its last step matters: taking it by the same Adams-Bashforth
formula to sigma_k = 0 (``final="adams"``, no extra model call) instead of the data prediction is
the best configuration of nearly every cell from 5 steps on at zero SNR, in flow matching and on
Cosine, 2-4x more accurate than the next configuration there. On Linear it is not (2.2-3.4x the
best of each cell at 5-20 steps), where iPNDM on ``beta`` up to 6 steps, on ``logsnr`` up to 12
and DEIS (logrho, third order) on ``logsnr`` from 13 steps are 1.2-1.7x the best; so Cosine has
its own row. ScaledLinear (Stable Diffusion's schedule) was not scanned; it takes Linear's row, the
schedule closest to it. On EDM and
continuous VP, ``logsnr`` ends at t_min, where the final step hardly matters. At zero terminal
SNR the ``karras`` / ``logsnr`` grids do not exist (sigma_k = inf at t_max). Against the best
training-free peers at NFE 5-10 (``benchmarks/results/frontier.md``): 0.29-7.5x their error
(median 1.02x, at or below 1x in 12 of 24 cells, most of the misses on Linear).

An explicit sampler, spacing or grid always wins: the table fills only what was left out.
Options without a sampler are refused (they belong to a named sampler).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from diffkit.schedules import ContinuousVP, Cosine, DiscreteVP, FlowMatch
from diffkit.schedules.base import Schedule
from diffkit.schedules.spacing import spacings


@dataclass(frozen=True)
class Default:
    """The sampler, its options and the spacing to use from ``from_steps`` steps on."""

    from_steps: int
    sampler: str
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    spacing: str = "logsnr"


def _d(from_steps: int, sampler: str, spacing: str, **options: Any) -> Default:
    return Default(from_steps, sampler, MappingProxyType(options), spacing)


_IPNDM3 = {"order": 3, "variant": "fixed"}
_IPNDM3_ADAMS = {**_IPNDM3, "final": "adams"}  # the last step to sigma = 0 by the same formula
_DEIS3 = {"order": 3, "variant": "logrho"}
# family -> entries by increasing from_steps (the module docstring's table)
DEFAULTS: MappingProxyType = MappingProxyType({
    "discrete_vp": (_d(1, "ipndm", "beta", **_IPNDM3), _d(7, "ipndm", "logsnr", **_IPNDM3),
                    _d(13, "deis", "logsnr", **_DEIS3)),
    "cosine": (_d(1, "ipndm", "beta", **_IPNDM3), _d(5, "ipndm", "beta", **_IPNDM3_ADAMS),
               _d(25, "deis", "logsnr", **_DEIS3)),
    "continuous_vp": (_d(1, "ipndm", "logsnr", **_IPNDM3), _d(13, "deis", "logsnr", **_DEIS3)),
    "edm": (_d(1, "ipndm", "logsnr", **_IPNDM3),),
    "zero_snr": (_d(1, "ipndm", "beta", **_IPNDM3), _d(5, "ipndm", "beta", **_IPNDM3_ADAMS)),
})


def family(schedule: Schedule) -> str:
    """The table's family of ``schedule``: zero_snr wherever alpha(t_max) = 0, else by class (edm for others)."""
    if schedule.zero_terminal_snr or isinstance(schedule, FlowMatch):
        return "zero_snr"
    if isinstance(schedule, Cosine):
        return "cosine"
    if isinstance(schedule, DiscreteVP):
        return "discrete_vp"
    if isinstance(schedule, ContinuousVP):
        return "continuous_vp"
    return "edm"  # EDM, or a schedule of its own with finite SNR: logsnr is defined on every such schedule


def default_for(schedule: Schedule, steps: int) -> Default:
    """The table's entry for ``steps`` steps on ``schedule`` (its spacing replaced by the schedule's own
    default where the schedule does not have it)."""
    entry = [d for d in DEFAULTS[family(schedule)] if d.from_steps <= steps][-1]
    if entry.spacing not in spacings(schedule):
        return Default(entry.from_steps, entry.sampler, entry.options, schedule.default_spacing)
    return entry
