"""The tiny transformer's KV cache recomputed from cached layer inputs, and its VJP.

Transformer-XL-style memory: :func:`kv_from_hidden` rebuilds the keys and values of every layer
from the residual stream that entered it, so a memory of hidden states can stand in for the KV
cache (hidden-state optimisation with ``target="hidden"``). Cache layout:
:mod:`refseq.models.tiny_transformer.kv_cache`; model: docs/models/tiny_transformer.md.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.models.tiny_transformer.forward import _batched, _positions, _unbatch
from refseq.models.tiny_transformer.params import (
    TinyParams,
    _from_named,
    _zero_grads,
    check_params,
)
from refseq.nn.linear import linear_backward, linear_forward
from refseq.nn.norms import layer_norm_backward, layer_norm_forward
from refseq.nn.positions import rope_backward, rope_forward


def kv_from_hidden(params: TinyParams, h_in, positions=None, return_cache: bool = False):
    """Recompute the KV cache from the cached *layer inputs* (Transformer-XL-style memory).

    ``K, V = split(LN_1(h) W_qkv + b_qkv)`` per layer (keys rotated when ``config.rope``), so
    ``kv_from_hidden(params, stack(hidden[:L]))`` equals the ``new_kv`` of the forward that
    produced ``hidden`` (used by hidden-state optimisation with ``target="hidden"``).

    Parameters
    ----------
    h_in : (L, S, D) or (B, L, S, D) — ``h_in[l]`` is the input of block l+1 (``hidden[l]``).
    positions : (S,) or (B, S) int, default ``arange(S)`` (read by RoPE only).

    Returns
    -------
    kv : (L, 2, H, S, Dh) or (B, L, 2, H, S, Dh); plus a cache for
    :func:`kv_from_hidden_backward` when ``return_cache``.
    """
    return_cache = check_flag(return_cache, "return_cache")
    cfg = check_params(params)
    h = _checks.float_array(h_in, "h_in", dtype=cfg.np_dtype)
    if h.ndim not in (3, 4) or h.shape[-3] != cfg.n_layers or h.shape[-1] != cfg.d_model:
        raise ValueError(f"h_in must have shape (L, S, D) or (B, L, S, D) with L = "
                         f"{cfg.n_layers}, D = {cfg.d_model}; got {h.shape}")
    batched = h.ndim == 4
    hb = h if batched else h[None]  # (B, L, S, D)
    B, L, S, D = hb.shape
    pos = _positions(cfg, np.arange(S) if positions is None else positions, B, S, 0, batched)
    H, Dh = cfg.n_heads, cfg.d_head
    kvs, caches = [], []
    for l, bp in enumerate(params.blocks):
        a, c_ln = layer_norm_forward(hb[:, l], bp.ln1_gamma, bp.ln1_beta, cfg.ln_eps)
        W, b = bp.attn.W_qkv[:, D:], bp.attn.b_qkv[D:]  # key and value columns
        kv, c_lin = linear_forward(a, W, b)  # (B, S, 2D)
        k, v = np.split(kv.reshape(B, S, 2, H, Dh), 2, axis=2)  # (B, S, 1, H, Dh) each
        k, v, c_rope = k[:, :, 0], v[:, :, 0], None
        if cfg.rope:
            k, c_rope = rope_forward(k, pos, base=cfg.rope_base)
        kvs.append(np.stack([k, v], axis=1).transpose(0, 1, 3, 2, 4))  # (B, 2, H, S, Dh)
        caches.append((c_ln, c_lin, c_rope))
    kv = np.stack(kvs, axis=1)  # (B, L, 2, H, S, Dh)
    out = _unbatch(kv, batched)
    return (out, (caches, batched, hb.shape)) if return_cache else out


def kv_from_hidden_backward(params: TinyParams, cache, d_kv):
    """VJP of :func:`kv_from_hidden`: ``(dh_in, grads)`` (grads: LN_1 and the key/value columns
    of ``W_qkv``, ``b_qkv``; zero elsewhere)."""
    cfg = check_params(params)
    caches, batched, (B, L, S, D) = cache
    H, Dh = cfg.n_heads, cfg.d_head
    dkv = _batched(d_kv, batched, "d_kv", (B, L, 2, H, S, Dh))
    grads = _zero_grads(cfg)
    dh = np.zeros((B, L, S, D), cfg.np_dtype)
    for l, (c_ln, c_lin, c_rope) in enumerate(caches):
        dk, dv = (np.swapaxes(dkv[:, l, i], 1, 2) for i in (0, 1))  # (B, S, H, Dh)
        if c_rope is not None:
            (dk,) = rope_backward(dk, c_rope)
        da, dW, db = linear_backward(np.concatenate([dk, dv], axis=2).reshape(B, S, 2 * D),
                                     c_lin)
        grads[f"blocks.{l}.attn.W_qkv"][:, D:] += dW
        grads[f"blocks.{l}.attn.b_qkv"][D:] += db
        dh[:, l], dg, dbeta = layer_norm_backward(da, c_ln)
        grads[f"blocks.{l}.ln1_gamma"] += dg
        grads[f"blocks.{l}.ln1_beta"] += dbeta
    return _unbatch(dh, batched), _from_named(cfg, grads)
