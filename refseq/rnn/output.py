"""Output layer, masked sequence loss and the many-to-one readout (Lipton et al., arXiv
1506.00019, Sec. 3).

.. math::

    o(t) = W^{yh} h(t) + b_y, \\qquad \\hat y(t) = \\mathrm{softmax}(o(t)), \\qquad
    L = \\textstyle\\sum_{b,t} m_b(t)\\, \\big(-\\log \\hat y_b(t)_{y_b(t)}\\big)

and :math:`δo(t) = m(t)(\\hat y(t) - \\mathrm{onehot}(y(t)))`. Code names: ``W_yh (K, H)``,
``b_y (K,)``, ``logits`` = :math:`o`, ``mask`` = :math:`m` (True = real token).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.rnn.masking import check_lengths, mask_from

REDUCTIONS = ("sum", "mean_tokens", "mean_sequences")


def _check_h_W(h, W_yh):
    h = _checks.float_array(h, "h", ndim_min=1)
    W_yh = _checks.float_array(W_yh, "W_yh", dtype=h.dtype)
    if W_yh.ndim != 2 or W_yh.shape[1] != h.shape[-1]:
        raise ValueError(f"W_yh must have shape (K, H) with H = h.shape[-1] = {h.shape[-1]}, "
                         f"got {W_yh.shape} (h has shape {h.shape})")
    return h, W_yh


def softmax_output(h, W_yh, b_y):
    """``logits (B, T, K) = h W_yhᵀ + b_y`` for ``h (B, T, H)``, ``W_yh (K, H)``, ``b_y (K,)``."""
    h, W_yh = _check_h_W(h, W_yh)
    b_y = _checks.float_array(b_y, "b_y", dtype=h.dtype)
    _checks.check_shape(b_y, W_yh.shape[:1], "b_y", "(K,)")
    return h @ W_yh.T + b_y  # (B, T, K)


def softmax_output_backward(dlogits, h, W_yh):
    """VJP of :func:`softmax_output`: ``(dh, dW_yh, db_y)``."""
    h, W_yh = _check_h_W(h, W_yh)
    K, H = W_yh.shape
    dlogits = _checks.float_array(dlogits, "dlogits", dtype=h.dtype)
    _checks.check_shape(dlogits, h.shape[:-1] + (K,), "dlogits", "h.shape[:-1] + (K,)")
    dh = dlogits @ W_yh  # (B, T, H)
    dW_yh = dlogits.reshape(-1, K).T @ h.reshape(-1, H)  # (K, H)
    return dh, dW_yh, dlogits.reshape(-1, K).sum(axis=0)


def sequence_cross_entropy(logits, targets, mask=None, reduction="sum"):
    """Masked cross-entropy of ``targets`` under ``softmax(logits)`` and its gradient.

    Parameters
    ----------
    logits : (B, T, K) float32 or float64.
    targets : (B, T) int in [0, K) at real positions (anything at masked ones).
    mask : (B, T) bool, optional — True = real token; None = all real.
    reduction : "sum" | "mean_tokens" (divide by the number of real tokens) |
        "mean_sequences" (divide by B: the per-sequence summed loss, averaged).

    Returns
    -------
    loss : 0-d array of ``logits``' dtype; dlogits : (B, T, K), exactly 0 at masked positions.

    Raises
    ------
    ValueError naming ``targets`` or ``mask`` on a wrong shape or an out-of-range target.
    """
    _checks.check_choice(reduction, "reduction", REDUCTIONS)
    logits = _checks.float_array(logits, "logits")
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape (B, T, K), got {logits.shape}")
    B, T, K = logits.shape
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be an integer array (B, T), got {targets.dtype}")
    _checks.check_shape(targets, (B, T), "targets", "(B, T)")
    m = mask_from(mask, None, B, T)
    m = np.ones((B, T), bool) if m is None else m
    bad = m & ((targets < 0) | (targets >= K))
    if bad.any():
        raise ValueError(f"targets must lie in [0, {K}) at real positions, found "
                         f"{int(targets[bad].flat[0])}")
    safe = np.where(m, targets, 0)[..., None]  # (B, T, 1)
    z = logits - logits.max(axis=-1, keepdims=True)  # (B, T, K) log-sum-exp shift
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    nll = np.where(m, -np.take_along_axis(logp, safe, axis=-1)[..., 0], 0)  # (B, T)
    dlogits = np.exp(logp)
    np.put_along_axis(dlogits, safe, np.take_along_axis(dlogits, safe, axis=-1) - 1, axis=-1)
    dlogits = np.where(m[..., None], dlogits, 0)
    denom = {"sum": 1, "mean_tokens": max(int(m.sum()), 1), "mean_sequences": max(B, 1)}
    scale = logits.dtype.type(1.0 / denom[reduction])
    return np.asarray(nll.sum() * scale, logits.dtype), (dlogits * scale).astype(logits.dtype)


def last_step(h, lengths=None):
    """Many-to-one readout: ``h[b, L_b - 1]`` for ``h (B, T, H)`` (``h[:, -1]`` without lengths).

    Raises ``ValueError`` for a zero length (there is no last step) or a length outside [1, T].
    """
    h = _checks.float_array(h, "h")
    if h.ndim != 3:
        raise ValueError(f"h must have shape (B, T, H), got {h.shape}")
    B, T, _ = h.shape
    L = _last_lengths(lengths, B, T)
    return h[np.arange(B), L - 1]  # (B, H)


def _last_lengths(lengths, B, T):
    L = check_lengths(lengths, B, T) if lengths is not None else np.full(B, T)
    if (L == 0).any():
        raise ValueError("lengths must be >= 1 for last_step (a length-0 sequence has no last "
                         "step)")
    return L


def last_step_backward(dy, h_shape, lengths=None):
    """VJP of :func:`last_step`: ``dh (B, T, H)`` zero except at each sequence's last step."""
    if not isinstance(h_shape, tuple) or len(h_shape) != 3:
        raise TypeError(f"h_shape must be the tuple (B, T, H) of h's shape, got {h_shape!r}")
    B, T, H = (_checks.check_number(n, f"h_shape[{i}]", integer=True, low=0)
               for i, n in enumerate(h_shape))
    dy = _checks.float_array(dy, "dy")
    _checks.check_shape(dy, (B, H), "dy", "(B, H) from h_shape")
    L = _last_lengths(lengths, B, T)
    dh = np.zeros((B, T, H), dy.dtype)
    dh[np.arange(B), L - 1] = dy
    return dh
