"""numba.cuda kernels of the tree-verification hot path (docs/hot-paths/tree-verify.md).

* ``masks`` — one thread per (tree, node): zero the row, walk the parent links.
* ``greedy`` — one thread per tree (the walk is sequential and touches N entries per level).
* ``paths`` — one thread per tree: accepted length of each row, then the first best row.
* ``stochastic`` — one block per tree, ``THREADS`` threads. The walk's control flow is uniform
  over the block (every thread reads the same shared sums and global P entries after a
  barrier); the threads stride over V for the residual ``max(P - Q, 0)``, its sum and the
  ``wor`` remaining mass (:func:`block_sum`: strided partial sums, then a halving tree), and the
  inverse-CDF draw (tiles of THREADS entries, a Hillis-Steele scan in shared memory plus a
  carry, written to the global ``cdf`` array; then a block-wide minimum of the first index
  above the threshold). Working arrays ``P``, ``qm``, ``cdf`` (B, V) float64 in global memory.
  Mirror: :mod:`refseq.cuda.tree_verify.mirror`.
* ``kv`` — one block per (tree, layer, k/v, head): threads stride over dh, each copies its
  columns for j = 0 .. m in increasing j (no barrier needed: one thread owns a column).

``numba.cuda`` is bound to this module's global ``cuda`` on first use (:func:`bind_cuda`).
"""

from __future__ import annotations

from refseq.cuda import require_numba_cuda

cuda = None  # numba.cuda, bound on first use
_KERNELS: dict = {}
IID, WOR, POINT = 0, 1, 2


def bind_cuda():
    global cuda
    if cuda is None:
        cuda = require_numba_cuda("refseq.cuda.tree_verify")
    return cuda


def kernel_table(threads):
    """``{name: kernel}`` for a block of ``threads`` (a power of two) threads, built once."""
    if threads not in _KERNELS:
        bind_cuda()
        _KERNELS[threads] = _build(threads)
    return _KERNELS[threads]


