"""Aaren — attention as a recurrent neural network (Feng et al., arXiv 2405.13956, Sec. 3).

Softmax attention of one *fixed* query over tokens 1..k is an RNN with a constant-size state,
and its outputs after every prefix are an inclusive scan with an associative operator. Spec:
``aaren.md`` ("Equations"). Symbols: B batch, T time, H heads, Dk key width, Dv value width,
D model width. Glossary, paper -> code (one head; the scan's triple is ``SoftmaxState``):

=====================================  =================  ====================================
paper                                  code               shape
=====================================  =================  ====================================
s_i = <q, k_i>  (times ``scale``)      ``s``              (B, T, H)
m_k = max_{i<=k} s_i                   ``state.m``        (B, H)
c_k = sum_{i<=k} exp(s_i - m_k)        ``state.u``        (B, H)
a_k = sum_{i<=k} exp(s_i - m_k) v_i    ``state.w``        (B, H, Dv)
o_k = a_k / c_k                        ``o``              (B, T, H, Dv)
=====================================  =================  ====================================

Formulations of the same function, tested against one another (style.md #8):
:func:`attend_one_query` (direct, the oracle), :func:`aaren_cell_step` / :func:`aaren_recurrent`
(the RNN, Sec. 3.1), :func:`aaren_scan` (the parallel prefix scan, Sec. 3.2), :func:`aaren_naive`
(O(T^2)) and, for a negative test only, :func:`aaren_unstable_rolling`. The layer (Sec. 3.3) is
:func:`aaren_layer` / :func:`aaren_layer_step`.

Choices the paper leaves open (the spec's): ``scale=None`` means ``1/sqrt(Dk)`` — the paper's
``s_i = <q, k_i>`` is ``scale=1.0``, equally expressive since q is learned; heads are merged by
concatenation and ``W_o`` (``head_merge="mean" | "sum"`` reproduce independent implementations);
a masked token is the identity element, never a large negative score, and a prefix without a
valid token outputs 0 with ``u = 0``.

References
----------
L. Feng, F. Tung, H. Hajimirsadeghi, M. O. Ahmed, Y. Bengio, G. Mori. "Attention as an RNN".
arXiv:2405.13956, 2024. Narrative, tests and the demo: ``docs/papers/aaren.md``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.attention.softmax import _scale, masked_softmax
from refseq.nn.basic import linear
from refseq.scan import (  # noqa: F401  (SoftmaxState and softmax_combine are re-exported)
    SCANS,
    SOFTMAX_TRIPLE,
    SoftmaxState,
    check_softmax_scan_args,
    check_softmax_state,
    softmax_combine,
    softmax_identity,
    softmax_leaf,
    softmax_scan,
    softmax_scan_textbook,
)

METHODS = tuple(SCANS)  # "sequential", "hillis_steele", "blelloch", "chunked"
HEAD_MERGES = ("concat", "mean", "sum")


# ---------------------------------------------------------------------------------------------
# Scores and validation.


def _check_keys(q, k, dtype, check_finite):
    """Validate ``q`` (H, Dk) and ``k`` (B, T, H, Dk); cast both to ``dtype`` (k's if None)."""
    k = _checks.float_array(k, "k", dtype=dtype)
    if k.ndim != 4:
        raise ValueError(f"k must have shape (B, T, H, Dk), got {k.shape}")
    q = _checks.float_array(q, "q", dtype=k.dtype)
    _checks.check_shape(q, k.shape[2:], "q", "(H, Dk)")
    if check_finite:
        _checks.check_finite(q, "q")
        _checks.check_finite(k, "k")
    return q, k


def _scores(q, k, scale):
    return _scale(scale, k.shape[3], k.dtype) * np.einsum("hd,bthd->bth", q, k)  # (B, T, H)


def aaren_scores(q, k, scale=None):
    """Scores of the learned query: ``s[b, t, h] = scale * <q[h], k[b, t, h]>`` (Sec. 3.1).

    ``q`` (H, Dk), ``k`` (B, T, H, Dk); ``scale=None`` is ``1/sqrt(Dk)``, ``scale=1.0`` the
    paper's literal ``s_i = dot(q, k_i)``. Returns (B, T, H) in ``k``'s dtype.
    """
    q, k = _check_keys(q, k, None, check_finite=True)
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
    """``o = w / u`` with the all-masked guard: 0 where ``u == 0`` (spec aaren.md item 11)."""
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
    if np.dtype(dtype) not in _checks.FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    return softmax_identity((B, H), Dv, dtype)


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
        default 64) — the generic scans of :mod:`refseq.assoc`; all give the same result.

    Returns
    -------
    o : (B, T, H, Dv); final state (the input state, or the identity, when T = 0).
    """
    if method not in SCANS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
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
    """The textbook rolling sums without the max (spec aaren.md, "Unstable rolling form").

    .. math:: \\hat a_k = \\hat a_{k-1} + e^{s_k} v_k, \\quad \\hat c_k = \\hat c_{k-1} + e^{s_k},
              \\quad o_k = \\hat a_k / \\hat c_k

    Correct on benign scores, but ``e^{s_k}`` overflows for s above about 709 (float64) or 88
    (float32) and underflows to 0/0 when every score is below about -745 (-104): returns inf or
    NaN there. This is why the cell carries the running max m. Never used by the reference;
    kept for the test that documents the failure (style.md #7). ``s`` (B, T, H), ``v``
    (B, T, H, Dv); returns (B, T, H, Dv).
    """
    return softmax_scan_textbook(s, v)


def lengths_to_mask(lengths, T: int, padding: str = "right"):
    """Boolean mask (B, T), True at real tokens, for a ragged batch of ``lengths`` (B,).

    ``padding="right"``: row b holds its tokens at t < lengths[b]; ``"left"``: at
    t >= T - lengths[b].
    """
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


# ---------------------------------------------------------------------------------------------
# The Aaren layer (Sec. 3.3): learned per-head queries over projected keys and values.


class AarenParams(NamedTuple):
    """Parameters of one multi-head Aaren layer.

    ``q`` (H, Dk) learned queries (one per head, not computed from tokens); ``W_k`` (D, H*Dk),
    ``b_k`` (H*Dk,) | None; ``W_v`` (D, H*Dv), ``b_v`` (H*Dv,) | None; ``W_o`` (H*Dv, D) for
    ``head_merge="concat"`` or (Dv, D) for "mean"/"sum", ``b_o`` (D,) | None.
    """

    q: np.ndarray
    W_k: np.ndarray
    b_k: np.ndarray | None
    W_v: np.ndarray
    b_v: np.ndarray | None
    W_o: np.ndarray
    b_o: np.ndarray | None


def init_aaren_params(rng, D, H, Dk, Dv, dtype=np.float64, bias=True, head_merge="concat"):
    """Random ``AarenParams``: q ~ N(0, 1), weights ~ N(0, 1/fan_in), zero biases (or None)."""
    if head_merge not in HEAD_MERGES:
        raise ValueError(f"head_merge must be one of {HEAD_MERGES}, got {head_merge!r}")
    D_merged = H * Dv if head_merge == "concat" else Dv

    def weight(n_in, n_out):
        return (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)

    def zeros(n):
        return np.zeros(n, dtype) if bias else None

    return AarenParams(rng.standard_normal((H, Dk)).astype(dtype), weight(D, H * Dk),
                       zeros(H * Dk), weight(D, H * Dv), zeros(H * Dv), weight(D_merged, D),
                       zeros(D))


def _layer_dims(params, D, head_merge):
    if not isinstance(params, AarenParams):
        raise TypeError(f"params must be AarenParams, got {type(params).__name__}")
    if head_merge not in HEAD_MERGES:
        raise ValueError(f"head_merge must be one of {HEAD_MERGES}, got {head_merge!r}")
    q = _checks.float_array(params.q, "params.q")
    if q.ndim != 2:
        raise ValueError(f"params.q must have shape (H, Dk), got {q.shape}")
    H, Dk = q.shape
    _checks.check_shape(np.asarray(params.W_k), (D, H * Dk), "params.W_k", "(D, H*Dk)")
    W_v = np.asarray(params.W_v)
    if W_v.ndim != 2 or W_v.shape[0] != D or W_v.shape[1] % H:
        raise ValueError(f"params.W_v must have shape (D, H*Dv) with D = {D}, H = {H}, "
                         f"got {W_v.shape}")
    Dv = W_v.shape[1] // H
    form = "(H*Dv, D)" if head_merge == "concat" else "(Dv, D)"
    D_merged = H * Dv if head_merge == "concat" else Dv
    _checks.check_shape(np.asarray(params.W_o), (D_merged, D), "params.W_o", form)
    return H, Dk, Dv


def _merge_heads(o, head_merge):
    if head_merge == "concat":
        return o.reshape(o.shape[:-2] + (o.shape[-2] * o.shape[-1],))  # (..., H*Dv)
    return o.mean(axis=-2) if head_merge == "mean" else o.sum(axis=-2)  # (..., Dv)


def aaren_layer(params, x, mask=None, state=None, scale=None, head_merge="concat", *,
                backend="numpy"):
    """Multi-head Aaren layer over a whole sequence (Sec. 3.3; spec aaren.md A5).

    .. math:: k_i = x_i W_k + b_k, \\; v_i = x_i W_v + b_v, \\;
              o^{(h)}_{1..T} = \\text{Aaren}(q^{(h)}, k^{(h)}_{1..T}, v^{(h)}_{1..T}), \\;
              y_t = \\text{merge}_h(o^{(h)}_t) W_o + b_o

    The query of head h is the parameter ``q[h]``, not a projection of the current token (with
    one, the layer would be causal self-attention at O(t) per step; spec aaren.md "Traps").

    Parameters
    ----------
    params : AarenParams (cast to ``x``'s dtype); x : (B, T, D) float32 or float64.
    mask : (B, T) bool, optional; state : SoftmaxState (m (B, H), u (B, H), w (B, H, Dv)),
        optional — carry from a previous call; scale : ``1/sqrt(Dk)`` when None.
    head_merge : "concat" (reference) | "mean" | "sum" — how heads meet ``W_o``.
    backend : tier of the prefix-softmax hot path :func:`refseq.scan.softmax_scan` that runs
        the scan.

    Returns
    -------
    y : (B, T, D); state : the final SoftmaxState.
    """
    x = _checks.float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, D), got {x.shape}")
    _checks.check_finite(x, "x")
    B, T, D = x.shape
    H, Dk, Dv = _layer_dims(params, D, head_merge)
    K = linear(x, params.W_k, params.b_k).reshape(B, T, H, Dk)  # (B, T, H, Dk)
    V = linear(x, params.W_v, params.b_v).reshape(B, T, H, Dv)  # (B, T, H, Dv)
    s = _scores(np.asarray(params.q, x.dtype), K, scale)  # (B, T, H)
    o, state = softmax_scan(s, V, mask, state, backend=backend)  # (B, T, H, Dv)
    y = linear(_merge_heads(o, head_merge), params.W_o, params.b_o)  # (B, T, D)
    return y, state


def aaren_layer_step(params, x_t, state=None, valid_t=None, scale=None, head_merge="concat"):
    """:func:`aaren_layer` for one new token ``x_t`` (B, D) in O(1) time and memory (spec A6).

    Returns ``(y_t (B, D), state)``; ``state=None`` starts from :func:`softmax_state_init`.
    Token by token it equals :func:`aaren_layer` on the whole sequence.
    """
    x_t = _checks.float_array(x_t, "x_t")
    if x_t.ndim != 2:
        raise ValueError(f"x_t must have shape (B, D), got {x_t.shape}")
    _checks.check_finite(x_t, "x_t")
    B, D = x_t.shape
    H, Dk, Dv = _layer_dims(params, D, head_merge)
    if state is None:
        state = softmax_state_init(B, H, Dv, x_t.dtype)
    k_t = linear(x_t, params.W_k, params.b_k).reshape(B, H, Dk)  # (B, H, Dk)
    v_t = linear(x_t, params.W_v, params.b_v).reshape(B, H, Dv)  # (B, H, Dv)
    q = np.asarray(params.q, x_t.dtype)  # (H, Dk)
    s_t = _scale(scale, Dk, x_t.dtype) * np.einsum("hd,bhd->bh", q, k_t)  # (B, H)
    state, o_t = aaren_cell_step(state, s_t, v_t, valid_t)  # o_t: (B, H, Dv)
    y_t = linear(_merge_heads(o_t, head_merge), params.W_o, params.b_o)  # (B, D)
    return y_t, state
