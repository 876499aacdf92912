"""Batched ADED generation (arXiv 2407.12021, Sec. 3): drafting per row on the CPU, one batched
target forward and one batched verification per step through
:func:`~refseq.decoding.speculative.batched.speculative_generate_batch` (the trees padded into a
:class:`~refseq.decoding.speculative.batch.TreeBatch`, decided by :mod:`refseq.tree_verify`).

The tri-gram matrix is state carried across steps, so a batch needs a rule for it:

* **one shared matrix** (``matrix`` a :class:`~refseq.papers.aded.trigram.TrigramMatrix`): at
  every step the active rows' adaptive updates are applied to it in row order, *before* any row
  drafts; then every row searches the same updated table. The result is deterministic and does
  not depend on how the rows' searches are scheduled.
* **one matrix per row** (``matrix`` a list of B distinct matrices): row b adapts and searches
  its own table, exactly as :func:`~refseq.papers.aded.generate.aded_generate` on row b alone.

Verification is the exact rule only (greedy at ``temperature == 0``, ``point`` mode otherwise);
the released ``rest_nucleus`` rule stays a per-row comparison in ``aded_generate``.
"""

from __future__ import annotations

from refseq import _checks
from refseq.decoding.speculative.batched import (
    _batch_size,
    _row_rngs,
    speculative_generate_batch,
)
from refseq.papers.aded.adaptation import CAP, INCREMENT, WINDOW, adapt
from refseq.papers.aded.drafter import ADEDDrafter
from refseq.papers.aded.generate import ADEDStats
from refseq.papers.aded.trigram import TrigramMatrix

__all__ = ["aded_generate_batch"]


def _matrices(matrix, B):
    """``(per-row matrices, shared)``."""
    if isinstance(matrix, TrigramMatrix):
        return [matrix] * B, True
    if not isinstance(matrix, (list, tuple)) or len(matrix) != B:
        raise TypeError(f"matrix must be a TrigramMatrix (shared by the rows) or a list of "
                        f"B = {B} of them (one per row), got {type(matrix).__name__}")
    for b, m in enumerate(matrix):
        _checks.check_instance(m, TrigramMatrix, f"matrix[{b}]")
    if len({id(m) for m in matrix}) != B:
        raise ValueError("matrix as a list must hold B distinct TrigramMatrix objects (pass one "
                         "TrigramMatrix to share a table)")
    return list(matrix), False


def aded_generate_batch(target, prompts, max_new_tokens, matrix, *, adaptive=True,
                        method="mcts", iterations=150, sentence_length=4, top_sentences=24,
                        choices=64, max_nodes=64, c1=32.0, c2=8.0, return_rule="path",
                        cut_rule="released", temperature=0.0, top_p=1.0, rngs=None,
                        mcts_rngs=None, eos_id=None, fallback_token=None, window=WINDOW,
                        increment=INCREMENT, cap=CAP, backend="numpy"):
    """ADED on ``B`` rows at once; returns ``(tokens: list of B (n_new_b,) int64, stats: list of
    B ADEDStats)``.

    Parameters
    ----------
    target : batched TreeLM over B rows
        ``BatchedTreeLM`` or :class:`~refseq.decoding.speculative.batched.RowsTreeLM`.
    prompts : list of B (n_b,) int arrays, n_b >= 1
    max_new_tokens : int >= 0
    matrix : TrigramMatrix or list of B TrigramMatrix
        One table shared by every row (the rows' updates in row order before drafting), or one
        table per row; adapted in place when ``adaptive``.
    adaptive, method, iterations, sentence_length, top_sentences, choices, max_nodes, c1, c2,
    return_rule, cut_rule, fallback_token, window, increment, cap :
        As in :class:`~refseq.papers.aded.drafter.ADEDDrafter`.
    temperature, top_p : the target's warping; ``temperature == 0`` is greedy.
    rngs : list of B generators or seeds, optional — row b's verification uniforms.
    mcts_rngs : list of B generators or seeds, optional — row b's rollout randomness.
    eos_id : int, optional
    backend : "numpy" | "jit" | "cuda" — tier of the verification kernels.
    """
    B = _batch_size(prompts)
    tables, shared = _matrices(matrix, B)
    adaptive = _checks.check_flag(adaptive, "adaptive")
    mcts_rngs = _row_rngs(mcts_rngs, B, "mcts_rngs")
    drafters = [ADEDDrafter(tables[b], adaptive=adaptive and not shared, method=method,
                            iterations=iterations, sentence_length=sentence_length,
                            top_sentences=top_sentences, choices=choices, max_nodes=max_nodes,
                            c1=c1, c2=c2, return_rule=return_rule, cut_rule=cut_rule,
                            fallback_token=fallback_token, window=window, increment=increment,
                            cap=cap, rng=mcts_rngs[b])
                for b in range(B)]
    touched = [[] for _ in range(B)]

    def adapt_rows(contexts, roots, active):  # the shared table, row order, before drafting
        for b in range(B):
            if active[b]:
                seq = contexts[b].tolist() + [roots[b]]
                touched[b].append(adapt(tables[0], seq, drafters[b].window,
                                        drafters[b].increment, drafters[b].cap))

    hook = adapt_rows if shared and adaptive else None
    tokens, stats = speculative_generate_batch(
        target, drafters, prompts, max_new_tokens, temperature=temperature, top_p=top_p,
        mode="point", eos_id=eos_id, rngs=rngs, backend=backend, before_draft=hook)
    for b in range(B):  # the hook's counts into each row's per-step record
        for entry, t in zip(drafters[b].history, touched[b]):
            entry["touched"] = t
    return tokens, [ADEDStats(s, d.history) for s, d in zip(stats, drafters)]
