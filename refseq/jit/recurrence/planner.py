"""Which jit plan runs a call, and the operands it needs packed.

:func:`plan` chooses among ``"units"``, ``"heads"`` and ``"gemm"`` (the kernels are in
:mod:`refseq.jit.recurrence.forward` and :mod:`refseq.jit.recurrence.backward`; the
decomposition and its measurements are in docs/hot-paths/recurrence-kernels.md).
:func:`_pack_units` lays out ``R^T`` for the ``"units"`` plan's register tile,
:func:`_head_major` lays out ``R`` for the per-head GEMMs of the other two. The size thresholds
``UNITS_MIN_MACS`` and ``BLAS_THREADED_MACS`` are attributes of the package
:mod:`refseq.jit.recurrence`, read at each call (setting them there changes the choice).
"""

from __future__ import annotations

import numba
import numpy as np

from refseq._checks import check_choice, check_flag, check_number
from refseq.jit import blas_threads
from refseq.jit.tile import TILE_VECTORS, lanes

MODES = ("units", "heads", "gemm")  #: the plans, in the default order of preference


def plan(B, N, D, G_r, threads=None, modes=MODES, pinnable=None):
    """``(mode, tiles)``: the first of ``modes`` that applies, and its job table.

    ``pinnable`` (default :func:`refseq.jit.blas_threads.available`) says whether BLAS can be
    set to one thread while a kernel runs; the ``"heads"`` kernels run under
    :func:`~refseq.jit.blas_threads.single_threaded_blas` then, so only Numba's pool works.

    * ``"units"`` (forward only): a ``prange`` per step over (head, chunk of hidden units) jobs,
      each doing its columns of the step's product with the register tile of
      :mod:`refseq.jit.tile` (no BLAS, so pinning does not matter) and its units' pointwise
      update; ``tiles`` are (d0, d1) unit ranges. For fewer heads than threads and steps of at
      least ``UNITS_MIN_MACS`` multiply-adds (one parallel region per step).
    * ``"heads"``: ``prange`` over (head, batch tile) jobs that each run the whole time loop;
      needs at least two jobs, and per-step GEMMs that BLAS runs single-threaded: at most
      ``BLAS_THREADED_MACS`` multiply-adds per tile, or any size with a pinnable BLAS. The
      batch is cut into just enough tiles to give every thread a job; ``tiles`` are (b0, b1).
    * ``"gemm"``: jobs one after the other, the whole batch in one tile, BLAS parallel inside
      each step's GEMM; always applies.
    """
    from refseq.jit import recurrence as package  # the thresholds, as set now

    B, N, D, G_r = (check_number(v, name, integer=True, low=0)
                    for v, name in ((B, "B"), (N, "N"), (D, "D"), (G_r, "G_r")))
    if not isinstance(modes, (tuple, list)):
        raise TypeError(f"modes must be a tuple of plan names from {MODES}, got {modes!r}")
    for mode in modes:
        check_choice(mode, "modes", MODES)
    threads = check_number(threads, "threads", integer=True, low=1, allow_none=True)
    threads = numba.get_num_threads() if threads is None else threads
    pinnable = blas_threads.available() if pinnable is None else check_flag(pinnable, "pinnable")
    if threads > 1 and "units" in modes and N < threads:
        if G_r * D * D * N * B >= package.UNITS_MIN_MACS:
            n_chunks = min(D, -(-threads // N))
            edges = [D * k // n_chunks for k in range(n_chunks + 1)]
            return "units", np.array(list(zip(edges[:-1], edges[1:])), np.int64).reshape(-1, 2)
    if threads > 1 and "heads" in modes:
        n_tiles = max(1, min(B, -(-threads // max(N, 1))))
        rows = -(-B // n_tiles) if B else 0
        single = pinnable or G_r * D * D * max(rows, 1) <= package.BLAS_THREADED_MACS
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


