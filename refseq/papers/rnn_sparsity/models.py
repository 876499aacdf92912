"""Models of the sparsity thesis: stacked masked RNN, graph-structured RNN, Reber classifier.

Darji, arXiv 2407.20601; thesis code ``Implementations/sparse.py`` (``PruneRNN``) and
``experiments/arbitrary_structure.py`` (``ArbitraryStructureRNN``). Every model offers

* ``input_size`` (I) and ``output_size`` (H_out),
* ``recurrent_layers() -> {name: MaskedRecurrentLayer}`` (what pruning acts on),
* ``params() -> {"<layer>.<param>": ndarray}`` (the arrays themselves),
* ``forward(x (B, T, I), lengths=None, *, return_cache=False) -> y (B, H_out)[, cache]`` with
  zero initial states on every call, reading each sequence's output after its last real step
  (``lengths[b] - 1``; the last step when ``lengths`` is None),
* ``backward(dy (B, H_out), cache) -> (dx (B, T, I), grads)``.

Arbitrary structure (layers ``L_0..L_K`` of a DAG, ``s_k = |L_k|``, ``E_jk (s_k, s_j)``)::

    y^0 = RNN_0(x)                                                    dense input weights
    y^k = RNN_k(y^{k-1}; mask_ih = E_{k-1,k}) + sum_{j <= k-2} SkipRNN_{j,k}(y^j; mask_ih = E_{j,k})

Skip layers are whole recurrent layers (own ``weight_hh``, biases, state) whose outputs are
added after their recurrence. Gated modes expand ``E`` per gate block with
:func:`~refseq.papers.rnn_sparsity.graphs.expand_gate_mask` (``mask_layout="tile"``; the thesis
code's misaligned ``"thesis_repeat"`` is available for reproduction only).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.nn.embedding import embedding_backward, embedding_forward
from refseq.nn.linear import linear_backward, linear_forward
from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward
from refseq.papers.rnn_sparsity.graphs import (
    LAYOUTS,
    _check_layers,
    expand_gate_mask,
    layer_connectivity,
)
from refseq.papers.rnn_sparsity.masked import MODES, MaskedRecurrentLayer, _lengths

READOUTS = ("last_real", "padded_end")


def _readout(outputs, L):
    """``y[b] = outputs[b, L_b - 1]`` (the last step when ``L`` is None); (B, H)."""
    if L is None:
        return outputs[:, -1]
    return outputs[np.arange(outputs.shape[0]), L - 1]


def _readout_backward(dy, shape, L):
    d = np.zeros(shape, dy.dtype)  # (B, T, H)
    if L is None:
        d[:, -1] = dy
    else:
        d[np.arange(shape[0]), L - 1] = dy
    return d


class _LayeredModel:
    """Shared parameter and mask plumbing."""

    _layers: dict[str, MaskedRecurrentLayer]

    def recurrent_layers(self) -> dict[str, MaskedRecurrentLayer]:
        return self._layers

    def params(self) -> dict[str, np.ndarray]:
        return {f"{name}.{p}": a for name, layer in self._layers.items()
                for p, a in layer.params().items()}

    def masks(self) -> dict[str, np.ndarray]:
        return {f"{name}.{p}": m for name, layer in self._layers.items()
                for p, m in layer.masks().items()}


class PruneRNN(_LayeredModel):
    """A stack of masked recurrent layers (thesis default ``hidden_layers = [50, 50, 50]``);
    layer names ``"0", "1", ...``."""

    def __init__(self, input_size: int, hidden_layers=(50, 50, 50), mode: str = "RNN_TANH",
                 rng: np.random.Generator | None = None, dtype=np.float64):
        if not isinstance(hidden_layers, (tuple, list)) or not hidden_layers:
            raise ValueError("hidden_layers must name at least one layer size")
        rng = _checks.check_rng(rng)
        sizes = [_checks.check_number(input_size, "input_size", integer=True, low=1),
                 *(_checks.check_number(n, f"hidden_layers[{i}]", integer=True, low=1)
                   for i, n in enumerate(hidden_layers))]
        self.mode, self.input_size, self.output_size = mode, sizes[0], sizes[-1]
        self._layers = {str(k): MaskedRecurrentLayer(sizes[k], sizes[k + 1], mode, rng, dtype)
                        for k in range(len(hidden_layers))}

    def forward(self, x, lengths=None, *, return_cache=False):
        return_cache = _checks.check_flag(return_cache, "return_cache")
        caches, h = [], x
        for layer in self._layers.values():
            h, _, c = layer.forward(h, None, lengths, return_cache=True)  # (B, T, H_k)
            caches.append(c)
        L = caches[0].lengths
        y = _readout(h, L)  # (B, H_last)
        return (y, (caches, h.shape, L)) if return_cache else y

    def backward(self, dy, cache):
        caches, shape, L = cache
        d = _readout_backward(dy, shape, L)  # (B, T, H_last)
        grads = {}
        for (name, layer), c in zip(reversed(self._layers.items()), reversed(caches)):
            d, _, g = layer.backward(d, None, c)
            grads |= {f"{name}.{p}": v for p, v in g.items()}
        return d, grads


class ArbitraryStructureRNN(_LayeredModel):
    """Recurrent network whose connectivity follows a layered DAG (see the module docstring).

    Parameters
    ----------
    input_size : I (the thesis sets it to ``|L_0|`` through the embedding width).
    layers : list of vertex lists (:func:`~refseq.papers.rnn_sparsity.graphs.layer_index`).
    directed_edges : (E, 2) int, every edge from a shallower to a deeper layer.
    mode, rng, dtype : as for :class:`MaskedRecurrentLayer`.
    mask_layout : ``"tile"`` (correct gate alignment) or ``"thesis_repeat"``.

    Layer names: ``"layer.k"`` for RNN_k and ``"skip.j_k"`` for SkipRNN_{j,k}.
    """

    def __init__(self, input_size: int, layers, directed_edges, mode: str = "RNN_TANH",
                 rng: np.random.Generator | None = None, mask_layout: str = "tile",
                 dtype=np.float64):
        _checks.check_choice(mode, "mode", tuple(MODES))
        _checks.check_choice(mask_layout, "mask_layout", LAYOUTS)
        rng = _checks.check_rng(rng)
        self.mode, self.mask_layout = mode, mask_layout
        self.layers = _check_layers(layers)
        sizes = [len(layer) for layer in self.layers]
        self.connectivity = layer_connectivity(self.layers, directed_edges)
        G = MODES[mode][1]
        self._layers = {"layer.0": MaskedRecurrentLayer(input_size, sizes[0], mode, rng, dtype)}
        self.input_size, self.output_size = self._layers["layer.0"].input_size, sizes[-1]
        self.inputs: dict[str, int] = {"layer.0": -1}  # layer name -> index of the y it reads
        self.targets: dict[str, int] = {"layer.0": 0}  # layer name -> index of the y it feeds
        for k in range(1, len(sizes)):
            if (k - 1, k) not in self.connectivity:
                raise ValueError(f"layer {k} has no parent in layer {k - 1}: not a longest-path "
                                 "layering of directed_edges")
            for j in range(k):
                E = self.connectivity.get((j, k))
                if E is None:
                    continue
                name = f"layer.{k}" if j == k - 1 else f"skip.{j}_{k}"
                layer = MaskedRecurrentLayer(sizes[j], sizes[k], mode, rng, dtype)
                layer.set_masks(mask_ih=expand_gate_mask(E, G, mask_layout))
                self._layers[name], self.inputs[name], self.targets[name] = layer, j, k
        # evaluation order: by target layer, the main layer before its skips
        self._order = sorted(self._layers, key=lambda n: (self.targets[n], n.startswith("skip")))

    def forward(self, x, lengths=None, *, return_cache=False):
        return_cache = _checks.check_flag(return_cache, "return_cache")
        ys: dict[int, np.ndarray] = {-1: x}
        caches = {}
        for name in self._order:
            out, _, caches[name] = self._layers[name].forward(
                ys[self.inputs[name]], None, lengths, return_cache=True)  # (B, T, s_k)
            k = self.targets[name]
            ys[k] = out if k not in ys else ys[k] + out
        K = len(self.layers) - 1
        L = caches["layer.0"].lengths
        y = _readout(ys[K], L)  # (B, s_K)
        return (y, (caches, ys[K].shape, L)) if return_cache else y

    def backward(self, dy, cache):
        caches, shape, L = cache
        K = len(self.layers) - 1
        dys = {K: _readout_backward(dy, shape, L)}
        grads = {}
        for name in reversed(self._order):  # every consumer of y^j runs before y^j's producers
            d_in, _, g = self._layers[name].backward(dys[self.targets[name]], None, caches[name])
            j = self.inputs[name]
            dys[j] = d_in if j not in dys else dys[j] + d_in
            grads |= {f"{name}.{p}": v for p, v in g.items()}
        return dys[-1], grads


class ReberClassifier:
    """``tokens -> embedding (V, E) -> rnn -> Linear(H_last, 2)``; ``logits = h W^T + b``.

    ``rnn`` is a :class:`PruneRNN` or :class:`ArbitraryStructureRNN` with input size E. Embedding
    ``~ N(0, 1)``; head ``~ U(-1/sqrt(H), 1/sqrt(H))`` (torch defaults). ``readout="last_real"``
    reads the state after each string's last symbol; ``"padded_end"`` reads the final padded
    step, as the thesis code does (padding token 0 then drives the state of short strings).
    Parameter names: ``embedding``, ``rnn.<layer>.<param>``, ``head.weight (2, H)``,
    ``head.bias (2,)``.
    """

    def __init__(self, vocab_size: int, embed_dim: int, rnn, rng: np.random.Generator,
                 readout: str = "last_real", dtype=np.float64):
        _checks.check_choice(readout, "readout", READOUTS)
        vocab_size = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1)
        embed_dim = _checks.check_number(embed_dim, "embed_dim", integer=True, low=1)
        rng, dtype = _checks.check_rng(rng), _checks.check_float_dtype(dtype, "dtype")
        _checks.check_instance(rnn, _LayeredModel, "rnn", "PruneRNN or ArbitraryStructureRNN")
        if rnn.input_size != embed_dim:
            raise ValueError(f"embed_dim must equal the input size of rnn ({rnn.input_size}), "
                             f"got {embed_dim}")
        self.rnn, self.readout = rnn, readout
        H, k = rnn.output_size, 1.0 / np.sqrt(rnn.output_size)
        self.embedding = rng.standard_normal((vocab_size, embed_dim)).astype(dtype)
        self.head_weight = rng.uniform(-k, k, (2, H)).astype(dtype)
        self.head_bias = rng.uniform(-k, k, 2).astype(dtype)

    def recurrent_layers(self):
        return {f"rnn.{n}": layer for n, layer in self.rnn.recurrent_layers().items()}

    def params(self) -> dict[str, np.ndarray]:
        return {"embedding": self.embedding,
                **{f"rnn.{n}": a for n, a in self.rnn.params().items()},
                "head.weight": self.head_weight, "head.bias": self.head_bias}

    def masks(self):
        return {f"rnn.{n}": m for n, m in self.rnn.masks().items()}

    def forward(self, tokens, lengths, *, return_cache=False):
        """``tokens (B, T)`` int, ``lengths (B,)`` -> ``logits (B, 2)``."""
        return_cache = _checks.check_flag(return_cache, "return_cache")
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tokens.shape}")
        L = _lengths(lengths, *tokens.shape)
        x, c_emb = embedding_forward(tokens, self.embedding)  # (B, T, E)
        h, c_rnn = self.rnn.forward(x, L if self.readout == "last_real" else None,
                                    return_cache=True)  # (B, H)
        logits, c_head = linear_forward(h, self.head_weight.T, self.head_bias)  # (B, 2)
        return (logits, (c_emb, c_rnn, c_head)) if return_cache else logits

    def loss_and_grad(self, tokens, lengths, labels):
        """Mean cross-entropy of ``labels (B,)`` and its gradients (keys of :meth:`params`).
        Returns ``(loss, grads, logits)``."""
        logits, (c_emb, c_rnn, c_head) = self.forward(tokens, lengths, return_cache=True)
        loss, c_ce = cross_entropy_forward(logits, labels)
        (dlogits,) = cross_entropy_backward(np.ones((), logits.dtype), c_ce)
        dh, dW, db = linear_backward(dlogits, c_head)
        dx, g_rnn = self.rnn.backward(dh, c_rnn)
        (d_emb,) = embedding_backward(dx, c_emb)
        grads = {"embedding": d_emb, **{f"rnn.{n}": v for n, v in g_rnn.items()},
                 "head.weight": dW.T, "head.bias": db}
        return float(loss), grads, logits
