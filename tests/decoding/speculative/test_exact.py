"""Losslessness of tree verification, proved exactly on tiny vocabularies
(refseq/decoding/speculative/exact.py; spec properties 5, 6, 7, 9, 10, 11).

The exact calculator integrates the acceptance uniforms analytically; equation (E) of the guide
(docs/speculative.md) is then an equality checked to 1e-12. Expected values come from hand
calculations, from the target tables themselves (the law (E) must reproduce), from the closed
forms of Leviathan et al. (chain length) and SpecInfer/SpecTr (multi-draft acceptance), written
here independently of the code under test. Negative controls (mode mismatches, merged or
grouped i.i.d. duplicates, Medusa's typical acceptance) must break (E); their seeds are fixed
below with the errors they gave.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.speculative.exact import (
    enumerate_sampled_trees,
    expected_emitted,
    lossless_error,
    mixture_emission,
    step_emission_distribution,
)
from refseq.decoding.speculative.tree import DraftTree
from refseq.testing.strategies import seeds

CTX = (0, 1)  # committed context; the root token is 1
EXACT = 1e-12


# --- helpers shared with test_verify.py ---------------------------------------------------------

def order2_tables(seed, V=3, p_zero=0.15):
    """Context-dependent target and draft: ``p(. | last two tokens)`` tables with some zeros."""
    rng = np.random.default_rng(seed)
    tabs = []
    for _ in range(2):
        T = rng.dirichlet(np.ones(V), size=V * V)  # (V*V, V)
        T[rng.random(T.shape) < p_zero] = 0.0
        T[T.sum(1) == 0, 0] = 1.0
        tabs.append(T / T.sum(1, keepdims=True))
    return tuple((lambda pre, T=T: T[pre[-2] * V + pre[-1]]) for T in tabs)


def node_paths(tree):
    """``path(i)``: the tokens strictly below the root down to node i."""
    out = [()]
    for i in range(1, tree.num_nodes):
        out.append(out[tree.parents[i]] + (int(tree.tokens[i]),))
    return out


def random_tree(rng, N, V, max_depth=None):
    """Random parents (topological) and tokens; duplicate siblings are frequent for small V."""
    parents, depth = [-1], [0]
    for i in range(1, N):
        ok = [j for j in range(i) if max_depth is None or depth[j] < max_depth]
        j = int(rng.choice(ok))
        parents.append(j)
        depth.append(depth[j] + 1)
    return DraftTree(np.array(parents), rng.integers(0, V, N))


def rows(fn, tree, ctx=CTX):
    return np.stack([fn(ctx + pre) for pre in node_paths(tree)])  # (N, V)


def emission_of(trees, target, draft, mode, ctx=CTX):
    return mixture_emission(trees, target, draft, ctx, mode)


# --- hand calculations --------------------------------------------------------------------------

def test_step_emission_single_child_by_hand():
    # a = min(1, 0.4 / 0.7) = 4/7; reject 3/7 -> residual max(p - q, 0) = [0.3, 0] -> token 0
    tree = DraftTree(np.array([-1, 0]), np.array([0, 1]))
    p = np.array([[0.6, 0.4], [0.9, 0.1]])
    q = np.array([[0.3, 0.7], [0.5, 0.5]])
    em = step_emission_distribution(tree, p, q, "iid")
    expected = {(1, 0): 4 / 7 * 0.9, (1, 1): 4 / 7 * 0.1, (0,): 3 / 7}
    assert em.keys() == expected.keys()
    for k, v in expected.items():
        assert em[k] == pytest.approx(v, abs=1e-15)
    assert expected_emitted(em) == pytest.approx(2 * 4 / 7 + 3 / 7, abs=1e-15)
    # point mode on the same tree: accept with p(1) = 0.4, else res(p, onehot(1)) = [1, 0]
    em = step_emission_distribution(tree, p, None, "point")
    assert em[(1, 0)] == pytest.approx(0.36) and em[(0,)] == pytest.approx(0.6)


def test_wor_second_sibling_renormalises_the_original_draft_by_hand():
    # q = [.5, .3, .2], children tokens 0 then 1, p = [.2, .35, .45].
    # a1 = .2/.5 = .4; P2 = [0, .05, .25]/.3 = [0, 1/6, 5/6]; Q2 = q without token 0 = [0, .6, .4]
    # a2 = (1/6)/.6 = 5/18 (the wrong Q2 = [0, .3, .2] or Q2 = q would give 5/9);
    # P3 = res(P2, Q2) = [0, 0, 1].
    tree = DraftTree(np.array([-1, 0, 0]), np.array([1, 0, 1]))
    p = np.array([[0.2, 0.35, 0.45], [1.0, 0, 0], [0, 0, 1.0]])
    q = np.array([[0.5, 0.3, 0.2], [1 / 3] * 3, [1 / 3] * 3])
    em = step_emission_distribution(tree, p, q, "wor")
    expected = {(0, 0): 0.4, (1, 2): 0.6 * 5 / 18, (2,): 0.6 * 13 / 18}
    assert em.keys() == expected.keys()
    for k, v in expected.items():
        assert em[k] == pytest.approx(v, abs=1e-15)


def test_bonus_false_emits_only_the_accepted_tokens():
    tree = DraftTree(np.array([-1, 0]), np.array([0, 1]))
    p = np.array([[0.6, 0.4], [0.9, 0.1]])
    q = np.array([[0.3, 0.7], [0.5, 0.5]])
    em = step_emission_distribution(tree, p, q, "iid", bonus=False)
    assert em == pytest.approx({(1,): 4 / 7, (0,): 3 / 7}, abs=1e-15)


def test_lossless_error_by_hand():
    p = {(): np.array([0.25, 0.75]), (0,): np.array([0.5, 0.5]), (1,): np.array([0.1, 0.9])}

    def target(pre):
        return p[pre[1:]]

    ctx = (7,)
    assert lossless_error({(0,): 0.25, (1,): 0.75}, target, ctx, 2) < EXACT
    exact2 = {(0, 0): 0.125, (0, 1): 0.125, (1, 0): 0.075, (1, 1): 0.675}
    assert lossless_error(exact2, target, ctx, 2) < EXACT
    # always emitting (1,) is off by 0.75 at s = (0,) (P = 0 vs p = 0.25 ... and 1 vs 0.75)
    assert lossless_error({(1,): 1.0}, target, ctx, 2) == pytest.approx(0.25)
    # a missing 0.1 of mass is reported
    assert lossless_error({(0,): 0.25, (1,): 0.65}, target, ctx, 2) == pytest.approx(0.1)


def test_enumerate_sampled_trees_by_hand():
    q = np.array([0.5, 0.3, 0.2])

    def draft(pre):
        return q

    iid = enumerate_sampled_trees((2,), draft, CTX, "iid")
    assert len(iid) == 9 and sum(pr for *_, pr in iid) == pytest.approx(1, abs=1e-15)
    probs = {tuple(t.tokens[1:]): pr for t, _, pr in iid}
    assert probs[(0, 2)] == pytest.approx(0.1) and probs[(1, 1)] == pytest.approx(0.09)
    wor = enumerate_sampled_trees((2,), draft, CTX, "wor")
    probs = {tuple(t.tokens[1:]): pr for t, _, pr in wor}
    assert len(wor) == 6 and probs[(0, 2)] == pytest.approx(0.5 * 0.2 / 0.5)
    assert probs[(2, 1)] == pytest.approx(0.2 * 0.3 / 0.8)
    # support of size 2: at most 2 children without replacement
    wor = enumerate_sampled_trees((3,), lambda pre: np.array([0.5, 0.5, 0.0]), CTX, "wor")
    assert sorted(tuple(t.tokens[1:]) for t, _, _ in wor) == [(0, 1), (1, 0)]
    # virtual duplicates are leaves: (2, 1) with a repeated first-level token has 3 nodes below
    virt = enumerate_sampled_trees((2, 1), draft, CTX, "iid", virtual=True)
    dup = [t for t, _, _ in virt if t.tokens[1] == t.tokens[2]]
    assert dup and all(t.num_nodes == 4 and t.virtual.tolist() == [False, False, True, False]
                       for t in dup)
    assert sum(pr for *_, pr in virt) == pytest.approx(1, abs=1e-14)


# --- property 5: point mode is exact on every fixed tree ----------------------------------------

def _point_error(seed):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 5))
    tree = random_tree(rng, int(rng.integers(1, 8)), V, max_depth=3)
    target, _ = order2_tables(seed, V, p_zero=0.3)
    em = step_emission_distribution(tree, rows(target, tree), None, "point")
    return lossless_error(em, target, CTX, V), tree


def test_point_mode_lossless_on_50_fixed_trees():
    dup = 0
    for seed in range(50):
        err, tree = _point_error(seed)
        assert err < EXACT, seed
        kids = [tuple(tree.tokens[tree.parents == i]) for i in range(tree.num_nodes)]
        dup += any(len(set(k)) < len(k) for k in kids)
    assert dup >= 10  # duplicate siblings were exercised


@given(seeds())
def test_point_mode_lossless_on_random_trees(seed):
    assert _point_error(seed)[0] < EXACT


# --- property 6: sampled trees verified by the matching rule ------------------------------------

BRANCHINGS = [(2, 1), (3, 2), (1, 1, 1), (2, 2), (3, 1)]
RULES = [("iid", "iid", False), ("iid", "iid", True), ("wor", "wor", False),
         ("iid", "point", False), ("wor", "point", False)]
# (seed, p_zero): sparse tables keep (3, 2) small (1000 and 125 i.i.d. trees); the dense one has
# a full-support root draft (10648 i.i.d. (3, 2) trees: slow)
TABLES = [(1, 0.3), (6, 0.3), (4, 0.15)]


def _slow_if(cond):
    return [pytest.mark.slow] if cond else []


@pytest.mark.parametrize("branching,drawn,rule,virtual,seed,p_zero", [
    pytest.param(b, *r, *t, marks=_slow_if(b == (3, 2) and t[1] == 0.15 and r[0] == "iid"),
                 id=f"{b}-{r[0]}-trees-{r[1]}-rule{'-virtual' if r[2] else ''}-seed{t[0]}")
    for b in BRANCHINGS for r in RULES for t in TABLES])
def test_sampled_trees_lossless(branching, drawn, rule, virtual, seed, p_zero):
    target, draft = order2_tables(seed, p_zero=p_zero)
    trees = enumerate_sampled_trees(branching, draft, CTX, drawn, virtual=virtual)
    em = emission_of(trees, target, draft, rule)
    assert lossless_error(em, target, CTX, 3) < EXACT
    assert 1 < expected_emitted(em) <= len(branching) + 1


def test_matching_rule_accepts_more_than_point():
    target, draft = order2_tables(1)
    for drawn in ("iid", "wor"):
        trees = enumerate_sampled_trees((2, 2), draft, CTX, drawn)
        assert (expected_emitted(emission_of(trees, target, draft, drawn))
                > expected_emitted(emission_of(trees, target, draft, "point")) + 0.05)


# --- property 7: negative controls --------------------------------------------------------------

def _merged(trees):
    """Trie-merge each tree's paths (``DraftTree.from_paths``): what a trie drafter would do."""
    out = []
    for tree, pre, pr in trees:
        m = DraftTree.from_paths(int(tree.tokens[0]), pre[1:])
        out.append((m, node_paths(m), pr))
    return out


