"""Token Recycling as a :class:`~refseq.decoding.speculative.engine.Drafter` for the core's
:func:`~refseq.decoding.speculative.engine.speculative_generate` (Luo et al., arXiv 2408.08696,
Sec. 3).

``draft`` retrieves the static tree from the matrix (deterministic lookups: mode ``"point"``,
no draft law); ``observe`` writes the candidate tokens of every node into the matrix after the
engine has verified the tree. The engine verifies with the tree walk (first matching sibling),
whereas :func:`~refseq.papers.token_recycling.generate.token_recycling_generate` defaults to
the official path rewards; both are exact, they can differ in MAT when siblings repeat a token.
The engine calls ``observe`` on every step, including one that emits EOS (the official loop
skips that last update; it does not change any output).
"""

from __future__ import annotations

from refseq import _checks
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.retrieval import retrieve_tree
from refseq.papers.token_recycling.templates import TEMPLATE_2_2_2, template_buffers
from refseq.papers.token_recycling.update import RULES, update_matrix

__all__ = ["TokenRecyclingDrafter"]


class TokenRecyclingDrafter:
    """Drafts Token Recycling's static tree from a caller-owned matrix.

    Parameters
    ----------
    state : TokenRecyclingState
        Updated in place by :meth:`observe`; reuse it across queries for hot start.
    template : list of rank tuples, default TEMPLATE_2_2_2
    update_rule : {"last", "first"}
    cold_start : bool, default False
        Reset the matrix to zeros in :meth:`start` (once per query).

    Attributes
    ----------
    buffers : TemplateBuffers
    rows_written : list of int
        Distinct rows updated per observed step.
    """

    def __init__(self, state, template=None, *, update_rule: str = "last",
                 cold_start: bool = False):
        self.state = _checks.check_instance(state, TokenRecyclingState, "state")
        self.buffers = template_buffers(TEMPLATE_2_2_2 if template is None else template,
                                        state.k)
        self.update_rule = _checks.check_choice(update_rule, "update_rule", RULES)
        self.cold_start = _checks.check_flag(cold_start, "cold_start")
        self.rows_written = []

    def start(self, prompt, target_prefill_outputs) -> None:
        """A new query: reset the matrix if ``cold_start`` (the prefill logits are unused)."""
        self.rows_written = []
        if self.cold_start:
            self.state.reset()

    def draft(self, context, root):
        """``(retrieve_tree(state, root), None, "point")``."""
        return retrieve_tree(self.state, root, self.buffers), None, "point"

    def observe(self, tree, target_logits, target_hidden, result) -> None:
        """``M[tok(i)] <- argtopk(z_i, k)`` for every node of ``tree`` (Sec. 3.3)."""
        self.rows_written.append(update_matrix(self.state, tree.tokens, target_logits,
                                               self.update_rule))
