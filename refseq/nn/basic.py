"""Forward-only functional layers: linear, layer norm, exact GELU, position-wise FFN.

Symbols: B batch, T time, D model width, F hidden width of the FFN. Every function accepts any
leading shape ``(...)`` and works on the last axis. The result has the dtype of ``x`` (float32 or
float64); parameters are cast to it, so a float64 parameter set can run a float32 forward pass.

These are the pieces a Transformer-style block needs around its mixing layer (Aaren's block,
``refseq.models.aaren_stack``). Backward passes are not provided yet.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from refseq import _checks


def _param(p, name: str, shape: tuple, form: str, dtype) -> np.ndarray:
    p = _checks.float_array(p, name, dtype=dtype)
    _checks.check_shape(p, shape, name, form)
    return p


def linear(x, W, b=None):
    """Affine map on the last axis: ``y = x W + b``.

    Parameters
    ----------
    x : (..., D_in) float32 or float64.
    W : (D_in, D_out) — weight, right-multiplied (row-vector convention).
    b : (D_out,), optional — bias.

    Returns
    -------
    y : (..., D_out), ``x``'s dtype.
    """
    x = _checks.float_array(x, "x", ndim_min=1)
    W = _checks.float_array(W, "W", dtype=x.dtype, ndim_min=2)
    if W.ndim != 2 or W.shape[0] != x.shape[-1]:
        raise ValueError(f"W must have shape (D_in, D_out) with D_in = {x.shape[-1]}, "
                         f"got {W.shape}")
    y = x @ W  # (..., D_out)
    if b is not None:
        y = y + _param(b, "b", W.shape[1:], "(D_out,)", x.dtype)
    return y


def layer_norm(x, gamma, beta, eps: float = 1e-5):
    """Layer normalisation over the last axis (Ba, Kiros & Hinton 2016, arXiv 1607.06450).

    .. math:: y = \\gamma \\odot \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}} + \\beta,
              \\quad \\mu, \\sigma^2 = \\text{mean and (biased) variance of } x \\text{ over D}

    Parameters
    ----------
    x : (..., D); gamma, beta : (D,) — gain and shift; eps : added to the variance.

    Returns
    -------
    y : (..., D), ``x``'s dtype.
    """
    x = _checks.float_array(x, "x", ndim_min=1)
    D = x.shape[-1]
    gamma = _param(gamma, "gamma", (D,), "(D,)", x.dtype)
    beta = _param(beta, "beta", (D,), "(D,)", x.dtype)
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # (..., 1)
    x_hat = (x - mu) / np.sqrt(var + x.dtype.type(eps))
    return gamma * x_hat + beta


def gelu(x):
    """Exact GELU (Hendrycks & Gimpel 2016, arXiv 1606.08415): ``x * Phi(x)``.

    .. math:: \\mathrm{GELU}(x) = \\tfrac{1}{2} x \\left(1 + \\mathrm{erf}(x / \\sqrt{2})\\right)

    The erf form, not the tanh approximation (``torch.nn.functional.gelu(approximate="none")``).
    """
    x = _checks.float_array(x, "x")
    half, root2 = x.dtype.type(0.5), x.dtype.type(np.sqrt(2.0))
    return half * x * (1 + erf(x / root2))


def ffn(x, W_1, b_1, W_2, b_2):
    """Position-wise feed-forward network: ``y = GELU(x W_1 + b_1) W_2 + b_2``.

    Parameters
    ----------
    x : (..., D); W_1 : (D, F); b_1 : (F,) or None; W_2 : (F, D); b_2 : (D,) or None.

    Returns
    -------
    y : (..., D), ``x``'s dtype. Each position is transformed independently (no mixing in time).
    """
    h = gelu(linear(x, W_1, b_1))  # (..., F)
    return linear(h, W_2, b_2)  # (..., D)
