"""The cuda forward kernel: one block per (head, batch tile), the whole time loop in the block.

Block ``(n, tile)`` owns head n and batch rows ``tile * bt_rows ..``; its threads stride over
the cells ``(row, d)`` of the tile. Per step: load ``h_{t-1}`` of the tile into shared memory,
barrier; each thread forms all ``G_t`` pre-activations of its cell (``Wx``, then the recurrent
dot product over ``p`` in order, then ``b``) and applies the cell's pointwise update, the
shared cell math of :mod:`refseq.jit.recurrence.cells` over the device activations
(:mod:`refseq.cuda.recurrence.scalar`); barrier. ``R[:, n]`` is copied to shared memory once
when ``r_sh`` (it fits next to the ``h`` tile), else read from global memory. The NumPy mirror
:func:`refseq.cuda.recurrence.mirror.forward_blocked` follows these loops; the decomposition is
described in docs/hot-paths/recurrence-kernels.md.

``numba.cuda`` is bound to this module's global ``cuda`` by :func:`build` (the simulator swaps
that global for its per-thread fake module while a kernel runs; see
:func:`refseq.cuda.require_numba_cuda`).
"""

from __future__ import annotations

from refseq.cuda import require_numba_cuda
from refseq.cuda.recurrence import scalar
from refseq.jit.recurrence import cells
from refseq.jit.recurrence.cells import ELMAN, ELMAN_RELU, GRU, LSTM

cuda = None  # numba.cuda, bound by build()

_cells = cells.build(scalar)
elman_fwd, lstm_fwd, gru_fwd, slstm_fwd = (_cells.elman_fwd, _cells.lstm_fwd, _cells.gru_fwd,
                                           _cells.slstm_fwd)


def build(dtype):
    """The forward kernel for the NumPy float ``dtype`` (its literals and arrays in that dtype).

    ``forward[grid, threads, 0, shared](cell, Wx, R, b, st, gates, store_gates, clip, has_clip,
    clamp, bt_rows, r_sh)`` with ``grid = (N, ceil(B / bt_rows))``: ``st`` (S, B, T+1, N, D)
    holds ``states0`` at t = 0 and receives every step's states, ``gates`` (T, B, G_t, N, D)
    the cached gate values when ``store_gates``; ``cell`` is an id of
    :data:`refseq.jit.recurrence.cells.CELL_IDS`. Dynamic shared memory: the ``h`` tile
    (``bt_rows D`` values), then ``R[:, n]`` (``G_r D D``) when ``r_sh``.
    """
    global cuda
    cuda = require_numba_cuda(__name__)
    ZERO = dtype.type(0)

    @cuda.jit
    def forward(cell, Wx, R, b, st, gates, store_gates, clip, has_clip, clamp, bt_rows, r_sh):
        """Block (n, tile); thread strides over cells (row, d) of the tile."""
        n = cuda.blockIdx.x
        b0 = cuda.blockIdx.y * bt_rows
        B, T, Gw, N, D = Wx.shape
        Gt = b.shape[0]
        Gr = R.shape[0]
        woff = Gt - Gw
        bt = min(bt_rows, B - b0)
        sh = cuda.shared.array(0, dtype)  # [h tile: bt_rows * D][R[:, n]: Gr * D * D]
        roff = bt_rows * D
        i = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        if r_sh:
            for k in range(i, Gr * D * D, nthr):
                g = k // (D * D)
                q = k - g * D * D
                sh[roff + k] = R[g, n, q // D, q - (q // D) * D]
        pre = cuda.local.array(4, dtype)
        for t in range(T):
            for k in range(i, bt * D, nthr):
                sh[k] = st[0, b0 + k // D, t, n, k - (k // D) * D]
            cuda.syncthreads()
            for c in range(i, bt * D, nthr):
                bb = c // D
                d = c - bb * D
                ib = b0 + bb
                for j in range(Gt):
                    pre[j] = ZERO
                for k in range(Gw):
                    pre[k + woff] = Wx[ib, t, k, n, d]
                for k in range(Gr):
                    acc = ZERO
                    for p in range(D):
                        if r_sh:
                            acc += sh[roff + (k * D + d) * D + p] * sh[bb * D + p]
                        else:
                            acc += R[k, n, d, p] * sh[bb * D + p]
                    pre[k] += acc
                for j in range(Gt):
                    pre[j] += b[j, n, d]
                if cell == ELMAN or cell == ELMAN_RELU:
                    h = elman_fwd(pre[0], cell == ELMAN_RELU, clip, has_clip)
                    pre[0] = h  # the reference caches the clipped h
                elif cell == LSTM:
                    h, cc, ig, fg, z, o = lstm_fwd(pre[0], pre[1], pre[2], pre[3],
                                                   st[1, ib, t, n, d], clip, has_clip)
                    st[1, ib, t + 1, n, d] = cc
                    pre[0] = ig
                    pre[1] = fg
                    pre[2] = z
                    pre[3] = o
                elif cell == GRU:
                    h, r, z = gru_fwd(pre[0], pre[1], pre[2], pre[3], st[0, ib, t, n, d], clip,
                                      has_clip)
                    pre[1] = r
                    pre[2] = z
                else:  # SLSTM
                    h, cc, nn, m, z, o = slstm_fwd(pre[0], pre[1], pre[2], pre[3],
                                                   st[1, ib, t, n, d], st[2, ib, t, n, d],
                                                   st[3, ib, t, n, d], clip, has_clip, clamp)
                    st[1, ib, t + 1, n, d] = cc
                    st[2, ib, t + 1, n, d] = nn
                    st[3, ib, t + 1, n, d] = m
                    pre[2] = z
                    pre[3] = o
                st[0, ib, t + 1, n, d] = h
                if store_gates:
                    for j in range(Gt):
                        gates[t, ib, j, n, d] = pre[j]
            cuda.syncthreads()

    return forward
