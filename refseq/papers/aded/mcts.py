"""ADED's draft maker: a small Monte Carlo tree search over token pairs (arXiv 2407.12021,
Sec. 3, "draft maker"; reconstructed from the released ``DraftRetriever/src/mcts_sub.rs``).

A search node is a pair ``(a, b)`` whose token is ``b``; its children are the successors ``c``
of ``(a, b)`` in the tri-gram table, as nodes ``(b, c)``. One iteration:

1. *selection* from the root while the node has children and the state holds fewer than
   ``sentence_length`` pairs: the child with the largest PUCT score (first maximum wins)::

       score(j) = Q_j + (c1 + ln((N_u + c2 + 1) / c2)) * P_j * sqrt(N_u) / (1 + n_j),
       Q_j = W_j / n_j,   score(j) = +inf if n_j = 0,

   ``N_u`` the parent's visits, ``n_j``/``W_j`` the child's visits and summed return,
   ``P_j = w(pair(u), token(j))`` the *raw* (possibly reinforced) weight, ``c1 = 32``,
   ``c2 = 8`` (the first public commit had ``c1 = 1.814``, :data:`C1_FIRST_COMMIT`);
2. *expansion* of a leaf with successors (once per node: all successors become children at
   once, in successor order) and a step into the first child, the highest-prior one (the Rust
   code steps into the last child in ``HashMap`` order, random per process);
3. *rollout* from the last pair until ``sentence_length`` pairs, ``c ~ w(a, b, c) /
   sum_c' w(a, b, c')`` (the only place weights are normalised), by inverse CDF over the
   successor order with one uniform from ``rng`` per token;
4. *back-propagation* of the return ``R = 1 + sum_{t<T} w(z_t, token(z_{t+1}))`` (raw weights,
   0 for a missing entry) to the node and its ancestors.

Extraction: every root-to-node prefix is a candidate sentence scored by the node's visits
(depth-first order, stable sort, descending); the ``top_sentences`` best are each extended by
the arg-max successor of their last pair, the root token is dropped, empty ones are removed and
duplicates dropped (first occurrence kept). Successor order: descending weight, then ascending id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from refseq import _checks
from refseq.papers.aded.trigram import TrigramMatrix, _pair

__all__ = ["C1", "C1_FIRST_COMMIT", "C2", "MCTSNode", "MCTSResult", "RETURN_RULES",
           "mcts_draft", "mcts_search", "puct_score"]

C1, C2 = 32.0, 8.0  # released constants ("Update c1 to 32.0")
C1_FIRST_COMMIT = 1.814
# "path": R adds w(z_t, b_{t+1}), the weight of the step actually taken (the rule as described);
# "released": R adds w(z_t, a_{t+1}) = w(z_t, b_t), what mcts_sub.rs computes (state[i+1].0),
# which is 0 unless the context repeats its last token.
RETURN_RULES = ("path", "released")


@dataclass(eq=False)
class MCTSNode:
    """A search node: ``pair = (a, b)`` (``b`` is its token), ``prior = w(parent.pair, b)``,
    ``successors`` fixed at creation, ``children`` created all at once by the expansion."""

    pair: tuple
    prior: float
    successors: list
    parent: MCTSNode | None = None
    depth: int = 0
    visits: int = 0
    value_sum: float = 0.0
    children: list = field(default_factory=list)

    @property
    def token(self) -> int:
        return self.pair[1]

    def tokens(self) -> list:
        """Tokens from the root's token down to this node's token."""
        out, node = [], self
        while node is not None:
            out.append(node.token)
            node = node.parent
        return out[::-1]

    def walk(self):
        """This node and its descendants in depth-first preorder (children in creation order)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


@dataclass
class MCTSResult:
    """``root`` of the search tree, the extracted ``candidates`` (root token dropped) and
    ``stats``: ``num_nodes``, ``max_depth``, ``num_expanded``, ``num_candidates``."""

    root: MCTSNode
    candidates: list
    stats: dict


def puct_score(child_visits, child_value_sum, prior, parent_visits, c1=C1, c2=C2) -> float:
    """The PUCT selection score of a child (``+inf`` if unvisited); see the module docstring.

    ``child_visits`` and ``parent_visits`` are counts (integers >= 0, a child visited at most
    as often as its parent), ``child_value_sum`` a finite number, ``prior >= 0`` a table weight
    and ``c1, c2 > 0``.
    """
    n = _checks.check_number(child_visits, "child_visits", integer=True, low=0)
    W = _checks.check_number(child_value_sum, "child_value_sum")
    P = _checks.check_number(prior, "prior", low=0)
    N = _checks.check_number(parent_visits, "parent_visits", integer=True, low=0)
    c1 = _checks.check_number(c1, "c1", low=0, low_open=True)
    c2 = _checks.check_number(c2, "c2", low=0, low_open=True)
    if n > N:
        raise ValueError(f"child_visits = {n} exceeds parent_visits = {N} (every visit of a "
                         "child passes through its parent)")
    return _puct(n, W, P, N, c1, c2)


