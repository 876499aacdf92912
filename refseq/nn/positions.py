"""Position information: learned absolute embeddings and rotary embeddings (RoPE), with VJPs.

Symbols: T time, H heads, Dh head width (even for RoPE), T_max the table length, ``(...)``
leading (batch) axes.

RoPE (Su et al. 2021, arXiv 2104.09864, eq. 34) rotates pairs of coordinates of each query/key
by an angle proportional to its position. The pairing here is **rotate-half** (GPT-NeoX, LLaMA,
HF ``rotate_half``): coordinate ``i`` pairs with ``i + Dh/2`` (not the interleaved ``2i, 2i+1`` of
the paper and GPT-J). With ``theta_i = base^{-2i/Dh}``, ``a = pos * theta_i``,

.. math:: y_i = x_i \\cos a - x_{i+D_h/2} \\sin a, \\qquad
          y_{i+D_h/2} = x_{i+D_h/2} \\cos a + x_i \\sin a, \\qquad i < D_h/2

Each pair is a plane rotation by ``a``, so ``<rope(q, m), rope(k, n)>`` depends on ``m - n`` only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.nn.embedding import int_array, lookup_backward, lookup_forward


class RopeCache(NamedTuple):
    cos: np.ndarray  # (..., T, 1, Dh/2)
    sin: np.ndarray  # (..., T, 1, Dh/2)
    shape: tuple


def position_embedding_forward(positions, P):
    """Learned absolute position embedding (GPT-2): ``y[...] = P[positions[...]]``.

    Parameters
    ----------
    positions : (...) int in ``[0, T_max)``; P : (T_max, D) float32 or float64.

    Returns
    -------
    y : (..., D), ``P``'s dtype; cache for :func:`position_embedding_backward`.

    Raises
    ------
    ValueError naming ``positions`` for a position past the table (or negative).
    """
    return lookup_forward(positions, P, "positions", "P", "T_max")


def position_embedding_backward(dy, cache):
    """VJP: ``dP_s = sum of dy over the positions equal to s``. Returns ``(dP,)``."""
    return lookup_backward(dy, cache)


def rope_angles(positions, Dh: int, base: float = 10000.0) -> np.ndarray:
    """Angles ``positions[..., None] * base^{-2i/Dh}``, i < Dh/2, in float64: (..., Dh/2).

    ``Dh`` is an even int >= 2 and ``base`` a finite number > 1 (``base <= 1`` would make the
    frequencies grow instead of decay, ``base = 0`` divides by zero).
    """
    Dh = _checks.check_number(Dh, "Dh", integer=True, low=2)
    if Dh % 2:
        raise ValueError(f"Dh must be even, got {Dh}")
    base = _checks.check_number(base, "base", low=1, low_open=True)
    theta = base ** (-np.arange(0, Dh, 2, dtype=np.float64) / Dh)  # (Dh/2,)
    return np.asarray(positions, np.float64)[..., None] * theta


def rope_forward(x, positions, base: float = 10000.0):
    """Rotate queries or keys by their positions (rotate-half pairing, see the module doc).

    Parameters
    ----------
    x : (..., T, H, Dh) float32 or float64, Dh even.
    positions : (T,) or (..., T) int — broadcast against ``x.shape[:-2]`` (one position per
        time step, shared by the heads; explicit so that tree drafts and KV caches can use
        arbitrary positions).
    base : the RoPE base (10000 in the paper and LLaMA).

    Returns
    -------
    y : x.shape, ``x``'s dtype; cache : RopeCache. Angles are formed in float64 and their
    cosines and sines rounded to ``x``'s dtype.
    """
    x = _checks.float_array(x, "x", ndim_min=3)
    base = _checks.check_number(base, "base", low=1, low_open=True)
    *lead, T, H, Dh = x.shape
    if Dh % 2:
        raise ValueError(f"x must have an even head width Dh, got x.shape = {x.shape}")
    positions = int_array(positions, "positions", form="(..., T)")
    try:
        ok = positions.ndim >= 1 and positions.shape[-1] == T
        ok = ok and np.broadcast_shapes(positions.shape, (*lead, T)) == (*lead, T)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"positions must have shape (T,) or (..., T) broadcastable to "
                         f"{(*lead, T)}, got {positions.shape}")
    a = rope_angles(positions, Dh, base)[..., None, :]  # (..., T, 1, Dh/2)
    cos, sin = np.cos(a).astype(x.dtype), np.sin(a).astype(x.dtype)
    cache = RopeCache(cos, sin, x.shape)
    return _rotate(x, cos, sin), cache


def _rotate(x, cos, sin):
    x1, x2 = np.split(x, 2, axis=-1)  # (..., T, H, Dh/2) each
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def rope_backward(dy, cache: RopeCache):
    """VJP of :func:`rope_forward`: the transpose of a rotation is the rotation by ``-a``,

    .. math:: dx_i = dy_i \\cos a + dy_{i+D_h/2} \\sin a, \\qquad
              dx_{i+D_h/2} = dy_{i+D_h/2} \\cos a - dy_i \\sin a

    Returns
    -------
    (dx,) : a one-tuple (``positions`` is not differentiable).
    """
    cos, sin, shape = cache
    dy = _checks.float_array(dy, "dy", dtype=cos.dtype)
    _checks.check_shape(dy, shape, "dy", "x.shape")
    return (_rotate(dy, cos, -sin),)
