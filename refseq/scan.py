"""The scan hot path: linear recurrences and the prefix-softmax scan, with their backward passes.

Symbols: B batch, T time (axis 1), H heads, D value width, ``*S`` any trailing state shape.

* ``linear_scan``: ``h_t = a_t * h_{t-1} + b_t`` (reverse: ``h_t = a_t * h_{t+1} + b_t``), the
  inclusive scan of the ``AFFINE`` operator; ``a`` broadcasts to ``b`` (a scalar decay per head
  over a matrix state is the Mamba-2 case).
* ``softmax_scan``: prefix softmax attention of one query, the inclusive scan of the
  ``SOFTMAX_TRIPLE`` operator (Aaren, arXiv 2405.13956, Sec. 3; spec ``aaren.md``).

Each function validates its input (``TypeError``/``ValueError`` naming the argument), then runs
the NumPy reference below or the compiled tier chosen by ``backend`` ("numpy", "jit", "cuda"),
looked up in :mod:`refseq.registry`. The generic scans and operators are re-exported from
:mod:`refseq.assoc`.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.assoc import (  # noqa: F401  (re-exported: the scan module is their public home)
    AFFINE,
    SCANS,
    SOFTMAX_TRIPLE,
    AssociativeOp,
    SoftmaxState,
    affine_combine,
    affine_identity,
    scan_blelloch,
    scan_chunked,
    scan_hillis_steele,
    scan_sequential,
    softmax_combine,
    softmax_identity,
    softmax_leaf,
)
from refseq.registry import resolve

# ---------------------------------------------------------------------------------------------
# Validation shared by every tier (the jit and cuda entry points call these too).


def check_linear_scan_args(a, b, h0, check_finite=True):
    """Validate ``linear_scan`` arguments; return ``(a, b, h0)`` as arrays of ``b``'s dtype.

    ``a`` keeps its own (broadcastable) shape; ``h0`` is None or has shape ``(B, *S)``.
    """
    b = _checks.float_array(b, "b", ndim_min=2)
    a = _checks.float_array(a, "a", dtype=b.dtype)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        shape = None
    if shape != b.shape:
        raise ValueError(
            f"a must broadcast to b's shape (B, T, *S) = {b.shape}, got {a.shape} "
            "(keep size-1 axes for broadcast dims, e.g. a[..., None])"
        )
    if h0 is not None:
        h0 = _checks.float_array(h0, "h0", dtype=b.dtype)
        _checks.check_shape(h0, b.shape[:1] + b.shape[2:], "h0", "(B, *S)")
    if check_finite:
        for x, name in ((a, "a"), (b, "b"), (h0, "h0")):
            if x is not None:
                _checks.check_finite(x, name)
    return a, b, h0


def check_softmax_scan_args(s, v, mask, state, check_finite=True):
    """Validate ``softmax_scan`` arguments; return ``(s, v, mask, state)`` in ``v``'s dtype."""
    v = _checks.float_array(v, "v")
    if v.ndim != 4:
        raise ValueError(f"v must have shape (B, T, H, D), got {v.shape}")
    s = _checks.float_array(s, "s", dtype=v.dtype)
    B, T, H, D = v.shape
    _checks.check_shape(s, (B, T, H), "s", "(B, T, H)")
    mask = _checks.bool_mask(mask, (B, T), "mask", "(B, T)")
    if state is not None:
        state = check_softmax_state(state, (B, H, D), v.dtype, check_finite)
    if check_finite:
        _checks.check_finite(s, "s")
        _checks.check_finite(v, "v")
    return s, v, mask, state


