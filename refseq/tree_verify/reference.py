"""Per-tree walks of the NumPy tier, with the intermediate values that bound their decisions.

One tree at a time, float64 throughout, in the notation of docs/hot-paths/tree-verify.md:
``P`` the current target distribution at the node being expanded, ``Q_j`` the proposal law of its
j-th child, ``res(P, Q) = norm(max(P - Q, 0))`` with the fallback to ``P`` when the clipped mass
is 0 (Leviathan et al., arXiv 2211.17192, Sec. 2.3; SpecInfer, arXiv 2305.09781, Sec. 4.2).

:func:`walk_stochastic` can record a trace of every decision margin (``u * Q(y) - P(y)`` of each
test, the clipped residual mass, ``cdf[t] - u * total`` of the final draw) so that tests can tell
a genuine disagreement between tiers from a uniform that lies on a rounding boundary.
"""

from __future__ import annotations

import numpy as np

IID, WOR, POINT = 0, 1, 2


def children(parents, n, node):
    """Children of ``node`` in sibling order (increasing index) among nodes ``0 .. n-1``."""
    return [c for c in range(node + 1, n) if parents[c] == node]


def walk_greedy(parents, tokens, argmax, n):
    """Greedy tree walk: accept the first child whose token is ``argmax[node]``.

    Returns ``(path list of node ids starting at 0, next_token)``.
    """
    node, path = 0, [0]
    while True:
        hit = [c for c in children(parents, n, node) if tokens[c] == argmax[node]]
        if not hit:
            return path, int(argmax[node])
        node = hit[0]
        path.append(node)


def residual(P, Q, trace=None):
    """``norm(max(P - Q, 0))`` (float64), or ``P`` itself when the clipped mass is 0."""
    r = np.maximum(P - Q, 0.0)  # (V,)
    s = r.sum()
    if trace is not None:
        trace.append(("mass", float(s)))
    return r / s if s > 0 else P


def draw(P, u, trace=None):
    """Inverse CDF: the smallest t with ``P[t] > 0`` and ``cumsum(P)[t] > u * cumsum(P)[-1]``,
    accumulated left to right in float64; the last positive entry if rounding leaves none, and
    -1 if ``P`` has no positive entry (an invalid row, rejected after the walk)."""
    cdf = np.cumsum(P)  # (V,), sequential
    thr = u * cdf[-1]
    hit = np.flatnonzero((P > 0) & (cdf > thr))
    if trace is not None:
        pos = P > 0
        trace.append(("cdf", float(np.min(np.abs(cdf[pos] - thr), initial=np.inf))))
    if hit.size:
        return int(hit[0])
    pos = np.flatnonzero(P > 0)
    return int(pos[-1]) if pos.size else -1


def walk_stochastic(parents, tokens, target, draft, mode, virtual, u_accept, u_final, n,
                    trace=None):
    """Recursive rejection sampling down one tree (SpecInfer's multi-step speculative sampling).

    At node ``u`` with children ``c_1..c_k``: ``P_1 = target[u]``; child j (token ``y``) is
    accepted iff ``u_accept[c_j] * Q_j(y) < P_j(y)`` (virtual nodes: never), else
    ``P_{j+1} = res(P_j, Q_j)``. ``Q_j`` is ``draft[u]`` (iid), ``draft[u]`` without the tokens of
    earlier siblings, renormalised by its remaining sum (wor; testing stops when that sum is 0),
    or ``onehot(y)`` (point). After an acceptance the walk descends; otherwise (or at a leaf)
    ``next_token ~ P`` by :func:`draw` with ``u_final``.

    Returns ``(path list, next_token)``; ``trace`` (a list) receives ``(kind, margin)`` pairs.
    """
    node, path = 0, [0]
    P = target[0].astype(np.float64)  # (V,)
    V = P.shape[0]
    while True:
        accepted = -1
        if mode == WOR:
            qm = draft[node].astype(np.float64)  # draft mass not yet drawn, (V,)
        for c in children(parents, n, node):
            y = tokens[c]
            if mode == IID:
                Q = draft[node].astype(np.float64)
            elif mode == WOR:
                rem = qm.sum()
                if rem <= 0:  # every draft token is drawn: no further child can exist
                    break
                Q = qm / rem
            else:
                Q = np.zeros(V)
                Q[y] = 1.0
            if not virtual[c]:
                gap = u_accept[c] * Q[y] - P[y]
                if trace is not None:
                    trace.append(("accept", float(gap)))
                if gap < 0:  # u * Q(y) < P(y)
                    accepted = c
                    break
            P = residual(P, Q, trace)
            if mode == WOR:
                qm[y] = 0.0
        if accepted < 0:
            return path, draw(P, u_final, trace)
        node = accepted
        path.append(node)
        P = target[node].astype(np.float64)


def margins(parents, tokens, target, draft, mode, virtual, u_accept, u_final, n):
    """``(path, next_token, trace)`` of :func:`walk_stochastic` with its decision margins.

    The margin of an acceptance test is ``|u * Q(y) - P(y)|``; of the final draw, the distance
    from the threshold ``u * total`` to the nearest CDF value of a positive entry; of a residual,
    its clipped mass (the distance to the fallback). A tier computing the same walk with sums in
    another order can only decide differently where one of these is within its rounding error.
    """
    trace = []
    path, nxt = walk_stochastic(parents, tokens, target, draft, mode, virtual, u_accept,
                                u_final, n, trace)
    return path, nxt, trace


BOUNDARY_TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
"""Distance to a decision boundary below which tiers may legitimately decide differently."""


def near_boundary(parents, tokens, target_probs, draft_probs, mode, virtual, u_accept, u_final,
                  num_nodes):
    """(B,) bool: the trees of a batch whose reference walk has a decision margin (see
    :func:`margins`) below :data:`BOUNDARY_TOL` of the probabilities' dtype: an acceptance gap
    ``|u Q(y) - P(y)|``, a CDF step ``|cdf[t] - u total|`` or a positive residual mass.

    Tiers that sum in another order may decide otherwise on exactly these trees; every other
    tree must give identical integers on every tier. Arguments as
    :func:`refseq.tree_verify.tree_verify_stochastic` (``mode`` as its int code; ``draft_probs``
    and ``virtual`` may be None).
    """
    target_probs = np.asarray(target_probs)
    tol = BOUNDARY_TOL[target_probs.dtype]
    B, N = np.shape(parents)
    virt = np.zeros((B, N), np.uint8) if virtual is None or np.size(virtual) == 0 else virtual
    out = np.zeros(B, bool)
    for b in range(B):
        draft = None if draft_probs is None or np.size(draft_probs) == 0 else draft_probs[b]
        *_, trace = margins(parents[b], tokens[b], target_probs[b], draft, mode, virt[b],
                            u_accept[b], u_final[b], num_nodes[b])
        out[b] = any(abs(m) < tol if kind != "mass" else 0 < m < tol for kind, m in trace)
    return out
