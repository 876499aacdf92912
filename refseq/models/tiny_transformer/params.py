"""The tiny transformer's parameters: config, the named parameter tree, init, checks, save/load.

:class:`TinyConfig` and :class:`TinyParams` of :mod:`refseq.models.tiny_transformer` (the model is
described there and in docs/models/tiny_transformer.md), parameters as a ``{name: array}`` tree
(``"blocks.0.attn.W_qkv"``), and the ``.npz`` file format (no pickles).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.nn.attention import MHAParams
from refseq.nn.mlp import MLPParams

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
            v = _checks.check_number(getattr(self, name), f"TinyConfig.{name}", integer=True,
                                     low=1)
            object.__setattr__(self, name, v)
        if self.d_model % self.n_heads:
            raise ValueError(f"TinyConfig.n_heads = {self.n_heads} must divide d_model = "
                             f"{self.d_model}")
        if self.rope and self.d_head % 2:
            raise ValueError(f"TinyConfig.rope needs an even head width, got {self.d_head}")
        dt = _checks.check_float_dtype(self.dtype, "TinyConfig.dtype").name
        object.__setattr__(self, "dtype", dt)
        _checks.check_choice(self.activation, "TinyConfig.activation", ("gelu", "gelu_tanh"))
        for name in ("tied_head", "rope"):
            object.__setattr__(self, name, _checks.check_flag(getattr(self, name), name))
        object.__setattr__(self, "ln_eps", _checks.check_number(self.ln_eps, "TinyConfig.ln_eps",
                                                                low=0))
        object.__setattr__(self, "rope_base", _checks.check_number(
            self.rope_base, "TinyConfig.rope_base", low=1, low_open=True))

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


# ---------------------------------------------------------------- parameters as a named tree
def param_shapes(config: TinyConfig) -> dict:
    """``{name: shape}`` of every parameter, in the order of :func:`named_parameters`."""
    _check_config(config)
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


def _check_config(config, name: str = "config") -> None:
    if not isinstance(config, TinyConfig):
        raise TypeError(f"{name} must be a TinyConfig, got {type(config).__name__}")


def params_from_named(config: TinyConfig, named) -> TinyParams:
    """Build :class:`TinyParams` from a ``{name: array}`` mapping (see :func:`param_shapes`);
    every name must be present with its shape and the config's dtype."""
    shapes = param_shapes(config)
    if not isinstance(named, Mapping):
        raise TypeError(f"named must be a mapping {{name: array}}, got {type(named).__name__}")
    missing = [n for n in shapes if n not in named]
    if missing:
        raise ValueError(f"named is missing parameters {missing} (see param_shapes)")
    for n, shape in shapes.items():
        a = named[n]
        if not isinstance(a, np.ndarray) or a.dtype != config.np_dtype:
            raise TypeError(f"named[{n!r}] must be a {config.dtype} array (config.dtype), got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
        _checks.check_shape(a, shape, f"named[{n!r}]", "(see param_shapes)")
    return _from_named(config, named)


def _from_named(config: TinyConfig, named) -> TinyParams:
    """:func:`params_from_named` without the checks (gradients, ``map_parameters`` results)."""
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
    ``("blocks.0.attn.W_qkv", W)``; optimisers may update them in place. ``params`` is a
    :class:`TinyParams` (or one of its parts, such as a :class:`BlockParams`)."""
    if not hasattr(params, "_fields"):
        raise TypeError(f"params must be a TinyParams (see init_params), got "
                        f"{type(params).__name__}")
    return _walk(params)


def map_parameters(fn, params: TinyParams, *others) -> TinyParams:
    """New parameters ``fn(p, *o)`` leaf by leaf (``others``: trees of the same structure)."""
    if not callable(fn):
        raise TypeError(f"fn must be a callable array -> array, got {type(fn).__name__}")
    if not isinstance(params, TinyParams):
        raise TypeError(f"params must be a TinyParams (see init_params), got "
                        f"{type(params).__name__}")
    o = [dict(named_parameters(t)) for t in others]
    return _from_named(params.config, {
        n: fn(p, *(d[n] for d in o)) for n, p in named_parameters(params)})


def init_params(config: TinyConfig, seed=0) -> TinyParams:
    """Random parameters: embeddings N(0, 1), weights N(0, 1/fan_in), LN gains 1, biases 0."""
    if not isinstance(config, TinyConfig):
        raise TypeError(f"config must be a TinyConfig, got {type(config).__name__}")
    rng = _checks.check_rng(seed, "seed")
    dt = config.np_dtype

    def draw(name, shape):
        leaf = name.rsplit(".", 1)[-1]
        if leaf.endswith("gamma"):
            return np.ones(shape, dt)
        if leaf.endswith("beta") or leaf.startswith("b_"):
            return np.zeros(shape, dt)
        std = 1.0 if leaf in ("wte", "wpe") else 1.0 / np.sqrt(shape[0])
        return (std * rng.standard_normal(shape)).astype(dt)

    return _from_named(config, {n: draw(n, s) for n, s in param_shapes(config).items()})


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


def _zero_grads(cfg):
    return {n: np.zeros(s, cfg.np_dtype) for n, s in param_shapes(cfg).items()}


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
    if config is not None:
        _check_config(config)
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
    return _from_named(stored, arrays)
