"""Training objectives: the times a step draws, and what the network regresses there.

Every objective draws a time t and noise eps, forms x_t = alpha_t x0 + sigma_t eps
(``schedule.add_noise``) and minimises ||target - model(x_t, t)||^2, where the target is
what the model predicts (``conversions.prediction_target``). Two things differ:

    ddpm          t ~ U{0, ..., T-1}                  target eps        Ho et al. 2020, Algorithm 1
    flow          t = t_max u, u = sigmoid(z),         target eps - x0   rectified flow with SD3's logit-normal(0, 1)
                  z ~ N(0, 1)                                            time density (Esser et al. 2024, sec. 3.1)
    flow_uniform  t = t_max u, u ~ U(0, 1)             target eps - x0   rectified flow (Liu et al. 2022,
                                                                         Lipman et al. 2023)

On a ``FlowMatch`` schedule t_max = T and sigma(t) = t / T = u, so the flow objectives train
x_t = (1 - sigma) x0 + sigma eps with the velocity target u = dx_t/dsigma = eps - x0, calling
the model at t = sigma T (diffusers' SD3 convention). The logit-normal density puts its mass in
the middle of the path and little at either end; uniform spreads it evenly (the choice for the
embedded digits-flow model is measured in ``scripts/train_digits_flow.sh``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffkit.conversions import PREDICTION_TYPES, prediction_target
from diffkit.schedules import Schedule

TIME_DENSITIES = ("discrete", "uniform", "logit_normal")


@dataclass(frozen=True)
class Objective:
    """One training objective: the target's prediction type, at times drawn from ``time``."""

    prediction_type: str  # what the model learns to output (conversions.PREDICTION_TYPES); its file says so
    time: str  # the density of t: one of TIME_DENSITIES (module docstring)

    def __post_init__(self) -> None:
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction_type {self.prediction_type!r}; "
                             f"allowed: {', '.join(PREDICTION_TYPES)}")
        if self.time not in TIME_DENSITIES:
            raise ValueError(f"unknown time density {self.time!r}; allowed: {', '.join(TIME_DENSITIES)}")

    def draw(self, schedule: Schedule, x0: torch.Tensor, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_t, t, target)`` for the batch ``x0``: t first, then eps, both from ``generator`` on the CPU."""
        batch = x0.shape[0]
        if self.time == "discrete":
            t = torch.randint(schedule.num_train_timesteps, (batch,), generator=generator)
        elif self.time == "uniform":
            t = torch.rand(batch, generator=generator) * schedule.t_max
        else:
            t = torch.sigmoid(torch.randn(batch, generator=generator)) * schedule.t_max
        eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        t = t.to(x0.device)
        x_t = schedule.add_noise(x0, eps, t)
        alpha, sigma = schedule.alpha(t).to(x0.dtype), schedule.sigma(t).to(x0.dtype)
        return x_t, t, prediction_target(self.prediction_type, x0, eps, alpha, sigma)


OBJECTIVES: dict[str, Objective] = {
    "ddpm": Objective("epsilon", "discrete"),
    "flow": Objective("flow", "logit_normal"),
    "flow_uniform": Objective("flow", "uniform"),
}


def get_objective(name: str) -> Objective:
    """The objective registered as ``name``; ValueError listing them otherwise."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown training objective {name!r}; allowed: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
