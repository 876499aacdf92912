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
``TabularLM`` and attribute-conditional beam search (ACBS). Part B: hidden-state optimisation
(arXiv 2112.08653) on the tiny transformer, both cache targets. Not implemented yet: Part A
(recurrence for a transformer decoder, arXiv 2008.07027), ``hso_fewshot_scores`` and the
learned prefix classifier. Narrative, properties and the demo:
``docs/papers/making-the-most.md``.

Glossary (letters: V vocabulary, B beams, R rows, t prefix length):

===========================================  ======================================  ===========
paper                                        code                                    shape
===========================================  ======================================  ===========
x (prompt), y (output, EOS excluded in |y|)  ``prompt``, ``tokens``                  (P,), (n,)
p_pop, p_noise, eps                          ``pop``, ``noise``, ``eps`` (dicts)     -
q = (1 - eps) p_pop + eps p_noise            :func:`mixture`                         -
mode of q                                    :func:`mixture_mode`                    -
eps* = max p_pop / (max p_pop + max p_noise) :func:`degeneracy_threshold`            -
a model of q                                 :class:`ExplicitLM` (a ``StepLM``)       -
argmax_y p(y | x)                            ``refseq.decoding.exact.exact_mode``    -
argmax_y p(y | x) [|y| = L]                  ``exact_mode(..., length=L)``           -
P(|y| = L | x, y_{1:t})                      :func:`length_attr_logprob`             scalar
P_phi(a | x, y_{1:t}) for R prefixes        ``attr_logprob_fn``                     (R, t)->(R,)
(the exact length attribute as one)          :func:`length_attribute`                (R, t)->(R,)
score(y_{1:t}) = log p(y_{1:t}|x) + log P_phi Hypothesis ``score``; ``sum_logprob`` is   -
                                             the model term
k (pre-filter), B                            ``k_pre``, ``num_beams``                -
C (HSO cache), target "kv"                   ``cache`` (:func:`hso_evaluate`)        (L,2,H,S,Dh)
C, target "hidden" (layer inputs h^(l-1))    same                                    (L, S, D)
s, c (segment, cache length)                 ``segment``, ``cache_len``              -
G = dNLL_i / dC                              :func:`segment_nll_and_grad`            like C
(m_q, v_q, t_q) per slot                     ``m``, ``v`` (like C), ``t`` (S,)       -
===========================================  ======================================  ===========

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
* Ties: candidates by (score desc, flat index ``k V + v`` asc); :func:`mixture_mode` ties to the
  lexicographically smallest sequence.
"""

from __future__ import annotations

from refseq.decoding.exact import exact_length_conditional_modes, exact_mode
from refseq.papers import Paper
from refseq.papers.making_the_most.conditional import (
    conditional_beam_search,
    length_attr_logprob,
    length_attribute,
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

__all__ = [
    "PAPER",
    "ExplicitLM", "mixture", "mixture_mode", "degeneracy_threshold",
    "exact_mode", "exact_length_conditional_modes",
    "length_attr_logprob", "length_attribute", "conditional_beam_search",
    "TARGETS", "HSOResult", "hso_evaluate", "segment_nll_and_grad",
]

PAPER = Paper(
    number=21,
    title="Making the Most of your Model",
    arxiv="2408.16241",
    code="none found (davisyoshida/* hold JAX utilities only)",
    hot_paths="-",
    demo="making-the-most",
    demo_summary="contamination makes the exact mode empty; length-conditional modes; ACBS",
)
