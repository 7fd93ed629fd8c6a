"""What ``diffkit.sample`` runs when the sampler is not given: a measured table, by schedule family and budget.

The budget is in STEPS (visited timesteps). Every sampler in the table takes one model call
a step, so N steps are N model evaluations (NFE = N).

    family          steps      sampler (options)                      spacing
    discrete_vp     1-6        ipndm (order=3, variant=fixed)         beta
                    7-12       ipndm (order=3, variant=fixed)         logsnr
                    13-        deis (order=3, variant=logrho)         logsnr
    continuous_vp   1-12       ipndm (order=3, variant=fixed)         logsnr
                    13-        deis (order=3, variant=logrho)         logsnr
    edm (and any    1-         ipndm (order=3, variant=fixed)         logsnr
      other schedule with finite SNR at t_max)
    zero_snr        1-         ipndm (order=3, variant=fixed)         beta
      (flow matching; discrete VP with zero terminal SNR; any schedule with alpha(t_max) = 0)

Where it comes from (``benchmarks/results/frontier_defaults.md``, ``python -m benchmarks.frontier
--defaults``, ``diffkit.bench.defaults_scan``): nine one-call-a-step configurations on every spacing
of each family, at 2-30 steps, on three exact Gaussian mixtures (2-D, 64-D, 3x8x8 image-shaped) in
each family, scored by the geometric mean of their error against the exact ODE over the best
configuration's in the same cell. iPNDM with the fixed (equal-step) third-order coefficients is
the most accurate at low budgets in every family. On discrete VP (Linear, Cosine) it is 1.2-1.5x
the best configuration of each cell at 3-6 steps on ``beta`` and 1.4-1.7x at 8-12 on ``logsnr``,
against 2.5-14x for the former default (dpmpp_2m on karras); from 13-16 steps DEIS (logrho,
third order) on ``logsnr`` overtakes it on the VP families (1.3-1.7x at 16-30 steps), not on
EDM (ipndm 1.5-3.8x there, dpmpp_2m on karras 1.3-27x). At zero terminal SNR the ``karras`` /
``logsnr`` grids do not exist (sigma_k = inf at t_max) and ``beta``, which starts at t_max, is
1.0-1.3x the best up to 20 steps (1.5-1.7x at 30). Against the best training-free peer at NFE 5-10
(``benchmarks/results/frontier.md``: three mixtures x linear/cosine) these defaults are 0.6-9.2x
its error (median 1.4x; at or below 1x in 3 of 24 cells), the former default 2.0-39x (median
7.7x). Part of the gap is the final step: the peers end at sigma_min without a final model call
(their final-call variants, ``denoise_to_zero``, are typically 1.3x and up to 2.4x less accurate,
worse in 46 of 48 cells), while diffkit's final step spends its last call on the data prediction
at t_min. Fitted grids (``optimize_timesteps``) close the gap.

An explicit sampler, spacing or grid always wins: the table fills only what was left out.
Options without a sampler are refused (they belong to a named sampler).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from diffkit.schedules import ContinuousVP, DiscreteVP, FlowMatch
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
_DEIS3 = {"order": 3, "variant": "logrho"}
# family -> entries by increasing from_steps (the module docstring's table)
DEFAULTS: MappingProxyType = MappingProxyType({
    "discrete_vp": (_d(1, "ipndm", "beta", **_IPNDM3), _d(7, "ipndm", "logsnr", **_IPNDM3),
                    _d(13, "deis", "logsnr", **_DEIS3)),
    "continuous_vp": (_d(1, "ipndm", "logsnr", **_IPNDM3), _d(13, "deis", "logsnr", **_DEIS3)),
    "edm": (_d(1, "ipndm", "logsnr", **_IPNDM3),),
    "zero_snr": (_d(1, "ipndm", "beta", **_IPNDM3),),
})


def family(schedule: Schedule) -> str:
    """The table's family of ``schedule``: zero_snr wherever alpha(t_max) = 0, else by class (edm for others)."""
    if schedule.zero_terminal_snr or isinstance(schedule, FlowMatch):
        return "zero_snr"
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
