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


def layer_norm_forward(x, gamma, beta, eps: float = 1e-5):
    """Layer normalisation (Ba, Kiros & Hinton 2016, arXiv 1607.06450).

    .. math:: \\hat x = (x - \\mu)\\, r, \\quad r = (\\sigma^2 + \\epsilon)^{-1/2}, \\quad
              y = \\gamma \\odot \\hat x + \\beta

    with ``mu`` and the biased variance ``sigma^2`` taken over the last axis.

    Parameters
    ----------
    x : (..., D) float32 or float64; gamma, beta : (D,); eps : added to the variance.

    Returns
    -------
    y : (..., D), ``x``'s dtype; cache : NormCache ``(x_hat, r, gamma)``.
    """
    x = _checks.float_array(x, "x", ndim_min=1)
    D = x.shape[-1]
    gamma = _gain(gamma, "gamma", D, x.dtype)
    beta = _gain(beta, "beta", D, x.dtype)
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    r = 1 / np.sqrt(var + x.dtype.type(eps))  # (..., 1)
    x_hat = (x - mu) * r  # (..., D)
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

    Parameters
    ----------
    x : (..., D) float32 or float64; gamma : (D,); eps : added to the mean square.

    Returns
    -------
    y : (..., D), ``x``'s dtype; cache : NormCache ``(x_hat, r, gamma)``.
    """
    x = _checks.float_array(x, "x", ndim_min=1)
    gamma = _gain(gamma, "gamma", x.shape[-1], x.dtype)
    r = 1 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + x.dtype.type(eps))  # (..., 1)
    x_hat = x * r  # (..., D)
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
