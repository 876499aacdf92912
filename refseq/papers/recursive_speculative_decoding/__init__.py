"""Recursive Speculative Decoding.

W. Jeon, M. Gagrani, R. Goel, J. Park, M. Lee, C. Lott (Qualcomm AI Research). *Recursive
Speculative Decoding: Accelerating LLM Inference via Sampling Without Replacement*. arXiv
2402.14160 (2024; ICLR 2024 workshop).

Official code: none published. Building blocks and peers: Gumbel-top-k and Stochastic Beam
Search (Kool, van Hoof, Welling, arXiv 1903.06059; wouterkool/stochastic-beam-search,
``fairseq/gumbel.py``), Sequoia (Infini-AI-Lab/Sequoia: ``SpecTree.accept_step``,
``utils.sampling_without_replacement``), SpecInfer (arXiv 2305.09781) and SpecTr
(arXiv 2310.15141) as baselines.

Summary. Tree speculative decoding that draws the siblings of every draft-tree node *without
replacement*, so siblings are distinct tokens, and verifies them by recursive rejection sampling
(RRS): siblings are tested in sampling order; after each rejection the target law becomes the
residual ``norm(max(p_j - q_j, 0))`` and the draft law its without-replacement conditional
``q_{j+1}`` (the drawn token removed, renormalised). RSD-C builds a tree with a constant number of
children per level by Gumbel-top-k; RSD-S runs Stochastic Beam Search over the draft model and
keeps the W best perturbed sequences per level. Verification is the shared core's
``verify_tree_stochastic(mode="wor")``; this package holds the samplers, the tree builders, the
baselines, the drafter, the cost model and the demo. Narrative, equations, tests and demo output:
``docs/papers/recursive-speculative-decoding.md``.

Glossary (p the target, q the draft, as in the rest of refseq; V vocabulary, N tree nodes, W beam
width, L depth):

=============================  ===============================================  ===========
paper                          code                                             shape
=============================  ===============================================  ===========
Gumbel-top-k                   :func:`gumbel_topk`                              (..., k)
exponential race (Sequoia)     :func:`exponential_race_topk`                    (k,)
sequential w/o replacement     :func:`sample_without_replacement`               (k,)
q_j (w/o-replacement law)      :func:`without_replacement_conditionals`         (V,)
log(1 - exp(a))                :func:`log1mexp`                                 like a
truncated Gumbel G(s y)        :func:`shift_gumbel_max`                         (..., n)
phi(s) (sequence log-prob)     ``RSDTree.logp``                                 (N,)
G(s), log q + g (perturbed)    ``RSDTree.perturbed``                            (N,)
q_u (law of u's children)      ``RSDTree.draft_probs``                          (N, V)
RSD-C, branching (b_1..b_L)    :func:`constant_branching_tree`                  RSDTree
RSD-S, (W, L)                  :func:`stochastic_beam_tree`                     RSDTree
SpecInfer i.i.d. tree          :func:`iid_tree`                                 RSDTree
K sequences / chain            :func:`k_sequences_tree`, :func:`chain_tree`     RSDTree
RRS (verification)             core ``verify_tree_stochastic(mode="wor")``      -
generation                     :func:`rsd_generate`, ``RSDDrafter``             (n_new,)
batched generation             :func:`rsd_generate_batch`                       B x (n_new_b,)
block efficiency, MBSU         :func:`block_efficiency`, :func:`mbsu`           float
=============================  ===============================================  ===========

Deviations and choices:

* The paper's text was not available when this reference was written; the algorithms follow its
  abstract, its building blocks (Gumbel-top-k, Stochastic Beam Search, Sequoia's
  without-replacement RRS) and this project's notation: p is the target and q the draft (the
  paper, like Chen et al., may swap the letters). Hyper-parameter defaults are this project's.
* The draft model is a ``StepLM`` without a cache: each level re-reads its prefixes in one batched
  call. ``draft_calls`` counts those calls (one per level; K for a chain), which is what a cached
  implementation with tree attention over the draft tree would make; there is no draft KV cache to
  compact.
* Top-p and temperature are applied to the draft *before* sampling and the warped law goes to the
  verifier (``draft_top_p``, separate from the target's ``top_p``).
* Ties: Gumbel-top-k ties go to the lower token id; RSD-S ranks candidates by ``G``, then lower
  beam, then lower token id.
* ``rsd_generate_batch`` runs B sequences through the core's batched engine (one target forward
  and one batched verification per step); row b equals ``rsd_generate`` on row b with the same
  seed (tested with exact per-row targets).
* ``chain(draft, context, root, K, rng)`` of the method list is named :func:`chain_tree`.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.recursive_speculative_decoding.baselines import (
    chain_tree,
    iid_tree,
    k_sequences_tree,
)
from refseq.papers.recursive_speculative_decoding.budget import (
    block_efficiency,
    configs_for_budget,
    mbsu,
    target_budget,
)
from refseq.papers.recursive_speculative_decoding.generate import (  # noqa: F401 (classes)
    METHODS,
    RSDDrafter,
    RSDStats,
    rsd_generate,
    rsd_generate_batch,
)
from refseq.papers.recursive_speculative_decoding.gumbel import (
    exponential_race_topk,
    gumbel_topk,
    sample_without_replacement,
    without_replacement_conditionals,
)
from refseq.papers.recursive_speculative_decoding.rsd_trees import (  # noqa: F401 (class)
    RSDTree,
    constant_branching_tree,
    draft_laws,
    stochastic_beam_tree,
)
from refseq.papers.recursive_speculative_decoding.truncated_gumbel import (
    log1mexp,
    shift_gumbel_max,
)

__all__ = [
    "PAPER", "METHODS", "block_efficiency", "chain_tree", "configs_for_budget",
    "constant_branching_tree", "draft_laws", "exponential_race_topk", "gumbel_topk", "iid_tree",
    "k_sequences_tree", "log1mexp", "mbsu", "rsd_generate", "rsd_generate_batch",
    "sample_without_replacement", "shift_gumbel_max", "stochastic_beam_tree", "target_budget",
    "without_replacement_conditionals",
]

PAPER = Paper(
    number=12,
    title="Recursive Speculative Decoding",
    arxiv="2402.14160",
    code="none (peers: wouterkool/stochastic-beam-search, Infini-AI-Lab/Sequoia)",
    hot_paths="tree verification",
    demo="recursive-speculative-decoding",
    demo_summary="tokens per target call of RSD-C/RSD-S vs i.i.d. trees and chains on a toy "
                 "model",
)
