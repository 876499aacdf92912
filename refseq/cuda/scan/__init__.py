"""numba.cuda kernels for the scan hot path; same contracts as :mod:`refseq.scan`.

``linear_scan`` mirrors :func:`refseq.scan.linear_scan` (``h_t = a_t h_{t-1} + b_t``, the AFFINE
scan) and ``softmax_scan`` mirrors :func:`refseq.scan.softmax_scan` (Aaren's prefix softmax, the
SOFTMAX_TRIPLE scan; "Attention as an RNN", arXiv 2405.13956, Sec. 3). Both validate with the
reference's own checks, take NumPy arrays (or numba device arrays) and return NumPy arrays.

Layout (docs/hot-paths/scan-cuda.md):

* :mod:`refseq.cuda.scan.ops` — each operator as device functions (identity, combine, leaf,
  store, ...) over the arrays it reads and writes: ``affine`` and ``softmax_triple``.
* :mod:`refseq.cuda.scan.kernels` — one builder that turns any such operator into the
  ``"sequential"`` kernel (one thread per row, a left fold over time) and the three ``"parallel"``
  kernels (reduce-then-scan over tiles of ``threads * per_thread`` steps: per-thread folds, a
  block-wide Hillis-Steele scan, tile carries, a fix-up pass), and launches them.
* :mod:`refseq.cuda.scan.mirror` — the same decompositions in NumPy, generic over
  ``refseq.scan.assoc`` operators, which the kernels follow step for step.
* this module — the host wrappers: validation, layout of the arguments, the method choice.

A row is one independent scan: a (batch, flattened state index of ``*S``) pair for
``linear_scan``, a (batch, head, value channel) triple for ``softmax_scan``. ``"auto"`` picks
``"parallel"`` when ``T >= AUTO_MIN_TILES * threads * per_thread`` and the row count is at most
``AUTO_MAX_ROWS`` (too few rows to fill a GPU with one thread each), else ``"sequential"``
(:func:`choose_method`); these thresholds are a heuristic, not yet measured on a GPU.

Determinism: no atomics, one fixed order of combines per output, so results are bitwise
identical run to run. The accumulated prefix is always the left operand (neither operator is
treated as commutative). No ``fastmath``; constants are in the kernel's dtype (one compiled
specialisation per dtype). NVVM contracts ``a * h + b`` into a fused multiply-add on a GPU, so
there the results may differ from the NumPy mirrors in the last bit; under the simulator the
linear kernels equal their mirrors bit for bit.

``numba.cuda`` comes from :mod:`refseq.cuda._device` (the one import point) on first use, bound
to the module global ``cuda`` of :mod:`refseq.cuda.scan.kernels`, where the kernels are: the
package imports without numba-cuda, and the simulator can swap that global for its per-thread
fake module while a kernel runs.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_flag, check_number
from refseq.cuda import to_host
from refseq.cuda.scan.kernels import ROW_THREADS, bind_cuda, launch
from refseq.cuda.scan.mirror import PER_THREAD, THREADS, _check_tiling
from refseq.cuda.scan.ops import device_op
from refseq.scan.assoc import SoftmaxState, softmax_identity
from refseq.scan.checks import (
    check_linear_scan_args,
    check_out,
    check_softmax_scan_args,
    recheck_linear_scan,
    recheck_softmax_scan,
)

__all__ = [
    "AUTO_MAX_ROWS", "AUTO_MIN_TILES", "METHODS", "PER_THREAD", "ROW_THREADS", "THREADS",
    "choose_method", "launch_linear_scan", "linear_scan", "softmax_scan",
]

METHODS = ("auto", "sequential", "parallel")
AUTO_MIN_TILES = 4  #: "auto" needs at least this many tiles per row to choose "parallel" ...
AUTO_MAX_ROWS = 4096  #: ... and at most this many rows (too few to fill the GPU one per thread)

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
    T = check_number(T, "T", integer=True, low=0)
    rows = check_number(rows, "rows", integer=True, low=0)
    _check_tiling(threads, per_thread)
    long = T >= AUTO_MIN_TILES * threads * per_thread
    return "parallel" if long and rows <= AUTO_MAX_ROWS else "sequential"


def _resolve_method(method, T, rows, threads, per_thread):
    """Validate ``method`` and the tile, and resolve "auto" with :func:`choose_method`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_tiling(threads, per_thread)
    return choose_method(T, rows, threads, per_thread) if method == "auto" else method


