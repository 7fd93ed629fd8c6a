"""What ``diffkit.sample`` runs when the sampler is not given: a measured table, by schedule family and budget.

The budget is in MODEL CALLS: every sampler in the table takes one model call a step, so N steps
are N model evaluations (NFE = N); "afs" entries take the analytical first step (``afs=True``:
eps at t_max is x_T at unit variance, no call), so they visit N + 1 timesteps for the same N
calls. iPNDM is order 3 with the fixed (equal-step) coefficients; "adams" is ``final="adams"``,
the last step to sigma = 0 taken by the same multistep formula, at no extra model call; "open" is
``endpoint=False``, the grid's last point t_min left out; "arcsine" is ``beta_shape=(0.5, 0.5)``,
Beta(0.5, 0.5), t_i = t_min + (t_max - t_min) cos^2(pi i / 2N) (``diffkit.schedules.timesteps``).

    family                steps   sampler                 grid
    discrete_vp           1-6     ipndm, adams, afs       time_uniform rho=2, open
      (Linear, and any     7-15   ipndm, adams            time_uniform rho=2, open
      other discrete VP    16-    deis (order 3, logrho)  logsnr
      but those below)
    scaled_linear         1-4     ipndm, adams, afs       logsnr, open
      (Stable Diffusion's) 5-15   ipndm, adams            logsnr, open
                          16-     unipc (order 3)         logsnr
    cosine                1-3     ipndm, afs              beta, arcsine
                          4-8     ipndm, adams, afs       beta, arcsine
                          9-      ipndm, adams            beta, arcsine
    continuous_vp         1-5     ipndm, adams, afs       logsnr, open
                          6-9     ipndm, adams, afs       time_uniform rho=2, open
                          10-     ipndm, adams            time_uniform rho=2, open
    edm (and any other    1-3     ipndm, adams            logsnr, open
      schedule with       4-11    ipndm, adams, afs       logsnr, open
      finite SNR at t_max) 12-    ipndm, adams            karras
    zero_snr              1-6     ipndm, adams, afs       time_uniform rho=2, open
      (any schedule with   7-     ipndm, adams            time_uniform rho=2, open
      alpha(t_max) = 0 but flow matching: discrete VP at zero terminal SNR)
    flow (FlowMatch)      1-3     ipndm, adams, afs       time_uniform rho=2, open
                          4-8     ipndm, adams, afs       beta, arcsine
                          9-      ipndm, adams            beta, arcsine

Where it comes from (``benchmarks/results/frontier_defaults.md``, ``python -m benchmarks.frontier
--defaults``, ``diffkit.bench.defaults_scan``): eighteen one-call-a-step configurations (four of
them with ``afs``) on every spacing of each family, on time_uniform rho = 2 and the arcsine beta,
and (those with ``final="adams"``) on the grids ending at t_min with ``endpoint=False``, at 2-30
steps, on three exact Gaussian mixtures (2-D, 64-D, 3x8x8 image-shaped) in each family, scored by
the geometric mean of their error against the exact ODE over the best configuration's in the same
cell. Where the scan's winner changed from one step count to the next, the table takes the
configuration with the lowest geometric mean over a range of step counts (and, on Linear and
Cosine, the lowest worst ratio against the peers of ``benchmarks/results/frontier.md`` at 5-10
calls).

Why these: a grid that visits t_min spends a model call where almost nothing is left to
denoise, and the data prediction as the final step is first order. Leaving t_min out and taking
the last step to sigma = 0 by the multistep formula fixes both; it is how diff-sampler's solvers
spend their calls (N + 1 timestamps, N calls), but ends at sigma = 0 rather than sigma_min. The
analytical first step saves the call at t_max, where x_T is almost pure noise; it takes the data
mean for 0 (an error of about alpha(t_max) E[x0] in eps), which costs less than the saved call
buys at low budgets and more at high ones: it lowered the scan's score at 4-6 calls on Linear from
2.15-3.64 to 1.18-1.59, at 4-8 on Cosine from 1.16-2.56 to 1.01-1.39, and scored worse from 10
calls on in every family but EDM (there up to 11). On Linear, at zero SNR and on the continuous
VP iPNDM on time_uniform rho = 2 (DPM-Solver's "time_quadratic", diff-sampler's DEIS grid) is
within 1.35x of the best configuration of each cell at 6-12 steps. On Cosine and in flow matching
``beta`` keeps the lead from 4-5 steps on, the arcsine law ahead of ComfyUI's Beta(0.6, 0.6)
(in the scan before the AFS configurations: geometric mean 1.27 against 2.05 over 5-10 steps on
Cosine, 1.35 against 1.49 in flow matching); on Cosine time_uniform rho = 2 is 3.9-9x the best
peer on the image-shaped mixture. ScaledLinear (Stable Diffusion's schedule: sigma_k from 14.6
down to 0.03, where Linear's runs from 157) has its own row: in the scan before the AFS
configurations Linear's row scored 2.4-5.1 there at 3-12 steps, iPNDM on the open log-SNR grid
1.21-2.4 (geometric mean 1.54 over 5-12 steps), and at 16-30 steps UniPC-3 on log-SNR 1.09-2.13
against 2.05-3.61 for Linear's DEIS; there alpha(t_max) = 0.068 and AFS leads only up to 4 calls.
On EDM no configuration is within 2x of every cell's best (each mixture prefers another grid); the
table takes the most even. At zero terminal SNR the ``karras`` / ``logsnr`` grids do not exist
(sigma_k = inf at t_max). Against the best training-free peers at NFE 5-10
(``benchmarks/results/frontier.md``, diff-sampler's solvers there with and without their own
analytical first step): 0.14-1.02x their error, median 0.60x, at or below 1x in 23 of 24 cells
(the miss: 1.02x on the image-shaped mixture on Linear at 8 calls, against iPNDM_v with AFS);
against the peers at their own defaults (no AFS) 0.11-0.90x, at or below 1x in all 24. Before
AFS the table had 0.23-1.27x against those; before the open grids 0.29-7.5x (12 of 24);
``dpmpp_2m`` on karras, the first default, 2.0-39x.

An explicit sampler, spacing or grid always wins: the table fills only what was left out.
Options without a sampler are refused (they belong to a named sampler).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from diffkit.samplers.registry import SAMPLERS
from diffkit.schedules import ContinuousVP, Cosine, DiscreteVP, FlowMatch, ScaledLinear
from diffkit.schedules.base import Schedule
from diffkit.schedules.spacing import spacings, timesteps


@dataclass(frozen=True)
class Default:
    """The sampler, its options and the grid (spacing and its options: rho, endpoint, beta_shape) to use from
    ``from_steps`` steps on."""

    from_steps: int
    sampler: str
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    spacing: str = "logsnr"
    grid_options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def timesteps(self, schedule: Schedule, steps: int) -> np.ndarray:
        """The visited grid for ``steps`` model calls: ``diffkit.timesteps(schedule, steps, spacing, **grid_options)``,
        with one timestep more where the entry takes the analytical first step (``afs``: no call there)."""
        return timesteps(schedule, SAMPLERS[self.sampler].steps_for(steps, self.options), self.spacing,
                         **self.grid_options)


def _d(from_steps: int, sampler: str, spacing: str, options: dict[str, Any], **grid_options: Any) -> Default:
    return Default(from_steps, sampler, MappingProxyType(options), spacing, MappingProxyType(grid_options))


_IPNDM3 = {"order": 3, "variant": "fixed"}
_IPNDM3_ADAMS = {**_IPNDM3, "final": "adams"}  # the last step to sigma = 0 by the same formula
_AFS = {**_IPNDM3_ADAMS, "afs": True}  # and the analytical first step: one timestep more for the same calls
_DEIS3 = {"order": 3, "variant": "logrho"}
_ARCSINE = (0.5, 0.5)  # the beta spacing's Beta(0.5, 0.5): t_i = t_min + (t_max - t_min) cos^2(pi i / 2N)
# family -> entries by increasing from_steps (the module docstring's table); rho=2.0 with time_uniform is
# DPM-Solver's time_quadratic, endpoint=False leaves t_min out (no model call spent there)
DEFAULTS: MappingProxyType = MappingProxyType({
    "discrete_vp": (_d(1, "ipndm", "time_uniform", _AFS, rho=2.0, endpoint=False),
                    _d(7, "ipndm", "time_uniform", _IPNDM3_ADAMS, rho=2.0, endpoint=False),
                    _d(16, "deis", "logsnr", _DEIS3)),
    "scaled_linear": (_d(1, "ipndm", "logsnr", _AFS, endpoint=False),
                      _d(5, "ipndm", "logsnr", _IPNDM3_ADAMS, endpoint=False), _d(16, "unipc", "logsnr", {"order": 3})),
    "cosine": (_d(1, "ipndm", "beta", {**_IPNDM3, "afs": True}, beta_shape=_ARCSINE),
               _d(4, "ipndm", "beta", _AFS, beta_shape=_ARCSINE),
               _d(9, "ipndm", "beta", _IPNDM3_ADAMS, beta_shape=_ARCSINE)),
    "continuous_vp": (_d(1, "ipndm", "logsnr", _AFS, endpoint=False),
                      _d(6, "ipndm", "time_uniform", _AFS, rho=2.0, endpoint=False),
                      _d(10, "ipndm", "time_uniform", _IPNDM3_ADAMS, rho=2.0, endpoint=False)),
    "edm": (_d(1, "ipndm", "logsnr", _IPNDM3_ADAMS, endpoint=False), _d(4, "ipndm", "logsnr", _AFS, endpoint=False),
            _d(12, "ipndm", "karras", _IPNDM3_ADAMS)),
    "zero_snr": (_d(1, "ipndm", "time_uniform", _AFS, rho=2.0, endpoint=False),
                 _d(7, "ipndm", "time_uniform", _IPNDM3_ADAMS, rho=2.0, endpoint=False)),
    "flow": (_d(1, "ipndm", "time_uniform", _AFS, rho=2.0, endpoint=False),
             _d(4, "ipndm", "beta", _AFS, beta_shape=_ARCSINE),
             _d(9, "ipndm", "beta", _IPNDM3_ADAMS, beta_shape=_ARCSINE)),
})


def family(schedule: Schedule) -> str:
    """The table's family of ``schedule``: flow for flow matching, zero_snr for any other schedule with
    alpha(t_max) = 0, else by class (cosine, scaled_linear, then discrete_vp for any other discrete VP;
    edm for others)."""
    if isinstance(schedule, FlowMatch):
        return "flow"
    if schedule.zero_terminal_snr:
        return "zero_snr"
    if isinstance(schedule, Cosine):
        return "cosine"
    if isinstance(schedule, ScaledLinear):
        return "scaled_linear"
    if isinstance(schedule, DiscreteVP):
        return "discrete_vp"
    if isinstance(schedule, ContinuousVP):
        return "continuous_vp"
    return "edm"  # EDM, or a schedule of its own with finite SNR: logsnr is defined on every such schedule


def default_for(schedule: Schedule, steps: int) -> Default:
    """The table's entry for ``steps`` steps on ``schedule`` (its spacing replaced by the schedule's own
    default where the schedule does not have it)."""
    entry = [d for d in DEFAULTS[family(schedule)] if d.from_steps <= steps][-1]
    if entry.spacing not in spacings(schedule) or (entry.grid_options.get("rho", 1.0) != 1 and schedule.t_min < 0):
        return Default(entry.from_steps, entry.sampler, entry.options, schedule.default_spacing)
    return entry