def _grouped(trees):
    """One-level trees with each later duplicate moved right after its first copy."""
    out = []
    for tree, _, pr in trees:
        toks = [int(t) for t in tree.tokens[1:]]
        order = sorted(range(len(toks)), key=lambda j: (toks.index(toks[j]), j))
        g = DraftTree(tree.parents, np.r_[tree.tokens[0], [toks[j] for j in order]])
        out.append((g, node_paths(g), pr))
    return out


# (control, seed, branching, error observed when the seed was fixed)
CONTROLS = [("wor trees, iid rule", 4, (3,), 0.1323), ("iid trees, wor rule", 4, (3,), 0.0591),
            ("iid duplicates merged", 0, (3, 1), 0.0956),
            ("iid duplicates grouped", 4, (3,), 0.0591)]


@pytest.mark.parametrize("control,seed,branching,observed", CONTROLS)
def test_negative_controls_break_losslessness(control, seed, branching, observed):
    target, draft = order2_tables(seed)
    drawn, rule = ("wor", "iid") if control.startswith("wor") else ("iid", "iid")
    trees = enumerate_sampled_trees(branching, draft, CTX, drawn)
    if control == "iid trees, wor rule":
        rule = "wor"
    elif control.endswith("merged"):
        trees = _merged(trees)
    elif control.endswith("grouped"):
        trees = _grouped(trees)
    err = lossless_error(emission_of(trees, target, draft, rule), target, CTX, 3)
    assert err > 1e-3
    assert err == pytest.approx(observed, rel=0.01)


