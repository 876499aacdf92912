"""Jordan network: the previous *output* is fed back through context units (Lipton et al., arXiv
1506.00019, Sec. 3; Jordan 1986).

.. math::

    c(t) &= \\alpha\\, c(t-1) + y(t-1), \\qquad c(0) = 0,\\; y(0) = y_0 \\ (\\text{default } 0) \\\\
    h(t) &= \\sigma_h(W^{hx} x(t) + W^{hc} c(t) + b_h), \\qquad
    o(t) = W^{yh} h(t) + b_y, \\qquad \\hat y(t) = \\mathrm{softmax}(o(t))

Code names: ``W_hx (H, I)``, ``W_hc (H, K)`` = :math:`W^{hc}`, ``b_h (H,)``, ``W_yh (K, H)``,
``b_y (K,)``, ``alpha`` = :math:`\\alpha`, ``y0 (B, K)``. What is fed back, ``feedback``:

* ``"probs"`` — :math:`y = \\hat y` (differentiable; gradients flow back through the softmax);
* ``"logits"`` — :math:`y = o`;
* ``"teacher"`` — :math:`y(t) = \\mathrm{onehot}(\\text{targets}(t))` (teacher forcing): the
  hidden states then do not depend on the model's own outputs and no gradient flows through the
  feedback. Sampled or argmax feedback is not offered: it is not differentiable.

The engine cannot express this (its recurrence reads the hidden state, not the output), so the
loop is written here. With ``W_hc = 0`` it is an Elman network with ``W_hh = 0`` (a test).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.rnn.elman import ACTIVATIONS

FEEDBACKS = ("probs", "logits", "teacher")


class JordanCache(NamedTuple):
    x: np.ndarray  # (B, T, I)
    P: dict  # W_hx, W_hc, b_h, W_yh, b_y
    h: np.ndarray  # (B, T, H)
    c: np.ndarray  # (B, T, K) context seen at each step
    probs: np.ndarray  # (B, T, K) softmax(o)
    alpha: float
    feedback: str
    activation: str


def _softmax(o):
    z = np.exp(o - o.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def jordan_forward(x, W_hx, W_hc, b_h, W_yh, b_y, alpha=0.0, y0=None, feedback="probs",
                   targets=None, activation="tanh"):
    """Run the Jordan network.

    Parameters
    ----------
    x : (B, T, I) float32 or float64; W_hx : (H, I); W_hc : (H, K); b_h : (H,);
    W_yh : (K, H); b_y : (K,).
    alpha : float in [0, 1] — context self-connection, a decay (0 removes it; above 1 the
        context would grow without bound).
    y0 : (B, K), optional — the output fed back at t = 1 (zeros by default).
    feedback : "probs" | "logits" | "teacher".
    targets : (B, T) int in [0, K) — required for ``"teacher"``.
    activation : hidden non-linearity, "tanh" | "sigmoid" | "relu".

    Returns
    -------
    h : (B, T, H); logits : (B, T, K) — :math:`o(t)` (``softmax`` of it is :math:`\\hat y`);
    cache : JordanCache for :func:`jordan_backward`.
    """
    _checks.check_choice(feedback, "feedback", FEEDBACKS)
    _checks.check_choice(activation, "activation", sorted(ACTIVATIONS))
    alpha = _checks.check_number(alpha, "alpha", low=0, high=1)
    x = _checks.float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, I), got {x.shape}")
    B, T, I = x.shape
    P = {k: _checks.float_array(v, k, dtype=x.dtype) for k, v in
         dict(W_hx=W_hx, W_hc=W_hc, b_h=b_h, W_yh=W_yh, b_y=b_y).items()}
    H, K = P["W_hx"].shape[0], P["W_yh"].shape[0]
    for k, (shape, form) in dict(W_hx=((H, I), "(H, I)"), W_hc=((H, K), "(H, K)"),
                                 b_h=((H,), "(H,)"), W_yh=((K, H), "(K, H)"),
                                 b_y=((K,), "(K,)")).items():
        _checks.check_shape(P[k], shape, k, form)
    y = np.zeros((B, K), x.dtype) if y0 is None else _checks.float_array(y0, "y0", dtype=x.dtype)
    _checks.check_shape(y, (B, K), "y0", "(B, K)")
    if feedback == "teacher":
        if targets is None:
            raise ValueError('feedback="teacher" needs targets (B, T)')
        targets = np.asarray(targets)
        if targets.dtype.kind not in "iu":
            raise TypeError(f"targets must be an integer array (B, T), got {targets.dtype}")
        _checks.check_shape(targets, (B, T), "targets", "(B, T)")
        if targets.size and (targets.min() < 0 or targets.max() >= K):
            raise ValueError(f"targets must lie in [0, {K}) for teacher forcing")
        onehot = np.eye(K, dtype=x.dtype)[targets]  # (B, T, K)
    act = ACTIVATIONS[activation][0]
    alpha = x.dtype.type(alpha)
    h = np.empty((B, T, H), x.dtype)
    c_all, o_all, p_all = (np.empty((B, T, K), x.dtype) for _ in range(3))
    c = np.zeros((B, K), x.dtype)  # c(0)
    for t in range(T):
        c = alpha * c + y  # (B, K) c(t) = α c(t-1) + y(t-1)
        h[:, t] = act(x[:, t] @ P["W_hx"].T + c @ P["W_hc"].T + P["b_h"])  # (B, H)
        o_all[:, t] = h[:, t] @ P["W_yh"].T + P["b_y"]  # (B, K)
        p_all[:, t] = _softmax(o_all[:, t])
        c_all[:, t] = c
        if feedback == "probs":
            y = p_all[:, t]  # y(t) = ŷ(t), fed back at t + 1
        elif feedback == "logits":
            y = o_all[:, t]
        else:
            y = onehot[:, t]
    return h, o_all, JordanCache(x, P, h, c_all, p_all, float(alpha), feedback, activation)


def jordan_backward(dh, dlogits, cache: JordanCache):
    """BPTT for :func:`jordan_forward`.

    With ``δc(t)`` the gradient on the context, ``δy(t-1) = δc(t)`` reaches the fed-back output;
    for ``"probs"`` it passes the softmax VJP ``δo += p ⊙ (δy - <δy, p>)``, for ``"logits"``
    ``δo += δy``, for ``"teacher"`` it stops. Then ``δh(t) = dh(t) + W^{yh}ᵀ δo(t)``,
    ``δa(t) = δh(t) ⊙ σ_h'``, ``δc(t) = W^{hc}ᵀ δa(t) + α δc(t+1)``.

    Parameters
    ----------
    dh : (B, T, H) or None; dlogits : (B, T, K) or None — cotangents of the two outputs.

    Returns
    -------
    dx : (B, T, I); grads : dict ``W_hx, W_hc, b_h, W_yh, b_y``; dy0 : (B, K).
    """
    x, P, h, c, probs, alpha, feedback, activation = cache
    B, T, _ = x.shape
    K = probs.shape[-1]
    dh = np.zeros_like(h) if dh is None else _checks.float_array(dh, "dh", dtype=x.dtype)
    _checks.check_shape(dh, h.shape, "dh", "(B, T, H)")
    do_ext = np.zeros_like(probs) if dlogits is None else \
        _checks.float_array(dlogits, "dlogits", dtype=x.dtype)
    _checks.check_shape(do_ext, probs.shape, "dlogits", "(B, T, K)")
    dphi = ACTIVATIONS[activation][1]
    alpha = x.dtype.type(alpha)
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    dx = np.zeros_like(x)
    dc_next = np.zeros((B, K), x.dtype)  # δc(t+1); zero after the last step
    for t in range(T - 1, -1, -1):
        dy = dc_next  # δy(t): y(t) enters only c(t+1)
        do = do_ext[:, t].copy()
        if feedback == "probs":
            p = probs[:, t]
            do += p * (dy - (dy * p).sum(axis=-1, keepdims=True))
        elif feedback == "logits":
            do += dy
        dht = dh[:, t] + do @ P["W_yh"]  # (B, H)
        da = dht * dphi(h[:, t])  # (B, H)
        dx[:, t] = da @ P["W_hx"]
        grads["W_hx"] += da.T @ x[:, t]
        grads["W_hc"] += da.T @ c[:, t]
        grads["b_h"] += da.sum(axis=0)
        grads["W_yh"] += do.T @ h[:, t]
        grads["b_y"] += do.sum(axis=0)
        dc_next = da @ P["W_hc"] + alpha * dc_next  # δc(t)
    return dx, grads, dc_next  # c(1) = α c(0) + y0 with c(0) = 0, so δy0 = δc(1)
