"""numba.cuda kernels for the scan hot path; same contracts as :mod:`refseq.scan`.

``linear_scan`` mirrors :func:`refseq.scan.linear_scan` (``h_t = a_t h_{t-1} + b_t``, the AFFINE
scan) and ``softmax_scan`` mirrors :func:`refseq.scan.softmax_scan` (Aaren's prefix softmax, the
SOFTMAX_TRIPLE scan, arXiv 2405.13956 Sec. 3; spec aaren.md). Both validate with the reference's
own checks, take NumPy arrays (or numba device arrays) and return NumPy arrays.

Two decompositions, chosen by ``method`` (docs/hot-paths/scan-cuda.md):

* ``"sequential"`` — one thread per row, a left fold over time. A row is a (batch, channel) pair:
  a flattened state index of ``*S`` for ``linear_scan``, a (head, value channel) pair for
  ``softmax_scan`` (each such thread recomputes its head's ``m`` and ``u`` with the same
  operands, so they agree bitwise across ``d``). Adjacent threads own adjacent channels, so every
  time step's loads and stores are coalesced.
* ``"parallel"`` — reduce-then-scan over tiles of ``threads * per_thread`` steps, for long
  sequences with few rows: (1) ``tile_totals``, one block per (row, tile): each thread folds
  ``per_thread`` consecutive steps from the identity, a Hillis-Steele scan in shared memory
  composes the thread totals, the last thread writes the tile total; (2) ``tile_carries``, one
  thread per row: a left fold over tile totals seeded with the initial state gives each tile's
  exclusive carry (and the final state); (3) ``tile_scan``, one block per (row, tile): the same
  folds and block scan, then ``carry (+) exclusive prefix of the thread`` and a refold that
  writes each output. The last tile is padded with the identity at its end.

``"auto"`` picks ``"parallel"`` when ``T >= AUTO_MIN_TILES * threads * per_thread`` and the row
count is at most ``AUTO_MAX_ROWS`` (too few rows to fill a GPU with one thread each), else
``"sequential"`` (:func:`choose_method`); these thresholds are a heuristic, not yet measured on a
GPU.

Determinism: no atomics, one fixed order of combines per output, so results are bitwise
identical run to run. The accumulated prefix is always the left operand (neither operator is
treated as commutative). No ``fastmath``; constants are in the kernel's dtype (one compiled
specialisation per dtype). NVVM contracts ``a * h + b`` into a fused multiply-add on a GPU, so
there the results may differ from the NumPy mirrors (:mod:`refseq.cuda.scan.mirror`) in the last
bit; under the simulator the linear kernels equal their mirrors bit for bit.

``numba.cuda`` is bound to the module global ``cuda`` on first use (from
:mod:`refseq.cuda._device`, the one import point): the module imports without numba-cuda, and the
simulator can swap the global for its per-thread fake module while a kernel runs.
"""

from __future__ import annotations

import math

import numpy as np

from refseq.cuda import require_numba_cuda, to_host
from refseq.cuda.scan.mirror import PER_THREAD, THREADS, _check_tiling
from refseq.scan import check_linear_scan_args, check_softmax_scan_args
from refseq.scan.assoc import SoftmaxState, softmax_identity

cuda = None  # numba.cuda, bound by _bind_cuda() on first use

METHODS = ("auto", "sequential", "parallel")
ROW_THREADS = 128  #: block size of the one-thread-per-row kernels ("sequential", tile carries)
AUTO_MIN_TILES = 4  #: "auto" needs at least this many tiles per row to choose "parallel" ...
AUTO_MAX_ROWS = 4096  #: ... and at most this many rows (too few to fill the GPU one per thread)

_KERNELS: dict = {}  # (operator, method, dtype, threads, per_thread) -> kernels


def _bind_cuda():
    """Bind ``numba.cuda`` to this module's global ``cuda`` on first use (see
    :func:`refseq.cuda.require_numba_cuda`)."""
    global cuda
    if cuda is None:
        cuda = require_numba_cuda(__name__)
    return cuda


