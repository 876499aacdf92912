"""Aaren's one-head formulations: the oracle, the many-to-one RNN and the prefix scan.

Softmax attention of one fixed query as an RNN (Feng et al., arXiv 2405.13956, Sec. 3.1-3.2):
:func:`attend_one_query` (direct, the oracle), :func:`aaren_cell_step` / :func:`aaren_recurrent`
(the RNN), :func:`aaren_scan` (the parallel prefix scan), :func:`aaren_naive` (O(T^2)) and the
unstable textbook form :func:`aaren_unstable_rolling`, plus the score and mask helpers. The
glossary (paper symbol -> code) is in :mod:`refseq.papers.aaren.layer`, which re-exports all of
this; narrative: docs/papers/aaren.md.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.nn.softmax_attention import _scale, masked_softmax
from refseq.scan import (
    SCANS,
    SOFTMAX_TRIPLE,
    SoftmaxState,
    check_softmax_scan_args,
    check_softmax_state,
    softmax_identity,
    softmax_leaf,
    softmax_scan_textbook,
)

METHODS = tuple(SCANS)  # "sequential", "hillis_steele", "blelloch", "chunked"


# ---------------------------------------------------------------------------------------------
# Scores and validation.


def _check_keys(q, k, dtype, check_finite, hint=None):
    """Validate ``q`` (H, Dk) and ``k`` (B, T, H, Dk); cast both to ``dtype`` (k's if None)."""
    k = _checks.float_array(k, "k", dtype=dtype)
    if k.ndim != 4:
        raise ValueError(f"k must have shape (B, T, H, Dk), got {k.shape}")
    q = _checks.float_array(q, "q", dtype=k.dtype)
    _checks.check_shape(q, k.shape[2:], "q", "(H, Dk)")
    if check_finite:
        _checks.check_finite(q, "q", hint=hint)
        _checks.check_finite(k, "k", hint=hint)
    return q, k


def _scores(q, k, scale):
    return _scale(scale, k.shape[3], k.dtype) * np.einsum("hd,bthd->bth", q, k)  # (B, T, H)


def aaren_scores(q, k, scale=None):
    """Scores of the learned query: ``s[b, t, h] = scale * <q[h], k[b, t, h]>`` (Sec. 3.1).

    ``q`` (H, Dk), ``k`` (B, T, H, Dk); ``scale=None`` is ``1/sqrt(Dk)``, ``scale=1.0`` the
    paper's literal ``s_i = dot(q, k_i)``. Returns (B, T, H) in ``k``'s dtype.
    """
    q, k = _check_keys(q, k, None, check_finite=True, hint="")  # no flag here to point to
    return _scores(q, k, scale)


def _prepare(q, k, v, mask, scale, state, check_finite):
    """Validate the (q, k, v) interface; return scores and the checked scan arguments."""
    v = _checks.float_array(v, "v")
    if v.ndim != 4:
        raise ValueError(f"v must have shape (B, T, H, Dv), got {v.shape}")
    q, k = _check_keys(q, k, v.dtype, check_finite)
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k (B, T, H, Dk) = {k.shape} and v (B, T, H, Dv) = {v.shape} must "
                         "share (B, T, H)")
    return check_softmax_scan_args(_scores(q, k, scale), v, mask, state, check_finite)


def _divide(w, u):
    """``o = w / u`` with the all-masked guard: 0 where ``u == 0`` (a fully masked prefix)."""
    return np.divide(w, u[..., None], out=np.zeros_like(w), where=u[..., None] > 0)


# ---------------------------------------------------------------------------------------------
# The oracle, the RNN and the scan.


def attend_one_query(q, k, v, mask=None, scale=None):
    """Many-to-one softmax attention of ``q`` over all T tokens, computed directly (the oracle).

    .. math:: o_T = \\frac{\\sum_{i \\le T} e^{s_i} v_i}{\\sum_{i \\le T} e^{s_i}},
              \\qquad s_i = \\text{scale} \\cdot \\langle q, k_i \\rangle

    with the max-subtracted (log-sum-exp-stable) softmax of :func:`masked_softmax`.

    Parameters
    ----------
    q : (H, Dk); k : (B, T, H, Dk); v : (B, T, H, Dv) — float32 or float64 (``v``'s dtype wins).
    mask : (B, T) bool, optional — False marks tokens to leave out.
    scale : float, optional — ``1/sqrt(Dk)`` when None.

    Returns
    -------
    o : (B, H, Dv); 0 where no token is valid.
    """
    s, v, mask, _ = _prepare(q, k, v, mask, scale, None, check_finite=True)  # s: (B, T, H)
    return _attend(s, v, mask)


def _attend(s, v, mask):
    p = masked_softmax(s, None if mask is None else mask[..., None], axis=1)  # (B, T, H)
    return np.einsum("bth,bthd->bhd", p, v)  # (B, H, Dv)


