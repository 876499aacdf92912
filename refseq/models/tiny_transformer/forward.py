"""The tiny transformer's forward pass: input checks, blocks, LM head and the entry points.

:func:`forward` (tokens or embeddings to logits, with KV cache and ``allow_mask``),
:func:`forward_layers` (a slice of blocks), :func:`lm_head`, :func:`final_norm` and
:func:`token_embeddings` of :mod:`refseq.models.tiny_transformer`; the caches they return feed
:mod:`refseq.models.tiny_transformer.backward`. Model, shapes and masks:
docs/models/tiny_transformer.md.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq._checks import check_flag
from refseq.models.tiny_transformer.kv_cache import validate as _validate_kv
from refseq.models.tiny_transformer.params import TinyParams, check_params
from refseq.nn.attention import causal_allow_mask, mha_forward
from refseq.nn.embedding import embedding_forward, int_array
from refseq.nn.linear import linear_forward
from refseq.nn.mlp import mlp_forward
from refseq.nn.norms import layer_norm_forward
from refseq.nn.positions import position_embedding_forward


# ---------------------------------------------------------------- input checks
def _mask(allow_mask, B, T, S, batched):
    if allow_mask is None:
        return causal_allow_mask(T, S)
    m = np.asarray(allow_mask)
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iu" or (m.size and not np.isin(m, (0, 1)).all()):
            raise TypeError(f"allow_mask must be a boolean array, got dtype {m.dtype}")
        m = m.astype(bool)
    ok = m.shape == (T, S + T) or (batched and m.shape == (B, T, S + T))
    if not ok:
        raise ValueError(f"allow_mask must have shape (T, S + T) = {(T, S + T)}"
                         + (f" or (B, T, S + T) = {(B, T, S + T)}" if batched else "")
                         + f" (S = {S} cached slots), got {m.shape}")
    return m


def _positions(cfg, positions, B, T, S, batched):
    if positions is None:
        positions = S + np.arange(T)
    pos = int_array(positions, "positions", form="(T,) or (B, T)")
    if not (pos.shape == (T,) or (batched and pos.shape == (B, T))):
        raise ValueError(f"positions must have shape (T,) = {(T,)}"
                         + (f" or (B, T) = {(B, T)}" if batched else "") + f", got {pos.shape}")
    if pos.size and (pos.min() < 0 or pos.max() >= cfg.max_positions):
        bad = pos[(pos < 0) | (pos >= cfg.max_positions)].flat[0]
        raise ValueError(f"positions must lie in [0, max_positions) = [0, {cfg.max_positions}),"
                         f" found {int(bad)}")
    return pos


def _past(cfg, past_kv, B, batched, n_layers=None):
    if past_kv is None:
        return None
    kv = _validate_kv(past_kv, cfg, "past_kv", B if batched else None, n_layers)
    return kv if batched else kv[None]  # (B, L', 2, H, S, Dh)


def _batched(x, batched, name, shape):
    x = _checks.float_array(x, name)
    _checks.check_shape(x, shape if batched else shape[1:], name,
                        "like the forward output" + ("" if batched else " (unbatched)"))
    return x if batched else x[None]


def _tokens(tokens, cfg):
    tok = int_array(tokens, "tokens", high=cfg.vocab_size, form="(T,) or (B, T)")
    if tok.ndim not in (1, 2) or tok.shape[-1] < 1:
        raise ValueError(f"tokens must have shape (T,) or (B, T) with T >= 1, got {tok.shape}")
    return tok


def _hidden(h, cfg):
    h = _checks.float_array(h, "h", dtype=cfg.np_dtype)
    if h.ndim < 1 or h.shape[-1] != cfg.d_model:
        raise ValueError(f"h must have shape (..., D) with D = {cfg.d_model}, got {h.shape}")
    return h


# ---------------------------------------------------------------- pieces of the forward
def _block_forward(bp, h, cfg, pos, mask, past_l):
    a, c_ln1 = layer_norm_forward(h, bp.ln1_gamma, bp.ln1_beta, cfg.ln_eps)  # (B, T, D)
    att, kv, c_att = mha_forward(a, bp.attn, cfg.n_heads, mask, pos, past_l, rope=cfg.rope,
                                 rope_base=cfg.rope_base)  # (B, T, D), 2 x (B, H, S+T, Dh)
    h = h + att
    m, c_ln2 = layer_norm_forward(h, bp.ln2_gamma, bp.ln2_beta, cfg.ln_eps)
    f, c_mlp = mlp_forward(m, bp.mlp, cfg.activation)  # (B, T, D)
    return h + f, np.stack(kv, axis=1), (c_ln1, c_att, c_ln2, c_mlp)  # kv (B, 2, H, S+T, Dh)


class LayersCache(NamedTuple):
    lo: int
    hi: int
    blocks: list
    batched: bool
    shape: tuple  # (B, T, D)
    kv_shape: tuple  # (B, hi - lo, 2, H, S + T, Dh)
    had_past: bool


def _layers(params, h, lo, hi, pos, mask, past):
    cfg = params.config
    B, T, D = h.shape
    S = 0 if past is None else past.shape[-2]
    hidden, kvs, caches = [h], [], []
    for j, l in enumerate(range(lo, hi)):
        past_l = None if past is None else (past[:, j, 0], past[:, j, 1])
        h, kv, c = _block_forward(params.blocks[l], h, cfg, pos, mask, past_l)
        hidden.append(h)
        kvs.append(kv)
        caches.append(c)
    new_kv = (np.stack(kvs, axis=1) if kvs else  # (B, hi-lo, 2, H, S+T, Dh)
              np.zeros((B, 0, 2, cfg.n_heads, S + T, cfg.d_head), h.dtype))
    return hidden, new_kv, caches


def _unbatch(x, batched):
    return x if (x is None or batched) else x[0]


# ---------------------------------------------------------------- public forward entry points
def token_embeddings(params: TinyParams, tokens) -> np.ndarray:
    """``E[tokens]``: (T, D) or (B, T, D) (for callers that mix tokens and free embeddings)."""
    cfg = check_params(params)
    return embedding_forward(_tokens(tokens, cfg), params.wte)[0]


def final_norm(params: TinyParams, h) -> np.ndarray:
    """``LN_f(h)``: the unembedding's input (the hidden state Medusa/EAGLE/Chimera read)."""
    cfg = check_params(params)
    h = _hidden(h, cfg)
    return layer_norm_forward(h, params.lnf_gamma, params.lnf_beta, cfg.ln_eps)[0]


