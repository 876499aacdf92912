"""Numba kernels of the key-value lookup hot path (docs/hot-paths/kv-lookup.md, "Decompositions").

``lookup_kernel``: ``prange`` over jobs ``(codebook c, chunk of CHUNK queries)``; each job owns a
scratch row ``D`` (M,) of distances and, per query,

1. **distances** — ``D[j]`` for every key, with the keys transposed to ``kT`` (d_k, M) so the
   loop over j is contiguous and vectorises; ``u`` is unrolled by four and each step adds
   ``((D + t0^2) + t1^2) + ...`` — the reference's left-to-right order over ``u`` exactly, so
   the distances are bit-identical to the NumPy tier's (no ``fastmath``, no fused multiply-add);
2. **order-preserving integers** ``X`` — the floats' bits: l2 distances are ``>= +0`` (or
   ``+inf``), whose bits already sort like the floats, so ``X`` is ``D`` viewed as integers;
   cosine distances may dip below 0 by rounding, so their negative bits are reversed into a
   second row. Masked keys get the largest integer (it sorts after ``+inf``'s bits);
3. **exact top-k** (:func:`_topk`) — the keys fall into ``GROUPS`` interleaved groups (key j in
   group ``j % GROUPS``). The group minima are one vectorised pass (an elementwise minimum over
   the rows of ``X`` seen as (M / GROUPS, GROUPS)), and ``T``, the k-th smallest of them, bounds
   the answer: the k groups whose minima are ``<= T`` hold k keys ``<= T``, so every one of the
   k smallest keys is ``<= T``. Only the groups with a minimum ``<= T`` are scanned, collecting
   the keys ``<= T`` (without branches); the few candidates are sorted into ``bi``/``bk`` by
   insertion on ``(X, j)`` — the tie rule, lower index first;
4. the distances and values of the k keys are copied out.

``scatter_kernel``: ``prange`` over codebooks; each adds its (b, n, r) contributions in that
order (``np.add.at``'s order), so no two threads write one row and the sums are bit-identical.
The assignment statistics reuse ``lookup_kernel`` (k = 1, no values to fetch); ``stats_kernel``
then adds per codebook the counts and sums in query order (b, n).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

CHUNK = 64  # queries per job
GROUPS = 32  # interleaved key groups of the top-k bound
L2, COSINE = 0, 1


@numba.njit(cache=True, inline="always")
def _row_l2(q, kT, D):  # pragma: no cover - compiled
    """``D[j] = sum_u (q[u] - kT[u, j])^2`` left to right over u, four u per pass."""
    d_k, M = kT.shape
    zero = D.dtype.type(0)
    for j in range(M):
        D[j] = zero
    u = 0
    while u + 4 <= d_k:
        a0, a1, a2, a3 = q[u], q[u + 1], q[u + 2], q[u + 3]
        for j in range(M):
            t0 = a0 - kT[u, j]
            t1 = a1 - kT[u + 1, j]
            t2 = a2 - kT[u + 2, j]
            t3 = a3 - kT[u + 3, j]
            D[j] = (((D[j] + t0 * t0) + t1 * t1) + t2 * t2) + t3 * t3
        u += 4
    while u < d_k:
        a0 = q[u]
        for j in range(M):
            t0 = a0 - kT[u, j]
            D[j] = D[j] + t0 * t0
        u += 1


@numba.njit(cache=True, inline="always")
def _row_cosine(q, kT, kn, D):  # pragma: no cover - compiled
    """``D[j] = 1 - dot(q, key_j) / (|q| |key_j|)`` (1 where the product is 0, +inf where it is
    inf / inf); ``kn`` holds ``sqrt(|key_j|^2)``, every sum left to right over u."""
    d_k, M = kT.shape
    zero, one = D.dtype.type(0), D.dtype.type(1)
    qq = zero
    for u in range(d_k):
        qq = qq + q[u] * q[u]
    qn = np.sqrt(qq)
    for j in range(M):
        D[j] = zero
    for u in range(d_k):
        a = q[u]
        for j in range(M):
            D[j] = D[j] + a * kT[u, j]
    inf = D.dtype.type(np.inf)
    for j in range(M):
        den = qn * kn[j]
        d = one - D[j] / den if den > zero else one
        D[j] = d if d == d else inf  # inf / inf (overflowed products) ranks as an overflow


@numba.njit(cache=True, inline="always")
def _ordered(D, mask, masked, cosine, X, top):  # pragma: no cover - compiled
    """Order-preserving integers of ``D`` in ``X`` (``D`` viewed as integers for l2, whose bits
    already sort; reversed negative bits for cosine), ``top`` at the keys ``mask`` leaves out
    (only rewritten when the codebook has any: ``masked``)."""
    bits = D.view(X.dtype)
    if cosine:
        for j in range(D.shape[0]):
            b = bits[j]
            X[j] = b if b >= 0 else b ^ top
    if masked:
        for j in range(D.shape[0]):
            X[j] = X[j] if mask[j] else top


@numba.njit(cache=True, inline="always")
def _topk(X, mask, k, bi, bk, mins, cand):  # pragma: no cover - compiled
    """The k smallest ``X`` among masked-in keys into ``bi``/``bk``, sorted by ``(X, j)``.

    ``mins`` (min(GROUPS, M),), ``cand`` (M,) are scratch. Group minima (group ``j % G``) by an
    elementwise minimum over the rows of ``X``; ``T`` = their k-th smallest (``bk`` as
    scratch); the keys ``<= T`` of the groups whose minimum is ``<= T`` (a superset of the
    answer: the k smallest keys are all ``<= T``); insertion of those on ``(X, j)``.
    """
    M, G = X.shape[0], mins.shape[0]
    for i in range(G):
        mins[i] = X[i]
    for r in range(1, M // G):
        row = X[r * G:(r + 1) * G]  # a slice: the loop over i vectorises
        for i in range(G):
            x, m = row[i], mins[i]
            mins[i] = x if x < m else m
    tail = X[(M // G) * G:]
    for i in range(tail.shape[0]):
        mins[i] = min(mins[i], tail[i])
    for p in range(k):
        bk[p] = np.iinfo(X.dtype).max
    for i in range(G):  # T: insertion into the sorted bk
        m = mins[i]
        if m < bk[k - 1]:
            p = k - 1
            while p > 0 and bk[p - 1] > m:
                bk[p] = bk[p - 1]
                p -= 1
            bk[p] = m
    T = bk[k - 1]
    n = 0
    for i in range(G):
        if mins[i] <= T:
            for j in range(i, M, G):
                cand[n] = j
                n += (X[j] <= T) & (mask[j] != 0)  # no branch: keep j when it qualifies
    cnt = 0
    for s in range(n):
        j = cand[s]
        x = X[j]
        if cnt < k:
            p = cnt
            cnt += 1
        elif x < bk[k - 1] or (x == bk[k - 1] and j < bi[k - 1]):
            p = k - 1
        else:
            continue
        while p > 0 and (bk[p - 1] > x or (bk[p - 1] == x and bi[p - 1] > j)):
            bk[p] = bk[p - 1]
            bi[p] = bi[p - 1]
            p -= 1
        bk[p] = x
        bi[p] = j


@numba.njit(cache=True, inline="always")
def _any_masked(mask):  # pragma: no cover - compiled
    for j in range(mask.shape[0]):
        if mask[j] == 0:
            return True
    return False


@numba.njit(cache=True, parallel=True)
def lookup_kernel(h, kT, kn, values, k, mask, metric, ikey_proto, idx, dist,
                  fetched):  # pragma: no cover - compiled
    """h (B, C, N, d_k); kT (C, d_k, M); kn (C, M) key norms (cosine); values (C, M, d_v);
    mask (C, M) uint8; outputs idx, dist (B, C, N, k), fetched (B, C, k, N, d_v)."""
    B, C, N, d_k = h.shape
    M = kT.shape[2]
    Q = B * N
    n_chunks = (Q + CHUNK - 1) // CHUNK
    top = np.iinfo(ikey_proto.dtype).max
    for job in prange(C * n_chunks):
        c, q0 = job // n_chunks, (job % n_chunks) * CHUNK
        D = np.empty(M, h.dtype)
        X = D.view(ikey_proto.dtype) if metric == L2 else np.empty(M, ikey_proto.dtype)
        bi = np.empty(k, np.int64)
        bk = np.empty(k, ikey_proto.dtype)
        mins = np.empty(min(GROUPS, M), ikey_proto.dtype)
        cand = np.empty(M, np.int64)
        masked = _any_masked(mask[c])
        for q in range(q0, min(q0 + CHUNK, Q)):
            b, n = q // N, q % N
            if metric == L2:
                _row_l2(h[b, c, n], kT[c], D)
            else:
                _row_cosine(h[b, c, n], kT[c], kn[c], D)
            _ordered(D, mask[c], masked, metric == COSINE, X, top)
            _topk(X, mask[c], k, bi, bk, mins, cand)
            for r in range(k):
                j = bi[r]
                idx[b, c, n, r] = j
                dist[b, c, n, r] = D[j]  # j is masked in: D[j] was not rewritten
                for v in range(values.shape[2]):
                    fetched[b, c, r, n, v] = values[c, j, v]


@numba.njit(cache=True, parallel=True)
def key_norms_kernel(keys, kn):  # pragma: no cover - compiled
    """``kn[c, j] = sqrt(sum_u keys[c, j, u]^2)``, left to right over u."""
    C, M, d_k = keys.shape
    for c in prange(C):
        for j in range(M):
            s = keys.dtype.type(0)
            for u in range(d_k):
                s = s + keys[c, j, u] * keys[c, j, u]
            kn[c, j] = np.sqrt(s)


@numba.njit(cache=True, parallel=True)
def scatter_kernel(d_fetched, idx, out):  # pragma: no cover - compiled
    """out (C, M, d_v) zeroed; ``out[c, idx[b, c, n, r]] += d_fetched[b, c, r, n]`` in the
    order (b, n, r) within each codebook (one codebook per thread)."""
    B, C, k, N, d_v = d_fetched.shape
    for c in prange(C):
        for b in range(B):
            for n in range(N):
                for r in range(k):
                    j = idx[b, c, n, r]
                    for v in range(d_v):
                        out[c, j, v] += d_fetched[b, c, r, n, v]


@numba.njit(cache=True, parallel=True)
def stats_kernel(h, a, counts, sums):  # pragma: no cover - compiled
    """Per codebook (one per thread): counts and sums of the assigned queries, order (b, n)."""
    B, C, N, d_k = h.shape
    for c in prange(C):
        for b in range(B):
            for n in range(N):
                j = a[b, c, n]
                counts[c, j] += 1
                for u in range(d_k):
                    sums[c, j, u] += h[b, c, n, u]
