"""The jit forward: the per-row pointwise update and the three plans' kernels.

A *job* is one head ``n`` and one tile of batch rows (``"heads"``, ``"gemm"``) or one head and
one chunk of hidden units (``"units"``); :func:`refseq.jit.recurrence.planner.plan` picks the
plan and docs/hot-paths/recurrence-kernels.md describes the decomposition. Per step a job forms
the pre-activations ``(Wx + Ry) + b`` in the reference's order and calls :func:`_cell_fwd`, the
cell's update over one row of units, which calls the shared cell math
(:mod:`refseq.jit.recurrence.cells`) with the jit activations
(:mod:`refseq.jit.recurrence.scalar`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from refseq.jit.recurrence import cells, scalar
from refseq.jit.recurrence.cells import ELMAN, ELMAN_RELU, GRU, LSTM
from refseq.jit.tile import TILE_ROWS, TILE_VECTORS, VECTOR_BYTES, tile_gemm

_cells = cells.build(scalar)
elman_fwd, lstm_fwd, gru_fwd, slstm_fwd = (_cells.elman_fwd, _cells.lstm_fwd, _cells.gru_fwd,
                                           _cells.slstm_fwd)


@numba.njit(cache=True, error_model="numpy")
def _cell_fwd(cell, pre, st, n_units, clip, has_clip, clamp):  # pragma: no cover - compiled
    """One step of the cell's pointwise update for units ``0..n_units-1`` of one row, in place.

    ``pre (G_t, D)`` holds the pre-activations (Wx + Ry) + b and receives the gate values the
    reference caches (post-activation i, f, z, o; r, z for the GRU; z, o for the sLSTM; the
    clipped h for Elman); ``st (S, D)`` holds the previous states and receives the new ones.
    The loops start at 0 (callers pass per-chunk buffers): with an offset of unknown sign,
    Numba's negative-index wraparound on every access stops the loops vectorising (measured
    80 ns per LSTM cell instead of 21).
    """
    if cell == ELMAN or cell == ELMAN_RELU:
        relu = cell == ELMAN_RELU
        for d in range(n_units):
            h = elman_fwd(pre[0, d], relu, clip, has_clip)
            st[0, d] = h
            pre[0, d] = h  # the reference caches the clipped h
    elif cell == LSTM:
        for d in range(n_units):
            h, c, i, f, z, o = lstm_fwd(pre[0, d], pre[1, d], pre[2, d], pre[3, d], st[1, d],
                                        clip, has_clip)
            st[0, d] = h
            st[1, d] = c
            pre[0, d] = i
            pre[1, d] = f
            pre[2, d] = z
            pre[3, d] = o
    elif cell == GRU:
        for d in range(n_units):
            h, r, z = gru_fwd(pre[0, d], pre[1, d], pre[2, d], pre[3, d], st[0, d], clip,
                              has_clip)
            st[0, d] = h
            pre[1, d] = r
            pre[2, d] = z
    else:  # SLSTM
        for d in range(n_units):
            h, c, n, m, z, o = slstm_fwd(pre[0, d], pre[1, d], pre[2, d], pre[3, d], st[1, d],
                                         st[2, d], st[3, d], clip, has_clip, clamp)
            st[0, d] = h
            st[1, d] = c
            st[2, d] = n
            st[3, d] = m
            pre[2, d] = z
            pre[3, d] = o


@numba.njit(cache=True, error_model="numpy")
def _fwd_job(cell, Wx, R2, b, s0, clip, has_clip, clamp, out, t_off, gates, store_gates, n, b0,
             b1):  # pragma: no cover - compiled
    """Write ``out[:, b, t + t_off, n]`` (and ``gates[t, b, :, n]``) for rows b0..b1-1."""
    B, T, Gw, N, D = Wx.shape
    Gt = b.shape[0]
    Gr = R2.shape[1] // D
    S = s0.shape[0]
    woff = Gt - Gw
    bt = b1 - b0
    dt = Wx.dtype
    zero = dt.type(0.0)
    hT = np.empty((D, bt), dt)  # h_{t-1}^T: the GEMM operand
    RyT = np.empty((Gr * D, bt), dt)  # (R h_{t-1})^T, row g * D + d
    sl = np.empty((bt, S, D), dt)  # previous states of each batch row
    pre = np.empty((Gt, D), dt)  # gate pre-activations of one row
    for bb in range(bt):
        for s in range(S):
            for d in range(D):
                sl[bb, s, d] = s0[s, b0 + bb, n, d]
        for d in range(D):
            hT[d, bb] = s0[0, b0 + bb, n, d]
    Rn = R2[n]  # (G_r D, D), contiguous
    for t in range(T):
        np.dot(Rn, hT, RyT)
        for bb in range(bt):
            ib = b0 + bb
            # pre = (Wx + Ry) + b, the reference's order (preactivations)
            for j in range(Gt):
                pre[j, :] = zero
            for k in range(Gw):
                for d in range(D):
                    pre[k + woff, d] = Wx[ib, t, k, n, d]
            for k in range(Gr):
                for d in range(D):
                    pre[k, d] += RyT[k * D + d, bb]
            for j in range(Gt):
                for d in range(D):
                    pre[j, d] += b[j, n, d]
            st = sl[bb]
            _cell_fwd(cell, pre, st, D, clip, has_clip, clamp)
            for s in range(S):
                for d in range(D):
                    out[s, ib, t + t_off, n, d] = st[s, d]
            for d in range(D):
                hT[d, bb] = st[0, d]
            if store_gates:
                for j in range(Gt):
                    for d in range(D):
                        gates[t, ib, j, n, d] = pre[j, d]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _fwd_units(cell, Wx, Rp, b, s0, clip, has_clip, clamp, out, t_off, gates, store_gates,
               chunks, Gr, dup):  # pragma: no cover - compiled
    """The ``"units"`` plan: every step, ``prange`` over (head, chunk of hidden units) jobs.

    A job owns units ``d0..d1-1`` of head n. ``Rp[job]`` is its panel of ``R^T (D, ncol)``,
    stored tile by tile (:func:`~refseq.jit.recurrence.planner._pack_units`): column
    ``g dup + k`` holds ``R[g, n, d0 + k, :]``, zero beyond ``d1 - d0`` and beyond ``G_r dup``.
    Each step the job forms its columns of ``Ry = h_{t-1} R^T`` for all batch rows with the
    register tile of :mod:`refseq.jit.tile` (batch padded to whole tiles with zero rows), then
    the pointwise update of its units for every batch row, and writes its part of ``h_t``.
    ``h`` is double-buffered: step t reads buffer ``t % 2`` (complete after the previous
    parallel loop) and writes the other, so no job reads a unit that another job is writing.
    Each job keeps its units' states and pre-activations in its own buffers, indexed from 0
    (see :func:`_cell_fwd`).
    """
    B, T, Gw, N, D = Wx.shape
    Gt = b.shape[0]
    S = s0.shape[0]
    woff = Gt - Gw
    nc = chunks.shape[0]
    ncol = Rp.shape[1] * Rp.shape[3]
    dt = Wx.dtype
    zero = dt.type(0.0)
    MB, NVW = TILE_ROWS, TILE_VECTORS * (VECTOR_BYTES // Wx.itemsize)  # a tile's rows, columns
    Bp = -(-B // MB) * MB
    h = np.zeros((2, N, Bp, D), dt)  # h_{t-1}, padded batch rows stay 0
    Ry = np.empty((N * nc, Bp, ncol), dt)
    sl = np.empty((N * nc, B, S, dup), dt)  # a job's states, row by row
    pre = np.empty((N * nc, Gt, dup), dt)  # a job's pre-activations of one row
    h_flat, Ry_flat, Rp_flat = h.reshape(-1), Ry.reshape(-1), Rp.reshape(-1)
    for job in range(N * nc):
        n, d0, d1 = job // nc, chunks[job % nc, 0], chunks[job % nc, 1]
        for ib in range(B):
            for s in range(S):
                for k in range(d1 - d0):
                    sl[job, ib, s, k] = s0[s, ib, n, d0 + k]
            for k in range(d1 - d0):
                h[0, n, ib, d0 + k] = s0[0, ib, n, d0 + k]
    for t in range(T):
        cur, nxt = t % 2, (t + 1) % 2
        for job in prange(N * nc):
            n, d0, d1 = job // nc, chunks[job % nc, 0], chunks[job % nc, 1]
            du = d1 - d0
            for m0 in range(0, Bp, MB):
                for j0 in range(0, ncol, NVW):
                    tile_gemm(Rp_flat, (job * ncol + j0) * D, NVW,
                              h_flat, ((cur * N + n) * Bp + m0) * D, D,
                              Ry_flat, (job * Bp + m0) * ncol + j0, ncol, D)
            p = pre[job]
            for ib in range(B):
                Ry_b = Ry[job, ib]
                # pre = (Wx + Ry) + b, the reference's order (preactivations)
                for j in range(Gt):
                    bj = b[j, n, d0:d1]
                    if j >= woff:
                        wx = Wx[ib, t, j - woff, n, d0:d1]
                        if j < Gr:
                            ry = Ry_b[j * dup:j * dup + du]
                            for k in range(du):
                                p[j, k] = (wx[k] + ry[k]) + bj[k]
                        else:
                            for k in range(du):
                                p[j, k] = wx[k] + bj[k]
                    else:  # gates without an input part (G_r > G_w)
                        ry = Ry_b[j * dup:j * dup + du]
                        for k in range(du):
                            p[j, k] = (zero + ry[k]) + bj[k]
                st = sl[job, ib]
                _cell_fwd(cell, p, st, du, clip, has_clip, clamp)
                for s in range(S):
                    o = out[s, ib, t + t_off, n, d0:d1]
                    for k in range(du):
                        o[k] = st[s, k]
                h_next = h[nxt, n, ib, d0:d1]
                for k in range(du):
                    h_next[k] = st[0, k]
                if store_gates:
                    for j in range(Gt):
                        gj = gates[t, ib, j, n, d0:d1]
                        for k in range(du):
                            gj[k] = p[j, k]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _fwd_heads(cell, Wx, R2, b, s0, clip, has_clip, clamp, out, t_off, gates, store_gates,
               tiles):  # pragma: no cover - compiled
    """``prange`` over (head, batch tile) jobs; ``tiles`` are (b0, b1) rows of the batch."""
    N = R2.shape[0]
    nt = tiles.shape[0]
    for job in prange(N * nt):
        n = job // nt
        k = job % nt
        _fwd_job(cell, Wx, R2, b, s0, clip, has_clip, clamp, out, t_off, gates, store_gates, n,
                 tiles[k, 0], tiles[k, 1])


@numba.njit(cache=True, error_model="numpy")
def _fwd_serial(cell, Wx, R2, b, s0, clip, has_clip, clamp, out, t_off, gates, store_gates,
                tiles):  # pragma: no cover - compiled
    """The same jobs one after the other (BLAS parallelises each large GEMM)."""
    N = R2.shape[0]
    nt = tiles.shape[0]
    for job in range(N * nt):
        _fwd_job(cell, Wx, R2, b, s0, clip, has_clip, clamp, out, t_off, gates, store_gates,
                 job // nt, tiles[job % nt, 0], tiles[job % nt, 1])

