"""A tiny GPT-style decoder in NumPy: KV cache, tree attention masks, full backward pass.

The shared target/draft model of the decoding references (docs/models/tiny_transformer.md).
Pre-LayerNorm blocks (GPT-2, Radford et al. 2019; Xiong et al. 2020, arXiv 2002.04745):

.. math:: h^{(0)} = x + P[\\mathrm{pos}], \\quad
          a = h^{(l-1)} + \\mathrm{MHA}(\\mathrm{LN}_1(h^{(l-1)})), \\quad
          h^{(l)} = a + \\mathrm{MLP}(\\mathrm{LN}_2(a)), \\quad
          \\mathrm{logits} = \\mathrm{LN}_f(h^{(L)})\\, W_U

with ``x = E[tokens]`` (or caller-supplied ``embeds``), learned absolute positions ``P`` unless
``config.rope`` (then q and k are rotated and ``P`` is absent), exact-erf GELU MLP, and
``W_U = E^T`` when ``config.tied_head``.

Symbols: B batch, T new tokens, S cached slots, L layers, H heads, D width, Dh = D / H, V vocab.
Every function accepts unbatched ``(T, ...)`` or batched ``(B, T, ...)`` inputs with the same
semantics. ``hidden[l]`` is the residual stream after block ``l`` (``hidden[0]`` = input
embeddings plus positions; ``hidden[L]`` is *before* the final norm — :func:`final_norm` gives
the unembedding's input).

The KV cache is one array ``(L, 2, H, S, Dh)`` (``(B, L, 2, H, S, Dh)`` batched), see
:mod:`refseq.models.kv_cache`. ``allow_mask (T, S + T)`` says which cached and new slots each new
token may attend to; for a draft tree it is all-True over the cache followed by the ancestor mask
and ``positions = S + depth``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.models.kv_cache import validate as _validate_kv
from refseq.nn.attention import MHAParams, causal_allow_mask, mha_backward, mha_forward
from refseq.nn.embedding import embedding_backward, embedding_forward, int_array
from refseq.nn.linear import linear_backward, linear_forward
from refseq.nn.mlp import MLPParams, mlp_backward, mlp_forward
from refseq.nn.norms import layer_norm_backward, layer_norm_forward
from refseq.nn.positions import (
    position_embedding_backward,
    position_embedding_forward,
    rope_backward,
    rope_forward,
)

FORMAT = "refseq.tiny_transformer.v1"


@dataclass(frozen=True)
class TinyConfig:
    """Hyper-parameters. ``dtype`` ("float32" | "float64") is the dtype of every parameter,
    activation and cache; ``activation`` is "gelu" (exact erf) or "gelu_tanh" (GPT-2)."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    max_positions: int
    d_hidden: int | None = None  # default 4 * d_model
    tied_head: bool = False
    rope: bool = False
    dtype: str = "float64"
    activation: str = "gelu"
    ln_eps: float = 1e-5
    rope_base: float = 10000.0

    def __post_init__(self):
        if self.d_hidden is None:
            object.__setattr__(self, "d_hidden", 4 * self.d_model)
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_positions", "d_hidden"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"TinyConfig.{name} must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.d_model % self.n_heads:
            raise ValueError(f"TinyConfig.n_heads = {self.n_heads} must divide d_model = "
                             f"{self.d_model}")
        if self.rope and self.d_head % 2:
            raise ValueError(f"TinyConfig.rope needs an even head width, got {self.d_head}")
        try:
            dt = np.dtype(self.dtype).name
        except TypeError:
            dt = None
        if dt not in ("float32", "float64"):
            raise ValueError(f"TinyConfig.dtype must be float32 or float64, got {self.dtype!r}")
        object.__setattr__(self, "dtype", dt)
        if self.activation not in ("gelu", "gelu_tanh"):
            raise ValueError(f"TinyConfig.activation must be 'gelu' or 'gelu_tanh', "
                             f"got {self.activation!r}")
        for name in ("tied_head", "rope"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        for name in ("ln_eps", "rope_base"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


class BlockParams(NamedTuple):
    ln1_gamma: np.ndarray  # (D,)
    ln1_beta: np.ndarray  # (D,)
    attn: MHAParams  # W_qkv (D, 3D), b_qkv (3D,), W_o (D, D), b_o (D,)
    ln2_gamma: np.ndarray  # (D,)
    ln2_beta: np.ndarray  # (D,)
    mlp: MLPParams  # W_in (D, F), b_in (F,), W_out (F, D), b_out (D,)


class TinyParams(NamedTuple):
    """All weights plus the config they belong to (gradients use the same structure)."""

    config: TinyConfig
    wte: np.ndarray  # (V, D) token embedding E
    wpe: np.ndarray | None  # (max_positions, D) position embedding P; None with RoPE
    blocks: tuple  # L x BlockParams
    lnf_gamma: np.ndarray  # (D,)
    lnf_beta: np.ndarray  # (D,)
    W_head: np.ndarray | None  # (D, V) unembedding W_U; None when tied to wte


class Gradients(NamedTuple):
    params: TinyParams  # same structure as the parameters
    embeds: np.ndarray  # (T, D) or (B, T, D): w.r.t. the input embeddings x (before positions)
    past_kv: np.ndarray | None  # like past_kv: w.r.t. the cache that was passed in


# ---------------------------------------------------------------- parameters as a named tree
def param_shapes(config: TinyConfig) -> dict:
    """``{name: shape}`` of every parameter, in the order of :func:`named_parameters`."""
    V, D, F, P = config.vocab_size, config.d_model, config.d_hidden, config.max_positions
    s = {"wte": (V, D)}
    if not config.rope:
        s["wpe"] = (P, D)
    for l in range(config.n_layers):
        p = f"blocks.{l}."
        s.update({p + "ln1_gamma": (D,), p + "ln1_beta": (D,),
                  p + "attn.W_qkv": (D, 3 * D), p + "attn.b_qkv": (3 * D,),
                  p + "attn.W_o": (D, D), p + "attn.b_o": (D,),
                  p + "ln2_gamma": (D,), p + "ln2_beta": (D,),
                  p + "mlp.W_in": (D, F), p + "mlp.b_in": (F,),
                  p + "mlp.W_out": (F, D), p + "mlp.b_out": (D,)})
    s.update({"lnf_gamma": (D,), "lnf_beta": (D,)})
    if not config.tied_head:
        s["W_head"] = (D, V)
    return s


def params_from_named(config: TinyConfig, named) -> TinyParams:
    """Build :class:`TinyParams` from a ``{name: array}`` mapping (see :func:`param_shapes`)."""
    g = named.__getitem__
    blocks = tuple(
        BlockParams(
            g(f"blocks.{l}.ln1_gamma"), g(f"blocks.{l}.ln1_beta"),
            MHAParams(*(g(f"blocks.{l}.attn.{n}") for n in MHAParams._fields)),
            g(f"blocks.{l}.ln2_gamma"), g(f"blocks.{l}.ln2_beta"),
            MLPParams(*(g(f"blocks.{l}.mlp.{n}") for n in ("W_in", "b_in", "W_out", "b_out"))),
        )
        for l in range(config.n_layers)
    )
    return TinyParams(config, g("wte"), None if config.rope else g("wpe"), blocks,
                      g("lnf_gamma"), g("lnf_beta"), None if config.tied_head else g("W_head"))


def _walk(tree, prefix=""):
    if isinstance(tree, np.ndarray):
        yield prefix, tree
    elif hasattr(tree, "_fields"):
        for f in tree._fields:
            yield from _walk(getattr(tree, f), f"{prefix}.{f}" if prefix else f)
    elif isinstance(tree, (tuple, list)):
        for i, t in enumerate(tree):
            yield from _walk(t, f"{prefix}.{i}")


def named_parameters(params: TinyParams):
    """Iterate ``(name, array)`` over every parameter (the arrays themselves, not copies), e.g.
    ``("blocks.0.attn.W_qkv", W)``; optimisers may update them in place."""
    yield from _walk(params)


def map_parameters(fn, params: TinyParams, *others) -> TinyParams:
    """New parameters ``fn(p, *o)`` leaf by leaf (``others``: trees of the same structure)."""
    o = [dict(named_parameters(t)) for t in others]
    return params_from_named(params.config, {
        n: fn(p, *(d[n] for d in o)) for n, p in named_parameters(params)})


def init_params(config: TinyConfig, seed=0) -> TinyParams:
    """Random parameters: embeddings N(0, 1), weights N(0, 1/fan_in), LN gains 1, biases 0."""
    rng = np.random.default_rng(seed)
    dt = config.np_dtype

    def draw(name, shape):
        leaf = name.rsplit(".", 1)[-1]
        if leaf.endswith("gamma"):
            return np.ones(shape, dt)
        if leaf.endswith("beta") or leaf.startswith("b_"):
            return np.zeros(shape, dt)
        std = 1.0 if leaf in ("wte", "wpe") else 1.0 / np.sqrt(shape[0])
        return (std * rng.standard_normal(shape)).astype(dt)

    return params_from_named(config, {n: draw(n, s) for n, s in param_shapes(config).items()})


def check_params(params) -> TinyConfig:
    """Validate structure, dtypes and shapes; return the config (raises TypeError/ValueError)."""
    if not isinstance(params, TinyParams) or not isinstance(params.config, TinyConfig):
        raise TypeError(f"params must be a TinyParams (see init_params), got {type(params)}")
    cfg = params.config
    shapes, got = param_shapes(cfg), dict(named_parameters(params))
    if set(got) != set(shapes):
        raise ValueError(f"params do not match the config: missing {sorted(set(shapes) - set(got))}"
                         f", unexpected {sorted(set(got) - set(shapes))}")
    for n, a in got.items():
        if a.dtype != cfg.np_dtype:
            raise TypeError(f"params.{n} must have dtype {cfg.dtype} (config.dtype), got {a.dtype}")
        _checks.check_shape(a, shapes[n], f"params.{n}", "(see param_shapes)")
    return cfg


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


# ---------------------------------------------------------------- pieces of the forward
def _block_forward(bp, h, cfg, pos, mask, past_l):
    a, c_ln1 = layer_norm_forward(h, bp.ln1_gamma, bp.ln1_beta, cfg.ln_eps)  # (B, T, D)
    att, kv, c_att = mha_forward(a, bp.attn, cfg.n_heads, mask, pos, past_l, rope=cfg.rope,
                                 rope_base=cfg.rope_base)  # (B, T, D), 2 x (B, H, S+T, Dh)
    h = h + att
    m, c_ln2 = layer_norm_forward(h, bp.ln2_gamma, bp.ln2_beta, cfg.ln_eps)
    f, c_mlp = mlp_forward(m, bp.mlp, cfg.activation)  # (B, T, D)
    return h + f, np.stack(kv, axis=1), (c_ln1, c_att, c_ln2, c_mlp)  # kv (B, 2, H, S+T, Dh)


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


def _zero_grads(cfg):
    return {n: np.zeros(s, cfg.np_dtype) for n, s in param_shapes(cfg).items()}


def _unbatch(x, batched):
    return x if (x is None or batched) else x[0]


# ---------------------------------------------------------------- public forward entry points
def token_embeddings(params: TinyParams, tokens) -> np.ndarray:
    """``E[tokens]``: (T, D) or (B, T, D) (for callers that mix tokens and free embeddings)."""
    cfg = check_params(params)
    return embedding_forward(int_array(tokens, "tokens", high=cfg.vocab_size), params.wte)[0]


def final_norm(params: TinyParams, h) -> np.ndarray:
    """``LN_f(h)``: the unembedding's input (the hidden state Medusa/EAGLE/Chimera read)."""
    cfg = params.config
    return layer_norm_forward(h, params.lnf_gamma, params.lnf_beta, cfg.ln_eps)[0]


def lm_head(params: TinyParams, h, return_cache: bool = False):
    """Final LayerNorm then unembedding: ``h (..., D) -> logits (..., V)``."""
    cfg = check_params(params)
    h = _checks.float_array(h, "h", dtype=cfg.np_dtype)
    if h.ndim < 1 or h.shape[-1] != cfg.d_model:
        raise ValueError(f"h must have shape (..., D) with D = {cfg.d_model}, got {h.shape}")
    n, c_ln = layer_norm_forward(h, params.lnf_gamma, params.lnf_beta, cfg.ln_eps)  # (..., D)
    W = params.wte.T if cfg.tied_head else params.W_head  # (D, V)
    logits, c_lin = linear_forward(n, W, None)  # (..., V)
    return (logits, (c_ln, c_lin)) if return_cache else logits


def lm_head_backward(params: TinyParams, cache, dlogits, grads=None):
    """VJP of :func:`lm_head`: returns ``(dh, grads)`` with ``grads`` a ``{name: array}`` dict
    (accumulated into ``grads`` when given)."""
    cfg = params.config
    grads = _zero_grads(cfg) if grads is None else grads
    c_ln, c_lin = cache
    dn, dW, _ = linear_backward(dlogits, c_lin)
    if cfg.tied_head:
        grads["wte"] += dW.T
    else:
        grads["W_head"] += dW
    dh, dg, db = layer_norm_backward(dn, c_ln)
    grads["lnf_gamma"] += dg
    grads["lnf_beta"] += db
    return dh, grads


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
    cfg = check_params(params)
    L = cfg.n_layers
    if not (isinstance(lo, (int, np.integer)) and isinstance(hi, (int, np.integer))
            and 0 <= lo <= hi <= L):
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
    return (_unbatch(dh, cache.batched), params_from_named(cfg, grads),
            _unbatch(d_past, cache.batched))


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
    cfg = check_params(params)
    if (tokens is None) == (embeds is None):
        raise ValueError("pass exactly one of tokens or embeds")
    if tokens is not None:
        tok = int_array(tokens, "tokens", high=cfg.vocab_size, form="(T,) or (B, T)")
        if tok.ndim not in (1, 2) or tok.shape[-1] < 1:
            raise ValueError(f"tokens must have shape (T,) or (B, T) with T >= 1, got {tok.shape}")
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
    return Gradients(params_from_named(cfg, grads), _unbatch(dx, cache.batched),
                     _unbatch(d_past, cache.batched))


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
    return _unbatch(dh, batched), params_from_named(cfg, grads)


# ---------------------------------------------------------------- save / load
def save(path, params: TinyParams) -> None:
    """Write parameters and config to an ``.npz`` (no pickles; exact bits)."""
    cfg = check_params(params)
    meta = {"__format__": np.array(FORMAT), "__config__": np.array(json.dumps(asdict(cfg)))}
    np.savez(path, **meta, **dict(named_parameters(params)))


def load(path, config: TinyConfig | None = None) -> TinyParams:
    """Read a file written by :func:`save` (``allow_pickle=False``).

    Raises ``ValueError`` naming the problem for an unreadable or corrupted file, a missing or
    unexpected array, a wrong shape or dtype, or a stored config different from ``config``.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile.BadZipFile, zlib.error, ValueError, EOFError, ...
        raise ValueError(f"{path}: not a readable tiny-transformer .npz file "
                         f"({type(e).__name__}: {e})") from e
    fmt = arrays.pop("__format__", None)
    if fmt is None or fmt.shape != () or str(fmt) != FORMAT:
        raise ValueError(f"{path}: missing or unknown __format__ {fmt!r}; expected {FORMAT!r}")
    try:
        stored = TinyConfig(**json.loads(str(arrays.pop("__config__"))))
    except Exception as e:
        raise ValueError(f"{path}: missing or invalid __config__ ({type(e).__name__}: {e})") from e
    if config is not None and config != stored:
        diff = {f.name: (getattr(stored, f.name), getattr(config, f.name)) for f in fields(config)
                if getattr(stored, f.name) != getattr(config, f.name)}
        raise ValueError(f"{path}: stored config differs from the expected one "
                         f"(field: (stored, expected)) {diff}")
    shapes = param_shapes(stored)
    missing, extra = sorted(set(shapes) - set(arrays)), sorted(set(arrays) - set(shapes))
    if missing or extra:
        raise ValueError(f"{path}: arrays do not match the stored config: missing {missing}, "
                         f"unexpected {extra}")
    for n, s in shapes.items():
        if arrays[n].dtype != stored.np_dtype or arrays[n].shape != s:
            raise ValueError(f"{path}: array {n!r} has {arrays[n].dtype} {arrays[n].shape}, "
                             f"expected {stored.dtype} {s}")
    return params_from_named(stored, arrays)
