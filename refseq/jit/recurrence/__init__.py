"""Numba CPU kernels for the RNN-recurrence hot path; same contracts as :mod:`refseq.recurrence.engine`.

``flashrnn_forward`` mirrors :func:`refseq.recurrence.engine.flashrnn_forward` and ``flashrnn_backward``
mirrors :func:`refseq.recurrence.engine.flashrnn_backward` (FlashRNN, arXiv 2412.07752; spec
``flashrnn.md`` items 3-4, 9 and "Hot paths"), without the ``backend`` keyword. Both validate with
the reference's own checks (``check_recurrence_args`` / ``check_backward_args``), accept and return
the reference's cache dict ``{"states": (S, B, T+1, N, D), "gates": (T, B, G_t, N, D)}``, and
support every cell of ``refseq.rnn.CELLS`` (elman, elman_relu, lstm, gru, slstm), block-diagonal
``R``, carried state, ``forward_clipval``, ``gradient_recurrent_cut`` /
``gradient_recurrent_clipval`` and the sLSTM's ``clamp_gates_le_one``.

Decomposition (docs/hot-paths/recurrence-kernels.md)
----------------------------------------------------
A *job* is one head ``n`` and one tile of batch rows; jobs never communicate, and each runs the
whole time loop. Inside a job the state is kept transposed, ``h^T`` (D, bt), so the recurrent
product of a step is one BLAS GEMM on contiguous 2-D blocks,
``Ry^T (G_r D, bt) = R_n (G_r D, D) @ h^T (D, bt)`` (``np.dot`` inside ``@njit`` calls BLAS),
followed by the cell's pointwise update row by row. Three plans (:func:`plan`):

* ``"units"`` (forward only) — fewer heads than threads and big steps: a ``prange`` per step
  over chunks of hidden units; each job does its columns of ``h_{t-1} R^T`` with its own
  register-tile product (:mod:`refseq.jit.tile`, no BLAS) and its units' pointwise update
  (:func:`_fwd_units`);
* ``"heads"`` — ``prange`` over the (head, batch tile) jobs, each running the whole time loop;
  used when there are several jobs and BLAS runs single-threaded inside each (small GEMMs, or
  any size with BLAS pinned);
* ``"gemm"`` — the jobs run one after the other with the whole batch in one tile, so each step is
  one large GEMM that BLAS itself spreads over the cores (a single small job also runs here, with
  no parallel region at all).

``"heads"`` runs with BLAS pinned to one thread where that is possible
(:mod:`refseq.jit.blas_threads`), so that only Numba's thread pool works: OpenBLAS's own
workers would otherwise oversubscribe the cores or keep spinning against the ``prange`` jobs.

The backward runs the same jobs in reverse time. ``δh^{rec} = R_n^T δg~_r`` is again one GEMM
per step. ``dR`` and ``db`` are never accumulated across threads: each job keeps its own
``δg~_r`` for all steps (T bt, G_r D) and its ``h_{t-1}`` (T bt, D), row by row, and forms
its partial ``dR_n = δG~^T @ H`` with one GEMM after its time loop; partials of the batch
tiles of a head are then summed in tile order after the parallel loop. No atomics, a fixed
order per output, hence bitwise-identical results run to run (for a fixed thread count and
BLAS).

Numerics
--------
No ``fastmath``; literals carry the array dtype. float64 uses libm (``math.exp``, ``math.tanh``,
``math.log1p``). float32 evaluates ``exp``, ``tanh`` and the sigmoid in float64 with a
branch-free Cephes ``exp`` (about 1 float64 ulp; the ``2^n`` scale is built from the exponent
bits), returned as a ratio so that each function takes one division (:func:`_exp_ratio`), and
rounds once, so they are correctly rounded float32 values except in rare double-rounding
cases, and the pointwise loops vectorise on CPUs without SVML (``error_model="numpy"`` removes
the division-by-zero branch that would block it). Only the sLSTM's ``log σ`` uses libm
``log1p`` in float32. The recurrent product and ``dR`` are BLAS sums or the tile's FMA
chains, whose order differs from the reference's ``einsum``; results agree within the derived
tolerance of ``refseq.testing``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from refseq.jit import blas_threads
from refseq.jit.tile import TILE_ROWS, TILE_VECTORS, VECTOR_BYTES, lanes, tile_gemm
from refseq.recurrence.checks import (
    _check_clipval,
    check_backward_args,
    check_recurrence_args,
)

ELMAN, ELMAN_RELU, LSTM, GRU, SLSTM = 0, 1, 2, 3, 4
CELL_IDS = {"elman": ELMAN, "elman_relu": ELMAN_RELU, "lstm": LSTM, "gru": GRU, "slstm": SLSTM}
BLAS_THREADED_MACS = 1 << 18  #: per-step GEMM size (multiply-adds) above which BLAS goes parallel
#: per-step GEMM size below which a parallel region per step costs more than it saves ("units")
UNITS_MIN_MACS = 1 << 20

# ---------------------------------------------------------------------------------------------
# Scalar math, one implementation per dtype (resolved at compile time through ``overload``).


def _exp(x):  # pragma: no cover - replaced by the overload inside kernels
    raise NotImplementedError


def _tanh(x):  # pragma: no cover
    raise NotImplementedError


def _sigmoid(x):  # pragma: no cover
    raise NotImplementedError


@intrinsic
def _bits_to_f64(typingctx, x):
    """Reinterpret an int64 as a float64 (an LLVM ``bitcast``)."""
    if x != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(x), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM ``llvm.fma.f64``; a vector FMA where the loop
    vectorises, a correctly rounded libm call on CPUs without FMA, so the same bits anywhere)."""
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, sig, args):
        f64 = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f64, [f64] * 3),
                                            "llvm.fma.f64")
        return builder.call(fn, args)

    return types.float64(a, b, c), codegen


