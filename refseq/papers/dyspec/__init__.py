"""DySpec: Faster Speculative Decoding with Dynamic Token Tree Structure.

Y. Xiong, R. Zhang, Y. Li, T. Wu, L. Zou. arXiv 2410.11744 (October 2024; World Wide Web
28(3), 2025).

Official code: none released (the paper mentions a C++ tree builder). Verification and the
experimental setup follow Sequoia (Infini-AI-Lab/Sequoia, arXiv 2402.12374), the closest peer.

Summary. Tree-based speculative decoding spends a fixed budget of draft tokens per target call;
DySpec decides at run time where to spend it. Under Hypothesis 1 (a draft token's chance of
acceptance grows with its draft probability) the value of a node is the product of the draft
probabilities on its path, and the value of a *slot* (the next draw at a node) is the node's
value times the draft mass not yet taken by its drawn children. A max-heap pops the most
valuable slot, draws a token from the residual draft distribution (sampling without
replacement) and pushes the child's first slot and the next-sibling slot (Algorithm 1). Slot
values decrease along the slot tree, so the greedy tree maximises the estimated number of
accepted tokens among trees whose draws are decided before their tokens are seen, and the tree
is verified exactly by recursive rejection sampling without replacement (Algorithm 3, the core's
``mode="wor"``). A threshold variant builds the same tree one layer per draft call
(Algorithm 2). Narrative, equations, tests and the demo's output: ``docs/papers/dyspec.md``.

Modules: :mod:`~refseq.papers.dyspec.draft` (the draft model interface),
:mod:`~refseq.papers.dyspec.samplers`, :mod:`~refseq.papers.dyspec.heap` (Algorithm 1),
:mod:`~refseq.papers.dyspec.threshold` (Algorithm 2), :mod:`~refseq.papers.dyspec.generate`
(the drafter and generation), :mod:`~refseq.papers.dyspec.batch` (batched generation),
:mod:`~refseq.papers.dyspec.analysis`, :mod:`~refseq.papers.dyspec.demo`.

Glossary (N tree nodes, V vocabulary, m drawn nodes, h undrawn slots):

============================  ================================================  ==========
paper                         code                                              shape
============================  ================================================  ==========
D[.] (draft distribution)     ``DySpecTree.draft_probs[u]`` (original rows)     (N, V)
T[.] (target distribution)    ``target_probs`` of the verifier                  (N, V)
SD[x] = min(1, T[x]/D[x])     acceptance in ``verify_tree_stochastic("wor")``   -
val(c), Eq. 10                ``DySpecTree.node_value``                         (N,)
slot value, Eq. 9             ``Slot.value``                                    -
residual draft, Eq. 8         ``Slot.residual``                                 (V,)
v0 = v R[y], v1 = v (1-R[y])  child value, next-sibling slot value (heap.py)    -
T (decision form), Eq. 11     :func:`decision_objective` of ``popped_values``   (m,)
E_hat[#accepted], Eq. 6       :func:`estimated_accepted` of ``node_value``      -
heap leftovers                ``DySpecTree.leftover_values``                    (h,)
budget (tokens per step)      ``budget`` (draft nodes, root excluded)           -
threshold t, Algorithm 2      ``threshold``                                     -
Algorithm 1                   :func:`build_tree_greedy`                         -
Algorithm 2                   :func:`build_tree_threshold`                      -
Algorithm 3                   core ``verify_tree_stochastic(mode="wor")``       -
============================  ================================================  ==========

Deviations and choices:

* Listing typos fixed: Algorithm 2's loop test ``v_i < t`` is ``v_i > t``; Algorithm 3's
  acceptance variable is U[0, 1) (the listing draws it from N(0, 1)); a node's token is drawn
  before the node is added (Algorithm 1, lines 6 and 7).
* Algorithm 3 emits nothing after an accepted leaf; generation here samples the bonus token from
  the leaf's target row (exact and free). The no-bonus form is the core verifier's
  ``bonus=False``, proved lossless in the tests; the engine has no no-bonus mode, so
  :func:`dyspec_generate` always takes the bonus.
* ``budget`` counts draft nodes only (the paper's "tokens per verification" does not say
  whether the root counts).
* The draft temperature is a property of the draft model (``TabularDraft(lm, temperature)``,
  default 0.6), not an argument of :func:`dyspec_generate`.
* ``TransformerDraft.reset`` catches up on committed tokens missing from the draft cache (the
  bonus token, accepted leaves that were never scored under lazy evaluation) instead of a separate
  ``feed(token)`` call.
* The threshold builder scores only the nodes of a layer whose value exceeds the threshold
  (the listing scores the whole layer; the tree is the same). With ``max_nodes`` a layer's
  nodes are expanded in descending value, ties in creation order.
* The paper's custom block-sparse attention kernel (Appendix C) is out of scope;
  :func:`block_counts` reports the tiles it would visit in creation and DFS order.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.dyspec.analysis import (
    acceptance_by_draft_prob,
    block_counts,
    decision_objective,
    estimated_accepted,
    exact_expected_emitted,
    tested_children,
)
from refseq.papers.dyspec.batch import dyspec_generate_batch
from refseq.papers.dyspec.draft import CallableDraft, DraftLM, TabularDraft, TransformerDraft
from refseq.papers.dyspec.generate import DySpecDrafter, DySpecStats, dyspec_generate
from refseq.papers.dyspec.heap import DySpecTree, Slot, build_tree_greedy
from refseq.papers.dyspec.samplers import (
    EnumeratingSampler,
    InverseCdfSampler,
    KeyedSampler,
    enumerate_outcomes,
    inverse_cdf,
)
from refseq.papers.dyspec.threshold import build_tree_threshold

__all__ = [
    "PAPER", "CallableDraft", "DraftLM", "DySpecDrafter", "DySpecStats", "DySpecTree",
    "EnumeratingSampler", "InverseCdfSampler", "KeyedSampler", "Slot", "TabularDraft",
    "TransformerDraft", "acceptance_by_draft_prob", "block_counts", "build_tree_greedy",
    "build_tree_threshold", "decision_objective", "dyspec_generate", "dyspec_generate_batch",
    "enumerate_outcomes", "estimated_accepted", "exact_expected_emitted", "inverse_cdf",
    "tested_children",
]

PAPER = Paper(
    number=24,
    title="DySpec: Faster Speculative Decoding with Dynamic Token Tree Structure",
    arxiv="2410.11744",
    code="none released (verification as Infini-AI-Lab/Sequoia)",
    hot_paths="tree verification",
    demo="dyspec",
    demo_summary="tokens per target call of DySpec's heap-built trees vs chains and fixed trees",
)
