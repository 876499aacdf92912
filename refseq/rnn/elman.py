"""Elman (simple) RNN with explicit BPTT (Lipton et al., arXiv 1506.00019, Sec. 3; Elman 1990).

.. math::

    a(t) = W^{hx} x(t) + W^{hh} h(t-1) + b_h, \\qquad h(t) = \\sigma_h(a(t)), \\qquad h(0) = 0

Code names: ``W_hx (H, I)`` = :math:`W^{hx}`, ``W_hh (H, H)`` = :math:`W^{hh}`, ``b_h (H,)``,
``h0 (B, H)``; ``activation`` is the review's generic :math:`\\sigma_h` (tanh, sigmoid or ReLU).

BPTT (the review's Sec. 3 equations; ``δ`` = gradient of the loss):

.. math::

    δa(t) = δh(t) \\odot \\sigma_h'(a(t)), \\quad
    δh(t-1) \\mathrel{+}= W^{hh\\top} δa(t), \\quad
    ∂W^{hh} = \\textstyle\\sum_t δa(t) h(t-1)^\\top, \\; ∂W^{hx} = \\sum_t δa(t) x(t)^\\top

With ``lengths``, padded steps keep the state (``h(t) = h(t-1)`` for ``t > L_b``), so ``h_last``
is the state after each sequence's last real token and padded steps pass ``δh`` through unchanged.

For ``tanh`` and ``relu`` the recurrence runs on the shared engine
(:func:`refseq.recurrence.engine.flashrnn_forward`, cells ``elman`` / ``elman_relu``, one head);
``use_engine=False`` (and ``sigmoid``, which the engine's cell registry does not have) runs this
module's own loop. The two agree to round-off (a test).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.rnn.masking import check_lengths


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))  # = 1 / (1 + e^-a), without overflow


ENGINE_CELLS = {"tanh": "elman", "relu": "elman_relu"}  # activation -> engine cell
# name -> (σ_h, σ_h' written in terms of h = σ_h(a))
ACTIVATIONS = {
    "tanh": (np.tanh, lambda h: 1 - h * h),
    "sigmoid": (_sigmoid, lambda h: h * (1 - h)),
    "relu": (lambda a: np.maximum(a, 0), lambda h: (h > 0).astype(h.dtype)),
}


class ElmanCache(NamedTuple):
    x: np.ndarray  # (B, T, I)
    W_hx: np.ndarray  # (H, I)
    W_hh: np.ndarray  # (H, H)
    h0: np.ndarray  # (B, H)
    h: np.ndarray  # (B, T, H) states as returned
    lengths: np.ndarray | None  # (B,)
    activation: str
    engine_cache: object  # the engine's cache, or None for the own loop
    b_h: np.ndarray  # (H,)


def _check_params(x, W_hx, W_hh, b_h, h0):
    x = _checks.float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, I), got {x.shape}")
    B, T, I = x.shape
    W_hx = _checks.float_array(W_hx, "W_hx", dtype=x.dtype)
    if W_hx.ndim != 2 or W_hx.shape[1] != I:
        raise ValueError(f"x and W_hx disagree: W_hx must have shape (H, I) with I = "
                         f"x.shape[-1] = {I}, got W_hx {W_hx.shape} and x {x.shape}")
    H = W_hx.shape[0]
    W_hh = _checks.float_array(W_hh, "W_hh", dtype=x.dtype)
    _checks.check_shape(W_hh, (H, H), "W_hh", "(H, H)")
    b_h = _checks.float_array(b_h, "b_h", dtype=x.dtype)
    _checks.check_shape(b_h, (H,), "b_h", "(H,)")
    if h0 is None:
        h0 = np.zeros((B, H), x.dtype)
    h0 = _checks.float_array(h0, "h0", dtype=x.dtype)
    _checks.check_shape(h0, (B, H), "h0", "(B, H)")
    return x, W_hx, W_hh, b_h, h0


def elman_forward(x, W_hx, W_hh, b_h, h0=None, activation="tanh", lengths=None, *,
                  use_engine=True):
    """Run the Elman RNN over ``x``.

    Parameters
    ----------
    x : (B, T, I) float32 or float64.
    W_hx : (H, I); W_hh : (H, H); b_h : (H,) — cast to ``x``'s dtype.
    h0 : (B, H), optional — zeros by default.
    activation : "tanh" | "sigmoid" | "relu".
    lengths : (B,) int in [0, T], optional — right-padded batch; padded steps keep the state.
    use_engine : run ``tanh``/``relu`` on the shared engine (default) or on the own loop.

    Returns
    -------
    h : (B, T, H); h_last : (B, H) — the state after each sequence's last real token;
    cache : ElmanCache for :func:`elman_backward`.
    """
    use_engine = check_flag(use_engine, "use_engine")
    _checks.check_choice(activation, "activation", sorted(ACTIVATIONS))
    x, W_hx, W_hh, b_h, h0 = _check_params(x, W_hx, W_hh, b_h, h0)
    B, T, _ = x.shape
    L = check_lengths(lengths, B, T)
    if L is not None:  # padding never enters the arithmetic (NaN there stays harmless)
        x = np.where(np.arange(T)[None, :, None] < L[:, None, None], x, 0)
    if activation in ENGINE_CELLS and use_engine:
        h, h_last, ecache = _forward_engine(x, W_hx, W_hh, b_h, h0, L, ENGINE_CELLS[activation])
    else:
        h, h_last, ecache = _forward_loop(x, W_hx, W_hh, b_h, h0, L, activation), None, None
        h_last = h[:, -1] if T else h0.copy()
    return h, h_last, ElmanCache(x, W_hx, W_hh, h0, h, L, activation, ecache, b_h)


def _forward_loop(x, W_hx, W_hh, b_h, h0, L, activation):
    """The review's loop; padded steps copy the previous state."""
    act = ACTIVATIONS[activation][0]
    B, T, _ = x.shape
    h = np.empty((B, T, W_hx.shape[0]), x.dtype)  # (B, T, H)
    prev = h0
    for t in range(T):
        new = act(x[:, t] @ W_hx.T + prev @ W_hh.T + b_h)  # (B, H)
        if L is not None:
            new = np.where((t < L)[:, None], new, prev)
        h[:, t] = prev = new
    return h


