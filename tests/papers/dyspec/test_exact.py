"""Exactness of DySpec's dynamic trees under without-replacement verification (properties 1 and 2):
enumerate every sampler outcome on V = 3, weight each tree by the product of its drawn residual
probabilities, mix the exact per-tree emission laws of the core's calculator and check equation
(E) of the guide to 1e-12. Negative controls: the same trees under the i.i.d. rule, with
siblings sorted by token id, and pruned by realised value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.decoding.speculative.exact import lossless_error, mixture_emission
from refseq.decoding.speculative.tree import DraftTree
from refseq.papers.dyspec import samplers
from refseq.papers.dyspec.draft import CallableDraft
from refseq.papers.dyspec.heap import build_tree_greedy
from refseq.papers.dyspec.threshold import build_tree_threshold
from tests.papers.dyspec.helpers import table_fn, triples

V, CTX = 3, (1, 2)


def _greedy(draft_fn, budget):
    return samplers.enumerate_outcomes(
        lambda s: build_tree_greedy(CallableDraft(draft_fn, V), CTX[:-1], CTX[-1], budget,
                                    sampler=s))


def _threshold(draft_fn, t, cap=5):
    return samplers.enumerate_outcomes(
        lambda s: build_tree_threshold(CallableDraft(draft_fn, V), CTX[:-1], CTX[-1], t,
                                       max_nodes=cap, sampler=s))


def _error(outcomes, target_fn, draft_fn, mode="wor", bonus=True):
    mix = mixture_emission(triples(outcomes), target_fn, draft_fn, CTX, mode, bonus=bonus)
    return lossless_error(mix, target_fn, CTX, V)


@pytest.mark.parametrize("seed", [0, 3, 5])
@pytest.mark.parametrize("budget", [2, 3, 4])
def test_algorithm1_is_lossless(seed, budget):
    target_fn, draft_fn = table_fn(seed, kind=0), table_fn(seed, kind=1)
    outcomes = _greedy(draft_fn, budget)
    assert math.isclose(sum(p for _, p in outcomes), 1.0, abs_tol=1e-12)
    # each tree once: distinct node-token paths per outcome
    keys = [tuple(r.prefixes) for r, _ in outcomes]
    assert len(set(keys)) == len(keys)
    assert _error(outcomes, target_fn, draft_fn) < 1e-12
    assert _error(outcomes, target_fn, draft_fn, bonus=False) < 1e-12  # Algorithm 3 as listed


@pytest.mark.parametrize("seed", [3, 5])
@pytest.mark.parametrize("t", [0.3, 0.15])
def test_algorithm2_is_lossless(seed, t):
    target_fn, draft_fn = table_fn(seed, kind=0), table_fn(seed, kind=1)
    outcomes = _threshold(draft_fn, t)
    assert math.isclose(sum(p for _, p in outcomes), 1.0, abs_tol=1e-12)
    assert all(r.tree.num_nodes - 1 <= 5 for r, _ in outcomes)
    assert _error(outcomes, target_fn, draft_fn) < 1e-12


def test_enumeration_probabilities_by_hand():
    """Budget 2, context-free q = (0.5, 0.3, 0.2). The root's first slot (value 1) draws y; then
    the child's slot (value q(y)) competes with the sibling slot (value 1 - q(y)). For y = 0 both
    are 0.5: the sibling slot was pushed first and wins the tie."""
    q = np.array([0.5, 0.3, 0.2])
    got = {tuple(r.prefixes): p for r, p in _greedy(lambda seq: q, 2)}
    want = {((), (0,), (1,)): 0.5 * 0.6, ((), (0,), (2,)): 0.5 * 0.4,
            ((), (1,), (0,)): 0.3 * 5 / 7, ((), (1,), (2,)): 0.3 * 2 / 7,
            ((), (2,), (0,)): 0.2 * 5 / 8, ((), (2,), (1,)): 0.2 * 3 / 8}
    assert got.keys() == want.keys()
    for k, p in want.items():
        assert got[k] == pytest.approx(p, rel=1e-12)


def test_iid_rule_on_dyspec_trees_is_biased():
    """Negative control: the i.i.d. acceptance rule on without-replacement trees breaks (E).
    The rules differ only where two tokens have p > q (seed 5 has such a root; seeds 0-2 do
    not, and there every rule is exact)."""
    errs = [_error(_greedy(table_fn(s, kind=1, zero_prob=0.0), 3), table_fn(s, zero_prob=0.0),
                   table_fn(s, kind=1, zero_prob=0.0), mode="iid") for s in (3, 5)]
    assert max(errs) > 1e-3


def test_sorting_siblings_by_token_is_biased():
    """Negative control: the same trees with siblings in token order (a trie) instead of draw
    order break (E) under the without-replacement rule."""
    errs = []
    for s in (3, 5):
        target_fn, draft_fn = table_fn(s, zero_prob=0.0), table_fn(s, kind=1, zero_prob=0.0)
        sorted_trees = []
        for r, p in _greedy(draft_fn, 3):
            t = DraftTree.from_paths(CTX[-1], [list(x) for x in r.prefixes[1:]])
            pre = [()]
            for i in range(1, t.num_nodes):
                pre.append(pre[t.parents[i]] + (int(t.tokens[i]),))
            sorted_trees.append((t, pre, p))
        mix = mixture_emission(sorted_trees, target_fn, draft_fn, CTX, "wor")
        errs.append(lossless_error(mix, target_fn, CTX, V))
    assert max(errs) > 1e-3


def test_pruning_by_realised_value_needs_point_mode():
    """Trap: dropping drawn nodes whose realised value is small (top-k re-ranking) biases the
    without-replacement rule; the point rule stays exact on the pruned trees."""
    wor, point = [], []
    for s in (3, 5):
        target_fn, draft_fn = table_fn(s, zero_prob=0.0), table_fn(s, kind=1, zero_prob=0.0)
        pruned = []
        for r, p in _greedy(draft_fn, 3):
            keep = [i for i in range(r.tree.num_nodes)
                    if i == 0 or r.node_value[i] >= 0.25]  # realised values: after the draw
            keep = [i for i in keep if all(a in keep for a in _ancestors(r.tree, i))]
            idx = {old: k for k, old in enumerate(keep)}
            t = DraftTree(np.array([-1] + [idx[int(r.tree.parents[i])] for i in keep[1:]]),
                          r.tree.tokens[keep])
            pruned.append((t, [r.prefixes[i] for i in keep], p))
        for mode, acc in (("wor", wor), ("point", point)):
            mix = mixture_emission(pruned, target_fn, draft_fn, CTX, mode)
            acc.append(lossless_error(mix, target_fn, CTX, V))
    assert max(wor) > 1e-3
    assert max(point) < 1e-12


def _ancestors(tree, i):
    out = []
    while tree.parents[i] >= 0:
        i = int(tree.parents[i])
        out.append(i)
    return out
