"""Weight converters between Hugging Face GPT-2 (``GPT2LMHeadModel``) and the tiny transformer.

The two models compute the same function (pre-LN blocks, learned absolute positions, tanh-GELU
MLP, head tied to the token embedding by default), so conversion is a renaming plus **one**
transpose: HF's ``Conv1D`` layers (``c_attn``, ``c_proj``, ``c_fc``) already store their weight as
``(in, out)`` and apply ``y = x W + b``, the row-vector convention of :mod:`refseq.nn.linear`; only
the ``nn.Linear`` LM head stores ``(out, in) = (V, D)`` and becomes ``W_head = lm_head.weight.T``.
``c_attn``'s ``(D, 3D)`` columns are ``[q | k | v]`` with head ``h`` owning columns
``h*Dh:(h+1)*Dh`` of each third, exactly ``W_qkv``'s layout. The naming table is
:func:`gpt2_names`; details and unsupported options: docs/models/tiny_transformer.md,
"Hugging Face GPT-2 weights".

Nothing here imports torch or transformers: state dicts may hold torch tensors (converted with
``.detach().cpu().numpy()``) or NumPy arrays, and configs are read by attribute.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from refseq import _checks
from refseq.models.tiny_transformer.params import (
    TinyConfig,
    TinyParams,
    _check_config,
    check_params,
    named_parameters,
    param_shapes,
    params_from_named,
)

# HF activation name -> TinyConfig.activation. "gelu_new" and "gelu_pytorch_tanh" are the tanh
# approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); "gelu" is the exact erf form.
# ("gelu_fast" is left out: it rounds sqrt(2/pi) to 10 digits, a 3e-12 relative difference.)
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
# Non-parameter buffers that older GPT-2 checkpoints carry (causal-mask tables); ignored.
_BUFFERS = (".attn.bias", ".attn.masked_bias", ".crossattention.bias",
            ".crossattention.masked_bias")
_HEAD = "lm_head.weight"
# Per block: refseq name (after "blocks.{l}.") -> HF name (after "h.{l}."); none transposes.
_BLOCK_NAMES = (
    ("ln1_gamma", "ln_1.weight"), ("ln1_beta", "ln_1.bias"),
    ("attn.W_qkv", "attn.c_attn.weight"), ("attn.b_qkv", "attn.c_attn.bias"),  # (D, 3D), (3D,)
    ("attn.W_o", "attn.c_proj.weight"), ("attn.b_o", "attn.c_proj.bias"),  # (D, D), (D,)
    ("ln2_gamma", "ln_2.weight"), ("ln2_beta", "ln_2.bias"),
    ("mlp.W_in", "mlp.c_fc.weight"), ("mlp.b_in", "mlp.c_fc.bias"),  # (D, F), (F,)
    ("mlp.W_out", "mlp.c_proj.weight"), ("mlp.b_out", "mlp.c_proj.bias"),  # (F, D), (D,)
)


def gpt2_names(config: TinyConfig, prefix: str = "transformer.") -> dict:
    """``{refseq name: (HF name, transposed)}`` for every tiny-transformer parameter.

    ``transposed`` is True only for ``W_head`` (``lm_head.weight`` is ``(V, D)``); a tied config
    has no ``W_head`` entry (HF's ``lm_head.weight`` is then ``wte``). ``prefix`` is
    ``"transformer."`` for ``GPT2LMHeadModel`` and ``""`` for a bare ``GPT2Model``.
    """
    _check_config(config)
    _checks.check_instance(prefix, str, "prefix", "str")
    if config.rope:
        raise ValueError("config.rope must be False: GPT-2 has learned absolute positions")
    m = {"wte": (prefix + "wte.weight", False), "wpe": (prefix + "wpe.weight", False)}
    for l in range(config.n_layers):
        hf, rs = f"{prefix}h.{l}.", f"blocks.{l}."
        for ours, theirs in _BLOCK_NAMES:
            m[rs + ours] = (hf + theirs, False)
    m["lnf_gamma"] = (prefix + "ln_f.weight", False)
    m["lnf_beta"] = (prefix + "ln_f.bias", False)
    if not config.tied_head:
        m["W_head"] = (_HEAD, True)
    return m


def config_from_gpt2(hf_config, dtype="float64") -> TinyConfig:
    """The :class:`TinyConfig` of a ``transformers.GPT2Config`` (read by attribute).

    Raises
    ------
    ValueError naming the option for what the tiny transformer does not compute:
    ``model_type != "gpt2"``, ``activation_function`` other than ``"gelu_new"``,
    ``"gelu_pytorch_tanh"`` or ``"gelu"``, ``scale_attn_weights=False``,
    ``scale_attn_by_inverse_layer_idx=True``, ``reorder_and_upcast_attn=True`` (it computes
    attention in float32 even in a float64 model) and ``add_cross_attention=True``. Dropout
    probabilities are not checked: run HF models in ``eval()`` mode.
    """
    dtype = _checks.check_float_dtype(dtype, "dtype").name

    def get(option):
        if not hasattr(hf_config, option):
            raise TypeError(f"hf_config must be a transformers GPT2Config; it has no {option!r}")
        return getattr(hf_config, option)

    if getattr(hf_config, "model_type", None) != "gpt2":
        raise ValueError(f"hf_config.model_type must be 'gpt2', got "
                         f"{getattr(hf_config, 'model_type', None)!r}")
    act = get("activation_function")
    if act not in _ACTIVATIONS:
        raise ValueError(f"hf_config.activation_function must be one of {sorted(_ACTIVATIONS)}, "
                         f"got {act!r}")
    for option, supported in (("scale_attn_weights", True),
                              ("scale_attn_by_inverse_layer_idx", False),
                              ("reorder_and_upcast_attn", False), ("add_cross_attention", False)):
        if bool(getattr(hf_config, option, supported)) != supported:
            raise ValueError(f"hf_config.{option} = {getattr(hf_config, option)!r} is not "
                             f"supported by the tiny transformer (needs {supported})")
    return TinyConfig(vocab_size=get("vocab_size"), d_model=get("n_embd"), n_layers=get("n_layer"),
                      n_heads=get("n_head"), max_positions=get("n_positions"),
                      d_hidden=get("n_inner"), tied_head=bool(get("tie_word_embeddings")),
                      dtype=dtype, activation=_ACTIVATIONS[act],
                      ln_eps=float(get("layer_norm_epsilon")))


def gpt2_config_kwargs(config: TinyConfig) -> dict:
    """Keyword arguments of ``transformers.GPT2Config`` for the same model (dropout 0), the
    inverse of :func:`config_from_gpt2`: ``GPT2LMHeadModel(GPT2Config(**kwargs))``."""
    _check_config(config)
    gpt2_names(config)  # rejects RoPE
    act = {"gelu_tanh": "gelu_new", "gelu": "gelu"}[config.activation]
    return dict(vocab_size=config.vocab_size, n_positions=config.max_positions,
                n_embd=config.d_model, n_layer=config.n_layers, n_head=config.n_heads,
                n_inner=config.d_hidden, activation_function=act,
                layer_norm_epsilon=config.ln_eps, tie_word_embeddings=config.tied_head,
                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def _to_numpy(value, name: str, dtype: np.dtype) -> np.ndarray:
    """A fresh array of ``dtype`` (never a view of the caller's tensor or array)."""
    if hasattr(value, "detach"):  # a torch tensor; bfloat16/float16 upcast exactly first
        t = value.detach().cpu()
        if t.is_floating_point() and t.element_size() < 4:
            t = t.float()
        value = t.numpy()
    a = np.asarray(value)
    if a.dtype.kind != "f":
        raise TypeError(f"state_dict[{name!r}] must be a floating-point tensor or array, "
                        f"got {a.dtype}")
    return np.array(a, dtype=dtype, copy=True)


def from_gpt2_state_dict(state_dict, config: TinyConfig) -> TinyParams:
    """:class:`TinyParams` from a GPT-2 ``state_dict`` (``GPT2LMHeadModel`` keys, or bare
    ``GPT2Model`` keys without the ``"transformer."`` prefix).

    Parameters
    ----------
    state_dict : mapping ``{HF name: torch tensor or ndarray}``; values are copied and cast to
        ``config.dtype``. HF's non-parameter buffers (``h.{l}.attn.bias``, ``attn.masked_bias``)
        are ignored.
    config : TinyConfig with ``rope=False`` (e.g. from :func:`config_from_gpt2`). With
        ``config.tied_head``, ``lm_head.weight`` may be absent; if present it must equal
        ``wte`` exactly.

    Raises
    ------
    ValueError for missing or unexpected keys (all listed), a wrong shape (naming the key), or
    an ``lm_head.weight`` that differs from ``wte`` under a tied config; TypeError for a
    non-mapping or non-float values.
    """
    _check_config(config)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping {{name: tensor}}, got "
                        f"{type(state_dict).__name__}")
    prefix = "transformer." if any(str(k).startswith("transformer.") for k in state_dict) else ""
    names = gpt2_names(config, prefix)
    expected = {hf for hf, _ in names.values()}
    optional = {_HEAD} if config.tied_head else set()
    missing = sorted(expected - set(state_dict))
    extra = sorted(k for k in state_dict if k not in expected and k not in optional
                   and not str(k).endswith(_BUFFERS))
    if missing or extra:
        raise ValueError(f"state_dict does not match the config: missing {missing}, unexpected "
                         f"{extra} (see gpt2_names(config))")
    dt = config.np_dtype
    hf_shapes = {n: s[::-1] if names[n][1] else s for n, s in param_shapes(config).items()}
    named = {}
    for ours, (theirs, transposed) in names.items():
        a = _to_numpy(state_dict[theirs], theirs, dt)
        if a.shape != hf_shapes[ours]:
            raise ValueError(f"state_dict[{theirs!r}] must have shape {hf_shapes[ours]} for this "
                             f"config, got {a.shape}")
        named[ours] = np.ascontiguousarray(a.T) if transposed else a  # (V, D) -> (D, V)
    if config.tied_head and _HEAD in state_dict:
        head = _to_numpy(state_dict[_HEAD], _HEAD, dt)
        if head.shape != named["wte"].shape or not np.array_equal(head, named["wte"]):
            raise ValueError(f"state_dict['lm_head.weight'] differs from "
                             f"'{prefix}wte.weight' but config.tied_head is True "
                             f"(use tied_head=False for an untied head)")
    return params_from_named(config, named)


def to_gpt2_state_dict(params: TinyParams) -> dict:
    """``{HF name: ndarray}`` of ``GPT2LMHeadModel`` (fresh contiguous copies in
    ``config.dtype``, ``lm_head.weight = W_head.T``, or a copy of ``wte`` when tied), for
    ``hf_model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``."""
    cfg = check_params(params)
    ours = dict(named_parameters(params))
    sd = {theirs: np.ascontiguousarray(ours[n].T if transposed else ours[n]).copy()
          for n, (theirs, transposed) in gpt2_names(cfg).items()}  # W_head (D, V) -> (V, D)
    if cfg.tied_head:
        sd[_HEAD] = ours["wte"].copy()
    return sd


def from_gpt2(hf_model, dtype="float64") -> TinyParams:
    """:class:`TinyParams` of a ``GPT2LMHeadModel`` (or ``GPT2Model``) in ``dtype``:
    ``from_gpt2_state_dict(hf_model.state_dict(), config_from_gpt2(hf_model.config, dtype))``."""
    if not callable(getattr(hf_model, "state_dict", None)) or not hasattr(hf_model, "config"):
        raise TypeError(f"hf_model must be a transformers GPT-2 model (with .config and "
                        f".state_dict()), got {type(hf_model).__name__}")
    return from_gpt2_state_dict(hf_model.state_dict(), config_from_gpt2(hf_model.config, dtype))
