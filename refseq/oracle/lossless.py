"""Is a user's speculative sampler lossless? The oracle's answer, exact or statistical.

A speculative sampler verifies one draft tree: given the tree, the target and draft
distributions at its nodes and the verification mode, it returns the emitted tokens (the
accepted path's tokens, then one more). It is lossless when emitting them and then sampling the
target reproduces the target's joint law (equation (E) of docs/speculative.md; Leviathan et al.,
arXiv 2211.17192, Thm. 1; SpecInfer, arXiv 2305.09781, Thm. 4.2), for every tree in "point"
mode and on average over the sampled trees in "iid" and "wor" modes.

Two contracts (:data:`SAMPLER_CONTRACTS`):

- ``speculative_sampler``: ``fn(parents, tokens, target_probs, draft_probs, mode, u_accept,
  u_final) -> emitted`` takes its uniforms explicitly. The check is **exact**: for a fixed tree
  the reference rule (accept iff ``u * Q(y) < P(y)``, final token by inverse CDF) switches its
  decisions at one threshold per node and at the CDF steps of each possible final law, so the
  unit cube of uniforms splits into boxes on which the output is constant. The oracle calls
  ``fn`` at two interior points of every box, weights the output by the box's volume and gets
  the emitted law with no sampling error; :func:`refseq.decoding.speculative.exact.lossless_error`
  then measures (E). A sampler whose output changes inside a box (its thresholds sit elsewhere,
  e.g. ``u > 1 - P/Q``) cannot be integrated this way: the case says so and falls back to the
  statistical test.
- ``speculative_sampler_rng``: ``fn(parents, tokens, target_probs, draft_probs, mode, rng) ->
  emitted`` draws its own uniforms from the ``numpy.random.Generator`` it is given. The check is
  **statistical**: ``samples`` steps, each continued by target sampling to ``L = 2`` tokens; the
  empirical law of those ``V**L`` outcomes must lie within the L1 radius ``eps = sqrt(2 (k ln 2 +
  ln(1/alpha)) / n)`` of the target's joint law (Bretagnolle-Huber-Carol: a lossless sampler
  exceeds it with probability at most ``alpha``; k = V**L outcomes, n samples).

Models: random context-dependent target and draft tables over V = 3 tokens with zero entries
(seeded); trees: random fixed trees of up to 5 nodes ("point"), and every tree a drafter with
branching (2, 1) can draw, with its probability ("iid", "wor";
:func:`~refseq.decoding.speculative.exact.enumerate_sampled_trees`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from refseq.decoding.speculative.exact import enumerate_sampled_trees, lossless_error
from refseq.tree_verify import reference as ref

__all__ = ["ALPHA", "EXACT_TOL", "MODES", "SAMPLER_CONTRACTS", "reference_sampler",
           "reference_sampler_rng"]

MODES = ("point", "iid", "wor")
EXACT_TOL = 1e-9  # (E) in float64 sums of a few thousand box volumes
ALPHA = 1e-6  # false-alarm probability of the statistical test
V, L, BRANCHING, POINT_TREES = 3, 2, (2, 1), 6
SAMPLER_CONTRACTS = {
    "speculative_sampler": "fn(parents, tokens, target_probs, draft_probs, mode, u_accept, "
                           "u_final) -> emitted",
    "speculative_sampler_rng": "fn(parents, tokens, target_probs, draft_probs, mode, rng) -> "
                               "emitted",
}


def reference_sampler(parents, tokens, target_probs, draft_probs, mode, u_accept, u_final):
    """The reference rule with explicit uniforms on one tree: the emitted tokens, (m+1,) int64.

    :func:`refseq.decoding.speculative.verify.verify_tree_stochastic` on ``DraftTree(parents,
    tokens)``; it validates every argument (a ``ValueError``/``TypeError`` naming it).
    """
    from refseq.decoding.speculative.tree import DraftTree
    from refseq.decoding.speculative.verify import verify_tree_stochastic

    res = verify_tree_stochastic(DraftTree(parents, tokens), target_probs, draft_probs, mode,
                                 u_accept, u_final)
    return np.append(np.asarray(res.accepted_tokens, np.int64), np.int64(res.next_token))


def reference_sampler_rng(parents, tokens, target_probs, draft_probs, mode, rng):
    """:func:`reference_sampler` with uniforms drawn from ``rng`` (a ``numpy.random.Generator``
    or a seed)."""
    from refseq import _checks

    rng = _checks.check_rng(rng)
    return reference_sampler(parents, tokens, target_probs, draft_probs, mode,
                             rng.random(len(parents)), rng.random())


def _tables(seed):
    """Target and draft models ``prefix -> (V,)``: order-2 tables with some zero entries."""
    rng = np.random.default_rng([seed, 7])

    def table():
        t = rng.dirichlet(np.ones(V), (V, V))  # (V, V, V): the last two tokens -> next
        t[rng.random(t.shape) < 0.2] = 0.0
        t[..., 0] += t.sum(-1) == 0
        return t / t.sum(-1, keepdims=True)

    p, q = table(), table()
    return (lambda pre: p[pre[-2], pre[-1]]), (lambda pre: q[pre[-2], pre[-1]])


def tree_cases(mode, seed):  # the models and trees of one property (also for replay)
    """``(target_fn, draft_fn, ctx, [(parents, tokens, prefixes, weight)])`` of one property:
    random fixed trees (point, equal weights) or every sampled tree with its probability."""
    target_fn, draft_fn = _tables(seed)
    rng = np.random.default_rng([seed, 11])
    ctx = (int(rng.integers(V)), int(rng.integers(V)))
    if mode != "point":
        return target_fn, draft_fn, ctx, [
            (t.parents, t.tokens, pre, w) for t, pre, w in
            enumerate_sampled_trees(BRANCHING, draft_fn, ctx, mode)]
    out = []
    for _ in range(POINT_TREES):
        n = int(rng.integers(1, 6))
        parents = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)], np.int64)
        tokens = np.array([ctx[-1]] + list(rng.integers(0, V, n - 1)), np.int64)
        prefixes = [()]
        for i in range(1, n):
            prefixes.append(prefixes[parents[i]] + (int(tokens[i]),))
        out.append((parents, tokens, prefixes, 1.0 / POINT_TREES))
    return target_fn, draft_fn, ctx, out


def _rows(fn, ctx, prefixes):
    return np.stack([np.asarray(fn(ctx + tuple(p)), np.float64) for p in prefixes])  # (N, V)


def _boxes(parents, tokens, P_rows, Q_rows, mode):
    """Per-node acceptance thresholds of the reference rule and the u_final breakpoints.

    Reaching the test of child c means rejecting every earlier sibling, so the law ``P_j`` it is
    tested against is fixed by the tree: one threshold ``P_j(y) / Q_j(y)`` per node (clipped to
    [0, 1]). The final law is fixed by the node the walk stops at: its residual after all its
    tested children. Returns ``(cuts per node, final cuts)``, each a sorted list in [0, 1].
    """
    n = len(parents)
    cuts, final = [[0.0, 1.0] for _ in range(n)], {0.0, 1.0}
    for u in range(n):
        P = P_rows[u].copy()
        qm = None if mode == "point" else Q_rows[u].copy()
        for c in [c for c in range(u + 1, n) if parents[c] == u]:
            y = tokens[c]
            if mode == "point":
                Q = np.eye(len(P))[y]
            elif mode == "iid":
                Q = Q_rows[u]
            else:
                if qm.sum() <= 0:
                    break
                Q = qm / qm.sum()
            t = 1.0 if Q[y] == 0 else min(1.0, P[y] / Q[y])
            cuts[c] = sorted({0.0, t, 1.0})
            P = ref.residual(P, Q)
            if mode == "wor":
                qm[y] = 0.0
        cdf = np.cumsum(P)
        final |= {float(min(1.0, x / cdf[-1])) for x in cdf if cdf[-1] > 0}
    return cuts, sorted(final)


def exact_emission(fn, parents, tokens, P_rows, Q_rows, mode):
    """``(emission {tuple: prob}, constant)``: the law of ``fn``'s output with its uniforms
    integrated over the boxes of :func:`_boxes` (``constant`` False when an output changed
    inside a box; then the law is not exact)."""
    cuts, final = _boxes(parents, tokens, P_rows, Q_rows, mode)
    draft = None if mode == "point" else Q_rows
    axes = [list(zip(c[:-1], c[1:])) for c in cuts[1:]] + [list(zip(final[:-1], final[1:]))]
    emission, constant = {}, True
    for box in itertools.product(*axes):
        vol = math.prod(hi - lo for lo, hi in box)
        if vol <= 0:
            continue
        outs = []
        for frac in (1 / 3, 2 / 3):
            u = [lo + frac * (hi - lo) for lo, hi in box]
            e = fn(parents, tokens, P_rows, draft, mode, np.array([0.0] + u[:-1]), u[-1])
            outs.append(tuple(int(t) for t in np.asarray(e).ravel()))
        constant &= outs[0] == outs[1]
        emission[outs[0]] = emission.get(outs[0], 0.0) + vol
    return emission, constant


def statistical_l1(fn, cases, mode, samples, seed, explicit):
    """``(l1, eps)``: the L1 distance between the law of the first L tokens (the emitted ones,
    continued by target sampling) over ``samples`` steps and the target's joint law, and the
    radius a lossless sampler exceeds with probability at most :data:`ALPHA`."""
    target_fn, draft_fn, ctx, trees = cases
    rng = np.random.default_rng([seed, 13])
    weights = np.array([w for *_, w in trees])
    rows = [(_rows(target_fn, ctx, pre), None if mode == "point" else _rows(draft_fn, ctx, pre))
            for _, _, pre, _ in trees]
    counts = np.zeros(V ** L)
    for k in rng.choice(len(trees), size=samples, p=weights / weights.sum()):
        parents, tokens, _, _ = trees[k]
        P, Q = rows[k]
        if explicit:
            e = fn(parents, tokens, P, Q, mode, rng.random(len(parents)), rng.random())
        else:
            e = fn(parents, tokens, P, Q, mode, rng)
        s = [int(t) for t in np.asarray(e).ravel()][:L]
        while len(s) < L:
            s.append(int(rng.choice(V, p=target_fn(ctx + tuple(s)))))
        counts[np.ravel_multi_index(tuple(s), (V,) * L)] += 1
    want = np.array([math.prod(target_fn(ctx + s[:t])[s[t]] for t in range(L))
                     for s in itertools.product(range(V), repeat=L)])
    eps = math.sqrt(2 * (V ** L * math.log(2) + math.log(1 / ALPHA)) / samples)
    return float(np.abs(counts / samples - want).sum()), eps


def sampler_cases(contract_name, fn, seed=0, samples=50_000):
    """``[(property, run)]``: one case per mode; ``run() -> (ok, err, bound, message)``."""
    explicit = contract_name == "speculative_sampler"

    def run(mode, s):
        cases = tree_cases(mode, s)
        target_fn, draft_fn, ctx, trees = cases
        if explicit:
            emission, constant = {}, True
            for parents, tokens, pre, w in trees:
                e, const = exact_emission(fn, parents, tokens, _rows(target_fn, ctx, pre),
                                          _rows(draft_fn, ctx, pre), mode)
                constant &= const
                for key, m in e.items():
                    emission[key] = emission.get(key, 0.0) + w * m
            if constant:
                err = lossless_error(emission, target_fn, ctx, V)
                return (err < EXACT_TOL, err, EXACT_TOL,
                        f"exact: max violation of (E) over {len(trees)} tree(s)")
            note = ("its output changes inside a box of the reference rule's decisions, so the "
                    "exact integration does not apply; statistical test: ")
        else:
            note = "statistical test: "
        l1, eps = statistical_l1(fn, cases, mode, samples, s, explicit)
        return (l1 <= eps, l1, eps, note + f"L1 distance of the first {L} tokens' law over "
                f"{samples} steps vs the radius for alpha = {ALPHA:g}")

    return [(f"{mode} trees", lambda m=mode: run(m, seed)) for mode in MODES]
