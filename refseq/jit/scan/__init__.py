"""Numba CPU twins of the scan hot path; same contracts as :mod:`refseq.scan`.

``linear_scan`` mirrors ``refseq.scan.linear_scan`` and ``softmax_scan`` mirrors
``refseq.scan.softmax_scan`` (without the ``backend`` keyword). Both validate shapes and dtypes
with the reference's own checks, run a kernel, and check finiteness *after* the pass from what
the pass leaves behind (:func:`refseq.scan.checks.recheck_linear_scan`): the final state, plus
for the softmax scan a flag the kernel accumulates. Only when that evidence is not finite do they
run the reference's full check, so a bad input raises the same ``ValueError`` as the reference
(naming the argument and the first offending index) at the cost of B * C extra reads.

Kernels (:mod:`refseq.jit.scan.linear`, :mod:`refseq.jit.scan.softmax`):

* sequential — ``prange`` only over independent (batch, channel block) or (batch, head) jobs,
  time sequential inside each, channel loop innermost over contiguous memory;
* grouped — the sequential softmax fold with all heads of a batch row in one job, for large
  inputs (:func:`heads_per_job`);
* chunked — time-parallel three-pass decomposition (segment aggregates, a carry across segments,
  a rescan), for few channels and long T (:func:`chunk_length` decides from the shape alone).

Every output is produced by one thread in the same order on every run (bitwise deterministic,
whatever the thread count). No ``fastmath``: the sequential linear kernel equals the reference
bit for bit; the chunked kernels reassociate across segment boundaries and agree within the
registry's tolerance. The softmax kernels compute one exponential per (token, head) (libm's
``exp`` here, NumPy's in the reference).
"""

from __future__ import annotations

import numba
import numpy as np

from refseq._checks import check_flag, check_number
from refseq.jit.scan.linear import as_blocks, channel_block, linear_chunked, linear_kernel
from refseq.jit.scan.softmax import (
    softmax_chunked_kernel,
    softmax_groups_kernel,
    softmax_kernel,
)
from refseq.scan.assoc import SoftmaxState
from refseq.scan.checks import (
    check_linear_scan_args,
    check_out,
    check_softmax_scan_args,
    recheck_linear_scan,
    recheck_softmax_scan,
)

__all__ = ["CHUNK_MAX_CHANNELS", "CHUNK_MIN_T", "GROUP_HEADS_MIN_BYTES", "SEGMENT_MIN",
           "SEGMENTS", "chunk_length", "linear_scan", "softmax_scan"]

# The chunked path's rule, a function of the shape only (so results never depend on the thread
# count): few channels per job (one latency-bound chain each) and a long sequence.
CHUNK_MAX_CHANNELS = 16  #: at most this many channels (C, or D per head) per job ...
CHUNK_MIN_T = 8192  #: ... and at least this many steps
SEGMENTS = 64  #: segments per sequence ...
SEGMENT_MIN = 512  #: ... of at least this many steps
#: The chunked softmax kernel is exact and tested, but on the 2-core VM it measured slower than
#: the sequential fold (each token's exponential, not memory, bounds it), so "auto" does not
#: choose it; set True to run it (tests/jit/test_scan_chunked.py does).
CHUNK_SOFTMAX = False
#: ``v`` of at least this many bytes folds all heads of a batch row in one job (a job then
#: streams whole token rows; below this size the data stays in cache and one head per job
#: measured faster)
GROUP_HEADS_MIN_BYTES = 8 << 20

_as_blocks, _channel_block = as_blocks, channel_block  # the names tests/jit use


