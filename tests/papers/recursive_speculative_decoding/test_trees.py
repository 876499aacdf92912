"""RSD-C, RSD-S and the baselines' trees: structure, hand reconstruction from the same noise,
draft cost, reproducibility (refseq/papers/recursive_speculative_decoding/rsd_trees.py and
baselines.py).

The hand reconstructions replay the generator's uniforms (``gumbel_noise`` draws
``rng.random(shape)``) and redo each level with Python sorting and the naive truncated-Gumbel
formula ``-log(exp(-T) - exp(-Z) + exp(-G'))``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.decoding.speculative.toy_result import toy_models
from refseq.papers.recursive_speculative_decoding import baselines, rsd_trees
from refseq.papers.recursive_speculative_decoding.baselines import (
    chain_tree,
    iid_tree,
    k_sequences_tree,
)
from refseq.papers.recursive_speculative_decoding.rsd_trees import (
    RSDTree,
    constant_branching_tree,
    draft_laws,
    stochastic_beam_tree,
)
from tests.papers.recursive_speculative_decoding.helpers import as_lm, node_paths, tables

TARGET, DRAFT = toy_models()  # V = 32, full support


class CountingLM:
    """Wraps a StepLM and counts ``start`` calls (batched draft forwards)."""

    def __init__(self, lm):
        self.lm, self.calls, self.vocab_size = lm, 0, lm.vocab_size

    def start(self, prompts):
        self.calls += 1
        return self.lm.start(prompts)


def law(lm, ctx, path):
    logits, _ = lm.start([np.array(list(ctx) + list(path), np.int64)])
    z = np.asarray(logits[0], np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def children(tree, u):
    return [int(c) for c in np.flatnonzero(tree.parents == u)]


def test_rsd_c_equals_a_hand_reconstruction_from_the_same_uniforms():
    ctx, root, br = [3], 7, (3, 2, 1)
    t = constant_branching_tree(DRAFT, ctx, root, br, rng=np.random.default_rng(5))
    rng = np.random.default_rng(5)
    parents, tokens, pert, paths, frontier = [-1], [root], [0.0], [()], [0]
    for b in br:
        U = rng.random((len(frontier), 32))
        new = []
        for f, u in enumerate(frontier):
            q = law(DRAFT, ctx + [root], paths[u])
            keys = [math.log(q[y]) - math.log(-math.log(U[f, y])) for y in range(32)]
            for y in sorted(range(32), key=lambda y: -keys[y])[:b]:
                parents.append(u)
                tokens.append(y)
                pert.append(keys[y])
                paths.append(paths[u] + (y,))
                new.append(len(tokens) - 1)
        frontier = new
    assert t.tree.parents.tolist() == parents and t.tree.tokens.tolist() == tokens
    np.testing.assert_allclose(t.perturbed, pert, rtol=1e-12, atol=1e-12)
    assert t.mode == "wor" and t.draft_calls == 3 and t.num_drafts == 3 + 6 + 6


def test_rsd_s_equals_a_hand_reconstruction_from_the_same_uniforms():
    ctx, root, W, L, V = [2], 4, 3, 3, 5
    lm = as_lm(tables(11, V=V, p_zero=0.3)[1])
    t = stochastic_beam_tree(lm, ctx, root, W, L, rng=np.random.default_rng(9))
    rng = np.random.default_rng(9)
    parents, tokens, G, phi, paths, beams = [-1], [root], [0.0], [0.0], [()], [0]
    for _ in range(L):
        U = rng.random((len(beams), V))
        cand = []
        for f, s in enumerate(beams):
            q = law(lm, ctx + [root], paths[s])
            raw = {y: phi[s] + math.log(q[y]) - math.log(-math.log(U[f, y]))
                   for y in range(V) if q[y] > 0}
            Z = max(raw.values())
            for y, g in raw.items():
                Gy = -math.log(math.exp(-G[s]) - math.exp(-Z) + math.exp(-g))
                cand.append((-Gy, f, y, phi[s] + math.log(q[y])))
        new = []
        for negG, f, y, ph in sorted(cand)[:W]:
            parents.append(beams[f])
            tokens.append(y)
            G.append(-negG)
            phi.append(ph)
            paths.append(paths[beams[f]] + (y,))
            new.append(len(tokens) - 1)
        beams = new
    assert t.tree.parents.tolist() == parents and t.tree.tokens.tolist() == tokens
    np.testing.assert_allclose(t.perturbed, G, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(t.logp, phi, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_rsd_s_structure(seed):
    V, W, L = 3, 4, 3
    Q = tables(seed, V=V, p_zero=0.4)[1]
    lm = CountingLM(as_lm(Q))
    t = stochastic_beam_tree(lm, [0], 1, W, L, rng=seed)
    tree, paths = t.tree, node_paths(t.tree)
    assert lm.calls == L == t.draft_calls  # one batched draft call per level
    assert t.num_drafts <= W * L and tree.max_depth <= L and t.perturbed[0] == 0.0
    prev = [0]
    for d in range(1, L + 1):
        level = [i for i in range(1, tree.num_nodes) if tree.depth[i] == d]
        n_cand = sum(int((Q[(0, 1, *paths[s])[-2] * V + (0, 1, *paths[s])[-1]] > 0).sum())
                     for s in prev)
        assert len(level) == min(W, n_cand)
        assert np.all(np.diff(t.perturbed[level]) <= 0)  # appended in global descending G
        prev = level
    for u in range(tree.num_nodes):
        kids = children(tree, u)
        toks = tree.tokens[kids].tolist()
        assert len(set(toks)) == len(toks)  # siblings are distinct
        assert np.all(np.diff(t.perturbed[kids]) <= 0)  # sampling order
        if kids:  # the first child is the parent's arg-max child: G(child) == G(parent)
            assert abs(t.perturbed[kids[0]] - t.perturbed[u]) <= 1e-12
            np.testing.assert_allclose(t.draft_probs[u], law(Q_lm := as_lm(Q), [0, 1],
                                                             paths[u]), atol=1e-12)
    assert Q_lm is not None


def test_rsd_c_structure_and_draft_cost():
    lm = CountingLM(DRAFT)
    t = constant_branching_tree(lm, [3], 7, (4, 2, 2), rng=0)
    assert lm.calls == 3 == t.draft_calls
    assert t.num_drafts == 4 + 8 + 16 and t.tree.max_depth == 3
    for u in range(t.tree.num_nodes):
        kids = children(t.tree, u)
        assert len(set(t.tree.tokens[kids].tolist())) == len(kids)
        assert np.all(np.diff(t.perturbed[kids]) <= 0)
        if kids:
            np.testing.assert_allclose(t.draft_probs[u].sum(), 1.0)
        else:
            assert not t.draft_probs[u].any()  # leaves: no law was read


def test_small_supports_give_fewer_children():
    Q = np.zeros((9, 3))
    Q[:, 2] = 1.0  # every context: only token 2 is possible
    lm = as_lm(Q)
    t = constant_branching_tree(lm, [0], 1, (3, 2), rng=0)
    assert t.tree.tokens.tolist() == [1, 2, 2] and t.tree.parents.tolist() == [-1, 0, 1]
    s = stochastic_beam_tree(lm, [0], 1, 4, 2, rng=0)
    assert s.tree.tokens.tolist() == [1, 2, 2]


def test_baselines_shapes_modes_and_costs():
    lm = CountingLM(DRAFT)
    t = iid_tree(lm, [3], 7, (2, 2, 1), rng=1)
    assert (t.mode, t.num_drafts, t.draft_calls, lm.calls) == ("iid", 10, 3, 3)
    k = k_sequences_tree(DRAFT, [3], 7, 4, 3, rng=1)
    assert (k.mode, k.num_drafts, k.draft_calls) == ("iid", 12, 3)
    assert [len(children(k.tree, u)) for u in range(k.tree.num_nodes)][:5] == [4, 1, 1, 1, 1]
    c = chain_tree(DRAFT, [3], 7, 5, rng=1)
    assert (c.mode, c.num_drafts, c.draft_calls, c.tree.max_depth) == ("iid", 5, 5, 5)
    assert np.isnan(t.perturbed[1:]).all() and t.perturbed[0] == 0.0


def test_iid_duplicates_stay_separate_nodes():
    Q = np.zeros((9, 3))
    Q[:, 0] = 1.0
    t = iid_tree(as_lm(Q), [0], 1, (3,), rng=0)
    assert t.tree.tokens.tolist() == [1, 0, 0, 0]  # three copies, never merged


def test_same_seed_same_tree_and_different_seeds_differ():
    for build in (lambda r: constant_branching_tree(DRAFT, [3], 7, (2, 2, 1), rng=r),
                  lambda r: stochastic_beam_tree(DRAFT, [3], 7, 4, 3, rng=r),
                  lambda r: iid_tree(DRAFT, [3], 7, (2, 2, 1), rng=r)):
        a, b, c = build(3), build(3), build(4)
        assert a.tree.tokens.tolist() == b.tree.tokens.tolist()
        np.testing.assert_array_equal(a.draft_probs, b.draft_probs)
        assert a.tree.tokens.tolist() != c.tree.tokens.tolist()


def test_draft_temperature_and_top_p_are_applied_before_sampling():
    q = draft_laws(DRAFT, [np.array([3, 7])], temperature=0.5, top_p=0.5)[0]
    t = constant_branching_tree(DRAFT, [3], 7, (8,), temperature=0.5, top_p=0.5, rng=0)
    np.testing.assert_array_equal(t.draft_probs[0], q)
    assert np.all(q[t.tree.tokens[1:]] > 0) and t.num_drafts == int((q > 0).sum()) < 8


class _Draft:
    """A StepLM-shaped draft (start only) with logits ``rows(R)`` and an optional vocab_size."""

    def __init__(self, rows=None, vocab_size=32):
        self.rows = rows or (lambda R: np.zeros((R, 32)))
        if vocab_size is not None:
            self.vocab_size = vocab_size

    def start(self, prompts):
        return self.rows(len(prompts)), None


@pytest.mark.parametrize("call, exc, match", [
    (lambda: constant_branching_tree(DRAFT, [3], 7, ()), TypeError, "branching"),
    (lambda: constant_branching_tree(DRAFT, [3], 7, (2, 0)), ValueError, "branching entries"),
    (lambda: constant_branching_tree(DRAFT, [3], 32, (2,)), ValueError, "root"),
    (lambda: constant_branching_tree(DRAFT, [3.0], 7, (2,)), TypeError, "context"),
    (lambda: constant_branching_tree(DRAFT, [40], 7, (2,)), ValueError, "context"),
    (lambda: constant_branching_tree(object(), [3], 7, (2,)), TypeError, "StepLM"),
    (lambda: constant_branching_tree(DRAFT, [3], 7, (2,), temperature=0), ValueError,
     "temperature"),
    (lambda: stochastic_beam_tree(DRAFT, [3], 7, 0, 2), ValueError, "beam_width"),
    (lambda: stochastic_beam_tree(DRAFT, [3], 7, 2, 2, top_p=1.5), ValueError, "top_p"),
    (lambda: stochastic_beam_tree(DRAFT, [3], 7, 2, 2, rng="x"), TypeError, "rng"),
    (lambda: k_sequences_tree(DRAFT, [3], 7, 0, 2), ValueError, "K"),
    (lambda: chain_tree(DRAFT, [3], 7, 2.5), TypeError, "K"),
    (lambda: chain_tree(_Draft(vocab_size=None), [3], 7, 2), TypeError, "draft.vocab_size"),
    (lambda: iid_tree(_Draft(lambda R: np.zeros((R, 5))), [3], 7, (2,)), ValueError,
     r"draft.start must return logits of shape \(R, V\) = \(1, 32\)"),
    (lambda: stochastic_beam_tree(_Draft(lambda R: np.full((R, 32), np.nan)), [3], 7, 2, 2),
     ValueError, "draft.start returned logits with NaN"),
    (lambda: draft_laws(DRAFT, [np.array([3, 40])]), ValueError, r"prefixes\[0\]"),
    (lambda: draft_laws(DRAFT, np.array([3, 7])), TypeError, "prefixes"),
    (lambda: draft_laws(DRAFT, []), ValueError, "prefixes"),
    (lambda: draft_laws(DRAFT, [[3]], temperature=0), ValueError, "temperature"),
    (lambda: draft_laws(None, [[3]]), TypeError, "lm"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_record_and_exports():
    t = constant_branching_tree(DRAFT, [], 7, (2,), rng=0)  # empty context is allowed
    assert isinstance(t, RSDTree) and t.num_drafts == 2
    assert "stochastic_beam_tree" in rsd_trees.__all__ and "iid_tree" in baselines.__all__