def linear_scan(a, b, h0=None, *, reverse=False, check_finite=True, out=None, method="auto",
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
    b : ``(B, T, *S)`` float32 or float64 — inputs; numba device arrays are accepted for any
        array.
    h0 : ``(B, *S)``, optional — initial state (zeros when omitted).
    reverse : bool — scan from t = T-1 down to 0.
    check_finite : bool — reject NaN/inf inputs with ``ValueError``, checked after the pass
        from the final state on the host (:func:`refseq.scan.checks.recheck_linear_scan`).
    out : ``(B, T, *S)`` C-contiguous host array of ``b``'s dtype, optional — receives ``h``.
    method : "auto" | "sequential" | "parallel" — the decomposition (module docstring);
        "auto" follows :func:`choose_method` with ``rows = B * prod(S)``.
    threads, per_thread : int — block size (<= 1024) and steps per thread of "parallel"
        (tile = threads * per_thread steps).

    Returns
    -------
    h : ``(B, T, *S)`` NumPy array of ``b``'s dtype.

    Raises
    ------
    TypeError, ValueError — from :func:`refseq.scan.check_linear_scan_args`, or a bad
    ``method``/``threads``/``per_thread``; BackendUnavailable — no GPU and no simulator.

    Notes
    -----
    Launch configuration, with ``rows = B * prod(S)`` and ``n_tiles = ceil(T / tile)``:
    sequential — ``ceil(rows / 128)`` blocks of ``min(128, rows)`` threads, thread = (n, c);
    parallel — phases 1 and 3 run ``rows * n_tiles`` blocks of ``threads`` threads (block id =
    row * n_tiles + tile) with a (2, threads) shared array (each thread's composed map: decay
    ``A`` and offset ``B``); phase 2 runs one thread per row like sequential. Operator:
    :func:`refseq.cuda.scan.ops.affine`. NumPy mirrors:
    :func:`refseq.cuda.scan.mirror.linear_scan_sequential`,
    :func:`~refseq.cuda.scan.mirror.linear_scan_blocked`.
    """
    reverse = check_flag(reverse, "reverse")
    check_finite = check_flag(check_finite, "check_finite")
    a, b, h0 = check_linear_scan_args(_host(a), _host(b), _host(h0), check_finite=False)
    out = check_out(out, b.shape, b.dtype)
    out = np.empty(b.shape, b.dtype) if out is None else out
    B, T = b.shape[:2]
    S = b.shape[2:]
    C = int(np.prod(S, dtype=np.int64))
    rows = B * C
    method = _resolve_method(method, T, rows, threads, per_thread)
    if T == 0 or rows == 0:
        if check_finite:
            recheck_linear_scan(a, b, h0, out)
        return out
    cu = bind_cuda()

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
    d_h.copy_to_host(out.reshape(B, T, C))
    if check_finite:
        recheck_linear_scan(a, b, h0, out.reshape(B, T, C)[:, 0 if reverse else T - 1])
    return out


def launch_linear_scan(d_a, a_bstep, a_tstep, d_cmap, d_b, d_h0, reverse, method,
                       threads=THREADS, per_thread=PER_THREAD):
    """Launch the linear-scan kernels on device arrays; returns the device array ``h``.

    ``d_a`` (Ba, Ta, Ca), ``d_cmap`` (C,) int, ``d_b`` (B, T, C), ``d_h0`` (B, C), all on the
    device; ``a_bstep``/``a_tstep`` are 1 where ``a`` varies along B/T and 0 where it is
    broadcast. No validation and no transfers: :func:`linear_scan` does both and calls this;
    ``refseq bench`` calls it directly to time the kernels alone.
    """
    cu = bind_cuda()
    B, T, C = d_b.shape
    d_h = cu.device_array((B, T, C), np.dtype(d_b.dtype))
    ins = (d_a, a_bstep, a_tstep, d_cmap, d_b, d_h0, bool(reverse))
    launch(device_op("affine", d_b.dtype), ins, (d_h,), B * C, T, method, threads, per_thread)
    return d_h


def softmax_scan(s, v, mask=None, state=None, *, check_finite=True, out=None, method="auto",
                 threads=THREADS, per_thread=PER_THREAD):
    """GPU twin of :func:`refseq.scan.softmax_scan`: prefix softmax attention of one query.

    The inclusive SOFTMAX_TRIPLE scan over leaves ``(s_t, 1, v_t)`` (masked tokens: the identity
    ``(-inf, 0, 0)``), combined on the left with ``state`` (the stable form of Aaren, arXiv
    2405.13956 Sec. 3.2; docs/papers/aaren.md):

    .. math:: m_t = \\max(m_{t-1}, s_t),\\; u_t = u_{t-1} e^{m_{t-1}-m_t} + e^{s_t-m_t},\\;
              w_t = w_{t-1} e^{m_{t-1}-m_t} + v_t e^{s_t-m_t},\\; o_t = w_t / u_t

    with ``o_t = 0`` while ``u_t = 0`` (fully masked prefix, no carried mass); two empty operands
    combine to the identity, never NaN.

    Parameters
    ----------
    s : (B, T, H) scores; v : (B, T, H, D) values (float32 or float64, ``v``'s dtype wins).
    mask : (B, T) bool, optional — False marks padding.
    state : ``SoftmaxState`` (m (B, H), u (B, H), w (B, H, D)), optional — carried state.
    check_finite : bool — reject NaN/inf inputs with ``ValueError``, checked after the pass on
        the host: the scores ``s`` (D times smaller than ``v``) and masked values directly, the
        valid values through the final state (:func:`refseq.scan.checks.recheck_softmax_scan`).
    out : (B, T, H, D) C-contiguous host array of ``v``'s dtype, optional — receives ``o``.
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
    ``rows * n_tiles`` blocks of ``threads`` threads with a (3, threads) shared array (m, u, w);
    phase 2 runs one thread per row and also writes the final state. Operator:
    :func:`refseq.cuda.scan.ops.softmax_triple`. NumPy mirrors:
    :func:`refseq.cuda.scan.mirror.softmax_scan_sequential`,
    :func:`~refseq.cuda.scan.mirror.softmax_scan_blocked`.
    """
    check_finite = check_flag(check_finite, "check_finite")
    if state is not None:
        state = tuple(_host(x) for x in state) if isinstance(state, tuple) else state
    s, v, mask, state = check_softmax_scan_args(_host(s), _host(v), _host(mask), state,
                                                check_finite=False)
    out = check_out(out, v.shape, v.dtype)
    o, final = _softmax_scan(s, v, mask, state, out, method, threads, per_thread)
    if check_finite:
        flag = np.array([s.dtype.type(0) if np.isfinite(s).all() else np.nan])
        if mask is not None and not mask.all() and not np.isfinite(v[~mask]).all():
            flag[0] = np.nan
        recheck_softmax_scan(s, v, mask, state, flag, final)
    return o, final


def _softmax_scan(s, v, mask, state, out, method, threads, per_thread):
    """:func:`softmax_scan` after validation: run the kernels, copy ``o`` into ``out``."""
    B, T, H, D = v.shape
    initial = state if state is not None else softmax_identity((B, H), D, v.dtype)
    method = _resolve_method(method, T, B * H * max(D, 1), threads, per_thread)
    out = np.empty(v.shape, v.dtype) if out is None else out
    if T == 0 or B * H == 0:
        out[...] = 0
        return out, initial
    if D == 0:  # no value channel carries m and u: run one zero channel and drop it
        _, (m, u, _) = _softmax_scan(s, np.zeros((B, T, H, 1), v.dtype), mask,
                                     (initial.m, initial.u, np.zeros((B, H, 1), v.dtype)),
                                     None, method, threads, per_thread)
        return out, SoftmaxState(m, u, np.zeros((B, H, 0), v.dtype))
    cu = bind_cuda()
    mask_u8 = np.ones((B, T), np.uint8) if mask is None else mask.astype(np.uint8)
    ins = (cu.to_device(np.ascontiguousarray(s)), cu.to_device(np.ascontiguousarray(v)),
           cu.to_device(mask_u8), *(cu.to_device(np.ascontiguousarray(x)) for x in initial))
    d_o = cu.device_array((B, T, H, D), v.dtype)
    d_m, d_u, d_w = (cu.device_array(x.shape, v.dtype) for x in initial)
    launch(device_op("softmax_triple", v.dtype), ins, (d_o, d_m, d_u, d_w), B * H * D, T, method,
           threads, per_thread)
    final = SoftmaxState(d_m.copy_to_host(), d_u.copy_to_host(), d_w.copy_to_host())
    d_o.copy_to_host(out)
    return out, final