_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
      2.00000000000000000009e0)


@numba.njit(cache=True, error_model="numpy")
def _exp_ratio(x):  # pragma: no cover - compiled
    """``(u, v)`` with ``e^x = u / v`` in float64, by branch-free Cephes ``exp``: ``e^x = 2^n
    e^r``, |r| <= ln2/2, and the (2, 3) Padé form ``e^r = (Q + P) / (Q - P)``, so
    ``u = 2^n (Q + P)`` and ``v = Q - P`` (about 1 ulp each; Q - P lies in [1.6, 2.4]). The
    division is left to the caller, who folds it into its own: one division per sigmoid or tanh
    instead of two. x is clamped to [-708, 709] so that ``2^n`` stays normal; NaN passes."""
    x = -708.0 if x < -708.0 else (709.0 if x > 709.0 else x)
    fx = np.floor(x * 1.4426950408889634 + 0.5)
    r = _fma(fx, -1.42860682030941723212e-6, _fma(fx, -6.93145751953125e-1, x))
    rr = r * r
    P = r * _fma(_fma(_P[0], rr, _P[1]), rr, _P[2])
    Q = _fma(_fma(_fma(_Q[0], rr, _Q[1]), rr, _Q[2]), rr, _Q[3])
    scale = _bits_to_f64((np.int64(fx) + np.int64(1023)) << np.int64(52))
    return scale * (Q + P), Q - P


@numba.njit(cache=True, error_model="numpy")
def _tanh_f64(x):  # pragma: no cover - compiled
    """``tanh`` in float64 without libm: ``(e^{2|x|} - 1) / (e^{2|x|} + 1)`` with the sign of x
    (relative error below 1e-13 for |x| >= 0.01), the series ``x - x^3/3 + 2x^5/15`` below;
    branch-free (both are evaluated)."""
    a = abs(x)
    z = x * x
    series = x * (1.0 - z * (1.0 / 3.0 - z * (2.0 / 15.0)))
    u, v = _exp_ratio(2.0 * a)
    e = (u - v) / (u + v)
    e = e if x >= 0 else -e
    return series if a < 0.01 else e


