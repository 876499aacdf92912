"""Decoders over fetched values ``(B, C, k, N, d_v)`` and their vector-Jacobian products.

Träuble et al., arXiv 2207.11240, Sec. 3 and 4. The paper's main decoder is non-parametric
(official ``CodebookVotingLogitsDecoder``): ``d_v`` equals the number of classes ``K`` and

.. math:: \\mathrm{logits}_b = \\frac{1}{C N} \\sum_c \\sum_n \\sum_r w_r\\,
          \\mathrm{fetched}_{b,c,r,n}, \\qquad w = \\mathbf{1}_k ,

a weighted **sum** over the top-k slots and a **mean** over codebooks and tokens, with optional
dropout of whole (codebook, token) votes in training (``Dropout1d``, kept votes scaled by
``1 / (1 - p)``). The parametric decoders of the ablations read the flattened fetched values:
:class:`LinearProbeDecoder` (``C k N d_v -> K``) and :class:`MLPDecoder` (one hidden ReLU layer
of 128); :func:`append_distance` first concatenates each slot's distance to its value
(``add_distance_to_values``).

Every decoder object has ``params`` (a dict, empty for voting), ``forward(fetched, *,
training=False, rng=None) -> (logits (B, K), cache)`` and ``backward(d_logits, cache) ->
(d_fetched, grads)`` with ``grads`` keyed like ``params``.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.nn.activations import relu_backward, relu_forward
from refseq.nn.linear import linear_backward, linear_forward

__all__ = ["LinearProbeDecoder", "MLPDecoder", "VotingDecoder", "append_distance",
           "append_distance_backward", "voting_decoder", "voting_decoder_backward"]


def _fetched(fetched, name="fetched"):
    f = _checks.float_array(fetched, name)
    if f.ndim != 5 or 0 in f.shape:
        raise ValueError(f"{name} must have shape (B, C, k, N, d_v) with every axis >= 1, "
                         f"got {f.shape}")
    return f


def voting_decoder(fetched, weights=None, *, dropout: float = 0.0, rng=None,
                   training: bool = False):
    """Non-parametric voting: ``(B, C, k, N, d_v) -> logits (B, d_v)``.

    Parameters
    ----------
    fetched : (B, C, k, N, d_v) — fetched values (``d_v`` = number of classes).
    weights : (k,) or None — slot weights ``w`` (default ones, the official buffer).
    dropout : p in [0, 1) — drop whole (codebook, token) votes, only when ``training``.
    rng : Generator or seed for the dropout mask.

    Returns
    -------
    logits : (B, d_v); cache for :func:`voting_decoder_backward`.
    """
    f = _fetched(fetched)
    B, C, k, N, d_v = f.shape
    w = np.ones(k, f.dtype) if weights is None else _checks.float_array(weights, "weights",
                                                                          dtype=f.dtype)
    _checks.check_shape(w, (k,), "weights", "(k,)")
    p = _checks.check_number(dropout, "dropout", low=0, high=1, high_open=True)
    training = _checks.check_flag(training, "training")
    votes = np.einsum("bcrnv,r->bcnv", f, w)  # (B, C, N, d_v) sum over slots
    keep = None
    if training and p > 0:
        keep = (_checks.check_rng(rng).random((B, C, N)) >= p) / f.dtype.type(1 - p)  # (B, C, N)
        keep = keep.astype(f.dtype)
        votes = votes * keep[..., None]
    logits = votes.mean(axis=(1, 2))  # (B, d_v)
    return logits, (w, keep, f.shape)


def voting_decoder_backward(d_logits, cache) -> np.ndarray:
    """VJP of :func:`voting_decoder`: ``d_fetched[b, c, r, n] = w_r keep_{b,c,n} d_logits[b] /
    (C N)`` of shape ``(B, C, k, N, d_v)``."""
    w, keep, shape = cache
    B, C, k, N, d_v = shape
    d = _checks.float_array(d_logits, "d_logits", dtype=w.dtype)
    _checks.check_shape(d, (B, d_v), "d_logits", "(B, d_v)")
    scale = np.ones((B, C, N), w.dtype) if keep is None else keep  # (B, C, N)
    d_votes = scale[..., None] * d[:, None, None, :] / w.dtype.type(C * N)  # (B, C, N, d_v)
    return np.einsum("bcnv,r->bcrnv", d_votes, w)  # (B, C, k, N, d_v)


def append_distance(fetched, dist) -> np.ndarray:
    """Concatenate each slot's distance ``dist (B, C, N, k)`` to its value: ``(B, C, k, N,
    d_v + 1)`` (the official ``add_distance_to_values``)."""
    f = _fetched(fetched)
    B, C, k, N, _ = f.shape
    d = _checks.float_array(dist, "dist", dtype=f.dtype)
    _checks.check_shape(d, (B, C, N, k), "dist", "(B, C, N, k)")
    return np.concatenate([f, d.transpose(0, 1, 3, 2)[..., None]], axis=-1)


def append_distance_backward(d_out):
    """VJP of :func:`append_distance`: ``(d_fetched (B, C, k, N, d_v), d_dist (B, C, N, k))``."""
    d = _fetched(d_out, "d_out")
    return d[..., :-1], d[..., -1].transpose(0, 1, 3, 2)


class VotingDecoder:
    """:func:`voting_decoder` as a decoder object (no parameters)."""

    def __init__(self, weights=None, dropout: float = 0.0):
        self.weights = None if weights is None else _checks.float_array(weights, "weights")
        self.dropout = _checks.check_number(dropout, "dropout", low=0, high=1, high_open=True)
        self.params: dict = {}

    def forward(self, fetched, *, training: bool = False, rng=None):
        return voting_decoder(fetched, self.weights, dropout=self.dropout, rng=rng,
                              training=training)

    def backward(self, d_logits, cache):
        return voting_decoder_backward(d_logits, cache), {}


class LinearProbeDecoder:
    """``logits = flat(fetched) W + b``, ``W (C k N d_v, K)``; ``N(0, 1/d_in)`` weights, zero bias
    (or given ``W``, ``b``)."""

    def __init__(self, d_in: int, K: int, rng=None, *, bias: bool = True, dtype=np.float64):
        d_in = _checks.check_number(d_in, "d_in", integer=True, low=1)
        K = _checks.check_number(K, "K", integer=True, low=1)
        dtype = _checks.check_float_dtype(dtype, "dtype")
        W = _checks.check_rng(rng).standard_normal((d_in, K)) / np.sqrt(d_in)
        self.params = {"W": W.astype(dtype)}
        if _checks.check_flag(bias, "bias"):
            self.params["b"] = np.zeros(K, dtype)

    def _flat(self, fetched):
        f = _fetched(fetched)
        x = f.reshape(f.shape[0], -1)  # (B, C k N d_v)
        if x.shape[1] != self.params["W"].shape[0]:
            raise ValueError(f"fetched must flatten to d_in = {self.params['W'].shape[0]} "
                             f"features per example, got shape {f.shape}")
        return f, x

    def forward(self, fetched, *, training: bool = False, rng=None):
        f, x = self._flat(fetched)
        y, cache = linear_forward(x, self.params["W"], self.params.get("b"))  # (B, K)
        return y, (cache, f.shape)

    def backward(self, d_logits, cache):
        lin, shape = cache
        dx, dW, db = linear_backward(d_logits, lin)
        grads = {"W": dW} if db is None else {"W": dW, "b": db}
        return dx.reshape(shape), grads


class MLPDecoder(LinearProbeDecoder):
    """``logits = relu(flat(fetched) W1 + b1) W2 + b2`` (official ``mlp-128``)."""

    def __init__(self, d_in: int, K: int, hidden: int = 128, rng=None, *, dtype=np.float64):
        d_in = _checks.check_number(d_in, "d_in", integer=True, low=1)
        K = _checks.check_number(K, "K", integer=True, low=1)
        hidden = _checks.check_number(hidden, "hidden", integer=True, low=1)
        dtype = _checks.check_float_dtype(dtype, "dtype")
        r = _checks.check_rng(rng)
        self.params = {"W": (r.standard_normal((d_in, hidden)) / np.sqrt(d_in)).astype(dtype),
                       "b": np.zeros(hidden, dtype),
                       "W2": (r.standard_normal((hidden, K)) / np.sqrt(hidden)).astype(dtype),
                       "b2": np.zeros(K, dtype)}

    def forward(self, fetched, *, training: bool = False, rng=None):
        f, x = self._flat(fetched)
        a, c1 = linear_forward(x, self.params["W"], self.params["b"])  # (B, hidden)
        r, c2 = relu_forward(a)
        y, c3 = linear_forward(r, self.params["W2"], self.params["b2"])  # (B, K)
        return y, (c1, c2, c3, f.shape)

    def backward(self, d_logits, cache):
        c1, c2, c3, shape = cache
        dr, dW2, db2 = linear_backward(d_logits, c3)
        (da,) = relu_backward(dr, c2)
        dx, dW, db = linear_backward(da, c1)
        return dx.reshape(shape), {"W": dW, "b": db, "W2": dW2, "b2": db2}