def _forward_engine(x, W_hx, W_hh, b_h, h0, L, cell):
    """One-head call of the shared engine; lengths applied afterwards (a right-padded run is
    causal, so real positions never see padding); padded outputs copy the last real state."""
    from refseq.recurrence.engine import flashrnn_forward
    from refseq.recurrence.projection import project_inputs

    Wx = project_inputs(x, W_hx[None, None], None)  # (B, T, 1, 1, H)
    states_all, last, ecache = flashrnn_forward(
        Wx, W_hh[None, None], b_h[None, None], h0[None, :, None, :], cell=cell,
        return_cache=True, check_finite=False)
    h = states_all[0, :, :, 0, :]  # (B, T, H)
    if L is None:
        return h, last[0, :, 0, :], ecache
    h_last = _last_real(h, h0, L)  # (B, H)
    real = np.arange(x.shape[1])[None, :, None] < L[:, None, None]  # (B, T, 1)
    return np.where(real, h, h_last[:, None, :]), h_last, ecache


def _last_real(h, h0, L):
    """``h[b, L_b - 1]``, or ``h0[b]`` where ``L_b = 0``."""
    idx = np.maximum(L - 1, 0)
    picked = h[np.arange(h.shape[0]), idx] if h.shape[1] else h0  # (B, H)
    return np.where((L > 0)[:, None], picked, h0)


def elman_backward(dh, dh_last, cache: ElmanCache):
    """BPTT for :func:`elman_forward`.

    Parameters
    ----------
    dh : (B, T, H) — cotangent of ``h``; dh_last : (B, H) or None — cotangent of ``h_last``.

    Returns
    -------
    dx : (B, T, I); dW_hx : (H, I); dW_hh : (H, H); db_h : (H,); dh0 : (B, H).
    """
    x, W_hx, W_hh, h0, h, L, activation, ecache, b_h = cache
    dh = _checks.float_array(dh, "dh", dtype=x.dtype)
    _checks.check_shape(dh, h.shape, "dh", "(B, T, H)")
    if dh_last is None:
        dh_last = np.zeros_like(h0)
    dh_last = _checks.float_array(dh_last, "dh_last", dtype=x.dtype)
    _checks.check_shape(dh_last, h0.shape, "dh_last", "(B, H)")
    if ecache is not None:
        return _backward_engine(dh, dh_last, cache)
    dphi = ACTIVATIONS[activation][1]
    B, T, _ = x.shape
    dx = np.zeros_like(x)
    dW_hx, dW_hh, db_h = np.zeros_like(W_hx), np.zeros_like(W_hh), np.zeros_like(b_h)
    carry = dh_last  # δh(t) arriving from step t+1 (and from h_last at t = T)
    for t in range(T - 1, -1, -1):
        prev = h[:, t - 1] if t else h0  # (B, H)
        g = dh[:, t] + carry  # (B, H) total δh(t)
        da = g * dphi(h[:, t])  # (B, H) δa(t)
        if L is not None:
            real = (t < L)[:, None]
            da = np.where(real, da, 0)
        dx[:, t] = da @ W_hx
        dW_hx += da.T @ x[:, t]
        dW_hh += da.T @ prev
        db_h += da.sum(axis=0)
        carry = da @ W_hh if L is None else np.where(real, da @ W_hh, g)
    return dx, dW_hx, dW_hh, db_h, carry


