"""Layer norm and RMS norm over the last axis, with their vector-Jacobian products.

Symbols: ``D`` the normalised width, ``(...)`` any leading shape. Statistics are per position;
the gain ``gamma`` (and shift ``beta``) are shared, so their gradients sum over positions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks


class NormCache(NamedTuple):
    x_hat: np.ndarray  # (..., D) normalised input
    r: np.ndarray  # (..., 1) reciprocal of the standard deviation (layer norm) or of the RMS
    gamma: np.ndarray  # (D,)


def _gain(p, name: str, D: int, dtype) -> np.ndarray:
    p = _checks.float_array(p, name, dtype=dtype)
    _checks.check_shape(p, (D,), name, "(D,)")
    return p


def _cotangent(dy, cache: NormCache) -> np.ndarray:
    dy = _checks.float_array(dy, "dy", dtype=cache.x_hat.dtype)
    _checks.check_shape(dy, cache.x_hat.shape, "dy", "(..., D)")
    return dy


def _sum_leading(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1]).sum(axis=0)  # (D,)


def _row_exponent(x: np.ndarray) -> np.ndarray:
    """``e`` (..., 1) int with ``max|x| < 2^e`` per row (0 for a zero or non-finite row).

    Scaling a row by ``2^-e`` (``np.ldexp``) is exact and brings it to ``|x| < 1``, so its squares
    can neither overflow (float32 ``|x| ~ 1e30``: ``x^2 = 1e60 > 3.4e38``) nor vanish in
    underflow (``|x| ~ 1e-30``); the statistics are computed on the scaled row.
    """
    top = np.abs(x).max(axis=-1, keepdims=True)
    return np.frexp(np.where(np.isfinite(top), top, 0))[1]


def _root(mean_square: np.ndarray, eps, e: np.ndarray) -> np.ndarray:
    """``sqrt(mean_square + eps * 4^-e)``: the scaled row's ``sqrt(var + eps)`` (unscaled, it is
    ``2^e`` times this), by ``np.hypot`` so that the scaled ``eps`` term cannot overflow."""
    t = mean_square.dtype.type
    return np.hypot(np.sqrt(mean_square), np.ldexp(np.sqrt(t(eps)), -e)).astype(t, copy=False)


def _eps(eps) -> float:
    return _checks.check_number(eps, "eps", low=0)


def _norm_input(x) -> np.ndarray:
    x = _checks.float_array(x, "x", ndim_min=1)
    if x.shape[-1] == 0:
        raise ValueError(f"x must have at least one feature on its last axis (D >= 1) to "
                         f"normalise, got shape {x.shape}")
    return x


def layer_norm_forward(x, gamma, beta, eps: float = 1e-5):
    """Layer normalisation (Ba, Kiros & Hinton 2016, arXiv 1607.06450).

    .. math:: \\hat x = (x - \\mu)\\, r, \\quad r = (\\sigma^2 + \\epsilon)^{-1/2}, \\quad
              y = \\gamma \\odot \\hat x + \\beta

    with ``mu`` and the biased variance ``sigma^2`` taken over the last axis. Each row is first
    scaled by a power of two ``2^-e`` (exact) so that no square overflows or underflows: the
    result is correct for float32 rows at ``|x| ~ 1e30`` or ``1e-30`` and float64 at ``1e300``.

    Parameters
    ----------
    x : (..., D) float32 or float64; gamma, beta : (D,); eps : a finite number >= 0 added to the
    variance (``eps = 0`` divides by zero on a constant row).

    Returns
    -------
    y : (..., D), ``x``'s dtype; cache : NormCache ``(x_hat, r, gamma)``.
    """
    x = _norm_input(x)
    D = x.shape[-1]
    gamma = _gain(gamma, "gamma", D, x.dtype)
    beta = _gain(beta, "beta", D, x.dtype)
    eps = _eps(eps)
    e = _row_exponent(x)  # (..., 1)
    xs = np.ldexp(x, -e)  # (..., D) the row in units of 2^e, |xs| < 1
    c = xs - xs.mean(axis=-1, keepdims=True)  # (..., D) (x - mu) / 2^e
    with np.errstate(divide="ignore", invalid="ignore"):  # eps = 0 on a constant row: 0/0
        root = _root((c * c).mean(axis=-1, keepdims=True), eps, e)  # (..., 1) sqrt(var+eps)/2^e
        x_hat = c / root  # (..., D)
        r = np.ldexp(1 / root, -e)  # (..., 1)
    return gamma * x_hat + beta, NormCache(x_hat, r, gamma)


def layer_norm_backward(dy, cache: NormCache):
    """Vector-Jacobian product of :func:`layer_norm_forward`.

    With ``g = dy * gamma`` and means over the last axis,

    .. math:: dx = r \\left(g - \\overline{g} - \\hat x\\, \\overline{g \\hat x}\\right), \\qquad
              d\\gamma = \\sum_{(...)} dy \\odot \\hat x, \\qquad d\\beta = \\sum_{(...)} dy

    (the two subtracted terms remove the components of ``g`` along the directions that
    centring and scaling project out).

    Returns
    -------
    dx : (..., D); dgamma : (D,); dbeta : (D,).
    """
    x_hat, r, gamma = cache
    dy = _cotangent(dy, cache)
    g = dy * gamma  # (..., D)
    dx = r * (
        g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)
    )
    return dx, _sum_leading(dy * x_hat), _sum_leading(dy)


def rms_norm_forward(x, gamma, eps: float = 1e-6):
    """RMS normalisation (Zhang & Sennrich 2019, arXiv 1910.07467), no centring, no shift.

    .. math:: \\hat x = x\\, r, \\quad r = \\left(\\overline{x^2} + \\epsilon\\right)^{-1/2},
              \\quad y = \\gamma \\odot \\hat x

    ``eps`` is added inside the square root, as in ``torch.nn.functional.rms_norm`` (whose default
    ``eps`` is ``finfo(dtype).eps``; pass it explicitly to compare).

    The mean square is taken on the row scaled by ``2^-e`` (exact), as in
    :func:`layer_norm_forward`, so that extreme magnitudes neither overflow nor underflow.

    Parameters
    ----------
    x : (..., D) float32 or float64; gamma : (D,); eps : a finite number >= 0 added to the mean
    square.

    Returns
    -------
    y : (..., D), ``x``'s dtype; cache : NormCache ``(x_hat, r, gamma)``.
    """
    x = _norm_input(x)
    gamma = _gain(gamma, "gamma", x.shape[-1], x.dtype)
    eps = _eps(eps)
    e = _row_exponent(x)  # (..., 1)
    xs = np.ldexp(x, -e)  # (..., D) |xs| < 1
    with np.errstate(divide="ignore", invalid="ignore"):  # eps = 0 on a zero row: 0/0
        root = _root((xs * xs).mean(axis=-1, keepdims=True), eps, e)  # (..., 1) rms / 2^e
        x_hat = xs / root  # (..., D)
        r = np.ldexp(1 / root, -e)  # (..., 1)
    return gamma * x_hat, NormCache(x_hat, r, gamma)


def rms_norm_backward(dy, cache: NormCache):
    """Vector-Jacobian product of :func:`rms_norm_forward`.

    With ``g = dy * gamma``: ``dr/dx_j = -r^3 x_j / D``, hence

    .. math:: dx = r \\left(g - \\hat x\\, \\overline{g \\hat x}\\right), \\qquad
              d\\gamma = \\sum_{(...)} dy \\odot \\hat x

    Returns
    -------
    dx : (..., D); dgamma : (D,).
    """
    x_hat, r, gamma = cache
    dy = _cotangent(dy, cache)
    g = dy * gamma  # (..., D)
    dx = r * (g - x_hat * (g * x_hat).mean(axis=-1, keepdims=True))
    return dx, _sum_leading(dy * x_hat)