def check_softmax_state(state, shape, dtype, check_finite=True) -> SoftmaxState:
    """Validate a carried ``SoftmaxState`` against ``shape = (B, H, D)``; cast it to ``dtype``.

    ``m`` must be finite or ``-inf``; ``u >= 0``; and where ``m = -inf`` (no token seen yet) the
    state must be the identity, ``u = 0`` and ``w = 0``: ``softmax_combine`` would otherwise drop
    that mass silently (``e^{-inf - m} = 0``).
    """
    B, H, D = shape
    if not isinstance(state, tuple) or len(state) != 3:
        raise TypeError("state must be a tuple (m (B, H), u (B, H), w (B, H, D)), e.g. a "
                        "SoftmaxState from softmax_scan or softmax_identity((B, H), D, dtype)")
    m0, u0, w0 = (_checks.float_array(x, f"state.{n}", dtype=dtype) for x, n in zip(state, "muw"))
    _checks.check_shape(m0, (B, H), "state.m", "(B, H)")
    _checks.check_shape(u0, (B, H), "state.u", "(B, H)")
    _checks.check_shape(w0, (B, H, D), "state.w", "(B, H, D)")
    if np.isnan(m0).any() or np.isposinf(m0).any():
        raise ValueError("state.m must be finite or -inf (the identity)")
    if (u0 < 0).any():
        raise ValueError("state.u must be >= 0 (it is a sum of exponentials)")
    empty = np.isneginf(m0)
    if empty.any() and ((u0[empty] != 0).any() or (w0[empty] != 0).any()):
        raise ValueError("state.u and state.w must be 0 where state.m is -inf (an empty state)")
    if check_finite:
        _checks.check_finite(u0, "state.u")
        _checks.check_finite(w0, "state.w")
    return SoftmaxState(m0, u0, w0)


def _dispatch(name, backend, *args, **kwargs):
    return resolve(name, _checks.check_backend(backend))(*args, check_finite=False, **kwargs)


# ---------------------------------------------------------------------------------------------
# Linear recurrence.


def linear_scan(a, b, h0=None, *, reverse=False, backend="numpy", check_finite=True):
    """Inclusive linear recurrence along time.

    .. math:: h_t = a_t \\odot h_{t-1} + b_t, \\qquad h_{-1} = h_0 \\;(\\text{or } 0)

    and with ``reverse=True`` ``h_t = a_t * h_{t+1} + b_t`` with ``h_T = h0``.

    Parameters
    ----------
    a : array broadcastable to ``b`` — decay; a scalar per (B, T, H) over a (N, P) state is the
        Mamba-2 case ``a.shape == (B, T, H, 1, 1)``. Cast to ``b``'s dtype.
    b : (B, T, *S) float32 or float64 — input.
    h0 : (B, *S), optional — initial state (zeros when omitted).
    reverse : bool — run from t = T-1 down to 0.
    backend : "numpy" | "jit" | "cuda".
    check_finite : bool — reject NaN/inf inputs with ``ValueError`` (default).

    Returns
    -------
    h : (B, T, *S), ``b``'s dtype. ``h[:, -1]`` (``h[:, 0]`` if reverse) is the final state to
        pass as ``h0`` of the next chunk.
    """
    a, b, h0 = check_linear_scan_args(a, b, h0, check_finite)
    if backend != "numpy":
        return _dispatch("linear_scan", backend, a, b, h0, reverse=reverse)
    return _linear_scan_numpy(a, b, h0, reverse=reverse)


def _linear_scan_numpy(a, b, h0=None, *, reverse=False, check_finite=False):
    """Reference: the recurrence as a loop over time (the AFFINE fold, written out)."""
    a = np.broadcast_to(a, b.shape)
    h = np.empty_like(b)  # (B, T, *S)
    h_prev = np.zeros(b.shape[:1] + b.shape[2:], b.dtype) if h0 is None else h0
    steps = range(b.shape[1] - 1, -1, -1) if reverse else range(b.shape[1])
    for t in steps:
        h_prev = a[:, t] * h_prev + b[:, t]  # (B, *S)
        h[:, t] = h_prev
    return h


def _sum_to_shape(x, shape):
    """Sum ``x`` over the axes that broadcasting added or stretched to reach ``x.shape``."""
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead))) if lead else x
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return x.sum(axis=axes, keepdims=True) if axes else x


