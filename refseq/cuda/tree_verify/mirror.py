"""NumPy mirror of the cuda stochastic-verification kernel's decomposition (never imports numba).

The kernel (:mod:`refseq.cuda.tree_verify.kernels`) runs one block of ``threads`` threads per
tree. The walk itself is the reference's (:func:`refseq.tree_verify.reference.walk_stochastic`);
only the vocabulary-wide sums are ordered differently, and this module reproduces that order so
the GPU's float64 rounding can be predicted:

* :func:`block_sum` — thread ``t`` sums ``x[t], x[t + threads], ...`` left to right, then a
  shared-memory tree reduction halves the active threads: ``s[t] += s[t + h]`` for
  ``h = threads/2, ..., 1``. Used for the residual's clipped mass and the ``wor`` remaining mass.
* :func:`block_cdf` — the CDF in tiles of ``threads`` consecutive entries: an inclusive
  Hillis-Steele scan inside each tile, plus the carry (the running total of the previous tiles,
  accumulated tile by tile); the threshold is ``u * (final carry)``.
* :func:`draw_blocked` — the first index ``t`` with ``P[t] > 0`` and ``cdf[t] > threshold``
  (a block-wide minimum), or the last positive index if rounding leaves none.
"""

from __future__ import annotations

import numpy as np

THREADS = 128  #: threads per block (a power of two)
IID, WOR, POINT = 0, 1, 2


def block_sum(x, threads=THREADS):
    """``sum(x)`` in the kernel's order: strided per-thread sums, then a halving tree."""
    V = x.shape[0]
    part = np.zeros(threads)
    for k in range(0, V, threads):  # iteration k of every thread, in order
        chunk = x[k:k + threads]
        part[:chunk.shape[0]] += chunk
    h = threads // 2
    while h > 0:
        part[:h] = part[:h] + part[h:2 * h]
        h //= 2
    return float(part[0])


def _hillis_steele(x):
    """Inclusive Hillis-Steele scan over the last axis (all rounds read before writing)."""
    off = 1
    while off < x.shape[-1]:
        x = np.concatenate([x[..., :off], x[..., :-off] + x[..., off:]], axis=-1)
        off *= 2
    return x


def block_cdf(P, threads=THREADS):
    """``(cdf (V,), total)`` in the kernel's order: tile scans plus a left-to-right carry."""
    V = P.shape[0]
    n_tiles = -(-V // threads)
    tiles = np.zeros(n_tiles * threads)
    tiles[:V] = P
    scans = _hillis_steele(tiles.reshape(n_tiles, threads))  # (n_tiles, threads)
    carry = 0.0
    cdf = np.empty_like(scans)
    for k in range(n_tiles):
        cdf[k] = carry + scans[k] if k else scans[k]
        carry = carry + scans[k, -1] if k else scans[k, -1]
    return cdf.reshape(-1)[:V], carry


def draw_blocked(P, u, threads=THREADS):
    """The kernel's inverse-CDF draw from ``P`` with uniform ``u``."""
    cdf, total = block_cdf(P, threads)
    hit = np.flatnonzero((P > 0) & (cdf > u * total))
    return int(hit[0]) if hit.size else int(np.flatnonzero(P > 0)[-1])


def walk_blocked(parents, tokens, target, draft, mode, virtual, u_accept, u_final, n,
                 threads=THREADS):
    """One tree's walk as the kernel computes it: ``(path list, next_token)``."""
    node, path = 0, [0]
    P = target[0].astype(np.float64)
    V = P.shape[0]
    while True:
        accepted = -1
        if mode == WOR:
            qm = draft[node].astype(np.float64)
        for c in range(node + 1, n):
            if parents[c] != node:
                continue
            y = tokens[c]
            if mode == IID:
                Q = draft[node].astype(np.float64)
            elif mode == WOR:
                rem = block_sum(qm, threads)
                if rem <= 0:
                    break
                Q = qm / rem
            else:
                Q = np.zeros(V)
                Q[y] = 1.0
            if not virtual[c] and u_accept[c] * Q[y] < P[y]:
                accepted = c
                break
            r = np.maximum(P - Q, 0.0)
            s = block_sum(r, threads)
            if s > 0:
                P = r / s
            if mode == WOR:
                qm[y] = 0.0
        if accepted < 0:
            return path, draw_blocked(P, u_final, threads)
        node = accepted
        path.append(node)
        P = target[node].astype(np.float64)


def tree_verify_stochastic(parents, tokens, target, draft, mode, virtual, u_accept, u_final,
                           num_nodes, width, threads=THREADS):
    """The whole batch, tree by tree, on validated arrays (as :mod:`refseq.cuda.tree_verify`
    receives them): ``(path (B, width), num_accepted (B,), next_token (B,))``."""
    B = parents.shape[0]
    path = np.full((B, width), -1, np.int32)
    num_acc, nxt = np.empty(B, np.int32), np.empty(B, np.int32)
    for b in range(B):
        p, t = walk_blocked(parents[b], tokens[b], target[b], None if draft is None else draft[b],
                            mode, virtual[b], u_accept[b], u_final[b], num_nodes[b], threads)
        path[b, :len(p)], num_acc[b], nxt[b] = p, len(p) - 1, t
    return path, num_acc, nxt
