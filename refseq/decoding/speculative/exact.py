"""Exact probabilities of one verification step, for proving losslessness on tiny vocabularies
(guide: docs/speculative.md, "Verification and losslessness"). Used by tests and notebooks.

:func:`step_emission_distribution` integrates the acceptance uniforms of
:func:`~refseq.decoding.speculative.verify.verify_tree_stochastic` analytically: at the j-th
sibling the mass that reaches the test splits into ``a_j = P(u Q_j(y_j) < P_j(y_j)) =
min(1, P_j(y_j) / Q_j(y_j))`` (1 if ``Q_j(y_j) = 0 < P_j(y_j)``) for the accept branch and
``1 - a_j`` for the reject branch; a node where every child is rejected spreads its remaining
mass over ``P_{k+1}``, an accepted leaf over its own row. :func:`enumerate_sampled_trees` lists
every tree a sampling drafter can produce, with its probability, and :func:`mixture_emission`
averages the step law over them. :func:`lossless_error` measures equation (E) of the guide:
emitting the step's tuple and then sampling the target must reproduce the target's joint law.

Models are callables ``fn(prefix: tuple[int, ...]) -> (V,)`` probabilities of the next token;
``ctx`` is the committed context, ending with the root token; node i's distributions are
``fn(ctx + path(i))`` with ``path(i)`` the tokens strictly below the root.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.tree import DraftTree
from refseq.decoding.speculative.verify import (
    MODES,
    _residual,
    _stochastic_args,
    _virtual,
    typical_acceptance,
)

__all__ = ["MAX_TREES", "step_emission_distribution", "enumerate_sampled_trees",
           "mixture_emission", "lossless_error", "expected_emitted"]

MAX_TREES = 200_000  # bound on V ** (number of drafted nodes) for enumerate_sampled_trees


def step_emission_distribution(tree, target_probs, draft_probs, mode, *, bonus=True,
                               child_draft_probs=None) -> dict:
    """Exact law of the tuple emitted by one verification step on a fixed ``tree``.

    Parameters
    ----------
    tree : DraftTree (N nodes)
    target_probs, draft_probs : ndarray (N, V)
        As in :func:`~refseq.decoding.speculative.verify.verify_tree_stochastic`.
    mode : {"iid", "wor", "point", "typical"}
        ``"typical"`` is Medusa's lossy rule (the accepted path is deterministic) followed by a
        draw from the last accepted node's row (``typical_acceptance`` with a uniform
        ``u_final``); a negative control.
    bonus, child_draft_probs :
        As in ``verify_tree_stochastic``.

    Returns
    -------
    dict[tuple[int, ...], float]
        ``{emitted tokens: probability}`` (accepted tokens then the next token); the values sum
        to 1 up to rounding.
    """
    typical = _checks.check_choice(mode, "mode", MODES + ("typical",)) == "typical"
    tree, p, q, qc, mode, bonus = _stochastic_args(
        tree, target_probs, draft_probs, "point" if typical else mode, child_draft_probs, bonus)
    out = defaultdict(float)

    def spread(prefix, mass, P):
        for t in np.flatnonzero(P > 0):
            out[prefix + (int(t),)] += mass * P[t] / P.sum()

    if typical:
        path = typical_acceptance(p, tree).path  # deterministic accepted path
        spread(tuple(int(t) for t in tree.tokens[path[1:]]), 1.0, p[path[-1]])
        return dict(out)
    virtual = _virtual(tree)

    def visit(node, prefix, mass):
        P = p[node]  # (V,) law of what follows node if no child is accepted
        kids = tree.child_idx[tree.child_ptr[node]:tree.child_ptr[node + 1]]
        undrawn = None if q is None else q[node].copy()  # wor: q_u minus the drawn siblings
        for c in kids:
            y = int(tree.tokens[c])
            if mode == "point":
                Q = np.eye(P.shape[0])[y]
            elif mode == "iid":
                Q = q[node] if qc is None else qc[c]
            else:
                if undrawn.sum() <= 0:
                    break
                Q = undrawn / undrawn.sum()
            if virtual[c]:
                a = 0.0
            elif Q[y] > 0:
                a = min(1.0, P[y] / Q[y])
            else:
                a = 1.0 if P[y] > 0 else 0.0
            if a > 0:
                visit(c, prefix + (y,), mass * a)
            mass *= 1.0 - a
            P = _residual(P, Q)
            if mode == "wor":
                undrawn[y] = 0.0
        if kids.size == 0 and node != 0 and not bonus:
            out[prefix] += mass
        else:
            spread(prefix, mass, P)

    visit(0, (), 1.0)
    return dict(out)


def _model(fn, name):
    if not callable(fn):
        raise TypeError(f"{name} must be a callable prefix (tuple of ints) -> (V,) "
                        f"probabilities, got {type(fn).__name__}")
    return fn


def _ctx(ctx):
    arr = _checks.int_array(np.asarray(ctx, dtype=np.int64) if len(ctx) == 0 else ctx, "ctx",
                            ndim=1, form="(n,)", low=0)
    if arr.shape[0] == 0:
        raise ValueError("ctx must hold at least the root token (its last entry)")
    return tuple(int(t) for t in arr)


def _row(fn, prefix, name, V=None):
    r = np.asarray(fn(prefix), dtype=np.float64)
    if r.ndim != 1 or (V is not None and r.shape[0] != V) or not np.isfinite(r).all() \
            or (r < 0).any() or abs(r.sum() - 1) > 1e-9:
        raise ValueError(f"{name}{prefix} must return a (V,) probability vector summing to 1, "
                         f"got {r!r:.80}")
    return r


def enumerate_sampled_trees(branching, draft_fn, ctx, mode, *, virtual=False) -> list:
    """Every tree a sampling drafter with fixed ``branching`` can produce, with its probability.

    Node u at depth d (root: d = 0) gets ``branching[d]`` children drawn from
    ``q_u = draft_fn(ctx + path(u))``: i.i.d. (``"iid"``; duplicates stay separate siblings) or
    sequentially without replacement (``"wor"``: the j-th draw has law ``q_u`` restricted to the
    undrawn tokens and renormalised; fewer children when ``q_u``'s support runs out). Nodes are
    numbered level by level, siblings in draw order. Zero-probability draws are left out.

    Parameters
    ----------
    branching : tuple of int >= 1
        Children per node at each depth; the tree has depth ``len(branching)``.
    draft_fn : callable ``prefix -> (V,)``
    ctx : sequence of int
        Committed context; ``ctx[-1]`` is the root token.
    mode : {"iid", "wor"}
    virtual : bool, default False
        ``"iid"`` only: flag each repeat of an earlier sibling's token ``virtual`` and draw no
        children below it (they could never be reached; their law sums out).

    Returns
    -------
    list of (DraftTree, prefixes, prob)
        ``prefixes[i]`` is ``path(i)`` (a tuple, ``()`` at the root); the probabilities sum to 1.
    """
    if not isinstance(branching, (tuple, list)) or not branching:
        raise TypeError(f"branching must be a non-empty tuple of ints, got {branching!r}")
    branching = tuple(_checks.check_number(b, "branching entries", integer=True, low=1)
                      for b in branching)
    draft_fn, ctx = _model(draft_fn, "draft_fn"), _ctx(ctx)
    mode = _checks.check_choice(mode, "mode", ("iid", "wor"))
    virtual = _checks.check_flag(virtual, "virtual")
    if virtual and mode != "iid":
        raise ValueError("virtual=True is only meaningful with mode='iid'")
    V = _row(draft_fn, ctx, "draft_fn").shape[0]
    n = sum(math.prod(branching[:d + 1]) for d in range(len(branching)))
    if V ** n > MAX_TREES:
        raise ValueError(f"branching={branching} with V={V} allows up to V**{n} trees, more "
                         f"than MAX_TREES={MAX_TREES}")

    def draws(q, b):
        """(tokens, probability) of every ordered draw of b children from q."""
        if mode == "iid":
            support = np.flatnonzero(q > 0)
            for ys in itertools.product(support, repeat=b):
                yield tuple(int(y) for y in ys), math.prod(q[y] for y in ys)
            return

        def wor(left, ys, prob):
            if len(ys) == b or left.sum() <= 0:
                yield ys, prob
                return
            for y in np.flatnonzero(left > 0):
                nxt = left.copy()
                nxt[y] = 0.0
                yield from wor(nxt, ys + (int(y),), prob * left[y] / left.sum())
        yield from wor(q.copy(), (), 1.0)

    out = []

    def grow(parents, tokens, prefixes, flags, k, prob):
        # expand node k (level order: nodes are expanded in index order)
        if k == len(parents):
            tree = DraftTree(np.array(parents), np.array(tokens),
                             np.array(flags) if virtual else None)
            out.append((tree, list(prefixes), prob))
            return
        d = len(prefixes[k])
        if d == len(branching) or flags[k]:
            grow(parents, tokens, prefixes, flags, k + 1, prob)
            return
        q = _row(draft_fn, ctx + prefixes[k], "draft_fn", V)
        for ys, pr in draws(q, branching[d]):
            dup = [virtual and y in ys[:j] for j, y in enumerate(ys)]
            grow(parents + [k] * len(ys), tokens + list(ys),
                 prefixes + [prefixes[k] + (y,) for y in ys], flags + dup, k + 1, prob * pr)

    grow([-1], [ctx[-1]], [()], [False], 0, 1.0)
    return out


def mixture_emission(trees_with_probs, target_fn, draft_fn, ctx, mode, *, bonus=True) -> dict:
    """``sum_T prob(T) * step_emission_distribution(T, ...)`` over ``(tree, prefixes, prob)``
    triples (e.g. from :func:`enumerate_sampled_trees`), with node i's rows
    ``target_fn(ctx + prefixes[i])`` (zeros for virtual nodes) and ``draft_fn(ctx +
    prefixes[i])``. ``mode`` as in :func:`step_emission_distribution` (the verification rule,
    which may differ from the way the trees were drawn: that is what negative controls do)."""
    target_fn, draft_fn, ctx = _model(target_fn, "target_fn"), _model(draft_fn, "draft_fn"), \
        _ctx(ctx)
    _checks.check_choice(mode, "mode", MODES + ("typical",))
    if not isinstance(trees_with_probs, (list, tuple)) or not trees_with_probs:
        raise TypeError("trees_with_probs must be a non-empty list of (DraftTree, prefixes, "
                        "prob) triples")
    memo, out = {}, defaultdict(float)

    def rows(fn, key, prefixes, skip):
        V = None
        res = []
        for i, pre in enumerate(prefixes):
            if (key, pre) not in memo:
                memo[key, pre] = _row(fn, ctx + tuple(pre), key, V)
            V = memo[key, pre].shape[0]
            res.append(np.zeros(V) if skip[i] else memo[key, pre])
        return np.stack(res)  # (N, V)

    for item in trees_with_probs:
        if not (isinstance(item, (tuple, list)) and len(item) == 3
                and isinstance(item[0], DraftTree) and len(item[1]) == item[0].num_nodes):
            raise TypeError("trees_with_probs entries must be (DraftTree, prefixes (N paths), "
                            "prob) triples")
        tree, prefixes, prob = item
        prob = _checks.check_number(prob, "prob", low=0, high=1 + 1e-9)
        p = rows(target_fn, "target_fn", prefixes, _virtual(tree))
        q = rows(draft_fn, "draft_fn", prefixes, np.zeros(tree.num_nodes, bool))
        for e, m in step_emission_distribution(tree, p, q, mode, bonus=bonus).items():
            out[e] += prob * m
    return dict(out)


def _emission(emission) -> dict:
    if not isinstance(emission, dict) or not emission:
        raise TypeError("emission must be a non-empty dict {tuple of tokens: probability}")
    for e, m in emission.items():
        if not isinstance(e, tuple) or not all(isinstance(t, (int, np.integer)) and t >= 0
                                               for t in e):
            raise TypeError(f"emission keys must be tuples of token ids >= 0, got {e!r}")
        _checks.check_number(m, "emission values", low=0)
    return emission


def lossless_error(emission, target_fn, ctx, V, max_len=None) -> float:
    """Maximum violation of equation (E): for every ``s`` of length ``L = 1..max_len``,

    ``sum_{e: |e| >= L, e[:L] = s} P(e) + sum_{e: |e| < L, e = s[:|e|]} P(e) prod_{t=|e|}^{L-1}
    p(s_t | ctx, s_<t)`` must equal ``prod_{t<L} p(s_t | ctx, s_<t)``, ``p = target_fn``.
    The deviation of the total mass from 1 is included. ``max_len`` defaults to the longest
    emitted tuple. Cost ``O(V**max_len * len(emission))``: tiny vocabularies only.
    """
    emission = _emission(emission)
    target_fn, ctx = _model(target_fn, "target_fn"), _ctx(ctx)
    V = _checks.check_number(V, "V", integer=True, low=1)
    longest = max(len(e) for e in emission)
    L_max = longest if max_len is None else _checks.check_number(max_len, "max_len",
                                                                 integer=True, low=1)
    if V ** L_max > 10**6:
        raise ValueError(f"V**max_len = {V}**{L_max} sequences is too many to enumerate")
    memo = {}

    def p(prefix):
        if prefix not in memo:
            memo[prefix] = _row(target_fn, ctx + prefix, "target_fn", V)
        return memo[prefix]

    err = abs(sum(emission.values()) - 1.0)
    for L in range(1, L_max + 1):
        for s in itertools.product(range(V), repeat=L):
            cond = [p(s[:t])[s[t]] for t in range(L)]  # p(s_t | ctx, s_<t)
            lhs = 0.0
            for e, m in emission.items():
                if len(e) >= L and e[:L] == s:
                    lhs += m
                elif len(e) < L and e == s[:len(e)]:
                    lhs += m * math.prod(cond[len(e):])
            err = max(err, abs(lhs - math.prod(cond)))
    return float(err)


def expected_emitted(emission) -> float:
    """Mean number of tokens emitted per step, ``sum_e |e| P(e)``."""
    return float(sum(len(e) * m for e, m in _emission(emission).items()))
