"""Tiny context-dependent target/draft models shared by the RSD tests.

``order2(seed, V)`` gives order-2 tables ``T[a * V + b]`` (rows with zeros) both as exact
callables ``fn(prefix) -> (V,)`` (what ``refseq.decoding.speculative.exact`` reads) and as
``TabularLM`` step models (what the tree builders and the engine read), with the same numbers.
"""

from __future__ import annotations

import numpy as np

from refseq.models.toy_lm import TabularLM

CTX = (0, 1)  # committed context of the exact tests; the root token is 1


def tables(seed, V=3, p_zero=0.15, n=2):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        T = rng.dirichlet(np.ones(V), size=V * V)  # (V*V, V)
        T[rng.random(T.shape) < p_zero] = 0.0
        T[T.sum(1) == 0, 0] = 1.0
        out.append(T / T.sum(1, keepdims=True))
    return out


def as_fn(T):
    V = T.shape[1]
    return lambda pre: T[pre[-2] * V + pre[-1]]


def as_lm(T):
    with np.errstate(divide="ignore"):
        return TabularLM(3, np.log(T))


def order2(seed, V=3, p_zero=0.15):
    """``(target_fn, draft_fn, target_lm, draft_lm)`` with the same tables."""
    P, Q = tables(seed, V, p_zero)
    return as_fn(P), as_fn(Q), as_lm(P), as_lm(Q)


def node_paths(tree):
    """``path(i)``: tokens strictly below the root down to node i."""
    out = [()]
    for i in range(1, tree.num_nodes):
        out.append(out[tree.parents[i]] + (int(tree.tokens[i]),))
    return out


def tree_key(tree):
    return (tuple(int(x) for x in tree.parents), tuple(int(x) for x in tree.tokens))
