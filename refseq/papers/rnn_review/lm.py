"""An RNN language model with a step API for the decoders (Lipton et al., arXiv 1506.00019,
Secs. 3-4, and the beam search the review surveys).

.. math::

    x(t) = E_{w(t)}, \\qquad
    h^{(l)}(t) = \\mathrm{RNN}^{(l)}\\big(h^{(l-1)}(t),\\, \\text{state}^{(l)}(t-1)\\big), \\qquad
    \\log \\hat y(t) = \\mathrm{log\\,softmax}\\big(W^{yh} h^{(L)}(t) + b_y\\big)

with :math:`h^{(0)} = x`, each layer an Elman or LSTM layer (:class:`~refseq.rnn.elman.ElmanLayer`,
:class:`~refseq.rnn.lstm.LSTMLayer`) run by :func:`~refseq.rnn.stack.stack`, and the readout of
:func:`~refseq.rnn.output.softmax_output`. :math:`\\hat y(t)` is the distribution of the token
*after* ``w(1..t)``. Code names: ``E (V, I)`` embedding table, ``W_yh (V, H)``, ``b_y (V,)``;
``V`` = vocabulary size (the review's ``K``). The state is one entry per layer (Elman ``h (B, H)``,
LSTM ``(h, s)``), all zeros at the start.

Two faces:

* **Decoding** (:class:`~refseq.decoding.interfaces.StepLM`): ``start(prompts)``, ``step``,
  ``reorder``. ``step`` returns normalised log-probabilities, which are valid "logits" for the
  decoders (they apply ``log_softmax`` again, a no-op up to round-off). Returned states are never
  written to, and their arrays are marked read-only to make that a guarantee.
* **Training** (the model protocol of :mod:`refseq.rnn.bptt`): ``forward(tokens (B, T)) ->
  (logits (B, T, V), state_last, cache)`` and ``backward(dlogits, d_state_last, cache) ->
  (grads, d_state0)``, so :func:`~refseq.rnn.bptt.bptt_grads` applies unchanged;
  :meth:`RNNLanguageModel.loss_and_grads` is the next-token loss built on it.

Deviation: a textbook step API is ``step(token, state) -> (log_probs, state)``, the decoders'
protocol ``step(state, tokens) -> (logits, state)``. :meth:`RNNLanguageModel.step` takes the
protocol's order only (a state in the token slot raises ``ValueError``) and always returns
log-probs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import as_prompts, log_softmax
from refseq.nn.embedding import int_array, lookup_backward, lookup_forward
from refseq.rnn.bptt import bptt_grads
from refseq.rnn.elman import ElmanLayer
from refseq.rnn.lstm import LSTMLayer, init_lstm_params
from refseq.rnn.masking import check_lengths, length_mask
from refseq.rnn.output import softmax_output, softmax_output_backward
from refseq.rnn.stack import stack, stack_backward

CELLS = ("elman", "lstm")


class RNNLMState(NamedTuple):
    """Decoding state: one entry per layer (Elman ``h (R, H)``, LSTM ``(h, s)`` each ``(R, H)``),
    rows = the decoder's rows. Never mutated; its arrays are read-only."""

    layers: tuple


def _tree_map(fn, s):
    return tuple(_tree_map(fn, v) for v in s) if isinstance(s, (tuple, list)) else fn(s)


def _frozen(a):
    a = np.asarray(a)
    a.flags.writeable = False
    return a


def _top_output(layer_state):
    """A layer's output at its last step: the state itself (Elman) or its first entry (LSTM)."""
    return layer_state[0] if isinstance(layer_state, (tuple, list)) else layer_state


def _layer_dims(layer):
    """``(I, H)`` of an Elman or LSTM layer from its input weights, ``(None, None)`` if unknown."""
    params = getattr(layer, "params", None)
    W = params.get("W_hx", params.get("W_gx")) if isinstance(params, dict) else None
    return tuple(W.shape[::-1]) if np.ndim(W) == 2 else (None, None)