def softmax_state_init(B: int, H: int, Dv: int, dtype=np.float64) -> SoftmaxState:
    """The empty state ``m = -inf, u = 0, w = 0`` (the paper's m_0, c_0, a_0; the identity)."""
    B = _checks.check_number(B, "B", integer=True, low=0)
    H = _checks.check_number(H, "H", integer=True, low=1)
    Dv = _checks.check_number(Dv, "Dv", integer=True, low=1)
    return softmax_identity((B, H), Dv, _checks.check_float_dtype(dtype, "dtype"))


def _cell(state, s_t, v_t, valid_t):
    m_prev, c_prev, a_prev = state  # m_{k-1} (B, H), c_{k-1} (B, H), a_{k-1} (B, H, Dv)
    m = np.maximum(m_prev, s_t)  # m_k = max(m_{k-1}, s_k)
    decay = np.exp(m_prev - m)  # e^{m_{k-1} - m_k}; 0 when m_{k-1} = -inf (m_k is finite)
    p = np.exp(s_t - m)  # e^{s_k - m_k}
    c = c_prev * decay + p  # c_k
    a = a_prev * decay[..., None] + v_t * p[..., None]  # a_k, (B, H, Dv)
    if valid_t is not None:  # a masked token leaves the state as it was
        keep = valid_t[:, None]  # (B, 1)
        m, c = np.where(keep, m, m_prev), np.where(keep, c, c_prev)
        a = np.where(keep[..., None], a, a_prev)
    return SoftmaxState(m, c, a), _divide(a, c)


def _check_state(state, shape, dtype, check_finite):
    """Validate a step's ``state`` against ``shape = (B, H, Dv)``."""
    return check_softmax_state(state, shape, dtype, check_finite)


def aaren_cell_step(state, s_t, v_t, valid_t=None, *, check_finite=True):
    """One step of the many-to-one RNN (Sec. 3.1): fold token k into the state, read o_k.

    .. math:: m_k = \\max(m_{k-1}, s_k), \\quad
              a_k = a_{k-1} e^{m_{k-1} - m_k} + v_k e^{s_k - m_k}, \\quad
              c_k = c_{k-1} e^{m_{k-1} - m_k} + e^{s_k - m_k}, \\quad o_k = a_k / c_k

    Parameters
    ----------
    state : SoftmaxState (m (B, H), u (B, H), w (B, H, Dv)) — (m_{k-1}, c_{k-1}, a_{k-1});
        :func:`softmax_state_init` gives m_0 = -inf, c_0 = 0, a_0 = 0.
    s_t : (B, H) scores; v_t : (B, H, Dv) values (``v_t``'s dtype wins).
    valid_t : (B,) bool, optional — False leaves that row's state unchanged.

    Returns
    -------
    state : the new SoftmaxState; o_t : (B, H, Dv), 0 while no valid token has been seen.

    Notes
    -----
    O(1) time and memory in k: ``Dv + 2`` numbers per head. Equal (bitwise, for a valid token)
    to ``softmax_combine(state, softmax_leaf(s_t, v_t))``.
    """
    check_finite = check_flag(check_finite, "check_finite")
    v_t = _checks.float_array(v_t, "v_t")
    if v_t.ndim != 3:
        raise ValueError(f"v_t must have shape (B, H, Dv), got {v_t.shape}")
    s_t = _checks.float_array(s_t, "s_t", dtype=v_t.dtype)
    _checks.check_shape(s_t, v_t.shape[:2], "s_t", "(B, H)")
    valid_t = _checks.bool_mask(valid_t, v_t.shape[:1], "valid_t", "(B,)")
    if check_finite:
        _checks.check_finite(s_t, "s_t")
        _checks.check_finite(v_t, "v_t")
    state = _check_state(state, v_t.shape, v_t.dtype, check_finite)
    return _cell(state, s_t, v_t, valid_t)


def aaren_recurrent(s, v, mask=None, state=None, *, check_finite=True):
    """Many-to-many outputs by applying :func:`aaren_cell_step` T times (the O(T) fold).

    Parameters
    ----------
    s : (B, T, H) scores; v : (B, T, H, Dv); mask : (B, T) bool, optional;
    state : SoftmaxState, optional — carried from a previous call (identity when None).

    Returns
    -------
    o : (B, T, H, Dv); final state (``state`` itself when T = 0).
    """
    check_finite = check_flag(check_finite, "check_finite")
    s, v, mask, state = check_softmax_scan_args(s, v, mask, state, check_finite)
    B, T, H, Dv = v.shape
    if state is None:
        state = softmax_state_init(B, H, Dv, v.dtype)
    o = np.empty_like(v)  # (B, T, H, Dv)
    for t in range(T):
        state, o[:, t] = _cell(state, s[:, t], v[:, t], None if mask is None else mask[:, t])
    return o, state


