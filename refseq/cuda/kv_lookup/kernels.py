"""numba.cuda kernels of the key-value lookup hot path (docs/hot-paths/kv-lookup.md).

* ``lookup`` — one block per (codebook c, tile of ``threads`` queries), one thread per query.
  The block streams codebook c's keys through shared memory, ``SHARED // d_k`` keys at a time
  (every thread copies a strided part, then a barrier); each thread computes the distance of its
  query to every key of the tile (left to right over ``u``, as the reference) and keeps its
  running top-k in per-thread local arrays by insertion (strictly smaller only, keys in
  increasing j, so ties keep the lower index; masked keys skipped). Finally each thread writes
  its k indices, distances and fetched values. Built per (dtype, k, threads): the local arrays
  and the shared tile need compile-time sizes. Cosine also accumulates ``|key|^2`` per key.
* ``scatter`` — one thread per (codebook, value column): it adds its column of every
  ``d_fetched[b, c, r, n]`` into ``d_values[c, idx[b, c, n, r]]`` in the order (b, n, r); no
  two threads touch one entry (no atomics), so the sums equal ``np.add.at``'s bit for bit.
* ``stats`` — one thread per (codebook, column u) of the assignment sums, in query order; the
  thread of column 0 also counts.

Mirror of the lookup's decomposition: :mod:`refseq.cuda.kv_lookup.mirror`. ``numba.cuda`` is
bound to this module's global ``cuda`` on first use (:func:`bind_cuda`).
"""

from __future__ import annotations

import numpy as np

from refseq.cuda import require_numba_cuda

cuda = None  # numba.cuda, bound on first use
_KERNELS: dict = {}
SHARED = 2048  #: floats of the shared key tile (keys per tile: SHARED // d_k)
THREADS = 128  #: queries per block
COLUMNS = 64  #: threads per block of the one-thread-per-column kernels


def bind_cuda():
    global cuda
    if cuda is None:
        cuda = require_numba_cuda("refseq.cuda.kv_lookup")
    return cuda


def lookup_kernel(dtype, k, threads=THREADS, shared=SHARED):
    """The ``lookup`` kernel for ``dtype``, ``k`` and block size ``threads``, built once."""
    key = ("lookup", np.dtype(dtype), k, threads, shared)
    if key not in _KERNELS:
        bind_cuda()
        _KERNELS[key] = _build_lookup(np.dtype(dtype), k, threads, shared)
    return _KERNELS[key]


def column_kernels():
    """``{"scatter": kernel, "stats": kernel}``, built once."""
    if "columns" not in _KERNELS:
        bind_cuda()
        _KERNELS["columns"] = _build_columns()
    return _KERNELS["columns"]


def _build_lookup(dtype, K, THREADS, SHARED):
    import math

    import numba

    FT = numba.from_dtype(dtype)

    @cuda.jit
    def lookup(h, keys, values, mask, metric, idx, dist, fetched):
        B, C, N, d_k = h.shape
        M = keys.shape[1]
        Q = B * N
        tiles = (Q + THREADS - 1) // THREADS
        c, t = cuda.blockIdx.x // tiles, cuda.threadIdx.x
        q = (cuda.blockIdx.x % tiles) * THREADS + t
        live = q < Q
        b, n = (q // N, q % N) if live else (0, 0)
        sk = cuda.shared.array(SHARED, FT)
        bd = cuda.local.array(K, FT)
        bi = cuda.local.array(K, numba.int64)
        zero, one = FT(0), FT(1)
        qq = zero
        for u in range(d_k):
            qq = qq + h[b, c, n, u] * h[b, c, n, u]
        qn = FT(math.sqrt(qq))  # correctly rounded in dtype, as np.sqrt
        cnt = 0
        per = SHARED // d_k  # keys per tile
        for j0 in range(0, M, per):
            jn = min(per, M - j0)
            cuda.syncthreads()  # the previous tile is read by every thread
            for e in range(t, jn * d_k, THREADS):
                sk[e] = keys[c, j0 + e // d_k, e % d_k]
            cuda.syncthreads()
            if not live:
                continue
            for jj in range(jn):
                j = j0 + jj
                if mask[c, j] == 0:
                    continue
                d = zero
                if metric == 0:
                    for u in range(d_k):
                        x = h[b, c, n, u] - sk[jj * d_k + u]
                        d = d + x * x
                else:
                    kk = zero
                    for u in range(d_k):
                        y = sk[jj * d_k + u]
                        d = d + h[b, c, n, u] * y
                        kk = kk + y * y
                    den = qn * FT(math.sqrt(kk))
                    d = one - d / den if den > zero else one
                    if d != d:  # inf / inf: an overflowed distance, ranked as +inf
                        d = FT(math.inf)
                if cnt < K:
                    p = cnt
                    cnt += 1
                elif d < bd[K - 1]:
                    p = K - 1
                else:
                    continue
                while p > 0 and bd[p - 1] > d:
                    bd[p] = bd[p - 1]
                    bi[p] = bi[p - 1]
                    p -= 1
                bd[p] = d
                bi[p] = j
        if live:
            for r in range(K):
                j = bi[r]
                idx[b, c, n, r] = j
                dist[b, c, n, r] = bd[r]
                for v in range(values.shape[2]):
                    fetched[b, c, r, n, v] = values[c, j, v]

    return lookup


def _build_columns():
    @cuda.jit
    def scatter(d_fetched, idx, out):
        B, C, k, N, d_v = d_fetched.shape
        g = cuda.grid(1)
        if g >= C * d_v:
            return
        c, v = g // d_v, g % d_v
        for b in range(B):
            for n in range(N):
                for r in range(k):
                    j = idx[b, c, n, r]
                    out[c, j, v] += d_fetched[b, c, r, n, v]

    @cuda.jit
    def stats(h, idx, counts, sums):
        B, C, N, d_k = h.shape
        g = cuda.grid(1)
        if g >= C * d_k:
            return
        c, u = g // d_k, g % d_k
        for b in range(B):
            for n in range(N):
                j = idx[b, c, n, 0]
                sums[c, j, u] += h[b, c, n, u]
                if u == 0:
                    counts[c, j] += 1

    return {"scatter": scatter, "stats": stats}
