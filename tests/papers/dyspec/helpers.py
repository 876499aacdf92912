"""Shared fixtures of the DySpec tests: context-dependent tiny tables (with zero entries) as
callables ``sequence -> (V,)`` (the convention of the core's exact calculator)."""

from __future__ import annotations

import numpy as np


def table_fn(seed: int, V: int = 3, kind: int = 0, zero_prob: float = 0.4, order: int = 2):
    """A random conditional law of the next token given the last ``order`` tokens; each row has
    one entry set to zero with probability ``zero_prob`` (then renormalised)."""
    memo = {}

    def fn(seq):
        key = tuple(int(t) for t in seq[-order:])
        if key not in memo:
            rng = np.random.default_rng([seed, kind, *key])
            row = rng.dirichlet(np.full(V, 0.7))
            if rng.random() < zero_prob:
                row[rng.integers(V)] = 0.0
            memo[key] = row / row.sum()
        return memo[key]

    return fn


def triples(outcomes):
    """``enumerate_outcomes`` results -> ``(DraftTree, prefixes, prob)`` for mixture_emission."""
    return [(r.tree, list(r.prefixes), p) for r, p in outcomes]
