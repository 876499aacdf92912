"""numba.cuda kernels for the RNN-recurrence hot path; same contracts as :mod:`refseq.recurrence.engine`.

``flashrnn_forward`` / ``flashrnn_backward`` mirror the reference functions of
:mod:`refseq.recurrence.engine` (FlashRNN, arXiv 2412.07752; spec ``flashrnn.md`` items 3-4, 9 and
"Hot paths"), without ``backend``: the reference's own checks, the same shapes, dtypes, errors and
cache dict ``{"states": (S, B, T+1, N, D), "gates": (T, B, G_t, N, D)}``; NumPy arrays (or numba
device arrays) in, NumPy arrays out. All cells of ``refseq.rnn.CELLS``.

Decomposition (NumPy mirror: :mod:`refseq.cuda.recurrence.mirror`, which documents it in full):

* forward — one block per (head, tile of ``batch_tile`` rows); a thread owns cells (row, d) and
  forms all gate pre-activations of its cell, so a step needs two barriers (after loading
  ``h_{t-1}`` into shared memory, after the pointwise update). ``R[:, n]`` (``G_r D D`` values) is
  copied to shared memory once when it fits in :data:`SHARED_BYTES` next to the ``h`` tile, and
  read from global memory otherwise. Heads never communicate: no grid-wide synchronisation.
* backward — the same blocks in reverse time, two phases per step (pointwise backward with
  ``δg~`` of the recurrent gates in shared memory; then ``δh^{rec} = R^T δg~`` per cell with cut
  and clip), then a reduction kernel with one thread per entry of ``dR`` and ``db`` summing over
  (t, b) in a fixed order. No atomics anywhere: bitwise identical results run to run.

Every size works: threads stride over the cells of their tile, the last batch tile may be
partial, and any D, N, B, T (including T = 0) is accepted. ``math.exp``/``math.tanh`` are the
device libm (the Python ``math`` module under the simulator); no ``fastmath``.

``numba.cuda`` is bound to the module global ``cuda`` on first use (from
:mod:`refseq.cuda._device`, the one import point), as in :mod:`refseq.cuda.scan`.
"""

from __future__ import annotations

import math

import numpy as np

from refseq.cuda import require_numba_cuda, to_host
from refseq.cuda.recurrence.mirror import BATCH_TILE, _tiles
from refseq.recurrence.engine import check_backward_args, check_recurrence_args

cuda = None  # numba.cuda, bound by _bind_cuda() on first use

THREADS = 128  #: threads per block
SHARED_BYTES = 48 * 1024  #: static shared-memory budget per block (R goes global beyond it)
ELMAN, ELMAN_RELU, LSTM, GRU, SLSTM = 0, 1, 2, 3, 4
CELL_IDS = {"elman": ELMAN, "elman_relu": ELMAN_RELU, "lstm": LSTM, "gru": GRU, "slstm": SLSTM}

_KERNELS: dict = {}


def _bind_cuda():
    """Bind ``numba.cuda`` to this module's global ``cuda`` on first use (see
    :func:`refseq.cuda.require_numba_cuda`)."""
    global cuda
    if cuda is None:
        cuda = require_numba_cuda(__name__)
    return cuda


_host = to_host


def r_fits_shared(G_r, D, batch_tile, itemsize, budget=SHARED_BYTES):
    """Whether ``R[:, n]`` fits in shared memory next to the (batch tile, D) work tile."""
    work = batch_tile * max(G_r, 1) * D  # backward: δg~ of the recurrent gates (>= forward's h)
    return (G_r * D * D + work) * itemsize <= budget


def _kernels(dtype):
    key = np.dtype(dtype).str
    if key not in _KERNELS:
        _bind_cuda()
        _KERNELS[key] = _build(np.dtype(dtype))
    return _KERNELS[key]


