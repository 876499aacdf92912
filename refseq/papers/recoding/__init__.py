"""Recoding latent sentence representations.

D. Ulmer. *Recoding latent sentence representations -- Dynamic gradient-based activation
modification in RNNs*. MSc thesis, University of Amsterdam, 2019; arXiv 2101.00674 (2021).

Official code: https://github.com/Kaleidophon/tenacious-toucan (PyTorch).

At every step of a step-wise LSTM language model an error signal δ_t (surprisal of the next
token, or the predictive entropy under MC dropout or an anchored decoder ensemble) is
differentiated with respect to every layer's current ``h`` and ``c`` through the same time step,
and the states are moved against the gradient, ``h̃ = h - α g_h``, ``c̃ = c - α g_c``; the step
size α is fixed, learned or predicted per example by an MLP. Training uses the official
first-order rule (the recoding gradients are constants). Each LM layer step is the shared
recurrence engine's one-head ``lstm`` cell (:mod:`refseq.recurrence`). Narrative, tests and the
demo: ``docs/papers/recoding.md``.

Glossary (letters B batch, T time, V vocabulary, E embedding width, H hidden width, L layers,
K ensemble members or MC samples; ``{l}`` is the layer index in parameter names):

===========================  =============================================  ============
thesis / official code       code                                           shape
===========================  =============================================  ============
w_t, gold w_{t+1}            ``tokens``, ``target``                         (B,)
h^l_t, c^l_t                 ``state[l] = (h, c)``                          (B, H) each
input maps of layer l        ``{l}.W``, ``{l}.b_ih``                        (4, 1, H, I)
hidden maps of layer l       ``{l}.R``, ``{l}.b_hh``                        (4, 1, H, H)
W_dec, b_dec                 ``W_dec``, ``b_dec``                           (V, H), (V,)
o_t (logits)                 ``logits``                                     (B, V)
δ_t (error signal)           ``delta``                                      (B,)
g_h^l, g_c^l                 :func:`state_gradients`                        (B, H) each
α (step size)                :class:`FixedStep`, :class:`LearnedStep`, ...  (B, 1)
θ (α = softplus(θ))          ``LearnedStep.params["theta"]``                ()
h~, c~ (recoded states)      :func:`recode`                                 (B, H) each
q (MC dropout rate)          ``p_mc``                                       -
W_k, b_k (ensemble members)  ``decoders[k]``                                (V, H), (V,)
λ = data_noise / prior_var   ``data_noise``, ``prior_var``, ``anchors``     -
===========================  =============================================  ============

Deviations (the official code departs from the thesis' stated intent in places; the intent is
followed, with a switch that reproduces the code):

* "Surprisal" in the code is ``p^{-p} - 1``, non-monotone with its maximum at ``p = 1/e``; the
  default here is ``-log p`` (``signal="surprisal"``), the code's is ``"surprisal_code"``.
* Anchored ensemble: the code averages softmaxes over the batch axis, never stores the anchors,
  uses an unsquared norm and decodes the mean of member logits. Here: mean over members, stored
  anchors, squared norms (Pearce et al.), LM output ``log mean_k p^(k)``; ``average="logits"``
  reproduces the code's output.
* NaN entries of the gradient become 0 (the code uses 1 despite its docstring);
  ``nan_policy="one"`` reproduces.
* The MC-dropout "prior" constant has no gradient and is not added to δ; the MC-dropout masks
  are separate from the model's own dropout (off at evaluation).
* Training without a target uses the arg-max token for surprisal, as the official loop does;
  evaluation passes the gold token.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.recoding.grad import state_gradients, top_hidden_from
from refseq.papers.recoding.lm import LayerCache, LSTMLanguageModel, StepCache, lm_backward
from refseq.papers.recoding.recoder import SIGNALS, RecodingLM, recode
from refseq.papers.recoding.signals import (
    anchor_loss,
    ensemble_entropy,
    ensemble_log_probs,
    ensemble_log_probs_backward,
    init_anchored_decoders,
    mc_dropout_entropy,
    mixture_entropy,
    surprisal,
    token_perplexity_code_variant,
)
from refseq.papers.recoding.step_size import FixedStep, LearnedStep, MLPStep, softplus
from refseq.papers.recoding.training import (
    batchify,
    perplexity,
    recoding_diagnostics,
    recoding_loss_and_grad,
    train_lm,
)

__all__ = [
    "PAPER",
    "LSTMLanguageModel", "LayerCache", "StepCache", "lm_backward",
    "surprisal", "token_perplexity_code_variant", "mixture_entropy", "mc_dropout_entropy",
    "ensemble_entropy", "ensemble_log_probs", "ensemble_log_probs_backward",
    "init_anchored_decoders", "anchor_loss",
    "state_gradients", "top_hidden_from",
    "softplus", "FixedStep", "LearnedStep", "MLPStep",
    "SIGNALS", "recode", "RecodingLM",
    "recoding_loss_and_grad", "train_lm", "batchify", "perplexity", "recoding_diagnostics",
]

PAPER = Paper(
    number=5,
    title='Recoding latent sentence representations',
    arxiv='2101.00674',
    code='https://github.com/Kaleidophon/tenacious-toucan',
    hot_paths='recurrence',
    demo='recoding',
    demo_summary='surprisal recoding lowers the loss to first order at tiny scale',
)
