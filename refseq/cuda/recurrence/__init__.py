"""numba.cuda kernels for the RNN-recurrence hot path (contracts: :mod:`refseq.recurrence.engine`).

``flashrnn_forward`` / ``flashrnn_backward`` mirror the reference functions of
:mod:`refseq.recurrence.engine` (FlashRNN, arXiv 2412.07752; the contract is
docs/hot-paths/recurrence.md), without ``backend``: the reference's own checks, the same shapes,
dtypes, errors and cache dict ``{"states": (S, B, T+1, N, D), "gates": (T, B, G_t, N, D)}``;
NumPy arrays (or numba device arrays) in, NumPy arrays out. All cells of
:data:`refseq.recurrence.CELLS`.

Modules (the decomposition: docs/hot-paths/recurrence-kernels.md, "cuda decomposition"):

* :mod:`~refseq.cuda.recurrence.forward` — the forward kernel: one block per (head, tile of
  ``batch_tile`` rows); a thread owns cells (row, d) and forms all gate pre-activations of its
  cell, two barriers per step. ``R[:, n]`` sits in shared memory when it fits in
  :data:`SHARED_BYTES` next to the work tile (:func:`r_fits_shared`), in global memory
  otherwise. Heads never communicate: no grid-wide synchronisation.
* :mod:`~refseq.cuda.recurrence.backward` — the same blocks in reverse time (pointwise backward,
  then ``δh^{rec} = R^T δg~`` per cell with cut and clip), and a reduction kernel with one
  thread per entry of ``dR`` and ``db`` summing over (t, b) in a fixed order. No atomics:
  bitwise-identical results run to run.
* :mod:`~refseq.cuda.recurrence.scalar` — the device activations that the shared cell math
  (:mod:`refseq.jit.recurrence.cells`, written once for both compiled tiers, with its
  :data:`CELL_IDS`) is built over: ``math.exp``/``math.tanh`` of the device libm, no
  ``fastmath``.
* :mod:`~refseq.cuda.recurrence.mirror` — the same decomposition in NumPy.
* this module — validation, launch configuration, transfers.

Every size works: threads stride over the cells of their tile, the last batch tile may be
partial, and any D, N, B, T (including T = 0) is accepted. The kernel modules (and with them
Numba and the shared cell math) are imported, and ``numba.cuda`` bound to their module global
``cuda`` (from :mod:`refseq.cuda._device`, the one import point), on first use; this module and
the mirror import neither.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_flag, check_number
from refseq.cuda import require_numba_cuda, to_host
from refseq.cuda.recurrence.mirror import BATCH_TILE, _tiles
from refseq.cuda.recurrence.projection import (  # the twins of refseq.recurrence.projection
    project_inputs as project_inputs,
)
from refseq.cuda.recurrence.projection import (
    project_inputs_backward as project_inputs_backward,
)
from refseq.recurrence.checks import (
    check_backward_args,
    check_clipval,
    check_numpy_only,
    check_recurrence_args,
)

THREADS = 128  #: threads per block
SHARED_BYTES = 48 * 1024  #: static shared-memory budget per block (R goes global beyond it)

_KERNELS: dict = {}
_CELL_NAMES = ("CELL_IDS", "ELMAN", "ELMAN_RELU", "LSTM", "GRU", "SLSTM")

_host = to_host


def __getattr__(name):
    """The shared cell ids (:mod:`refseq.jit.recurrence.cells`), imported on first access."""
    if name in _CELL_NAMES:
        from refseq.jit.recurrence import cells

        return getattr(cells, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def r_fits_shared(G_r, D, batch_tile, itemsize, budget=SHARED_BYTES):
    """Whether ``R[:, n]`` fits in shared memory next to the (batch tile, D) work tile.

    ``G_r``, ``D`` >= 0 and ``batch_tile`` >= 1 are integers; ``itemsize`` is 4 (float32) or 8
    (float64); ``budget`` is the shared-memory budget in bytes (an integer >= 0).
    """
    G_r = check_number(G_r, "G_r", integer=True, low=0)
    D = check_number(D, "D", integer=True, low=0)
    batch_tile = check_number(batch_tile, "batch_tile", integer=True, low=1)
    itemsize = check_number(itemsize, "itemsize", integer=True)
    if itemsize not in (4, 8):
        raise ValueError(f"itemsize must be 4 (float32) or 8 (float64) bytes, got {itemsize}")
    budget = check_number(budget, "budget", integer=True, low=0)
    work = batch_tile * max(G_r, 1) * D  # backward: δg~ of the recurrent gates (>= forward's h)
    return (G_r * D * D + work) * itemsize <= budget


def _cell_id(name):
    """The kernels' id of cell ``name`` (the table shared with the jit tier)."""
    from refseq.jit.recurrence.cells import CELL_IDS

    return CELL_IDS[name]


