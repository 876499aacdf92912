"""The released sampling rule of ADED (inherited from REST, arXiv 2311.08252): a *lossy*
acceptance kept for comparisons only (``aded/model/utils.py``: ``get_nucleus_posterior_mask``,
``evaluate_posterior``, ``update_inference_inputs``).

Every root-to-leaf path ``r`` of the tree (a row of ``retrieve_paths``) draws, at each of its
positions ``t``, its own independent sample ``s_{r,t} ~ p_{node(r, t-1)}`` (temperature, then
nucleus filtering); the accepted length of row r is the number of leading positions with
``s_{r,t} = token(r, t)``; the first row with the longest match wins, and the next token is a
fresh sample from the last accepted node's distribution.

Rows that share a prefix draw separate samples for it, and a rejection is followed by a draw
from ``p`` instead of a residual, so the output law is not the target's: with two depth-one
candidates ``x`` and ``y`` the first token is ``x`` with probability ``p(x) + (1 - p(x))(1 -
p(y)) p(x) > p(x)``. :func:`rest_nucleus_emission` gives the exact law of one step (for the
tests' ``lossless_error``); ADED's exact sampling uses ``point`` mode instead
(:func:`refseq.decoding.speculative.verify_tree_stochastic`).
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.buffers import retrieve_paths
from refseq.decoding.speculative.greedy import VerifyResult
from refseq.decoding.speculative.tree import DraftTree

__all__ = ["rest_nucleus_emission", "verify_rest_nucleus"]


def _draw(P: np.ndarray, u: float) -> int:
    """Smallest t with ``cumsum(P)[t] > u * sum(P)`` (never a zero-probability token)."""
    c = np.cumsum(P)
    return int(min(np.searchsorted(c, u * c[-1], side="right"), np.flatnonzero(P > 0)[-1]))


def _args(tree, target_probs):
    tree = _checks.check_instance(tree, DraftTree, "tree")
    p = _checks.float_array(target_probs, "target_probs").astype(np.float64)
    if p.ndim != 2 or p.shape[0] != tree.num_nodes:
        raise ValueError(f"target_probs must be (N, V) with N = {tree.num_nodes}, got "
                         f"{p.shape}")
    _checks.check_finite(p, "target_probs")
    if (p < 0).any() or (p.sum(axis=1) <= 0).any():
        raise ValueError("target_probs rows must be non-negative with a positive sum")
    if tree.tokens.max() >= p.shape[1]:
        raise ValueError(f"tree tokens must lie in [0, V = {p.shape[1]})")
    p = p / p.sum(axis=1, keepdims=True)
    retrieve, rlen = retrieve_paths(tree)
    return tree, p, retrieve, rlen


def verify_rest_nucleus(tree, target_probs, u_rows, u_final) -> VerifyResult:
    """One step of the released (lossy) rule with explicit uniforms.

    Parameters
    ----------
    tree : DraftTree
    target_probs : (N, V) float
        Warped target distributions (``target_probs[i]`` predicts node i's child).
    u_rows : (P, D) float in [0, 1)
        ``u_rows[r, t-1]`` draws row r's sample at position t (``P`` rows of
        ``retrieve_paths(tree)``, ``D = tree.max_depth``; unused entries are ignored).
    u_final : float in [0, 1)
        Draws the next token.
    """
    tree, p, retrieve, rlen = _args(tree, target_probs)
    u = _checks.float_array(u_rows, "u_rows").astype(np.float64)
    need = (retrieve.shape[0], tree.max_depth)
    if u.shape != need:
        raise ValueError(f"u_rows must have shape (P, D) = {need}, got {u.shape}")
    _checks.check_finite(u, "u_rows", hint="")
    if u.size and ((u < 0).any() or (u >= 1).any()):
        raise ValueError("u_rows must lie in [0, 1)")
    u_final = _checks.check_number(u_final, "u_final", low=0, high=1, high_open=True)
    best, best_k = 0, 0
    for r in range(retrieve.shape[0]):
        k = 0
        for t in range(1, int(rlen[r])):
            s = _draw(p[retrieve[r, t - 1]], u[r, t - 1])
            if s != tree.tokens[retrieve[r, t]]:
                break
            k += 1
        if k > best_k:  # strict: the first row with the longest match wins
            best, best_k = r, k
    path = retrieve[best, :best_k + 1].astype(np.int32)
    nxt = _draw(p[path[-1]], u_final)
    return VerifyResult(path, tree.tokens[path[1:]].astype(np.int32), nxt, best_k)


def rest_nucleus_emission(tree, target_probs, max_outcomes=10**6) -> dict:
    """Exact law ``{emitted tokens: probability}`` of :func:`verify_rest_nucleus` with i.i.d.
    uniform ``u_rows`` and ``u_final``: rows are independent, row r's accepted length k has
    ``P(k >= t) = prod_{s<=t} p_{node(r, s-1)}(token(r, s))``; the outcome of every combination
    of lengths is the first longest row, then the next token from its last node.
    ``max_outcomes`` (an integer >= 1) bounds the number of length combinations enumerated
    (``ValueError`` beyond it)."""
    tree, p, retrieve, rlen = _args(tree, target_probs)
    max_outcomes = _checks.check_number(max_outcomes, "max_outcomes", integer=True, low=1)
    dists = []
    for r in range(retrieve.shape[0]):
        ge = [1.0]  # P(k >= t)
        for t in range(1, int(rlen[r])):
            ge.append(ge[-1] * p[retrieve[r, t - 1], tree.tokens[retrieve[r, t]]])
        dists.append([ge[t] - (ge[t + 1] if t + 1 < len(ge) else 0.0) for t in range(len(ge))])
    n_outcomes = np.prod([len(d) for d in dists], dtype=float)
    if n_outcomes > max_outcomes:
        raise ValueError(f"too many combinations of accepted lengths to enumerate: "
                         f"{n_outcomes:.0f} > max_outcomes = {max_outcomes}")
    out = defaultdict(float)
    for ks in itertools.product(*[range(len(d)) for d in dists]):
        mass = float(np.prod([d[k] for d, k in zip(dists, ks)]))
        if mass == 0.0:
            continue
        best = int(np.argmax(ks))  # first maximum
        path = retrieve[best, :ks[best] + 1]
        prefix = tuple(int(x) for x in tree.tokens[path[1:]])
        for t in np.flatnonzero(p[path[-1]] > 0):
            out[prefix + (int(t),)] += mass * p[path[-1], t]
    return dict(out)