def _build(dtype):
    """Forward, backward and reduction kernels for ``dtype`` (literals in that dtype)."""
    ZERO, ONE = dtype.type(0), dtype.type(1)

    @cuda.jit(device=True)
    def sigmoid(x):
        if x >= ZERO:
            return ONE / (ONE + math.exp(-x))
        e = math.exp(x)
        return e / (ONE + e)

    @cuda.jit(device=True)
    def log_sigmoid(x):
        if x > ZERO:
            return -math.log1p(math.exp(-x))
        return -(-x + math.log1p(math.exp(x)))

    @cuda.jit(device=True)
    def clipv(v, c):
        if v < -c:
            return -c
        if v > c:
            return c
        return v

    @cuda.jit
    def forward(cell, Wx, R, b, st, gates, store_gates, clip, has_clip, clamp, bt_rows, r_sh):
        """Block (n, tile); thread strides over cells (row, d) of the tile."""
        n = cuda.blockIdx.x
        b0 = cuda.blockIdx.y * bt_rows
        B, T, Gw, N, D = Wx.shape
        Gt = b.shape[0]
        Gr = R.shape[0]
        woff = Gt - Gw
        bt = min(bt_rows, B - b0)
        sh = cuda.shared.array(0, dtype)  # [h tile: bt_rows * D][R[:, n]: Gr * D * D]
        roff = bt_rows * D
        i = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        if r_sh:
            for k in range(i, Gr * D * D, nthr):
                g = k // (D * D)
                q = k - g * D * D
                sh[roff + k] = R[g, n, q // D, q - (q // D) * D]
        pre = cuda.local.array(4, dtype)
        for t in range(T):
            for k in range(i, bt * D, nthr):
                sh[k] = st[0, b0 + k // D, t, n, k - (k // D) * D]
            cuda.syncthreads()
            for c in range(i, bt * D, nthr):
                bb = c // D
                d = c - bb * D
                ib = b0 + bb
                for j in range(Gt):
                    pre[j] = ZERO
                for k in range(Gw):
                    pre[k + woff] = Wx[ib, t, k, n, d]
                for k in range(Gr):
                    acc = ZERO
                    for p in range(D):
                        if r_sh:
                            acc += sh[roff + (k * D + d) * D + p] * sh[bb * D + p]
                        else:
                            acc += R[k, n, d, p] * sh[bb * D + p]
                    pre[k] += acc
                for j in range(Gt):
                    pre[j] += b[j, n, d]
                if cell == ELMAN or cell == ELMAN_RELU:
                    a = pre[0]
                    if cell == ELMAN:
                        h = math.tanh(a)
                    else:
                        h = a if not (a < ZERO) else ZERO
                    if has_clip:
                        h = clipv(h, clip)
                    pre[0] = h  # the reference caches the clipped h
                elif cell == LSTM:
                    ig = sigmoid(pre[0])
                    fg = sigmoid(pre[1])
                    z = math.tanh(pre[2])
                    o = sigmoid(pre[3])
                    cc = fg * st[1, ib, t, n, d] + ig * z
                    h = o * math.tanh(cc)
                    if has_clip:
                        h = clipv(h, clip)
                    st[1, ib, t + 1, n, d] = cc
                    pre[0] = ig
                    pre[1] = fg
                    pre[2] = z
                    pre[3] = o
                elif cell == GRU:
                    g = pre[0]
                    r = sigmoid(pre[1])
                    z = sigmoid(pre[2])
                    nc = math.tanh(pre[3] + r * g)
                    h = z * st[0, ib, t, n, d] + (ONE - z) * nc
                    if has_clip:
                        h = clipv(h, clip)
                    pre[1] = r
                    pre[2] = z
                else:  # SLSTM
                    ip = pre[0]
                    fp = pre[1]
                    z = math.tanh(pre[2])
                    o = sigmoid(pre[3])
                    c_p = st[1, ib, t, n, d]
                    n_p = st[2, ib, t, n, d]
                    m_p = st[3, ib, t, n, d]
                    ls = log_sigmoid(fp)
                    ell = ls + m_p
                    if n_p == ZERO:
                        m = ip
                    else:
                        m = ip if ip >= ell else ell
                    i_s = math.exp(ip - m)
                    f_s = math.exp(ls + m_p - m)
                    if clamp:
                        i_s = i_s if i_s < ONE else ONE
                        f_s = f_s if f_s < ONE else ONE
                    cc = f_s * c_p + i_s * z
                    nn = f_s * n_p + i_s
                    nn = nn if nn > ONE else ONE
                    h = o * cc / nn
                    if has_clip:
                        h = clipv(h, clip)
                    st[1, ib, t + 1, n, d] = cc
                    st[2, ib, t + 1, n, d] = nn
                    st[3, ib, t + 1, n, d] = m
                    pre[2] = z
                    pre[3] = o
                st[0, ib, t + 1, n, d] = h
                if store_gates:
                    for j in range(Gt):
                        gates[t, ib, j, n, d] = pre[j]
            cuda.syncthreads()

    @cuda.jit
    def backward(cell, d_all, R, st, gates, ds, dg_all, cut, clip, has_clip, clamp, bt_rows,
                 r_sh):
        """Block (n, tile), reverse time; ``ds`` (S, B, N, D) holds the running δs."""
        n = cuda.blockIdx.x
        b0 = cuda.blockIdx.y * bt_rows
        S, B, T, N, D = d_all.shape
        Gt = gates.shape[2]
        Gr = R.shape[0]
        bt = min(bt_rows, B - b0)
        sh = cuda.shared.array(0, dtype)  # [δg~_r tile: bt_rows * Gr * D][R[:, n]]
        roff = bt_rows * Gr * D
        i = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        if r_sh:
            for k in range(i, Gr * D * D, nthr):
                g = k // (D * D)
                q = k - g * D * D
                sh[roff + k] = R[g, n, q // D, q - (q // D) * D]
        dg = cuda.local.array(4, dtype)
        for step in range(T):
            t = T - 1 - step
            for c in range(i, bt * D, nthr):  # phase 1: pointwise backward of cell (row, d)
                bb = c // D
                d = c - bb * D
                ib = b0 + bb
                for s in range(S):
                    ds[s, ib, n, d] += d_all[s, ib, t, n, d]
                dh = ds[0, ib, n, d]
                if cell == ELMAN or cell == ELMAN_RELU:
                    h = gates[t, ib, 0, n, d]
                    if cell == ELMAN:
                        dg[0] = dh * (ONE - h * h)
                    else:
                        dg[0] = dh * (ONE if h > ZERO else ZERO)
                    ds[0, ib, n, d] = ZERO
                elif cell == LSTM:
                    ig = gates[t, ib, 0, n, d]
                    fg = gates[t, ib, 1, n, d]
                    z = gates[t, ib, 2, n, d]
                    o = gates[t, ib, 3, n, d]
                    tc = math.tanh(st[1, ib, t + 1, n, d])
                    dc = ds[1, ib, n, d] + dh * o * (ONE - tc * tc)
                    dg[0] = dc * z * ig * (ONE - ig)
                    dg[1] = dc * st[1, ib, t, n, d] * fg * (ONE - fg)
                    dg[2] = dc * ig * (ONE - z * z)
                    dg[3] = dh * tc * o * (ONE - o)
                    ds[0, ib, n, d] = ZERO
                    ds[1, ib, n, d] = dc * fg
                elif cell == GRU:
                    g = gates[t, ib, 0, n, d]
                    r = gates[t, ib, 1, n, d]
                    z = gates[t, ib, 2, n, d]
                    n_in = gates[t, ib, 3, n, d]
                    nc = math.tanh(n_in + r * g)
                    dn = dh * (ONE - z) * (ONE - nc * nc)
                    dg[0] = dn * r
                    dg[1] = dn * g * r * (ONE - r)
                    dg[2] = dh * (st[0, ib, t, n, d] - nc) * z * (ONE - z)
                    dg[3] = dn
                    ds[0, ib, n, d] = dh * z
                else:  # SLSTM
                    ip = gates[t, ib, 0, n, d]
                    fp = gates[t, ib, 1, n, d]
                    z = gates[t, ib, 2, n, d]
                    o = gates[t, ib, 3, n, d]
                    c_p = st[1, ib, t, n, d]
                    n_p = st[2, ib, t, n, d]
                    m_p = st[3, ib, t, n, d]
                    cc = st[1, ib, t + 1, n, d]
                    nn = st[2, ib, t + 1, n, d]
                    m = st[3, ib, t + 1, n, d]
                    i_s = math.exp(ip - m)
                    f_s = math.exp(log_sigmoid(fp) + m_p - m)
                    if clamp:
                        i_s = i_s if i_s < ONE else ONE
                        f_s = f_s if f_s < ONE else ONE
                    dc = ds[1, ib, n, d] + dh * o / nn
                    dn = ds[2, ib, n, d] - dh * o * cc / (nn * nn)
                    dg[0] = (dc * z + dn) * i_s
                    dg[1] = (dc * c_p + dn * n_p) * f_s * (ONE - sigmoid(fp))
                    dg[2] = dc * i_s * (ONE - z * z)
                    dg[3] = dh * (cc / nn) * o * (ONE - o)
                    ds[0, ib, n, d] = ZERO
                    ds[1, ib, n, d] = dc * f_s
                    ds[2, ib, n, d] = dn * f_s
                    ds[3, ib, n, d] = ZERO
                for j in range(Gt):
                    dg_all[ib, t, j, n, d] = dg[j]
                for k in range(Gr):
                    sh[(bb * Gr + k) * D + d] = dg[k]
            cuda.syncthreads()
            if not cut:
                for c in range(i, bt * D, nthr):  # phase 2: δh^{rec} of cell (row, p)
                    bb = c // D
                    p = c - bb * D
                    acc = ZERO
                    for k in range(Gr):
                        for d in range(D):
                            if r_sh:
                                acc += sh[roff + (k * D + d) * D + p] * sh[(bb * Gr + k) * D + d]
                            else:
                                acc += R[k, n, d, p] * sh[(bb * Gr + k) * D + d]
                    if has_clip:
                        if cell == SLSTM and not math.isfinite(acc):
                            acc = ZERO
                        acc = clipv(acc, clip)
                    ds[0, b0 + bb, n, p] += acc
            cuda.syncthreads()

    @cuda.jit
    def reduce(dg_all, st, dR, db):
        """One thread per entry of dR (G_r, N, D, D) then db (G_t, N, D); sum over t desc, b."""
        B, T, Gt, N, D = dg_all.shape
        Gr = dR.shape[0]
        k = cuda.grid(1)
        nR = Gr * N * D * D
        if k < nR:
            g = k // (N * D * D)
            q = k - g * (N * D * D)
            n = q // (D * D)
            q = q - n * (D * D)
            d = q // D
            p = q - d * D
            acc = ZERO
            for step in range(T):
                t = T - 1 - step
                for ib in range(B):
                    acc += dg_all[ib, t, g, n, d] * st[0, ib, t, n, p]
            dR[g, n, d, p] = acc
        elif k < nR + Gt * N * D:
            q = k - nR
            g = q // (N * D)
            q = q - g * (N * D)
            n = q // D
            d = q - n * D
            acc = ZERO
            for step in range(T):
                t = T - 1 - step
                for ib in range(B):
                    acc += dg_all[ib, t, g, n, d]
            db[g, n, d] = acc

    return forward, backward, reduce


def _check_launch(threads, batch_tile):
    _tiles(1, batch_tile)  # validates batch_tile
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or \
            not 1 <= threads <= 1024:
        raise ValueError(f"threads must be an integer in [1, 1024], got {threads!r}")


def flashrnn_forward(Wx, R, b, states0=None, *, cell="lstm", forward_clipval=None,
                     return_cache=False, check_finite=True, clamp_gates_le_one=False,
                     threads=THREADS, batch_tile=BATCH_TILE, r_in_shared=None):
    """CUDA twin of :func:`refseq.recurrence.engine.flashrnn_forward` (same arguments, shapes, dtypes,
    errors and cache dict). ``threads``, ``batch_tile`` set the launch; ``r_in_shared`` forces
    (True/False) where ``R`` lives, default: shared memory when it fits."""
    Wx, R, b, states0 = (_host(x) for x in (Wx, R, b, states0))
    spec, Wx, R, b, s0 = check_recurrence_args(Wx, R, b, states0, cell=cell,
                                               check_finite=check_finite)
    from refseq.recurrence.engine import _check_clipval

    clip = _check_clipval(forward_clipval, "forward_clipval")
    if clamp_gates_le_one and spec.name != "slstm":
        raise ValueError(f"clamp_gates_le_one applies to the sLSTM only, not {spec.name!r}")
    _check_launch(threads, batch_tile)
    B, T, _, N, D = Wx.shape
    dt = Wx.dtype
    st = np.empty((spec.num_states, B, T + 1, N, D), dt)
    st[:, :, 0] = s0
    gates = np.empty((T, B, spec.num_gates_t, N, D), dt)
    if T > 0 and B * N * D > 0:
        cu = _bind_cuda()
        forward, _, _ = _kernels(dt)
        G_r = spec.num_gates_r
        r_sh = r_fits_shared(G_r, D, batch_tile, dt.itemsize) if r_in_shared is None \
            else bool(r_in_shared)
        shared = (batch_tile * D + (G_r * D * D if r_sh else 0)) * dt.itemsize
        d_st, d_gates = cu.to_device(st), cu.to_device(gates)
        grid = (N, -(-B // batch_tile))
        forward[grid, threads, 0, shared](
            CELL_IDS[spec.name], cu.to_device(np.ascontiguousarray(Wx)),
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
                      clamp_gates_le_one=False, threads=THREADS, batch_tile=BATCH_TILE,
                      r_in_shared=None):
    """CUDA twin of :func:`refseq.recurrence.engine.flashrnn_backward`:
    ``(d_states0, dWx, dR, db)``, deterministic (fixed-order reductions, no atomics)."""
    if isinstance(cache, dict):
        cache = {k: _host(v) for k, v in cache.items()}
    d_states_all, d_last_states, R, b = (_host(x) for x in (d_states_all, d_last_states, R, b))
    spec, d_all, d_last, R, b, st, gates = check_backward_args(
        d_states_all, d_last_states, R, b, cache, cell=cell)
    from refseq.recurrence.engine import _check_clipval

    clip = _check_clipval(gradient_recurrent_clipval, "gradient_recurrent_clipval")
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
        cu = _bind_cuda()
        _, backward, reduce = _kernels(dt)
        r_sh = r_fits_shared(G_r, D, batch_tile, dt.itemsize) if r_in_shared is None \
            else bool(r_in_shared)
        shared = (batch_tile * G_r * D + (G_r * D * D if r_sh else 0)) * dt.itemsize
        d_R, d_st = cu.to_device(np.ascontiguousarray(R)), cu.to_device(np.ascontiguousarray(st))
        d_ds, d_dg = cu.to_device(ds), cu.to_device(dg_all)
        grid = (N, -(-B // batch_tile))
        backward[grid, threads, 0, shared](
            CELL_IDS[spec.name], cu.to_device(np.ascontiguousarray(d_all)), d_R, d_st,
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