def linear_scan_backward(a, h, grad_h, h0=None, *, reverse=False, backend="numpy"):
    """Vector-Jacobian product of ``h = linear_scan(a, b, h0, reverse=reverse)``.

    With ``G_t = dL/dh_t`` accumulated through later steps,

    .. math:: G_t = \\bar g_t + a_{t+1} G_{t+1}, \\quad
              \\partial b_t = G_t, \\quad \\partial a_t = G_t h_{t-1}, \\quad
              \\partial h_0 = a_0 G_0,

    i.e. the *reverse* linear scan of the upstream gradient ``grad_h`` with decays shifted by one
    step (forward ``reverse=True`` mirrors all of it). ``backend`` runs that reverse scan.

    Returns ``(grad_a, grad_b, grad_h0)``: ``grad_a`` has ``a``'s shape (summed over broadcast
    axes), ``grad_b`` has ``h``'s shape, ``grad_h0`` has shape (B, *S) (the gradient for the zero
    initial state when ``h0`` is None).
    """
    a, h, h0 = check_linear_scan_args(a, h, h0, check_finite=False)
    grad_h = _checks.float_array(grad_h, "grad_h", dtype=h.dtype)
    _checks.check_shape(grad_h, h.shape, "grad_h", "(B, T, *S)")
    if reverse:  # the mirror image: flip time, run the forward rule, flip back
        flip = (lambda x: x[:, ::-1]) if a.ndim == h.ndim and a.shape[1] > 1 else (lambda x: x)
        ga, gb, gh0 = linear_scan_backward(
            flip(a), h[:, ::-1], grad_h[:, ::-1], h0, reverse=False, backend=backend
        )
        return flip(ga), np.ascontiguousarray(gb[:, ::-1]), gh0
    B, T = h.shape[:2]
    state_shape = h.shape[:1] + h.shape[2:]
    if T == 0:
        return np.zeros_like(a), np.zeros_like(h), np.zeros(state_shape, h.dtype)
    a_full = np.broadcast_to(a, h.shape)  # (B, T, *S)
    a_next = np.concatenate([a_full[:, 1:], np.zeros_like(a_full[:, :1])], axis=1)  # a_{t+1}
    G = linear_scan(a_next, grad_h, reverse=True, backend=backend, check_finite=False)
    h_prev = np.concatenate(
        [(np.zeros(state_shape, h.dtype) if h0 is None else h0)[:, None], h[:, :-1]], axis=1
    )  # h_{t-1}, (B, T, *S)
    grad_a = _sum_to_shape(G * h_prev, a.shape).astype(h.dtype, copy=False)
    grad_h0 = a_full[:, 0] * G[:, 0]
    return grad_a, G, grad_h0


# ---------------------------------------------------------------------------------------------
# Prefix softmax (Aaren).


def softmax_scan(s, v, mask=None, state=None, *, backend="numpy", check_finite=True):
    """Prefix softmax attention of one query: ``o_t = sum_{i<=t} e^{s_i} v_i / sum_{i<=t} e^{s_i}``.

    The inclusive scan of ``SOFTMAX_TRIPLE`` over leaves ``(s_i, 1, v_i)`` (Aaren, arXiv
    2405.13956, Sec. 3.2; spec aaren.md "Stable form"), combined on the left with ``state``:

    .. math:: m_t = \\max(m_{t-1}, s_t),\\; u_t = u_{t-1} e^{m_{t-1}-m_t} + e^{s_t-m_t},\\;
              w_t = w_{t-1} e^{m_{t-1}-m_t} + v_t e^{s_t-m_t},\\; o_t = w_t / u_t.

    Parameters
    ----------
    s : (B, T, H) scores; v : (B, T, H, D) values (float32 or float64, ``v``'s dtype wins).
    mask : (B, T) bool, optional — False marks padding; a masked token is the identity leaf, so
        its output repeats the current prefix value. A prefix with no valid token (and no carried
        mass) outputs 0 and reports ``u = 0``.
    state : ``SoftmaxState`` (m (B, H), u (B, H), w (B, H, D)), optional — carry from a previous
        call, so that two calls with carried state equal one call.

    Returns
    -------
    o : (B, T, H, D); state : the final ``SoftmaxState`` (the input state if T = 0).
    """
    s, v, mask, state = check_softmax_scan_args(s, v, mask, state, check_finite)
    if backend != "numpy":
        return _dispatch("softmax_scan", backend, s, v, mask, state)
    o, (M, U, W), final = _softmax_prefix(s, v, mask, state)
    return o, final


