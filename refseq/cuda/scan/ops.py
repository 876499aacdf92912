"""The scan operators as device functions: what :mod:`refseq.cuda.scan.kernels` is generic over.

A :class:`DeviceOp` is the GPU form of an associative operator of :mod:`refseq.scan.assoc`
together with the arrays it reads and writes. An *element* is a tuple of ``width`` scalars of
the kernel's dtype; a *row* is one independent scan (one GPU thread in the sequential kernel,
one block per tile in the tiled ones). The kernels see the operator only through these device
functions and two tuples passed as kernel arguments: ``ins``, everything read (inputs, initial
state, flags), and ``outs``, everything written.

Two operators, built per dtype (literals in that dtype, so one compiled specialisation each):

* :func:`affine` — ``AFFINE``, for ``linear_scan``: the element ``(A, B)`` is the map
  ``h -> A h + B``; ``(A1, B1) (+) (A2, B2) = (A1 A2, A2 B1 + B2)`` applies the left map first.
  The carried state is ``(1, h)``; the sequential kernel never stores ``A``, so on a GPU the
  compiler drops its products.
* :func:`softmax_triple` — ``SOFTMAX_TRIPLE``, for ``softmax_scan`` (Aaren, "Attention as an
  RNN", arXiv 2405.13956, Sec. 3.2; docs/papers/aaren.md): the element ``(m, u, w)`` for one
  value channel; a token is the leaf ``(s_t, 1, v_t)``, or the identity ``(-inf, 0, 0)`` where
  masked; the output is ``o = w / u`` (0 while ``u = 0``).

The expressions are the ones the NumPy mirrors (:mod:`refseq.cuda.scan.mirror`) evaluate, in the
same order, so the simulator reproduces the mirrors of the linear scan bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from refseq.cuda.scan.kernels import bind_cuda


@dataclass(frozen=True)
class DeviceOp:
    """An associative operator's device functions (all ``cuda.jit(device=True)``).

    Attributes
    ----------
    name : str — with ``dtype``, the key of the kernels built for it (unique per operator).
    dtype : np.dtype — the dtype of every scalar of an element (elements are homogeneous tuples).
    width : int — scalars per element (the shared-memory and carry arrays are ``(width, n)``).
    identity : () -> element — the neutral element: seeds each thread's fold, and is thread 0's
        exclusive prefix.
    combine : (x, y) -> element — ``x (+) y``; the accumulated prefix is always ``x``.
    locate : (ins, row) -> pos — a tuple of indices, computed once per thread.
    initial : (ins, pos) -> element — the row's carry-in (the initial state).
    leaf : (ins, pos, k) -> element — the element of scan step ``k`` (``0 <= k < T``).
    store : (ins, outs, pos, k, e) -> None — write the output of step ``k`` from prefix ``e``.
    store_final : (outs, pos, e) -> None — write the final state (may do nothing).
    """

    name: str
    dtype: np.dtype
    width: int
    identity: Any
    combine: Any
    locate: Any
    initial: Any
    leaf: Any
    store: Any
    store_final: Any


_OPS: dict = {}


def device_op(name: str, dtype) -> DeviceOp:
    """The operator ``name`` ("affine" or "softmax_triple") for ``dtype``, built once."""
    dtype = np.dtype(dtype)
    key = (name, dtype.str)
    if key not in _OPS:
        _OPS[key] = {"affine": affine, "softmax_triple": softmax_triple}[name](dtype)
    return _OPS[key]


def affine(dtype) -> DeviceOp:
    """``AFFINE`` over ``ins = (a, a_bstep, a_tstep, cmap, b, h0, reverse)``, ``outs = (h,)``.

    ``a`` is (Ba, Ta, Ca) with its broadcast axes kept at size 1 (``a_bstep``, ``a_tstep`` in
    {0, 1}) and ``cmap`` (C,) maps a channel of ``b`` (B, T, C) to one of ``a``; ``h0`` is (B, C)
    and ``h`` (B, T, C). A row is ``n C + c``; scan step ``k`` reads time ``T - 1 - k`` if
    ``reverse`` (nothing is flipped in memory).
    """
    device = bind_cuda().jit(device=True)
    ONE, ZERO = dtype.type(1), dtype.type(0)

    @device
    def identity():
        """The identity map h -> 1 * h + 0."""
        return ONE, ZERO

    @device
    def combine(x, y):
        """(A1, B1) (+) (A2, B2) = (A1 A2, A2 B1 + B2): the map on the left is applied first."""
        return x[0] * y[0], y[0] * x[1] + y[1]

    @device
    def locate(ins, row):
        """Row -> (n, c, the batch index of a, the channel of a)."""
        C = ins[4].shape[2]
        n = row // C
        c = row - n * C
        return n, c, n * ins[1], ins[3][c]

    @device
    def initial(ins, pos):
        """The carried state as an element: (1, h0[n, c])."""
        return ONE, ins[5][pos[0], pos[1]]

    @device
    def leaf(ins, pos, k):
        """The map of step k: (a_t, b_t) at time t = k, or T - 1 - k if reverse."""
        t = ins[4].shape[1] - 1 - k if ins[6] else k
        return ins[0][pos[2], t * ins[2], pos[3]], ins[4][pos[0], t, pos[1]]

    @device
    def store(ins, outs, pos, k, e):
        """h_t is the offset of the prefix map (the carry entered as the map h -> 1 h + h0)."""
        t = ins[4].shape[1] - 1 - k if ins[6] else k
        outs[0][pos[0], t, pos[1]] = e[1]

    @device
    def store_final(outs, pos, e):
        """Nothing: the final state is h at the last step, already stored."""
        return

    return DeviceOp("affine", dtype, 2, identity, combine, locate, initial, leaf, store,
                    store_final)


def softmax_triple(dtype) -> DeviceOp:
    """``SOFTMAX_TRIPLE`` over ``ins = (s, v, mask, m0, u0, w0)``, ``outs = (o, m, u, w)``.

    ``s`` (B, T, H), ``v`` and ``o`` (B, T, H, D), ``mask`` (B, T) uint8, ``m0``/``u0`` and the
    final ``m``/``u`` (B, H), ``w0`` and the final ``w`` (B, H, D). A row is ``(n H + h) D + d``:
    each of a head's D rows recomputes its ``m`` and ``u`` from the same operands in the same
    order, so they agree bitwise, and the row with ``d = 0`` writes them.
    """
    device = bind_cuda().jit(device=True)
    ONE, ZERO, NEG_INF = dtype.type(1), dtype.type(0), dtype.type(-np.inf)

    @device
    def identity():
        """The empty prefix (-inf, 0, 0)."""
        return NEG_INF, ZERO, ZERO

    @device
    def combine(x, y):
        """(m_A, u_A, w_A) (+) (m_B, u_B, w_B), the stable form of arXiv 2405.13956 Sec. 3.2.

        m = max(m_A, m_B); u = u_A e^{m_A - m} + u_B e^{m_B - m}; w likewise. When m = -inf
        (both sides empty) the exponents are taken relative to 0: the result is the identity,
        never NaN.
        """
        m = max(x[0], y[0])
        ref = ZERO if m == NEG_INF else m
        alpha = math.exp(x[0] - ref)
        beta = math.exp(y[0] - ref)
        return m, x[1] * alpha + y[1] * beta, x[2] * alpha + y[2] * beta

    @device
    def locate(ins, row):
        """Row (n H + h) D + d -> (n, h, d)."""
        H, D = ins[1].shape[2], ins[1].shape[3]
        nh = row // D
        n = nh // H
        return n, nh - n * H, row - nh * D

    @device
    def initial(ins, pos):
        """The carried state (m0, u0, w0[d]) of the row's head and channel."""
        n, hh, d = pos
        return ins[3][n, hh], ins[4][n, hh], ins[5][n, hh, d]

    @device
    def leaf(ins, pos, k):
        """Token k's leaf (s_k, 1, v_k[d]), or the identity where it is masked."""
        n, hh, d = pos
        if ins[2][n, k] != 0:
            return ins[0][n, k, hh], ONE, ins[1][n, k, hh, d]
        return NEG_INF, ZERO, ZERO

    @device
    def store(ins, outs, pos, k, e):
        """o = w / u, and 0 while the prefix is empty (u = 0)."""
        n, hh, d = pos
        outs[0][n, k, hh, d] = e[2] / e[1] if e[1] > ZERO else ZERO

    @device
    def store_final(outs, pos, e):
        """The final state: w for every row, m and u from the row with d = 0."""
        n, hh, d = pos
        outs[3][n, hh, d] = e[2]
        if d == 0:
            outs[1][n, hh] = e[0]
            outs[2][n, hh] = e[1]

    return DeviceOp("softmax_triple", dtype, 3, identity, combine, locate, initial, leaf, store,
                    store_final)