@overload(_exp)
def _exp_impl(x):
    if x == types.float32:

        def exp32(x):
            u, v = _exp_ratio(np.float64(x))
            return np.float32(u / v)

        return exp32
    if x == types.float64:
        return lambda x: math.exp(x)
    return None


@overload(_tanh)
def _tanh_impl(x):
    if x == types.float32:
        return lambda x: np.float32(_tanh_f64(np.float64(x)))
    if x == types.float64:
        return lambda x: math.tanh(x)
    return None


@overload(_sigmoid)
def _sigmoid_impl(x):
    if x == types.float32:

        def sigmoid32(x):
            """``1 / (1 + u/v) = v / (v + u)`` with ``e^{-x} = u / v``."""
            u, v = _exp_ratio(-np.float64(x))
            return np.float32(v / (v + u))

        return sigmoid32
    if x == types.float64:

        def sigmoid64(x):
            """``1/(1+e^{-x})`` for x >= 0, ``e^x/(1+e^x)`` below (full precision in both tails)."""
            if x >= 0:
                return 1.0 / (1.0 + math.exp(-x))
            e = math.exp(x)
            return e / (1.0 + e)

        return sigmoid64
    return None


@numba.njit(cache=True, error_model="numpy")
def _log_sigmoid(x):  # pragma: no cover - compiled
    """``log σ(x) = -logaddexp(0, -x)``, in NumPy's branch order (never -inf)."""
    if x > 0:
        return -math.log1p(math.exp(-x))
    return -(-x + math.log1p(math.exp(x)))


@numba.njit(cache=True, error_model="numpy")
def _clip(v, c):  # pragma: no cover - compiled
    """``np.clip(v, -c, c)``: NaN passes through."""
    if v < -c:
        return -c
    if v > c:
        return c
    return v


# ---------------------------------------------------------------------------------------------
# Forward: the pointwise cell update, then the jobs that call it.


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
    zero, one = pre.dtype.type(0.0), pre.dtype.type(1.0)
    if cell == ELMAN or cell == ELMAN_RELU:
        for d in range(n_units):
            a = pre[0, d]
            if cell == ELMAN:
                h = _tanh(a)
            else:
                h = a if not (a < zero) else zero
            if has_clip:
                h = _clip(h, clip)
            st[0, d] = h
            pre[0, d] = h  # the reference caches the clipped h
    elif cell == LSTM:
        for d in range(n_units):
            i = _sigmoid(pre[0, d])
            f = _sigmoid(pre[1, d])
            z = _tanh(pre[2, d])
            o = _sigmoid(pre[3, d])
            c = f * st[1, d] + i * z
            h = o * _tanh(c)
            if has_clip:
                h = _clip(h, clip)
            st[0, d] = h
            st[1, d] = c
            pre[0, d] = i
            pre[1, d] = f
            pre[2, d] = z
            pre[3, d] = o
    elif cell == GRU:
        for d in range(n_units):
            g = pre[0, d]
            r = _sigmoid(pre[1, d])
            z = _sigmoid(pre[2, d])
            nc = _tanh(pre[3, d] + r * g)
            h = z * st[0, d] + (one - z) * nc
            if has_clip:
                h = _clip(h, clip)
            st[0, d] = h
            pre[1, d] = r
            pre[2, d] = z
    else:  # SLSTM
        for d in range(n_units):
            ip, fp = pre[0, d], pre[1, d]
            z = _tanh(pre[2, d])
            o = _sigmoid(pre[3, d])
            c_p, n_p, m_p = st[1, d], st[2, d], st[3, d]
            ls = _log_sigmoid(fp)
            ell = ls + m_p
            if n_p == zero:
                m = ip
            else:
                m = ip if ip >= ell else ell
            i_s = _exp(ip - m)
            f_s = _exp(ls + m_p - m)
            if clamp:
                i_s = i_s if i_s < one else one
                f_s = f_s if f_s < one else one
            c = f_s * c_p + i_s * z
            nn = f_s * n_p + i_s
            nn = nn if nn > one else one
            h = o * c / nn
            if has_clip:
                h = _clip(h, clip)
            st[0, d] = h
            st[1, d] = c
            st[2, d] = nn
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
    stored tile by tile (:func:`_pack_units`): column ``g dup + k`` holds ``R[g, n, d0 + k, :]``,
    zero beyond ``d1 - d0`` and beyond ``G_r dup``. Each step the job forms its columns of
    ``Ry = h_{t-1} R^T`` for all batch rows with the register tile of :mod:`refseq.jit.tile`
    (batch padded to whole tiles with zero rows), then the pointwise update of its units for
    every batch row, and writes its part of ``h_t``. ``h`` is double-buffered: step t reads
    buffer ``t % 2`` (complete after the previous parallel loop) and writes the other, so no
    job reads a unit that another job is writing. Each job keeps its units' states and
    pre-activations in its own buffers, indexed from 0 (see :func:`_cell_fwd`).
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