def _softmax_prefix(s, v, mask, state):
    """Reference fold; returns ``o`` and the per-step prefix triples ``(M, U, W)``."""
    B, T, H, D = v.shape
    leaves = softmax_leaf(s, v, mask)  # m, u: (B, T, H); w: (B, T, H, D)
    M, U, W = scan_sequential(SOFTMAX_TRIPLE, leaves, axis=1, initial=state)
    o = np.divide(W, U[..., None], out=np.zeros_like(W), where=U[..., None] > 0)  # o = w / u
    if T == 0:
        final = state if state is not None else softmax_identity((B, H), D, v.dtype)
    else:
        final = SoftmaxState(M[:, -1].copy(), U[:, -1].copy(), W[:, -1].copy())
    return o, (M, U, W), final


def _softmax_scan_numpy(s, v, mask=None, state=None, *, check_finite=False):
    o, _, final = _softmax_prefix(s, v, mask, state)
    return o, final


def softmax_scan_backward(s, v, grad_o, mask=None, state=None, *, backend="numpy"):
    """Vector-Jacobian product of ``o, _ = softmax_scan(s, v, mask, state)``.

    With ``p_{t,i} = e^{s_i - M_t} / U_t`` (the attention weight of token i in prefix t),
    ``do_t/dv_i = p_{t,i}`` and ``do_t/ds_i = p_{t,i} (v_i - o_t)``. The sums over ``t >= i`` are
    two *reverse linear scans* whose decays ``e^{M_t - M_{t+1}} <= 1`` never overflow:

    .. math:: A_t = g_t / U_t + e^{M_t - M_{t+1}} A_{t+1}, \\quad
              \\beta_t = (g_t \\cdot o_t) / U_t + e^{M_t - M_{t+1}} \\beta_{t+1},

    then ``grad_v_i = e^{s_i - M_i} A_i`` and ``grad_s_i = e^{s_i - M_i} (v_i . A_i - beta_i)``
    (zero at masked tokens). The carried state acts as one more token group on the left:
    ``grad_w0 = e^{m0 - M_0} A_0``, ``grad_u0 = -e^{m0 - M_0} beta_0``,
    ``grad_m0 = u0 grad_u0 + w0 . grad_w0``. ``backend`` runs the two reverse scans.

    Returns ``(grad_s (B, T, H), grad_v (B, T, H, D), grad_state)``; ``grad_state`` is a
    ``SoftmaxState`` of gradients, or None when ``state`` is None.
    """
    s, v, mask, state = check_softmax_scan_args(s, v, mask, state, check_finite=False)
    grad_o = _checks.float_array(grad_o, "grad_o", dtype=v.dtype)
    _checks.check_shape(grad_o, v.shape, "grad_o", "(B, T, H, D)")
    B, T, H, D = v.shape
    if T == 0:
        zero = None if state is None else SoftmaxState(*(np.zeros_like(x) for x in state))
        return np.zeros_like(s), np.zeros_like(v), zero
    o, M, U = _softmax_forward_for_backward(s, v, mask, state, backend)
    safe_M = np.where(np.isneginf(M), 0.0, M)
    # decay_t = e^{M_t - M_{t+1}} (0 after an empty prefix, and at t = T-1 where A_T = 0)
    decay = np.zeros_like(M)
    decay[:, :-1] = np.where(np.isneginf(M[:, :-1]), 0.0, np.exp(M[:, :-1] - safe_M[:, 1:]))
    inv_U = np.divide(1.0, U, out=np.zeros_like(U), where=U > 0)  # (B, T, H)
    A = linear_scan(
        decay[..., None],
        grad_o * inv_U[..., None],
        reverse=True,
        backend=backend,
        check_finite=False,
    )  # (B, T, H, D)
    beta = linear_scan(
        decay,
        np.einsum("bthd,bthd->bth", grad_o, o) * inv_U,
        reverse=True,
        backend=backend,
        check_finite=False,
    )  # (B, T, H)
    valid = np.ones((B, T), bool) if mask is None else mask
    p = np.where(valid[..., None], np.exp(np.minimum(s - safe_M, 0.0)), 0.0)  # e^{s_i - M_i}
    grad_v = p[..., None] * A
    grad_s = p * (np.einsum("bthd,bthd->bth", v, A) - beta)
    grad_state = None
    if state is not None:
        m0, u0, w0 = state
        c = np.where(np.isneginf(m0), 0.0, np.exp(m0 - safe_M[:, 0]))  # e^{m0 - M_0}, (B, H)
        grad_w0 = c[..., None] * A[:, 0]
        grad_u0 = -c * beta[:, 0]
        grad_m0 = u0 * grad_u0 + np.einsum("bhd,bhd->bh", w0, grad_w0)
        grad_state = SoftmaxState(grad_m0, grad_u0, grad_w0)
    return grad_s.astype(v.dtype, copy=False), grad_v.astype(v.dtype, copy=False), grad_state


