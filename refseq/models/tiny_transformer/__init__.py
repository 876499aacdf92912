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
:mod:`refseq.models.tiny_transformer.kv_cache`. ``allow_mask (T, S + T)`` says which cached and new
slots each new token may attend to; for a draft tree it is all-True over the cache followed by the
ancestor mask and ``positions = S + depth``.

The code is split by concept; every name stays importable from this module:

* :mod:`refseq.models.tiny_transformer.params` — :class:`TinyConfig`, :class:`TinyParams`, the
  named parameter tree, :func:`init_params`, :func:`check_params`, :func:`save` / :func:`load`.
* :mod:`refseq.models.tiny_transformer.forward` — :func:`forward`, :func:`forward_layers`,
  :func:`lm_head`, :func:`final_norm`, :func:`token_embeddings` and their caches.
* :mod:`refseq.models.tiny_transformer.backward` — :func:`backward`,
  :func:`forward_layers_backward`, :func:`lm_head_backward` (:class:`Gradients`).
* :mod:`refseq.models.tiny_transformer.kv` — :func:`kv_from_hidden` and its VJP.
"""

from refseq.models.tiny_transformer.backward import (
    Gradients,
    backward,
    forward_layers_backward,
    lm_head_backward,
)
from refseq.models.tiny_transformer.batched_lm import BatchedTransformerLM
from refseq.models.tiny_transformer.forward import (
    LayersCache,
    ModelCache,
    final_norm,
    forward,
    forward_layers,
    lm_head,
    token_embeddings,
)
from refseq.models.tiny_transformer.hf import (
    config_from_gpt2,
    from_gpt2,
    from_gpt2_state_dict,
    gpt2_config_kwargs,
    gpt2_names,
    to_gpt2_state_dict,
)
from refseq.models.tiny_transformer.kv import kv_from_hidden, kv_from_hidden_backward
from refseq.models.tiny_transformer.lm import TransformerLM
from refseq.models.tiny_transformer.params import (
    FORMAT,
    BlockParams,
    TinyConfig,
    TinyParams,
    check_params,
    init_params,
    load,
    map_parameters,
    named_parameters,
    param_shapes,
    params_from_named,
    save,
)

# The layer functions this module imported before it was split stay importable from it.
from refseq.nn.attention import (  # noqa: F401
    MHAParams,
    causal_allow_mask,
    mha_backward,
    mha_forward,
)
from refseq.nn.embedding import embedding_backward, embedding_forward, int_array  # noqa: F401
from refseq.nn.linear import linear_backward, linear_forward  # noqa: F401
from refseq.nn.mlp import MLPParams, mlp_backward, mlp_forward  # noqa: F401
from refseq.nn.norms import layer_norm_backward, layer_norm_forward  # noqa: F401
from refseq.nn.positions import (  # noqa: F401
    position_embedding_backward,
    position_embedding_forward,
    rope_backward,
    rope_forward,
)

__all__ = [
    "BatchedTransformerLM", "BlockParams", "FORMAT", "Gradients", "LayersCache", "ModelCache",
    "TinyConfig", "TinyParams", "TransformerLM", "backward", "check_params",
    "config_from_gpt2", "final_norm", "forward", "forward_layers", "forward_layers_backward",
    "from_gpt2", "from_gpt2_state_dict", "gpt2_config_kwargs", "gpt2_names", "init_params",
    "kv_from_hidden", "kv_from_hidden_backward", "lm_head", "lm_head_backward", "load",
    "map_parameters", "named_parameters", "param_shapes", "params_from_named", "save",
    "to_gpt2_state_dict", "token_embeddings",
]
