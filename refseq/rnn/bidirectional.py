"""Bidirectional RNNs with per-sequence lengths (Schuster & Paliwal 1997, as presented in
Lipton et al., arXiv 1506.00019, Sec. 4.2).

.. math::

    h(t) &= \\sigma(W^{hx} x(t) + W^{hh} h(t-1) + b_h), && h(0) = 0 \\\\
    z(t) &= \\sigma(W^{zx} x(t) + W^{zz} z(t+1) + b_z), && z(L_b + 1) = 0 \\\\
    \\hat y(t) &= \\mathrm{softmax}(W^{yh} h(t) + W^{yz} z(t) + b_y)

The backward layer :math:`z` starts at each sequence's *own* last real token: it runs as an
ordinary forward-in-time layer on :func:`~refseq.rnn.masking.reverse_within_length` of the
input, and its outputs are reversed back the same way. Either direction may be any layer of the
layer protocol (:class:`~refseq.rnn.elman.ElmanLayer`, :class:`~refseq.rnn.lstm.LSTMLayer`;
an LSTM in both gives the BLSTM). Code names: ``h_fwd`` = :math:`h`, ``h_bwd`` = :math:`z`,
``W_yh (K, H_f)``, ``W_yz (K, H_b)``, ``b_y (K,)``.

Deviation from a plain wrapper: :func:`bidirectional` returns ``(out, cache)`` so that
:func:`bidirectional_backward` can run; outputs at padded positions are set to 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.rnn.masking import check_lengths, reverse_within_length

MERGES = ("concat", "sum", "separate")
LAYER = "a layer (forward and backward methods, e.g. ElmanLayer or LSTMLayer)"


class BidirectionalCache(NamedTuple):
    fwd: object  # forward-direction layer
    bwd: object  # backward-direction layer
    fwd_cache: object
    bwd_cache: object
    lengths: np.ndarray | None  # (B,)
    real: np.ndarray | None  # (B, T, 1) bool
    merge: str
    H_f: int
    shape: tuple  # (B, T, H_f, H_b)


def bidirectional(forward_fn, backward_fn, x, lengths=None, merge="concat"):
    """Run ``forward_fn`` left to right and ``backward_fn`` right to left within each length.

    Parameters
    ----------
    forward_fn, backward_fn : layers with ``forward(x, state0, lengths) -> (h, state, cache)``
        and ``backward(dh, d_state, cache) -> (dx, grads, d_state0)``.
    x : (B, T, I) float32 or float64.
    lengths : (B,) int in [0, T], optional — right-padded batch.
    merge : "concat" -> (B, T, H_f + H_b); "sum" -> (B, T, H) (needs H_f = H_b);
        "separate" -> ``(h_fwd (B, T, H_f), h_bwd (B, T, H_b))``.

    Returns
    -------
    out : as selected by ``merge``, aligned to input positions, 0 at padding;
    cache : BidirectionalCache for :func:`bidirectional_backward`.
    """
    _checks.check_choice(merge, "merge", MERGES)
    for name, layer in (("forward_fn", forward_fn), ("backward_fn", backward_fn)):
        _checks.check_methods(layer, name, ("forward", "backward"), LAYER)
    x = _checks.float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, I), got {x.shape}")
    B, T, _ = x.shape
    L = check_lengths(lengths, B, T)
    h_f, _, cf = forward_fn.forward(x, None, L)  # (B, T, H_f)
    z_rev, _, cb = backward_fn.forward(reverse_within_length(x, L), None, L)  # (B, T, H_b)
    h_b = reverse_within_length(z_rev, L)  # (B, T, H_b) aligned to input positions
    real = None
    if L is not None:
        real = np.arange(T)[None, :, None] < L[:, None, None]  # (B, T, 1)
        h_f, h_b = np.where(real, h_f, 0), np.where(real, h_b, 0)
    if merge == "sum" and h_f.shape != h_b.shape:
        raise ValueError(f'merge="sum" needs equal widths, got {h_f.shape[-1]} and '
                         f"{h_b.shape[-1]}")
    out = {"concat": lambda: np.concatenate([h_f, h_b], axis=-1),  # (B, T, H_f + H_b)
           "sum": lambda: h_f + h_b,
           "separate": lambda: (h_f, h_b)}[merge]()
    return out, BidirectionalCache(forward_fn, backward_fn, cf, cb, L, real, merge,
                                   h_f.shape[-1], h_f.shape + h_b.shape[-1:])


def bidirectional_backward(dout, cache: BidirectionalCache):
    """VJP of :func:`bidirectional`: ``(dx (B, T, I), grads_fwd, grads_bwd)``.

    The backward direction's gradient is reversed within each length, sent through
    ``backward_fn.backward`` and the resulting input gradient reversed back (the reversal is a
    permutation that is its own inverse).
    """
    fwd, bwd, cf, cb, L, real, merge, H_f, (B, T, _, H_b) = cache
    if merge == "separate":
        if not isinstance(dout, (tuple, list)) or len(dout) != 2:
            raise TypeError(f'dout must be a pair (dh_fwd, dh_bwd) for merge="separate", got '
                            f"{type(dout).__name__}")
        dh_f, dh_b = (_checks.float_array(d, f"dout[{i}]") for i, d in enumerate(dout))
        _checks.check_shape(dh_f, (B, T, H_f), "dout[0]", "(B, T, H_f)")
        _checks.check_shape(dh_b, (B, T, H_b), "dout[1]", "(B, T, H_b)")
    else:
        dout = _checks.float_array(dout, "dout")
        width = H_f + H_b if merge == "concat" else H_f
        _checks.check_shape(dout, (B, T, width), "dout", "like the output of bidirectional")
        dh_f, dh_b = (dout[..., :H_f], dout[..., H_f:]) if merge == "concat" else (dout, dout)
    if real is not None:
        dh_f, dh_b = np.where(real, dh_f, 0), np.where(real, dh_b, 0)
    dx_f, grads_f, _ = fwd.backward(dh_f, None, cf)
    dx_rev, grads_b, _ = bwd.backward(reverse_within_length(dh_b, L), None, cb)
    return dx_f + reverse_within_length(dx_rev, L), grads_f, grads_b


def brnn_output(h_fwd, h_bwd, W_yh, W_yz, b_y):
    """The review's output form ``logits (B, T, K) = W^{yh} h(t) + W^{yz} z(t) + b_y``."""
    h_fwd, h_bwd, W_yh, W_yz = _check_output(h_fwd, h_bwd, W_yh, W_yz)
    b_y = _checks.float_array(b_y, "b_y", dtype=h_fwd.dtype)
    _checks.check_shape(b_y, W_yh.shape[:1], "b_y", "(K,)")
    return h_fwd @ W_yh.T + h_bwd @ W_yz.T + b_y  # (B, T, K)


