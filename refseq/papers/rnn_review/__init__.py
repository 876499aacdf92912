"""A Critical Review of Recurrent Neural Networks for Sequence Learning.

Z. C. Lipton, J. Berkowitz, C. Elkan. *A Critical Review of Recurrent Neural Networks for
Sequence Learning*. arXiv 1506.00019 (2015).

Official code: none (a survey). Closest implementations of the reviewed models:
``torch.nn.RNN`` / ``torch.nn.LSTM`` (also ``bidirectional=True``) and TensorFlow's
``tf.compat.v1.nn.rnn_cell.LSTMCell(use_peepholes=True)`` for peepholes.

The review's textbook layers (Elman, LSTM with its switches, bidirectional, stacked, BPTT and
truncated BPTT) are shared and live in :mod:`refseq.rnn`; this package holds what only the
review uses: the Jordan network (Sec. 3), the gradient-flow diagnostics behind the vanishing-
gradient argument (Sec. 3.2 and 4.1), an RNN language model with a step API for the decoders
(Secs. 3-4), and the demo. Narrative, tests and the demo output: ``docs/papers/rnn-review.md``.

Glossary (review notation; letters B batch, T time, I input features, H hidden units, K output
classes, V vocabulary, L layers):

=============================  ========================================  =======================
review                         code                                      shape
=============================  ========================================  =======================
x(t)                           ``x``                                     (B, T, I)
h(t) (hidden state)            ``h``                                     (B, T, H)
W^{hx}, W^{hh}, b_h            ``W_hx``, ``W_hh``, ``b_h``               (H, I), (H, H), (H,)
σ_h (hidden non-linearity)     ``activation`` (tanh, sigmoid, relu)      -
W^{yh}, b_y; o(t), ŷ(t)        ``W_yh``, ``b_y``; ``logits``             (K, H), (K,); (B, T, K)
c(t), α (Jordan context)       ``c``, ``alpha``; ``W_hc``                (B, K); (H, K)
g, i, f, o (LSTM node, gates)  ``W_gx``.. ``W_ox``, ``W_gh``.. ``W_oh``  (H, I), (H, H)
s(t) (internal state)          ``s``; LSTM state ``(h, s)``              (B, H)
p_i, p_f, p_o (peepholes)      ``p_i``, ``p_f``, ``p_o``                 (H,)
z(t) (backward layer)          ``h_bwd``; ``W_yz``                       (B, T, H); (K, H)
L_b (sequence length)          ``lengths``                               (B,)
||∂h(t)/∂h(0)||_2              :func:`elman_jacobian_chain`              (T,)
||∂s(t)/∂s(0)||_2              :func:`lstm_state_jacobian`               (T,)
E (embedding), w(t)            ``RNNLanguageModel.params["E"]``, tokens  (V, I), (B, T)
=============================  ========================================  =======================

Deviations (the review publishes no code; the primary sources it cites decide the details):

* Layers return their caches and take explicit backward calls (the :mod:`refseq.nn` contract);
  ``bidirectional`` returns ``(out, cache)`` and zeroes padded outputs.
* ``jordan_forward`` returns the logits ``o`` (``softmax(o)`` is ŷ); Jordan networks take no
  ``lengths``.
* Padded steps keep the state in the Elman and LSTM layers.
* ``truncated_bptt`` ends with one more update over the last ``T mod k1`` steps, so every loss
  term is backpropagated exactly once.
* ``scalar_rnn_gradient`` returns the running products ``(T,)``, not only the final one.
* ``RNNLanguageModel.step(state, tokens)`` takes the decoders' ``StepLM`` argument order (a state
  in the token slot raises ``ValueError``) and returns normalised log-probabilities.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.rnn_review.analysis import (
    MAX_DERIVATIVE,
    elman_jacobian_chain,
    jacobian_bound,
    lstm_state_jacobian,
    lstm_step_jacobians,
    scalar_rnn_gradient,
)
from refseq.papers.rnn_review.jordan import (
    FEEDBACKS,
    JordanCache,
    jordan_backward,
    jordan_forward,
)
from refseq.papers.rnn_review.lm import RNNLanguageModel, RNNLMState

__all__ = [
    "PAPER",
    "MAX_DERIVATIVE", "elman_jacobian_chain", "jacobian_bound", "scalar_rnn_gradient",
    "lstm_step_jacobians", "lstm_state_jacobian",
    "FEEDBACKS", "JordanCache", "jordan_forward", "jordan_backward",
    "RNNLanguageModel", "RNNLMState",
]

PAPER = Paper(
    number=4,
    title='A Critical Review of Recurrent Neural Networks for Sequence Learning',
    arxiv='1506.00019',
    code='none (a survey)',
    hot_paths='recurrence',
    demo='rnn-review',
    demo_summary="vanishing gradients of Elman networks vs the LSTM's constant error carousel",
)