# ---------------------------------------------------------------------------------------------
# Backward: the same jobs in reverse time; partial dR, db per job.


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
    zero, one = dt.type(0.0), dt.type(1.0)
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
                for d in range(D):
                    h = gates[t, ib, 0, n, d]
                    dh = ds[0, bb, d]
                    if cell == ELMAN:
                        dg[0, d] = dh * (one - h * h)
                    else:
                        dg[0, d] = dh * (one if h > zero else zero)
                    ds[0, bb, d] = zero
            elif cell == LSTM:
                for d in range(D):
                    i, f = gates[t, ib, 0, n, d], gates[t, ib, 1, n, d]
                    z, o = gates[t, ib, 2, n, d], gates[t, ib, 3, n, d]
                    dh = ds[0, bb, d]
                    tc = _tanh(states[1, ib, t + 1, n, d])
                    dc = ds[1, bb, d] + dh * o * (one - tc * tc)
                    dg[0, d] = dc * z * i * (one - i)
                    dg[1, d] = dc * states[1, ib, t, n, d] * f * (one - f)
                    dg[2, d] = dc * i * (one - z * z)
                    dg[3, d] = dh * tc * o * (one - o)
                    ds[0, bb, d] = zero
                    ds[1, bb, d] = dc * f
            elif cell == GRU:
                for d in range(D):
                    g, r = gates[t, ib, 0, n, d], gates[t, ib, 1, n, d]
                    z, n_in = gates[t, ib, 2, n, d], gates[t, ib, 3, n, d]
                    dh = ds[0, bb, d]
                    nc = _tanh(n_in + r * g)
                    dn = dh * (one - z) * (one - nc * nc)
                    dg[0, d] = dn * r
                    dg[1, d] = dn * g * r * (one - r)
                    dg[2, d] = dh * (states[0, ib, t, n, d] - nc) * z * (one - z)
                    dg[3, d] = dn
                    ds[0, bb, d] = dh * z
            else:  # SLSTM
                for d in range(D):
                    ip, fp = gates[t, ib, 0, n, d], gates[t, ib, 1, n, d]
                    z, o = gates[t, ib, 2, n, d], gates[t, ib, 3, n, d]
                    c_p, n_p, m_p = states[1, ib, t, n, d], states[2, ib, t, n, d], states[
                        3, ib, t, n, d]
                    c, nn, m = states[1, ib, t + 1, n, d], states[2, ib, t + 1, n, d], states[
                        3, ib, t + 1, n, d]
                    i_s = _exp(ip - m)
                    f_s = _exp(_log_sigmoid(fp) + m_p - m)
                    if clamp:
                        i_s = i_s if i_s < one else one
                        f_s = f_s if f_s < one else one
                    dh = ds[0, bb, d]
                    dc = ds[1, bb, d] + dh * o / nn
                    dn = ds[2, bb, d] - dh * o * c / (nn * nn)
                    dg[0, d] = (dc * z + dn) * i_s
                    dg[1, d] = (dc * c_p + dn * n_p) * f_s * (one - _sigmoid(fp))
                    dg[2, d] = dc * i_s * (one - z * z)
                    dg[3, d] = dh * (c / nn) * o * (one - o)
                    ds[0, bb, d] = zero
                    ds[1, bb, d] = dc * f_s
                    ds[2, bb, d] = dn * f_s
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
                v = dhT[d, bb]
                if has_clip:
                    if cell == SLSTM and not np.isfinite(v):
                        v = zero
                    v = _clip(v, clip)
                ds[0, bb, d] += v
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


