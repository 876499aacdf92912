"""The generic prefix scans over associative operators (re-exported by refseq.scan).

Symbols (docs/hot-paths/scan.md): B batch, T time, H heads, D value width, ``*S`` any trailing
state shape. The scan axis is time, axis 1 of every public array.

Three generic scans accept any ``AssociativeOp`` over tuples of arrays ("pytrees"):
``scan_sequential`` (the definition), ``scan_hillis_steele`` (log T rounds, T log T work) and
``scan_blelloch`` (work-efficient up-/down-sweep), plus ``scan_chunked``, the two-level shape the
compiled kernels use. None of them assumes commutativity: the accumulated prefix is always the
*left* operand. The operators ``AFFINE`` and ``SOFTMAX_TRIPLE`` live in
:mod:`refseq.scan.operators` and are re-exported here.

The public hot-path functions built on these operators live in :mod:`refseq.scan`.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.scan.operators import (  # noqa: F401 (re-exported: refseq.scan imports them from here)
    AFFINE,
    SOFTMAX_TRIPLE,
    AssociativeOp,
    Elem,
    SoftmaxState,
    affine_combine,
    affine_identity,
    softmax_combine,
    softmax_identity,
    softmax_leaf,
)

# ---------------------------------------------------------------------------------------------
# Generic scans. Internally the scan axis is moved to the front; element t is tuple(x[t]).


def _check_op(op) -> None:
    if not isinstance(op, AssociativeOp):
        raise TypeError(f"op must be an AssociativeOp (e.g. AFFINE or SOFTMAX_TRIPLE), got "
                        f"{type(op).__name__}")


def _to_front(elems, axis):
    xs = _checks.float_arrays(elems, "elems")  # int or bool elements would truncate the scan
    if any(x.ndim == 0 for x in xs):
        raise ValueError("elems must have a scan axis; got a 0-d array")
    for x in xs:  # a negative axis counts from the end of each array, as in np.moveaxis
        _checks.check_axis(axis, x.ndim)
    xs = tuple(np.moveaxis(x, axis, 0) for x in xs)
    T = xs[0].shape[0]
    if any(x.shape[0] != T for x in xs):
        lens = [x.shape[0] for x in xs]
        raise ValueError(f"elems must share the length of the scan axis {axis}, got {lens}")
    return xs, T


def _initial(initial, xs):
    """Check the carry: one element per field, each shaped like one element (broadcastable)."""
    if initial is None:
        return None
    init = _checks.float_arrays(initial, "initial")
    if len(init) != len(xs):
        raise ValueError(f"initial must have one array per field of elems ({len(xs)}), "
                         f"got {len(init)}")
    for i, (c, x) in enumerate(zip(init, xs)):
        try:
            fits = np.broadcast_shapes(c.shape, x.shape[1:]) == x.shape[1:]
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"initial[{i}] of shape {c.shape} does not broadcast to one element "
                             f"of elems[{i}], shape {x.shape[1:]}")
    return type(initial)(*init) if hasattr(type(initial), "_fields") else init


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
        _check_op(op)
        xs, T = _to_front(elems, axis)
        initial = _initial(initial, xs)
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
    if isinstance(chunk, (bool, np.bool_)) or not isinstance(chunk, (int, np.integer)):
        raise TypeError(f"chunk must be a positive integer, got {chunk!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    _check_op(op)
    xs, T = _to_front(elems, axis)
    initial = _initial(initial, xs)
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
