"""The bottlenecked model ``x -> z -> h -> (idx, fetched) -> logits`` and the value-training phase.

Träuble et al., arXiv 2207.11240, Sec. 3 (model) and Sec. 4 (training): a frozen encoder, a
splitter into ``C`` heads, the key-value codebooks, a decoder. The forward pass follows the
official ``KeyValueBottleneck.forward`` and its three modes, set on the codebooks:

- ``update_keys`` (phase 1): the selection is forced to top-1 and the pass ends with an EMA step
  of the keys (:func:`~refseq.papers.kv_bottleneck.ema.ema_update`);
- ``count_usage`` (phase 2, training values): selections are added to ``usage``;
- ``mask_unused`` (evaluation): pairs with ``usage == 0`` are excluded from the lookup.

Gradients reach only the values (and the decoder's parameters when ``train_decoder``): the
lookup is piecewise constant in ``h``, and the encoder, splitter and keys are frozen. With the
voting decoder and label-smoothed cross-entropy,

.. math:: \\frac{\\partial L}{\\partial \\mathrm{value}_{c,j}} = \\frac{1}{B C N}
   \\sum_{b,n,r:\\, j_r(b,c,n) = j} w_r (p_b - q_b),

so a pair that no input of the batch selected gets an exactly zero gradient (the paper's
locality argument, Sec. 3.3).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward
from refseq.papers.kv_bottleneck.codebooks import KVCodebooks
from refseq.papers.kv_bottleneck.decoders import (
    VotingDecoder,
    append_distance,
    append_distance_backward,
)
from refseq.papers.kv_bottleneck.ema import ema_update
from refseq.papers.kv_bottleneck.selection import fetch, fetch_backward, lookup_fetch
from refseq.tiers import check_backend
from refseq.train.base import Optimizer
from refseq.train.clipping import clip_grad_norm

__all__ = ["KVBottleneckModel", "train_values"]


class KVBottleneckModel:
    """Encoder, splitter, codebooks and decoder of a discrete key-value bottleneck.

    Parameters
    ----------
    encoder : callable ``x -> z (B, [N,] d_z)`` (frozen).
    splitter : callable ``z -> h (B, C, N, d_k)`` (frozen).
    codebooks : KVCodebooks.
    decoder : a decoder object (``params``, ``forward``, ``backward``); default the voting
        decoder, which needs ``d_v`` = number of classes.
    topk : int in [1, M] — pairs fetched per head (1 while keys are updated).
    temperature : float >= 0 — Gumbel-top-k sampling of the selection (0: nearest keys).
    use_distance : bool — append each slot's distance to its value before the decoder.
    train_decoder : bool — also return the decoder's gradients (the paper freezes it).
    ema : dict of :func:`ema_update` options used while ``update_keys`` is on.
    backend : "numpy" | "jit" | "cuda" — tier of the key-value lookup hot path.
    """

    def __init__(self, encoder, splitter, codebooks, decoder=None, topk: int = 1, *,
                 temperature: float = 0.0, use_distance: bool = False,
                 train_decoder: bool = False, ema=None, backend="numpy"):
        if not callable(encoder):
            raise TypeError(f"encoder must be callable (x -> z), got {type(encoder).__name__}")
        if not callable(splitter):
            raise TypeError(f"splitter must be callable (z -> h), got {type(splitter).__name__}")
        self.codebooks = _checks.check_instance(codebooks, KVCodebooks, "codebooks")
        self.decoder = VotingDecoder() if decoder is None else _checks.check_methods(
            decoder, "decoder", ("forward", "backward"),
            "a decoder (forward and backward methods, e.g. VotingDecoder)")
        self.encoder, self.splitter = encoder, splitter
        self.topk = _checks.check_number(topk, "topk", integer=True, low=1, high=codebooks.M)
        self.temperature = _checks.check_number(temperature, "temperature", low=0)
        self.use_distance = _checks.check_flag(use_distance, "use_distance")
        self.train_decoder = _checks.check_flag(train_decoder, "train_decoder")
        if ema is not None and not isinstance(ema, dict):
            raise TypeError(f"ema must be a dict of ema_update options, got {type(ema).__name__}")
        self.ema = dict(ema or {})
        self.backend = check_backend(backend)

    def heads(self, x) -> np.ndarray:
        """``h = splitter(encoder(x))`` of shape ``(B, C, N, d_k)``."""
        return self.splitter(self.encoder(x))

    def select(self, h, rng=None):
        """Selection of heads ``h`` under the codebooks' current mode: ``(idx, dist, fetched)``
        as :func:`~refseq.papers.kv_bottleneck.selection.lookup_fetch`."""
        cb = self.codebooks
        k = 1 if cb.update_keys else self.topk
        return lookup_fetch(h, cb.keys, cb.values, k, cb.usage_mask(), self.temperature, rng,
                            backend=self.backend)

    def _after_selection(self, h, idx, rng):
        cb = self.codebooks
        if cb.update_keys:
            ema_update(cb, h, rng=rng, backend=self.backend, **self.ema)
        elif cb.count_usage:
            cb.count(idx)

    def _decode(self, fetched, dist, training, rng):
        x = append_distance(fetched, dist) if self.use_distance else fetched
        return self.decoder.forward(x, training=training, rng=rng)

    def forward(self, x, *, training: bool = False, rng=None) -> np.ndarray:
        """Logits ``(B, K)``; updates keys or usage as the codebooks' flags say."""
        h = self.heads(x)
        idx, dist, fetched = self.select(h, rng)
        self._after_selection(h, idx, rng)
        logits, _ = self._decode(fetched, dist, training, rng)
        return logits

    def predict(self, x) -> np.ndarray:
        """Class indices ``(B,)``: argmax of :meth:`forward` (first maximum on ties)."""
        return np.argmax(self.forward(x), axis=-1)

    def params(self) -> dict:
        """The trainable arrays: ``values`` (and the decoder's if ``train_decoder``)."""
        out = {"values": self.codebooks.values}
        if self.train_decoder:
            out.update({f"decoder.{k}": v for k, v in self.decoder.params.items()})
        return out

    def loss_and_grads(self, x, y, label_smoothing: float = 0.1, *, training: bool = True,
                       rng=None, selection=None):
        """Label-smoothed cross-entropy of ``forward(x)`` against classes ``y (B,)`` and its
        gradients with respect to :meth:`params`.

        ``selection``: an ``(idx, dist)`` pair already computed for these inputs with the
        current (frozen) keys, reused instead of a new lookup (the result is identical; usage
        is still counted). Returns ``(loss (float), grads dict)``.
        """
        cb = self.codebooks
        if selection is None:
            h = self.heads(x)
            idx, dist, fetched = self.select(h, rng)
        else:
            if cb.update_keys:
                raise ValueError("selection can only be reused once the keys are frozen")
            h = None
            idx, dist = selection
            fetched = fetch(cb.values, idx)
        self._after_selection(h, idx, rng)
        logits, cache = self._decode(fetched, dist, training, rng)
        loss, ce = cross_entropy_forward(logits, y, label_smoothing=label_smoothing)
        (d_logits,) = cross_entropy_backward(np.ones((), logits.dtype), ce)
        d_in, d_params = self.decoder.backward(d_logits, cache)
        d_fetched = append_distance_backward(d_in)[0] if self.use_distance else d_in
        grads = {"values": fetch_backward(d_fetched.astype(cb.dtype, copy=False), idx, cb.M,
                                          backend=self.backend)}
        if self.train_decoder:
            grads.update({f"decoder.{k}": v for k, v in d_params.items()})
        return float(loss), grads


