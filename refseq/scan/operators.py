"""The associative operators of the scans (re-exported by refseq.scan via refseq.scan.assoc).

Symbols (docs/hot-paths/scan.md): B batch, T time, H heads, D value width.

* ``AFFINE`` — elements ``(a, b)`` stand for the map ``h -> a * h + b``; its inclusive scan is the
  linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (LSSL, Mamba-2, linear attention, JRT, Titans).
* ``SOFTMAX_TRIPLE`` — elements ``(m, u, w)`` are (running max, normaliser, numerator) of a
  softmax over a set of tokens; its inclusive scan is prefix softmax attention of one query
  (Aaren, arXiv 2405.13956, Sec. 3.1-3.2).

``combine(left, right)`` takes the accumulated prefix (the carry) on the left; the right operand
fixes the shape, and each field of ``left`` must broadcast to the same field of ``right`` (a carry
without the scan axis against a whole block of elements).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from refseq import _checks

Elem = tuple  # a tuple of arrays that share the scan axis


def _elem(x, name: str, fields: str) -> tuple:
    """Return the operator element ``x`` as a tuple of its ``fields`` (e.g. ``"(a, b)"``)."""
    n = fields.count(",") + 1
    if not isinstance(x, (tuple, list)) or len(x) != n:
        got = f"a tuple of {len(x)}" if isinstance(x, (tuple, list)) else type(x).__name__
        raise TypeError(f"{name} must be a tuple {fields} of arrays, got {got}")
    return tuple(x)


def _check_pair(left, right, fields: str) -> tuple:
    """Check the operands of ``combine``: each field of ``left`` broadcasts to that of ``right``."""
    left, right = _elem(left, "left", fields), _elem(right, "right", fields)
    for i, (x, y) in enumerate(zip(left, right)):
        sx, sy = np.shape(x), np.shape(y)
        try:
            fits = np.broadcast_shapes(sx, sy) == sy
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"left[{i}] of shape {sx} must broadcast to right[{i}] of shape {sy} "
                             f"(right holds the elements, left the carry)")
    return left, right


class AssociativeOp(NamedTuple):
    """An associative operator given as pure functions on tuples of arrays.

    ``combine(left, right)`` must be associative and must broadcast like NumPy, so that a carry
    without the scan axis can be combined with a whole block of elements. ``identity(like)``
    returns the identity element shaped like the single element ``like``.
    """

    name: str
    combine: Callable[[Elem, Elem], Elem]
    identity: Callable[[Elem], Elem]


# ---------------------------------------------------------------------------------------------
# The affine operator: (a, b) means h -> a * h + b; "left then right" composes the two maps.


def affine_combine(left: Elem, right: Elem) -> Elem:
    """``(a1, b1) (+) (a2, b2) = (a1 * a2, a2 * b1 + b2)``: apply ``left`` first, then ``right``."""
    (a1, b1), (a2, b2) = _check_pair(left, right, "(a, b)")
    return a1 * a2, a2 * b1 + b2


def affine_identity(like: Elem) -> Elem:
    """The identity ``(1, 0)`` shaped like the element ``like = (a, b)``."""
    a, b = _elem(like, "like", "(a, b)")
    return np.ones_like(a), np.zeros_like(b)


AFFINE = AssociativeOp("affine", affine_combine, affine_identity)


# ---------------------------------------------------------------------------------------------
# The softmax triple of Aaren (arXiv 2405.13956, Sec. 3.2: the associative operator on triples).


class SoftmaxState(NamedTuple):
    """Carried state of the softmax scan: ``m`` (B, H) running max, ``u`` (B, H) normaliser
    ``sum exp(s_i - m)``, ``w`` (B, H, D) numerator ``sum exp(s_i - m) v_i``."""

    m: np.ndarray
    u: np.ndarray
    w: np.ndarray


def softmax_combine(left: Elem, right: Elem) -> SoftmaxState:
    """``(m_A,u_A,w_A) (+) (m_B,u_B,w_B) = (m, u_A e^{m_A-m} + u_B e^{m_B-m}, w_A e^{m_A-m} + ...)``
    with ``m = max(m_A, m_B)``.

    When both sides are the identity ``m = -inf`` and ``exp(-inf - (-inf))`` would be NaN; the
    exponent's reference point is then 0 instead, which returns the identity exactly.
    """
    (m_A, u_A, w_A), (m_B, u_B, w_B) = _check_pair(left, right, "(m, u, w)")
    m = np.maximum(m_A, m_B)
    ref = np.where(np.isneginf(m), 0.0, m).astype(m.dtype, copy=False)  # guard -inf - -inf
    alpha = np.exp(m_A - ref)
    beta = np.exp(m_B - ref)
    u = u_A * alpha + u_B * beta
    w = w_A * alpha[..., None] + w_B * beta[..., None]
    return SoftmaxState(m, u, w)


def softmax_identity(shape, D: int, dtype) -> SoftmaxState:
    """The identity ``(-inf, 0, 0)``: ``m``, ``u`` of ``shape`` and ``w`` of ``shape + (D,)``.

    ``shape`` is a tuple of non-negative ints (or one int), ``D`` an int >= 1 and ``dtype``
    float32 or float64.
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if not isinstance(shape, tuple):
        raise TypeError(f"shape must be a tuple of ints such as (B, H), got {shape!r}")
    shape = tuple(_checks.check_number(n, f"shape[{i}]", integer=True, low=0)
                  for i, n in enumerate(shape))
    D = _checks.check_number(D, "D", integer=True, low=1)
    dtype = _checks.check_float_dtype(dtype, "dtype")
    return SoftmaxState(
        np.full(shape, -np.inf, dtype), np.zeros(shape, dtype), np.zeros(shape + (D,), dtype)
    )


def softmax_leaf(s, v, mask=None) -> SoftmaxState:
    """Leaf of token i: ``(s_i, 1, v_i)``; masked tokens (``mask`` False) become the identity.

    ``s`` (...) and ``v`` (..., D) are float32/float64 (each keeps its dtype); ``mask`` is a
    boolean array of ``s``'s shape, or of a prefix of it (e.g. (B, T) for ``s`` (B, T, H)).
    """
    s = _checks.float_array(s, "s")
    v = _checks.float_array(v, "v", ndim_min=1)
    if v.shape[:-1] != s.shape:
        raise ValueError(f"v must have shape s.shape + (D,) = {s.shape} + (D,), got {v.shape}")
    m, u, w = s.copy(), np.ones_like(s), v.copy()
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = valid), got {mask.dtype}")
        if mask.shape != s.shape[: mask.ndim]:
            raise ValueError(f"mask must have the shape of s or of a prefix of s.shape = "
                             f"{s.shape}, got {mask.shape}")
        invalid = ~mask.reshape(mask.shape + (1,) * (s.ndim - mask.ndim))
        invalid = np.broadcast_to(invalid, s.shape)
        m[invalid], u[invalid], w[invalid] = -np.inf, 0.0, 0.0
    return SoftmaxState(m, u, w)


SOFTMAX_TRIPLE = AssociativeOp(
    "softmax_triple",
    softmax_combine,
    lambda like: softmax_identity(like[0].shape, like[2].shape[-1], like[0].dtype),
)