def chunk_length(T: int, channels: int) -> int:
    """Segment length of the chunked kernels for ``T`` steps of ``channels`` per job, or 0 for
    the sequential kernel. Chunked when ``channels <= CHUNK_MAX_CHANNELS`` and
    ``T >= CHUNK_MIN_T``; then ``min(SEGMENTS, T // SEGMENT_MIN)`` segments (at least 2)."""
    T = check_number(T, "T", integer=True, low=0)
    channels = check_number(channels, "channels", integer=True, low=0)
    if channels > CHUNK_MAX_CHANNELS or T < max(CHUNK_MIN_T, 2):
        return 0
    n_seg = max(2, min(SEGMENTS, T // max(SEGMENT_MIN, 1)))
    return -(-T // n_seg)


def heads_per_job(B: int, H: int, nbytes: int) -> int:
    """Heads per job of the sequential softmax fold: all ``H`` (one job per batch row,
    :func:`~refseq.jit.scan.softmax.softmax_groups_kernel`) when ``v`` has at least
    ``GROUP_HEADS_MIN_BYTES`` and the batch alone gives every Numba thread a job, else 1
    (:func:`~refseq.jit.scan.softmax.softmax_kernel`). Either way each head's fold is the same
    arithmetic, so the choice never changes a bit of the result."""
    if H > 1 and nbytes >= GROUP_HEADS_MIN_BYTES and B >= numba.get_num_threads():
        return H
    return 1


def linear_scan(a, b, h0=None, *, reverse=False, check_finite=True, out=None):
    """Numba twin of :func:`refseq.scan.linear_scan` (same arguments, shapes, dtype, errors).

    ``out`` (optional, shape and dtype of ``b``, C-contiguous) receives the result, so a caller
    can reuse a buffer instead of paying page faults on fresh memory. With ``check_finite`` a
    non-finite input raises after the pass (``out`` then holds its non-finite result).
    """
    reverse = check_flag(reverse, "reverse")
    check_finite = check_flag(check_finite, "check_finite")
    a, b, h0 = check_linear_scan_args(a, b, h0, check_finite=False)
    out = check_out(out, b.shape, b.dtype)
    if out is None:
        out = np.empty(b.shape, b.dtype)
    if b.size == 0:
        if check_finite:
            recheck_linear_scan(a, b, h0, out)
        return out
    B, T = b.shape[:2]
    C = b.size // (B * T)
    b3 = np.ascontiguousarray(b).reshape(B, T, C)
    h0_2 = np.zeros((B, C), b.dtype) if h0 is None else np.ascontiguousarray(h0).reshape(B, C)
    out3 = out.reshape(B, T, C)
    a3, rep = as_blocks(a, b)
    seg_len = chunk_length(T, C)
    if seg_len:
        linear_chunked(a3, rep, b3, h0_2, seg_len, reverse, out3)
    else:
        linear_kernel(a3, b3, h0_2, rep, channel_block(B, C, rep), reverse, out3)
    if check_finite:
        recheck_linear_scan(a, b, h0, out3[:, 0 if reverse else T - 1])
    return out


def softmax_scan(s, v, mask=None, state=None, *, check_finite=True, out=None):
    """Numba twin of :func:`refseq.scan.softmax_scan` (same arguments, shapes, dtype, errors).

    Parallel over (batch, head) pairs; with ``CHUNK_SOFTMAX`` also over time segments when
    there are few channels and T is long (:func:`chunk_length`). ``out`` (optional, shape and
    dtype of ``v``, C-contiguous) receives ``o``. With ``check_finite`` a non-finite input raises
    after the pass.
    """
    check_finite = check_flag(check_finite, "check_finite")
    s, v, mask, state = check_softmax_scan_args(s, v, mask, state, check_finite=False)
    B, T, H, D = v.shape
    dt = v.dtype
    o = check_out(out, v.shape, dt)
    o = np.empty((B, T, H, D), dt) if o is None else o
    if state is None:
        m0, u0, w0 = np.full((B, H), -np.inf, dt), np.zeros((B, H), dt), np.zeros((B, H, D), dt)
    else:
        m0, u0, w0 = (np.ascontiguousarray(x) for x in state)
    valid = np.ones((B, T), np.uint8) if mask is None else mask.astype(np.uint8)
    masked = mask is not None and not mask.all()  # some values are never folded
    final = SoftmaxState(np.empty((B, H), dt), np.empty((B, H), dt), np.empty((B, H, D), dt))
    seg_len = chunk_length(T, D) if CHUNK_SOFTMAX else 0
    s_c, v_c = np.ascontiguousarray(s), np.ascontiguousarray(v)
    if seg_len and B * H:
        flag = np.zeros(B * H * -(-T // seg_len), dt)  # one per (b, h, segment)
        softmax_chunked_kernel(s_c, v_c, valid, masked, m0, u0, w0, seg_len, o, *final, flag)
    elif heads_per_job(B, H, v.nbytes) > 1:
        hg = heads_per_job(B, H, v.nbytes)
        flag = np.zeros(B * (H // hg), dt)  # one per (b, head group)
        softmax_groups_kernel(s_c, v_c, valid, masked, hg, m0, u0, w0, o, *final, flag)
    else:
        flag = np.zeros(B * H, dt)
        softmax_kernel(s_c, v_c, valid, masked, m0, u0, w0, o, *final, flag)
    if check_finite:
        recheck_softmax_scan(s, v, mask, state, flag, final)
    return o, final
