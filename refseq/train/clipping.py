"""Gradient clipping by global norm and by value (``torch.nn.utils.clip_grad_norm_`` /
``clip_grad_value_`` semantics, but returning new dicts instead of modifying in place).

Global-norm clipping (Pascanu et al., arXiv 1211.5063, Algorithm 2, in PyTorch's form):

.. math::

    n = \\Big(\\sum_k \\lVert g_k \\rVert_2^2\\Big)^{1/2}, \\qquad
    c = \\min\\Big(1, \\frac{\\text{max\\_norm}}{n + 10^{-6}}\\Big), \\qquad
    g_k \\leftarrow c\\, g_k

The ``1e-6`` is PyTorch's; it makes the clipped norm ``max_norm * n / (n + 1e-6)``, a hair *below*
``max_norm``, and means clipping starts when ``n > max_norm - 1e-6``. The textbook
``min(1, c / ||g||)`` differs from this only in that margin.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from refseq._checks import check_number
from refseq.train.params import check_grads, global_norm

TORCH_EPS = 1e-6


def clip_grad_norm(grads: Mapping, max_norm: float) -> tuple[dict[str, np.ndarray], float]:
    """Scale all gradients by ``min(1, max_norm / (total_norm + 1e-6))``.

    Returns ``(clipped, total_norm)``: ``clipped`` is a new dict (inputs untouched; a tensor that
    needs no scaling is returned as the same array object, not a copy) and ``total_norm`` the norm
    *before* clipping (float, as PyTorch returns it). A non-finite ``total_norm`` propagates NaN
    into the gradients, as PyTorch does with ``error_if_nonfinite=False``; the training loop
    reports it.
    """
    max_norm = check_number(max_norm, "max_norm", low=0, low_open=True, allow_inf=True)
    total = global_norm(grads)
    return scale_to_norm(grads, max_norm, total), total


def scale_to_norm(grads: Mapping, max_norm: float, total: float) -> dict[str, np.ndarray]:
    """The scaling step of :func:`clip_grad_norm` given the already computed ``total`` norm."""
    coef = min(1.0, max_norm / (total + TORCH_EPS)) if np.isfinite(total) else np.nan
    if coef == 1.0:
        return dict(grads)
    return {k: np.asarray(g) * np.asarray(coef, np.asarray(g).dtype) for k, g in grads.items()}


def clip_grad_value(grads: Mapping, clip_value: float) -> dict[str, np.ndarray]:
    """Clamp every gradient entry to ``[-clip_value, clip_value]`` (new arrays)."""
    clip_value = check_number(clip_value, "clip_value", low=0, low_open=True,
                              allow_inf=True)
    check_grads(grads)
    return {k: np.clip(g, -clip_value, clip_value) for k, g in grads.items()}