def test_typical_acceptance_is_lossy():
    target, _ = order2_tables(0)
    tree = DraftTree(np.array([-1, 0, 1]), np.array([1, 1, 2]))  # a 3-node chain
    em = step_emission_distribution(tree, rows(target, tree), None, "typical")
    assert lossless_error(em, target, CTX, 3) > 0.5  # 0.921 when fixed


# --- property 9: chain length formula -----------------------------------------------------------

@given(seeds(), st.integers(1, 4))
def test_chain_expected_length_formula(seed, K):
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3))
    alpha = np.minimum(p, q).sum()  # 1 - TV(p, q)
    trees = enumerate_sampled_trees((1,) * K, lambda pre: q, CTX, "iid")
    em = mixture_emission(trees, lambda pre: p, lambda pre: q, CTX, "iid")
    assert expected_emitted(em) == pytest.approx((1 - alpha ** (K + 1)) / (1 - alpha), abs=1e-12)


# --- property 10: per-child proposals -----------------------------------------------------------

def _per_child_error(seed, proposals="per-child"):
    rng = np.random.default_rng(seed)
    V = 3
    target, _ = order2_tables(seed + 1000, V)
    q1, q2 = rng.dirichlet(np.ones(V)), rng.dirichlet(np.ones(V))
    em = {}
    for y1 in range(V):
        for y2 in range(V):
            tree = DraftTree(np.array([-1, 0, 0]), np.array([CTX[-1], y1, y2]))
            p = rows(target, tree)
            if proposals == "per-child":
                out = step_emission_distribution(tree, p, None, "iid",
                                                 child_draft_probs=np.stack([q1, q1, q2]))
            else:  # both children tested as if drawn from q1
                out = step_emission_distribution(tree, p, np.stack([q1] * 3), "iid")
            for e, m in out.items():
                em[e] = em.get(e, 0.0) + q1[y1] * q2[y2] * m
    return lossless_error(em, target, CTX, V)


