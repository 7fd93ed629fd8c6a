"""Seed lists: ``"0-49999"`` or ``"0,5,10-19"`` (EDM's ``parse_int_list`` syntax), and their fixed batches.

A seed names one sample: its x_T, its label and its sampler noise all come from
``torch.Generator().manual_seed(seed)``. Batches are consecutive runs of ``batch`` seeds of
the list, whatever the number of processes, so every process feeds the model the same
tensors a single process would (see :mod:`diffkit.generate.job` for why that matters).
"""

from __future__ import annotations

import re

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a non-negative int64
MAX_SEEDS = 100_000_000  # a bound on one job's list, so that a typo cannot exhaust memory
_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """The seeds of ``text``: comma-separated items, each ``N`` or an inclusive range ``A-B`` (A <= B).

    ValueError (one line, saying what is allowed) for an empty list, a malformed or reversed item,
    a seed above 2^63 - 1, more than 10^8 seeds, or a seed listed twice.
    """
    items = text.split(",") if text.strip() else []
    if not items:
        raise ValueError("--seeds is empty; give seeds as N, A-B (inclusive) or a comma list such as 0-9,20")
    seeds: list[int] = []
    for item in items:
        match = _ITEM.match(item.strip())
        if match is None:
            raise ValueError(f"--seeds item {item.strip()!r} is malformed; allowed: N or A-B with 0 <= A <= B, "
                             f"comma-separated (e.g. 0-49999 or 0,5,10-19)")  # fmt: skip
        first = int(match.group(1))
        last = first if match.group(2) is None else int(match.group(2))
        if last < first:
            raise ValueError(f"--seeds range {item.strip()!r} is reversed; write it as {last}-{first}")
        if last > MAX_SEED:
            raise ValueError(f"--seeds: seed {last} exceeds the largest generator seed 2^63 - 1")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise ValueError(f"--seeds lists more than {MAX_SEEDS:,} seeds; split the job")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        seen: set[int] = set()
        twice = next(s for s in seeds if s in seen or seen.add(s))
        raise ValueError(f"--seeds lists seed {twice} more than once")
    return seeds


def batches(seeds: list[int], batch: int) -> list[list[int]]:
    """``seeds`` cut into consecutive batches of ``batch`` (the last one may be shorter)."""
    return [seeds[i : i + batch] for i in range(0, len(seeds), batch)]