def aaren_scan(q, k, v, mask=None, scale=None, state=None, method="blelloch", chunk=None, *,
               check_finite=True):
    """Many-to-many Aaren attention by a parallel prefix scan (Sec. 3.2).

    Scores ``s_i = scale <q, k_i>`` become leaves ``(s_i, 1, v_i)`` (masked: the identity
    ``(-inf, 0, 0)``); the inclusive scan of the ``SOFTMAX_TRIPLE`` operator

    .. math:: (m_A, u_A, w_A) \\oplus (m_B, u_B, w_B) = (m, u_A e^{m_A - m} + u_B e^{m_B - m},
              w_A e^{m_A - m} + w_B e^{m_B - m}), \\quad m = \\max(m_A, m_B)

    combined on the left with ``state``, gives ``(m_k, c_k, a_k)`` for every prefix and
    ``o_k = a_k / c_k``.

    Parameters
    ----------
    q : (H, Dk); k : (B, T, H, Dk); v : (B, T, H, Dv); mask : (B, T) bool, optional;
    scale : float, optional (``1/sqrt(Dk)`` when None); state : SoftmaxState, optional.
    method : "blelloch" (O(T) work, 2 log2 T rounds) | "hillis_steele" (O(T log T) work, log2 T
        rounds) | "sequential" (the fold) | "chunked" (two-level, ``chunk`` tokens per chunk,
        default 64) — the generic scans of :mod:`refseq.scan.assoc`; all give the same result.

    Returns
    -------
    o : (B, T, H, Dv); final state (the input state, or the identity, when T = 0).
    """
    check_finite = check_flag(check_finite, "check_finite")
    _checks.check_choice(method, "method", METHODS)
    if chunk is not None and method != "chunked":
        raise ValueError(f"chunk is used only with method='chunked', got method={method!r}")
    s, v, mask, state = _prepare(q, k, v, mask, scale, state, check_finite)
    B, T, H, Dv = v.shape
    leaves = softmax_leaf(s, v, mask)  # m, u: (B, T, H); w: (B, T, H, Dv)
    options = {"chunk": 64 if chunk is None else chunk} if method == "chunked" else {}
    M, U, W = SCANS[method](SOFTMAX_TRIPLE, leaves, axis=1, initial=state, **options)
    if T == 0:
        final = state if state is not None else softmax_state_init(B, H, Dv, v.dtype)
    else:
        final = SoftmaxState(M[:, -1].copy(), U[:, -1].copy(), W[:, -1].copy())
    return _divide(W, U), final


def aaren_naive(q, k, v, mask=None, scale=None):
    """O(T^2) reference: ``o[:, t] = attend_one_query`` over tokens 1..t, for every t.

    The same as causal softmax attention with ``q`` broadcast to every position. Returns
    (B, T, H, Dv).
    """
    s, v, mask, _ = _prepare(q, k, v, mask, scale, None, check_finite=True)
    o = np.empty_like(v)  # (B, T, H, Dv)
    for t in range(v.shape[1]):
        o[:, t] = _attend(s[:, : t + 1], v[:, : t + 1], None if mask is None else mask[:, : t + 1])
    return o


def aaren_unstable_rolling(s, v):
    """The textbook rolling sums without the max (Sec. 3.1 before the max shift).

    .. math:: \\hat a_k = \\hat a_{k-1} + e^{s_k} v_k, \\quad \\hat c_k = \\hat c_{k-1} + e^{s_k},
              \\quad o_k = \\hat a_k / \\hat c_k

    Correct on benign scores, but ``e^{s_k}`` overflows for s above about 709 (float64) or 88
    (float32) and underflows to 0/0 when every score is below about -745 (-104): returns inf or
    NaN there. This is why the cell carries the running max m. Never used by the reference;
    kept for the test that documents the failure. ``s`` (B, T, H), ``v``
    (B, T, H, Dv); returns (B, T, H, Dv).
    """
    return softmax_scan_textbook(s, v)


def lengths_to_mask(lengths, T: int, padding: str = "right"):
    """Boolean mask (B, T), True at real tokens, for a ragged batch of ``lengths`` (B,).

    ``padding="right"``: row b holds its tokens at t < lengths[b]; ``"left"``: at
    t >= T - lengths[b].
    """
    T = _checks.check_number(T, "T", integer=True, low=0)
    _checks.check_choice(padding, "padding", ("right", "left"))
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be a 1-D integer array (B,), got {lengths.dtype} "
                        f"{lengths.shape}")
    if (lengths < 0).any() or (lengths > T).any():
        raise ValueError(f"lengths must lie in [0, T] = [0, {T}], got {lengths}")
    t = np.arange(T)[None, :]  # (1, T)
    if padding == "right":
        return t < lengths[:, None]  # (B, T)
    if padding == "left":
        return t >= T - lengths[:, None]  # (B, T)
    raise ValueError(f"padding must be 'right' or 'left', got {padding!r}")
