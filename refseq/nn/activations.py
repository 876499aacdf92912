"""Pointwise activations with their vector-Jacobian products.

Each ``<act>_forward(x) -> (y, cache)`` and ``<act>_backward(dy, cache) -> (dx,)`` with
``dx = dy * f'(x)``; the cache holds what ``f'`` needs (``x`` and/or ``y``). Any shape, float32 or
float64, output dtype = input dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import expit, ndtr

from refseq import _checks

GELU_APPROXIMATIONS = ("none", "tanh")


class ActCache(NamedTuple):
    x: np.ndarray | None  # the input, when f' needs it
    y: np.ndarray | None  # the output, when f' is cheaper from it
    option: str = ""  # e.g. the GELU approximation
    aux: np.ndarray | None = None  # exact GELU: Phi(x), kept so the backward needs no second erf


def _x(x) -> np.ndarray:
    return _checks.float_array(x, "x")


def _dy(dy, cache: ActCache) -> np.ndarray:
    ref = cache.x if cache.x is not None else cache.y
    dy = _checks.float_array(dy, "dy", dtype=ref.dtype)
    _checks.check_shape(dy, ref.shape, "dy", "x.shape")
    return dy


def _Phi(x: np.ndarray) -> np.ndarray:
    """Standard normal distribution function at ``x`` (in ``x``'s dtype)."""
    return ndtr(x).astype(x.dtype, copy=False)  # = (1 + erf(x / sqrt 2)) / 2


def _phi(x: np.ndarray) -> np.ndarray:
    """Standard normal density at ``x`` (in ``x``'s dtype)."""
    t = x.dtype.type
    return np.exp(t(-0.5) * x * x) / t(np.sqrt(2 * np.pi))


def _tanh_gelu_inner(x: np.ndarray):
    """``u = sqrt(2/pi) (x + 0.044715 x^3)`` and ``du/dx``."""
    t = x.dtype.type
    c, k = t(np.sqrt(2 / np.pi)), t(0.044715)
    return c * (x + k * x**3), c * (1 + 3 * k * x * x)


def gelu_forward(x, approximate: str = "none"):
    """GELU (Hendrycks & Gimpel 2016, arXiv 1606.08415).

    .. math:: \\text{none:}\\ y = x\\,\\Phi(x) = \\tfrac12 x (1 + \\mathrm{erf}(x/\\sqrt2)); \\quad
              \\text{tanh:}\\ y = \\tfrac12 x (1 + \\tanh u),\\
              u = \\sqrt{2/\\pi}\\,(x + 0.044715 x^3)

    ``approximate`` has the meaning of ``torch.nn.functional.gelu``'s (GPT-2 uses "tanh").
    """
    _checks.check_choice(approximate, "approximate", GELU_APPROXIMATIONS)
    x = _x(x)
    if approximate == "none":
        Phi = _Phi(x)  # erf is ~30x the cost of exp: computed once, reused by the backward
        return x * Phi, ActCache(x, None, approximate, Phi)
    y = x.dtype.type(0.5) * x * (1 + np.tanh(_tanh_gelu_inner(x)[0]))
    return y, ActCache(x, None, approximate)


def gelu_backward(dy, cache: ActCache):
    """VJP of :func:`gelu_forward`.

    .. math:: \\text{none:}\\ f' = \\Phi(x) + x\\,\\phi(x); \\quad
              \\text{tanh:}\\ f' = \\tfrac12 (1 + \\tanh u) + \\tfrac12 x (1 - \\tanh^2 u)\\, u'(x)
    """
    dy, x = _dy(dy, cache), cache.x
    if cache.option == "none":
        Phi = cache.aux if cache.aux is not None else _Phi(x)
        fprime = Phi + x * _phi(x)
    else:
        u, du = _tanh_gelu_inner(x)
        th, half = np.tanh(u), x.dtype.type(0.5)
        fprime = half * (1 + th) + half * x * (1 - th * th) * du
    return (dy * fprime,)


def silu_forward(x):
    """SiLU / swish (Elfwing et al. 2017, arXiv 1702.03118): ``y = x sigmoid(x)``."""
    x = _x(x)
    return x * expit(x), ActCache(x, None)


def silu_backward(dy, cache: ActCache):
    """VJP of :func:`silu_forward`: ``f' = s (1 + x (1 - s))`` with ``s = sigmoid(x)``."""
    dy, x = _dy(dy, cache), cache.x
    s = expit(x)
    return (dy * s * (1 + x * (1 - s)),)


def tanh_forward(x):
    """Hyperbolic tangent."""
    y = np.tanh(_x(x))
    return y, ActCache(None, y)


def tanh_backward(dy, cache: ActCache):
    """VJP of :func:`tanh_forward`: ``f' = 1 - y^2``."""
    dy, y = _dy(dy, cache), cache.y
    return (dy * (1 - y * y),)


def sigmoid_forward(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` (``scipy.special.expit``: no overflow)."""
    y = expit(_x(x))
    return y, ActCache(None, y)


def sigmoid_backward(dy, cache: ActCache):
    """VJP of :func:`sigmoid_forward`: ``f' = y (1 - y)``."""
    dy, y = _dy(dy, cache), cache.y
    return (dy * y * (1 - y),)


def relu_forward(x):
    """Rectifier ``max(x, 0)``."""
    x = _x(x)
    return np.maximum(x, x.dtype.type(0)), ActCache(x, None)


def relu_backward(dy, cache: ActCache):
    """VJP of :func:`relu_forward`: ``f' = [x > 0]`` (0 at the kink, as in PyTorch)."""
    dy, x = _dy(dy, cache), cache.x
    return (np.where(x > 0, dy, dy.dtype.type(0)),)
