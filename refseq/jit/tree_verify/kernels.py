"""Numba kernels of the tree-verification hot path: ``prange`` over trees, plain loops inside.

Each tree is one job; inside it the walk is sequential over depth and siblings and a plain loop
over the vocabulary, all in float64 (float32 probabilities are widened on load). Sums run left
to right, so they can differ from the NumPy reference's pairwise ``sum`` in the last bits: the
decisions agree except where a uniform lies within rounding of a boundary
(docs/hot-paths/tree-verify.md, "Tie and boundary rules"). No ``fastmath``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

IID, WOR, POINT = 0, 1, 2


@numba.njit(cache=True, parallel=True)
def masks_kernel(parents, num_nodes, n_past, allow, positions):  # pragma: no cover - compiled
    """One job per (b, i): walk the parent links of node i, mark them, count the depth."""
    B, N = parents.shape
    for job in prange(B * N):
        b, i = job // N, job % N
        for j in range(N):
            allow[b, i, j] = 0
        if i >= num_nodes[b]:  # padding: itself only
            allow[b, i, i] = 1
            positions[b, i] = n_past[b]
            continue
        j, d = i, 0
        while j >= 0:
            allow[b, i, j] = 1
            j = parents[b, j]
            d += 1
        positions[b, i] = n_past[b] + d - 1


@numba.njit(cache=True, parallel=True)
def greedy_kernel(parents, tokens, argmax, num_nodes, path, num_acc, next_tok):
    """One job per tree: accept the first child whose token is the arg-max of its parent."""
    B = parents.shape[0]
    for b in prange(B):  # pragma: no cover - compiled
        n = num_nodes[b]
        node, depth = 0, 0
        path[b, 0] = 0
        while True:
            hit = -1
            for c in range(node + 1, n):
                if parents[b, c] == node and tokens[b, c] == argmax[b, node]:
                    hit = c
                    break
            if hit < 0:
                break
            node = hit
            depth += 1
            path[b, depth] = node
        num_acc[b] = depth
        next_tok[b] = argmax[b, node]


@numba.njit(cache=True, parallel=True)
def paths_kernel(retrieve, retrieve_len, node_token, node_argmax, accept_len, best, last):
    """One job per tree: the accepted length of each row, then the first best row."""
    B, P = retrieve_len.shape
    for b in prange(B):  # pragma: no cover - compiled
        top = -2
        for p in range(P):
            k = -1
            if retrieve_len[b, p] > 0:
                k = 0
                while (k + 1 < retrieve_len[b, p] and node_token[b, retrieve[b, p, k + 1]]
                       == node_argmax[b, retrieve[b, p, k]]):
                    k += 1
            accept_len[b, p] = k
            if k > top:
                top = k
                best[b] = p
        last[b] = retrieve[b, best[b], top]


@numba.njit(cache=True)
def _residual(P, Q, r):  # pragma: no cover - compiled
    """P <- norm(max(P - Q, 0)) in place, unless the clipped mass is 0 (then P stays)."""
    s = 0.0
    for v in range(P.shape[0]):
        r[v] = max(P[v] - Q[v], 0.0)
        s += r[v]
    if s > 0:
        for v in range(P.shape[0]):
            P[v] = r[v] / s


@numba.njit(cache=True)
def _draw(P, u):  # pragma: no cover - compiled
    """Smallest t with P[t] > 0 and cumsum(P)[t] > u * total (left to right)."""
    total = 0.0
    for v in range(P.shape[0]):
        total += P[v]
    thr = u * total
    c = 0.0
    last = -1
    for v in range(P.shape[0]):
        c += P[v]
        if P[v] > 0:
            last = v
            if c > thr:
                return v
    return last


@numba.njit(cache=True, parallel=True)
def stochastic_kernel(parents, tokens, target, draft, mode, virtual, u_acc, u_fin, num_nodes,
                      path, num_acc, next_tok):  # pragma: no cover - compiled
    """One job per tree: the walk of :func:`refseq.tree_verify.reference.walk_stochastic`."""
    B, N, V = target.shape
    for b in prange(B):
        P = np.empty(V)
        Q = np.empty(V)
        qm = np.empty(V)
        r = np.empty(V)
        n = num_nodes[b]
        for v in range(V):
            P[v] = target[b, 0, v]
        node, depth = 0, 0
        path[b, 0] = 0
        while True:
            accepted = -1
            if mode == WOR:
                for v in range(V):
                    qm[v] = draft[b, node, v]
            for c in range(node + 1, n):
                if parents[b, c] != node:
                    continue
                y = tokens[b, c]
                if mode == IID:
                    for v in range(V):
                        Q[v] = draft[b, node, v]
                elif mode == WOR:
                    rem = 0.0
                    for v in range(V):
                        rem += qm[v]
                    if rem <= 0:
                        break
                    for v in range(V):
                        Q[v] = qm[v] / rem
                else:
                    for v in range(V):
                        Q[v] = 0.0
                    Q[y] = 1.0
                if virtual[b, c] == 0 and u_acc[b, c] * Q[y] < P[y]:
                    accepted = c
                    break
                _residual(P, Q, r)
                if mode == WOR:
                    qm[y] = 0.0
            if accepted < 0:
                break
            node = accepted
            depth += 1
            path[b, depth] = node
            for v in range(V):
                P[v] = target[b, node, v]
        num_acc[b] = depth
        next_tok[b] = _draw(P, u_fin[b])


@numba.njit(cache=True, parallel=True)
def row_status_kernel(x, b_idx, i_idx, tol, out):  # pragma: no cover - compiled
    """One job per listed row, one read of it: 0 valid, 1 not finite, 2 a negative entry,
    3 a sum farther than ``tol`` from 1 (the codes of ``refseq.tree_verify.checks.row_status``)."""
    for k in prange(b_idx.shape[0]):
        b, i = b_idx[k], i_idx[k]
        s, finite, negative = 0.0, True, False
        for v in range(x.shape[2]):
            e = x[b, i, v]
            s += e
            if not np.isfinite(e):
                finite = False
            elif e < 0:
                negative = True
        out[k] = 1 if not finite else (2 if negative else (3 if abs(s - 1.0) > tol else 0))


@numba.njit(cache=True, parallel=True)
def kv_kernel(cache, n_past, path, num_acc):  # pragma: no cover - compiled
    """One job per (b, layer): copy slot n_past + path[j] to n_past + j, increasing j."""
    B, L, _, H, _, dh = cache.shape
    for job in prange(B * L):
        b, layer = job // L, job % L
        for j in range(num_acc[b] + 1):
            src, dst = n_past[b] + path[b, j], n_past[b] + j
            if src == dst:
                continue
            for k in range(2):
                for h in range(H):
                    for d in range(dh):
                        cache[b, layer, k, h, dst, d] = cache[b, layer, k, h, src, d]