def _softmax_forward_for_backward(s, v, mask, state, backend):
    """``o`` and the prefix maxima ``M`` and normalisers ``U`` (carry included), on ``backend``.

    ``M`` is a running maximum; given it, ``U`` is a linear scan,
    ``U_t = U_{t-1} e^{M_{t-1} - M_t} + e^{s_t - M_t}`` (0 for a masked token), seeded with
    ``u0`` under the decay ``e^{m0 - M_0}``. ``o`` is the forward scan itself.
    """
    B, T, H, D = v.shape
    s_valid = s if mask is None else np.where(mask[..., None], s, -np.inf)  # (B, T, H)
    m_start = np.full((B, H), -np.inf, s.dtype) if state is None else state.m
    M = np.maximum.accumulate(np.concatenate([m_start[:, None], s_valid], axis=1), axis=1)
    M_prev, M = M[:, :-1], M[:, 1:]  # M_{t-1} (M_{-1} = m0) and M_t, (B, T, H)
    safe_M = np.where(np.isneginf(M), 0.0, M)
    with np.errstate(invalid="ignore"):
        decay = np.where(np.isneginf(M_prev), 0.0, np.exp(M_prev - safe_M))
        leaf = np.where(np.isneginf(s_valid), 0.0, np.exp(s_valid - safe_M))
    u0 = None if state is None else state.u
    U = linear_scan(decay.astype(s.dtype), leaf.astype(s.dtype), u0, backend=backend,
                    check_finite=False)
    o, _ = softmax_scan(s, v, mask, state, backend=backend, check_finite=False)
    return o, M, U


def softmax_scan_textbook(s, v, mask=None):
    """The textbook rolling form ``a^_t = a^_{t-1} + e^{s_t} v_t``, ``c^_t = c^_{t-1} + e^{s_t}``,
    ``o_t = a^_t / c^_t`` (spec aaren.md, "Unstable rolling form").

    Kept beside the stable scan only to show why the running max ``m`` exists: it overflows once
    a score passes ~709 (float64) or ~88 (float32), where ``softmax_scan`` stays exact. Never use
    it for real work.
    """
    s, v, mask, _ = check_softmax_scan_args(s, v, mask, None, check_finite=True)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        e = np.exp(s) if mask is None else np.where(mask[..., None], np.exp(s), 0.0).astype(s.dtype)
        a_hat = np.cumsum(e[..., None] * v, axis=1)  # (B, T, H, D)
        c_hat = np.cumsum(e, axis=1)  # (B, T, H)
        return a_hat / c_hat[..., None]