def _kernels(dtype):
    """``(forward, backward, reduce)`` for ``dtype``, built on first use."""
    dtype = np.dtype(dtype)
    if dtype.str not in _KERNELS:
        from refseq.cuda.recurrence import backward, forward

        _KERNELS[dtype.str] = (forward.build(dtype), *backward.build(dtype))
    return _KERNELS[dtype.str]


def _check_launch(threads, batch_tile):
    _tiles(1, batch_tile)  # validates batch_tile
    check_number(threads, "threads", integer=True, low=1, high=1024)  # at most a CUDA block


def flashrnn_forward(Wx, R, b, states0=None, *, cell="lstm", forward_clipval=None,
                     return_cache=False, check_finite=True, clamp_gates_le_one=False,
                     accumulate_dtype=None, emulate_bfloat16=False,
                     threads=THREADS, batch_tile=BATCH_TILE, r_in_shared=None):
    """CUDA twin of :func:`refseq.recurrence.engine.flashrnn_forward` (same arguments, shapes,
    dtypes, errors and cache dict; ``accumulate_dtype`` and ``emulate_bfloat16`` are numpy-only:
    setting them is a ``ValueError``). ``threads``, ``batch_tile`` set the launch;
    ``r_in_shared`` forces (True/False) where ``R`` lives, default: shared memory when it fits."""
    return_cache = check_flag(return_cache, "return_cache")
    check_finite = check_flag(check_finite, "check_finite")
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    emulate_bfloat16 = check_flag(emulate_bfloat16, "emulate_bfloat16")
    check_numpy_only("cuda", accumulate_dtype=accumulate_dtype, emulate_bfloat16=emulate_bfloat16)
    r_in_shared = None if r_in_shared is None else check_flag(r_in_shared, "r_in_shared")
    Wx, R, b, states0 = (_host(x) for x in (Wx, R, b, states0))
    spec, Wx, R, b, s0 = check_recurrence_args(Wx, R, b, states0, cell=cell,
                                               check_finite=check_finite)
    clip = check_clipval(forward_clipval, "forward_clipval")
    if clamp_gates_le_one and spec.name != "slstm":
        raise ValueError(f"clamp_gates_le_one applies to the sLSTM only, not {spec.name!r}")
    _check_launch(threads, batch_tile)
    B, T, _, N, D = Wx.shape
    dt = Wx.dtype
    st = np.empty((spec.num_states, B, T + 1, N, D), dt)
    st[:, :, 0] = s0
    gates = np.empty((T, B, spec.num_gates_t, N, D), dt)
    if T > 0 and B * N * D > 0:
        cu = require_numba_cuda(__name__)
        forward, _, _ = _kernels(dt)
        G_r = spec.num_gates_r
        r_sh = r_fits_shared(G_r, D, batch_tile, dt.itemsize) if r_in_shared is None \
            else bool(r_in_shared)
        shared = (batch_tile * D + (G_r * D * D if r_sh else 0)) * dt.itemsize
        d_st, d_gates = cu.to_device(st), cu.to_device(gates)
        grid = (N, -(-B // batch_tile))
        forward[grid, threads, 0, shared](
            _cell_id(spec.name), cu.to_device(np.ascontiguousarray(Wx)),
            cu.to_device(np.ascontiguousarray(R)), cu.to_device(np.ascontiguousarray(b)),
            d_st, d_gates, bool(return_cache), dt.type(clip or 0), clip is not None,
            bool(clamp_gates_le_one), batch_tile, r_sh)
        st = d_st.copy_to_host()
        if return_cache:
            gates = d_gates.copy_to_host()
    states_all, last = st[:, :, 1:].copy(), st[:, :, T].copy()
    if return_cache:
        return states_all, last, {"states": st, "gates": gates}
    return states_all, last


def flashrnn_backward(d_states_all, d_last_states, R, b, cache, *, cell="lstm",
                      gradient_recurrent_cut=False, gradient_recurrent_clipval=None,
                      clamp_gates_le_one=False, accumulate_dtype=None, exact_stabiliser=False,
                      check_finite=True, threads=THREADS, batch_tile=BATCH_TILE,
                      r_in_shared=None):
    """CUDA twin of :func:`refseq.recurrence.engine.flashrnn_backward`:
    ``(d_states0, dWx, dR, db)``, deterministic (fixed-order reductions, no atomics);
    ``accumulate_dtype`` and ``exact_stabiliser`` are numpy-only (``ValueError``)."""
    gradient_recurrent_cut = check_flag(gradient_recurrent_cut, "gradient_recurrent_cut")
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    exact_stabiliser = check_flag(exact_stabiliser, "exact_stabiliser")
    check_finite = check_flag(check_finite, "check_finite")
    check_numpy_only("cuda", accumulate_dtype=accumulate_dtype, exact_stabiliser=exact_stabiliser)
    r_in_shared = None if r_in_shared is None else check_flag(r_in_shared, "r_in_shared")
    if isinstance(cache, dict):
        cache = {k: _host(v) for k, v in cache.items()}
    d_states_all, d_last_states, R, b = (_host(x) for x in (d_states_all, d_last_states, R, b))
    spec, d_all, d_last, R, b, st, gates = check_backward_args(
        d_states_all, d_last_states, R, b, cache, cell=cell, check_finite=check_finite)
    clip = check_clipval(gradient_recurrent_clipval, "gradient_recurrent_clipval")
    if clamp_gates_le_one and spec.name != "slstm":
        raise ValueError(f"clamp_gates_le_one applies to the sLSTM only, not {spec.name!r}")
    _check_launch(threads, batch_tile)
    S, B, T, N, D = d_all.shape
    dt = st.dtype
    G_r, G_t, G_w = spec.num_gates_r, spec.num_gates_t, spec.num_gates_w
    ds = np.ascontiguousarray(d_last, dt).copy()
    dR = np.zeros(R.shape, dt)
    db = np.zeros(b.shape, dt)
    dg_all = np.zeros((B, T, G_t, N, D), dt)
    if T > 0 and B * N * D > 0:
        cu = require_numba_cuda(__name__)
        _, backward, reduce = _kernels(dt)
        r_sh = r_fits_shared(G_r, D, batch_tile, dt.itemsize) if r_in_shared is None \
            else bool(r_in_shared)
        shared = (batch_tile * G_r * D + (G_r * D * D if r_sh else 0)) * dt.itemsize
        d_R, d_st = cu.to_device(np.ascontiguousarray(R)), cu.to_device(np.ascontiguousarray(st))
        d_ds, d_dg = cu.to_device(ds), cu.to_device(dg_all)
        grid = (N, -(-B // batch_tile))
        backward[grid, threads, 0, shared](
            _cell_id(spec.name), cu.to_device(np.ascontiguousarray(d_all)), d_R, d_st,
            cu.to_device(np.ascontiguousarray(gates)), d_ds, d_dg, bool(gradient_recurrent_cut),
            dt.type(clip if clip is not None else 0), clip is not None, bool(clamp_gates_le_one),
            batch_tile, r_sh)
        d_dR, d_db = cu.to_device(dR), cu.to_device(db)
        total = G_r * N * D * D + G_t * N * D
        reduce[-(-total // threads), threads](d_dg, d_st, d_dR, d_db)
        ds, dg_all = d_ds.copy_to_host(), d_dg.copy_to_host()
        dR, db = d_dR.copy_to_host(), d_db.copy_to_host()
    dWx = np.ascontiguousarray(dg_all[:, :, G_t - G_w:])
    return ds, dWx, dR, db
