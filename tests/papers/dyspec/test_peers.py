"""Peers. Sequoia (Infini-AI-Lab/Sequoia) as a NumPy port of ``SpecTree.accept_step`` and
``sampling_without_replacement`` (tests/papers/dyspec/sequoia_port.py): identical accepted
paths and next-token laws on DySpec trees, and Sequoia's exponential-race sampler has the law of
DySpec's sequential residual draws. EAGLE-2-style trees (deterministic top-k plus re-ranking by
cumulative draft probability; own code): exact under the ``point`` rule, biased under ``wor``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from refseq.decoding.speculative.exact import lossless_error, step_emission_distribution
from refseq.decoding.speculative.tree import DraftTree
from refseq.decoding.speculative.verify import verify_tree_stochastic
from refseq.papers.dyspec.draft import CallableDraft
from refseq.papers.dyspec.heap import build_tree_greedy
from refseq.papers.dyspec.samplers import InverseCdfSampler, inverse_cdf
from tests.papers.dyspec import sequoia_port
from tests.papers.dyspec.helpers import table_fn


def test_sequoia_accept_step_matches_wor_verification():
    V, rng = 6, np.random.default_rng(0)
    target_fn, draft_fn = table_fn(2, V=V), table_fn(2, V=V, kind=1)
    same_path = same_next = 0
    for k in range(200):
        res = build_tree_greedy(CallableDraft(draft_fn, V), [k % V], 1, 12,
                                sampler=InverseCdfSampler(k), lazy=False)
        t = res.tree
        p = np.stack([target_fn((k % V, 1) + pre) for pre in res.prefixes])
        with np.errstate(divide="ignore"):
            logits = np.log(res.draft_probs)  # softmax(logits / 1) = the draft row
        u, uf = rng.random(t.num_nodes), rng.random()
        ours = verify_tree_stochastic(t, p, res.draft_probs, "wor", u, uf)
        kids = [t.children(i).tolist() for i in range(t.num_nodes)]
        accept, residual = sequoia_port.verify(kids, t.tokens, p, logits, u)
        same_path += accept == ours.path.tolist()
        if np.isfinite(residual).all():  # Sequoia's NaN stop on an empty residual excepted
            same_next += inverse_cdf(residual, uf) == ours.next_token
        else:
            same_next += 1
    assert same_path == 200 and same_next == 200


def test_sequoia_sampler_has_the_law_of_sequential_residual_draws():
    """Ordered pairs of Sequoia's top-2 of log(u)/q against the exact law of two sequential
    without-replacement draws, q(a) q(b) / (1 - q(a)): chi-square over the 12 pairs."""
    stats = pytest.importorskip("scipy.stats")
    q, n = np.array([0.4, 0.3, 0.2, 0.1]), 20000
    rand = np.random.default_rng(0).random((n, 4))
    keys = np.log(rand) / q
    top = np.argsort(-keys, axis=1)[:, :2]
    assert sequoia_port.sampling_without_replacement(q, rand[0], 2).tolist() == top[0].tolist()
    pairs = list(itertools.permutations(range(4), 2))
    counts = np.array([np.sum((top[:, 0] == a) & (top[:, 1] == b)) for a, b in pairs])
    exact = np.array([q[a] * q[b] / (1 - q[a]) for a, b in pairs])
    assert exact.sum() == pytest.approx(1.0)
    assert stats.chisquare(counts, n * exact).pvalue > 1e-4


def _eagle_tree(draft_fn, ctx, k=2, depth=2, keep=4):
    """EAGLE-2-style: expand the top-k draft tokens of every node to ``depth``, then keep the
    ``keep`` nodes of largest cumulative draft probability (with their ancestors)."""
    nodes = [((), 1.0)]
    frontier = [((), 1.0)]
    for _ in range(depth):
        nxt = []
        for pre, v in frontier:
            row = draft_fn(ctx + pre)
            for y in np.argsort(-row, kind="stable")[:k]:
                nxt.append((pre + (int(y),), v * row[y]))
        nodes += nxt
        frontier = nxt
    best = sorted(nodes[1:], key=lambda nv: -nv[1])[:keep]
    paths = {pre for pre, _ in best}
    paths = sorted({pre[:j] for pre in paths for j in range(1, len(pre) + 1)},
                   key=lambda s: (len(s), s))
    tree = DraftTree.from_paths(ctx[-1], [list(s) for s in paths])
    pre = [()]
    for i in range(1, tree.num_nodes):
        pre.append(pre[tree.parents[i]] + (int(tree.tokens[i]),))
    return tree, pre


def test_eagle_style_deterministic_trees_need_point_mode():
    errs = {"point": [], "wor": []}
    ctx = (1, 2)
    for s in (3, 5):
        target_fn, draft_fn = table_fn(s, zero_prob=0.0), table_fn(s, kind=1, zero_prob=0.0)
        tree, pre = _eagle_tree(draft_fn, ctx)
        p = np.stack([target_fn(ctx + x) for x in pre])
        q = np.stack([draft_fn(ctx + x) for x in pre])
        for mode in errs:
            emission = step_emission_distribution(tree, p, q, mode)
            errs[mode].append(lossless_error(emission, target_fn, ctx, 3))
    assert max(errs["point"]) < 1e-12
    assert max(errs["wor"]) > 1e-3
