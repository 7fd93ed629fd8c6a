"""The frontier's peers (diffkit.bench.frontier_peers): each runs within its budget, counted, and converges."""

from __future__ import annotations

from itertools import combinations, pairwise

import numpy as np
import pytest
import torch

from diffkit.bench.frontier_peers import PEERS, run_peer
from diffkit.bench.metrics import median_error
from diffkit.bench.peers import gits
from diffkit.models import GaussianMixture, exact_sample
from diffkit.schedules import Linear

LOW, HIGH = 6, 24  # NFE budgets: the error must fall from the first to the second


@pytest.fixture(scope="module")
def problem():
    schedule = Linear()
    model = GaussianMixture.random(schedule, dim=8, components=3, seed=1)
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    warmup = torch.randn(32, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return schedule, model, x, warmup, exact_sample(model, schedule, x)


@pytest.mark.parametrize("peer", PEERS, ids=[p.label for p in PEERS])
def test_peer_counts_its_calls_and_converges(peer, problem):
    schedule, model, x, warmup, exact = problem
    errors = []
    for nfe in (LOW, HIGH):
        x0, extra = run_peer(peer, model, schedule, nfe, x, warmup)
        assert x0 is not None, extra
        assert torch.isfinite(x0).all()
        assert nfe - 1 <= extra["calls"] <= nfe  # counted; heun's last step takes one call of its two
        errors.append(median_error(x0, exact))
    assert errors[1] < errors[0], errors
    # Converging to the exact ODE's sample; the peers that stop at sigma_min (diff-sampler's default)
    # keep its residual, sigma_min * |eps| ~ 0.01 on the linear schedule.
    assert errors[1] < 0.05, errors


def test_gits_dp_is_the_exhaustive_minimum():
    rng = np.random.default_rng(0)
    M, K, coeff = 7, 3, 1.15
    cost = np.triu(rng.random((M, M)), 1)
    path = gits.dp(cost, K, coeff)
    assert path[0] == 0 and path[-1] == M - 1 and len(path) == K + 1 and np.all(np.diff(path) > 0)

    def total(p):  # V's recursion unrolled: the j-th jump weighted coeff^j
        return sum(coeff**j * cost[a, b] for j, (a, b) in enumerate(pairwise(p)))

    best = min(total([0, *mid, M - 1]) for mid in combinations(range(1, M - 1), K - 1))
    assert total(path) == pytest.approx(best)