def lm_head(params: TinyParams, h, return_cache: bool = False):
    """Final LayerNorm then unembedding: ``h (..., D) -> logits (..., V)``."""
    return_cache = check_flag(return_cache, "return_cache")
    cfg = check_params(params)
    h = _hidden(h, cfg)
    n, c_ln = layer_norm_forward(h, params.lnf_gamma, params.lnf_beta, cfg.ln_eps)  # (..., D)
    W = params.wte.T if cfg.tied_head else params.W_head  # (D, V)
    logits, c_lin = linear_forward(n, W, None)  # (..., V)
    return (logits, (c_ln, c_lin)) if return_cache else logits


def forward_layers(params: TinyParams, h, lo: int, hi: int, positions=None, allow_mask=None,
                   past_kv=None, return_hidden: bool = True, return_cache: bool = False):
    """Run blocks ``lo+1 .. hi`` (1-based; Python ``blocks[lo:hi]``) on hidden states ``h``.

    Parameters
    ----------
    h : (T, D) or (B, T, D) — the residual stream entering block lo+1, i.e. ``hidden[lo]``.
    lo, hi : 0 <= lo <= hi <= L.
    positions : (T,) or (B, T) int — only read by RoPE (learned positions were added to
        ``hidden[0]``); default ``S + arange(T)``. Validated against ``max_positions``.
    allow_mask : (T, S + T) or (B, T, S + T) bool, default causal.
    past_kv : the cache slice of these layers, ``(hi - lo, 2, H, S, Dh)`` (``past_kv[lo:hi]`` of
        a full cache; ``(B, hi - lo, 2, H, S, Dh)`` batched) or None.

    Returns
    -------
    h_out : like ``h`` (``hidden[hi]``); hidden : list of ``hi - lo + 1`` arrays (``hidden[lo]``
    .. ``hidden[hi]``) or None; new_kv : ``(hi - lo, 2, H, S + T, Dh)``; plus a cache for
    :func:`forward_layers_backward` when ``return_cache``.
    """
    return_hidden = check_flag(return_hidden, "return_hidden")
    return_cache = check_flag(return_cache, "return_cache")
    cfg = check_params(params)
    L = cfg.n_layers
    lo = _checks.check_number(lo, "lo", integer=True)
    hi = _checks.check_number(hi, "hi", integer=True)
    if not 0 <= lo <= hi <= L:
        raise ValueError(f"need integers 0 <= lo <= hi <= L = {L}, got lo={lo!r}, hi={hi!r}")
    h = _checks.float_array(h, "h", dtype=cfg.np_dtype)
    if h.ndim not in (2, 3) or h.shape[-1] != cfg.d_model:
        raise ValueError(f"h must have shape (T, D) or (B, T, D) with D = {cfg.d_model}, "
                         f"got {h.shape}")
    batched = h.ndim == 3
    hb = h if batched else h[None]  # (B, T, D)
    B, T, _ = hb.shape
    past = _past(cfg, past_kv, B, batched, hi - lo)
    S = 0 if past is None else past.shape[-2]
    pos = _positions(cfg, positions, B, T, S, batched)
    mask = _mask(allow_mask, B, T, S, batched)
    hidden, new_kv, caches = _layers(params, hb, lo, hi, pos, mask, past)
    out = (_unbatch(hidden[-1], batched),
           [_unbatch(x, batched) for x in hidden] if return_hidden else None,
           _unbatch(new_kv, batched))
    if return_cache:
        kv_shape = (B, hi - lo, 2, cfg.n_heads, S + T, cfg.d_head)
        out += (LayersCache(lo, hi, caches, batched, hb.shape, kv_shape, past is not None),)
    return out


