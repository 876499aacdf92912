"""One kernel builder for every scan operator: the GPU twin of :mod:`refseq.cuda.scan.mirror`.

:func:`scan_kernels` takes a :class:`refseq.cuda.scan.ops.DeviceOp` (an operator's device
functions: identity, combine, locate, initial, leaf, store, store_final) and builds the two
decompositions of docs/hot-paths/scan-cuda.md for it, as :func:`~refseq.cuda.scan.mirror.scan_rows`
and :func:`~refseq.cuda.scan.mirror.scan_tiles` do in NumPy for any ``AssociativeOp``:

* ``"sequential"`` — one kernel, one thread per row: ``acc = initial``, then for k = 0 .. T-1
  ``acc = acc (+) leaf_k`` and store ``acc``; finally store the final state.
* ``"parallel"`` — three kernels over tiles of ``TILE = threads * per_thread`` steps:
  (1) ``tile_totals``, one block per (row, tile): thread ``i`` folds its ``per_thread``
  consecutive steps from the identity, a Hillis-Steele scan in shared memory composes the thread
  totals, the last thread writes the tile total; (2) ``tile_carries``, one thread per row: a left
  fold over the tile totals from the initial state gives each tile's exclusive carry and the
  final state; (3) ``tile_scan``, one block per (row, tile): the same folds and block scan, then
  ``carry (+) exclusive prefix of thread i`` and a refold that stores every output.

Steps past T in the last tile are skipped (``k < T``), which is the same as identity padding at
the end. The accumulated prefix is always the left operand; no atomics, one fixed order of
combines per output, so results are bitwise identical run to run.

Elements travel as tuples of ``width`` scalars; in memory (shared arrays, tile totals and
carries) an element is a column of a ``(width, n)`` array, read and written by :func:`_columns`.
Kernel arguments: ``ins`` and ``outs`` are the operator's tuples of arrays and scalars; ``rows``
and ``T`` are the number of rows and the scan length. Builder constants (``THREADS``,
``PER_THREAD``, ``WIDTH``, the dtype) are compile-time constants: static shared-array sizes.

``numba.cuda`` is bound to this module's global ``cuda`` on first use (:func:`bind_cuda`): the
simulator swaps the global for its per-thread fake module while a kernel runs.
"""

from __future__ import annotations

from refseq.cuda import require_numba_cuda

cuda = None  # numba.cuda, bound by bind_cuda() on first use

ROW_THREADS = 128  #: block size of the one-thread-per-row kernels (sequential, tile_carries)

_KERNELS: dict = {}  # (operator, dtype, method, (threads, per_thread) or None) -> kernel(s)


def bind_cuda():
    """Bind ``numba.cuda`` to this module's global ``cuda`` on first use and return it (see
    :func:`refseq.cuda.require_numba_cuda`)."""
    global cuda
    if cuda is None:
        cuda = require_numba_cuda("refseq.cuda.scan")
    return cuda


