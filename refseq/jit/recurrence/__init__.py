"""Numba CPU kernels for the RNN-recurrence hot path (contracts: :mod:`refseq.recurrence.engine`).

``flashrnn_forward`` mirrors :func:`refseq.recurrence.engine.flashrnn_forward` and
``flashrnn_backward`` mirrors :func:`refseq.recurrence.engine.flashrnn_backward` (FlashRNN, arXiv
2412.07752; the contract is docs/hot-paths/recurrence.md), without the ``backend`` keyword.
Both validate with the reference's own checks (``check_recurrence_args`` /
``check_backward_args``), accept and return the reference's cache dict
``{"states": (S, B, T+1, N, D), "gates": (T, B, G_t, N, D)}``, and support every cell of
:data:`refseq.recurrence.CELLS` (elman, elman_relu, lstm, gru, slstm), block-diagonal ``R``,
carried state, ``forward_clipval``, ``gradient_recurrent_cut`` / ``gradient_recurrent_clipval``
and the sLSTM's ``clamp_gates_le_one``.

Modules (the decomposition and its measurements: docs/hot-paths/recurrence-kernels.md):

* :mod:`~refseq.jit.recurrence.scalar` — the jit activations ``exp``, ``tanh``, ``sigmoid``
  (float32 through a branch-free float64 Cephes ``exp``, rounded once);
* :mod:`~refseq.jit.recurrence.cells` — each cell's pointwise forward and backward per hidden
  unit, written once for this tier and the cuda tier (:func:`~refseq.jit.recurrence.cells.build`
  over a tier's activations), and the cell ids :data:`CELL_IDS`;
* :mod:`~refseq.jit.recurrence.forward` — the forward kernels of the three plans;
* :mod:`~refseq.jit.recurrence.backward` — the backward kernels (reverse time, per-job ``dR``);
* :mod:`~refseq.jit.recurrence.planner` — :func:`plan` and the packing of ``R``;
* :mod:`~refseq.jit.recurrence.projection` — :func:`project_inputs` and its gradients;
* :mod:`~refseq.jit.recurrence.finite` — the parallel all-finite test of ``check_finite``;
* this module — the host wrappers.

A *job* is one head ``n`` and one tile of batch rows; jobs never communicate, and each runs the
whole time loop. Inside a job the state is kept transposed, ``h^T`` (D, bt), so the recurrent
product of a step is one BLAS GEMM on contiguous 2-D blocks,
``Ry^T (G_r D, bt) = R_n (G_r D, D) @ h^T (D, bt)`` (``np.dot`` inside ``@njit`` calls BLAS),
followed by the cell's pointwise update row by row. Three plans (:func:`plan`):

* ``"units"`` (forward only) — fewer heads than threads and big steps: a ``prange`` per step
  over chunks of hidden units; each job does its columns of ``h_{t-1} R^T`` with its own
  register-tile product (:mod:`refseq.jit.tile`, no BLAS) and its units' pointwise update;
* ``"heads"`` — ``prange`` over the (head, batch tile) jobs, each running the whole time loop;
  used when there are several jobs and BLAS runs single-threaded inside each (small GEMMs, or
  any size with BLAS pinned);
* ``"gemm"`` — the jobs run one after the other with the whole batch in one tile, so each step is
  one large GEMM that BLAS itself spreads over the cores (a single small job also runs here, with
  no parallel region at all).

``"heads"`` runs with BLAS pinned to one thread where that is possible
(:mod:`refseq.jit.blas_threads`), so that only Numba's thread pool works: OpenBLAS's own
workers would otherwise oversubscribe the cores or keep spinning against the ``prange`` jobs.
The backward runs the same jobs in reverse time, with per-job partial ``dR`` and ``db`` summed
in a fixed order: no atomics, bitwise-identical results run to run (for a fixed thread count
and BLAS).

Numerics
--------
No ``fastmath``; literals carry the array dtype; ``error_model="numpy"`` (the division-by-zero
branch would stop the pointwise loops vectorising). float64 uses libm; float32 ``exp``, ``tanh``
and the sigmoid are correctly rounded except in rare double-rounding cases; only the sLSTM's
``log σ`` uses libm ``log1p`` in float32 (:mod:`~refseq.jit.recurrence.scalar`). The recurrent
product and ``dR`` are BLAS sums or the tile's FMA chains, whose order differs from the
reference's ``einsum``; results agree within the derived tolerance of ``refseq.testing``.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_flag
from refseq.jit import blas_threads
from refseq.jit.recurrence.backward import _bwd_heads, _bwd_serial
from refseq.jit.recurrence.cells import CELL_IDS, ELMAN, ELMAN_RELU, GRU, LSTM, SLSTM
from refseq.jit.recurrence.finite import all_finite
from refseq.jit.recurrence.forward import _fwd_heads, _fwd_serial, _fwd_units
from refseq.jit.recurrence.planner import _head_major, _pack_units, plan
from refseq.jit.recurrence.projection import project_inputs, project_inputs_backward
from refseq.recurrence.checks import (
    check_backward_args,
    check_clipval,
    check_numpy_only,
    check_recurrence_args,
)

__all__ = ["BLAS_THREADED_MACS", "CELL_IDS", "ELMAN", "ELMAN_RELU", "GRU", "LSTM", "SLSTM",
           "UNITS_MIN_MACS", "flashrnn_backward", "flashrnn_forward", "plan", "project_inputs",
           "project_inputs_backward"]

#: per-step GEMM size (multiply-adds) above which BLAS goes parallel (read by :func:`plan`)
BLAS_THREADED_MACS = 1 << 18
#: per-step GEMM size below which a parallel region per step costs more than it saves
#: (``"units"``; read by :func:`plan`)
UNITS_MIN_MACS = 1 << 20


def flashrnn_forward(Wx, R, b, states0=None, *, cell="lstm", forward_clipval=None,
                     return_cache=False, check_finite=True, clamp_gates_le_one=False,
                     accumulate_dtype=None, emulate_bfloat16=False):
    """Numba twin of :func:`refseq.recurrence.engine.flashrnn_forward` (same arguments, shapes,
    dtypes, errors and cache dict; ``accumulate_dtype`` and ``emulate_bfloat16`` are numpy-only).

    Parallel over (head, batch tile) jobs or over each step's GEMM (:func:`plan`); time is
    sequential. Returns ``(states_all (S, B, T, N, D), last_states (S, B, N, D)[, cache])``.
    """
    return_cache = check_flag(return_cache, "return_cache")
    check_finite = check_flag(check_finite, "check_finite")
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    emulate_bfloat16 = check_flag(emulate_bfloat16, "emulate_bfloat16")
    check_numpy_only("jit", accumulate_dtype=accumulate_dtype, emulate_bfloat16=emulate_bfloat16)
    spec, Wx, R, b, states0 = check_recurrence_args(Wx, R, b, states0, cell=cell,
                                                    check_finite=check_finite,
                                                    all_finite=all_finite)
    clip = check_clipval(forward_clipval, "forward_clipval")
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
                      clamp_gates_le_one=False, accumulate_dtype=None, exact_stabiliser=False,
                      check_finite=True):
    """Numba twin of :func:`refseq.recurrence.engine.flashrnn_backward` (same arguments, shapes,
    dtypes, errors, ``check_finite``; ``accumulate_dtype`` and ``exact_stabiliser`` are
    numpy-only).

    Returns ``(d_states0 (S, B, N, D), dWx (B, T, G_w, N, D), dR (G_r, N, D, D), db (G_t, N, D))``.
    ``dR`` and ``db`` are reduced per job and then over batch tiles in a fixed order
    (deterministic, no atomics).
    """
    gradient_recurrent_cut = check_flag(gradient_recurrent_cut, "gradient_recurrent_cut")
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    exact_stabiliser = check_flag(exact_stabiliser, "exact_stabiliser")
    check_finite = check_flag(check_finite, "check_finite")
    check_numpy_only("jit", accumulate_dtype=accumulate_dtype, exact_stabiliser=exact_stabiliser)
    spec, d_all, d_last, R, b, states, gates = check_backward_args(
        d_states_all, d_last_states, R, b, cache, cell=cell, check_finite=check_finite,
        all_finite=all_finite)
    clip = check_clipval(gradient_recurrent_clipval, "gradient_recurrent_clipval")
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