# ---------------------------------------------------------------------------------------------
# Host wrappers.


def plan(B, N, D, G_r, threads=None, modes=("units", "heads", "gemm"), pinnable=None):
    """``(mode, tiles)``: the first of ``modes`` that applies, and its job table.

    ``pinnable`` (default :func:`refseq.jit.blas_threads.available`) says whether BLAS can be
    set to one thread while a kernel runs; the ``"heads"`` kernels run under
    :func:`~refseq.jit.blas_threads.single_threaded_blas` then, so only Numba's pool works.

    * ``"units"`` (forward only): a ``prange`` per step over (head, chunk of hidden units) jobs,
      each doing its columns of the step's product with the register tile of
      :mod:`refseq.jit.tile` (no BLAS, so pinning does not matter) and its units' pointwise
      update; ``tiles`` are (d0, d1) unit ranges. For fewer heads than threads and steps of at
      least :data:`UNITS_MIN_MACS` multiply-adds (one parallel region per step).
    * ``"heads"``: ``prange`` over (head, batch tile) jobs that each run the whole time loop;
      needs at least two jobs, and per-step GEMMs that BLAS runs single-threaded: at most
      :data:`BLAS_THREADED_MACS` multiply-adds per tile, or any size with a pinnable BLAS. The
      batch is cut into just enough tiles to give every thread a job; ``tiles`` are (b0, b1).
    * ``"gemm"``: jobs one after the other, the whole batch in one tile, BLAS parallel inside
      each step's GEMM; always applies.
    """
    threads = numba.get_num_threads() if threads is None else threads
    pinnable = blas_threads.available() if pinnable is None else pinnable
    if threads > 1 and "units" in modes and N < threads:
        if G_r * D * D * N * B >= UNITS_MIN_MACS:
            n_chunks = min(D, -(-threads // N))
            edges = [D * k // n_chunks for k in range(n_chunks + 1)]
            return "units", np.array(list(zip(edges[:-1], edges[1:])), np.int64).reshape(-1, 2)
    if threads > 1 and "heads" in modes:
        n_tiles = max(1, min(B, -(-threads // max(N, 1))))
        rows = -(-B // n_tiles) if B else 0
        single = pinnable or G_r * D * D * max(rows, 1) <= BLAS_THREADED_MACS
        if N * n_tiles > 1 and single:
            edges = list(range(0, B, rows)) + [B]
            return "heads", np.array(list(zip(edges[:-1], edges[1:])), np.int64).reshape(-1, 2)
    return "gemm", np.array([[0, B]], np.int64)


def _pack_units(R, chunks, dtype):
    """``R (G_r, N, D, D)`` -> ``(Rp (N * n_chunks, ncol / w, D, w), dup)`` for the ``"units"``
    plan, ``w`` being the columns of one tile (:mod:`refseq.jit.tile`).

    Job (head n, chunk c = (d0, d1)) needs the panel ``P = Rp[n * n_chunks + c]`` of ``R^T``:
    its column ``g dup + k`` holds ``R[g, n, d0 + k, :]``, and ``P[j // w, :, j % w]`` is its
    column j. ``dup`` is the largest chunk rounded up to whole vectors and ``ncol`` is
    ``G_r dup`` rounded up to whole tiles; the padding is zero. Storing the panel tile by tile
    makes each tile's k loop read memory in order: with whole panel rows, each step of k jumped
    one row (2 KiB at D = 256) and the tile ran at 49-69 GFLOP/s instead of 106-116 (measured).
    """
    G, N, D, _ = R.shape
    width = max(d1 - d0 for d0, d1 in chunks)
    vw = lanes(np.dtype(dtype))
    w = TILE_VECTORS * vw
    dup = -(-width // vw) * vw
    ncol = -(-G * dup // w) * w
    panel = np.zeros((N * len(chunks), D, ncol), dtype)
    for n in range(N):
        for c, (d0, d1) in enumerate(chunks):
            for g in range(G):
                panel[n * len(chunks) + c, :, g * dup:g * dup + d1 - d0] = R[g, n, d0:d1].T
    Rp = panel.reshape(N * len(chunks), D, ncol // w, w).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(Rp), dup


def _head_major(R):
    """``R (G_r, N, D, D)`` -> ``R2 (N, G_r D, D)`` with row ``g D + d``, and its transpose."""
    G, N, D, _ = R.shape
    R2 = np.ascontiguousarray(R.transpose(1, 0, 2, 3)).reshape(N, G * D, D)
    return R2, np.ascontiguousarray(R2.transpose(0, 2, 1))


def _unsupported(**options):
    for name, value in options.items():
        if value:
            raise ValueError(f"{name} is not supported by the jit tier; use backend='numpy'")


def flashrnn_forward(Wx, R, b, states0=None, *, cell="lstm", forward_clipval=None,
                     return_cache=False, check_finite=True, clamp_gates_le_one=False,
                     accumulate_dtype=None, emulate_bfloat16=False):
    """Numba twin of :func:`refseq.recurrence.engine.flashrnn_forward` (same arguments, shapes,
    dtypes, errors and cache dict; ``accumulate_dtype`` and ``emulate_bfloat16`` are numpy-only).

    Parallel over (head, batch tile) jobs or over each step's GEMM (:func:`plan`); time is
    sequential. Returns ``(states_all (S, B, T, N, D), last_states (S, B, N, D)[, cache])``.
    """
    _unsupported(accumulate_dtype=accumulate_dtype, emulate_bfloat16=emulate_bfloat16)
    spec, Wx, R, b, states0 = check_recurrence_args(Wx, R, b, states0, cell=cell,
                                                    check_finite=check_finite)
    clip = _check_clipval(forward_clipval, "forward_clipval")
    if clamp_gates_le_one and spec.name != "slstm":
        raise ValueError(f"clamp_gates_le_one applies to the sLSTM only, not {spec.name!r}")
    B, T, _, N, D = Wx.shape
    S, dt = spec.num_states, Wx.dtype
    Wx, b, s0 = (np.ascontiguousarray(x) for x in (Wx, b, states0))
    if return_cache:
        out = np.empty((S, B, T + 1, N, D), dt)
        out[:, :, 0] = s0
        gates = np.empty((T, B, spec.num_gates_t, N, D), dt)
    else:
        out = np.empty((S, B, T, N, D), dt)
        gates = np.empty((0, 0, 0, 0, 0), dt)
    if T > 0 and B * N * D > 0:
        mode, tiles = plan(B, N, D, spec.num_gates_r)
        cell_id = CELL_IDS[spec.name]
        rest = (b, s0, dt.type(clip or 0), clip is not None, bool(clamp_gates_le_one), out,
                int(return_cache), gates, bool(return_cache), tiles)
        if mode == "units":
            Rp, dup = _pack_units(R, tiles, dt)
            _fwd_units(cell_id, Wx, Rp, *rest, spec.num_gates_r, dup)
        elif mode == "heads":
            with blas_threads.single_threaded_blas():
                _fwd_heads(cell_id, Wx, _head_major(R)[0], *rest)
        else:
            _fwd_serial(cell_id, Wx, _head_major(R)[0], *rest)
    if return_cache:
        states_all = out[:, :, 1:].copy()
        return states_all, out[:, :, T].copy(), {"states": out, "gates": gates}
    last = out[:, :, T - 1].copy() if T > 0 else s0.copy()
    return out, last


def flashrnn_backward(d_states_all, d_last_states, R, b, cache, *, cell="lstm",
                      gradient_recurrent_cut=False, gradient_recurrent_clipval=None,
                      clamp_gates_le_one=False, accumulate_dtype=None):
    """Numba twin of :func:`refseq.recurrence.engine.flashrnn_backward` (same arguments, shapes,
    dtypes, errors; ``accumulate_dtype`` is numpy-only).

    Returns ``(d_states0 (S, B, N, D), dWx (B, T, G_w, N, D), dR (G_r, N, D, D), db (G_t, N, D))``.
    ``dR`` and ``db`` are reduced per job and then over batch tiles in a fixed order
    (deterministic, no atomics).
    """
    _unsupported(accumulate_dtype=accumulate_dtype)
    spec, d_all, d_last, R, b, states, gates = check_backward_args(
        d_states_all, d_last_states, R, b, cache, cell=cell)
    clip = _check_clipval(gradient_recurrent_clipval, "gradient_recurrent_clipval")
    if clamp_gates_le_one and spec.name != "slstm":
        raise ValueError(f"clamp_gates_le_one applies to the sLSTM only, not {spec.name!r}")
    S, B, T, N, D = d_all.shape
    dt = states.dtype
    G_r, G_t = spec.num_gates_r, spec.num_gates_t
    d_all, d_last, states, gates = (np.ascontiguousarray(x) for x in (d_all, d_last, states, gates))
    R2, R2T = _head_major(R)
    dWx = np.empty((B, T, spec.num_gates_w, N, D), dt)
    ds0 = d_last.copy()
    dR = np.zeros(R.shape, dt)
    db = np.zeros(b.shape, dt)
    if B * N * D == 0:
        return ds0, dWx, dR, db
    mode, tiles = plan(B, N, D, G_r, modes=("heads", "gemm"))
    nt = tiles.shape[0]
    dR_part = np.empty((N * nt, G_r * D, D), dt)
    db_part = np.empty((N * nt, G_t, D), dt)
    args = (CELL_IDS[spec.name], d_all, d_last, R2, R2T, states, gates,
            bool(gradient_recurrent_cut), dt.type(clip if clip is not None else 0),
            clip is not None, bool(clamp_gates_le_one), dWx, ds0, dR_part, db_part, tiles)
    if mode == "heads":
        with blas_threads.single_threaded_blas():
            _bwd_heads(*args)
    else:
        _bwd_serial(*args)
    dR_part = dR_part.reshape(N, nt, G_r, D, D)
    db_part = db_part.reshape(N, nt, G_t, D)
    dR2, db2 = dR_part[:, 0].copy(), db_part[:, 0].copy()
    for k in range(1, nt):  # fixed tile order
        dR2 += dR_part[:, k]
        db2 += db_part[:, k]
    dR[...] = dR2.transpose(1, 0, 2, 3)
    db[...] = db2.transpose(1, 0, 2)
    return ds0, dWx, dR, db


@numba.njit(cache=True)
def _blas_dot(a, b):  # pragma: no cover - compiled
    """``a @ b`` through Numba's BLAS binding (scipy's OpenBLAS), the library the per-step
    recurrent matmuls use. NumPy's ``@`` would use NumPy's own OpenBLAS: its threads keep
    spinning after the large projection and starve the other pool, which measured 85 ms for
    projection + recurrence at (B=16, T=256, H=256) against 45 ms with one library."""
    return np.dot(a, b)


@numba.njit(cache=True, parallel=True)
def _row_blocks_dot(a, b, out, jobs):  # pragma: no cover - compiled
    """``out = a @ b`` as ``jobs`` blocks of rows of ``a``, one BLAS call per ``prange`` job."""
    M = a.shape[0]
    for j in prange(jobs):
        r0, r1 = j * M // jobs, (j + 1) * M // jobs
        np.dot(a[r0:r1], b, out[r0:r1])


@numba.njit(cache=True, parallel=True)
def _row_blocks_gram(a, b, parts):  # pragma: no cover - compiled
    """``parts[j] = a[rows_j]^T b[rows_j]`` for ``len(parts)`` blocks of rows, one BLAS call
    per ``prange`` job (``a[rows_j].T`` is F-contiguous: BLAS transposes it, no copy)."""
    M, jobs = a.shape[0], parts.shape[0]
    for j in prange(jobs):
        r0, r1 = j * M // jobs, (j + 1) * M // jobs
        np.dot(a[r0:r1].T, b[r0:r1], parts[j])


def _dot(a, b):
    """``a @ b`` for 2-D C-contiguous arrays of one dtype, on the library of the recurrence's
    GEMMs: as row blocks in Numba's pool with BLAS pinned to one thread where that is possible
    (no BLAS pool left spinning against the next kernel), else one threaded BLAS call."""
    jobs = min(numba.get_num_threads(), a.shape[0])
    if jobs < 2 or not blas_threads.available():
        return _blas_dot(a, b)
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    with blas_threads.single_threaded_blas():
        _row_blocks_dot(a, b, out, jobs)
    return out


def project_inputs(x, W, bias=None):
    """Twin of :func:`refseq.recurrence.engine.project_inputs` as one matmul:
    ``Wx (B, T, G_w, N, D) = x (B, T, I) @ W (G_w, N, D, I)^T (+ bias)``, in the widest dtype.
    Parallel over time by construction; this is the part of an RNN layer outside the recurrence.

    The matmul is :func:`_dot`: row blocks in Numba's pool where BLAS can be pinned."""
    from refseq import _checks

    x = _checks.float_array(x, "x")
    W = _checks.float_array(W, "W")
    if x.ndim != 3 or W.ndim != 4 or W.shape[3] != x.shape[2]:
        raise ValueError(f"x must be (B, T, I) and W (G_w, N, D, I) with the same I, got x "
                         f"{x.shape} and W {W.shape}")
    dt = np.result_type(x, W)
    B, T, I = x.shape
    x2 = np.ascontiguousarray(x.reshape(B * T, I), dtype=dt)
    W2T = np.ascontiguousarray(W.reshape(-1, I).T, dtype=dt)
    Wx = _dot(x2, W2T).reshape((B, T) + W.shape[:3])
    if bias is not None:
        bias = _checks.float_array(bias, "bias")
        _checks.check_shape(bias, W.shape[:3], "bias", "(G_w, N, D)")
        Wx += bias.astype(dt, copy=False)
    return Wx


def project_inputs_backward(dWx, x, W):
    """Gradients of :func:`project_inputs` (without bias): ``(dx (B, T, I), dW (G_w, N, D, I))``.

    ``dx = dWx @ W`` and ``dW = dWx^T x`` over the flattened (B*T) rows, on the same library as
    the recurrence: ``dx`` by :func:`_dot`, ``dW`` as per-thread partial sums over row blocks
    added in a fixed order (deterministic); ``db = dWx.sum((0, 1))``.
    """
    from refseq import _checks

    dWx = _checks.float_array(dWx, "dWx")
    x = _checks.float_array(x, "x", dtype=dWx.dtype)
    W = _checks.float_array(W, "W", dtype=dWx.dtype)
    B, T, I = x.shape
    _checks.check_shape(dWx, (B, T) + W.shape[:3], "dWx", "(B, T, G_w, N, D)")
    g = np.ascontiguousarray(dWx.reshape(B * T, -1))  # (B*T, G_w*N*D)
    x2 = np.ascontiguousarray(x.reshape(B * T, I))
    dx = _dot(g, np.ascontiguousarray(W.reshape(-1, I))).reshape(B, T, I)
    jobs = min(numba.get_num_threads(), B * T)
    if jobs < 2 or not blas_threads.available():
        dW = _blas_dot(g.T, x2)  # g.T is F-contiguous: BLAS transposes, no copy
    else:  # partial sums over blocks of rows in Numba's pool, added in block order
        parts = np.empty((jobs, g.shape[1], I), g.dtype)
        with blas_threads.single_threaded_blas():
            _row_blocks_gram(g, x2, parts)
        dW = parts[0]
        for j in range(1, jobs):
            dW += parts[j]
    return dx, dW.reshape(W.shape)
