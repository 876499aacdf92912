"""Sampling without replacement: Gumbel-top-k and three equivalent samplers.

RSD draws the children of a draft-tree node *without replacement* (Jeon et al., arXiv 2402.14160,
Sec. 3), so all siblings are distinct tokens. Four forms of the same law are given here:

- :func:`gumbel_topk`: the k largest ``log q + g``, ``g`` i.i.d. standard Gumbel, in descending
  order (Vieira 2014; Kool, van Hoof, Welling 2019, arXiv 1903.06059, Sec. 2);
- :func:`exponential_race_topk`: the k smallest ``E_y = -log(u_y) / q_y`` (Sequoia's
  ``topk(log(u) / q)``); with ``g = -log(-log u)``, ``log q + g = -log E``, so both give the
  same indices for the same uniforms;
- :func:`sample_without_replacement`: k sequential inverse-CDF draws, each from ``q`` with the
  earlier draws removed and renormalised;
- :func:`without_replacement_conditionals`: that renormalised remainder, the proposal law
  ``q_j`` of the j-th sibling in recursive rejection sampling.

All return the tokens in *sampling order*; their law is

.. math:: P(y_1, \\dots, y_k) = \\prod_{j=1}^{k} \\frac{q(y_j)}{1 - \\sum_{l<j} q(y_l)}.

Zero-probability tokens are never returned: when the support of ``q`` has fewer than k tokens,
the whole support comes back, padded with ``-1``.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.sampling import gumbel_noise

__all__ = ["exponential_race_topk", "gumbel_topk", "sample_without_replacement",
           "without_replacement_conditionals"]


def _k(k) -> int:
    return _checks.check_number(k, "k", integer=True, low=1)


def _logp(logp) -> np.ndarray:
    x = _checks.float_array(logp, "logp", ndim_min=1)
    if x.shape[-1] == 0:
        raise ValueError(f"logp must have a last axis V >= 1, got shape {x.shape}")
    if np.isnan(x).any() or np.isposinf(x).any():
        raise ValueError("logp must hold no NaN or +inf (-inf marks a zero-probability token)")
    return x


def _probs(q, name: str = "q") -> np.ndarray:
    """A ``(V,)`` probability vector (finite, >= 0, sum 1 within float32 precision)."""
    x = _checks.float_array(q, name)
    if x.ndim != 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a 1-d array (V,) with V >= 1, got shape {x.shape}")
    _checks.check_finite(x, name, hint="")
    if (x < 0).any():
        raise ValueError(f"{name} must be >= 0, found {x.min()}")
    if abs(float(x.sum(dtype=np.float64)) - 1.0) > 3.5e-4:
        raise ValueError(f"{name} must sum to 1 (a probability vector), sums to "
                         f"{float(x.sum(dtype=np.float64))}")
    return x.astype(np.float64)


def _uniforms(u, n: int, name: str = "u") -> np.ndarray:
    x = _checks.float_array(u, name)
    if x.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {x.shape}")
    if not np.all((x >= 0) & (x < 1)):
        raise ValueError(f"{name} must lie in [0, 1), found {x[~((x >= 0) & (x < 1))][0]}")
    return x.astype(np.float64)


def gumbel_topk(logp, k, *, g=None, rng=None):
    """Indices of the k largest ``logp + g`` along the last axis, in descending order.

    With ``g`` i.i.d. standard Gumbel (``-log(-log u)``) the ordered indices are a sample of
    ``k`` draws without replacement from ``softmax(logp)`` (Kool et al. 2019, arXiv 1903.06059,
    Sec. 2, "Gumbel-top-k"). Entries with ``logp = -inf`` are never returned.

    Parameters
    ----------
    logp : ndarray (..., V), float32 or float64
        Log-probabilities (any constant offset per row is allowed); ``-inf`` marks impossible
        tokens; no NaN or +inf.
    k : int >= 1
    g : ndarray (..., V), float32 or float64, finite, optional
        Explicit Gumbel noise; drawn from ``rng`` when omitted.
    rng : numpy.random.Generator, int seed or None
        Used only when ``g`` is None.

    Returns
    -------
    idx : ndarray (..., k), int64
        Token ids, largest perturbed value first (ties: lower index first); ``-1`` pads the rows
        whose support has fewer than k tokens.
    values : ndarray (..., k)
        The perturbed values ``logp + g`` of ``idx`` (``-inf`` at the padding), in the dtype of
        ``logp + g``.
    """
    x = _logp(logp)
    k = _k(k)
    if g is None:
        g = gumbel_noise(_checks.check_rng(rng), x.shape).astype(x.dtype)
    else:
        g = _checks.float_array(g, "g")
        if g.shape != x.shape:
            raise ValueError(f"g must have the shape of logp {x.shape}, got {g.shape}")
        _checks.check_finite(g, "g", hint="")
    return _topk(x + g, k)


def _topk(keys: np.ndarray, k: int):
    """The unchecked core of :func:`gumbel_topk` on perturbed values ``keys (..., V)``."""
    order = np.argsort(-keys, axis=-1, kind="stable")[..., :k]  # (..., min(k, V))
    vals = np.take_along_axis(keys, order, axis=-1)
    pad = k - order.shape[-1]
    if pad:
        order = np.concatenate([order, np.zeros(order.shape[:-1] + (pad,), order.dtype)], -1)
        vals = np.concatenate([vals, np.full(vals.shape[:-1] + (pad,), -np.inf, vals.dtype)], -1)
    dead = vals == -np.inf  # (..., k) beyond the support
    return np.where(dead, -1, order).astype(np.int64), vals


def exponential_race_topk(q, k, u) -> np.ndarray:
    """The k tokens with the smallest ``E_y = -log(u_y) / q_y`` (``q_y > 0`` only), ascending.

    ``E_y ~ Exponential(q_y)`` are independent, and the first k arrivals of the race are k
    draws without replacement from ``q``: Sequoia's ``sampling_without_replacement``
    (``topk(log(u) / q)``). For the same uniforms this equals
    ``gumbel_topk(log q, k, g=-log(-log u))``.

    Parameters
    ----------
    q : ndarray (V,), probabilities
    k : int >= 1
    u : ndarray (V,), float in [0, 1)
        One uniform per token (``u = 0`` gives ``E = inf``: that token comes last).

    Returns
    -------
    ndarray (k,), int64 — ``-1`` pads when ``q`` has fewer than k positive entries.
    """
    q = _probs(q)
    k = _k(k)
    u = _uniforms(u, q.shape[0])
    pos = q > 0
    E = np.full(q.shape, np.inf)  # (V,) zero-probability tokens never arrive
    with np.errstate(divide="ignore"):
        E[pos] = -np.log(u[pos]) / q[pos]
    order = np.argsort(E, kind="stable")[:k]
    out = np.full(k, -1, np.int64)
    n = min(k, int(pos.sum()))
    out[:n] = order[:n]
    return out


def _inverse_cdf(w: np.ndarray, u: float) -> int:
    """Smallest t with ``cumsum(w)[t] > u * sum(w)``; never a zero-weight token."""
    c = np.cumsum(w)  # (V,) left to right
    t = int(np.searchsorted(c, u * c[-1], side="right"))
    return min(t, int(np.flatnonzero(w > 0)[-1]))


def sample_without_replacement(q, k, u) -> np.ndarray:
    """k sequential inverse-CDF draws from ``q``, each from the undrawn remainder.

    Draw j is the smallest t with ``cumsum(r_j)[t] > u_j * sum(r_j)``, ``r_j`` = ``q`` with
    the earlier draws zeroed (the law :func:`without_replacement_conditionals` normalises).

    Parameters
    ----------
    q : ndarray (V,), probabilities
    k : int >= 1
    u : ndarray (k,), float in [0, 1)

    Returns
    -------
    ndarray (k,), int64 — ``-1`` pads when ``q`` has fewer than k positive entries.
    """
    q = _probs(q)
    k = _k(k)
    u = _uniforms(u, k)
    left = q.copy()
    out = np.full(k, -1, np.int64)
    for j in range(k):
        if not (left > 0).any():
            break
        out[j] = _inverse_cdf(left, u[j])
        left[out[j]] = 0.0
    return out


def without_replacement_conditionals(q, drawn) -> np.ndarray:
    """``q_j``: ``q`` with the ``drawn`` tokens removed and renormalised (float64).

    ``q_j(y) = q(y) 1[y not in drawn] / (1 - sum_{l in drawn} q(l))`` is the law of the next
    sibling after ``drawn`` (sampling order), the proposal of recursive rejection sampling
    (RSD, arXiv 2402.14160, Sec. 3). It renormalises the *draft*; it is not the residual of the
    target.

    Parameters
    ----------
    q : ndarray (V,), probabilities
    drawn : ndarray (j,), int — distinct tokens in ``[0, V)`` (may be empty)

    Returns
    -------
    ndarray (V,), float64

    Raises
    ------
    ValueError
        If ``drawn`` repeats a token or covers the whole support of ``q`` (no next draw).
    """
    q = _probs(q)
    V = q.shape[0]
    d = np.asarray(drawn)
    if d.size == 0:
        d = d.astype(np.int64)
    d = _checks.int_array(d, "drawn", ndim=1, low=0, high=V, form="(j,)")
    if np.unique(d).size != d.size:
        raise ValueError(f"drawn must hold distinct tokens (draws without replacement), got "
                         f"{d.tolist()}")
    left = q.copy()
    left[d] = 0.0
    mass = left.sum()
    if mass <= 0:
        raise ValueError("drawn covers the whole support of q: no further draw exists")
    return left / mass
