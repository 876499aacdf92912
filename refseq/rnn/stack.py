"""Stacked (deep) RNNs with dropout on the non-recurrent connections only (Lipton et al., arXiv
1506.00019, Sec. 4; Zaremba, Sutskever & Vinyals 2014, arXiv 1409.2329).

.. math::

    h^{(0)}(t) = x(t), \\qquad
    h^{(l)}(t) = \\mathrm{RNN}^{(l)}\\big(D(h^{(l-1)}(t)),\\, h^{(l)}(t-1)\\big), \\qquad
    y(t) = D(h^{(L)}(t))

with :math:`D` inverted dropout (rate ``dropout_nonrecurrent``, kept entries scaled by
``1/(1-p)``). ``D`` is applied to each layer's *output* on its way up (between layers and on the
stack's output), never to the state a layer feeds back to itself: the recurrent path is
untouched, so each layer's own hidden states equal the no-dropout ones given the same input.
"""

from __future__ import annotations

from typing import NamedTuple

from refseq import _checks
from refseq.nn.dropout import dropout_backward, dropout_forward


class StackCache(NamedTuple):
    layers: list
    caches: list  # per layer: (layer cache, dropout cache or None)
    y_shape: tuple  # (B, T, H_L)


def stack(layers: list, x, states0=None, dropout_nonrecurrent=0.0, rng=None, lengths=None):
    """Run ``layers`` (layer protocol, e.g. :class:`~refseq.rnn.elman.ElmanLayer`) bottom-up.

    Parameters
    ----------
    layers : list of layers; layer l's input width is layer l-1's output width.
    x : (B, T, I) float32 or float64.
    states0 : list with one initial state (or None) per layer, optional.
    dropout_nonrecurrent : drop rate in [0, 1) on each layer's output (0 = none).
    rng : numpy Generator or seed for the dropout masks.
    lengths : (B,) int, optional — passed to every layer.

    Returns
    -------
    y : (B, T, H_L) — the (dropped-out) output of the top layer;
    states_last : list of each layer's last state; cache : StackCache.
    """
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers must be a list of layers, got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers must hold at least one layer")
    for l, layer in enumerate(layers):
        _checks.check_methods(layer, f"layers[{l}]", ("forward", "backward"),
                              "a layer (forward and backward methods, e.g. ElmanLayer)")
    dropout_nonrecurrent = _checks.check_number(dropout_nonrecurrent, "dropout_nonrecurrent",
                                                low=0, high=1, high_open=True)
    if states0 is None:
        states0 = [None] * len(layers)
    if len(states0) != len(layers):
        raise ValueError(f"states0 must hold one state per layer ({len(layers)}), "
                         f"got {len(states0)}")
    rng = _checks.check_rng(rng)
    h, states_last, caches = x, [], []
    for layer, s0 in zip(layers, states0):
        h, s_last, c = layer.forward(h, s0, lengths)  # (B, T, H_l)
        dc = None
        if dropout_nonrecurrent > 0:
            h, dc = dropout_forward(h, dropout_nonrecurrent, rng)  # up the stack only
        states_last.append(s_last)
        caches.append((c, dc))
    return h, states_last, StackCache(list(layers), caches, h.shape)


def stack_backward(dy, d_states_last, cache: StackCache):
    """VJP of :func:`stack`: ``(dx, grads (list of dicts, one per layer), d_states0 (list))``.

    ``d_states_last`` is a list with one cotangent (or None) per layer, or None.
    """
    layers, caches, y_shape = cache
    dy = _checks.float_array(dy, "dy")
    _checks.check_shape(dy, y_shape, "dy", "(B, T, H_L) like the stack's output y")
    if d_states_last is None:
        d_states_last = [None] * len(layers)
    if not isinstance(d_states_last, (list, tuple)) or len(d_states_last) != len(layers):
        raise ValueError(f"d_states_last must be a list with one cotangent (or None) per layer "
                         f"({len(layers)}), got {d_states_last!r:.60}")
    grads, d_states0 = [None] * len(layers), [None] * len(layers)
    d = dy
    for l in range(len(layers) - 1, -1, -1):
        c, dc = caches[l]
        if dc is not None:
            (d,) = dropout_backward(d, dc)
        d, grads[l], d_states0[l] = layers[l].backward(d, d_states_last[l], c)
    return d, grads, d_states0
