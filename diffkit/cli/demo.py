"""Sample the analytic Gaussian mixture with every sampler and print error and time (ground truth known)."""

from __future__ import annotations

import argparse
import time

from diffkit.cli.args import MAX_SEED, integer

MAX_SAMPLES = 1_000_000  # x_T is n x 2 float64: 16 MB at most, per sampler run


def add_parser(parser: argparse.ArgumentParser) -> None:
    from diffkit.schedules import Linear

    # ddpm's leading spacing visits integer timesteps: 2..T steps (1 would start at t = 0)
    parser.add_argument("--steps", type=integer(2, Linear().num_train_timesteps), nargs="+", default=[10, 20, 50],
                        help="step counts to run")
    parser.add_argument("--n", type=integer(2, MAX_SAMPLES), default=2000, help="samples per run")
    parser.add_argument("--seed", type=integer(0, MAX_SEED - 1), default=0,
                        help="seed of x_T (the sampler noise uses seed + 1)")


def run(args: argparse.Namespace) -> int:
    import torch

    import diffkit
    from diffkit.models import GaussianMixture, exact_sample

    schedule = diffkit.schedules.Linear()
    model = GaussianMixture.two_d(schedule)
    x_T = torch.randn(args.n, 2, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
    n_ode = min(args.n, 200)
    exact = exact_sample(model, schedule, x_T[:n_ode])
    print("2-D Gaussian mixture (3 unequal modes), linear schedule, float64, "
          f"{args.n} samples; ODE error vs the exact probability-flow solution ({n_ode} samples)")
    diffkit.sample(model, schedule, "ddpm", steps=2, x=x_T[:8])  # warm-up: first-call costs are not per step
    print(f"{'sampler':<13} {'steps':>5} {'NFE':>4} {'ODE RMS err':>11} {'mode TV err':>11} {'ms/step':>8}")
    for name, info in diffkit.SAMPLERS.items():
        for steps in args.steps:
            start = time.perf_counter()
            x = diffkit.sample(model, schedule, name, steps=steps, x=x_T,
                               generator=torch.Generator().manual_seed(args.seed + 1))
            ms = 1e3 * (time.perf_counter() - start) / steps
            freq = model.assign_modes(x).bincount(minlength=len(model.weights)).double() / args.n
            tv = 0.5 * (freq - model.weights).abs().sum().item()
            ode = "-" if info.stochastic else f"{((x[:n_ode] - exact) ** 2).mean().sqrt().item():.2e}"
            print(f"{name:<13} {steps:>5} {info.nfe(steps):>4} {ode:>11} {tv:>11.4f} {ms:>8.2f}")
    return 0
