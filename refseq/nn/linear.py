"""Affine layer with its vector-Jacobian product: ``y = x W + b``.

Symbols: ``D_in``, ``D_out`` widths; ``(...)`` any leading shape (batch, time, heads). The
row-vector convention of llm.c and of ``x @ W`` (``torch.nn.functional.linear`` stores ``W.T``).

Every layer of :mod:`refseq.nn` follows one contract (docs/nn.md):
``<name>_forward(x, *params, **options) -> (y, cache)`` and
``<name>_backward(dy, cache) -> (dx, dparam_1, ...)`` in the order of the forward's array
arguments, ``None`` for a parameter that was ``None``. Parameters are cast to ``x``'s dtype, so
outputs and gradients have the dtype of ``x`` (float32 or float64).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks


class LinearCache(NamedTuple):
    x: np.ndarray  # (..., D_in)
    W: np.ndarray  # (D_in, D_out)
    has_bias: bool


def linear_forward(x, W, b=None):
    """Affine map on the last axis: ``y = x W + b``.

    Parameters
    ----------
    x : (..., D_in) float32 or float64.
    W : (D_in, D_out) — weight, right-multiplied (row-vector convention).
    b : (D_out,), optional — bias.

    Returns
    -------
    y : (..., D_out), ``x``'s dtype.
    cache : LinearCache — ``(x, W, has_bias)`` for :func:`linear_backward`.

    Raises
    ------
    TypeError if an array is not float32/float64; ValueError naming ``W`` or ``b`` on a shape
    mismatch.
    """
    return _linear_forward(x, W, b)


def _linear_forward(x, W, b, names=("x", "W", "b")):
    """:func:`linear_forward` with the arguments' names for messages (callers that take the
    weights under other names: ``W_1``, ``params.W_in``, ...)."""
    x_name, W_name, b_name = names
    x = _checks.float_array(x, x_name, ndim_min=1)
    W = _checks.float_array(W, W_name, dtype=x.dtype)
    if W.ndim != 2 or W.shape[0] != x.shape[-1]:
        raise ValueError(f"{W_name} must have shape (D_in, D_out) with D_in = {x.shape[-1]} "
                         f"(the last axis of {x_name}), got {W.shape}")
    y = x @ W  # (..., D_out)
    if b is not None:
        b = _checks.float_array(b, b_name, dtype=x.dtype)
        _checks.check_shape(b, W.shape[1:], b_name, "(D_out,)")
        y = y + b
    return y, LinearCache(x, W, b is not None)


def linear_backward(dy, cache: LinearCache):
    """Vector-Jacobian product of :func:`linear_forward`.

    .. math:: dx = dy\\, W^\\top, \\qquad dW = \\sum_{(...)} x^\\top dy, \\qquad
              db = \\sum_{(...)} dy

    where the sums run over every leading position (the weight is shared by all of them).

    Parameters
    ----------
    dy : (..., D_out) — cotangent of ``y``.
    cache : from :func:`linear_forward`.

    Returns
    -------
    dx : (..., D_in); dW : (D_in, D_out); db : (D_out,) or None when the forward had no bias.
    """
    return _linear_backward(dy, cache)


def _linear_backward(dy, cache: LinearCache, dy_name: str = "dy"):
    """:func:`linear_backward` with the cotangent's name for messages."""
    x, W, has_bias = cache
    dy = _checks.float_array(dy, dy_name, dtype=x.dtype)
    _checks.check_shape(dy, x.shape[:-1] + W.shape[1:], dy_name, "(..., D_out)")
    dx = dy @ W.T  # (..., D_in)
    x2 = x.reshape(-1, W.shape[0])  # (N, D_in) with N = prod(...)
    dy2 = dy.reshape(-1, W.shape[1])  # (N, D_out)
    dW = x2.T @ dy2  # (D_in, D_out)
    db = dy2.sum(axis=0) if has_bias else None  # (D_out,)
    return dx, dW, db
