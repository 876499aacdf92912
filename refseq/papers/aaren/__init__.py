"""Attention as an RNN (Aaren).

L. Feng, F. Tung, H. Hajimirsadeghi, M. O. Ahmed, Y. Bengio, G. Mori. *Attention as an RNN*.
arXiv 2405.13956 (2024).

Official code: none released. Closest implementations (independent): claCase/Attention-as-RNN
(TensorFlow/Keras) and andreofner/attention-as-rnn-pytorch (PyTorch).

Softmax attention of one *fixed* query over tokens 1..k is an RNN with a constant-size state
(Sec. 3.1); its outputs after every prefix are an inclusive scan with an associative operator on
(max, normaliser, numerator) triples (Sec. 3.2); Aaren stacks such modules, each with a learned
query (Sec. 3.3). Narrative, properties, tests and the demo: ``docs/papers/aaren.md``.

Glossary (one head; letters B batch, T time, H heads, Dk key width, Dv value width, D model
width, L layers):

===================================  ======================================  ================
paper                                code                                    shape
===================================  ======================================  ================
x (the layer input)                  ``x``                                   (B, T, D)
q (learned query)                    ``AarenParams.q``                       (H, Dk)
k_i, v_i                             ``k``, ``v``                            (B, T, H, Dk/Dv)
s_i = <q, k_i> (times ``scale``)     ``s`` (:func:`aaren_scores`)            (B, T, H)
m_k = max_{i<=k} s_i                 ``SoftmaxState.m``                      (B, H)
c_k = sum_{i<=k} exp(s_i - m_k)      ``SoftmaxState.u``                      (B, H)
a_k = sum_{i<=k} exp(s_i - m_k) v_i  ``SoftmaxState.w``                      (B, H, Dv)
o_k = a_k / c_k                      ``o``                                   (B, T, H, Dv)
(m_A, u_A, w_A) (+) (m_B, u_B, w_B)  ``softmax_combine``                     -
RNN cell (Sec. 3.1)                  :func:`aaren_cell_step`                 -
prefix scan (Sec. 3.2)               :func:`aaren_scan`                      -
Aaren module (Sec. 3.3)              :func:`aaren_layer`, ``W_o (H*Dv, D)``  (B, T, D)
stack of L modules                   :func:`aaren_stack`                     (B, T, D)
===================================  ======================================  ================

Deviations and choices (the paper leaves these open; there is no official code to follow):

* Score scale: ``scale=None`` means ``1/sqrt(Dk)`` (the Transformer convention);
  ``scale=1.0`` is the paper's literal ``s_i = <q, k_i>``. Equally expressive, since q is
  learned.
* Head merge: concatenation then ``W_o`` by default; ``head_merge="mean" | "sum"`` reproduce the
  independent implementations (which also put a SiLU on k and v; refseq does not).
* Block layout: pre-LayerNorm ``x = x + Aaren(LN(x)); x = x + FFN(LN(x))`` with the exact erf
  GELU and no final LayerNorm; each block has its own query.
* Masks: a masked token is the scan's identity element, never a large negative score; a prefix
  without a valid token outputs 0 with ``u = 0`` and ``m = -inf``.
* float16 input is rejected (``TypeError``), not upcast.
* ``aaren_scan`` has no VJP of its own: the gradient test composes
  :func:`refseq.scan.softmax_scan_backward` with the chain rule through the scores.

The compiled scan kernels are the scan hot path's: :func:`aaren_layer` runs
:func:`refseq.scan.softmax_scan`, so ``backend="jit" | "cuda"`` uses them.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.aaren.layer import (
    HEAD_MERGES,
    AarenParams,
    aaren_layer,
    aaren_layer_step,
    init_aaren_params,
)
from refseq.papers.aaren.rnn import (
    METHODS,
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
from refseq.papers.aaren.stack import (
    AarenBlockParams,
    aaren_block,
    aaren_block_step,
    aaren_stack,
    aaren_stack_step,
    init_aaren_block_params,
    init_aaren_stack_params,
)
from refseq.scan import SoftmaxState, softmax_combine, softmax_identity, softmax_leaf

__all__ = [
    "PAPER",
    # one-head formulations (Sec. 3.1-3.2)
    "METHODS", "SoftmaxState", "softmax_state_init", "softmax_combine", "softmax_identity",
    "softmax_leaf", "aaren_scores", "attend_one_query", "aaren_cell_step", "aaren_recurrent",
    "aaren_scan", "aaren_naive", "aaren_unstable_rolling", "lengths_to_mask",
    # the layer and the stack (Sec. 3.3)
    "HEAD_MERGES", "AarenParams", "init_aaren_params", "aaren_layer", "aaren_layer_step",
    "AarenBlockParams", "init_aaren_block_params", "init_aaren_stack_params", "aaren_block",
    "aaren_block_step", "aaren_stack", "aaren_stack_step",
]

PAPER = Paper(
    number=1,
    title='Attention as an RNN (Aaren)',
    arxiv='2405.13956',
    code='none released (independent: claCase/Attention-as-RNN)',
    hot_paths='scan',
    demo='aaren',
    demo_summary='constant per-token cost of Aaren vs a growing KV cache; scan == naive loop',
)
