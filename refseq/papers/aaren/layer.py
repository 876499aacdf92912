"""Aaren — attention as a recurrent neural network (Feng et al., arXiv 2405.13956, Sec. 3).

Softmax attention of one *fixed* query over tokens 1..k is an RNN with a constant-size state, and
its outputs after every prefix are an inclusive scan with an associative operator. Symbols: B batch,
T time, H heads, Dk key width, Dv value width, D model width. Glossary, paper -> code (one head; the
scan's triple is ``SoftmaxState``):

=====================================  =================  ====================================
paper                                  code               shape
=====================================  =================  ====================================
s_i = <q, k_i>  (times ``scale``)      ``s``              (B, T, H)
m_k = max_{i<=k} s_i                   ``state.m``        (B, H)
c_k = sum_{i<=k} exp(s_i - m_k)        ``state.u``        (B, H)
a_k = sum_{i<=k} exp(s_i - m_k) v_i    ``state.w``        (B, H, Dv)
o_k = a_k / c_k                        ``o``              (B, T, H, Dv)
=====================================  =================  ====================================

Formulations of the same function, tested against one another:
:func:`attend_one_query` (direct, the oracle), :func:`aaren_cell_step` / :func:`aaren_recurrent`
(the RNN, Sec. 3.1), :func:`aaren_scan` (the parallel prefix scan, Sec. 3.2), :func:`aaren_naive`
(O(T^2)) and, for a negative test only, :func:`aaren_unstable_rolling`; they live in
:mod:`refseq.papers.aaren.rnn` and are re-exported here. The layer (Sec. 3.3) is
:func:`aaren_layer` / :func:`aaren_layer_step`, in this module.

Choices the paper leaves open (made here): ``scale=None`` means ``1/sqrt(Dk)`` — the paper's
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
from refseq._checks import check_flag
from refseq.nn.basic import linear
from refseq.nn.softmax_attention import _scale
from refseq.papers.aaren.rnn import (
    METHODS,
    _scores,
    aaren_cell_step,
    aaren_naive,
    aaren_recurrent,
    aaren_scan,
    aaren_scores,
    aaren_unstable_rolling,
    attend_one_query,
    lengths_to_mask,
    softmax_state_init,
)
from refseq.scan import (
    SoftmaxState,
    softmax_combine,
    softmax_scan,
)

HEAD_MERGES = ("concat", "mean", "sum")


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
    """Random ``AarenParams``: q ~ N(0, 1), weights ~ N(0, 1/fan_in), zero biases (or None).

    ``rng`` is a Generator or an int seed; ``D``, ``H``, ``Dk``, ``Dv`` are ints >= 1; ``dtype``
    float32 or float64.
    """
    bias = check_flag(bias, "bias")
    _checks.check_choice(head_merge, "head_merge", HEAD_MERGES)
    rng = _checks.check_rng(rng)
    D, H, Dk, Dv = (_checks.check_number(n, name, integer=True, low=1)
                    for n, name in ((D, "D"), (H, "H"), (Dk, "Dk"), (Dv, "Dv")))
    dtype = _checks.check_float_dtype(dtype, "dtype")
    D_merged = H * Dv if head_merge == "concat" else Dv

    def weight(n_in, n_out):
        return (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)

    def zeros(n):
        return np.zeros(n, dtype) if bias else None

    return AarenParams(rng.standard_normal((H, Dk)).astype(dtype), weight(D, H * Dk),
                       zeros(H * Dk), weight(D, H * Dv), zeros(H * Dv), weight(D_merged, D),
                       zeros(D))


_NO_HINT = "the layer needs finite inputs and parameters"


def _param(a, name, shape, form, dtype):
    a = _checks.float_array(a, f"params.{name}", dtype=dtype)
    _checks.check_shape(a, shape, f"params.{name}", form)
    _checks.check_finite(a, f"params.{name}", hint=_NO_HINT)
    return a


def _layer_params(params, D, head_merge, dtype):
    """Check every field of ``params`` against the width ``D`` and ``head_merge``, naming it
    (``params.W_k`` ...), and return ``(params cast to dtype, H, Dk, Dv)``."""
    if not isinstance(params, AarenParams):
        raise TypeError(f"params must be AarenParams, got {type(params).__name__}")
    _checks.check_choice(head_merge, "head_merge", HEAD_MERGES)
    q = _checks.float_array(params.q, "params.q", dtype=dtype)
    if q.ndim != 2:
        raise ValueError(f"params.q must have shape (H, Dk), got {q.shape}")
    H, Dk = q.shape
    W_v = np.asarray(params.W_v)
    if W_v.ndim != 2 or W_v.shape[0] != D or W_v.shape[1] % H:
        raise ValueError(f"params.W_v must have shape (D, H*Dv) with D = {D}, H = {H}, "
                         f"got {W_v.shape}")
    Dv = W_v.shape[1] // H
    D_merged = H * Dv if head_merge == "concat" else Dv
    merged = "H*Dv" if head_merge == "concat" else "Dv"
    shapes = {"q": ((H, Dk), "(H, Dk)"), "W_k": ((D, H * Dk), "(D, H*Dk)"),
              "b_k": ((H * Dk,), "(H*Dk,)"), "W_v": ((D, H * Dv), "(D, H*Dv)"),
              "b_v": ((H * Dv,), "(H*Dv,)"), "W_o": ((D_merged, D), f"({merged}, D)"),
              "b_o": ((D,), "(D,)")}
    checked = {n: None if getattr(params, n) is None and n.startswith("b_")
               else _param(getattr(params, n), n, *shapes[n], dtype) for n in shapes}
    return AarenParams(**checked), H, Dk, Dv


def _finite_projection(a, what):
    """Raise naming the layer's inputs when a projection overflowed (finite x and params)."""
    _checks.check_finite(a, what, hint="x or params are too large: the projection overflowed")