def test_per_child_proposals_lossless():
    assert max(_per_child_error(seed) for seed in range(20)) < EXACT


def test_per_child_with_shared_proposal_is_biased():
    assert _per_child_error(3, proposals="shared") > 0.1  # 0.158 when fixed


# --- property 11: multi-draft acceptance ----------------------------------------------------------

def _accept_prob(p, q, K, mode):
    trees = enumerate_sampled_trees((K,), lambda pre: q, CTX, mode)
    em = mixture_emission(trees, lambda pre: p, lambda pre: q, CTX, mode)
    return sum(m for e, m in em.items() if len(e) == 2)  # an accepted draft, then the bonus


@given(seeds(), st.integers(1, 3))
def test_multidraft_acceptance_formula_and_wor_dominates(seed, K):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 5))
    p, q = rng.dirichlet(np.ones(V)), rng.dirichlet(np.ones(V))
    P, reject = p.copy(), 1.0
    for _ in range(K):  # iid: the residual after a rejection does not depend on the token
        reject *= 1 - np.minimum(P, q).sum()
        d = np.maximum(P - q, 0)
        P = d / d.sum() if d.sum() > 0 else P
    iid = _accept_prob(p, q, K, "iid")
    assert iid == pytest.approx(1 - reject, abs=1e-12)
    assert _accept_prob(p, q, K, "wor") >= iid - 1e-12


def test_enumerated_probabilities_and_mixture_mass_sum_to_one():
    target, draft = order2_tables(1)
    for mode in ("iid", "wor"):
        trees = enumerate_sampled_trees((2, 2), draft, CTX, mode)
        assert math.fsum(pr for *_, pr in trees) == pytest.approx(1, abs=1e-13)
        assert math.fsum(emission_of(trees, target, draft, mode).values()) == pytest.approx(
            1, abs=1e-13)