class ModelCache(NamedTuple):
    emb: object | None  # embedding cache (tokens) or None (embeds)
    pos: object | None  # position-embedding cache or None (RoPE)
    pos_shared: bool  # positions were (T,): shared by the rows, sum dP over B
    layers: LayersCache
    head: tuple
    batched: bool
    logits_shape: tuple  # (B, T, V)


def forward(params: TinyParams, tokens=None, embeds=None, positions=None, allow_mask=None,
            past_kv=None, return_hidden: bool = True, return_cache: bool = False):
    """Logits for ``T`` new tokens given an optional cache of ``S`` earlier slots.

    Parameters
    ----------
    params : TinyParams (from :func:`init_params` or :func:`load`).
    tokens : (T,) or (B, T) int in ``[0, V)`` — or instead
    embeds : (T, D) or (B, T, D) float — input embeddings used in place of ``E[tokens]``
        (positions are still added). Exactly one of the two.
    positions : (T,) or (B, T) int in ``[0, max_positions)``; default ``S + arange(T)``.
    allow_mask : (T, S + T) or (B, T, S + T) bool, True = may attend; default causal
        (:func:`refseq.nn.attention.causal_allow_mask`). A row with no True attends to nothing
        and its attention output is 0.
    past_kv : (L, 2, H, S, Dh) or (B, L, 2, H, S, Dh), or None (S = 0).
    return_hidden : also return the residual stream of every layer.
    return_cache : also return the cache for :func:`backward`.

    Returns
    -------
    logits : (T, V) or (B, T, V).
    hidden : list of L + 1 arrays (T, D) / (B, T, D), or None.
    new_kv : (L, 2, H, S + T, Dh) (batched: leading B) — ``past_kv`` followed by the new slots.
    cache : ModelCache, only when ``return_cache``.

    Raises
    ------
    TypeError / ValueError naming the argument: ids outside the vocabulary, positions past the
    table, masks or caches of the wrong shape (a cache from a different config), non-float
    parameters.
    """
    return_hidden = check_flag(return_hidden, "return_hidden")
    return_cache = check_flag(return_cache, "return_cache")
    cfg = check_params(params)
    if (tokens is None) == (embeds is None):
        raise ValueError("pass exactly one of tokens or embeds")
    if tokens is not None:
        tok = _tokens(tokens, cfg)
        if positions is None and past_kv is None and tok.shape[-1] > cfg.max_positions:
            raise ValueError(f"tokens must have at most max_positions = {cfg.max_positions} "
                             f"time steps, got T = {tok.shape[-1]}")
        x, c_emb = embedding_forward(tok, params.wte)  # (..., T, D)
    else:
        x = _checks.float_array(embeds, "embeds", dtype=cfg.np_dtype)
        if x.ndim not in (2, 3) or x.shape[-1] != cfg.d_model or x.shape[-2] < 1:
            raise ValueError(f"embeds must have shape (T, D) or (B, T, D) with D = {cfg.d_model}"
                             f" and T >= 1, got {x.shape}")
        c_emb = None
    batched = x.ndim == 3
    xb = x if batched else x[None]  # (B, T, D)
    B, T, D = xb.shape
    past = _past(cfg, past_kv, B, batched)
    S = 0 if past is None else past.shape[-2]
    pos = _positions(cfg, positions, B, T, S, batched)
    mask = _mask(allow_mask, B, T, S, batched)
    h0, c_pos = xb, None
    if not cfg.rope:
        pe, c_pos = position_embedding_forward(pos, params.wpe)  # (T, D) or (B, T, D)
        h0 = xb + pe  # (B, T, D)
    hidden, new_kv, caches = _layers(params, h0, 0, cfg.n_layers, pos, mask, past)
    logits, c_head = lm_head(params, hidden[-1], return_cache=True)  # (B, T, V)
    out = (_unbatch(logits, batched),
           [_unbatch(h, batched) for h in hidden] if return_hidden else None,
           _unbatch(new_kv, batched))
    if return_cache:
        kv_shape = (B, cfg.n_layers, 2, cfg.n_heads, S + T, cfg.d_head)
        lc = LayersCache(0, cfg.n_layers, caches, batched, xb.shape, kv_shape, past is not None)
        out += (ModelCache(c_emb, c_pos, pos.ndim == 1, lc, c_head, batched,
                           (B, T, cfg.vocab_size)),)
    return out
