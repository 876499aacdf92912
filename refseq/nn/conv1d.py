"""Causal 1-D convolution over time (dense or depthwise), streaming, with its VJP.

Symbols: B batch, T time, K kernel width, C / C_in / C_out channels. Causal means output ``t``
sees inputs ``t-K+1 .. t`` only: the input is padded on the left with ``K - 1`` steps, taken from
``state`` (the last ``K - 1`` inputs of the previous chunk; zeros when ``state`` is None). With
``x_pad = concat(state, x)`` along time,

.. math:: y_t = \\sum_{k=0}^{K-1} x_{\\mathrm{pad},\\, t+k}\\, W_k + b

so ``W[K-1]`` multiplies the current input (the cross-correlation convention of
``torch.nn.functional.conv1d``, whose weight is ``W.transpose(2, 1, 0)``; Mamba's and H3's short
convolutions are the depthwise case). The state to carry into the next chunk is
``cache.final_state = x_pad[:, T:]``, so calling chunk by chunk equals one call on the whole
sequence.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from refseq import _checks

GROUPS = ("dense", "depthwise")


class Conv1dCache(NamedTuple):
    windows: np.ndarray  # (B, T, C_in, K) view of x_pad: windows[b, t, :, k] = x_pad[b, t + k]
    W: np.ndarray  # (K, C_in, C_out) or (K, C)
    depthwise: bool
    has_bias: bool
    has_state: bool
    final_state: np.ndarray  # (B, K-1, C_in) state to pass to the next chunk


def conv1d_forward(x, W, b=None, state=None, groups: str = "dense"):
    """Causal convolution of ``x`` with ``W``.

    Parameters
    ----------
    x : (B, T, C_in) float32 or float64.
    W : (K, C_in, C_out) for ``groups="dense"``; (K, C) for ``groups="depthwise"`` (each channel
        filtered on its own, ``C_out = C_in = C``).
    b : (C_out,), optional.
    state : (B, K-1, C_in), optional — the inputs preceding ``x`` (zeros when None).
    groups : "dense" or "depthwise".

    Returns
    -------
    y : (B, T, C_out), ``x``'s dtype; cache : Conv1dCache, with ``cache.final_state``
    (B, K-1, C_in) to carry into the next chunk.
    """
    _checks.check_choice(groups, "groups", GROUPS)
    x = _checks.float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, C_in), got {x.shape}")
    B, T, C = x.shape
    W = _checks.float_array(W, "W", dtype=x.dtype)
    depthwise = groups == "depthwise"
    if depthwise and (W.ndim != 2 or W.shape[1] != C or W.shape[0] < 1):
        raise ValueError(f"W must have shape (K, C) with C = {C} for groups='depthwise', "
                         f"got {W.shape}")
    if not depthwise and (W.ndim != 3 or W.shape[1] != C or W.shape[0] < 1):
        raise ValueError(f"W must have shape (K, C_in, C_out) with C_in = {C}, got {W.shape}")
    K, C_out = W.shape[0], W.shape[-1]
    if state is None:
        state_ = np.zeros((B, K - 1, C), x.dtype)
    else:
        state_ = _checks.float_array(state, "state", dtype=x.dtype)
        _checks.check_shape(state_, (B, K - 1, C), "state", "(B, K-1, C_in)")
    x_pad = np.concatenate([state_, x], axis=1)  # (B, T+K-1, C_in)
    windows = sliding_window_view(x_pad, K, axis=1)  # (B, T, C_in, K)
    if depthwise:
        y = np.einsum("btck,kc->btc", windows, W)  # (B, T, C)
    else:
        y = np.einsum("btck,kco->bto", windows, W)  # (B, T, C_out)
    if b is not None:
        b = _checks.float_array(b, "b", dtype=x.dtype)
        _checks.check_shape(b, (C_out,), "b", "(C_out,)")
        y = y + b
    cache = Conv1dCache(windows, W, depthwise, b is not None, state is not None,
                        x_pad[:, T:].copy())
    return y, cache


def conv1d_backward(dy, cache: Conv1dCache):
    """Vector-Jacobian product of :func:`conv1d_forward`.

    .. math:: dW_k = \\sum_{b,t} x_{\\mathrm{pad},\\, t+k}^\\top dy_t, \\qquad
              dx_{\\mathrm{pad},\\, s} = \\sum_{k} dy_{s-k}\\, W_k^\\top, \\qquad
              db = \\sum_{b,t} dy_t

    (elementwise products instead of matrix products in the depthwise case). ``dx_pad`` splits
    into ``dstate`` (its first ``K - 1`` steps) and ``dx``.

    Returns
    -------
    dx : (B, T, C_in); dW : W's shape; db : (C_out,) or None; dstate : (B, K-1, C_in) or None
    when the forward had no ``state``.
    """
    windows, W, depthwise, has_bias, has_state, _ = cache
    B, T, C, K = windows.shape
    dy = _checks.float_array(dy, "dy", dtype=W.dtype)
    _checks.check_shape(dy, (B, T, W.shape[-1]), "dy", "(B, T, C_out)")
    dx_pad = np.zeros((B, T + K - 1, C), W.dtype)  # (B, T+K-1, C_in)
    if depthwise:
        dW = np.einsum("btck,btc->kc", windows, dy)  # (K, C)
        for k in range(K):
            dx_pad[:, k : k + T] += dy * W[k]
    else:
        dW = np.einsum("btck,bto->kco", windows, dy)  # (K, C_in, C_out)
        for k in range(K):
            dx_pad[:, k : k + T] += dy @ W[k].T
    db = dy.sum(axis=(0, 1)) if has_bias else None
    dstate = dx_pad[:, : K - 1] if has_state else None
    return dx_pad[:, K - 1 :], dW, db, dstate