_host = to_host


def choose_method(T: int, rows: int, threads: int = THREADS, per_thread: int = PER_THREAD) -> str:
    """The decomposition ``method="auto"`` runs for ``rows`` independent scans of length ``T``.

    Parameters
    ----------
    T : int — sequence length; rows : int — independent scans (``B * prod(S)`` for
    ``linear_scan``, ``B * H * D`` for ``softmax_scan``); threads, per_thread : int — the tile.

    Returns
    -------
    ``"parallel"`` when every row has at least ``AUTO_MIN_TILES`` tiles of
    ``threads * per_thread`` steps and there are at most ``AUTO_MAX_ROWS`` rows — too few to keep
    a GPU busy with one thread each, while each thread would walk all of T — else
    ``"sequential"``, which reads each input once and writes each output once.
    """
    long = T >= AUTO_MIN_TILES * threads * per_thread
    return "parallel" if long and rows <= AUTO_MAX_ROWS else "sequential"


def _resolve_method(method, T, rows, threads, per_thread):
    """Validate ``method`` and the tile, and resolve "auto" with :func:`choose_method`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_tiling(threads, per_thread)
    return choose_method(T, rows, threads, per_thread) if method == "auto" else method


def _grid(n, block):
    """Blocks of ``block`` threads needed to cover ``n`` threads (at least one)."""
    return max(1, -(-n // block))


# ---------------------------------------------------------------------------------------------
# Kernels, built on first use per (dtype, tile shape). Closure constants (ONE, ZERO, THREADS, ...)
# are compile-time constants, so shared arrays have static sizes and literals keep the dtype.


def _linear_kernels(method, dtype, threads, per_thread):
    """The ``linear_scan`` kernel(s) of ``method`` for ``dtype``, built on first use and cached."""
    key = ("linear", method, dtype.str, threads, per_thread)
    if key not in _KERNELS:
        _bind_cuda()
        _KERNELS[key] = (_build_linear_sequential(dtype) if method == "sequential"
                         else _build_linear_tiled(dtype, threads, per_thread))
    return _KERNELS[key]


def _build_linear_sequential(dtype):
    """The one-thread-per-row kernel; mirror: :func:`refseq.cuda.scan.mirror.linear_scan_sequential`."""

    @cuda.jit
    def sequential(a, a_bstep, a_tstep, cmap, b, h0, reverse, h):
        """h[n, t, c] = a[n', t', cmap[c]] * h[n, t -/+ 1, c] + b[n, t, c], one thread per (n, c).

        ``a`` is (Ba, Ta, Ca) with its broadcast axes kept at size 1: ``n' = n * a_bstep``,
        ``t' = t * a_tstep`` (steps 0 or 1) and ``cmap`` maps a channel of ``b`` to one of ``a``.
        Thread ``row = n * C + c``, so a warp reads consecutive channels of one time step.
        """
        row = cuda.grid(1)
        n_batch, T, C = b.shape
        if row >= n_batch * C:
            return
        n = row // C
        c = row - n * C
        na = n * a_bstep
        ca = cmap[c]
        h_t = h0[n, c]
        for k in range(T):
            t = T - 1 - k if reverse else k
            h_t = a[na, t * a_tstep, ca] * h_t + b[n, t, c]  # the AFFINE fold, prefix on the left
            h[n, t, c] = h_t

    return sequential


def _build_linear_tiled(dtype, threads, per_thread):
    """The three reduce-then-scan kernels (mirror: :func:`refseq.cuda.scan.mirror.linear_scan_blocked`).

    Each thread's run of steps is summarised by the composed affine map ``h -> A h + B``.
    """
    ONE, ZERO = dtype.type(1), dtype.type(0)  # the identity map h -> 1 * h + 0
    THREADS, PER_THREAD = threads, per_thread
    TILE = threads * per_thread

    @cuda.jit(device=True)
    def compose(A1, B1, A2, B2):
        """(A1, B1) (+) (A2, B2) = (A1 A2, A2 B1 + B2): the map on the left is applied first."""
        return A1 * A2, A2 * B1 + B2

    @cuda.jit(device=True)
    def thread_fold(a, a_bstep, a_tstep, cmap, b, reverse, n, c, k0):
        """Compose the maps of scan steps k0 .. k0 + PER_THREAD - 1 (steps past T: identity)."""
        T = b.shape[1]
        A, Bv = ONE, ZERO
        for j in range(PER_THREAD):
            k = k0 + j
            if k < T:
                t = T - 1 - k if reverse else k
                A, Bv = compose(A, Bv, a[n * a_bstep, t * a_tstep, cmap[c]], b[n, t, c])
        return A, Bv

    @cuda.jit(device=True)
    def block_scan(sA, sB, i):
        """Inclusive Hillis-Steele scan of the maps in shared memory; thread i owns entry i.

        Round ``offset``: read the left neighbour, barrier, compose (left first), barrier.
        """
        offset = 1
        while offset < THREADS:
            A_l, B_l = ONE, ZERO
            if i >= offset:
                A_l, B_l = sA[i - offset], sB[i - offset]
            cuda.syncthreads()
            if i >= offset:
                sA[i], sB[i] = compose(A_l, B_l, sA[i], sB[i])
            cuda.syncthreads()
            offset *= 2

    @cuda.jit
    def tile_totals(a, a_bstep, a_tstep, cmap, b, reverse, n_tiles, A_tot, B_tot):
        """Phase 1, one block per (row, tile): the composed map of the tile -> (A_tot, B_tot)."""
        row = cuda.blockIdx.x // n_tiles
        tile = cuda.blockIdx.x - row * n_tiles
        i = cuda.threadIdx.x
        n = row // b.shape[2]
        c = row - n * b.shape[2]
        sA = cuda.shared.array(THREADS, dtype)  # (THREADS,) composed decays
        sB = cuda.shared.array(THREADS, dtype)  # (THREADS,) composed offsets
        sA[i], sB[i] = thread_fold(a, a_bstep, a_tstep, cmap, b, reverse, n, c,
                                   tile * TILE + i * PER_THREAD)
        cuda.syncthreads()
        block_scan(sA, sB, i)
        if i == THREADS - 1:
            A_tot[row, tile] = sA[i]
            B_tot[row, tile] = sB[i]

    @cuda.jit
    def tile_carries(A_tot, B_tot, h0, carry):
        """Phase 2, one thread per row: carry[row, k] = h0 pushed through tiles 0 .. k-1."""
        row = cuda.grid(1)
        rows, n_tiles = A_tot.shape
        if row >= rows:
            return
        h_c = h0[row]
        for k in range(n_tiles):
            carry[row, k] = h_c
            h_c = A_tot[row, k] * h_c + B_tot[row, k]

    @cuda.jit
    def tile_scan(a, a_bstep, a_tstep, cmap, b, reverse, n_tiles, carry, h):
        """Phase 3, one block per (row, tile): h_t for every step of the tile."""
        row = cuda.blockIdx.x // n_tiles
        tile = cuda.blockIdx.x - row * n_tiles
        i = cuda.threadIdx.x
        T, C = b.shape[1], b.shape[2]
        n = row // C
        c = row - n * C
        sA = cuda.shared.array(THREADS, dtype)
        sB = cuda.shared.array(THREADS, dtype)
        k0 = tile * TILE + i * PER_THREAD
        sA[i], sB[i] = thread_fold(a, a_bstep, a_tstep, cmap, b, reverse, n, c, k0)
        cuda.syncthreads()
        block_scan(sA, sB, i)
        A_ex, B_ex = ONE, ZERO  # the maps of threads 0 .. i-1 (identity for thread 0)
        if i > 0:
            A_ex, B_ex = sA[i - 1], sB[i - 1]
        h_k = A_ex * carry[row, tile] + B_ex  # the carry enters on the left
        for j in range(PER_THREAD):
            k = k0 + j
            if k < T:
                t = T - 1 - k if reverse else k
                h_k = a[n * a_bstep, t * a_tstep, cmap[c]] * h_k + b[n, t, c]
                h[n, t, c] = h_k

    return tile_totals, tile_carries, tile_scan


def _softmax_kernels(method, dtype, threads, per_thread):
    """The ``softmax_scan`` kernel(s) of ``method`` for ``dtype``, built on first use and cached."""
    key = ("softmax", method, dtype.str, threads, per_thread)
    if key not in _KERNELS:
        _bind_cuda()
        _KERNELS[key] = _build_softmax(method, dtype, threads, per_thread)
    return _KERNELS[key]


def _build_softmax(method, dtype, threads, per_thread):
    """The sequential kernel or the three tiled kernels of ``softmax_scan``.

    Mirrors: :func:`refseq.cuda.scan.mirror.softmax_scan_sequential` and
    :func:`~refseq.cuda.scan.mirror.softmax_scan_blocked`.
    """
    ONE, ZERO, NEG_INF = dtype.type(1), dtype.type(0), dtype.type(-np.inf)
    THREADS, PER_THREAD = threads, per_thread
    TILE = threads * per_thread

    @cuda.jit(device=True)
    def combine(m_A, u_A, w_A, m_B, u_B, w_B):
        """(m_A, u_A, w_A) (+) (m_B, u_B, w_B) for one value channel (refseq.scan.assoc).

        m = max(m_A, m_B); u = u_A e^{m_A - m} + u_B e^{m_B - m}; w likewise. When m = -inf
        (both sides empty) the exponents are taken relative to 0: the result is the identity.
        """
        m = max(m_A, m_B)
        ref = ZERO if m == NEG_INF else m
        alpha = math.exp(m_A - ref)
        beta = math.exp(m_B - ref)
        return m, u_A * alpha + u_B * beta, w_A * alpha + w_B * beta

    @cuda.jit(device=True)
    def leaf(s, v, mask, n, t, hh, d):
        """Token t's leaf (s_t, 1, v_t), or the identity (-inf, 0, 0) where it is masked."""
        if mask[n, t] != 0:
            return s[n, t, hh], ONE, v[n, t, hh, d]
        return NEG_INF, ZERO, ZERO

    @cuda.jit(device=True)
    def output(u, w):
        """o = w / u, and 0 while the prefix is empty (u = 0)."""
        return w / u if u > ZERO else ZERO

    if method == "sequential":

        @cuda.jit
        def sequential(s, v, mask, m0, u0, w0, o, m_out, u_out, w_out):
            """One thread per (n, h, d): fold the triples over time, writing o[n, t, h, d]."""
            row = cuda.grid(1)
            n_batch, T, H, D = v.shape
            if row >= n_batch * H * D:
                return
            nh = row // D
            d = row - nh * D
            n = nh // H
            hh = nh - n * H
            m, u, w = m0[n, hh], u0[n, hh], w0[n, hh, d]
            for t in range(T):
                m_t, u_t, w_t = leaf(s, v, mask, n, t, hh, d)
                m, u, w = combine(m, u, w, m_t, u_t, w_t)  # the prefix on the left
                o[n, t, hh, d] = output(u, w)
            w_out[n, hh, d] = w
            if d == 0:  # every d computed the same m and u
                m_out[n, hh] = m
                u_out[n, hh] = u

        return sequential

    @cuda.jit(device=True)
    def thread_fold(s, v, mask, n, hh, d, k0):
        """Fold the leaves of steps k0 .. k0 + PER_THREAD - 1 from the identity (past T: none)."""
        T = v.shape[1]
        m, u, w = NEG_INF, ZERO, ZERO
        for j in range(PER_THREAD):
            k = k0 + j
            if k < T:
                m_k, u_k, w_k = leaf(s, v, mask, n, k, hh, d)
                m, u, w = combine(m, u, w, m_k, u_k, w_k)
        return m, u, w

    @cuda.jit(device=True)
    def block_scan(sm, su, sw, i):
        """Inclusive Hillis-Steele scan of the triples in shared memory (left operand first)."""
        offset = 1
        while offset < THREADS:
            m_l, u_l, w_l = NEG_INF, ZERO, ZERO
            if i >= offset:
                m_l, u_l, w_l = sm[i - offset], su[i - offset], sw[i - offset]
            cuda.syncthreads()
            if i >= offset:
                sm[i], su[i], sw[i] = combine(m_l, u_l, w_l, sm[i], su[i], sw[i])
            cuda.syncthreads()
            offset *= 2

    @cuda.jit(device=True)
    def row_index(row, H, D):
        """Row ``(n H + h) D + d`` -> ``(n, h, d)``."""
        nh = row // D
        n = nh // H
        return n, nh - n * H, row - nh * D  # (n, h, d)

    @cuda.jit
    def tile_totals(s, v, mask, n_tiles, M_tot, U_tot, W_tot):
        """Phase 1, one block per (row, tile), row = (n, h, d): the tile's total triple."""
        row = cuda.blockIdx.x // n_tiles
        tile = cuda.blockIdx.x - row * n_tiles
        i = cuda.threadIdx.x
        n, hh, d = row_index(row, v.shape[2], v.shape[3])
        sm = cuda.shared.array(THREADS, dtype)  # (THREADS,) running maxima
        su = cuda.shared.array(THREADS, dtype)  # (THREADS,) normalisers
        sw = cuda.shared.array(THREADS, dtype)  # (THREADS,) numerators of channel d
        sm[i], su[i], sw[i] = thread_fold(s, v, mask, n, hh, d, tile * TILE + i * PER_THREAD)
        cuda.syncthreads()
        block_scan(sm, su, sw, i)
        if i == THREADS - 1:
            M_tot[row, tile] = sm[i]
            U_tot[row, tile] = su[i]
            W_tot[row, tile] = sw[i]

    @cuda.jit
    def tile_carries(M_tot, U_tot, W_tot, m0, u0, w0, M_c, U_c, W_c, m_out, u_out, w_out):
        """Phase 2, one thread per row: exclusive carries (state on the left), final state."""
        row = cuda.grid(1)
        rows, n_tiles = M_tot.shape
        if row >= rows:
            return
        n, hh, d = row_index(row, m0.shape[1], w0.shape[2])
        m, u, w = m0[n, hh], u0[n, hh], w0[n, hh, d]
        for k in range(n_tiles):
            M_c[row, k], U_c[row, k], W_c[row, k] = m, u, w
            m, u, w = combine(m, u, w, M_tot[row, k], U_tot[row, k], W_tot[row, k])
        w_out[n, hh, d] = w
        if d == 0:
            m_out[n, hh] = m
            u_out[n, hh] = u

    @cuda.jit
    def tile_scan(s, v, mask, n_tiles, M_c, U_c, W_c, o):
        """Phase 3, one block per (row, tile): o[n, t, h, d] for every step of the tile."""
        row = cuda.blockIdx.x // n_tiles
        tile = cuda.blockIdx.x - row * n_tiles
        i = cuda.threadIdx.x
        T = v.shape[1]
        n, hh, d = row_index(row, v.shape[2], v.shape[3])
        sm = cuda.shared.array(THREADS, dtype)
        su = cuda.shared.array(THREADS, dtype)
        sw = cuda.shared.array(THREADS, dtype)
        k0 = tile * TILE + i * PER_THREAD
        sm[i], su[i], sw[i] = thread_fold(s, v, mask, n, hh, d, k0)
        cuda.syncthreads()
        block_scan(sm, su, sw, i)
        m_ex, u_ex, w_ex = NEG_INF, ZERO, ZERO  # threads 0 .. i-1 (identity for thread 0)
        if i > 0:
            m_ex, u_ex, w_ex = sm[i - 1], su[i - 1], sw[i - 1]
        m, u, w = combine(M_c[row, tile], U_c[row, tile], W_c[row, tile], m_ex, u_ex, w_ex)
        for j in range(PER_THREAD):
            k = k0 + j
            if k < T:
                m_k, u_k, w_k = leaf(s, v, mask, n, k, hh, d)
                m, u, w = combine(m, u, w, m_k, u_k, w_k)
                o[n, k, hh, d] = output(u, w)

    return tile_totals, tile_carries, tile_scan