def _merge_heads(o, head_merge):
    if head_merge == "concat":
        return o.reshape(o.shape[:-2] + (o.shape[-2] * o.shape[-1],))  # (..., H*Dv)
    return o.mean(axis=-2) if head_merge == "mean" else o.sum(axis=-2)  # (..., Dv)


def aaren_layer(params, x, mask=None, state=None, scale=None, head_merge="concat", *,
                backend="numpy"):
    """Multi-head Aaren layer over a whole sequence (Sec. 3.3).

    .. math:: k_i = x_i W_k + b_k, \\; v_i = x_i W_v + b_v, \\;
              o^{(h)}_{1..T} = \\text{Aaren}(q^{(h)}, k^{(h)}_{1..T}, v^{(h)}_{1..T}), \\;
              y_t = \\text{merge}_h(o^{(h)}_t) W_o + b_o

    The query of head h is the parameter ``q[h]``, not a projection of the current token (with
    one, the layer would be causal self-attention at O(t) per step).

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
    _checks.check_finite(x, "x", hint=_NO_HINT)
    B, T, D = x.shape
    params, H, Dk, Dv = _layer_params(params, D, head_merge, x.dtype)
    scale = _scale(scale, Dk, x.dtype)
    K = linear(x, params.W_k, params.b_k).reshape(B, T, H, Dk)  # (B, T, H, Dk)
    V = linear(x, params.W_v, params.b_v).reshape(B, T, H, Dv)  # (B, T, H, Dv)
    s = _scores(params.q, K, scale)  # (B, T, H)
    _finite_projection(s, "the scores scale * <params.q, x W_k + b_k>")
    _finite_projection(V, "the values x W_v + b_v")
    o, state = softmax_scan(s, V, mask, state, backend=backend)  # (B, T, H, Dv)
    y = linear(_merge_heads(o, head_merge), params.W_o, params.b_o)  # (B, T, D)
    return y, state


def aaren_layer_step(params, x_t, state=None, valid_t=None, scale=None, head_merge="concat"):
    """:func:`aaren_layer` for one new token ``x_t`` (B, D) in O(1) time and memory (Sec. 3.1).

    Returns ``(y_t (B, D), state)``; ``state=None`` starts from :func:`softmax_state_init`.
    Token by token it equals :func:`aaren_layer` on the whole sequence.
    """
    x_t = _checks.float_array(x_t, "x_t")
    if x_t.ndim != 2:
        raise ValueError(f"x_t must have shape (B, D), got {x_t.shape}")
    _checks.check_finite(x_t, "x_t", hint=_NO_HINT)
    B, D = x_t.shape
    params, H, Dk, Dv = _layer_params(params, D, head_merge, x_t.dtype)
    scale = _scale(scale, Dk, x_t.dtype)
    if state is None:
        state = softmax_state_init(B, H, Dv, x_t.dtype)
    k_t = linear(x_t, params.W_k, params.b_k).reshape(B, H, Dk)  # (B, H, Dk)
    v_t = linear(x_t, params.W_v, params.b_v).reshape(B, H, Dv)  # (B, H, Dv)
    s_t = scale * np.einsum("hd,bhd->bh", params.q, k_t)  # (B, H)
    _finite_projection(s_t, "the scores scale * <params.q, x_t W_k + b_k>")
    _finite_projection(v_t, "the values x_t W_v + b_v")
    state, o_t = aaren_cell_step(state, s_t, v_t, valid_t)  # o_t: (B, H, Dv)
    y_t = linear(_merge_heads(o_t, head_merge), params.W_o, params.b_o)  # (B, D)
    return y_t, state


__all__ = [
    "HEAD_MERGES", "METHODS", "AarenParams", "SoftmaxState", "aaren_cell_step", "aaren_layer",
    "aaren_layer_step", "aaren_naive", "aaren_recurrent", "aaren_scan", "aaren_scores",
    "aaren_unstable_rolling", "attend_one_query", "init_aaren_params", "lengths_to_mask",
    "softmax_combine", "softmax_state_init",
]
