"""Inverted dropout (Srivastava et al. 2014, JMLR 15) with an explicit, reproducible mask.

``y = x * mask / (1 - p)``: kept entries are scaled up in training so that nothing changes at
evaluation time. The mask is either passed in (so a test or a peer framework can use the very
same one) or drawn from ``rng``: ``mask = rng.random(x.shape) >= p``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq._checks import check_flag


class DropoutCache(NamedTuple):
    mask: np.ndarray | None  # x.shape bool (True = kept), None when dropout is the identity
    scale: np.ndarray  # 0-d, 1 / (1 - p) (0 when p = 1)
    shape: tuple


def dropout_forward(x, p: float, rng=None, mask=None, training: bool = True):
    """Drop each entry of ``x`` with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    x : any shape, float32 or float64.
    p : drop probability in [0, 1]; ``p = 1`` gives zeros (as torch).
    rng : numpy Generator or seed for ``np.random.default_rng`` (None: fresh entropy); used only
        when ``mask`` is None.
    mask : bool array of ``x.shape`` (True = keep), optional; an explicit mask wins over ``rng``.
    training : False makes the layer the identity (no mask, no scaling).

    Returns
    -------
    y : ``x.shape``, ``x``'s dtype; cache : DropoutCache ``(mask, scale, shape)``; the mask
    actually used is ``cache.mask``.
    """
    training = check_flag(training, "training")
    x = _checks.float_array(x, "x")
    p = _checks.check_number(p, "p", low=0, high=1)
    t = x.dtype.type
    if not training:
        return x.copy(), DropoutCache(None, np.asarray(t(1)), x.shape)
    if mask is None:
        mask = _checks.check_rng(rng).random(x.shape) >= p
    else:
        mask = _checks.bool_mask(mask, x.shape, "mask", "x.shape")
    scale = np.asarray(t(0) if p == 1 else t(1) / (t(1) - t(p)))
    return np.where(mask, x * scale, t(0)), DropoutCache(mask, scale, x.shape)


def dropout_backward(dy, cache: DropoutCache):
    """VJP of :func:`dropout_forward` (a fixed diagonal linear map): ``dx = dy * mask / (1 - p)``.

    Returns
    -------
    (dx,) : a one-tuple.
    """
    mask, scale, shape = cache
    dy = _checks.float_array(dy, "dy", dtype=scale.dtype)
    _checks.check_shape(dy, shape, "dy", "x.shape")
    if mask is None:
        return (dy.copy(),)
    return (np.where(mask, dy * scale, scale.dtype.type(0)),)
