"""The baselines RSD is compared with (arXiv 2402.14160, Sec. 4): i.i.d. trees (SpecInfer),
K independent draft sequences (multi-draft, SpecTr's setting) and a single chain (Leviathan).

All three draw with replacement and are verified with ``mode="iid"``; duplicate siblings stay
separate nodes (merging them into one node biases the output, docs/speculative.md). They return
the same :class:`~refseq.papers.recursive_speculative_decoding.rsd_trees.RSDTree` record
(``perturbed`` is ``nan``: no perturbed values).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.recursive_speculative_decoding.rsd_trees import (
    RSDTree,
    _assemble,
    _context,
    _laws,
    _levelwise,
    _lm,
    _vocab,
    _warp_args,
)

__all__ = ["chain_tree", "iid_tree", "k_sequences_tree"]


def iid_tree(draft, context, root, branching, *, temperature=1.0, top_p=1.0,
             rng=None) -> RSDTree:
    """SpecInfer-style tree: ``branching[l-1]`` children per node of depth ``l - 1``, drawn
    i.i.d. from ``q_u`` by inverse CDF (duplicates kept and expanded as separate nodes).
    ``len(branching)`` batched draft calls; verify with ``mode="iid"``. Arguments as in
    :func:`~refseq.papers.recursive_speculative_decoding.rsd_trees.constant_branching_tree`."""
    return _levelwise(draft, context, root, branching, "iid", temperature, top_p, rng)


def k_sequences_tree(draft, context, root, K, L, *, temperature=1.0, top_p=1.0,
                     rng=None) -> RSDTree:
    """K independent draft sequences of length L sharing the root: K i.i.d. children of the
    root, then one sampled child per node. Nodes level by level; L batched draft calls (all K
    sequences advance together); ``K L`` drafts; verify with ``mode="iid"``."""
    lm = _lm(draft)
    V = _vocab(lm)
    ctx, root = _context(context, root, V)
    K = _checks.check_number(K, "K", integer=True, low=1)
    L = _checks.check_number(L, "L", integer=True, low=1)
    T, p = _warp_args(temperature, top_p)
    rng = _checks.check_rng(rng)
    parents, tokens, prefix, logp = [-1], [root], [[root]], [0.0]
    laws, frontier = {}, [0]
    for level in range(L):
        Q = _laws(lm, [ctx + prefix[u] for u in frontier], T, p, V)  # (F, V) one call
        new = []
        for f, u in enumerate(frontier):
            laws[u] = Q[f]
            for _ in range(K if level == 0 else 1):
                y = _draw(Q[f], rng.random())
                parents.append(u)
                tokens.append(y)
                prefix.append(prefix[u] + [y])
                logp.append(logp[u] + float(np.log(Q[f, y])))
                new.append(len(tokens) - 1)
        frontier = new
    pert = np.full(len(tokens), np.nan)
    pert[0] = 0.0
    return _assemble(parents, tokens, laws, pert, logp, L, "iid", V)


def chain_tree(draft, context, root, K, *, temperature=1.0, top_p=1.0, rng=None) -> RSDTree:
    """Leviathan et al.'s chain: K draft tokens sampled one after another (K draft calls, the
    last token's law is not needed), verified with ``mode="iid"`` (one child per node)."""
    K = _checks.check_number(K, "K", integer=True, low=1)
    return k_sequences_tree(draft, context, root, 1, K, temperature=temperature, top_p=top_p,
                            rng=rng)


def _draw(q: np.ndarray, u: float) -> int:
    """Inverse CDF: smallest t with ``cumsum(q)[t] > u * sum(q)``, never a zero-prob token."""
    c = np.cumsum(q)
    t = int(np.searchsorted(c, u * c[-1], side="right"))
    return min(t, int(np.flatnonzero(q > 0)[-1]))
