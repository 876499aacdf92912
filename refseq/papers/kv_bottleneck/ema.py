"""Unsupervised key learning by exponential-moving-average vector quantisation (phase 1).

Träuble et al., arXiv 2207.11240, Sec. 3 ("keys are initialised ... using exponential moving
average updates", following VQ-VAE's EMA codebooks, van den Oord et al., arXiv 1711.00937,
Appendix A.1). Per codebook ``c``, for a batch of heads ``h_i`` (``i`` over ``B N``) and decay
``gamma``:

.. math::

    a_i &= \\arg\\min_j \\lVert h_i - \\mathrm{key}_j \\rVert^2 \\quad\\text{(top-1, ties to
    the lower } j) \\\\
    n_j &= \\#\\{i : a_i = j\\}, \\qquad s_j = \\textstyle\\sum_{i: a_i = j} h_i \\\\
    \\mathrm{cluster\\_size}_j &\\leftarrow \\gamma\\,\\mathrm{cluster\\_size}_j + (1 - \\gamma)
    n_j, \\qquad \\mathrm{keys\\_avg}_j \\leftarrow \\gamma\\,\\mathrm{keys\\_avg}_j +
    (1 - \\gamma) s_j \\\\
    \\tilde n_j &= \\frac{\\mathrm{cluster\\_size}_j + \\epsilon}{S + M \\epsilon}\\, S, \\quad
    S = \\textstyle\\sum_j \\mathrm{cluster\\_size}_j \\qquad \\text{(Laplace smoothing)} \\\\
    \\mathrm{key}_j &= \\mathrm{keys\\_avg}_j / \\tilde n_j

then dead-key replacement: every key with ``cluster_size_j < threshold`` becomes a head drawn
uniformly (with replacement) from the current batch; the EMA buffers are left as they are.
The assignment statistics ``(n, s)`` come from the hot path's ``kv_assign_stats``.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.kv_lookup import kv_assign_stats
from refseq.papers.kv_bottleneck.codebooks import KVCodebooks

__all__ = ["dead_threshold", "ema_update", "fit_keys", "laplace_smoothing", "replace_dead_keys"]


def laplace_smoothing(cluster_size, eps: float = 1e-5) -> np.ndarray:
    """Smoothed counts ``(n_j + eps) / (S + M eps) * S`` per codebook, ``cluster_size (C, M)``.

    They sum to ``S = sum_j n_j`` in every codebook and are > 0 wherever ``S > 0``.
    """
    n = _checks.float_array(cluster_size, "cluster_size")
    if n.ndim != 2:
        raise ValueError(f"cluster_size must have shape (C, M), got {n.shape}")
    eps = _checks.check_number(eps, "eps", low=0, low_open=True)
    S = n.sum(axis=-1, keepdims=True)  # (C, 1)
    return (n + eps) / (S + n.shape[-1] * eps) * S  # (C, M)


def dead_threshold(batch_size: int, N: int, M: int, factor: float = 0.1) -> float:
    """The sweeps' ``"uniform_importance"`` rule: ``factor * batch_size * N / M`` (the expected
    EMA count of a key under uniform use, times ``factor``)."""
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    N = _checks.check_number(N, "N", integer=True, low=1)
    M = _checks.check_number(M, "M", integer=True, low=1)
    factor = _checks.check_number(factor, "factor", low=0)
    return factor * batch_size * N / M


def _check(codebooks, h):
    _checks.check_instance(codebooks, KVCodebooks, "codebooks")
    h = _checks.float_array(h, "h")
    if h.ndim != 4 or h.shape[1] != codebooks.C or h.shape[3] != codebooks.d_k or 0 in h.shape:
        raise ValueError(f"h must have shape (B, C, N, d_k) with C = {codebooks.C}, d_k = "
                         f"{codebooks.d_k} and B, N >= 1, got {h.shape}")
    _checks.check_finite(h, "h", hint="")
    return h.astype(codebooks.dtype, copy=False)


def replace_dead_keys(codebooks, h, threshold: float, rng=None) -> np.ndarray:
    """Replace keys whose EMA count is below ``threshold`` by random heads of the batch.

    Returns the replaced mask ``(C, M)`` bool. ``threshold = 0`` replaces nothing (the official
    ``threshold_ema_dead_code = 0``). Every codebook draws ``M`` head indices with replacement,
    as the official ``sample_vectors``, and uses those of its dead keys.
    """
    h = _check(codebooks, h)
    threshold = _checks.check_number(threshold, "threshold", low=0)
    dead = codebooks.cluster_size < threshold  # (C, M)
    if threshold == 0 or not dead.any():
        return np.zeros_like(dead)
    B, C, N, d_k = h.shape
    rows = h.transpose(1, 0, 2, 3).reshape(C, B * N, d_k)  # (C, B N, d_k)
    pick = _checks.check_rng(rng).integers(0, B * N, size=(C, codebooks.M))  # (C, M)
    samples = np.take_along_axis(rows, pick[..., None], axis=1)  # (C, M, d_k)
    codebooks.keys = np.where(dead[..., None], samples, codebooks.keys)
    return dead


def ema_update(codebooks, h, decay: float = 0.95, eps: float = 1e-5, threshold: float = 0.0,
               rng=None, *, faithful: bool = True, backend="numpy") -> np.ndarray:
    """One EMA step of every codebook's keys on heads ``h (B, C, N, d_k)``, in place.

    Parameters
    ----------
    codebooks : KVCodebooks with ``update_keys`` on (``ValueError`` once the keys are frozen).
    decay : gamma in [0, 1); eps : Laplace smoothing > 0; threshold : dead-key EMA count >= 0.
    rng : Generator or seed for dead-key replacement.
    faithful : True (default) is the official arithmetic, in which ``keys_avg`` starts as the
        initial keys and ``cluster_size`` at 0, so a key without any assignment yet becomes
        ``keys_avg / eps``-sized (it blows up, then decays away). False keeps every key whose
        EMA count is still exactly 0 unchanged instead.
    backend : tier of ``kv_assign_stats``.

    Returns
    -------
    counts : (C, M) this batch's assignment counts ``n_j``.
    """
    h = _check(codebooks, h)
    decay = _checks.check_number(decay, "decay", low=0, high=1, high_open=True)
    eps = _checks.check_number(eps, "eps", low=0, low_open=True)
    faithful = _checks.check_flag(faithful, "faithful")
    if not codebooks.update_keys:
        raise ValueError("codebooks.update_keys is False: the keys are frozen (phase 2); "
                         "ema_update belongs to phase 1")
    n, s = kv_assign_stats(h, codebooks.keys, backend=backend)  # (C, M), (C, M, d_k)
    t = codebooks.dtype.type
    g = t(decay)
    codebooks.cluster_size = g * codebooks.cluster_size + (t(1) - g) * np.asarray(n, t)
    codebooks.keys_avg = g * codebooks.keys_avg + (t(1) - g) * np.asarray(s, t)
    smoothed = laplace_smoothing(codebooks.cluster_size, eps)  # (C, M)
    with np.errstate(divide="ignore", invalid="ignore"):
        new = codebooks.keys_avg / smoothed[..., None]  # (C, M, d_k)
    if not faithful:
        new = np.where(codebooks.cluster_size[..., None] > 0, new, codebooks.keys)
    codebooks.keys = new.astype(codebooks.dtype, copy=False)
    replace_dead_keys(codebooks, h, threshold, rng)
    return np.asarray(n)


def fit_keys(codebooks, encoder, splitter, loader, epochs: int = 1, *, decay: float = 0.95,
             eps: float = 1e-5, threshold: float = 0.0, rng=None, faithful: bool = True,
             backend="numpy") -> KVCodebooks:
    """Phase 1: ``epochs`` passes of :func:`ema_update` over ``loader`` (an iterable of input
    batches, re-iterated each epoch), encoder and splitter frozen; then the keys are frozen.

    Returns ``codebooks`` (updated in place, ``update_keys`` off).
    """
    epochs = _checks.check_number(epochs, "epochs", integer=True, low=0)
    rng = _checks.check_rng(rng)
    for _ in range(epochs):
        for x in loader:
            ema_update(codebooks, splitter(encoder(x)), decay, eps, threshold, rng,
                       faithful=faithful, backend=backend)
    codebooks.freeze_keys()
    return codebooks
