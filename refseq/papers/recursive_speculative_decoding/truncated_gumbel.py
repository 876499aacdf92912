"""Truncated Gumbels for Stochastic Beam Search: ``log1mexp`` and ``shift_gumbel_max``.

Stochastic Beam Search (Kool, van Hoof, Welling 2019, arXiv 1903.06059, Sec. 3 and Appendix B)
samples sequences without replacement by giving every partial sequence a perturbed value ``G``
and conditioning the values of its children to have maximum ``G`` (top-down sampling of
Gumbels). Given raw Gumbels ``G'_y`` with maximum ``Z``, the children's values are

.. math:: G_y = -\\log\\left(e^{-T} - e^{-Z} + e^{-G'_y}\\right),

which keeps the order of the ``G'_y`` and has maximum exactly ``T``. It is computed stably as
``v = T - G' + log1mexp(G' - Z)``, ``G = T - max(v, 0) - log1p(exp(-|v|))`` (Kool et al.,
Appendix B, Eq. 23; ``fairseq/gumbel.py::_shift_gumbel_maximum`` of their code, which uses
``log1p(-exp(.))`` where this module uses :func:`log1mexp`).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

__all__ = ["log1mexp", "shift_gumbel_max"]

LOG_HALF = -np.log(2.0)  # the switch point of log1mexp (Maechler 2012)


def log1mexp(a) -> np.ndarray:
    """``log(1 - exp(a))`` for ``a <= 0``, accurate everywhere (Maechler 2012).

    ``log(-expm1(a))`` for ``a > -log 2`` (where ``1 - exp(a)`` cancels) and
    ``log1p(-exp(a))`` otherwise. ``log1mexp(0) = -inf`` and ``log1mexp(-inf) = 0``.

    Parameters
    ----------
    a : array_like, float32 or float64, ``<= 0``, no NaN

    Returns
    -------
    ndarray of the dtype of ``a`` (0-d for a scalar input)
    """
    a = _checks.float_array(np.asarray(a, dtype=np.float64) if isinstance(a, float) else a, "a")
    if np.isnan(a).any():
        raise ValueError("a must hold no NaN")
    if (a > 0).any():
        raise ValueError(f"a must be <= 0 (log(1 - exp(a)) is undefined above 0), found "
                         f"{a[a > 0].flat[0]}")
    return _log1mexp(a)


def shift_gumbel_max(G, Z, T) -> np.ndarray:
    """Condition Gumbels ``G`` whose maximum is ``Z`` to have maximum ``T`` (order kept).

    ``G_new = -log(exp(-T) - exp(-Z) + exp(-G))`` computed as
    ``v = T - G + log1mexp(G - Z)``, ``G_new = T - max(v, 0) - log1p(exp(-|v|))``. The entry
    equal to ``Z`` maps exactly to ``T``; ``-inf`` entries (zero-probability tokens) stay ``-inf``.

    Parameters
    ----------
    G : ndarray (..., n), float32 or float64, no NaN or +inf
        Raw perturbed values ``phi + g`` of the children of one beam.
    Z : float or ndarray (...,)
        Their maximum (``G <= Z`` must hold).
    T : float or ndarray (...,)
        The parent's perturbed value, the maximum the children must have.

    Returns
    -------
    ndarray (..., n) of the dtype of ``G``
    """
    G = _checks.float_array(G, "G", ndim_min=1)
    if np.isnan(G).any() or np.isposinf(G).any():
        raise ValueError("G must hold no NaN or +inf (-inf marks a zero-probability token)")
    dt = G.dtype
    Z, T = _max_arg(Z, "Z", dt), _max_arg(T, "T", dt)
    for name, x in (("Z", Z), ("T", T)):
        if x.shape not in ((), G.shape[:-1]):
            raise ValueError(f"{name} must be a scalar or have shape {G.shape[:-1]} (G's leading "
                             f"axes), got {x.shape}")
        _checks.check_finite(x, name, hint="")
    Zb, Tb = Z.astype(dt)[..., None], T.astype(dt)[..., None]  # (..., 1)
    if (G > Zb).any():
        raise ValueError("G must not exceed its maximum Z")
    return _shift(G, Zb, Tb)


def _max_arg(x, name: str, dt) -> np.ndarray:
    """``Z`` or ``T``: a real number (then in ``G``'s dtype) or a float array."""
    if isinstance(x, np.ndarray):
        return _checks.float_array(x, name)
    if np.ndim(x) == 0:
        return np.asarray(_checks.check_number(x, name, allow_inf=True), dt)
    return _checks.float_array(x, name)


def _log1mexp(a: np.ndarray) -> np.ndarray:
    """The unchecked core of :func:`log1mexp` (``a <= 0``)."""
    near = a > a.dtype.type(LOG_HALF)
    with np.errstate(divide="ignore"):
        out = np.where(near, np.log(-np.expm1(np.where(near, a, -1))),
                       np.log1p(-np.exp(np.where(near, -1, a))))
    return out.astype(a.dtype)


def _shift(G: np.ndarray, Zb: np.ndarray, Tb: np.ndarray) -> np.ndarray:
    """The unchecked core of :func:`shift_gumbel_max`; ``Zb``, ``Tb`` broadcast to ``G``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        v = Tb - G + _log1mexp(np.minimum(G - Zb, 0))  # -inf at the arg-max, +inf at -inf
        out = Tb - np.maximum(v, 0) - np.log1p(np.exp(-np.abs(v)))
    return out.astype(G.dtype)
