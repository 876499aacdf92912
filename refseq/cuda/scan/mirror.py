"""NumPy mirrors of the cuda scan kernels' decompositions (never imports numba).

Every kernel that :mod:`refseq.cuda.scan.kernels` builds has a twin here that follows its loop
structure step for step: the same tile of ``threads * per_thread`` time steps per block, the same
run of ``per_thread`` consecutive elements folded by each thread, the same Hillis-Steele rounds in
shared memory, the same carry propagation across tiles, and the same identity padding at the end
of the last tile. What the GPU runs in parallel (rows, tiles, the threads of a block) is
vectorised; what one thread runs in order is a Python loop in the same order. Like the kernel
builder, the two drivers :func:`scan_rows` and :func:`scan_tiles` are generic over the operator:
:data:`refseq.scan.assoc.AFFINE` and :data:`refseq.scan.assoc.SOFTMAX_TRIPLE` here, their device
forms in :mod:`refseq.cuda.scan.ops`, with the accumulated prefix always on the left, so the
algorithm stays testable on any machine, with or without numba-cuda and its simulator.

Internally time is axis 0 ("time first"): a leaf has shape ``(T, *row)`` where ``row`` is the
part the GPU spreads over threads — ``(B, *S)`` for ``linear_scan``, ``(B, H)`` for ``m`` and
``u`` and ``(B, H, D)`` for ``w`` in ``softmax_scan``. The softmax kernels give each value
channel ``d`` its own thread, which recomputes ``m`` and ``u`` with the same operands; the mirror
computes them once per ``(b, h)``, which yields the same values.

The defaults :data:`THREADS` and :data:`PER_THREAD` are the kernels' defaults.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_flag, check_number
from refseq.scan.assoc import AFFINE, SOFTMAX_TRIPLE, SoftmaxState, softmax_identity, softmax_leaf
from refseq.scan.checks import check_linear_scan_args, check_softmax_scan_args

THREADS = 256  #: threads per block of the tiled ("parallel") kernels
PER_THREAD = 8  #: consecutive time steps folded by one thread before the block-wide scan


def _check_tiling(threads, per_thread):
    """Raise unless ``threads`` is an integer in [1, 1024] (a CUDA block) and ``per_thread`` an
    integer >= 1: ``TypeError`` for a non-integer, ``ValueError`` for one out of range."""
    check_number(threads, "threads", integer=True, low=1, high=1024)
    check_number(per_thread, "per_thread", integer=True, low=1)


# ---------------------------------------------------------------------------------------------
# The two decompositions, for any operator. ``leaves`` are time-first arrays (T, *row); ``initial``
# is one element shaped like a leaf without its time axis.


def scan_rows(op, leaves, initial):
    """The "sequential" decomposition: one thread per row, a left fold over time.

    Mirrors the ``sequential`` kernels: the thread of one row starts from ``initial`` and, for
    t = 0, ..., T-1, sets ``acc = acc (+) x_t`` and stores ``acc``. Rows are independent, so the
    mirror runs them all at once.

    Parameters
    ----------
    op : AssociativeOp — ``AFFINE`` or ``SOFTMAX_TRIPLE``.
    leaves : tuple of ``(T, *row)`` arrays — the elements, time first.
    initial : one element, shaped like ``leaves`` without the time axis — the carry-in.

    Returns
    -------
    out : tuple of ``(T, *row)`` arrays, the inclusive prefixes; final : the last ``acc``.
    """
    out = tuple(np.empty_like(x) for x in leaves)
    acc = initial
    for t in range(leaves[0].shape[0]):
        acc = op.combine(acc, tuple(x[t] for x in leaves))  # the prefix stays on the left
        for o, y in zip(out, acc, strict=True):
            o[t] = y
    return out, acc


def _hillis_steele(op, x):
    """Inclusive Hillis-Steele scan over axis 1 (the threads of a block), round by round.

    In round ``offset = 1, 2, 4, ...`` thread ``i >= offset`` replaces its value by
    ``x[i - offset] (+) x[i]``, both read before anyone writes (the kernel's two barriers).
    """
    threads = x[0].shape[1]
    offset = 1
    while offset < threads:
        new = op.combine(tuple(e[:, :-offset] for e in x), tuple(e[:, offset:] for e in x))
        x = tuple(np.concatenate([e[:, :offset], n], axis=1) for e, n in zip(x, new, strict=True))
        offset *= 2
    return x


def scan_tiles(op, leaves, initial, threads=THREADS, per_thread=PER_THREAD):
    """The "parallel" decomposition: reduce-then-scan over tiles of ``threads * per_thread``.

    Mirrors the three tiled kernels, per row:

    1. ``tile_totals`` (one block per (row, tile)): thread ``i`` folds its ``per_thread``
       consecutive elements ``x[tile*TILE + i*per_thread + j]`` from the identity; a
       Hillis-Steele scan of the thread totals in shared memory leaves the tile total in the last
       thread.
    2. ``tile_carries`` (one thread per row): a left fold over the tile totals, starting at
       ``initial``, records each tile's exclusive carry; the fold's last value is the final state.
    3. ``tile_scan`` (one block per (row, tile)): repeats step 1's folds and block scan, forms
       ``carry (+) (exclusive prefix of thread i)`` — the carry on the left — and folds the
       thread's elements again, storing each inclusive prefix.

    Positions past T in the last tile hold the identity (padding at the *end* leaves every real
    prefix unchanged). Phase 3 recomputes phase 1's values in the kernel; here they are reused.

    Parameters
    ----------
    op, leaves, initial : as for :func:`scan_rows`.
    threads : int — threads per block (at most 1024); per_thread : int — steps per thread.

    Returns
    -------
    out : tuple of ``(T, *row)`` arrays, the inclusive prefixes; final : the total of everything.
    """
    _check_tiling(threads, per_thread)
    T = leaves[0].shape[0]
    tile = threads * per_thread
    n_tiles = -(-T // tile)
    ident = op.identity(tuple(x[0] for x in leaves))  # one element, (*row)
    X = tuple(
        np.concatenate([x, np.broadcast_to(i, (n_tiles * tile - T,) + x.shape[1:])])
        .reshape((n_tiles, threads, per_thread) + x.shape[1:])
        for x, i in zip(leaves, ident, strict=True)
    )  # (n_tiles, threads, per_thread, *row), identity-padded at the end

    # Phase 1: per-thread fold from the identity, then the block-wide scan of thread totals.
    acc = tuple(np.broadcast_to(i, (n_tiles, threads) + i.shape) for i in ident)
    for j in range(per_thread):
        acc = op.combine(acc, tuple(x[:, :, j] for x in X))  # (n_tiles, threads, *row)
    scanned = _hillis_steele(op, acc)  # inclusive over threads, (n_tiles, threads, *row)
    totals = tuple(s[:, -1] for s in scanned)  # written by the last thread, (n_tiles, *row)

    # Phase 2: exclusive carries by a left fold over the tiles of each row.
    carry, carries = initial, []
    for k in range(n_tiles):
        carries.append(carry)
        carry = op.combine(carry, tuple(t[k] for t in totals))
    final = carry
    carries = tuple(
        np.stack([np.broadcast_to(c[i], ident[i].shape) for c in carries])[:, None]
        for i in range(len(ident))
    )  # (n_tiles, 1, *row): one carry per tile, shared by its threads

    # Phase 3: carry (+) exclusive prefix of the thread (identity for thread 0), then refold.
    exclusive = tuple(
        np.concatenate([np.broadcast_to(i, s[:, :1].shape), s[:, :-1]], axis=1)
        for i, s in zip(ident, scanned, strict=True)
    )
    acc = op.combine(carries, exclusive)  # (n_tiles, threads, *row)
    out = tuple(np.empty_like(x) for x in X)
    for j in range(per_thread):
        acc = op.combine(acc, tuple(x[:, :, j] for x in X))
        for o, y in zip(out, acc, strict=True):
            o[:, :, j] = y
    out = tuple(o.reshape((n_tiles * tile,) + o.shape[3:])[:T] for o in out)
    return out, final


# ---------------------------------------------------------------------------------------------
# linear_scan: h_t = a_t * h_{t-1} + b_t, the b-part of the AFFINE scan seeded with (1, h0).


def _linear(a, b, h0, reverse, scan):
    reverse = check_flag(reverse, "reverse")
    a, b, h0 = check_linear_scan_args(a, b, h0, check_finite=False)
    if b.shape[1] == 0:
        return np.empty_like(b)
    step = -1 if reverse else 1  # the kernels read time index T-1-k at scan step k
    a_tf = np.moveaxis(np.broadcast_to(a, b.shape), 1, 0)[::step]  # (T, B, *S)
    b_tf = np.moveaxis(b, 1, 0)[::step]  # (T, B, *S)
    state = np.zeros_like(b_tf[0]) if h0 is None else h0  # (B, *S)
    (_, h), _ = scan((a_tf, b_tf), (np.ones_like(state), state))
    return np.ascontiguousarray(np.moveaxis(h[::step], 0, 1))  # (B, T, *S)


def linear_scan_sequential(a, b, h0=None, reverse=False):
    """NumPy mirror of the ``method="sequential"`` kernel of :func:`refseq.cuda.scan.linear_scan`.

    One GPU thread per (batch, channel) runs ``h = a_t * h + b_t`` over t (from T-1 down to 0 if
    ``reverse``), starting at ``h0`` (zeros if None) — the affine fold of
    :func:`refseq.scan.linear_scan`, evaluated with the same expressions, so the result equals
    the reference bit for bit.

    Parameters
    ----------
    a : array broadcastable to ``b``; b : ``(B, T, *S)``; h0 : ``(B, *S)``, optional;
    reverse : bool.

    Returns
    -------
    h : ``(B, T, *S)``, ``b``'s dtype.
    """
    return _linear(a, b, h0, reverse, lambda x, init: scan_rows(AFFINE, x, init))


def linear_scan_blocked(a, b, h0=None, reverse=False, *, threads=THREADS, per_thread=PER_THREAD):
    """NumPy mirror of the ``method="parallel"`` kernels of :func:`refseq.cuda.scan.linear_scan`.

    The AFFINE scan of the elements ``(a_t, b_t)`` (maps ``h -> a_t h + b_t``) by
    :func:`scan_tiles`: per (batch, channel) row, tiles of ``threads * per_thread`` steps; each
    thread composes its ``per_thread`` maps, ``(A, B) (+) (a, b) = (A a, a B + b)``; a
    Hillis-Steele scan composes the threads' maps; the carry ``h`` entering tile ``k`` is
    ``h0`` pushed through the maps of tiles ``0..k-1``; each thread then applies its exclusive
    map to the carry and runs ``h = a_t h + b_t`` over its steps. The last tile is padded with
    the identity map ``(1, 0)``. Same result as :func:`refseq.scan.linear_scan` up to rounding.

    Parameters
    ----------
    a : array broadcastable to ``b``; b : ``(B, T, *S)``; h0 : ``(B, *S)``, optional;
    reverse : bool.
    threads : int — threads per block (at most 1024); per_thread : int — steps per thread.

    Returns
    -------
    h : ``(B, T, *S)``, ``b``'s dtype.
    """
    _check_tiling(threads, per_thread)
    return _linear(a, b, h0, reverse,
                   lambda x, init: scan_tiles(AFFINE, x, init, threads, per_thread))


# ---------------------------------------------------------------------------------------------
# softmax_scan: the SOFTMAX_TRIPLE scan over leaves (s, 1, v), or the identity where masked.


def _softmax(s, v, mask, state, scan):
    s, v, mask, state = check_softmax_scan_args(s, v, mask, state, check_finite=False)
    B, T, H, D = v.shape
    initial = state if state is not None else softmax_identity((B, H), D, v.dtype)
    if T == 0:
        return np.zeros_like(v), initial
    m, u, w = softmax_leaf(s, v, mask)  # (B, T, H), (B, T, H), (B, T, H, D)
    leaves = tuple(np.moveaxis(x, 1, 0) for x in (m, u, w))  # time first
    (M, U, W), final = scan(leaves, tuple(initial))
    o = np.divide(W, U[..., None], out=np.zeros_like(W), where=U[..., None] > 0)  # w / u, or 0
    final = SoftmaxState(*(np.ascontiguousarray(np.broadcast_to(f, i.shape))
                           for f, i in zip(final, initial, strict=True)))
    return np.ascontiguousarray(np.moveaxis(o, 0, 1)), final


def softmax_scan_sequential(s, v, mask=None, state=None):
    """NumPy mirror of the ``method="sequential"`` kernel of :func:`refseq.cuda.scan.softmax_scan`.

    One GPU thread per (batch, head, value channel) folds the leaves ``(s_t, 1, v_t)`` (the
    identity ``(-inf, 0, 0)`` where masked) into the carried triple with the stable combine
    (Aaren, arXiv 2405.13956 Sec. 3.2):

    .. math:: m_t = \\max(m_{t-1}, s_t),\\quad u_t = u_{t-1} e^{m_{t-1}-m_t} + e^{s_t-m_t},\\quad
              w_t = w_{t-1} e^{m_{t-1}-m_t} + v_t e^{s_t-m_t},\\quad o_t = w_t / u_t

    (``o_t = 0`` while ``u_t = 0``). Mirrors :func:`refseq.scan.softmax_scan`.

    Returns
    -------
    o : (B, T, H, D); state : the final ``SoftmaxState`` (the input state, or the identity, if
    T = 0).
    """
    return _softmax(s, v, mask, state, lambda x, init: scan_rows(SOFTMAX_TRIPLE, x, init))


def softmax_scan_blocked(s, v, mask=None, state=None, *, threads=THREADS, per_thread=PER_THREAD):
    """NumPy mirror of the ``method="parallel"`` kernels of :func:`refseq.cuda.scan.softmax_scan`.

    The SOFTMAX_TRIPLE scan by :func:`scan_tiles` (tiles of ``threads * per_thread`` steps,
    per-thread folds, a Hillis-Steele block scan, carries by a fold over tile totals seeded with
    ``state``, carry combined on the left, identity padding at the end). The combine is

    .. math:: (m_A, u_A, w_A) \\oplus (m_B, u_B, w_B) = (m, u_A e^{m_A - m} + u_B e^{m_B - m},
              w_A e^{m_A - m} + w_B e^{m_B - m}),\\quad m = \\max(m_A, m_B),

    with the exponents taken relative to 0 when ``m = -inf`` (two identities make the identity,
    never NaN). Same result as :func:`refseq.scan.softmax_scan` up to rounding.

    Returns
    -------
    o : (B, T, H, D); state : the final ``SoftmaxState``.
    """
    _check_tiling(threads, per_thread)
    return _softmax(s, v, mask, state,
                    lambda x, init: scan_tiles(SOFTMAX_TRIPLE, x, init, threads, per_thread))
