"""Making the Most of your Model: Methods for Finetuning and Applying Pretrained Transformers.

D. Yoshida. PhD thesis, TTIC, arXiv 2408.16241 (2024). The part implemented here is the thesis'
conditional-mode chapter, first published as Yoshida, Goyal and Gimpel, "MAP's not dead yet:
Uncovering true language model modes by conditioning away degeneracy", arXiv 2311.08817
(ACL 2024). Exact search follows Stahlberg and Byrne (arXiv 1908.10090); prefix-classifier
guidance follows FUDGE (Yang and Klein, arXiv 2104.05218).

Official code: none found for these methods (the author's public repositories hold JAX/Haiku
utilities only).

Implemented (Part C): the contamination argument on explicit distributions, exact and
length-conditional modes (through :mod:`refseq.decoding.exact`), the exact length attribute of a
``TabularLM``, attribute-conditional beam search (ACBS) and a learned FUDGE-style
:class:`PrefixClassifier` (**reconstructed**). Part B: hidden-state optimisation
(arXiv 2112.08653) on the tiny transformer, both cache targets, its few-shot scorer
:func:`hso_fewshot_scores` (**reconstructed** formulation) and the distribution-shift
reproduction in the demo. Part A: recurrence for a transformer decoder (Yoshida, Ettinger and
Gimpel, arXiv 2008.07027) as a **reconstructed design** (:class:`RecurrentLM`,
:func:`train_recurrent`, the isolated-window and sliding-window baselines). Narrative,
properties and the demo: ``docs/papers/making-the-most.md``.

Glossary (letters: V vocabulary, B beams, R rows, t prefix length):

==============================================  ====================================  ============
paper                                           code                                  shape
==============================================  ====================================  ============
x (prompt), y (output, EOS excluded in len(y))  ``prompt``, ``tokens``                (P,), (n,)
p_pop, p_noise, eps                             ``pop``, ``noise``, ``eps`` (dicts)   -
q = (1 - eps) p_pop + eps p_noise               :func:`mixture`                       -
mode of q                                       :func:`mixture_mode`                  -
eps* = max p_pop / (max p_pop + max p_noise)    :func:`degeneracy_threshold`          -
a model of q                                    :class:`ExplicitLM` (a ``StepLM``)    -
argmax_y p(y | x)                               ``refseq.decoding.exact.exact_mode``  -
argmax_y p(y | x) [len(y) = L]                  ``exact_mode(..., length=L)``         -
P(len(y) = L | x, y_{1:t})                      :func:`length_attr_logprob`           scalar
P_phi(a | x, y_{1:t}) for R prefixes            ``attr_logprob_fn``                   (R, t)->(R,)
(the exact length attribute as one)             :func:`length_attribute`              (R, t)->(R,)
(a learned one) sigmoid(w . LN_f(h^(L)) + b)    :class:`PrefixClassifier`             (R, t)->(R,)
(fitting the classifier)                        :func:`fit_prefix_classifier`         -
score(y_{1:t}) = log p(y_{1:t}|x) + log P_phi   ``Hypothesis.score``                  -
k (pre-filter), B                               ``k_pre``, ``num_beams``              -
C (HSO cache), target "kv"                      ``cache`` (:func:`hso_evaluate`)      (L,2,H,S,Dh)
C, target "hidden" (layer inputs h^(l-1))       same                                  (L, S, D)
s, c (segment, cache length)                    ``segment``, ``cache_len``            -
G = dNLL_i / dC                                 :func:`segment_nll_and_grad`          like C
(m_q, v_q, t_q) per slot                        ``m``, ``v`` (like C), ``t`` (S,)     -
demonstrations' cache C_0                       :func:`demo_cache`                    like C
NLL(C), dNLL/dC                                 :func:`demo_nll_and_grad`             like C
label scores log p(y | C, query)                :func:`hso_fewshot_scores`            (n_labels,)
w, M (window, memory rows)                      ``window``, ``n_mem``                 -
l_w, l_r (write / read layer)                   ``write_layer``, ``read_layer``       -
S_k (memory of window k), S_0                   ``S``; ``mem["S0"]``                  (B, M, D)
[S_k ; H^(l_w)] with mask_mem                   :func:`memory_mask`                   (M+T, M+T)
S_{k+1} = carry S_k + pool(R, S_k)              :func:`pool_forward`                  (B, M, D)
logits of one window, S_{k+1}                   ``RecurrentLM.window_forward``        (B, T, V)
streaming state (S_k + window KV cache)         :class:`StreamState`                  <= M + w
==============================================  ====================================  ============

Deviations and choices (the sources leave these open):

* ACBS uses beam search's ``"neutral"`` conventions (admission of EOS candidates at rank < B,
  running beams = best B non-EOS candidates, unfinished beams join the list at
  ``max_new_tokens``); the attribute term is re-evaluated on the whole prefix and never
  accumulated. The length penalty divides the model term only: ``S / L**alpha + log P_phi``.
* The stopping rule (list full and the best running model log-prob cannot beat the worst
  finished score) is exact for ``length_penalty = 0`` because attribute terms are ``<= 0``.
* HSO: segment i's inputs are ``x_a .. x_{a+s-1}``, its targets ``x_{a+1} .. x_{a+s}`` (the
  last is the first token of the next segment, scored before any update uses it);
  ``nll_per_token[0]`` is NaN (no context). Positions are absolute, so ``n <= max_positions``.
  Adam steps count per slot; new slots enter with zero moments and count.
* HSO few-shot **[reconstructed]**: the demonstrations' cache C is optimised on their own LM loss
  with every read of a demonstration key/value going through C (input ``d_j`` reads slots
  ``0..j`` only), one Adam step count for all slots; labels are single tokens, scored as
  ``log p(label | C, query)`` over the whole vocabulary.
* Prefix classifier **[reconstructed]**: logistic regression on ``LN_f(h^(L))`` at the prefix's
  last position of the frozen LM; every prefix of a sequence gets the sequence's label (FUDGE);
  ridge ``l2`` on ``w`` only; fitted by damped Newton.
* Recurrence **[reconstructed]**: memory rows at positions ``0..M-1``, window at ``M..M+w-1``;
  ``l_w = 0`` adds ``P[0..M-1]`` to the memory rows; ``0 <= l_w < L``, ``l_w <= l_r <= L``. The
  pool reads ``R`` through a parameter-free LayerNorm (the residual stream's scale is arbitrary;
  without it the attention pool barely trains); the attention pool's MLP is residual,
  ``O + MLP(O)``. ``bptt_windows = K`` trains windows in chunks of K (``S_{k+1}`` detached when
  ``(k+1) % K == 0``), so ``K = 1`` trains no memory parameter but ``S_0``. The sliding-window
  baseline gives token j the ``w - 1`` tokens before it at positions ``0..w-1``.
* Ties: candidates by (score desc, flat index ``k V + v`` asc); :func:`mixture_mode` ties to the
  lexicographically smallest sequence.
"""

