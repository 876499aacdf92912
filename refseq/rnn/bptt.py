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
from refseq.nn.embedding import int_array
from refseq.rnn.output import (
    REDUCTIONS,
    sequence_cross_entropy,
    softmax_output,
    softmax_output_backward,
)
from refseq.train.clipping import clip_grad_norm, clip_grad_value

__all__ = ["RNNModel", "bptt_grads", "clip_grad_norm", "clip_grad_value", "truncated_bptt"]


class RNNModel:
    """A recurrent layer (layer protocol) followed by ``o(t) = W^{yh} h(t) + b_y``.

    ``params`` holds the layer's parameters (the same arrays) plus ``W_yh (K, H)``, ``b_y (K,)``.
    """

    def __init__(self, layer, W_yh, b_y):
        _checks.check_methods(layer, "layer", ("forward", "backward"),
                              "a layer (forward and backward methods, e.g. ElmanLayer)")
        if not isinstance(getattr(layer, "params", None), dict):
            raise TypeError(f"layer must have a params dict, got {type(layer).__name__}")
        W_yh = _checks.float_array(W_yh, "W_yh")  # the same arrays (optimisers update them)
        H = getattr(layer, "hidden_size", None)
        if W_yh.ndim != 2 or (H is not None and W_yh.shape[1] != H):
            raise ValueError("W_yh must have shape (K, H)"
                             + (f" with H = {H} (the layer's hidden size)" if H else "")
                             + f", got {W_yh.shape}")
        b_y = _checks.float_array(b_y, "b_y")
        _checks.check_shape(b_y, W_yh.shape[:1], "b_y", "(K,) with K = W_yh.shape[0]")
        self.layer = layer
        self.params = {**layer.params, "W_yh": W_yh, "b_y": b_y}

    @property
    def input_size(self) -> int | None:
        """``I`` of the layer (None if the layer does not say)."""
        return getattr(self.layer, "input_size", None)

    @property
    def output_size(self) -> int:
        """``K``, the number of classes."""
        return self.params["W_yh"].shape[0]

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
    _check_model(model)
    _checks.check_choice(reduction, "reduction", REDUCTIONS)
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
    _check_model(model)
    k1 = _checks.check_number(k1, "k1", integer=True, low=1)
    k2 = _checks.check_number(k2, "k2", integer=True, low=k1)
    _checks.check_choice(reduction, "reduction", REDUCTIONS)
    stream_x, stream_y, mask = _check_stream(model, stream_x, stream_y, mask, "stream_x",
                                             "stream_y")
    return _tbptt(model, stream_x, stream_y, k1, k2, state0, mask, reduction)


def _check_model(model):
    _checks.check_methods(model, "model", ("forward", "backward"),
                          "a model (forward and backward methods, e.g. RNNModel)")


def _check_stream(model, x, y, mask, x_name, y_name):
    """Check ``x (B, T, I)``, integer targets ``y (B, T)`` in ``[0, K)`` at real positions and
    ``mask``; ``I`` and ``K`` where the model knows them (``input_size``, ``output_size``)."""
    x = _checks.float_array(x, x_name)
    I, K = getattr(model, "input_size", None), getattr(model, "output_size", None)
    if x.ndim != 3 or (I is not None and x.shape[-1] != I):
        raise ValueError(f"{x_name} must have shape (B, T, I)"
                         + (f" with I = {I} (the model's input size)" if I else "")
                         + f", got {x.shape}")
    B, T, _ = x.shape
    y = int_array(y, y_name, form="(B, T)")
    _checks.check_shape(y, (B, T), y_name, "(B, T)")
    mask = _checks.bool_mask(mask, (B, T), "mask", "(B, T)")
    real = np.ones((B, T), bool) if mask is None else mask
    bad = real & ((y < 0) | (y >= (K if K is not None else np.iinfo(np.int64).max)))
    if bad.any():
        raise ValueError(f"{y_name} must lie in [0, K) at real positions"
                         + (f" (K = {K})" if K is not None else "")
                         + f", found {int(y[bad].flat[0])}")
    return x, y, mask


def _tbptt(model, stream_x, stream_y, k1, k2, state0, mask, reduction):
    """The generator of :func:`truncated_bptt` (arguments already checked)."""
    B, T, _ = stream_x.shape
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
