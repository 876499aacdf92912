"""Attention mechanisms (NumPy reference).

* :mod:`refseq.attention.aaren` — Aaren, attention as an RNN (arXiv 2405.13956): the multi-head
  layer; :mod:`refseq.attention.aaren_rnn` — its one-head formulations: the many-to-one cell, the
  many-to-many prefix scan and the O(T^2) oracle.
* :mod:`refseq.attention.softmax` — causal softmax attention and its KV-cache decode, the
  baseline whose state grows with t.
"""

from refseq.attention.aaren import (
    AarenParams,
    SoftmaxState,
    aaren_layer,
    aaren_layer_step,
    init_aaren_params,
    softmax_combine,
)
from refseq.attention.aaren_rnn import (
    aaren_cell_step,
    aaren_naive,
    aaren_recurrent,
    aaren_scan,
    aaren_scores,
    aaren_unstable_rolling,
    attend_one_query,
    lengths_to_mask,
    softmax_state_init,
)
from refseq.attention.softmax import (
    KVCache,
    causal_softmax_attention,
    kv_attention_step,
    kv_cache_append,
    kv_cache_attend,
    kv_cache_init,
    kv_single_query_step,
    masked_softmax,
    softmax_unstable,
)

__all__ = [
    "AarenParams", "KVCache", "SoftmaxState", "aaren_cell_step", "aaren_layer",
    "aaren_layer_step", "aaren_naive", "aaren_recurrent", "aaren_scan", "aaren_scores",
    "aaren_unstable_rolling", "attend_one_query", "causal_softmax_attention",
    "init_aaren_params", "kv_attention_step", "kv_cache_append", "kv_cache_attend",
    "kv_cache_init", "kv_single_query_step", "lengths_to_mask", "masked_softmax",
    "softmax_combine", "softmax_state_init", "softmax_unstable",
]