def grid(n, block):
    """Blocks of ``block`` threads needed to cover ``n`` threads (at least one)."""
    return max(1, -(-n // block))


def scan_kernels(op, method, threads, per_thread):
    """The kernel(s) of ``method`` for the operator ``op``, built on first use and cached.

    Returns the ``sequential`` kernel for ``"sequential"`` (the tile is unused), else (for
    ``"parallel"``) the triple ``(tile_totals, tile_carries, tile_scan)``.
    """
    tile = None if method == "sequential" else (threads, per_thread)
    key = (op.name, op.dtype.str, method, tile)
    if key not in _KERNELS:
        bind_cuda()
        _KERNELS[key] = (_build_sequential(op) if tile is None
                         else _build_tiled(op, threads, per_thread))
    return _KERNELS[key]


def _columns(width):
    """Device functions ``get(x, j)``, the element in column ``j`` of a ``(width, n)`` array
    ``x`` (a tuple built up one component at a time), and ``put(x, j, e)``, which stores it."""
    WIDTH, LAST = width, width - 1

    @cuda.jit(device=True)
    def put(x, j, e):
        for q in range(WIDTH):
            x[q, j] = e[q]

    if width == 1:

        @cuda.jit(device=True)
        def get(x, j):
            return (x[0, j],)

        return get, put
    get_head = _columns(width - 1)[0]

    @cuda.jit(device=True)
    def get(x, j):
        return get_head(x, j) + (x[LAST, j],)

    return get, put


def _build_sequential(op):
    """One thread per row, a left fold over time (mirror: ``scan_rows``)."""
    combine, locate, initial, leaf = op.combine, op.locate, op.initial, op.leaf
    store, store_final = op.store, op.store_final

    @cuda.jit
    def sequential(ins, outs, rows, T):
        """Thread ``row``: acc = initial (+) leaf_0 (+) ... (+) leaf_k, stored for every k."""
        row = cuda.grid(1)
        if row >= rows:
            return
        pos = locate(ins, row)
        acc = initial(ins, pos)
        for k in range(T):
            acc = combine(acc, leaf(ins, pos, k))  # the prefix on the left
            store(ins, outs, pos, k, acc)
        store_final(outs, pos, acc)

    return sequential


def _build_tiled(op, threads, per_thread):
    """The three reduce-then-scan kernels (mirror: ``scan_tiles``)."""
    identity, combine, locate, initial, leaf = (op.identity, op.combine, op.locate, op.initial,
                                                op.leaf)
    store, store_final = op.store, op.store_final
    get, put = _columns(op.width)
    DTYPE, WIDTH, THREADS, PER_THREAD = op.dtype, op.width, threads, per_thread
    TILE = threads * per_thread

    @cuda.jit(device=True)
    def scan_tile(ins, pos, k0, T, sh, i):
        """Phases 1 and 3 up to the carry: thread i's inclusive value over threads 0 .. i.

        Thread i folds the leaves of steps k0 .. k0 + PER_THREAD - 1 from the identity (steps
        past T: none) into column i of ``sh``; then an inclusive Hillis-Steele scan over the
        columns: in round ``offset`` = 1, 2, 4, ... thread i >= offset reads column i - offset,
        barrier, combines it on the left of its own value and stores that, barrier.
        """
        ident = identity()
        acc = ident
        for j in range(PER_THREAD):
            k = k0 + j
            if k < T:
                acc = combine(acc, leaf(ins, pos, k))
        put(sh, i, acc)
        cuda.syncthreads()
        offset = 1
        while offset < THREADS:
            left = ident
            if i >= offset:
                left = get(sh, i - offset)
            cuda.syncthreads()
            if i >= offset:
                acc = combine(left, acc)
                put(sh, i, acc)
            cuda.syncthreads()
            offset *= 2
        return acc

    @cuda.jit
    def tile_totals(ins, n_tiles, T, totals):
        """Phase 1, block ``row * n_tiles + tile``: the tile's total -> column of ``totals``."""
        blk = cuda.blockIdx.x
        row = blk // n_tiles
        i = cuda.threadIdx.x
        sh = cuda.shared.array((WIDTH, THREADS), DTYPE)  # one element per thread
        k0 = (blk - row * n_tiles) * TILE + i * PER_THREAD
        total = scan_tile(ins, locate(ins, row), k0, T, sh, i)
        if i == THREADS - 1:
            put(totals, blk, total)

    @cuda.jit
    def tile_carries(ins, outs, totals, carries, rows, n_tiles):
        """Phase 2, one thread per row: exclusive carries (state on the left), final state."""
        row = cuda.grid(1)
        if row >= rows:
            return
        pos = locate(ins, row)
        acc = initial(ins, pos)
        for k in range(n_tiles):
            put(carries, row * n_tiles + k, acc)
            acc = combine(acc, get(totals, row * n_tiles + k))
        store_final(outs, pos, acc)

    @cuda.jit
    def tile_scan(ins, outs, carries, n_tiles, T):
        """Phase 3, block ``row * n_tiles + tile``: the output of every step of the tile."""
        blk = cuda.blockIdx.x
        row = blk // n_tiles
        i = cuda.threadIdx.x
        pos = locate(ins, row)
        k0 = (blk - row * n_tiles) * TILE + i * PER_THREAD
        sh = cuda.shared.array((WIDTH, THREADS), DTYPE)
        scan_tile(ins, pos, k0, T, sh, i)  # every column is final after its last barrier
        exclusive = identity()  # threads 0 .. i-1 (identity for thread 0)
        if i > 0:
            exclusive = get(sh, i - 1)
        acc = combine(get(carries, blk), exclusive)  # the carry enters on the left
        for j in range(PER_THREAD):
            k = k0 + j
            if k < T:
                acc = combine(acc, leaf(ins, pos, k))
                store(ins, outs, pos, k, acc)

    return tile_totals, tile_carries, tile_scan


def launch(op, ins, outs, rows, T, method, threads, per_thread):
    """Run ``method``'s kernels for ``op`` on device arguments; outputs land in ``outs``.

    ``rows >= 1`` and ``T >= 1``. Sequential and ``tile_carries``: ``grid(rows, b)`` blocks of
    ``b = min(ROW_THREADS, rows)`` threads. ``tile_totals`` and ``tile_scan``: ``rows * n_tiles``
    blocks of ``threads`` threads, with the tile totals and carries in two device arrays of
    ``(width, rows * n_tiles)`` (column = block id).
    """
    cu = bind_cuda()
    block = min(ROW_THREADS, rows)
    if method == "sequential":
        scan_kernels(op, method, threads, per_thread)[grid(rows, block), block](ins, outs, rows, T)
        return
    tile_totals, tile_carries, tile_scan = scan_kernels(op, method, threads, per_thread)
    n_tiles = -(-T // (threads * per_thread))
    totals = cu.device_array((op.width, rows * n_tiles), op.dtype)
    carries = cu.device_array((op.width, rows * n_tiles), op.dtype)
    tile_totals[rows * n_tiles, threads](ins, n_tiles, T, totals)
    tile_carries[grid(rows, block), block](ins, outs, totals, carries, rows, n_tiles)
    tile_scan[rows * n_tiles, threads](ins, outs, carries, n_tiles, T)