def _puct(child_visits, child_value_sum, prior, parent_visits, c1, c2) -> float:
    """:func:`puct_score` without the checks (the search's inner loop)."""
    if child_visits == 0:
        return math.inf
    q = child_value_sum / child_visits
    return q + (c1 + math.log((parent_visits + c2 + 1.0) / c2)) * prior \
        * math.sqrt(parent_visits) / (1 + child_visits)


def _sample(row: dict, succ: list, u: float):
    """Inverse CDF over ``succ`` with weights ``row``: smallest t with cumsum > u * total."""
    total = sum(row[c] for c in succ)
    if not total > 0:
        return None
    acc, threshold = 0.0, u * total
    for c in succ:
        acc += row[c]
        if acc > threshold:
            return c
    return next(c for c in reversed(succ) if row[c] > 0)  # rounding at the top end


def mcts_search(matrix, root_pair, *, iterations=150, sentence_length=4, top_sentences=24,
                c1=C1, c2=C2, rng=None, return_rule="path") -> MCTSResult:
    """Run the search from ``root_pair`` and extract candidate continuations.

    Parameters
    ----------
    matrix : TrigramMatrix
        Read only (adapt it before the call).
    root_pair : tuple (a, b)
        The last committed token and the root token.
    iterations : int >= 1
    sentence_length : int >= 2
        Pairs per simulated state (root included): nodes lie at most ``sentence_length - 1``
        below the root, candidates have 1..``sentence_length`` tokens.
    top_sentences : int >= 1
        Candidate sentences kept before the greedy extension (the root's own is one of them).
    c1, c2 : float > 0
    rng : numpy.random.Generator or int seed
        Rollout randomness.
    return_rule : {"path", "released"}
        See :data:`RETURN_RULES`.

    Returns
    -------
    MCTSResult
    """
    _checks.check_instance(matrix, TrigramMatrix, "matrix")
    root_pair = _pair(root_pair, matrix.vocab_size, "root_pair")
    iterations = _checks.check_number(iterations, "iterations", integer=True, low=1)
    L = _checks.check_number(sentence_length, "sentence_length", integer=True, low=2)
    top = _checks.check_number(top_sentences, "top_sentences", integer=True, low=1)
    c1 = _checks.check_number(c1, "c1", low=0, low_open=True)
    c2 = _checks.check_number(c2, "c2", low=0, low_open=True)
    rng = _checks.check_rng(rng)
    return_rule = _checks.check_choice(return_rule, "return_rule", RETURN_RULES)
    table, cache = matrix.table, {}

    def succ(pair):
        if pair not in cache:
            row = table.get(pair, {})
            cache[pair] = [c for c, _ in sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))]
        return cache[pair]

    def w(pair, c):
        return table.get(pair, {}).get(c, 0.0)

    root = MCTSNode(root_pair, 0.0, succ(root_pair))
    expanded = 0
    for _ in range(iterations):
        node, state = root, [root.pair]
        at_limit = False
        while node.successors and node.children and not at_limit:  # selection
            best, best_score = node.children[0], -math.inf
            for ch in node.children:
                s = _puct(ch.visits, ch.value_sum, ch.prior, node.visits, c1, c2)
                if s > best_score:  # strict: the first maximum wins
                    best, best_score = ch, s
            node = best
            state.append(node.pair)
            at_limit = len(state) == L
        if node.successors and not at_limit:  # expansion: all successors at once
            a, b = node.pair
            for c in node.successors:
                node.children.append(MCTSNode((b, c), w(node.pair, c), succ((b, c)), node,
                                              node.depth + 1))
            expanded += 1
            node = node.children[0]
            state.append(node.pair)
        while len(state) < L:  # rollout
            last = state[-1]
            c = _sample(table.get(last, {}), succ(last), float(rng.random()))
            if c is None:
                break
            state.append((last[1], c))
        k = 1 if return_rule == "path" else 0
        R = 1.0 + sum(w(state[t], state[t + 1][k]) for t in range(len(state) - 1))
        x = node
        while x is not None:  # back-propagation
            x.visits += 1
            x.value_sum += R
            x = x.parent
    nodes = list(root.walk())
    sentences = sorted(((n.tokens(), n.visits) for n in nodes), key=lambda sv: -sv[1])[:top]
    out, seen = [], set()
    for toks, _ in sentences:
        if len(toks) >= 2:
            nxt = succ((toks[-2], toks[-1]))
            if nxt:
                toks = toks + [nxt[0]]  # greedy extension: the arg-max successor
        cand = tuple(toks[1:])  # drop the root token
        if cand and cand not in seen:
            seen.add(cand)
            out.append(list(cand))
    stats = {"num_nodes": len(nodes), "max_depth": max(n.depth for n in nodes),
             "num_expanded": expanded, "num_candidates": len(out)}
    return MCTSResult(root, out, stats)


def mcts_draft(matrix, root_pair, *, iterations=150, sentence_length=4, top_sentences=24,
               c1=C1, c2=C2, rng=None, return_rule="path") -> list:
    """The candidate continuations of :func:`mcts_search` (lists of tokens, root dropped)."""
    return mcts_search(matrix, root_pair, iterations=iterations, sentence_length=sentence_length,
                       top_sentences=top_sentences, c1=c1, c2=c2, rng=rng,
                       return_rule=return_rule).candidates
