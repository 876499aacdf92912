"""Adaptive Draft-Verification for Efficient Large Language Model Decoding (ADED).

X. Liu, B. Lei, R. Zhang, D. Xu. arXiv 2407.12021 (2024; AAAI 2025).

Official code: liuxukun2000/ADED (the stored snapshot holds only a README); the full release (a
Rust extension ``DraftRetriever``, ``src/lib.rs`` and ``src/mcts_sub.rs``, and Python in
``aded/``, derived from FasterDecoding/REST and Medusa) is preserved in the fork doquangg/Adaptix,
whose early commits are the authors'. No independent implementation is known.

ADED is a training-free, retrieval-style speculative decoder. Its draft source is a sparse
tri-gram table estimated from a corpus and pruned to 12 successors per context (the "LLM
representative"); before every draft the tri-grams of the last 16 committed tokens are
reinforced in place (the "self-adaptation"); a small Monte Carlo tree search over token pairs,
with a PUCT score whose prior is the table's weight, turns the table into candidate
continuations (the "draft maker"), which are merged into a token tree and verified in one target
call. Greedy verification makes the output equal greedy decoding. Only the abstract and
introduction of the paper were available; the formulas follow the released code and are
documented in ``docs/papers/aded.md``.

Modules: :mod:`~refseq.papers.aded.trigram` (table),
:mod:`~refseq.papers.aded.adaptation` (update), :mod:`~refseq.papers.aded.mcts` (search),
:mod:`~refseq.papers.aded.candidates` (pruning, trie, ablation drafters),
:mod:`~refseq.papers.aded.drafter` (the engine's ``Drafter``),
:mod:`~refseq.papers.aded.generate` (generation), :mod:`~refseq.papers.aded.rest_nucleus` (the
released lossy sampling rule), :mod:`~refseq.papers.aded.demo`.

Glossary (the paper's own symbols were not available; these are the released code's names):

=========================================  ==========================================  ==========
paper / released code                      refseq                                      shape
=========================================  ==========================================  ==========
tri-gram matrix ``array[(a, b)][c]``       ``TrigramMatrix.table[(a, b)][c]``          sparse
``w(a, b, c) = N(a,b,c) / sum N(a,b,.)``   :meth:`TrigramMatrix.build` (``top_n=12``)  -
adaptive update (+0.04, cap 3.0, 16)       :func:`adapt`                               in place
``Node.word``, ``Node.p``                  ``MCTSNode.pair``, ``MCTSNode.prior``       (2,), -
``Node.visits``, ``Node.score``            ``MCTSNode.visits``, ``.value_sum``         -
``putc_score`` (PUCT, c1 = 32, c2 = 8)     :func:`puct_score`                          -
``MCTS::run``, ``extract_sentences``       :func:`mcts_search`, :func:`mcts_draft`     lists
``cut_to_choices``                         :func:`cut_to_choices`                      lists
``generate_draft_buffers`` (trie)          :func:`paths_to_tree`                       N <= 65
greedy search / full traversal ablations   :func:`draft_greedy_chain`,                 lists
                                           :func:`draft_full_traversal`
``datastore.search`` per step              :class:`ADEDDrafter`                        -
generation loop                            :func:`aded_generate`                       (n_new,)
batched generation                         :func:`aded_generate_batch`                 B lists
REST nucleus posterior mask (lossy)        :func:`verify_rest_nucleus`                 -
MAT (mean accepted tokens)                 ``ADEDStats.mat``                           -
=========================================  ==========================================  ==========

Deviations and choices (details in the docs page):

* Deterministic orders instead of Rust ``HashMap``/``HashSet`` order: successors by descending
  weight then ascending id; the expansion steps into the *first* (highest-prior) child instead
  of the last in hash order; the greedy extension takes the first arg-max; duplicates keep their
  first occurrence. Rollouts use a seeded ``numpy`` generator (Rust: ``thread_rng``).
* The return adds the weight of the step taken, ``w(z_t, b_{t+1})`` (``return_rule="path"``);
  the released code reads ``w(z_t, a_{t+1}) = w(z_t, b_t)`` (``state[i + 1].0``), which is 0
  unless a context repeats its last token; ``return_rule="released"`` reproduces it.
* Weights are float64 (Rust f32). ``c1 = 32.0`` (:data:`C1_FIRST_COMMIT` = 1.814 also exposed).
* ``cut_to_choices`` keeps the released rule (most distinct tokens dropped first) and offers
  ``rule="keep_longest"``; ``choices = 64`` as the released Python passes.
* No candidates: a root-only tree unless ``fallback_token`` (the release drafts token 100).
* Exact sampling verifies in ``point`` mode; the released nucleus rule is available as
  ``acceptance="rest_nucleus"`` and is lossy (single rows only).
* Batches (:func:`aded_generate_batch`): one shared table gets the active rows' updates in row
  order before any row drafts (deterministic), or each row has its own table (then row b equals
  ``aded_generate`` on row b); drafting per row, one target forward and one batched verification
  per step.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.aded.adaptation import adapt
from refseq.papers.aded.batch import aded_generate_batch
from refseq.papers.aded.candidates import (
    cut_to_choices,
    draft_full_traversal,
    draft_greedy_chain,
    paths_to_tree,
)
from refseq.papers.aded.drafter import ADEDDrafter
from refseq.papers.aded.generate import ADEDStats, aded_generate
from refseq.papers.aded.mcts import (
    C1,
    C1_FIRST_COMMIT,
    C2,
    MCTSNode,
    MCTSResult,
    mcts_draft,
    mcts_search,
    puct_score,
)
from refseq.papers.aded.rest_nucleus import rest_nucleus_emission, verify_rest_nucleus
from refseq.papers.aded.trigram import TrigramMatrix, build_from_sequences

__all__ = [
    "PAPER", "ADEDDrafter", "ADEDStats", "C1", "C1_FIRST_COMMIT", "C2", "MCTSNode", "MCTSResult",
    "TrigramMatrix", "adapt", "aded_generate", "aded_generate_batch", "build_from_sequences",
    "cut_to_choices", "draft_full_traversal", "draft_greedy_chain", "mcts_draft", "mcts_search",
    "paths_to_tree", "puct_score", "rest_nucleus_emission", "verify_rest_nucleus",
]

PAPER = Paper(
    number=8,
    title="Adaptive Draft-Verification (ADED)",
    arxiv="2407.12021",
    code="liuxukun2000/ADED (code preserved in doquangg/Adaptix; Rust + Python)",
    hot_paths="tree verification",
    demo="aded",
    demo_summary="tokens per target call of ADED's tri-gram + MCTS drafts, with and without "
                 "adaptation, on an order-2 toy target",
)