# ---------------------------------------------------------------------------------------------
# Host wrappers.


def linear_scan(a, b, h0=None, *, reverse=False, check_finite=True, method="auto",
                threads=THREADS, per_thread=PER_THREAD):
    """GPU twin of :func:`refseq.scan.linear_scan`: ``h_t = a_t h_{t-1} + b_t`` along axis 1.

    .. math:: h_t = a_t \\odot h_{t-1} + b_t,\\; h_{-1} = h_0 \\;(\\text{or } 0);\\qquad
              \\text{reverse: } h_t = a_t \\odot h_{t+1} + b_t,\\; h_T = h_0.

    Parameters
    ----------
    a : array broadcastable to ``b`` — decays, cast to ``b``'s dtype; broadcast axes are never
        materialised: the kernel reads ``a`` as (Ba, Ta, Ca) with Ba in {1, B}, Ta in {1, T} and a
        channel map (e.g. Mamba-2's ``a`` (B, T, H, 1, 1) over ``b`` (B, T, H, N, P) is read once
        per head).
    b : (B, T, *S) float32 or float64 — inputs; numba device arrays are accepted for any array.
    h0 : (B, *S), optional — initial state (zeros when omitted).
    reverse : bool — scan from t = T-1 down to 0.
    check_finite : bool — reject NaN/inf inputs with ``ValueError``.
    method : "auto" | "sequential" | "parallel" — the decomposition (module docstring);
        "auto" follows :func:`choose_method` with ``rows = B * prod(S)``.
    threads, per_thread : int — block size (<= 1024) and steps per thread of "parallel"
        (tile = threads * per_thread steps).

    Returns
    -------
    h : (B, T, *S) NumPy array of ``b``'s dtype.

    Raises
    ------
    TypeError, ValueError — from :func:`refseq.scan.check_linear_scan_args`, or a bad
    ``method``/``threads``/``per_thread``; BackendUnavailable — no GPU and no simulator.

    Notes
    -----
    Launch configuration, with ``rows = B * prod(S)`` and ``n_tiles = ceil(T / tile)``:
    sequential — ``ceil(rows / 128)`` blocks of ``min(128, rows)`` threads, thread = (n, c);
    parallel — phases 1 and 3 run ``rows * n_tiles`` blocks of ``threads`` threads (block id =
    row * n_tiles + tile) with two shared arrays of ``threads`` values (the composed decays
    ``A`` and offsets ``B``); phase 2 runs one thread per row like sequential. NumPy mirrors:
    :func:`refseq.cuda.scan.mirror.linear_scan_sequential`,
    :func:`~refseq.cuda.scan.mirror.linear_scan_blocked`.
    """
    a, b, h0 = check_linear_scan_args(_host(a), _host(b), _host(h0), check_finite)
    B, T = b.shape[:2]
    S = b.shape[2:]
    C = int(np.prod(S, dtype=np.int64))
    rows = B * C
    method = _resolve_method(method, T, rows, threads, per_thread)
    if T == 0 or rows == 0:
        return np.empty(b.shape, b.dtype)
    cu = _bind_cuda()

    # a as (Ba, Ta, Ca) plus the map from b's channels to a's: broadcasting without copies.
    a_nd = a.reshape((1,) * (b.ndim - a.ndim) + a.shape)  # (Ba, Ta, *Sa)
    Ba, Ta, Sa = a_nd.shape[0], a_nd.shape[1], a_nd.shape[2:]
    Ca = int(np.prod(Sa, dtype=np.int64))
    a3 = np.ascontiguousarray(a_nd).reshape(Ba, Ta, Ca)
    cmap = np.ascontiguousarray(np.broadcast_to(np.arange(Ca).reshape(Sa), S).reshape(C))
    a_bstep, a_tstep = int(Ba > 1), int(Ta > 1)
    b3 = np.ascontiguousarray(b).reshape(B, T, C)
    h0_2 = np.zeros((B, C), b.dtype) if h0 is None else np.ascontiguousarray(h0).reshape(B, C)

    d_a, d_cmap, d_b = cu.to_device(a3), cu.to_device(cmap), cu.to_device(b3)
    d_h = launch_linear_scan(d_a, a_bstep, a_tstep, d_cmap, d_b, cu.to_device(h0_2),
                             bool(reverse), method, threads, per_thread)
    return d_h.copy_to_host().reshape(b.shape)



