"""Softmax, log-softmax and cross-entropy, with their vector-Jacobian products.

All three are computed from the max-shifted logits (``x - max x``), so large logits never
overflow. Symbols: ``V`` classes (the reduced axis), ``(...)`` leading positions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.nn.embedding import int_array

REDUCTIONS = ("mean", "sum", "none")


class SoftmaxCache(NamedTuple):
    y: np.ndarray  # softmax(x) or log_softmax(x)
    axis: int


class CrossEntropyCache(NamedTuple):
    p: np.ndarray  # (..., V) softmax of the logits
    targets: np.ndarray  # (...) int
    valid: np.ndarray  # (...) bool, targets != ignore_index
    label_smoothing: float
    reduction: str


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _check_x(x, axis) -> tuple[np.ndarray, int]:
    x = _checks.float_array(x, "x", ndim_min=1)
    axis = _checks.check_axis(axis, x.ndim)
    if x.shape[axis] == 0:
        raise ValueError(f"x must have at least one class along axis {axis} (a softmax over no "
                         f"classes is undefined), got shape {x.shape}")
    return x, axis


def _dy(dy, y: np.ndarray) -> np.ndarray:
    dy = _checks.float_array(dy, "dy", dtype=y.dtype)
    _checks.check_shape(dy, y.shape, "dy", "x.shape")
    return dy


def softmax_forward(x, axis: int = -1):
    """``y = exp(x - lse(x))`` along ``axis``. Returns ``(y, cache)``, ``y`` in ``x``'s dtype."""
    x, axis = _check_x(x, axis)
    y = np.exp(_log_softmax(x, axis))
    return y, SoftmaxCache(y, axis)


def softmax_backward(dy, cache: SoftmaxCache):
    """VJP of :func:`softmax_forward`; the Jacobian is ``diag(y) - y y^T``, so

    .. math:: dx = y \\odot \\left(dy - \\textstyle\\sum_j dy_j\\, y_j\\right)
    """
    y, axis = cache
    dy = _dy(dy, y)
    return (y * (dy - (dy * y).sum(axis=axis, keepdims=True)),)


def log_softmax_forward(x, axis: int = -1):
    """``y = x - lse(x)`` along ``axis``. Returns ``(y, cache)``, ``y`` in ``x``'s dtype."""
    x, axis = _check_x(x, axis)
    y = _log_softmax(x, axis)
    return y, SoftmaxCache(y, axis)


def log_softmax_backward(dy, cache: SoftmaxCache):
    """VJP of :func:`log_softmax_forward`; the Jacobian is ``I - 1 softmax(x)^T``, so

    .. math:: dx = dy - \\mathrm{softmax}(x) \\textstyle\\sum_j dy_j
    """
    y, axis = cache
    dy = _dy(dy, y)
    return (dy - np.exp(y) * dy.sum(axis=axis, keepdims=True),)


def cross_entropy_forward(logits, targets, ignore_index: int = -100,
                          label_smoothing: float = 0.0, reduction: str = "mean"):
    """Cross-entropy of class ``targets`` under ``softmax(logits)``, as ``torch``'s.

    Per position, with ``eps = label_smoothing`` and ``log p = log_softmax(logits)``,

    .. math:: \\ell = -(1 - \\epsilon) \\log p_{t} - \\frac{\\epsilon}{V} \\sum_v \\log p_v

    (the cross-entropy against the target mixed with the uniform distribution). Positions whose
    target equals ``ignore_index`` get ``l = 0`` and are left out of the mean.

    Parameters
    ----------
    logits : (..., V) float32 or float64; targets : (...) int in ``[0, V)`` or ``ignore_index``;
    ignore_index : int; label_smoothing : in [0, 1]; reduction : "mean" (over non-ignored
    positions; NaN when every position is ignored, 0/0 as in torch), "sum" or "none".

    Returns
    -------
    loss : 0-d array (mean, sum) or (...) for "none", ``logits``' dtype; cache for the backward.
    """
    _checks.check_choice(reduction, "reduction", REDUCTIONS)
    label_smoothing = _checks.check_number(label_smoothing, "label_smoothing", low=0, high=1)
    ignore_index = _checks.check_number(ignore_index, "ignore_index", integer=True)
    logits = _checks.float_array(logits, "logits", ndim_min=1)
    V = logits.shape[-1]
    targets = int_array(targets, "targets")
    _checks.check_shape(targets, logits.shape[:-1], "targets", "(...) = logits.shape[:-1]")
    valid = targets != ignore_index  # (...)
    if ((targets < 0) | (targets >= V))[valid].any():
        bad = targets[valid & ((targets < 0) | (targets >= V))].flat[0]
        raise ValueError(f"targets must lie in [0, {V}) or equal ignore_index, found {int(bad)}")
    logp = _log_softmax(logits, -1)  # (..., V)
    safe = np.where(valid, targets, 0)[..., None]  # (..., 1) any class for ignored positions
    nll = -np.take_along_axis(logp, safe, axis=-1)[..., 0]  # (...)
    eps = logits.dtype.type(label_smoothing)
    loss = (1 - eps) * nll - eps * logp.mean(axis=-1)  # (...)
    loss = np.where(valid, loss, logits.dtype.type(0))
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = loss.sum() / logits.dtype.type(valid.sum())
    cache = CrossEntropyCache(np.exp(logp), targets, valid, label_smoothing, reduction)
    return np.asarray(loss, dtype=logits.dtype), cache


def cross_entropy_backward(dloss, cache: CrossEntropyCache):
    """VJP of :func:`cross_entropy_forward`.

    .. math:: \\frac{\\partial \\ell}{\\partial \\mathrm{logits}_v}
              = p_v - (1 - \\epsilon)[v = t] - \\frac{\\epsilon}{V}

    scaled by ``dloss`` (per position for "none"), divided by the number of non-ignored positions
    for "mean", and zero at ignored positions.

    Returns
    -------
    (dlogits,) : a one-tuple, dlogits of shape (..., V).
    """
    p, targets, valid, label_smoothing, reduction = cache
    t = p.dtype.type
    dloss = _checks.float_array(dloss, "dloss", dtype=p.dtype)
    _checks.check_shape(dloss, targets.shape if reduction == "none" else (), "dloss",
                        "(...)" if reduction == "none" else "()")
    V = p.shape[-1]
    eps = t(label_smoothing)
    onehot = np.arange(V) == np.where(valid, targets, -1)[..., None]  # (..., V)
    g = p - (1 - eps) * onehot - eps / t(V)  # (..., V)
    w = np.where(valid, dloss, t(0))  # (...)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            w = w / t(valid.sum())
    return ((w[..., None] * g).astype(p.dtype, copy=False),)
