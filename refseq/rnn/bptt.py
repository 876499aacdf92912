"""Backpropagation through time, full and truncated, and gradient clipping (Lipton et al., arXiv
1506.00019, Sec. 3; Werbos 1990; Williams & Peng 1990).

Full BPTT: run the forward over the whole sequence, then the backward from ``t = T`` down to 1
(each layer's ``backward`` implements the review's equations).

Truncated BPTT, TBPTT(k1, k2): the forward advances one step at a time and carries its state;
every ``k1`` steps the last ``k2 >= k1`` steps are rerun from the state ``k2`` steps back, which is
held constant (the gradient is cut there), and only the losses of the last ``k1`` steps are
backpropagated. ``k1 = k2 = K`` is the common "segments of K steps, carried and detached state".
The forward state is never truncated, only the gradient; ``k1 = k2 >= T`` is full BPTT.

A *model* here is anything with ``params`` (dict), ``forward(x, state0=None) -> (logits (B, T, K),
state_last, cache)`` and ``backward(dlogits, d_state_last, cache) -> (grads, d_state0)``;
:class:`RNNModel` (a recurrent layer plus the softmax output) is one.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from refseq import _checks
from refseq.rnn.output import sequence_cross_entropy, softmax_output, softmax_output_backward
from refseq.train.clipping import clip_grad_norm, clip_grad_value

__all__ = ["RNNModel", "bptt_grads", "clip_grad_norm", "clip_grad_value", "truncated_bptt"]


class RNNModel:
    """A recurrent layer (layer protocol) followed by ``o(t) = W^{yh} h(t) + b_y``.

    ``params`` holds the layer's parameters (the same arrays) plus ``W_yh (K, H)``, ``b_y (K,)``.
    """

    def __init__(self, layer, W_yh, b_y):
        self.layer = layer
        self.params = {**layer.params, "W_yh": W_yh, "b_y": b_y}

    def forward(self, x, state0=None, lengths=None):
        h, state, c = self.layer.forward(x, state0, lengths)  # (B, T, H)
        return softmax_output(h, self.params["W_yh"], self.params["b_y"]), state, (h, c)

    def backward(self, dlogits, d_state_last, cache):
        h, c = cache
        dh, dW_yh, db_y = softmax_output_backward(dlogits, h, self.params["W_yh"])
        _, grads, d_state0 = self.layer.backward(dh, d_state_last, c)
        return {**grads, "W_yh": dW_yh, "b_y": db_y}, d_state0


def bptt_grads(model, x, targets, mask=None, state0=None, reduction="sum"):
    """Full BPTT: ``(loss, grads)`` of the masked sequence cross-entropy.

    Parameters
    ----------
    model : see the module docstring; x : (B, T, I); targets : (B, T) int;
    mask : (B, T) bool, optional; state0 : the model's initial state, optional;
    reduction : as :func:`~refseq.rnn.output.sequence_cross_entropy`.
    """
    logits, _, cache = model.forward(x, state0)
    loss, dlogits = sequence_cross_entropy(logits, targets, mask, reduction)
    grads, _ = model.backward(dlogits, None, cache)
    return loss, grads


def truncated_bptt(model, stream_x, stream_y, k1, k2, state0=None, mask=None, reduction="sum"):
    """TBPTT(k1, k2) over a stream: yield ``(loss, grads, state)`` every ``k1`` steps.

    Parameters
    ----------
    model : see the module docstring (its ``params`` are read at every step, so an update applied
        by the caller between yields takes effect at once).
    stream_x : (B, T, I); stream_y : (B, T) int targets; mask : (B, T) bool, optional.
    k1 : int >= 1 — steps between updates; k2 : int >= k1 — steps backpropagated through.
    state0 : initial state, optional.

    Yields
    ------
    loss : the loss of the ``k1`` newest steps (reduced with ``reduction``);
    grads : dict — its gradient through the last ``k2`` steps, the state ``k2`` steps back held
        constant; state : the model's forward state after the newest step (never truncated).

    After the last full block, a final yield covers the remaining ``T mod k1`` steps (so every
    loss term is backpropagated exactly once); it backpropagates through ``max(k2, T mod k1)``
    steps like the others.
    """
    k1 = _checks.check_number(k1, "k1", integer=True, low=1)
    k2 = _checks.check_number(k2, "k2", integer=True, low=k1)
    stream_x = _checks.float_array(stream_x, "stream_x")
    if stream_x.ndim != 3:
        raise ValueError(f"stream_x must have shape (B, T, I), got {stream_x.shape}")
    B, T, _ = stream_x.shape
    stream_y = np.asarray(stream_y)
    _checks.check_shape(stream_y, (B, T), "stream_y", "(B, T)")
    mask = _checks.bool_mask(mask, (B, T), "mask", "(B, T)")
    history = deque([(0, state0)], maxlen=k2 + 1)  # (step, state after that many steps)
    state = state0
    for t in range(1, T + 1):
        _, state, _ = model.forward(stream_x[:, t - 1:t], state)  # one step, state carried
        history.append((t, state))
        if t % k1 and t < T:
            continue
        n_new = k1 if t % k1 == 0 else t % k1  # loss terms that are new at this update
        start = max(0, t - k2)  # n_new <= k1 <= k2
        s_start = dict(history)[start]  # held constant: the gradient is cut here
        logits, _, cache = model.forward(stream_x[:, start:t], s_start)  # (B, t - start, K)
        m = np.zeros((B, t - start), bool)
        m[:, t - start - n_new:] = True  # older steps are gradient paths only
        if mask is not None:
            m &= mask[:, start:t]
        loss, dlogits = sequence_cross_entropy(logits, stream_y[:, start:t], m, reduction)
        grads, _ = model.backward(dlogits, None, cache)
        yield loss, grads, state
