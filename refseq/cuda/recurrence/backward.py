"""The cuda backward kernels: the forward's blocks in reverse time, then a ``dR``, ``db`` reduction.

``backward``: block ``(n, tile)`` as in :mod:`refseq.cuda.recurrence.forward`, two phases per
step. Phase 1: each thread adds the external gradient to its cells' running ``δs``, runs the
cell's pointwise backward (the shared cell math of :mod:`refseq.jit.recurrence.cells` over the
device activations of :mod:`refseq.cuda.recurrence.scalar`), writes ``δg~`` to global scratch
and its recurrent gates to shared memory; barrier. Phase 2 (unless ``cut``): the thread of cell
``(row, p)`` forms ``δh^{rec}[row, p] = sum_g sum_d R[g, n, d, p] δg~[row, g, d]`` (g outer,
d inner), clips it and adds it to ``δs_h``; barrier.

``reduce``: one thread per entry of ``dR`` then ``db``, summing over t = T-1, ..., 0 (outer)
and b = 0, ..., B-1 (inner). No atomics anywhere: bitwise-identical results run to run. The
NumPy mirror :func:`refseq.cuda.recurrence.mirror.backward_blocked` follows these loops
(docs/hot-paths/recurrence-kernels.md).

``numba.cuda`` is bound to this module's global ``cuda`` by :func:`build` (see
:func:`refseq.cuda.require_numba_cuda`).
"""

from __future__ import annotations

from refseq.cuda import require_numba_cuda
from refseq.cuda.recurrence import scalar
from refseq.jit.recurrence import cells
from refseq.jit.recurrence.cells import ELMAN, ELMAN_RELU, GRU, LSTM, SLSTM, clip_recurrent

cuda = None  # numba.cuda, bound by build()

_cells = cells.build(scalar)
elman_bwd, lstm_bwd, gru_bwd, slstm_bwd = (_cells.elman_bwd, _cells.lstm_bwd, _cells.gru_bwd,
                                           _cells.slstm_bwd)


