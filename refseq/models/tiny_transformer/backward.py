"""The tiny transformer's backward pass: reverse-mode gradients of the forward entry points.

:func:`backward` (VJP of :func:`~refseq.models.tiny_transformer.forward.forward`),
:func:`forward_layers_backward` and :func:`lm_head_backward`, written by hand on the ``backward``
functions of :mod:`refseq.nn`; gradients come back as a :class:`Gradients` whose ``params`` has
the structure of the parameters. Model and checks: docs/models/tiny_transformer.md.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq.models.tiny_transformer.forward import LayersCache, ModelCache, _batched, _unbatch
from refseq.models.tiny_transformer.params import (
    BlockParams,
    TinyParams,
    _from_named,
    _walk,
    _zero_grads,
    check_params,
)
from refseq.nn.attention import mha_backward
from refseq.nn.embedding import embedding_backward
from refseq.nn.linear import _linear_backward
from refseq.nn.mlp import mlp_backward
from refseq.nn.norms import layer_norm_backward
from refseq.nn.positions import position_embedding_backward


class Gradients(NamedTuple):
    params: TinyParams  # same structure as the parameters
    embeds: np.ndarray  # (T, D) or (B, T, D): w.r.t. the input embeddings x (before positions)
    past_kv: np.ndarray | None  # like past_kv: w.r.t. the cache that was passed in


def _block_backward(dh, c, d_kv):
    c_ln1, c_att, c_ln2, c_mlp = c
    dm, g_mlp = mlp_backward(dh, c_mlp)
    da, g2, b2 = layer_norm_backward(dm, c_ln2)
    dh = dh + da
    dln, g_att, d_past = mha_backward(dh, c_att, None if d_kv is None else (d_kv[:, 0],
                                                                            d_kv[:, 1]))
    dx, g1, b1 = layer_norm_backward(dln, c_ln1)
    d_past = None if d_past is None else np.stack(d_past, axis=1)  # (B, 2, H, S, Dh)
    return dh + dx, BlockParams(g1, b1, g_att, g2, b2, g_mlp), d_past


def _layers_backward(lc: LayersCache, dh, d_hidden, d_new_kv, grads):
    n = lc.hi - lc.lo
    if d_hidden is not None and len(d_hidden) != n + 1:
        raise ValueError(f"d_hidden must be a list of {n + 1} arrays or Nones, got {len(d_hidden)}")
    dh_of = [None] * (n + 1) if d_hidden is None else [
        None if g is None else _batched(g, lc.batched, f"d_hidden[{i}]", lc.shape)
        for i, g in enumerate(d_hidden)]
    if d_new_kv is not None:
        d_new_kv = _batched(d_new_kv, lc.batched, "d_new_kv", lc.kv_shape)
    dh = dh if dh_of[n] is None else dh + dh_of[n]
    d_past = [None] * n
    for j in reversed(range(n)):
        l = lc.lo + j
        dkv = None if d_new_kv is None else d_new_kv[:, j]
        dh, g, d_past[j] = _block_backward(dh, lc.blocks[j], dkv)
        for name, a in _walk(g, f"blocks.{l}"):
            grads[name] += a
        if dh_of[j] is not None:
            dh = dh + dh_of[j]
    d_past = np.stack(d_past, axis=1) if lc.had_past and n else None  # (B, n, 2, H, S, Dh)
    return dh, d_past


def lm_head_backward(params: TinyParams, cache, dlogits, grads=None):
    """VJP of :func:`lm_head`: returns ``(dh, grads)`` with ``grads`` a ``{name: array}`` dict
    (accumulated into ``grads`` when given)."""
    cfg = check_params(params)
    grads = _zero_grads(cfg) if grads is None else grads
    c_ln, c_lin = cache
    dn, dW, _ = _linear_backward(dlogits, c_lin, "dlogits")
    if cfg.tied_head:
        grads["wte"] += dW.T
    else:
        grads["W_head"] += dW
    dh, dg, db = layer_norm_backward(dn, c_ln)
    grads["lnf_gamma"] += dg
    grads["lnf_beta"] += db
    return dh, grads


def forward_layers_backward(params: TinyParams, cache: LayersCache, dh_out, d_hidden=None,
                            d_new_kv=None):
    """VJP of :func:`forward_layers`.

    Returns ``(dh_in, grads, d_past_kv)``: the gradient w.r.t. ``h`` (``hidden[lo]``), a
    :class:`TinyParams` of gradients (zero outside blocks lo+1..hi) and the gradient w.r.t. the
    ``past_kv`` slice (None if none was passed). ``d_hidden``: ``hi - lo + 1`` cotangents (or
    Nones) for the returned hidden list; ``d_new_kv``: cotangent of ``new_kv``.
    """
    cfg = check_params(params)
    dh = _batched(dh_out, cache.batched, "dh_out", cache.shape)
    grads = _zero_grads(cfg)
    dh, d_past = _layers_backward(cache, dh, d_hidden, d_new_kv, grads)
    return (_unbatch(dh, cache.batched), _from_named(cfg, grads),
            _unbatch(d_past, cache.batched))


def backward(params: TinyParams, cache: ModelCache, dlogits, d_hidden=None,
             d_new_kv=None) -> Gradients:
    """Reverse-mode gradients of :func:`forward` (called with ``return_cache=True``).

    Parameters
    ----------
    dlogits : like the logits — the cotangent (e.g. ``dLoss/dlogits``).
    d_hidden : optional list of L + 1 cotangents (arrays like ``hidden[l]``, or None).
    d_new_kv : optional cotangent of ``new_kv`` (when the cache feeds later calls; its first S
        slots flow into ``Gradients.past_kv``).

    Returns
    -------
    Gradients(params, embeds, past_kv): parameter gradients as a TinyParams; the gradient
    w.r.t. the input embeddings ``x`` (``E[tokens]`` or ``embeds``, before positions are added —
    with tokens it is also scattered into ``params.wte``); and w.r.t. ``past_kv`` (None if none).
    """
    cfg = check_params(params)
    dl = _batched(dlogits, cache.batched, "dlogits", cache.logits_shape)
    dh, grads = lm_head_backward(params, cache.head, dl)
    dx, d_past = _layers_backward(cache.layers, dh, d_hidden, d_new_kv, grads)  # (B, T, D)
    if cache.pos is not None:
        (dP,) = position_embedding_backward(dx.sum(axis=0) if cache.pos_shared else dx, cache.pos)
        grads["wpe"] += dP
    if cache.emb is not None:
        (dE,) = embedding_backward(_unbatch(dx, cache.batched), cache.emb)
        grads["wte"] += dE
    return Gradients(_from_named(cfg, grads), _unbatch(dx, cache.batched),
                     _unbatch(d_past, cache.batched))