def launch_linear_scan(d_a, a_bstep, a_tstep, d_cmap, d_b, d_h0, reverse, method,
                       threads=THREADS, per_thread=PER_THREAD):
    """Launch the linear-scan kernels on device arrays; returns the device array ``h``.

    ``d_a`` (Ba, Ta, Ca), ``d_cmap`` (C,) int, ``d_b`` (B, T, C), ``d_h0`` (B, C), all on the
    device; ``a_bstep``/``a_tstep`` are 1 where ``a`` varies along B/T and 0 where it is
    broadcast. No validation and no transfers: :func:`linear_scan` does both and calls this;
    ``refseq bench`` calls it directly to time the kernels alone.
    """
    cu = _bind_cuda()
    B, T, C = d_b.shape
    rows = B * C
    dtype = np.dtype(d_b.dtype)
    d_h = cu.device_array((B, T, C), dtype)
    block = min(ROW_THREADS, rows)
    if method == "sequential":
        kernel = _linear_kernels("sequential", dtype, threads, per_thread)
        kernel[_grid(rows, block), block](d_a, a_bstep, a_tstep, d_cmap, d_b, d_h0,
                                          bool(reverse), d_h)
    else:
        tile_totals, tile_carries, tile_scan = _linear_kernels("parallel", dtype, threads,
                                                               per_thread)
        n_tiles = -(-T // (threads * per_thread))
        d_A_tot = cu.device_array((rows, n_tiles), dtype)
        d_B_tot = cu.device_array((rows, n_tiles), dtype)
        d_carry = cu.device_array((rows, n_tiles), dtype)
        args = (d_a, a_bstep, a_tstep, d_cmap, d_b, bool(reverse), n_tiles)
        tile_totals[rows * n_tiles, threads](*args, d_A_tot, d_B_tot)
        tile_carries[_grid(rows, block), block](d_A_tot, d_B_tot, d_h0.reshape(rows), d_carry)
        tile_scan[rows * n_tiles, threads](*args, d_carry, d_h)
    return d_h

def softmax_scan(s, v, mask=None, state=None, *, check_finite=True, method="auto",
                 threads=THREADS, per_thread=PER_THREAD):
    """GPU twin of :func:`refseq.scan.softmax_scan`: prefix softmax attention of one query.

    The inclusive SOFTMAX_TRIPLE scan over leaves ``(s_t, 1, v_t)`` (masked tokens: the identity
    ``(-inf, 0, 0)``), combined on the left with ``state`` (Aaren, arXiv 2405.13956 Sec. 3.2;
    spec aaren.md "Stable form"):

    .. math:: m_t = \\max(m_{t-1}, s_t),\\; u_t = u_{t-1} e^{m_{t-1}-m_t} + e^{s_t-m_t},\\;
              w_t = w_{t-1} e^{m_{t-1}-m_t} + v_t e^{s_t-m_t},\\; o_t = w_t / u_t

    with ``o_t = 0`` while ``u_t = 0`` (fully masked prefix, no carried mass); two empty operands
    combine to the identity, never NaN.

    Parameters
    ----------
    s : (B, T, H) scores; v : (B, T, H, D) values (float32 or float64, ``v``'s dtype wins).
    mask : (B, T) bool, optional — False marks padding.
    state : ``SoftmaxState`` (m (B, H), u (B, H), w (B, H, D)), optional — carried state.
    check_finite : bool — reject NaN/inf inputs with ``ValueError``.
    method : "auto" | "sequential" | "parallel"; "auto" follows :func:`choose_method` with
        ``rows = B * H * D``.
    threads, per_thread : int — block size (<= 1024) and steps per thread of "parallel".

    Returns
    -------
    o : (B, T, H, D); state : the final ``SoftmaxState`` (the input state, or the identity, when
    T = 0), NumPy arrays of ``v``'s dtype.

    Notes
    -----
    Launch configuration, one row per (n, h, d), ``rows = B * H * D``: sequential —
    ``ceil(rows / 128)`` blocks of ``min(128, rows)`` threads; parallel — phases 1 and 3 run
    ``rows * n_tiles`` blocks of ``threads`` threads with three shared arrays (m, u, w) of
    ``threads`` values; phase 2 runs one thread per row and also writes the final state. NumPy
    mirrors: :func:`refseq.cuda.scan.mirror.softmax_scan_sequential`,
    :func:`~refseq.cuda.scan.mirror.softmax_scan_blocked`.
    """
    if state is not None:
        state = tuple(_host(x) for x in state) if isinstance(state, tuple) else state
    s, v, mask, state = check_softmax_scan_args(_host(s), _host(v), _host(mask), state,
                                                check_finite)
    B, T, H, D = v.shape
    initial = state if state is not None else softmax_identity((B, H), D, v.dtype)
    method = _resolve_method(method, T, B * H * max(D, 1), threads, per_thread)
    if T == 0 or B * H == 0:
        return np.zeros(v.shape, v.dtype), initial
    if D == 0:  # no value channel carries m and u: run one zero channel and drop it
        o, (m, u, _) = softmax_scan(s, np.zeros((B, T, H, 1), v.dtype), mask,
                                    (initial.m, initial.u, np.zeros((B, H, 1), v.dtype)),
                                    check_finite=False, method=method, threads=threads,
                                    per_thread=per_thread)
        return o[..., :0], SoftmaxState(m, u, np.zeros((B, H, 0), v.dtype))
    cu = _bind_cuda()
    rows = B * H * D
    dtype = v.dtype
    mask_u8 = np.ones((B, T), np.uint8) if mask is None else mask.astype(np.uint8)
    d_s, d_v = cu.to_device(np.ascontiguousarray(s)), cu.to_device(np.ascontiguousarray(v))
    d_mask = cu.to_device(mask_u8)
    d_m0, d_u0, d_w0 = (cu.to_device(np.ascontiguousarray(x)) for x in initial)
    d_o = cu.device_array((B, T, H, D), dtype)
    d_m, d_u, d_w = (cu.device_array(x.shape, dtype) for x in initial)
    block = min(ROW_THREADS, rows)
    if method == "sequential":
        kernel = _softmax_kernels("sequential", dtype, threads, per_thread)
        kernel[_grid(rows, block), block](d_s, d_v, d_mask, d_m0, d_u0, d_w0,
                                          d_o, d_m, d_u, d_w)
    else:
        tile_totals, tile_carries, tile_scan = _softmax_kernels("parallel", dtype, threads,
                                                                per_thread)
        n_tiles = -(-T // (threads * per_thread))
        tot = tuple(cu.device_array((rows, n_tiles), dtype) for _ in range(3))  # M, U, W
        car = tuple(cu.device_array((rows, n_tiles), dtype) for _ in range(3))
        tile_totals[rows * n_tiles, threads](d_s, d_v, d_mask, n_tiles, *tot)
        tile_carries[_grid(rows, block), block](*tot, d_m0, d_u0, d_w0, *car, d_m, d_u, d_w)
        tile_scan[rows * n_tiles, threads](d_s, d_v, d_mask, n_tiles, *car, d_o)
    final = SoftmaxState(d_m.copy_to_host(), d_u.copy_to_host(), d_w.copy_to_host())
    return d_o.copy_to_host(), final
