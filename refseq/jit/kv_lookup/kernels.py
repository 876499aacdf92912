"""Numba kernels of the key-value lookup hot path (docs/hot-paths/kv-lookup.md, "Decompositions").

``lookup_kernel``: ``prange`` over jobs ``(codebook c, chunk of CHUNK queries)``; each job owns a
scratch row ``D`` (M,) of distances and, per query,

1. **blocked distances** — ``D[j]`` for every key, with the keys transposed to ``kT`` (d_k, M) so
   the loop over j is contiguous and vectorises; ``u`` is unrolled by four and each step adds
   ``((D + t0^2) + t1^2) + ...`` — the reference's left-to-right order over ``u`` exactly, so
   the distances are bit-identical to the NumPy tier's (no ``fastmath``, no fused multiply-add);
2. **running top-k** — the distances as order-preserving integers (the float's bits, negatives
   flipped), masked keys set to the largest integer; keys are visited in blocks of ``BLOCK``.
   The block minima come first, and their k-th smallest ``T`` (the minima are k distinct keys
   <= T, so no block whose minimum exceeds T holds one of the k smallest); a block is also
   skipped when its minimum is not below the current k-th best; otherwise its keys are inserted
   one by one into the sorted register arrays ``best`` (k,) by insertion (strictly smaller only,
   so an equal distance keeps the lower index);
3. the values of the k keys are copied into ``fetched``.

``scatter_kernel``: ``prange`` over codebooks; each adds its (b, n, r) contributions in that
order (``np.add.at``'s order), so no two threads write one row and the sums are bit-identical.
``assign_kernel``: top-1 with the same distances and rule, then per codebook the counts and sums
in query order (b, n).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

CHUNK = 64  # queries per job
BLOCK = 32  # keys per block of the top-k skip test
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
    """``D[j] = 1 - dot(q, key_j) / (|q| |key_j|)`` (1 where the product is 0); ``kn`` holds
    ``sqrt(|key_j|^2)``, every sum left to right over u."""
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
    for j in range(M):
        den = qn * kn[j]
        D[j] = one - D[j] / den if den > zero else one


@numba.njit(cache=True, inline="always")
def _keys_of(D, mask, ikey, top):  # pragma: no cover - compiled
    """Order-preserving integers of ``D`` into ``ikey`` (``top`` where masked)."""
    bits = D.view(ikey.dtype)
    for j in range(D.shape[0]):
        b = bits[j]
        b = b if b >= 0 else b ^ top  # negative floats: reverse their order
        ikey[j] = b if mask[j] else top


@numba.njit(cache=True, inline="always")
def _topk(ikey, mask, k, bi, bk, mins, tk):  # pragma: no cover - compiled
    """The k smallest ``ikey`` among masked-in keys into ``bi``/``bk`` (sorted; ties: lower j).

    ``mins`` (number of blocks,) and ``tk`` (k,) are scratch. First the block minima and the
    k-th smallest of them, ``T``: the minima are distinct keys, so at least k keys are <= T and
    a block whose minimum exceeds T holds none of the k smallest. Then the remaining blocks in
    key order, each skipped when its minimum cannot beat the current k-th best.
    """
    M = ikey.shape[0]
    nb = mins.shape[0]
    n_t = 0
    for i in range(nb):
        lo, hi = i * BLOCK, min(i * BLOCK + BLOCK, M)
        m = ikey[lo]
        for j in range(lo + 1, hi):
            m = min(m, ikey[j])
        mins[i] = m
        if n_t < k:
            p = n_t
            n_t += 1
        elif m < tk[k - 1]:
            p = k - 1
        else:
            continue
        while p > 0 and tk[p - 1] > m:
            tk[p] = tk[p - 1]
            p -= 1
        tk[p] = m
    cnt = 0
    for i in range(nb):
        m = mins[i]
        if n_t == k and m > tk[k - 1]:
            continue  # the k smallest keys are all <= T = tk[k - 1]
        if cnt == k and m >= bk[k - 1]:
            continue  # nothing in this block beats the k-th best
        lo, hi = i * BLOCK, min(i * BLOCK + BLOCK, M)
        for j in range(lo, hi):
            if not mask[j]:
                continue
            x = ikey[j]
            if cnt < k:
                p = cnt
                cnt += 1
            elif x < bk[k - 1]:
                p = k - 1
            else:
                continue
            while p > 0 and bk[p - 1] > x:  # strictly greater move right: ties keep order
                bk[p] = bk[p - 1]
                bi[p] = bi[p - 1]
                p -= 1
            bk[p] = x
            bi[p] = j


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
        ikey = np.empty(M, ikey_proto.dtype)
        bi = np.empty(k, np.int64)
        bk = np.empty(k, ikey_proto.dtype)
        mins = np.empty((M + BLOCK - 1) // BLOCK, ikey_proto.dtype)
        tk = np.empty(k, ikey_proto.dtype)
        for q in range(q0, min(q0 + CHUNK, Q)):
            b, n = q // N, q % N
            if metric == L2:
                _row_l2(h[b, c, n], kT[c], D)
            else:
                _row_cosine(h[b, c, n], kT[c], kn[c], D)
            _keys_of(D, mask[c], ikey, top)
            _topk(ikey, mask[c], k, bi, bk, mins, tk)
            for r in range(k):
                j = bi[r]
                idx[b, c, n, r] = j
                dist[b, c, n, r] = D[j]
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
def assign_kernel(h, kT, mask, ikey_proto, a):  # pragma: no cover - compiled
    """``a[b, c, n]`` = the nearest (l2) masked-in key of each query (ties: lower index)."""
    B, C, N, d_k = h.shape
    M = kT.shape[2]
    Q = B * N
    n_chunks = (Q + CHUNK - 1) // CHUNK
    top = np.iinfo(ikey_proto.dtype).max
    for job in prange(C * n_chunks):
        c, q0 = job // n_chunks, (job % n_chunks) * CHUNK
        D = np.empty(M, h.dtype)
        ikey = np.empty(M, ikey_proto.dtype)
        bi = np.empty(1, np.int64)
        bk = np.empty(1, ikey_proto.dtype)
        mins = np.empty((M + BLOCK - 1) // BLOCK, ikey_proto.dtype)
        tk = np.empty(1, ikey_proto.dtype)
        for q in range(q0, min(q0 + CHUNK, Q)):
            b, n = q // N, q % N
            _row_l2(h[b, c, n], kT[c], D)
            _keys_of(D, mask[c], ikey, top)
            _topk(ikey, mask[c], 1, bi, bk, mins, tk)
            a[b, c, n] = bi[0]


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