def _build(threads):
    THREADS = threads
    import numba

    F64, I32 = numba.float64, numba.int32

    @cuda.jit
    def masks(parents, num_nodes, n_past, allow, positions):
        job = cuda.grid(1)
        B, N = parents.shape
        if job >= B * N:
            return
        b, i = job // N, job % N
        for j in range(N):
            allow[b, i, j] = 0
        if i >= num_nodes[b]:
            allow[b, i, i] = 1
            positions[b, i] = n_past[b]
            return
        j, d = i, 0
        while j >= 0:
            allow[b, i, j] = 1
            j = parents[b, j]
            d += 1
        positions[b, i] = n_past[b] + d - 1

    @cuda.jit
    def greedy(parents, tokens, argmax, num_nodes, path, num_acc, next_tok):
        b = cuda.grid(1)
        if b >= parents.shape[0]:
            return
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

    @cuda.jit
    def paths(retrieve, retrieve_len, node_token, node_argmax, accept_len, best, last):
        b = cuda.grid(1)
        B, P = retrieve_len.shape
        if b >= B:
            return
        top, arg = -2, 0
        for p in range(P):
            k = -1
            if retrieve_len[b, p] > 0:
                k = 0
                while (k + 1 < retrieve_len[b, p] and node_token[b, retrieve[b, p, k + 1]]
                       == node_argmax[b, retrieve[b, p, k]]):
                    k += 1
            accept_len[b, p] = k
            if k > top:
                top, arg = k, p
        best[b] = arg
        last[b] = retrieve[b, arg, top]

    @cuda.jit(device=True)
    def block_sum(x, b, V, red, t):
        """sum(x[b, :V]) in the mirror's order; every thread gets the result."""
        s = 0.0
        for v in range(t, V, THREADS):
            s += x[b, v]
        red[t] = s
        cuda.syncthreads()
        h = THREADS // 2
        while h > 0:
            if t < h:
                red[t] = red[t] + red[t + h]
            cuda.syncthreads()
            h //= 2
        out = red[0]
        cuda.syncthreads()
        return out

    @cuda.jit
    def stochastic(parents, tokens, target, draft, mode, virtual, u_acc, u_fin, num_nodes,
                   P, qm, r, path, num_acc, next_tok):
        b = cuda.blockIdx.x
        t = cuda.threadIdx.x
        red = cuda.shared.array(THREADS, F64)
        idx = cuda.shared.array(THREADS, I32)
        V = target.shape[2]
        n = num_nodes[b]
        for v in range(t, V, THREADS):
            P[b, v] = target[b, 0, v]
        if t == 0:
            path[b, 0] = 0
        cuda.syncthreads()
        node, depth = 0, 0
        while True:
            accepted = -1
            if mode == WOR:
                for v in range(t, V, THREADS):
                    qm[b, v] = draft[b, node, v]
                cuda.syncthreads()
            for c in range(node + 1, n):
                if parents[b, c] != node:
                    continue
                y = tokens[b, c]
                rem = 1.0
                if mode == WOR:
                    rem = block_sum(qm, b, V, red, t)
                    if rem <= 0:
                        break
                    qy = qm[b, y] / rem
                elif mode == IID:
                    qy = draft[b, node, y]
                else:
                    qy = 1.0
                hit = virtual[b, c] == 0 and u_acc[b, c] * qy < P[b, y]
                cuda.syncthreads()  # every thread has read P[b, y] before anyone writes P
                if hit:
                    accepted = c
                    break
                for v in range(t, V, THREADS):
                    if mode == WOR:
                        q = qm[b, v] / rem
                    elif mode == IID:
                        q = draft[b, node, v]
                    else:
                        q = 1.0 if v == y else 0.0
                    r[b, v] = max(P[b, v] - q, 0.0)
                cuda.syncthreads()
                s = block_sum(r, b, V, red, t)
                if s > 0:
                    for v in range(t, V, THREADS):
                        P[b, v] = r[b, v] / s
                if mode == WOR and t == 0:
                    qm[b, y] = 0.0
                cuda.syncthreads()
            if accepted < 0:
                break
            node = accepted
            depth += 1
            if t == 0:
                path[b, depth] = node
            for v in range(t, V, THREADS):
                P[b, v] = target[b, node, v]
            cuda.syncthreads()
        # inverse CDF: tile scans into r (as the cdf), then the first index above u * total
        carry = 0.0
        for k0 in range(0, V, THREADS):
            v = k0 + t
            red[t] = P[b, v] if v < V else 0.0
            cuda.syncthreads()
            off = 1
            while off < THREADS:
                x = red[t - off] if t >= off else 0.0
                cuda.syncthreads()
                if t >= off:
                    red[t] = x + red[t]
                cuda.syncthreads()
                off *= 2
            if v < V:
                r[b, v] = carry + red[t] if k0 > 0 else red[t]
            tile_total = red[THREADS - 1]
            carry = carry + tile_total if k0 > 0 else tile_total
            cuda.syncthreads()
        thr = u_fin[b] * carry
        first, last = V, -1
        for v in range(t, V, THREADS):
            if P[b, v] > 0:
                last = v
                if r[b, v] > thr and v < first:
                    first = v
        idx[t] = first
        cuda.syncthreads()
        h = THREADS // 2
        while h > 0:
            if t < h:
                idx[t] = min(idx[t], idx[t + h])
            cuda.syncthreads()
            h //= 2
        first = idx[0]
        cuda.syncthreads()
        idx[t] = last
        cuda.syncthreads()
        h = THREADS // 2
        while h > 0:
            if t < h:
                idx[t] = max(idx[t], idx[t + h])
            cuda.syncthreads()
            h //= 2
        if t == 0:
            num_acc[b] = depth
            next_tok[b] = first if first < V else idx[0]

    @cuda.jit
    def kv(cache, n_past, path, num_acc):
        blk = cuda.blockIdx.x
        B, L, _, H, _, dh = cache.shape
        h = blk % H
        k = (blk // H) % 2
        layer = (blk // (2 * H)) % L
        b = blk // (2 * H * L)
        for d in range(cuda.threadIdx.x, dh, cuda.blockDim.x):
            for j in range(num_acc[b] + 1):
                cache[b, layer, k, h, n_past[b] + j, d] = cache[b, layer, k, h,
                                                               n_past[b] + path[b, j], d]

    return {"masks": masks, "greedy": greedy, "paths": paths, "stochastic": stochastic,
            "kv": kv}
