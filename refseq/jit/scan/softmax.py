"""Numba kernels of ``softmax_scan``: the SOFTMAX_TRIPLE fold (Aaren, arXiv 2405.13956, Sec. 3.2).

Per (batch, head) job the state is ``(m, u, w)``; a valid token ``(s_t, v_t)`` folds in as

    m' = max(m, s_t),  u' = u e^{m - m'} + e^{s_t - m'},  w' = w e^{m - m'} + v_t e^{s_t - m'}

with one exponential per (token, head), not two: when ``s_t <= m`` the rescale is ``e^0 = 1``,
otherwise the new token's weight is ``e^0 = 1`` (:func:`fold`; same bits as the
two-exponential form). ``o_t = w / u`` (0 while ``u = 0``).

* :func:`softmax_kernel` — sequential in time, ``prange`` over (batch, head).
* :func:`softmax_groups_kernel` — the same fold with jobs over (batch, group of heads), for
  large inputs: a job then reads and writes whole contiguous token rows (measured 1.8-2.9x
  faster than one head per job at 16-32 MiB, slower on small inputs that stay in cache).
* :func:`softmax_chunked_kernel` — time-parallel for few (batch, head) jobs and long T, as the
  linear chunked kernel (:mod:`refseq.jit.scan.linear`): pass 1 folds every segment from the
  identity into its triple, pass 2 combines the triples left to right with
  ``softmax_combine`` (the carry is the left operand), pass 3 refolds each segment from its
  carry. Jobs are (batch, head, segment): one token's fold is bound by the throughput of its
  exponential and divisions, not by a dependency chain, so segments are not interleaved.

Both also write ``flag[job]``, the sum of ``s_t - s_t`` over every score and of ``v_t - v_t``
over every skipped (masked) value: NaN exactly when one of them is not finite, the evidence
:func:`refseq.scan.checks.recheck_softmax_scan` needs besides the final state.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange


@numba.njit(cache=True)
def masked_flag(v, valid, ib, ih, t0, t1):  # pragma: no cover - compiled
    """Sum of ``v_t - v_t`` over the masked tokens ``t0 <= t < t1`` of (``ib``, ``ih``): NaN
    exactly when one of those values (never folded) is not finite."""
    z = v.dtype.type(0.0)
    for t in range(t0, t1):
        if not valid[ib, t]:
            v_t = v[ib, t, ih]
            for d in range(v_t.shape[0]):
                z = z + (v_t[d] - v_t[d])
    return z


@numba.njit(cache=True)
def fold(s, v, valid, masked, ib, ih, t0, t1, m, u, w_io, o, write):  # pragma: no cover
    """Fold tokens ``t0 .. t1-1`` of (batch ``ib``, head ``ih``) into ``(m, u, w_io)`` (``w_io``
    (D,) updated in place); returns ``(m, u, flag)``. With ``write``, store ``o_t = w_t / u_t``
    (0 while ``u = 0``) and accumulate the finiteness flag; else only fold (pass 1)."""
    D = w_io.shape[0]
    w = w_io.copy()  # a private copy: the compiler may keep it apart from o
    zero, one = v.dtype.type(0.0), v.dtype.type(1.0)
    z = zero
    for t in range(t0, t1):
        v_t = v[ib, t, ih]  # (D,) contiguous row views keep the d-loops vectorisable
        s_t = s[ib, t, ih]
        if valid[ib, t]:
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
        if write:
            z = z + (s_t - s_t)
            o_t = o[ib, t, ih]
            if u > zero:
                for d in range(D):
                    o_t[d] = w[d] / u
            else:
                o_t[:] = zero
    w_io[:] = w
    if write and masked:
        z = z + masked_flag(v, valid, ib, ih, t0, t1)
    return m, u, z


@numba.njit(cache=True, parallel=True)
def softmax_kernel(s, v, valid, masked, m0, u0, w0, o, m_out, u_out, w_out,
                   flag):  # pragma: no cover - compiled
    """Sequential fold of SOFTMAX_TRIPLE per (b, h); writes o, the final (m, u, w) and flag.

    ``masked`` is True when some token is masked (``valid`` has a 0).

    :func:`fold` written out inline: as a call it measured up to 1.7x slower for D = 4.
    Masked values enter the flag in a loop of their own (:func:`masked_flag`): inside the fold
    loop that branch made the D = 4 fold 1.5x slower even with no masked token.
    """
    B, T, H, D = v.shape
    zero = v.dtype.type(0.0)
    one = v.dtype.type(1.0)
    for job in prange(B * H):
        ib = job // H
        ih = job % H
        m = m0[ib, ih]
        u = u0[ib, ih]
        w = w0[ib, ih].copy()  # (D,)
        z = zero
        for t in range(T):
            o_t = o[ib, t, ih]  # (D,) contiguous row views keep the d-loops vectorisable
            s_t = s[ib, t, ih]
            z = z + (s_t - s_t)
            if valid[ib, t]:
                v_t = v[ib, t, ih]
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
        if masked:
            z = z + masked_flag(v, valid, ib, ih, 0, T)
        m_out[ib, ih] = m
        u_out[ib, ih] = u
        w_out[ib, ih, :] = w
        flag[job] = z


@numba.njit(cache=True, parallel=True)
def softmax_groups_kernel(s, v, valid, masked, hg, m0, u0, w0, o, m_out, u_out, w_out,
                          flag):  # pragma: no cover - compiled
    """:func:`softmax_kernel` with ``hg`` heads per job: jobs are (batch, group of ``hg``
    heads), each folding its heads token by token, so a job streams whole contiguous rows of
    ``v`` and ``o`` instead of one head's slice of every row. Each head's arithmetic is the same
    as in :func:`softmax_kernel` (same bits for any ``hg``); ``flag`` has one entry per job.
    """
    B, T, H, D = v.shape
    zero = v.dtype.type(0.0)
    one = v.dtype.type(1.0)
    ng = H // hg
    for job in prange(B * ng):
        ib = job // ng
        h0 = (job % ng) * hg
        m = m0[ib, h0:h0 + hg].copy()  # (hg,) running max, sum, weighted sum per head
        u = u0[ib, h0:h0 + hg].copy()
        w = w0[ib, h0:h0 + hg].copy()  # (hg, D)
        z = zero
        for t in range(T):
            s_t = s[ib, t, h0:h0 + hg]
            ok = valid[ib, t]
            for j in range(hg):
                z = z + (s_t[j] - s_t[j])
                w_j = w[j]
                if ok:
                    v_t = v[ib, t, h0 + j]
                    if s_t[j] <= m[j]:
                        beta = np.exp(s_t[j] - m[j])
                        u[j] = u[j] + beta
                        for d in range(D):
                            w_j[d] = w_j[d] + v_t[d] * beta
                    else:
                        alpha = np.exp(m[j] - s_t[j]) if m[j] != -np.inf else zero
                        m[j] = s_t[j]
                        u[j] = u[j] * alpha + one
                        for d in range(D):
                            w_j[d] = w_j[d] * alpha + v_t[d]
                o_t = o[ib, t, h0 + j]
                if u[j] > zero:
                    for d in range(D):
                        o_t[d] = w_j[d] / u[j]
                else:
                    o_t[:] = zero
        if masked:
            for j in range(hg):
                z = z + masked_flag(v, valid, ib, h0 + j, 0, T)
        m_out[ib, h0:h0 + hg] = m
        u_out[ib, h0:h0 + hg] = u
        w_out[ib, h0:h0 + hg] = w
        flag[job] = z


@numba.njit(cache=True, parallel=True)
def softmax_chunked_kernel(s, v, valid, masked, m0, u0, w0, seg_len, o, m_out, u_out, w_out,
                           flag):  # pragma: no cover - compiled
    """The three-pass chunked fold (module docstring); same outputs as :func:`softmax_kernel`.

    Jobs are (batch, head, segment); ``flag`` has one entry per job.
    """
    B, T, H, D = v.shape
    n_seg = (T + seg_len - 1) // seg_len
    R = B * H
    M = np.full((R, n_seg), -np.inf, v.dtype)  # segment triples, then carries into segments
    U = np.zeros((R, n_seg), v.dtype)
    W = np.zeros((R, n_seg, D), v.dtype)
    # pass 1: fold every segment but the last from the identity
    for job in prange(R * (n_seg - 1)):
        r, k = job // (n_seg - 1), job % (n_seg - 1)
        M[r, k], U[r, k], _ = fold(s, v, valid, masked, r // H, r % H, k * seg_len,
                                   (k + 1) * seg_len, M[r, k], U[r, k], W[r, k], o, False)
    # pass 2: carry_k = carry_{k-1} (+) segment_{k-1}, softmax_combine with the carry on the left
    for r in range(R):
        ib, ih = r // H, r % H
        m, u = m0[ib, ih], u0[ib, ih]
        w = w0[ib, ih].copy()
        for k in range(n_seg):
            m_k, u_k = M[r, k], U[r, k]
            M[r, k], U[r, k] = m, u
            mx = max(m, m_k)
            ref = mx if mx != -np.inf else v.dtype.type(0.0)  # guard -inf - -inf
            alpha, beta = np.exp(m - ref), np.exp(m_k - ref)
            m, u = mx, u * alpha + u_k * beta
            for d in range(D):
                w_d = w[d]
                w[d] = w_d * alpha + W[r, k, d] * beta
                W[r, k, d] = w_d
    # pass 3: refold every segment from its carry, writing o; the last one ends in the final state
    for job in prange(R * n_seg):
        r, k = job // n_seg, job % n_seg
        M[r, k], U[r, k], flag[job] = fold(s, v, valid, masked, r // H, r % H, k * seg_len,
                                           min((k + 1) * seg_len, T), M[r, k], U[r, k], W[r, k],
                                           o, True)
    for r in range(R):
        ib, ih = r // H, r % H
        m_out[ib, ih], u_out[ib, ih] = M[r, n_seg - 1], U[r, n_seg - 1]
        w_out[ib, ih, :] = W[r, n_seg - 1]
