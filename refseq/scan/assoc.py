"""Associative operators and the generic prefix scans over them (re-exported by refseq.scan).

Symbols (docs/hot-paths/scan.md): B batch, T time, H heads, D value width, ``*S`` any trailing
state shape. The scan axis is time, axis 1 of every public array.

Two operators live here:

* ``AFFINE`` — elements ``(a, b)`` stand for the map ``h -> a * h + b``; its inclusive scan is the
  linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (LSSL, Mamba-2, linear attention, JRT, Titans).
* ``SOFTMAX_TRIPLE`` — elements ``(m, u, w)`` are (running max, normaliser, numerator) of a
  softmax over a set of tokens; its inclusive scan is prefix softmax attention of one query
  (Aaren, arXiv 2405.13956, Sec. 3.1-3.2).

and three generic scans that accept any ``AssociativeOp`` over tuples of arrays ("pytrees"):
``scan_sequential`` (the definition), ``scan_hillis_steele`` (log T rounds, T log T work) and
``scan_blelloch`` (work-efficient up-/down-sweep), plus ``scan_chunked``, the two-level shape the
compiled kernels use. None of them assumes commutativity: the accumulated prefix is always the
*left* operand.

The public hot-path functions built on these operators live in :mod:`refseq.scan`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from refseq._checks import check_flag

Elem = tuple  # a tuple of arrays that share the scan axis


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
    a1, b1 = left
    a2, b2 = right
    return a1 * a2, a2 * b1 + b2


def affine_identity(like: Elem) -> Elem:
    a, b = like
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
    m_A, u_A, w_A = left
    m_B, u_B, w_B = right
    m = np.maximum(m_A, m_B)
    ref = np.where(np.isneginf(m), 0.0, m).astype(m.dtype, copy=False)  # guard -inf - -inf
    alpha = np.exp(m_A - ref)
    beta = np.exp(m_B - ref)
    u = u_A * alpha + u_B * beta
    w = w_A * alpha[..., None] + w_B * beta[..., None]
    return SoftmaxState(m, u, w)


def softmax_identity(shape, D: int, dtype) -> SoftmaxState:
    """The identity ``(-inf, 0, 0)``: ``m``, ``u`` of ``shape`` and ``w`` of ``shape + (D,)``."""
    shape = tuple(np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
    return SoftmaxState(
        np.full(shape, -np.inf, dtype), np.zeros(shape, dtype), np.zeros(shape + (D,), dtype)
    )


def softmax_leaf(s: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None) -> SoftmaxState:
    """Leaf of token i: ``(s_i, 1, v_i)``; masked tokens (``mask`` False) become the identity."""
    m, u, w = s.copy(), np.ones_like(s), v.copy()
    if mask is not None:
        invalid = ~np.broadcast_to(mask[..., None] if mask.ndim < s.ndim else mask, s.shape)
        m[invalid], u[invalid], w[invalid] = -np.inf, 0.0, 0.0
    return SoftmaxState(m, u, w)


SOFTMAX_TRIPLE = AssociativeOp(
    "softmax_triple",
    softmax_combine,
    lambda like: softmax_identity(like[0].shape, like[2].shape[-1], like[0].dtype),
)


# ---------------------------------------------------------------------------------------------
# Generic scans. Internally the scan axis is moved to the front; element t is tuple(x[t]).


def _to_front(elems, axis):
    xs = tuple(np.moveaxis(np.asarray(e), axis, 0) for e in elems)
    T = xs[0].shape[0]
    if any(x.shape[0] != T for x in xs):
        raise ValueError(f"elems must share the length of the scan axis {axis}")
    return xs, T


def _from_front(xs, axis, like_type):
    out = tuple(np.moveaxis(x, 0, axis) for x in xs)
    return like_type(*out) if hasattr(like_type, "_fields") else out


def _store(dst, t, elem):
    for d, e in zip(dst, elem):
        d[t] = e


def _exclusive_from_inclusive(op, incl, first):
    """Shift an inclusive scan right by one, putting ``first`` (carry or identity) at t = 0."""
    return tuple(
        np.concatenate([np.asarray(f, x.dtype)[None], x[:-1]]) for f, x in zip(first, incl)
    )


def _oriented(scan_forward):
    """Wrap a forward scan with the ``axis``/``reverse``/``exclusive``/``initial`` contract.

    ``reverse`` is ``flip . scan . flip``: elements are processed from the end, and the carry
    (the part already processed) stays on the left of the combine.
    """

    def scan(op: AssociativeOp, elems, axis: int = 1, reverse=False, exclusive=False, initial=None):
        reverse, exclusive = check_flag(reverse, "reverse"), check_flag(exclusive, "exclusive")
        xs, T = _to_front(elems, axis)
        if T == 0:
            return _from_front(tuple(x.copy() for x in xs), axis, type(elems))
        if reverse:
            xs = tuple(x[::-1] for x in xs)
        incl = scan_forward(op, xs, T, initial)
        if exclusive:
            first = initial if initial is not None else op.identity(tuple(x[0] for x in xs))
            incl = _exclusive_from_inclusive(op, incl, first)
        if reverse:
            incl = tuple(x[::-1] for x in incl)
        return _from_front(tuple(np.ascontiguousarray(x) for x in incl), axis, type(elems))

    scan.__name__ = scan_forward.__name__.lstrip("_")
    scan.__doc__ = scan_forward.__doc__
    return scan


def _broadcast_elem(elem, like):
    return tuple(np.broadcast_to(e, x.shape).astype(x.dtype, copy=True) for e, x in zip(elem, like))


@_oriented
def _scan_sequential(op, xs, T, initial):
    """Inclusive scan by a left fold: ``y_t = initial (+) x_0 (+) ... (+) x_t``.

    ``scan_sequential(op, elems, axis=1, reverse=False, exclusive=False, initial=None)``: ``elems``
    is a tuple of arrays sharing ``axis``; ``initial`` (one element, without the scan axis) is
    combined on the left of the first element. O(T) work and depth; the definition.
    """
    out = tuple(np.empty_like(x) for x in xs)
    acc = initial
    for t in range(T):
        x_t = tuple(x[t] for x in xs)
        acc = x_t if acc is None else op.combine(acc, x_t)
        _store(out, t, acc)
    return out


@_oriented
def _scan_hillis_steele(op, xs, T, initial):
    """Inclusive scan in ceil(log2 T) rounds (Hillis & Steele 1986).

    Round r combines every element with the one ``2^r`` places to its left (left operand first),
    O(T log T) work. The carry ``initial`` is combined on the left of every element at the end.
    """
    X = tuple(x.copy() for x in xs)
    offset = 1
    while offset < T:
        left = tuple(x[:-offset] for x in X)
        right = tuple(x[offset:] for x in X)
        new_tail = op.combine(left, right)
        X = tuple(np.concatenate([x[:offset], n]) for x, n in zip(X, new_tail))
        offset *= 2
    if initial is not None:
        X = op.combine(initial, X)
        X = _broadcast_elem(X, xs)
    return X


@_oriented
def _scan_blelloch(op, xs, T, initial):
    """Work-efficient exclusive up-sweep/down-sweep scan (Blelloch 1990).

    Pads T to the next power of two P with identities at the *end* (end padding leaves the
    prefixes of real positions unchanged), up-sweeps partial sums into a tree, seeds the root with
    the carry (or the identity), and down-sweeps with the accumulated prefix on the left. The
    inclusive result is ``exclusive_t (+) x_t``. O(T) work, 2 log2 P rounds.
    """
    P = 1 << (T - 1).bit_length()
    ident = op.identity(tuple(x[0] for x in xs))
    X = tuple(
        np.concatenate([x, np.broadcast_to(np.asarray(i, x.dtype), (P - T,) + x.shape[1:])])
        for x, i in zip(xs, ident)
    )
    levels = P.bit_length() - 1
    for d in range(levels):  # up-sweep: X[i] = X[i - 2^d] (+) X[i]
        idx = np.arange((1 << (d + 1)) - 1, P, 1 << (d + 1))
        new = op.combine(tuple(x[idx - (1 << d)] for x in X), tuple(x[idx] for x in X))
        for x, n in zip(X, new):
            x[idx] = n
    root = initial if initial is not None else ident
    for x, r in zip(X, root):
        x[P - 1] = r
    for d in reversed(range(levels)):  # down-sweep: prefix stays on the left
        idx = np.arange((1 << (d + 1)) - 1, P, 1 << (d + 1))
        tmp = tuple(x[idx - (1 << d)].copy() for x in X)
        cur = tuple(x[idx].copy() for x in X)
        for x, c in zip(X, cur):
            x[idx - (1 << d)] = c
        new = op.combine(cur, tmp)
        for x, n in zip(X, new):
            x[idx] = n
    exclusive = tuple(x[:T] for x in X)
    return _broadcast_elem(op.combine(exclusive, xs), xs)


scan_sequential = _scan_sequential
scan_hillis_steele = _scan_hillis_steele
scan_blelloch = _scan_blelloch


def scan_chunked(op, elems, axis=1, reverse=False, exclusive=False, initial=None, *, chunk=64):
    """Two-level scan, the decomposition the compiled kernels use.

    1. local inclusive scan inside each chunk of ``chunk`` elements (the last may be shorter);
    2. exclusive scan of the chunk totals, seeded with ``initial``;
    3. each chunk's carry is combined on the left of its local prefixes.
    """
    reverse, exclusive = check_flag(reverse, "reverse"), check_flag(exclusive, "exclusive")
    if not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    xs, T = _to_front(elems, axis)
    if T == 0 or reverse:
        flip = (lambda e: tuple(x[::-1] for x in e)) if reverse else (lambda e: e)
        if T == 0:
            return _from_front(tuple(x.copy() for x in xs), axis, type(elems))
        out = scan_chunked(op, flip(xs), 0, False, exclusive, initial, chunk=chunk)
        return _from_front(tuple(np.ascontiguousarray(x) for x in flip(out)), axis, type(elems))
    starts = range(0, T, chunk)
    local = [scan_sequential(op, tuple(x[s : s + chunk] for x in xs), axis=0) for s in starts]
    totals = tuple(np.stack([loc[i][-1] for loc in local]) for i in range(len(xs)))
    carries = scan_sequential(op, totals, axis=0, exclusive=True, initial=initial)
    pieces = []
    for c, loc in enumerate(local):
        carry = tuple(x[c] for x in carries)
        pieces.append(loc if (c == 0 and initial is None) else op.combine(carry, loc))
    incl = tuple(np.concatenate([p[i] for p in pieces]).astype(xs[i].dtype) for i in range(len(xs)))
    if exclusive:
        first = initial if initial is not None else op.identity(tuple(x[0] for x in xs))
        incl = _exclusive_from_inclusive(op, incl, first)
    return _from_front(incl, axis, type(elems))


SCANS = {
    "sequential": scan_sequential,
    "hillis_steele": scan_hillis_steele,
    "blelloch": scan_blelloch,
    "chunked": scan_chunked,
}