def _backward_engine(dh, dh_last, cache):
    from refseq.recurrence.engine import flashrnn_backward

    x, W_hx, W_hh, h0, h, L, activation, ecache, b_h = cache
    B, T, _ = x.shape
    extra0 = np.zeros_like(h0)  # gradient that skips the run (sequences of length 0)
    if L is None:
        d_run, d_last = dh, dh_last
    else:  # padded outputs and h_last are copies of h[b, L_b - 1] (or of h0 when L_b = 0)
        real = np.arange(T)[None, :, None] < L[:, None, None]  # (B, T, 1)
        to_last = dh_last + np.where(real, 0, dh).sum(axis=1)  # (B, H)
        d_run = np.where(real, dh, 0)
        rows = np.nonzero(L > 0)[0]
        d_run[rows, L[rows] - 1] += to_last[rows]
        extra0 = np.where((L == 0)[:, None], to_last, 0)
        d_last = None
    if d_last is not None:
        d_last = d_last[None, :, None, :]
    d0, dWx, dR, db = flashrnn_backward(
        d_run[None, :, :, None, :], d_last, W_hh[None, None], b_h[None, None], ecache,
        cell=ENGINE_CELLS[activation])
    da = dWx[:, :, 0, 0, :]  # (B, T, H) δa(t)
    dx = da @ W_hx  # (B, T, I)
    dW_hx = np.einsum("bth,bti->hi", da, x)
    return dx, dW_hx, dR[0, 0], db[0, 0], d0[0, :, 0, :] + extra0


class ElmanLayer:
    """An Elman layer in the layer protocol used by :mod:`refseq.rnn.bidirectional`,
    :mod:`refseq.rnn.stack` and :mod:`refseq.rnn.bptt`:

    ``forward(x, state0=None, lengths=None) -> (h, state_last, cache)`` and
    ``backward(dh, d_state_last, cache) -> (dx, grads: dict, d_state0)``; ``params`` is a dict
    ``W_hx, W_hh, b_h`` (updated in place by optimisers). The state is ``h (B, H)``.
    """

    def __init__(self, W_hx, W_hh, b_h, activation="tanh"):
        self.activation = _checks.check_choice(activation, "activation", sorted(ACTIVATIONS))
        W_hx = _checks.float_array(W_hx, "W_hx")  # the same arrays (optimisers update them)
        if W_hx.ndim != 2:
            raise ValueError(f"W_hx must have shape (H, I), got {W_hx.shape}")
        H = W_hx.shape[0]
        W_hh, b_h = _checks.float_array(W_hh, "W_hh"), _checks.float_array(b_h, "b_h")
        _checks.check_shape(W_hh, (H, H), "W_hh", "(H, H) with H = W_hx.shape[0]")
        _checks.check_shape(b_h, (H,), "b_h", "(H,) with H = W_hx.shape[0]")
        self.params = {"W_hx": W_hx, "W_hh": W_hh, "b_h": b_h}

    @property
    def input_size(self) -> int:
        """``I``, the width of the input ``x (B, T, I)``."""
        return self.params["W_hx"].shape[1]

    @property
    def hidden_size(self) -> int:
        """``H``, the width of the output ``h (B, T, H)``."""
        return self.params["W_hh"].shape[0]

    @classmethod
    def init(cls, rng, I, H, dtype=np.float64, scale=1.0, activation="tanh"):
        """Random layer: ``W ~ N(0, scale² / fan_in)``, ``b ~ N(0, 0.1²)``."""
        _checks.check_choice(activation, "activation", sorted(ACTIVATIONS))
        rng, dtype = _checks.check_rng(rng), _checks.check_float_dtype(dtype, "dtype")
        I = _checks.check_number(I, "I", integer=True, low=1)
        H = _checks.check_number(H, "H", integer=True, low=1)
        scale = _checks.check_number(scale, "scale", low=0)
        return cls((scale * rng.standard_normal((H, I)) / np.sqrt(I)).astype(dtype),
                   (scale * rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype),
                   (0.1 * rng.standard_normal(H)).astype(dtype), activation)

    def forward(self, x, state0=None, lengths=None):
        p = self.params
        return elman_forward(x, p["W_hx"], p["W_hh"], p["b_h"], state0, self.activation, lengths)

    def backward(self, dh, d_state_last, cache):
        dx, dW_hx, dW_hh, db_h, dh0 = elman_backward(dh, d_state_last, cache)
        return dx, {"W_hx": dW_hx, "W_hh": dW_hh, "b_h": db_h}, dh0
