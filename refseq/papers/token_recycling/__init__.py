"""Token Recycling.

X. Luo, Y. Wang, Q. Zhu, Z. Zhang, X. Zhang, Q. Yang, D. Xu, W. Che. *Turning Trash into
Treasure: Accelerating Inference of Large Language Models with Token Recycling*. arXiv
2408.08696 (2024; ACL 2025).

Official code: Luowaterbi/TokenRecycling (PyTorch on Spec-Bench;
``evaluation/inference_recycling.py::recycling_forward``, ``model/recycling/tree_template_.py``).
Independent: smpanaro/token-recycling (Hugging Face ``transformers``).

Token Recycling is a training-free, self-drafting speculative decoder for greedy decoding.
Every target forward pass computes a next-token distribution at every position it scores; the
method keeps the top-k tokens of each ("candidate tokens") in an adjacency matrix ``M (V, k)``
indexed by the token that produced them. A draft is a static, imbalanced tree template expanded
from the last committed token by lookups into ``M``; one target call verifies it with tree
attention; then the candidates of *every* tree node, accepted or rejected, overwrite the rows
of those nodes' tokens. ``M`` is kept across queries (hot start). Narrative, equations, tests
and demo output: ``docs/papers/token-recycling.md``.

Glossary (V vocabulary, k candidates per token, N tree nodes incl. the root, D tree depth,
P leaves, B batch):

=================================  ================================================  ========
paper                              code                                              shape
=================================  ================================================  ========
adjacency matrix M                 ``TokenRecyclingState.M``                         (V, k)
candidate tokens argtopk(p, k)     :func:`candidate_tokens`                          (R, k)
tree template (static tree)        :data:`TEMPLATE_2_2_2`, :func:`template_buffers`  80 + 1
merged sequence S                  :func:`retrieve_tokens`, :func:`retrieve_tree`    (N,)
tree attention mask                ``TemplateBuffers.allow``                         (N, N)
position ids (depths)              ``TemplateBuffers.rel_positions``                 (N,)
search paths                       ``TemplateBuffers.retrieve``                      (P, D+1)
layer boundaries                   ``TemplateBuffers.layer_bounds``                  (D+1,)
matrix update (Sec. 3.3)           :func:`update_matrix`                             (N,) rows
batched update (one shared M)      :func:`update_matrix_batch`                       (B, N)
accepted tokens L = 1 + m          ``RecyclingStats.accept_len``                     (steps,)
MAT (mean accepted tokens)         ``RecyclingStats.mat``                            -
hot start                          one ``TokenRecyclingState`` across queries        -
generation loop (Sec. 3)           :func:`token_recycling_generate`
drafter for the core engine        :class:`TokenRecyclingDrafter`
=================================  ================================================  ========

Deviations and choices:

* Duplicates in the update (one token at several nodes): the official CUDA scatter
  ``adj_matrix[input_ids] = topk`` is unordered; the reference keeps the row of the last node
  (``update_rule="last"``, default) or the first (``"first"``). A batch sharing one matrix is
  serialised row-major.
* Candidate ties are broken by lower token id; k is used consistently (the official loop
  hard-codes ``topk(k=8)`` whatever the matrix width).
* EOS and budget: the output is cut after the first EOS and at ``max_new_tokens`` (the official
  loop can overshoot by up to 6 tokens); the matrix is not updated on the EOS step unless
  ``update_on_eos=True``.
* Node count: "2.2.2" has 80 draft nodes plus the root and depth 6 (up to 7 tokens per step),
  as in the released code; the paper's appendix says 80 nodes including the root.
* Extensions not in the paper: ``seed_from_prompt`` (smpanaro/token-recycling's seeding from the
  prompt's logits), sampling (``temperature > 0``: verification in ``"point"`` mode, exact for a
  deterministic tree; candidates from the unwarped logits), ``verify="walk"`` (first matching
  sibling instead of the official path rewards), numba forms of the two matrix operations.
"""

from __future__ import annotations

from refseq.papers import Paper
from refseq.papers.token_recycling.drafter import TokenRecyclingDrafter
from refseq.papers.token_recycling.generate import (
    RecyclingStats,
    seed_matrix_from_prompt,
    token_recycling_generate,
    verify_step,
)
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.retrieval import (
    retrieve_tokens,
    retrieve_tree,
    retrieve_tree_batch,
)
from refseq.papers.token_recycling.templates import (
    TEMPLATE_2_2_2,
    TemplateBuffers,
    template_buffers,
    template_chain,
    template_from_layer_counts,
)
from refseq.papers.token_recycling.update import (
    candidate_tokens,
    update_matrix,
    update_matrix_batch,
)

__all__ = [
    "PAPER", "TEMPLATE_2_2_2", "RecyclingStats", "TemplateBuffers", "TokenRecyclingDrafter",
    "TokenRecyclingState", "candidate_tokens", "retrieve_tokens", "retrieve_tree",
    "retrieve_tree_batch", "seed_matrix_from_prompt", "template_buffers", "template_chain",
    "template_from_layer_counts", "token_recycling_generate", "update_matrix",
    "update_matrix_batch", "verify_step",
]

PAPER = Paper(
    number=16,
    title="Token Recycling",
    arxiv="2408.08696",
    code="Luowaterbi/TokenRecycling (PyTorch)",
    hot_paths="tree verification",
    demo="token-recycling",
    demo_summary="mean accepted tokens of Token Recycling on order-2 toy targets, hot start",
)
