"""ADED as a :class:`~refseq.decoding.speculative.engine.Drafter` (arXiv 2407.12021, Sec. 3;
the released ``generate_candidates_and_draft_buffer`` and ``Reader::search``).

One ``draft(context, root)`` call:

1. ``seq = context + [root]``; if ``adaptive``:
   :func:`~refseq.papers.aded.adaptation.adapt` ``(matrix, seq)`` (the window includes the new
   root token);
2. candidates from the pair ``(seq[-2], root)``: the tree search (``method="mcts"``), or the
   ablations ``"greedy"`` (one arg-max chain of ``sentence_length`` tokens) and ``"full"``
   (breadth-first traversal, ``sentence_length`` deep, ``max_nodes`` nodes);
3. :func:`~refseq.papers.aded.candidates.cut_to_choices` ``(paths, choices)`` and
   :func:`~refseq.papers.aded.candidates.paths_to_tree` ``(root, paths, max_nodes)``.

The drafts are deterministic given the rollout ``rng`` (mode ``"point"``, no draft
probabilities), so greedy verification reproduces greedy decoding and ``point``-mode stochastic
verification reproduces the target's sampling law. The matrix is state carried across steps
and calls (pass ``matrix.copy()`` to keep the original); ``observe`` does nothing, since the
next ``draft`` sees the verified tokens in its context. ``history`` records per step the tree
size, the candidates, the search statistics and the table size after the update.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.aded.adaptation import CAP, INCREMENT, WINDOW, adapt
from refseq.papers.aded.candidates import (
    CUT_RULES,
    cut_to_choices,
    draft_full_traversal,
    draft_greedy_chain,
    paths_to_tree,
)
from refseq.papers.aded.mcts import C1, C2, RETURN_RULES, mcts_search
from refseq.papers.aded.trigram import TrigramMatrix

__all__ = ["METHODS", "ADEDDrafter"]

METHODS = ("mcts", "greedy", "full")


class ADEDDrafter:
    """Tri-gram table + adaptive update + tree search, drafting one token tree per step.

    Parameters
    ----------
    matrix : TrigramMatrix
        Mutated by the adaptive update.
    adaptive : bool
        Reinforce the trailing tri-grams before every draft.
    method : {"mcts", "greedy", "full"}
    iterations, sentence_length, top_sentences, c1, c2, return_rule :
        As in :func:`~refseq.papers.aded.mcts.mcts_search` (released defaults).
    choices : int
        Budget of :func:`~refseq.papers.aded.candidates.cut_to_choices` (64 as the released
        Python passes; the Rust default is 24).
    max_nodes : int
        Draft nodes per tree (64, as the released buffers).
    cut_rule : {"released", "keep_longest"}
    fallback_token : int, optional
        Single draft when no candidate exists (the released Python uses token 100).
    window, increment, cap : the adaptive update's constants.
    rng : numpy.random.Generator or int seed
        Rollout randomness.
    """

    def __init__(self, matrix, *, adaptive=True, method="mcts", iterations=150,
                 sentence_length=4, top_sentences=24, choices=64, max_nodes=64, c1=C1, c2=C2,
                 return_rule="path", cut_rule="released", fallback_token=None, window=WINDOW,
                 increment=INCREMENT, cap=CAP, rng=None):
        self.matrix = _checks.check_instance(matrix, TrigramMatrix, "matrix")
        self.adaptive = _checks.check_flag(adaptive, "adaptive")
        self.method = _checks.check_choice(method, "method", METHODS)
        self.iterations = _checks.check_number(iterations, "iterations", integer=True, low=1)
        self.sentence_length = _checks.check_number(sentence_length, "sentence_length",
                                                    integer=True, low=2)
        self.top_sentences = _checks.check_number(top_sentences, "top_sentences", integer=True,
                                                  low=1)
        self.choices = _checks.check_number(choices, "choices", integer=True, low=0)
        self.max_nodes = _checks.check_number(max_nodes, "max_nodes", integer=True, low=0)
        self.c1 = _checks.check_number(c1, "c1", low=0, low_open=True)
        self.c2 = _checks.check_number(c2, "c2", low=0, low_open=True)
        self.return_rule = _checks.check_choice(return_rule, "return_rule", RETURN_RULES)
        self.cut_rule = _checks.check_choice(cut_rule, "cut_rule", CUT_RULES)
        V = self.matrix.vocab_size
        self.fallback_token = _checks.check_number(fallback_token, "fallback_token",
                                                   integer=True, low=0, allow_none=True,
                                                   high=None if V is None else V - 1)
        self.window = _checks.check_number(window, "window", integer=True, low=3)
        self.increment = _checks.check_number(increment, "increment", low=0, low_open=True)
        self.cap = _checks.check_number(cap, "cap", low=0, low_open=True)
        self.rng = _checks.check_rng(rng)
        self.history: list = []

    def start(self, prompt, target_prefill_outputs=None) -> None:
        """Check that the table's tokens fit the target's vocabulary (from the prefill logits)."""
        if target_prefill_outputs is not None:
            V = int(np.asarray(target_prefill_outputs[0]).shape[-1])
            top = max(self.matrix.max_token, -1 if self.fallback_token is None
                      else self.fallback_token)
            if top >= V:
                raise ValueError(f"the trigram matrix (or fallback_token) holds token {top}, "
                                 f"outside the target's vocabulary [0, {V})")

    def candidates(self, root_pair) -> tuple:
        """``(paths, search statistics)`` from ``root_pair`` with the current matrix."""
        if self.method == "mcts":
            res = mcts_search(self.matrix, root_pair, iterations=self.iterations,
                              sentence_length=self.sentence_length,
                              top_sentences=self.top_sentences, c1=self.c1, c2=self.c2,
                              rng=self.rng, return_rule=self.return_rule)
            return res.candidates, res.stats
        if self.method == "greedy":
            return draft_greedy_chain(self.matrix, root_pair, self.sentence_length), {}
        return draft_full_traversal(self.matrix, root_pair, self.sentence_length,
                                    self.max_nodes), {}

    def draft(self, context, root):
        """-> ``(DraftTree, None, "point")``; updates the matrix first when adaptive."""
        seq = _checks.int_array(context, "context", ndim=1, low=0, form="(n,)").tolist()
        root = _checks.check_number(root, "root", integer=True, low=0)
        seq.append(root)
        touched = adapt(self.matrix, seq, self.window, self.increment, self.cap) \
            if self.adaptive else 0
        paths, stats = ([], {}) if len(seq) < 2 else self.candidates((seq[-2], seq[-1]))
        paths = cut_to_choices(paths, self.choices, self.cut_rule)
        tree = paths_to_tree(root, paths, self.max_nodes, fallback_token=self.fallback_token)
        self.history.append({"tree_size": tree.num_nodes, "num_paths": len(paths),
                             "touched": touched, "contexts": self.matrix.num_contexts,
                             "entries": self.matrix.num_entries, **stats})
        return tree, None, "point"

    def observe(self, tree, target_logits, target_hidden, result) -> None:
        """Nothing: the next draft adapts on the verified tokens."""
