"""Simple drafters for tests and demos (the :class:`~refseq.decoding.speculative.engine.Drafter`
protocol: ``start``, ``draft``, ``observe``).

- :class:`ChainDrafter` (mode ``point`` or ``iid``): K tokens of a draft ``StepLM``, arg-max or
  sampled from ``softmax(z / T)`` (Leviathan et al., arXiv 2211.17192);
- :class:`SampledTreeDrafter` (``iid`` or ``wor``): fixed branching per level (SpecInfer, arXiv
  2305.09781), children i.i.d. from the node's draft law, or without replacement by Gumbel-top-k
  (Sequoia, arXiv 2402.12374; Kool et al., arXiv 1903.06059);
- :class:`RandomDrafter` (``point``): random parents and tokens, up to ``max_nodes`` nodes;
- :class:`OracleDrafter` (``point``): the target's greedy continuation as a chain (optionally
  with wrong decoy siblings before each right child);
- :class:`AlwaysWrongDrafter` (``point``): every child of the root differs from the target's
  next token.

Model drafters re-read their prefix through ``lm.start`` every step (no draft cache: the obvious
loop). ``draft_probs[i]`` is the law node ``i``'s children were drawn from; rows of leaves are
zeros (no child was drawn there).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.decoding.sampling import gumbel_noise
from refseq.decoding.speculative.tree import DraftTree

__all__ = ["AlwaysWrongDrafter", "ChainDrafter", "OracleDrafter", "RandomDrafter",
           "SampledTreeDrafter"]


class _Base:
    def start(self, prompt, target_prefill_outputs=None):
        self.prompt_len = int(np.asarray(prompt).size)

    def observe(self, tree, target_logits, target_hidden, result):
        pass


def _lm(lm):
    return _checks.check_methods(lm, "lm", ("start", "step", "reorder"),
                                 "a StepLM (start, step and reorder methods, e.g. TabularLM)")


def _draft_law(lm, prefixes, T: float) -> np.ndarray:
    """``softmax(logits / T)`` (float64) of the draft after each prefix -> ``(R, V)``."""
    logits, _ = lm.start([np.asarray(p, np.int64) for p in prefixes])
    return np.exp(log_softmax(np.asarray(logits, np.float64) / T))  # (R, V)


def _inverse_cdf(q: np.ndarray, u: float) -> int:
    """Smallest ``t`` with ``cumsum(q)[t] > u * sum(q)`` (never a zero-probability token)."""
    c = np.cumsum(q)  # (V,) float64
    return int(min(np.searchsorted(c, u * c[-1], side="right"), np.flatnonzero(q > 0)[-1]))


class ChainDrafter(_Base):
    """A chain of ``k`` draft tokens from ``lm`` after ``context, root``.

    ``temperature == 0``: arg-max tokens (lowest index on ties), ``draft_probs = None``,
    mode "point". ``temperature > 0``: token ``t`` drawn from ``softmax(z_t / temperature)`` by
    inverse CDF with ``rng``; ``draft_probs[t]`` is that law (mode "iid": one child per node).
    """

    def __init__(self, lm, k: int, *, temperature: float = 0.0, rng=None):
        self.lm = _lm(lm)
        self.k = _checks.check_number(k, "k", integer=True, low=0)
        self.temperature = _checks.check_number(temperature, "temperature", low=0)
        self.rng = _checks.check_rng(rng)

    def draft(self, context, root):
        seq = list(np.asarray(context, np.int64)) + [int(root)]
        V = int(self.lm.vocab_size)
        q = np.zeros((self.k + 1, V))
        for t in range(self.k):
            logits, _ = self.lm.start([np.array(seq, np.int64)])
            if self.temperature == 0:
                seq.append(int(np.argmax(logits[0])))
            else:
                q[t] = np.exp(log_softmax(np.asarray(logits, np.float64) / self.temperature))[0]
                seq.append(_inverse_cdf(q[t], self.rng.random()))
        tree = DraftTree.chain(int(root), np.array(seq[len(seq) - self.k:], np.int64))
        if self.temperature == 0:
            return tree, None, "point"
        return tree, q, "iid"


class SampledTreeDrafter(_Base):
    """A tree with ``branching[d]`` children under every node of depth ``d``, drawn from the
    draft law ``q_u = softmax(z_u / temperature)`` at each node ``u``.

    ``mode="iid"``: children drawn independently (duplicates kept as separate children, in draw
    order; with ``virtual_duplicates`` a repeated token is flagged virtual and not expanded).
    ``mode="wor"``: without replacement in Gumbel-top-k order (the first ``b`` tokens of
    ``log q_u + g`` sorted descending, ``g`` i.i.d. Gumbel), which is sequential sampling
    without replacement; fewer children when ``q_u`` has fewer than ``b`` positive entries.
    Nodes are numbered level by level.
    """

    def __init__(self, lm, branching, *, mode: str = "iid", temperature: float = 1.0,
                 virtual_duplicates: bool = False, rng=None):
        self.lm = _lm(lm)
        if not isinstance(branching, (tuple, list)) or not branching:
            raise TypeError(f"branching must be a non-empty tuple of ints, got {branching!r}")
        self.branching = tuple(_checks.check_number(b, "branching", integer=True, low=1)
                               for b in branching)
        self.mode = _checks.check_choice(mode, "mode", ("iid", "wor"))
        self.temperature = _checks.check_number(temperature, "temperature", low=0,
                                                low_open=True)
        self.virtual_duplicates = _checks.check_flag(virtual_duplicates, "virtual_duplicates")
        if self.virtual_duplicates and self.mode != "iid":
            raise ValueError("virtual_duplicates needs mode='iid' (wor draws never repeat)")
        self.rng = _checks.check_rng(rng)

    def _children(self, q: np.ndarray, b: int) -> list:
        if self.mode == "iid":
            return [_inverse_cdf(q, self.rng.random()) for _ in range(b)]
        g = gumbel_noise(self.rng, q.size)  # (V,) standard Gumbel, always finite
        with np.errstate(divide="ignore"):
            keys = np.log(q) + g  # (V,) -inf on the zero-probability tokens
        order = np.argsort(-keys, kind="stable")[: min(b, int((q > 0).sum()))]
        return [int(t) for t in order]

    def draft(self, context, root):
        context = list(np.asarray(context, np.int64))
        V = int(self.lm.vocab_size)
        parents, tokens, virtual, prefix = [-1], [int(root)], [False], [[int(root)]]
        laws = {}
        level = [0]
        for b in self.branching:
            q = _draft_law(self.lm, [context + prefix[u] for u in level], self.temperature)
            nxt = []
            for u, q_u in zip(level, q):
                laws[u] = q_u
                seen = set()
                for y in self._children(q_u, b):
                    dup = self.virtual_duplicates and y in seen
                    seen.add(y)
                    parents.append(u)
                    tokens.append(y)
                    virtual.append(dup)
                    prefix.append(prefix[u] + [y])
                    if not dup:
                        nxt.append(len(tokens) - 1)
            level = nxt
        draft_probs = np.zeros((len(tokens), V))
        for u, q_u in laws.items():
            draft_probs[u] = q_u
        tree = DraftTree(np.array(parents), np.array(tokens),
                         np.array(virtual) if self.virtual_duplicates else None)
        return tree, draft_probs, self.mode


class RandomDrafter(_Base):
    """A random tree of 1..``max_nodes`` nodes: parents uniform over earlier nodes, tokens
    uniform over ``[0, vocab_size)`` (mode "point")."""

    def __init__(self, vocab_size: int, max_nodes: int, *, rng=None):
        self.V = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1)
        self.max_nodes = _checks.check_number(max_nodes, "max_nodes", integer=True, low=1)
        self.rng = _checks.check_rng(rng)

    def draft(self, context, root):
        N = int(self.rng.integers(1, self.max_nodes + 1))
        parents = np.array([-1] + [int(self.rng.integers(0, i)) for i in range(1, N)])
        tokens = np.concatenate([[int(root)], self.rng.integers(0, self.V, N - 1)])
        return DraftTree(parents, tokens), None, "point"


class OracleDrafter(_Base):
    """Drafts the next ``k`` tokens of a known greedy continuation of the prompt (e.g.
    ``plain_greedy(target, prompt, n)``): every draft is accepted, so each step emits ``k + 1``
    tokens while the continuation lasts. ``decoys`` wrong siblings (token ``(right + j) % V``,
    ``j = 1..decoys``) precede each right child, to exercise the sibling walk."""

    def __init__(self, continuation, k: int, *, vocab_size: int | None = None, decoys: int = 0):
        self.continuation = _checks.int_array(continuation, "continuation", ndim=1, low=0,
                                              form="(n,)").astype(np.int64)
        self.k = _checks.check_number(k, "k", integer=True, low=0)
        self.decoys = _checks.check_number(decoys, "decoys", integer=True, low=0)
        self.V = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1,
                                      allow_none=True)
        if self.decoys and (self.V is None or self.decoys >= self.V):
            raise ValueError(f"decoys = {self.decoys} needs vocab_size > decoys")

    def draft(self, context, root):
        g = len(context) + 1 - self.prompt_len  # generated tokens committed so far
        right = self.continuation[g: g + self.k]
        parents, tokens, node = [-1], [int(root)], 0
        for y in right:
            for j in range(1, self.decoys + 1):
                parents.append(node)
                tokens.append(int((y + j) % self.V))
            parents.append(node)
            tokens.append(int(y))
            node = len(tokens) - 1
        return DraftTree(np.array(parents), np.array(tokens)), None, "point"


class AlwaysWrongDrafter(_Base):
    """An adversarial drafter: ``width`` children of the root, each with a token different from
    the known greedy continuation's next token, each followed by a random chain of
    ``depth - 1`` tokens. Every step emits exactly one token (the target's correction)."""

    def __init__(self, continuation, vocab_size: int, *, width: int = 1, depth: int = 1,
                 rng=None):
        self.continuation = _checks.int_array(continuation, "continuation", ndim=1, low=0,
                                              form="(n,)").astype(np.int64)
        self.V = _checks.check_number(vocab_size, "vocab_size", integer=True, low=2)
        self.width = _checks.check_number(width, "width", integer=True, low=1, high=self.V - 1)
        self.depth = _checks.check_number(depth, "depth", integer=True, low=1)
        self.rng = _checks.check_rng(rng)

    def draft(self, context, root):
        g = len(context) + 1 - self.prompt_len
        right = int(self.continuation[g]) if g < self.continuation.size else 0
        parents, tokens = [-1], [int(root)]
        for j in range(1, self.width + 1):
            parents.append(0)
            tokens.append((right + j) % self.V)
            for _ in range(self.depth - 1):
                parents.append(len(tokens) - 1)
                tokens.append(int(self.rng.integers(0, self.V)))
        return DraftTree(np.array(parents), np.array(tokens)), None, "point"