def _check_output(h_fwd, h_bwd, W_yh, W_yz):
    """``h_fwd (B, T, H_f)``, ``h_bwd (B, T, H_b)``, ``W_yh (K, H_f)``, ``W_yz (K, H_b)``."""
    h_fwd = _checks.float_array(h_fwd, "h_fwd")
    if h_fwd.ndim != 3:
        raise ValueError(f"h_fwd must have shape (B, T, H_f), got {h_fwd.shape}")
    h_bwd = _checks.float_array(h_bwd, "h_bwd", dtype=h_fwd.dtype)
    if h_bwd.ndim != 3 or h_bwd.shape[:2] != h_fwd.shape[:2]:
        raise ValueError(f"h_bwd must have shape (B, T, H_b) with (B, T) = {h_fwd.shape[:2]} "
                         f"(from h_fwd), got {h_bwd.shape}")
    W_yh = _checks.float_array(W_yh, "W_yh", dtype=h_fwd.dtype)
    if W_yh.ndim != 2:
        raise ValueError(f"W_yh must have shape (K, H_f), got {W_yh.shape}")
    K = W_yh.shape[0]
    _checks.check_shape(W_yh, (K, h_fwd.shape[-1]), "W_yh", "(K, H_f), H_f from h_fwd")
    W_yz = _checks.float_array(W_yz, "W_yz", dtype=h_fwd.dtype)
    _checks.check_shape(W_yz, (K, h_bwd.shape[-1]), "W_yz", "(K, H_b), H_b from h_bwd")
    return h_fwd, h_bwd, W_yh, W_yz


def brnn_output_backward(dlogits, h_fwd, h_bwd, W_yh, W_yz):
    """VJP of :func:`brnn_output`: ``(dh_fwd, dh_bwd, dW_yh, dW_yz, db_y)``."""
    h_fwd, h_bwd, W_yh, W_yz = _check_output(h_fwd, h_bwd, W_yh, W_yz)
    dlogits = _checks.float_array(dlogits, "dlogits", dtype=h_fwd.dtype)
    K = W_yh.shape[0]
    _checks.check_shape(dlogits, h_fwd.shape[:2] + (K,), "dlogits", "(B, T, K)")
    d2 = dlogits.reshape(-1, K)  # (B*T, K)
    return (dlogits @ W_yh, dlogits @ W_yz, d2.T @ h_fwd.reshape(len(d2), -1),
            d2.T @ h_bwd.reshape(len(d2), -1), d2.sum(axis=0))
