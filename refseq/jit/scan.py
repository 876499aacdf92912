"""Numba CPU kernels for the scan hot path; same contracts as :mod:`refseq.scan`.

``linear_scan`` mirrors ``refseq.scan.linear_scan`` and ``softmax_scan`` mirrors
``refseq.scan.softmax_scan`` (without the ``backend`` keyword). Both validate with the reference's
own checks, then run a kernel that

* parallelises (``prange``) only over independent (batch, channel-block) or (batch, head) pairs and
  keeps time sequential inside each, so every output is produced by one thread in the same order
  on every run (bitwise deterministic);
* keeps the channel loop innermost over contiguous memory so that it vectorises;
* evaluates exactly the reference's floating-point expressions (no ``fastmath``; the affine step is
  ``a * h + b``), so results equal the reference up to the last bit of ``exp`` (libm here, NumPy's
  own ``exp`` in the reference).

The softmax kernel computes one exponential per (token, head), not two: when the new score does
not exceed the running max, ``e^{m_{t-1} - m_t} = e^0 = 1`` exactly, and otherwise the new token's
weight ``e^{s_t - m_t} = e^0 = 1``; the reference's two-exponential form gives the same bits.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from refseq._checks import check_flag
from refseq.scan.assoc import SoftmaxState
from refseq.scan.checks import check_linear_scan_args, check_softmax_scan_args


@numba.njit(cache=True, parallel=True)
def _linear_kernel(a3, b3, h0, rep, block, reverse, out):  # pragma: no cover - compiled
    """out[b, t, c] = a3[b', t', c // rep] * out[b, t -/+ 1, c] + b3[b, t, c].

    ``a3`` is (Ba, Ta, C // rep) with Ba in {1, B} and Ta in {1, T} (broadcast axes).
    Jobs are (batch, block of ``block`` channels, a multiple of ``rep``); each job carries its
    channels through time in a small state vector ``h`` and touches only contiguous row slices.
    """
    B, T, C = b3.shape
    Ba, Ta = a3.shape[0], a3.shape[1]
    n_blk = (C + block - 1) // block
    for job in prange(B * n_blk):
        ib = job // n_blk
        lo = (job % n_blk) * block
        hi = min(lo + block, C)
        ia = ib if Ba > 1 else 0
        h = h0[ib, lo:hi].copy()  # (hi - lo,)
        for step in range(T):
            t = T - 1 - step if reverse else step
            b_t = b3[ib, t, lo:hi]
            o_t = out[ib, t, lo:hi]
            if rep == 1:  # one decay per channel: a contiguous, vectorisable loop
                a_t = a3[ia, t if Ta > 1 else 0, lo:hi]
                for k in range(hi - lo):
                    h[k] = a_t[k] * h[k] + b_t[k]
                    o_t[k] = h[k]
            else:  # one decay per group of ``rep`` channels (e.g. Mamba-2: per head)
                a_t = a3[ia, t if Ta > 1 else 0, lo // rep : hi // rep]
                for j in range(a_t.shape[0]):
                    for r in range(rep):
                        k = j * rep + r
                        h[k] = a_t[j] * h[k] + b_t[k]
                        o_t[k] = h[k]


def _channel_block(B, C, rep):
    """Channels per job: whole rows when the batch alone feeds every thread, else split C."""
    per_batch = max(1, -(-numba.get_num_threads() // B))  # jobs wanted per batch row
    block = max(64, -(-C // per_batch))
    block = -(-block // rep) * rep  # whole decay groups only
    return min(block, C)


def _as_blocks(a, b):
    """View ``a`` as (Ba, Ta, Ca) with channel c of ``b`` reading ``a[..., c // rep]``.

    Fast path: a's trailing axes are b's first k state axes followed by ones (a decay per
    channel, or one per head over a matrix state as in Mamba-2). Other broadcasts of ``a`` over
    the state axes are materialised at ``b``'s full shape.
    """
    B, T = b.shape[:2]
    S = b.shape[2:]
    a_full = a.reshape((1,) * (b.ndim - a.ndim) + a.shape)
    lead, tail = a_full.shape[:2], a_full.shape[2:]
    k = len(S)
    while k > 0 and tail[k - 1] == 1:
        k -= 1
    if tail[:k] == S[:k]:
        rep = int(np.prod(S[k:], dtype=np.int64))
        return np.ascontiguousarray(a_full.reshape(lead + (-1,))), rep
    return np.ascontiguousarray(np.broadcast_to(a, b.shape)).reshape(B, T, -1), 1


def linear_scan(a, b, h0=None, *, reverse=False, check_finite=True, out=None):
    """Numba twin of :func:`refseq.scan.linear_scan` (same arguments, shapes, dtype, errors).

    ``out`` (optional, shape and dtype of ``b``, C-contiguous) receives the result, so a caller
    can reuse a buffer. Parallel over (batch x channel blocks); time is sequential.
    """
    reverse = check_flag(reverse, "reverse")
    check_finite = check_flag(check_finite, "check_finite")
    a, b, h0 = check_linear_scan_args(a, b, h0, check_finite)
    B, T = b.shape[:2]
    C = int(np.prod(b.shape[2:], dtype=np.int64))
    b3 = np.ascontiguousarray(b).reshape(B, T, C)
    h0_2 = np.zeros((B, C), b.dtype) if h0 is None else np.ascontiguousarray(h0).reshape(B, C)
    if out is None:
        out = np.empty(b.shape, b.dtype)
    elif out.shape != b.shape or out.dtype != b.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {b.dtype} array of shape {b.shape}")
    if b.size == 0:
        return out
    a3, rep = _as_blocks(a, b)
    block = _channel_block(B, C, rep)
    _linear_kernel(a3, b3, h0_2, rep, block, bool(reverse), out.reshape(B, T, C))
    return out


@numba.njit(cache=True, parallel=True)
def _softmax_kernel(s, v, valid, m0, u0, w0, o, m_out, u_out, w_out):  # pragma: no cover
    """Sequential fold of SOFTMAX_TRIPLE per (b, h); writes o and the final (m, u, w)."""
    B, T, H, D = v.shape
    zero = v.dtype.type(0.0)
    one = v.dtype.type(1.0)
    for job in prange(B * H):
        ib = job // H
        ih = job % H
        m = m0[ib, ih]
        u = u0[ib, ih]
        w = w0[ib, ih].copy()  # (D,)
        for t in range(T):
            o_t = o[ib, t, ih]  # (D,) contiguous row views keep the d-loops vectorisable
            if valid[ib, t]:
                v_t = v[ib, t, ih]
                s_t = s[ib, t, ih]
                if s_t <= m:  # running max unchanged: e^{m - m} = 1
                    beta = np.exp(s_t - m)
                    u = u + beta
                    for d in range(D):
                        w[d] = w[d] + v_t[d] * beta
                else:  # new max: rescale the old sums, the new token weighs e^0 = 1
                    alpha = np.exp(m - s_t) if m != -np.inf else zero
                    m = s_t
                    u = u * alpha + one
                    for d in range(D):
                        w[d] = w[d] * alpha + v_t[d]
            if u > zero:
                for d in range(D):
                    o_t[d] = w[d] / u
            else:
                o_t[:] = zero
        m_out[ib, ih] = m
        u_out[ib, ih] = u
        w_out[ib, ih, :] = w


def softmax_scan(s, v, mask=None, state=None, *, check_finite=True, out=None):
    """Numba twin of :func:`refseq.scan.softmax_scan` (same arguments, shapes, dtype, errors).

    Parallel over (batch, head) pairs; each runs the sequential fold over time. ``out``
    (optional, shape and dtype of ``v``, C-contiguous) receives ``o``, so a caller can reuse a
    buffer instead of paying page faults on fresh memory at every call.
    """
    check_finite = check_flag(check_finite, "check_finite")
    s, v, mask, state = check_softmax_scan_args(s, v, mask, state, check_finite)
    B, T, H, D = v.shape
    dt = v.dtype
    if state is None:
        m0, u0, w0 = np.full((B, H), -np.inf, dt), np.zeros((B, H), dt), np.zeros((B, H, D), dt)
    else:
        m0, u0, w0 = (np.ascontiguousarray(x) for x in state)
    valid = np.ones((B, T), np.uint8) if mask is None else mask.astype(np.uint8)
    if out is None:
        out = np.empty((B, T, H, D), dt)
    elif out.shape != v.shape or out.dtype != dt or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {dt} array of shape {v.shape}")
    o = out
    final = (np.empty((B, H), dt), np.empty((B, H), dt), np.empty((B, H, D), dt))
    _softmax_kernel(np.ascontiguousarray(s), np.ascontiguousarray(v), valid, m0, u0, w0, o, *final)
    return o, SoftmaxState(*final)
