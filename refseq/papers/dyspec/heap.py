"""DySpec's greedy tree construction with a max-heap of sampling slots (Xiong et al., arXiv
2410.11744, Sec. 4.2, Algorithm 1; optimality in Appendix D).

A *slot* is a draw that could be made next: the first child of a node, or the next sibling of
an already drawn child. Its value estimates the probability that the drawn token is reached and
accepted (Hypothesis 1: acceptance follows the draft probability):

    val(root) = 1,   val(c) = prod_{a on root -> c} d_{parent(a)}(x_a)                  (Eq. 10)
    slot(u, j) = val(u) * (1 - sum_{l<j} d_u(y_l))                                     (Eq. 9)

Popping a slot of value ``v`` with residual ``R`` and drawing ``y ~ R`` creates the child of
value ``v0 = v * R[y]`` and the next-sibling slot of value ``v1 = v * (1 - R[y])`` whose residual
is ``R`` without ``y``, renormalised. Both are ``<= v``, so popping in decreasing order takes the
``budget`` slots of largest value: the tree that maximises the decision-form objective
``T = sum of popped slot values`` (Eq. 11 with rho = 1) among trees whose draws are decided
before their tokens are seen. Every drawn node enters the tree (no pruning by realised value),
which keeps the tree verifiable exactly by recursive rejection sampling without replacement.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.tree import DraftTree
from refseq.papers.dyspec.draft import _vocab_size

__all__ = ["DySpecTree", "Slot", "build_tree_greedy"]

_ROW_TOL = float(np.sqrt(np.finfo(np.float32).eps))  # float32 draft rows are accepted


@dataclass(eq=False)
class Slot:
    """A sampling slot of the heap.

    ``value`` its estimated value (float64); ``node`` the node that owns it (the parent of the
    token it will draw); ``residual (V,)`` the owner's draft distribution without the ``sib``
    children drawn so far, renormalised (``None`` while a lazily evaluated first-child slot waits
    for its draft call); ``order`` a creation counter that breaks value ties (first pushed,
    first popped). The heap holds ``(-value, order, slot)`` tuples, so two slots are never
    compared themselves.
    """

    value: float
    node: int
    residual: np.ndarray | None
    sib: int
    order: int


@dataclass(frozen=True, eq=False)
class DySpecTree:
    """A built draft tree and its bookkeeping.

    ``tree`` the DraftTree in creation order (siblings in draw order); ``draft_probs (N, V)``
    float64, row i node i's *original* draft distribution (zeros where it was never computed:
    leaves under lazy evaluation), the rows verification reads; ``node_value (N,)`` the values
    ``val``; ``popped_values (m,)`` the value of the slot each drafted node came from, in draw
    order; ``leftover_values (h,)`` the values of the slots never drawn; ``draft_calls`` the
    number of draft calls; ``prefixes`` node i's tokens below the root (a tuple per node).
    """

    tree: DraftTree
    draft_probs: np.ndarray
    node_value: np.ndarray
    popped_values: np.ndarray
    leftover_values: np.ndarray
    draft_calls: int
    prefixes: tuple


def _draft(draft, name: str = "draft"):
    """``draft`` if it is a DraftLM (the three methods and an int ``vocab_size >= 1``)."""
    _checks.check_methods(draft, name, ("reset", "probs", "commit"),
                          "a DraftLM (reset, probs and commit methods, e.g. TabularDraft)")
    _vocab_size(draft, name)
    return draft


def _sampler(sampler):
    if sampler is None:
        from refseq.papers.dyspec.samplers import InverseCdfSampler

        return InverseCdfSampler()
    if not callable(sampler):
        raise TypeError(f"sampler must be a callable (residual, key) -> token, got "
                        f"{type(sampler).__name__}")
    return sampler


def _token(sampler, R, key) -> int:
    y = sampler(R, key)
    y = _checks.check_number(y, "sampler(...)", integer=True, low=0, high=R.size - 1)
    if not R[y] > 0:
        raise ValueError(f"sampler drew token {y} of zero residual probability")
    return y


class _Growing:
    """The tree under construction: nodes in creation order, rows, values, draft calls."""

    def __init__(self, draft, context, root):
        self.draft = _draft(draft)
        self.V = int(draft.vocab_size)
        if isinstance(context, (list, tuple)) and len(context) == 0:
            context = np.zeros(0, np.int64)  # [] reads as float64
        context = _checks.int_array(context, "context", ndim=1, low=0, high=self.V, form="(n,)")
        root = _checks.check_number(root, "root", integer=True, low=0, high=self.V - 1)
        draft.reset(context.astype(np.int64), root)
        self.parents, self.tokens, self.prefixes, self.value = [-1], [root], [()], [1.0]
        self.rows, self.calls, self.popped, self.leftover = {}, 0, [], []

    def dist(self, nodes) -> np.ndarray:
        """One draft call for ``nodes``; stores their rows. -> ``(R, V)`` float64."""
        D = np.asarray(self.draft.probs([self.prefixes[u] for u in nodes]), np.float64)
        if D.shape != (len(nodes), self.V) or not np.isfinite(D).all() or (D < 0).any() \
                or np.abs(D.sum(axis=1) - 1).max() > _ROW_TOL:
            raise ValueError(f"draft.probs must return ({len(nodes)}, V = {self.V}) rows of "
                             f"probabilities (finite, non-negative, summing to 1)")
        self.calls += 1
        for u, row in zip(nodes, D):
            self.rows[u] = row
        return D

    def add(self, parent: int, y: int, value: float) -> int:
        self.parents.append(parent)
        self.tokens.append(y)
        self.prefixes.append(self.prefixes[parent] + (y,))
        self.value.append(value)
        return len(self.tokens) - 1

    @property
    def drafts(self) -> int:
        return len(self.tokens) - 1

    def result(self) -> DySpecTree:
        N = len(self.tokens)
        probs = np.zeros((N, self.V))
        for u, row in self.rows.items():
            probs[u] = row
        return DySpecTree(DraftTree(np.array(self.parents), np.array(self.tokens)), probs,
                          np.array(self.value, np.float64), np.array(self.popped, np.float64),
                          np.array(self.leftover, np.float64), self.calls, tuple(self.prefixes))


def build_tree_greedy(draft, context, root, budget, *, sampler=None, lazy=True) -> DySpecTree:
    """Algorithm 1: grow a tree of ``budget`` draft nodes by always drawing the slot of largest
    estimated value.

    Parameters
    ----------
    draft : DraftLM
        Reset to ``(context, root)`` first.
    context : (n,) int
        Committed tokens before the root.
    root : int
        The root token (last committed, node 0).
    budget : int >= 0
        Number of draft nodes (the root excluded). Fewer only if every support is exhausted.
    sampler : callable ``(residual (V,), key) -> token``, optional
        Default :class:`~refseq.papers.dyspec.samplers.InverseCdfSampler` with fresh entropy.
        ``key = (prefix of the slot's owner, sib)``.
    lazy : bool, default True
        Compute a node's draft distribution only when its first-child slot is popped (no draft
        call for leaves); ``False`` scores every node when it is created. Same tree.

    Returns
    -------
    DySpecTree
        ``popped_values`` is non-increasing and every ``leftover_values`` entry is ``<=`` its
        last entry (the optimality certificate of Appendix D).
    """
    budget = _checks.check_number(budget, "budget", integer=True, low=0)
    lazy = _checks.check_flag(lazy, "lazy")
    sampler = _sampler(sampler)
    g = _Growing(draft, context, root)
    order = itertools.count()
    heap = []

    def push(value, node, residual, sib):
        k = next(order)
        heapq.heappush(heap, (-value, k, Slot(value, node, residual, sib, k)))

    push(1.0, 0, None if lazy else g.dist([0])[0], 0)
    while g.drafts < budget and heap:
        _, _, s = heapq.heappop(heap)
        R = g.dist([s.node])[0] if s.residual is None else s.residual  # lazy: first pop
        y = _token(sampler, R, (g.prefixes[s.node], s.sib))
        c = g.add(s.node, y, s.value * R[y])  # v0 = v * R[y]
        g.popped.append(s.value)
        rest = R.copy()
        rest[y] = 0.0
        if rest.sum() > 0:  # R[y] < 1: mass left for another sibling
            push(s.value * (1.0 - R[y]), s.node, rest / rest.sum(), s.sib + 1)  # v1
        push(g.value[c], c, None if lazy else g.dist([c])[0], 0)
    g.leftover = [-v for v, _, _ in heap]
    return g.result()