class RNNLanguageModel:
    """Embedding -> stack of Elman/LSTM layers -> softmax readout, as a ``StepLM`` and a BPTT model.

    Parameters
    ----------
    E : (V, I) float32/float64 — the embedding table (its dtype is the model's).
    layers : list of layers in the layer protocol (``ElmanLayer``, ``LSTMLayer``); layer 0 reads
        width ``I``, the last one has width ``H``.
    W_yh : (V, H); b_y : (V,).
    bos_id : int in [0, V), optional — prepended to every prompt and training sequence; without
        it an empty prompt raises ``ValueError`` (as :class:`~refseq.models.tiny_transformer.lm.
        TransformerLM`), and the first token of a training sequence is only conditioned on.

    ``params`` is a flat dict holding the same arrays (``E``, ``layer{l}.<name>``, ``W_yh``,
    ``b_y``), so in-place updates by an optimiser reach the layers.
    """

    def __init__(self, E, layers, W_yh, b_y, bos_id: int | None = None):
        E = _checks.float_array(E, "E")
        if E.ndim != 2:
            raise ValueError(f"E must have shape (V, I), got {E.shape}")
        if not layers:
            raise ValueError("layers must hold at least one layer")
        V = E.shape[0]
        W_yh = _checks.float_array(W_yh, "W_yh")
        if W_yh.ndim != 2 or W_yh.shape[0] != V:
            raise ValueError(f"W_yh must have shape (V, H) with V = {V}, got {W_yh.shape}")
        b_y = _checks.float_array(b_y, "b_y")
        _checks.check_shape(b_y, (V,), "b_y", "(V,)")
        I, _ = _layer_dims(layers[0])
        if I is not None and E.shape[1] != I:
            raise ValueError(f"E must have shape (V, I) with I = {I} (layer 0's input width), "
                             f"got {E.shape}")
        _, H = _layer_dims(layers[-1])
        if H is not None and W_yh.shape[1] != H:
            raise ValueError(f"W_yh must have shape (V, H) with H = {H} (the last layer's "
                             f"width), got {W_yh.shape}")
        self.layers, self.vocab_size, self.dtype = list(layers), V, E.dtype
        self.bos_id = _checks.check_number(bos_id, "bos_id", integer=True, low=0, high=V - 1,
                                           allow_none=True)
        self.params = {"E": E, **{f"layer{l}.{k}": v for l, layer in enumerate(self.layers)
                                  for k, v in layer.params.items()}, "W_yh": W_yh, "b_y": b_y}

    @classmethod
    def init(cls, rng, V, I, H, *, n_layers=1, cell="elman", dtype=np.float64, bos_id=None,
             **cell_kwargs):
        """Random model: ``E ~ N(0, 1)``, layers as ``ElmanLayer.init`` / ``init_lstm_params``,
        ``W_yh ~ N(0, 1/H)``, ``b_y ~ N(0, 0.1²)``. ``cell_kwargs``: ``activation`` (Elman) or
        ``forget_gate``, ``peepholes``, ``output_activation`` (LSTM)."""
        _checks.check_choice(cell, "cell", CELLS)
        rng, dtype = _checks.check_rng(rng), _checks.check_float_dtype(dtype, "dtype")
        V, I, H, n_layers = (_checks.check_number(n, name, integer=True, low=1) for n, name in
                             ((V, "V"), (I, "I"), (H, "H"), (n_layers, "n_layers")))
        layers = []
        for l in range(n_layers):
            fan_in = I if l == 0 else H
            if cell == "elman":
                layers.append(ElmanLayer.init(rng, fan_in, H, dtype, **cell_kwargs))
            else:
                P = init_lstm_params(rng, fan_in, H, dtype,
                                     peepholes=cell_kwargs.get("peepholes", False))
                layers.append(LSTMLayer(P, **cell_kwargs))
        return cls(rng.standard_normal((V, I)).astype(dtype), layers,
                   (rng.standard_normal((V, H)) / np.sqrt(H)).astype(dtype),
                   (0.1 * rng.standard_normal(V)).astype(dtype), bos_id)

    # --- training face: the bptt model protocol ------------------------------------------------

    def forward(self, tokens, state0=None, lengths=None):
        """``tokens (B, T)`` int in [0, V) -> ``logits (B, T, V)`` (``logits[:, t]`` scores the
        token after ``tokens[:, :t+1]``), ``state_last`` (:class:`RNNLMState`), cache.

        ``state0``: an ``RNNLMState`` or a list with one state (or None) per layer; ``lengths
        (B,)``: right-padded batch (padded steps keep the state; ``state_last`` is the state after
        each sequence's last real token).
        """
        tokens = int_array(tokens, "tokens", form="(B, T)")
        if tokens.ndim != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tokens.shape}")
        p = self.params
        x, ecache = lookup_forward(tokens, p["E"], "tokens", "E", "V")  # (B, T, I)
        y, states, scache = stack(self.layers, x, self._states0(state0),
                                  lengths=lengths)  # (B, T, H)
        logits = softmax_output(y, p["W_yh"], p["b_y"])  # (B, T, V)
        return logits, RNNLMState(tuple(states)), (ecache, scache, y)

    def backward(self, dlogits, d_state_last, cache):
        """VJP of :meth:`forward`: ``(grads (dict, names of params), d_state0 (RNNLMState))``."""
        ecache, scache, y = cache
        dlogits = _checks.float_array(dlogits, "dlogits", dtype=y.dtype)
        _checks.check_shape(dlogits, y.shape[:2] + (self.vocab_size,), "dlogits", "(B, T, V)")
        dy, dW_yh, db_y = softmax_output_backward(dlogits, y, self.params["W_yh"])
        d_last = None if d_state_last is None else list(d_state_last)
        dx, lgrads, d0 = stack_backward(dy, d_last, scache)
        (dE,) = lookup_backward(dx, ecache)
        grads = {"E": dE, **{f"layer{l}.{k}": v for l, g in enumerate(lgrads)
                             for k, v in g.items()}, "W_yh": dW_yh, "b_y": db_y}
        return grads, RNNLMState(tuple(d0))

    def loss_and_grads(self, tokens, lengths=None, reduction="sum"):
        """Next-token cross-entropy of ``tokens (B, T)`` and its gradient by full BPTT
        (:func:`~refseq.rnn.bptt.bptt_grads`).

        With ``bos_id`` the inputs are ``[bos, w(1..T-1)]`` and every token is a target, so
        ``-loss`` (``reduction="sum"``) is the summed log-probability the decoders see from an
        empty prompt. Without it the inputs are ``w(1..T-1)`` and the targets ``w(2..T)``.
        ``lengths (B,)``: right-padded batch (padding may hold any integer).

        Returns ``(loss, grads)`` with ``grads`` keyed like ``params``.
        """
        tokens = int_array(tokens, "tokens", form="(B, T)")
        if tokens.ndim != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tokens.shape}")
        B, T = tokens.shape
        real = np.ones((B, T), bool)
        if lengths is not None:
            real = length_mask(check_lengths(lengths, B, T), T)  # (B, T)
        int_array(tokens[real], "tokens", high=self.vocab_size)
        tokens = np.where(real, tokens, 0).astype(np.int64)
        if self.bos_id is not None:
            inputs = np.concatenate([np.full((B, 1), self.bos_id), tokens[:, :-1]], axis=1)
            targets, mask = tokens, real
        elif T < 2:
            raise ValueError(f"tokens must have T >= 2 without bos_id, got shape {tokens.shape}")
        else:
            inputs, targets, mask = tokens[:, :-1], tokens[:, 1:], real[:, 1:]
        return bptt_grads(self, inputs, targets, mask, reduction=reduction)

    # --- decoding face: StepLM -----------------------------------------------------------------

    def start(self, prompts):
        """Log-probs ``(B, V)`` of the token after each prompt, and the state after it.

        ``prompts``: list of ``B`` 1-d int arrays of any lengths (one batched, length-masked run).
        """
        prompts = as_prompts(prompts)
        if len(prompts) == 0:
            raise ValueError("prompts must hold at least one prompt")
        if self.bos_id is not None:
            prompts = [np.concatenate([[self.bos_id], p]).astype(np.int64) for p in prompts]
        for i, p in enumerate(prompts):
            if p.size == 0:
                raise ValueError(f"prompts[{i}] is empty and no bos_id was given")
            int_array(p, f"prompts[{i}]", high=self.vocab_size)
        L = np.array([p.size for p in prompts])  # (B,)
        tokens = np.zeros((len(prompts), L.max()), np.int64)  # (B, T) right-padded with 0
        for b, p in enumerate(prompts):
            tokens[b, :p.size] = p
        _, state, _ = self.forward(tokens, lengths=L)
        return self._readout(state)

    def step(self, state, tokens):
        """Append one token per row: ``(log_probs (R, V), new state)``.

        The StepLM argument order (not ``step(token, state)``; see docs/papers/rnn-review.md).
        ``tokens`` is ``(R,)`` int in [0, V) (a scalar when R = 1). ``state`` is not modified.
        """
        if not isinstance(state, RNNLMState):
            raise ValueError(f"state must be an RNNLMState from start/step/reorder, "
                             f"got {type(state).__name__}")
        R = self._rows(state)
        tokens = int_array(tokens, "tokens", high=self.vocab_size, form=f"(R,) = ({R},)")
        if tokens.ndim == 0 and R == 1:
            tokens = tokens.reshape(1)
        if tokens.shape != (R,):
            raise ValueError(f"tokens must have shape (R,) = ({R},), got {tokens.shape}")
        _, new, _ = self.forward(tokens[:, None], state)  # one step, state carried
        return self._readout(new)

    def reorder(self, state, rows):
        """Gather rows of the state (rows may repeat or be dropped); returns a new state."""
        if not isinstance(state, RNNLMState):
            raise ValueError(f"state must be an RNNLMState, got {type(state).__name__}")
        R = self._rows(state)
        rows = int_array(rows, "rows", form="(R',)")
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= R)):
            raise ValueError(f"rows must be 1-D indices into {R} rows, got {rows}")
        return RNNLMState(_tree_map(lambda a: _frozen(a[rows]), state.layers))

    # --- helpers -------------------------------------------------------------------------------

    def _readout(self, state):
        h = _top_output(state.layers[-1])  # (R, H)
        logits = softmax_output(h[:, None], self.params["W_yh"], self.params["b_y"])[:, 0]
        return log_softmax(logits, dtype=logits.dtype), RNNLMState(_tree_map(_frozen,
                                                                             state.layers))

    @staticmethod
    def _rows(state):
        return _top_output(state.layers[0]).shape[0]

    def _states0(self, state0):
        if state0 is None:
            return None
        states = list(state0.layers if isinstance(state0, RNNLMState) else state0)
        if len(states) != len(self.layers):
            raise ValueError(f"state0 must hold one state per layer ({len(self.layers)}), "
                             f"got {len(states)}")
        return states