def train_values(model, stream, optimizer, epochs: int = 1, *, batch_size: int = 256,
                 clip: float | None = 1.0, label_smoothing: float = 0.1, rng=None,
                 after_task=None) -> list:
    """Phase 2: learn the values on a (non-stationary) labelled stream, keys frozen.

    Parameters
    ----------
    model : KVBottleneckModel whose keys are frozen (``update_keys`` off).
    stream : iterable of tasks ``(X, y)`` (e.g. :func:`class_incremental_stream`), in order.
    optimizer : a :class:`refseq.train.base.Optimizer` (the paper: ``SGD(0.3)``; the toy:
        ``Adam(1e-3)``), one for the whole stream.
    epochs : passes over each task; batch_size : examples per step (a task smaller than it
        is one full batch, whose selection is computed once and reused: the keys are frozen).
    clip : global gradient-norm bound (None: no clipping); label_smoothing : epsilon.
    rng : Generator or seed — batch order.
    after_task : optional callable ``after_task(t, model)`` run after each task.

    Returns
    -------
    losses : list of per-task lists of step losses.
    """
    _checks.check_instance(model, KVBottleneckModel, "model")
    _checks.check_instance(optimizer, Optimizer, "optimizer")
    if model.codebooks.update_keys:
        raise ValueError("model.codebooks.update_keys is True: freeze the keys (phase 1 ends "
                         "with codebooks.freeze_keys()) before training values")
    epochs = _checks.check_number(epochs, "epochs", integer=True, low=0)
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    clip = _checks.check_number(clip, "clip", low=0, low_open=True, allow_none=True)
    rng = _checks.check_rng(rng)
    model.codebooks.activate_counts()
    out = []
    for t, (X, y) in enumerate(stream):
        y = np.asarray(y)
        n, losses = len(y), []
        full = None
        if n <= batch_size:
            idx, dist, _ = model.select(model.heads(X))
            full = (idx, dist)
        for _ in range(epochs):
            order = np.arange(n) if full is not None else rng.permutation(n)
            for s in range(0, n, batch_size):
                rows = order[s:s + batch_size]
                xb = X if full is not None else np.asarray(X)[rows]
                loss, grads = model.loss_and_grads(xb, y[rows], label_smoothing, rng=rng,
                                                   selection=full)
                if clip is not None:
                    grads, _ = clip_grad_norm(grads, clip)
                optimizer.step(model.params(), grads)
                losses.append(loss)
        out.append(losses)
        if after_task is not None:
            after_task(t, model)
    return out
