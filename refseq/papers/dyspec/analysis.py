"""Analysis utilities of DySpec (Xiong et al., arXiv 2410.11744): the objective the builder
maximises, the estimated and the exact expected acceptance of a tree, the acceptance-versus-
draft-probability records behind Figure 2 (Hypothesis 1), and the block counts of the tree
attention mask in creation and depth-first order (Appendix C).

- :func:`decision_objective`: ``T = sum of popped slot values`` (Eq. 11 with rho = 1).
- :func:`estimated_accepted`: ``sum_{c != root} val(c)`` (Eq. 6 with ``SD`` replaced by the draft
  probability, Hypothesis 1).
- :func:`exact_expected_emitted`: the mean number of tokens one verification step emits,
  integrated exactly by :mod:`refseq.decoding.speculative.exact` (Eq. 2 plus the final token).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.buffers import ancestor_mask
from refseq.decoding.speculative.exact import expected_emitted, step_emission_distribution
from refseq.decoding.speculative.tree import DraftTree, dfs_permutation, nonzero_blocks, permute

__all__ = ["acceptance_by_draft_prob", "block_counts", "decision_objective",
           "estimated_accepted", "exact_expected_emitted", "tested_children"]


def _values(x, name):
    arr = _checks.float_array(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of values, got shape {arr.shape}")
    _checks.check_finite(arr, name, hint="")
    return arr.astype(np.float64)


def decision_objective(popped_values) -> float:
    """``T = sum_c slot(c)`` over the drawn nodes (Eq. 11, rho = 1): the quantity the greedy
    builder maximises among trees whose draws are decided before their tokens are seen."""
    return float(_values(popped_values, "popped_values").sum())


def estimated_accepted(node_value) -> float:
    """``E_hat[#accepted] = sum_{c != root} val(c)`` (Eq. 6 under Hypothesis 1)."""
    v = _values(node_value, "node_value")
    if v.size == 0:
        raise ValueError("node_value must hold at least the root's value")
    return float(v[1:].sum())


def exact_expected_emitted(tree, target_probs, draft_probs, mode: str = "wor") -> float:
    """Exact mean number of tokens emitted by verifying ``tree`` (accepted tokens plus the final
    token), for target rows ``target_probs (N, V)`` and draft rows ``draft_probs (N, V)``."""
    return expected_emitted(step_emission_distribution(tree, target_probs, draft_probs, mode))


def tested_children(tree, path):
    """The children that a verification walk along ``path`` tested, in test order.

    At each node of the accepted ``path`` (root first) the walk tests the children in sibling
    order up to the accepted one; at the last node it tests them all (without-replacement
    testing stops earlier only when the draft support is used up, i.e. after the last child).

    Returns
    -------
    nodes : ndarray (k,) int64
    accepted : ndarray (k,) bool
    """
    tree = _checks.check_instance(tree, DraftTree, "tree")
    path = _checks.int_array(path, "path", ndim=1, low=0, high=tree.num_nodes, form="(m+1,)")
    if path.size == 0 or path[0] != 0 or any(tree.parents[b] != a
                                             for a, b in zip(path[:-1], path[1:])):
        raise ValueError("path must be a root-to-node path of tree, starting at 0")
    nodes, acc = [], []
    for k, u in enumerate(path):
        nxt = int(path[k + 1]) if k + 1 < path.size else -1
        for c in tree.children(int(u)):
            nodes.append(int(c))
            acc.append(int(c) == nxt)
            if c == nxt:
                break
    return np.array(nodes, np.int64), np.array(acc, bool)


def acceptance_by_draft_prob(draft_prob, accepted, bins=5) -> dict:
    """Acceptance rate of tested children by bins of their draft probability (Figure 2).

    Parameters
    ----------
    draft_prob : (n,) float in [0, 1]
        Each tested child's probability under its parent's *original* draft distribution.
    accepted : (n,) bool
    bins : int >= 1
        Equal-width bins on [0, 1]; the last is closed.

    Returns
    -------
    dict
        ``edges (bins+1,)``, ``counts (bins,)``, ``accepted (bins,)`` and ``rate (bins,)``
        (NaN for an empty bin).
    """
    p = _values(draft_prob, "draft_prob")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("draft_prob must lie in [0, 1]")
    a = np.asarray(accepted)
    if a.dtype != np.bool_ or a.shape != p.shape:
        raise TypeError(f"accepted must be a boolean array of shape {p.shape}")
    bins = _checks.check_number(bins, "bins", integer=True, low=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)  # (n,) bin of each record
    counts = np.bincount(idx, minlength=bins)
    hits = np.bincount(idx, weights=a.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    return {"edges": edges, "counts": counts, "accepted": hits.astype(np.int64), "rate": rate}


def block_counts(tree, block: int = 32) -> tuple:
    """Non-empty ``block x block`` tiles of the tree attention mask (Appendix C) in creation
    order and after the depth-first reordering: ``(creation, dfs)``. DySpec's heap creates nodes
    out of subtree order; the DFS order groups each subtree into a contiguous range."""
    tree = _checks.check_instance(tree, DraftTree, "tree")
    before = nonzero_blocks(ancestor_mask(tree), block)
    after = nonzero_blocks(ancestor_mask(permute(tree, dfs_permutation(tree))), block)
    return before, after