def build(dtype):
    """``(backward, reduce)`` for the NumPy float ``dtype``.

    ``backward[grid, threads, 0, shared](cell, d_all, R, st, gates, ds, dg_all, cut, clip,
    has_clip, clamp, bt_rows, r_sh)`` with ``grid = (N, ceil(B / bt_rows))``: ``ds``
    (S, B, N, D) holds ``d_last_states`` and leaves with ``d_states0``; ``dg_all``
    (B, T, G_t, N, D) receives ``δg~``. Dynamic shared memory: the ``δg~_r`` tile
    (``bt_rows G_r D`` values), then ``R[:, n]`` when ``r_sh``.
    ``reduce[blocks, threads](dg_all, st, dR, db)`` with at least ``G_r N D D + G_t N D``
    threads.
    """
    global cuda
    cuda = require_numba_cuda(__name__)
    ZERO = dtype.type(0)

    @cuda.jit
    def backward(cell, d_all, R, st, gates, ds, dg_all, cut, clip, has_clip, clamp, bt_rows,
                 r_sh):
        """Block (n, tile), reverse time; ``ds`` (S, B, N, D) holds the running δs."""
        n = cuda.blockIdx.x
        b0 = cuda.blockIdx.y * bt_rows
        S, B, T, N, D = d_all.shape
        Gt = gates.shape[2]
        Gr = R.shape[0]
        bt = min(bt_rows, B - b0)
        sh = cuda.shared.array(0, dtype)  # [δg~_r tile: bt_rows * Gr * D][R[:, n]]
        roff = bt_rows * Gr * D
        i = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        if r_sh:
            for k in range(i, Gr * D * D, nthr):
                g = k // (D * D)
                q = k - g * D * D
                sh[roff + k] = R[g, n, q // D, q - (q // D) * D]
        dg = cuda.local.array(4, dtype)
        for step in range(T):
            t = T - 1 - step
            for c in range(i, bt * D, nthr):  # phase 1: pointwise backward of cell (row, d)
                bb = c // D
                d = c - bb * D
                ib = b0 + bb
                for s in range(S):
                    ds[s, ib, n, d] += d_all[s, ib, t, n, d]
                dh = ds[0, ib, n, d]
                if cell == ELMAN or cell == ELMAN_RELU:
                    dg[0] = elman_bwd(gates[t, ib, 0, n, d], dh, cell == ELMAN_RELU)
                    ds[0, ib, n, d] = ZERO
                elif cell == LSTM:
                    dg[0], dg[1], dg[2], dg[3], dc = lstm_bwd(
                        gates[t, ib, 0, n, d], gates[t, ib, 1, n, d], gates[t, ib, 2, n, d],
                        gates[t, ib, 3, n, d], st[1, ib, t + 1, n, d], st[1, ib, t, n, d], dh,
                        ds[1, ib, n, d])
                    ds[0, ib, n, d] = ZERO
                    ds[1, ib, n, d] = dc
                elif cell == GRU:
                    dg[0], dg[1], dg[2], dg[3], dh_prev = gru_bwd(
                        gates[t, ib, 0, n, d], gates[t, ib, 1, n, d], gates[t, ib, 2, n, d],
                        gates[t, ib, 3, n, d], st[0, ib, t, n, d], dh)
                    ds[0, ib, n, d] = dh_prev
                else:  # SLSTM
                    dg[0], dg[1], dg[2], dg[3], dc, dn = slstm_bwd(
                        gates[t, ib, 0, n, d], gates[t, ib, 1, n, d], gates[t, ib, 2, n, d],
                        gates[t, ib, 3, n, d], st[1, ib, t, n, d], st[2, ib, t, n, d],
                        st[3, ib, t, n, d], st[1, ib, t + 1, n, d], st[2, ib, t + 1, n, d],
                        st[3, ib, t + 1, n, d], dh, ds[1, ib, n, d], ds[2, ib, n, d], clamp)
                    ds[0, ib, n, d] = ZERO
                    ds[1, ib, n, d] = dc
                    ds[2, ib, n, d] = dn
                    ds[3, ib, n, d] = ZERO
                for j in range(Gt):
                    dg_all[ib, t, j, n, d] = dg[j]
                for k in range(Gr):
                    sh[(bb * Gr + k) * D + d] = dg[k]
            cuda.syncthreads()
            if not cut:
                for c in range(i, bt * D, nthr):  # phase 2: δh^{rec} of cell (row, p)
                    bb = c // D
                    p = c - bb * D
                    acc = ZERO
                    for k in range(Gr):
                        for d in range(D):
                            if r_sh:
                                acc += sh[roff + (k * D + d) * D + p] * sh[(bb * Gr + k) * D + d]
                            else:
                                acc += R[k, n, d, p] * sh[(bb * Gr + k) * D + d]
                    ds[0, b0 + bb, n, p] += clip_recurrent(acc, clip, has_clip, cell == SLSTM)
            cuda.syncthreads()

    @cuda.jit
    def reduce(dg_all, st, dR, db):
        """One thread per entry of dR (G_r, N, D, D) then db (G_t, N, D); sum over t desc, b."""
        B, T, Gt, N, D = dg_all.shape
        Gr = dR.shape[0]
        k = cuda.grid(1)
        nR = Gr * N * D * D
        if k < nR:
            g = k // (N * D * D)
            q = k - g * (N * D * D)
            n = q // (D * D)
            q = q - n * (D * D)
            d = q // D
            p = q - d * D
            acc = ZERO
            for step in range(T):
                t = T - 1 - step
                for ib in range(B):
                    acc += dg_all[ib, t, g, n, d] * st[0, ib, t, n, p]
            dR[g, n, d, p] = acc
        elif k < nR + Gt * N * D:
            q = k - nR
            g = q // (N * D)
            q = q - g * (N * D)
            n = q // D
            d = q - n * D
            acc = ZERO
            for step in range(T):
                t = T - 1 - step
                for ib in range(B):
                    acc += dg_all[ib, t, g, n, d]
            db[g, n, d] = acc

    return backward, reduce
