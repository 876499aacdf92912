"""The jit backward: the forward's (head, batch tile) jobs in reverse time.

Each step a job adds the external gradient to its rows' running ``δs``, runs the cell's
pointwise backward (the shared cell math of :mod:`refseq.jit.recurrence.cells` with the jit
activations), and forms ``δh^{rec} = R_n^T δg~_r`` with one GEMM (``np.dot`` calls BLAS), cut or
clipped per entry. ``dR`` and ``db`` are never accumulated across threads: each job keeps its
``δg~_r`` for all steps (T bt, G_r D) and its ``h_{t-1}`` (T bt, D), one contiguous row per
(step, batch row), and forms its partial ``dR_n = δG~^T H`` with one GEMM after its time loop;
:func:`refseq.jit.recurrence.flashrnn_backward` sums the partials of a head's batch tiles in
tile order. No atomics, a fixed order per output: bitwise-identical results run to run (for a
fixed thread count and BLAS). Plans: ``"heads"`` (:func:`_bwd_heads`) and ``"gemm"``
(:func:`_bwd_serial`); docs/hot-paths/recurrence-kernels.md.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from refseq.jit.recurrence import cells, scalar
from refseq.jit.recurrence.cells import ELMAN, ELMAN_RELU, GRU, LSTM, SLSTM, clip_recurrent

_cells = cells.build(scalar)
elman_bwd, lstm_bwd, gru_bwd, slstm_bwd = (_cells.elman_bwd, _cells.lstm_bwd, _cells.gru_bwd,
                                           _cells.slstm_bwd)


@numba.njit(cache=True, error_model="numpy")
def _bwd_job(cell, d_all, d_last, R2, R2T, states, gates, cut, clip, has_clip, clamp, dWx,
             ds0, dR_part, db_part, job, n, b0, b1):  # pragma: no cover - compiled
    S, B, T, N, D = d_all.shape
    Gt = gates.shape[2]
    Gw = dWx.shape[2]
    Gr = R2.shape[1] // D
    woff = Gt - Gw
    bt = b1 - b0
    dt = d_all.dtype
    zero = dt.type(0.0)
    slstm = cell == SLSTM
    ds = np.empty((S, bt, D), dt)  # δs_t of each row
    dg = np.empty((Gt, D), dt)  # δg~_t of one row
    dgr = np.empty((Gr * D, bt), dt)  # δg~_r of the step, GEMM operand
    dhT = np.empty((D, bt), dt)  # δh^{rec}_{t-1}^T
    DG2 = np.empty((T * bt, Gr * D), dt)  # all steps' δg~_r, row t bt + bb (contiguous writes)
    H2 = np.empty((T * bt, D), dt)  # all steps' h_{t-1}, same rows
    dbj = db_part[job]  # (G_t, D)
    dbj[:, :] = zero
    for bb in range(bt):
        for s in range(S):
            for d in range(D):
                ds[s, bb, d] = d_last[s, b0 + bb, n, d]
    Rn_T = R2T[n]  # (D, G_r D)
    for t in range(T - 1, -1, -1):
        for bb in range(bt):
            ib = b0 + bb
            for s in range(S):
                for d in range(D):
                    ds[s, bb, d] += d_all[s, ib, t, n, d]
            if cell == ELMAN or cell == ELMAN_RELU:
                relu = cell == ELMAN_RELU
                for d in range(D):
                    dg[0, d] = elman_bwd(gates[t, ib, 0, n, d], ds[0, bb, d], relu)
                    ds[0, bb, d] = zero
            elif cell == LSTM:
                for d in range(D):
                    dg[0, d], dg[1, d], dg[2, d], dg[3, d], dc = lstm_bwd(
                        gates[t, ib, 0, n, d], gates[t, ib, 1, n, d], gates[t, ib, 2, n, d],
                        gates[t, ib, 3, n, d], states[1, ib, t + 1, n, d],
                        states[1, ib, t, n, d], ds[0, bb, d], ds[1, bb, d])
                    ds[0, bb, d] = zero
                    ds[1, bb, d] = dc
            elif cell == GRU:
                for d in range(D):
                    dg[0, d], dg[1, d], dg[2, d], dg[3, d], dh = gru_bwd(
                        gates[t, ib, 0, n, d], gates[t, ib, 1, n, d], gates[t, ib, 2, n, d],
                        gates[t, ib, 3, n, d], states[0, ib, t, n, d], ds[0, bb, d])
                    ds[0, bb, d] = dh
            else:  # SLSTM
                for d in range(D):
                    dg[0, d], dg[1, d], dg[2, d], dg[3, d], dc, dn = slstm_bwd(
                        gates[t, ib, 0, n, d], gates[t, ib, 1, n, d], gates[t, ib, 2, n, d],
                        gates[t, ib, 3, n, d], states[1, ib, t, n, d], states[2, ib, t, n, d],
                        states[3, ib, t, n, d], states[1, ib, t + 1, n, d],
                        states[2, ib, t + 1, n, d], states[3, ib, t + 1, n, d], ds[0, bb, d],
                        ds[1, bb, d], ds[2, bb, d], clamp)
                    ds[0, bb, d] = zero
                    ds[1, bb, d] = dc
                    ds[2, bb, d] = dn
                    ds[3, bb, d] = zero
            for k in range(Gw):
                for d in range(D):
                    dWx[ib, t, k, n, d] = dg[k + woff, d]
            for j in range(Gt):
                for d in range(D):
                    dbj[j, d] += dg[j, d]
            col = t * bt + bb
            for k in range(Gr):  # recurrent gates are the first G_r of the bias order
                for d in range(D):
                    dgr[k * D + d, bb] = dg[k, d]
                    DG2[col, k * D + d] = dg[k, d]
            for d in range(D):
                H2[col, d] = states[0, ib, t, n, d]
        if cut:
            continue
        np.dot(Rn_T, dgr, dhT)
        for bb in range(bt):
            for d in range(D):
                ds[0, bb, d] += clip_recurrent(dhT[d, bb], clip, has_clip, slstm)
    for bb in range(bt):
        for s in range(S):
            for d in range(D):
                ds0[s, b0 + bb, n, d] = ds[s, bb, d]
    if T > 0:  # dR_n = δG~^T H; the transpose is F-contiguous, BLAS reads it as is
        np.dot(DG2.T, H2, dR_part[job])
    else:
        dR_part[job][:, :] = zero


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _bwd_heads(cell, d_all, d_last, R2, R2T, states, gates, cut, clip, has_clip, clamp, dWx,
               ds0, dR_part, db_part, tiles):  # pragma: no cover - compiled
    N = R2.shape[0]
    nt = tiles.shape[0]
    for job in prange(N * nt):
        _bwd_job(cell, d_all, d_last, R2, R2T, states, gates, cut, clip, has_clip, clamp, dWx,
                 ds0, dR_part, db_part, job, job // nt, tiles[job % nt, 0], tiles[job % nt, 1])


@numba.njit(cache=True, error_model="numpy")
def _bwd_serial(cell, d_all, d_last, R2, R2T, states, gates, cut, clip, has_clip, clamp, dWx,
                ds0, dR_part, db_part, tiles):  # pragma: no cover - compiled
    N = R2.shape[0]
    nt = tiles.shape[0]
    for job in range(N * nt):
        _bwd_job(cell, d_all, d_last, R2, R2T, states, gates, cut, clip, has_clip, clamp, dWx,
                 ds0, dR_part, db_part, job, job // nt, tiles[job % nt, 0], tiles[job % nt, 1])