from __future__ import annotations

from refseq.decoding.exact import exact_length_conditional_modes, exact_mode
from refseq.papers import Paper
from refseq.papers.making_the_most.classifier import (
    PrefixClassifier,
    fit_prefix_classifier,
    prefix_features,
)
from refseq.papers.making_the_most.conditional import (
    conditional_beam_search,
    length_attr_logprob,
    length_attribute,
)
from refseq.papers.making_the_most.fewshot import (
    demo_cache,
    demo_nll_and_grad,
    hso_fewshot_scores,
)
from refseq.papers.making_the_most.hso import (
    TARGETS,
    HSOResult,
    hso_evaluate,
    segment_nll_and_grad,
)
from refseq.papers.making_the_most.modes import (
    ExplicitLM,
    degeneracy_threshold,
    mixture,
    mixture_mode,
)
from refseq.papers.making_the_most.recurrent import (
    POOLS,
    RecurrentLM,
    StreamState,
    memory_mask,
    pool_backward,
    pool_forward,
)
from refseq.papers.making_the_most.recurrent_train import (
    isolated_windows,
    recurrent_loss_and_grad,
    sliding_window,
    train_recurrent,
    trainable_parameters,
)

__all__ = [
    "PAPER",
    "ExplicitLM", "mixture", "mixture_mode", "degeneracy_threshold",
    "exact_mode", "exact_length_conditional_modes",
    "length_attr_logprob", "length_attribute", "conditional_beam_search",
    "PrefixClassifier", "fit_prefix_classifier", "prefix_features",
    "TARGETS", "HSOResult", "hso_evaluate", "segment_nll_and_grad",
    "demo_cache", "demo_nll_and_grad", "hso_fewshot_scores",
    "POOLS", "RecurrentLM", "StreamState", "memory_mask", "pool_forward", "pool_backward",
    "recurrent_loss_and_grad", "train_recurrent", "trainable_parameters", "isolated_windows",
    "sliding_window",
]

PAPER = Paper(
    number=21,
    title="Making the Most of your Model",
    arxiv="2408.16241",
    code="none found (davisyoshida/* hold JAX utilities only)",
    hot_paths="-",
    demo="making-the-most",
    demo_summary="contamination makes the exact mode empty; length-conditional modes; ACBS; "
                 "recurrence on a copy task; HSO under distribution shift",
)
