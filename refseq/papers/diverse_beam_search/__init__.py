"""Diverse Beam Search.

A. K. Vijayakumar, M. Cogswell, R. R. Selvaraju, Q. Sun, S. Lee, D. Crandall, D. Batra.
*Diverse Beam Search: Decoding Diverse Solutions from Neural Sequence Models*. arXiv 1610.02424
(2016; AAAI 2018 as "Diverse Beam Search for Improved Description of Complex Scenes").

Official code: ashwinkalyan/dbs (Lua/Torch, ``dbs/beam_utils.lua``). Independent: Hugging Face
``transformers`` 4.x group beam search (``num_beam_groups``, ``diversity_penalty``; removed from
the core in v5) and fairseq ``DiverseBeamSearch`` (``fairseq/search.py``).

The algorithm is decoding-generic, so it lives in :mod:`refseq.decoding.diverse_beam` (the search)
and :mod:`refseq.decoding.diversity` (the penalties); this package holds the paper's metadata and
its demo. Narrative, equations, tests and demo output: ``docs/papers/diverse-beam-search.md``.

Glossary (letters: n prompts, B beams, G groups, B' = B / G beams per group, V vocabulary, t the
step, M the number of earlier-group sequences):

======================================  ============================================  =========
paper                                   code                                          shape
======================================  ============================================  =========
B, G, B'                                ``num_beams``, ``num_groups``, ``B // G``     -
lambda_g                                ``diversity_strength`` (scalar or per group)  (G,)
theta(y_t) = log p(y_t | y_<t, x)       ``DBSHypothesis.token_logprobs``              (L,)
Theta(y_[t]) (raw sum)                  ``DBSHypothesis.sum_logprob``                 -
Theta + lambda_g Delta (augmented sum)  ``DBSHypothesis.aug_score``                   -
-Delta(y_t; Y^1..Y^{g-1}) (penalty P)   ``DBSHypothesis.token_penalties``             (L,)
Y^g_[t] (group g's beams)               ``DBSResult.groups[g]`` (finished lists)      B' each
one step of group g (eq. 3)             :func:`group_step`                            (n_cand,)
Hamming diversity                       :func:`hamming_penalty`                       (V,)
cumulative diversity                    :func:`cumulative_penalty`                    (B', V)
n-gram diversity                        :func:`ngram_penalty`                         (B', V)
neural-embedding diversity              :func:`embedding_penalty`,                    (V,),
                                        :func:`embedding_ngram_penalty`               (B', V)
Algorithm 1                             :func:`diverse_beam_search`                   n results
======================================  ============================================  =========

Deviations and choices:

* The penalty form: the API takes ``lambda >= 0`` and always subtracts ``lambda * P``
  (the paper adds ``lambda Delta``; fairseq stores ``-lambda``).
* Cumulative diversity is read as a back-off weight ``exp(-D / Gamma)`` on the Hamming match,
  per pair of sequences (``scope="pair"``, default) or with mismatches summed over the group's
  beams (``scope="group"``, the formula read literally).
* Every option where the peers disagree is a switch (``schedule``, ``penalty_source``,
  ``accumulate_penalty``, ``final_rank``) with presets ``convention="hf" | "fairseq" | "lua"``.
* ``"lua"``: dead slots score ``-inf`` (the Lua code: -1000); UNK handling is ``suppress_ids``
  (``-inf``; the Lua code subtracts 1000). ``"fairseq"``: each group keeps its own rows; fairseq's
  ``SequenceGenerator`` picks the next B rows as the first B non-EOS candidates of the interleaved
  list, which can move a row to another group after an EOS (identical when no group has an EOS
  candidate of rank < B').
"""

from __future__ import annotations

from refseq.decoding.diverse_beam import (
    CONVENTIONS,
    DBSHypothesis,
    DBSResult,
    diverse_beam_search,
    group_step,
)
from refseq.decoding.diversity import (
    DIVERSITY,
    cumulative_penalty,
    embedding_ngram_penalty,
    embedding_penalty,
    hamming_penalty,
    ngram_penalty,
)
from refseq.papers import Paper

__all__ = [
    "PAPER", "CONVENTIONS", "DBSHypothesis", "DBSResult", "diverse_beam_search", "group_step",
    "DIVERSITY", "hamming_penalty", "cumulative_penalty", "ngram_penalty", "embedding_penalty",
    "embedding_ngram_penalty",
]

PAPER = Paper(
    number=13,
    title="Diverse Beam Search",
    arxiv="1610.02424",
    code="ashwinkalyan/dbs (Lua/Torch)",
    hot_paths="-",
    demo="diverse-beam-search",
    demo_summary="distinct-2 of DBS vs beam search n-best lists on random bigram models",
)
