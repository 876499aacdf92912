"""Numba kernels of ``linear_scan``: ``h_t = a_t * h_{t-1} + b_t`` (the AFFINE scan).

Two decompositions of the same recurrence, both over ``b`` viewed as (B, T, C) and the decays
``a`` as (Ba, Ta, Ca) (Ba in {1, B}, Ta in {1, T}; channel c reads ``a[..., c // rep]``):

* :func:`linear_kernel` — sequential in time: ``prange`` over (batch, channel block) jobs, each
  carrying its channels through all of T. Bandwidth-bound when C is large.
* :func:`linear_chunked` — time-parallel for few channels and long T, where one
  dependency chain per job would leave the machine latency-bound. T is cut into ``n_seg``
  segments of ``seg_len`` steps (a function of the shape only). Pass 1 composes each segment's
  steps into one affine map ``h -> A_k h + beta_k`` (``A_k = prod a``, ``beta_k`` = the local scan
  from zero); pass 2 carries ``h_k = A_{k-1} h_{k-1} + beta_{k-1}`` across segments; pass 3
  rescans every segment from its carry, writing ``out``. A *chain* is one (batch, segment,
  channel); each job advances ``CHAINS = 8`` chains together, one step of each in turn, with
  their states in registers, so a thread has 8 independent dependency chains in flight instead
  of one, and its inner loop holds no index arithmetic beyond one multiply-add per offset
  (unsigned indices: no negative-index wraparound).

Every result is produced by one thread in a fixed order, so both are bitwise deterministic run
to run; no ``fastmath`` (the step is exactly ``a * h + b``, which the sequential kernel shares
with the NumPy reference bit for bit).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

CHAINS = 8  #: independent (segment, channel) chains one job of the chunked kernels interleaves


@numba.njit(cache=True, parallel=True)
def linear_kernel(a3, b3, h0, rep, block, reverse, out):  # pragma: no cover - compiled
    """out[b, t, c] = a3[b', t', c // rep] * out[b, t -/+ 1, c] + b3[b, t, c].

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


def chunk_chains(B, T, C, a3, rep, seg_len, reverse):
    """The chains of the chunked kernels, ``CHAINS`` per job: ``(boff, aoff, n, slot)``.

    A chain is one (batch, segment, channel) triple: ``n`` steps from flat offset ``boff`` into
    ``b``/``out`` (B, T, C) and ``aoff`` into ``a3`` (Ba, Ta, Ca); ``slot`` is its index in the
    (B, n_seg, C) aggregate arrays. The list is padded to a multiple of ``CHAINS`` by repeating
    its last chain (a repeat writes the same values again, from the same thread).
    """
    Ba, Ta, Ca = a3.shape
    n_seg = -(-T // seg_len)
    q = np.arange(B * n_seg * C, dtype=np.int64)
    q = np.concatenate([q, np.full(-q.size % CHAINS, q[-1], np.int64)])
    ib, k, c = q // (n_seg * C), (q // C) % n_seg, q % C
    step0 = k * seg_len
    t0 = T - 1 - step0 if reverse else step0
    boff = (ib * T + t0) * C + c
    aoff = (ib if Ba > 1 else 0) * Ta * Ca + (t0 if Ta > 1 else 0) * Ca + c // rep
    n = np.minimum(seg_len, T - step0)
    return tuple(x.reshape(-1, CHAINS) for x in (boff, aoff, n, q))


@numba.njit(cache=True)
def _compose(a, b, A, beta, oa, ob):  # pragma: no cover - compiled
    """One step folded into a chain's map: ``(A, beta) -> (a A, a beta + b)``. Offsets are
    cast to unsigned for indexing: no negative-index wraparound in the inner loop."""
    a_t = a[np.uint64(oa)]
    return a_t * A, a_t * beta + b[np.uint64(ob)]


@numba.njit(cache=True)
def _step(a, b, out, h, oa, ob):  # pragma: no cover - compiled
    """One step of a chain: ``h = a h + b``, stored to ``out``."""
    h = a[np.uint64(oa)] * h + b[np.uint64(ob)]
    out[np.uint64(ob)] = h
    return h


@numba.njit(cache=True, parallel=True)
def chunk_aggregates(a, b, boff, aoff, n, da, db, A, beta):  # pragma: no cover - compiled
    """Pass 1: compose each chain's ``n`` steps into ``h -> A h + beta`` (A, beta: one per
    chain, (jobs, CHAINS)). The eight chains of a job advance together, one step each in turn."""
    for job in prange(boff.shape[0]):
        p, o = aoff[job], boff[job]
        n_min = n[job].min()
        A0 = A1 = A2 = A3 = A4 = A5 = A6 = A7 = A.dtype.type(1.0)
        B0 = B1 = B2 = B3 = B4 = B5 = B6 = B7 = A.dtype.type(0.0)
        for i in range(n_min):
            ia, ib = i * da, i * db
            A0, B0 = _compose(a, b, A0, B0, p[0] + ia, o[0] + ib)
            A1, B1 = _compose(a, b, A1, B1, p[1] + ia, o[1] + ib)
            A2, B2 = _compose(a, b, A2, B2, p[2] + ia, o[2] + ib)
            A3, B3 = _compose(a, b, A3, B3, p[3] + ia, o[3] + ib)
            A4, B4 = _compose(a, b, A4, B4, p[4] + ia, o[4] + ib)
            A5, B5 = _compose(a, b, A5, B5, p[5] + ia, o[5] + ib)
            A6, B6 = _compose(a, b, A6, B6, p[6] + ia, o[6] + ib)
            A7, B7 = _compose(a, b, A7, B7, p[7] + ia, o[7] + ib)
        A[job, 0], A[job, 1], A[job, 2], A[job, 3] = A0, A1, A2, A3
        A[job, 4], A[job, 5], A[job, 6], A[job, 7] = A4, A5, A6, A7
        beta[job, 0], beta[job, 1], beta[job, 2], beta[job, 3] = B0, B1, B2, B3
        beta[job, 4], beta[job, 5], beta[job, 6], beta[job, 7] = B4, B5, B6, B7
        for q in range(CHAINS):  # the longer chains' remaining steps (next to the last segment)
            for i in range(n_min, n[job, q]):
                A[job, q], beta[job, q] = _compose(a, b, A[job, q], beta[job, q],
                                                   p[q] + i * da, o[q] + i * db)


@numba.njit(cache=True)
def chunk_carries(A, beta, h0, carry):  # pragma: no cover - compiled
    """Pass 2: ``carry[b, 0] = h0[b]``, ``carry[b, k + 1] = A[b, k] carry[b, k] + beta[b, k]``
    over (B, n_seg, C) arrays, one segment after the other."""
    B, n_seg, C = carry.shape
    for ib in range(B):
        for c in range(C):
            h = h0[ib, c]
            for k in range(n_seg):
                carry[ib, k, c] = h
                h = A[ib, k, c] * h + beta[ib, k, c]


@numba.njit(cache=True, parallel=True)
def chunk_rescan(a, b, boff, aoff, n, da, db, h_in, out):  # pragma: no cover - compiled
    """Pass 3: rescan each chain from its carry ``h_in`` (jobs, CHAINS), writing ``out``."""
    for job in prange(boff.shape[0]):
        p, o = aoff[job], boff[job]
        n_min = n[job].min()
        h0, h1, h2, h3 = h_in[job, 0], h_in[job, 1], h_in[job, 2], h_in[job, 3]
        h4, h5, h6, h7 = h_in[job, 4], h_in[job, 5], h_in[job, 6], h_in[job, 7]
        for i in range(n_min):
            ia, ib = i * da, i * db
            h0 = _step(a, b, out, h0, p[0] + ia, o[0] + ib)
            h1 = _step(a, b, out, h1, p[1] + ia, o[1] + ib)
            h2 = _step(a, b, out, h2, p[2] + ia, o[2] + ib)
            h3 = _step(a, b, out, h3, p[3] + ia, o[3] + ib)
            h4 = _step(a, b, out, h4, p[4] + ia, o[4] + ib)
            h5 = _step(a, b, out, h5, p[5] + ia, o[5] + ib)
            h6 = _step(a, b, out, h6, p[6] + ia, o[6] + ib)
            h7 = _step(a, b, out, h7, p[7] + ia, o[7] + ib)
        h = np.array((h0, h1, h2, h3, h4, h5, h6, h7))
        for q in range(CHAINS):  # the longer chains' remaining steps
            for i in range(n_min, n[job, q]):
                h[q] = _step(a, b, out, h[q], p[q] + i * da, o[q] + i * db)


def linear_chunked(a3, rep, b3, h0, seg_len, reverse, out):
    """The three passes over ``b3`` (B, T, C) into ``out`` (same shape), flat views inside."""
    B, T, C = b3.shape
    Ca = a3.shape[2]
    boff, aoff, n, slot = chunk_chains(B, T, C, a3, rep, seg_len, reverse)
    db = -C if reverse else C
    da = (-Ca if reverse else Ca) if a3.shape[1] > 1 else 0
    a, b, o = a3.reshape(-1), b3.reshape(-1), out.reshape(-1)
    A, beta = np.empty(boff.shape, b3.dtype), np.empty(boff.shape, b3.dtype)
    chunk_aggregates(a, b, boff, aoff, n, da, db, A, beta)
    n_seg = -(-T // seg_len)
    A_seg, beta_seg = np.empty((B, n_seg, C), b3.dtype), np.empty((B, n_seg, C), b3.dtype)
    A_seg.reshape(-1)[slot.reshape(-1)] = A.reshape(-1)  # repeats write equal values
    beta_seg.reshape(-1)[slot.reshape(-1)] = beta.reshape(-1)
    carry = np.empty((B, n_seg, C), b3.dtype)
    chunk_carries(A_seg, beta_seg, h0, carry)
    chunk_rescan(a, b, boff, aoff, n, da, db, carry.reshape(-1)[slot], o)


def channel_block(B, C, rep):
    """Channels per job: whole rows when the batch alone feeds every thread, else split C."""
    per_batch = max(1, -(-numba.get_num_threads() // B))  # jobs wanted per batch row
    block = max(64, -(-C // per_batch))
    block = -(-block // rep) * rep  # whole decay groups only
    return min(block, C)


def as_blocks(a, b):
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
