"""NumPy mirror of the cuda recurrence kernels' decomposition (never imports numba).

:mod:`refseq.cuda.recurrence` runs FlashRNN's recurrence (arXiv 2412.07752; the kernels'
decomposition is docs/hot-paths/recurrence-kernels.md, "cuda decomposition") as

* ``forward``: one block per (head n, tile of ``batch_tile`` batch rows). A thread owns cells
  ``(row, d)``; per step the block loads ``h_{t-1}`` of its rows into shared memory, barrier,
  each thread forms all ``G_t`` pre-activations of its cell — ``Wx``, then the recurrent dot
  product ``sum_p R[g, n, d, p] h[row, p]`` accumulated in ``p`` order, then ``b`` — and applies
  the cell's pointwise update, barrier. ``R[:, n]`` sits in shared memory when it fits.
* ``backward``: the same blocks in reverse time. Phase 1: each thread adds the external gradient
  to its cells' running ``δs``, runs the pointwise backward, writes ``δg~`` (global scratch) and
  its recurrent gates to shared memory; barrier. Phase 2: the thread of cell ``(row, p)`` forms
  ``δh^{rec}[row, p] = sum_g sum_d R[g, n, d, p] δg~[row, g, d]`` (g outer, d inner), applies the
  cut/clip and adds it to ``δs_h``; barrier.
* ``reduce``: one thread per entry of ``dR`` / ``db``, summing its products over
  t = T-1, ..., 0 (outer) and b = 0, ..., B-1 (inner) — a fixed order, no atomics.

The mirror runs the blocks one after the other and vectorises what the threads of a block do
in parallel; what a thread does in order (the ``p`` and ``(g, d)`` sums, the ``(t, b)``
reduction) is a Python loop in the same order. The pointwise maps are the reference's own
(:mod:`refseq.recurrence.cells`), so the mirror differs from the reference only in summation order.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_flag, check_number
from refseq.recurrence.checks import check_backward_args, check_clipval, check_recurrence_args

BATCH_TILE = 16  #: batch rows per block (the default tile of the cuda kernels)


def _tiles(B, batch_tile):
    batch_tile = check_number(batch_tile, "batch_tile", integer=True, low=1)
    return [(b0, min(b0 + batch_tile, B)) for b0 in range(0, B, batch_tile)]


def _clip(x, v):
    return x if v is None else np.clip(x, -v, v)


def _madd(acc, x, y, fma):
    """``acc + x * y`` with two roundings, or with one (``fma``: how a GPU contracts it; emulated
    for float32 through the exact float64 product)."""
    if fma and acc.dtype == np.float32:
        return (acc.astype(np.float64) + x.astype(np.float64) * y).astype(np.float32)
    return acc + x * y


def forward_blocked(Wx, R, b, states0=None, *, cell="lstm", forward_clipval=None,
                    clamp_gates_le_one=False, batch_tile=BATCH_TILE, fma=False):
    """Mirror of the forward kernel; returns the cache dict ``{"states", "gates"}``.

    ``states`` (S, B, T+1, N, D) holds ``states0`` at index 0; ``gates`` (T, B, G_t, N, D).
    ``fma=True`` rounds each multiply-add of the dot products once, as NVVM's contraction does
    on a GPU (float32 only; float64 is left unfused).
    """
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    fma = check_flag(fma, "fma")
    spec, Wx, R, b, s0 = check_recurrence_args(Wx, R, b, states0, cell=cell)
    forward_clipval = check_clipval(forward_clipval, "forward_clipval")
    B, T, G_w, N, D = Wx.shape
    opts = {"clamp_gates_le_one": True} if clamp_gates_le_one else {}
    st = np.empty((spec.num_states, B, T + 1, N, D), Wx.dtype)
    st[:, :, 0] = s0
    gates = np.empty((T, B, spec.num_gates_t, N, D), Wx.dtype)
    w, r = list(spec.w_gates), list(spec.r_gates)
    for n in range(N):  # blocks: (head, batch tile)
        for b0, b1 in _tiles(B, batch_tile):
            for t in range(T):
                h = st[0, b0:b1, t, n].copy()  # shared memory: (bt, D)
                acc = np.zeros((b1 - b0, len(r), D), Wx.dtype)  # one per thread's cell and gate
                for p in range(D):  # the thread's dot product, in p order
                    acc = _madd(acc, R[:, n, :, p][None], h[:, None, p, None], fma)
                pre = np.zeros((b1 - b0, spec.num_gates_t, D), Wx.dtype)
                pre[:, w] = Wx[b0:b1, t, :, n]
                pre[:, r] += acc
                pre += b[:, n][None]
                new, cache = spec.forward(pre[:, :, None], st[:, b0:b1, t, n][:, :, None], **opts)
                new = new[:, :, 0]  # (S, bt, D)
                new[0] = _clip(new[0], forward_clipval)
                st[:, b0:b1, t + 1, n] = new
                for j, name in enumerate(spec.cache_names):
                    gates[t, b0:b1, j, n] = new[0] if spec.num_gates_t == 1 else cache[name][:, 0]
    return {"states": st, "gates": gates}


def backward_blocked(d_states_all, d_last_states, R, b, cache, *, cell="lstm",
                     gradient_recurrent_cut=False, gradient_recurrent_clipval=None,
                     clamp_gates_le_one=False, batch_tile=BATCH_TILE, fma=False):
    """Mirror of the backward and reduction kernels: ``(d_states0, dWx, dR, db)`` (``fma`` as
    in :func:`forward_blocked`)."""
    gradient_recurrent_cut = check_flag(gradient_recurrent_cut, "gradient_recurrent_cut")
    clamp_gates_le_one = check_flag(clamp_gates_le_one, "clamp_gates_le_one")
    fma = check_flag(fma, "fma")
    spec, d_all, d_last, R, b, st, gates = check_backward_args(
        d_states_all, d_last_states, R, b, cache, cell=cell)
    gradient_recurrent_clipval = check_clipval(gradient_recurrent_clipval,
                                               "gradient_recurrent_clipval")
    S, B, T, N, D = d_all.shape
    dt = st.dtype
    opts = {"clamp_gates_le_one": True} if clamp_gates_le_one else {}
    v = gradient_recurrent_clipval
    ds = d_last.copy()  # running δs, (S, B, N, D)
    dg_all = np.empty((B, T, spec.num_gates_t, N, D), dt)  # global scratch
    G_r = spec.num_gates_r
    for n in range(N):
        for b0, b1 in _tiles(B, batch_tile):
            for t in range(T - 1, -1, -1):
                # phase 1: pointwise backward per cell
                ds[:, b0:b1, n] += d_all[:, b0:b1, t, n]
                cache_t = {k: gates[t, b0:b1, j, n][:, None]
                           for j, k in enumerate(spec.cache_names)}
                d_prev, dg = spec.backward(ds[:, b0:b1, n][:, :, None],
                                           st[:, b0:b1, t, n][:, :, None],
                                           st[:, b0:b1, t + 1, n][:, :, None], cache_t, **opts)
                dg = dg[:, :, 0].astype(dt, copy=False)  # (bt, G_t, D)
                dg_all[b0:b1, t, :, n] = dg
                ds[:, b0:b1, n] = d_prev[:, :, 0]
                if gradient_recurrent_cut:
                    continue
                # phase 2: δh^{rec}[row, p], g outer, d inner
                acc = np.zeros((b1 - b0, D), dt)
                for g in range(G_r):
                    for d in range(D):
                        acc = _madd(acc, R[g, n, d, :][None], dg[:, g, d, None], fma)
                if v is not None:
                    if spec.name == "slstm":
                        acc = np.where(np.isfinite(acc), acc, 0)
                    acc = np.clip(acc, -v, v)
                ds[0, b0:b1, n] += acc
    dR, db = reduce_blocked(dg_all, st, G_r, fma=fma)
    dWx = np.ascontiguousarray(dg_all[:, :, spec.num_gates_t - spec.num_gates_w:])
    return ds, dWx, dR, db


def reduce_blocked(dg_all, st, G_r, fma=False):
    """``dR[g, n, d, p] = sum_t sum_b δg~[b, t, g, n, d] h_{t-1}[b, n, p]`` and ``db`` likewise,
    t = T-1..0 outer, b inner (one thread per output entry)."""
    B, T, G_t, N, D = dg_all.shape
    dR = np.zeros((G_r, N, D, D), dg_all.dtype)
    db = np.zeros((G_t, N, D), dg_all.dtype)
    for t in range(T - 1, -1, -1):
        for ib in range(B):
            dR = _madd(dR, dg_all[ib, t, :G_r, :, :, None], st[0, ib, t][None, :, None, :], fma)
            db += dg_all[ib, t]
    return dR, db


def flashrnn_forward(Wx, R, b, states0=None, *, cell="lstm", forward_clipval=None,
                     return_cache=False, clamp_gates_le_one=False, batch_tile=BATCH_TILE,
                     fma=False):
    """The reference's ``flashrnn_forward`` contract on top of :func:`forward_blocked`."""
    return_cache = check_flag(return_cache, "return_cache")
    cache = forward_blocked(Wx, R, b, states0, cell=cell, forward_clipval=forward_clipval,
                            clamp_gates_le_one=clamp_gates_le_one, batch_tile=batch_tile, fma=fma)
    st = cache["states"]
    out = (st[:, :, 1:].copy(), st[:, :, -1].copy())
    return out + (cache,) if return_cache else out


__all__ = ["BATCH_TILE", "backward_blocked", "flashrnn_forward", "forward_blocked",
           "reduce_blocked"]
