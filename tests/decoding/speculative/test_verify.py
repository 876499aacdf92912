"""Greedy, stochastic and typical verification (refseq/decoding/speculative/verify.py; spec
properties 4, 8, 9, 10, 11, 12 and the verification traps).

Expected values come from hand calculations with chosen uniforms, from second formulations
written here (a path enumeration independent of ``tree.py``, a NumPy port of Medusa's
``evaluate_posterior``, the chain written as a tree) and, for the stochastic walk, from the
exact calculator by a Monte Carlo chi-square test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chisquare

from refseq.decoding.sampling import warped_probs
from refseq.decoding.speculative.exact import step_emission_distribution
from refseq.decoding.speculative.greedy import (
    verify_greedy_chain,
    verify_greedy_paths,
    verify_greedy_tree,
)
from refseq.decoding.speculative.tree import DraftTree
from refseq.decoding.speculative.verify import (
    MODES,
    residual,
    speculative_sample_chain,
    typical_acceptance,
    verify,
    verify_multidraft,
    verify_tree_stochastic,
)
from refseq.testing.strategies import seeds
from tests.decoding.speculative.test_exact import random_tree


def emitted(res):
    toks = [int(t) for t in res.accepted_tokens]
    return tuple(toks + ([res.next_token] if res.next_token >= 0 else []))


def paths_of(tree):
    """Retrieve buffer built here: one row per leaf (index order), padded with -1."""
    has_child = np.zeros(tree.num_nodes, bool)
    has_child[tree.parents[1:]] = True
    rows = []
    for leaf in np.flatnonzero(~has_child):
        chain = [int(leaf)]
        while chain[-1] != 0:
            chain.append(int(tree.parents[chain[-1]]))
        rows.append(chain[::-1])
    D = max(len(r) for r in rows)
    R = np.full((len(rows), D), -1, np.int64)
    for k, r in enumerate(rows):
        R[k, :len(r)] = r
    return R, np.array([len(r) for r in rows])


def dirichlet_rows(rng, N, V, zeros=0.0):
    P = rng.dirichlet(np.ones(V), size=N)  # (N, V)
    P[rng.random(P.shape) < zeros] = 0.0
    P[P.sum(1) == 0, 0] = 1.0
    return P / P.sum(1, keepdims=True)


# --- greedy ---------------------------------------------------------------------------------------

def test_greedy_tree_by_hand():
    # root(5) -> 1:3, 2:4, 3:3 (duplicate); 1 -> 4:7; 2 -> 5:2
    tree = DraftTree(np.array([-1, 0, 0, 0, 1, 2]), np.array([5, 3, 4, 3, 7, 2]))
    res = verify_greedy_tree(tree, np.array([4, 7, 2, 0, 0, 0]))
    assert res.path.tolist() == [0, 2, 5] and res.accepted_tokens.tolist() == [4, 2]
    assert res.next_token == 0 and res.num_accepted == 2
    # off-by-one trap: child c is tested with its parent's arg-max, not its own
    res = verify_greedy_tree(tree, np.array([3, 9, 9, 9, 9, 9]))
    assert res.path.tolist() == [0, 1] and res.next_token == 9
    # root convention: the root token is never emitted; no match -> the root's arg-max
    res = verify_greedy_tree(tree, np.array([6, 7, 2, 0, 0, 0]))
    assert res.path.tolist() == [0] and emitted(res) == (6,)


def test_greedy_tree_never_accepts_virtual_nodes():
    tree = DraftTree(np.array([-1, 0, 0]), np.array([0, 1, 1]), np.array([False, False, True]))
    assert verify_greedy_tree(tree, np.array([1, 2, 0])).path.tolist() == [0, 1]


def prefix_argmax(tree, V, seed):
    """A target whose arg-max depends on the node's token path only (as a real model's does):
    duplicate siblings get the same arg-max."""
    paths = [()]
    for i in range(1, tree.num_nodes):
        paths.append(paths[tree.parents[i]] + (int(tree.tokens[i]),))
    return np.array([np.random.default_rng([seed, len(x), *x]).integers(0, V) for x in paths])


@given(seeds(), st.booleans())
def test_paths_agree_with_tree_walk(seed, trie):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(1, 4))  # small V: duplicate siblings and token 0 are frequent
    tree = random_tree(rng, int(rng.integers(1, 15)), V)
    if trie:  # no duplicate siblings
        tree = DraftTree.from_paths(int(tree.tokens[0]), [tuple(int(t) for t in
                                    tree.tokens[R[1:L]]) for R, L in zip(*paths_of(tree))])
    am = prefix_argmax(tree, V, seed)
    R, lens = paths_of(tree)
    acc, best, last = verify_greedy_paths(R, lens, tree.tokens, am)
    res = verify_greedy_tree(tree, am)
    from_paths = tuple(int(t) for t in tree.tokens[R[best, 1:acc[best] + 1]]) + (int(am[last]),)
    assert best == int(np.flatnonzero(acc == acc.max())[0])
    for p in range(len(R)):  # brute force: the count of leading matches
        k = 0
        while k + 1 < lens[p] and tree.tokens[R[p, k + 1]] == am[R[p, k]]:
            k += 1
        assert acc[p] == k
    if trie:
        assert from_paths == emitted(res) and acc[best] == res.num_accepted
    else:
        # the walk takes the first matching duplicate; a later duplicate's subtree may accept
        # more, which the path form finds: both are prefixes of the greedy continuation
        assert acc[best] >= res.num_accepted
        assert from_paths[:len(emitted(res))] == emitted(res)


def test_padding_never_matches_even_when_argmax_is_token_zero():
    # path 0 = [0, 1] (length 2, padded), path 1 = [0, 2, 3]; the arg-max after node 1 is 0,
    # node 3 (what index -1 would read) has token 0, and Medusa's dummy padding token is 0 too
    R = np.array([[0, 1, -1], [0, 2, 3]])
    lens = np.array([2, 3])
    tokens = np.array([9, 4, 5, 0])
    am = np.array([4, 0, 1, 0])
    acc, best, last = verify_greedy_paths(R, lens, tokens, am)
    assert acc.tolist() == [1, 0] and best == 0 and last == 1


def test_greedy_chain_by_hand_and_as_tree():
    assert verify_greedy_chain(np.array([3, 1, 4]), np.array([3, 1, 5, 9])) == (2, 5)
    assert verify_greedy_chain(np.array([3, 1, 4]), np.array([3, 1, 4, 9])) == (3, 9)
    assert verify_greedy_chain(np.array([], np.int64), np.array([7])) == (0, 7)
    res = verify_greedy_tree(DraftTree.chain(8, [3, 1, 4]), np.array([3, 1, 5, 9]))
    assert (res.num_accepted, res.next_token) == (2, 5)


# --- residual -------------------------------------------------------------------------------------

def test_residual_by_hand_and_edge_cases():
    r = residual(np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.6, 0.2]))
    assert r.tolist() == pytest.approx([1.0, 0.0, 0.0])
    p = np.array([0.1, 0.6, 0.3])
    assert np.array_equal(residual(p, p), p)  # zero clipped mass: fall back to p
    q = p * (1 + 1e-12)  # p <= q everywhere by rounding: still p, never NaN
    assert np.array_equal(residual(p, q), p)
    r32 = residual(p.astype(np.float32), np.array([0.3, 0.3, 0.4], np.float32))
    assert r32.dtype == np.float64 and abs(r32.sum() - 1) < 1e-12


@given(seeds())
def test_residual_sums_to_one_and_zeroes_rejected_wor_tokens(seed):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 9))
    p, q = dirichlet_rows(rng, 2, V, zeros=0.3)
    r = residual(p, q)
    assert abs(r.sum() - 1) < 1e-12 and (r >= 0).all()
    y = int(np.argmax(q - p))  # a token with q(y) >= p(y): rejected for every u >= p/q
    if q[y] >= p[y] and not np.array_equal(r, p):
        assert r[y] == 0.0


def test_zero_mass_residual_in_the_walk_stays_on_p():
    # P = [.5, .5], Q = [.5, .5 + 1e-12]: u * Q(1) >= P(1) rejects, max(P - Q, 0) == 0
    tree = DraftTree(np.array([-1, 0]), np.array([0, 1]))
    p = np.array([[0.5, 0.5], [0.5, 0.5]])
    q = np.array([[0.5, 0.5 + 1e-12], [0.5, 0.5]])
    res = verify_tree_stochastic(tree, p, q, "iid", np.array([0.0, 1 - 2**-40]), 0.75)
    assert res.num_accepted == 0 and res.next_token == 1


# --- stochastic: hand cases and traps -------------------------------------------------------------

def test_stochastic_off_by_one_and_bonus_row():
    # chain 1 -> 2 under root 0; p_0 wants token 1, p_1 wants token 2, p_2 is onehot(0)
    tree = DraftTree.chain(0, [1, 2])
    p = np.eye(3)[[1, 2, 0]]
    for mode in MODES:
        res = verify_tree_stochastic(tree, p, np.full((3, 3), 1 / 3), mode,
                                     np.full(3, 0.99), 0.5)
        assert res.path.tolist() == [0, 1, 2] and emitted(res) == (1, 2, 0)
    res = verify_tree_stochastic(tree, p, None, "point", np.zeros(3), 0.5, bonus=False)
    assert emitted(res) == (1, 2) and res.next_token == -1


def test_wor_renormalises_the_original_draft():
    # see test_exact.test_wor_second_sibling_renormalises_the_original_draft_by_hand:
    # child 2 is accepted iff u < 5/18 = 0.278 (wrong normalisations would give 5/9 = 0.556)
    tree = DraftTree(np.array([-1, 0, 0]), np.array([1, 0, 1]))
    p = np.array([[0.2, 0.35, 0.45], [1.0, 0, 0], [0, 0, 1.0]])
    q = np.array([[0.5, 0.3, 0.2], [1 / 3] * 3, [1 / 3] * 3])
    for u2, path, out in [(0.27, [0, 2], (1, 2)), (0.4, [0], (2,))]:
        res = verify_tree_stochastic(tree, p, q, "wor", np.array([0, 0.9, u2]), 0.5)
        assert res.path.tolist() == path and emitted(res) == out


def test_wor_stops_when_the_draft_mass_is_used_up():
    # q_0 has support {0}: after child 1 (token 0) is rejected no sibling can exist; child 2
    # would be accepted by any rule that kept testing
    tree = DraftTree(np.array([-1, 0, 0]), np.array([0, 0, 1]))
    p = np.array([[0.1, 0.9], [0.5, 0.5], [0.5, 0.5]])
    q = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    res = verify_tree_stochastic(tree, p, q, "wor", np.array([0, 0.5, 0.0]), 0.05)
    assert res.path.tolist() == [0] and res.next_token == 1  # residual = onehot(1)


def test_final_draw_is_the_inverse_cdf_and_skips_zero_tokens():
    tree = DraftTree(np.array([-1]), np.array([0]))
    p = np.array([[0.25, 0.0, 0.5, 0.25]])
    for u, tok in [(0.0, 0), (0.2499, 0), (0.25, 2), (0.7499, 2), (0.75, 3), (1 - 2**-53, 3)]:
        assert verify_tree_stochastic(tree, p, None, "point", np.zeros(1), u).next_token == tok


@given(seeds(), st.sampled_from(MODES))
def test_greedy_limit_one_hot_targets(seed, mode):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(1, 5))
    tree = random_tree(rng, int(rng.integers(1, 12)), V)
    am = rng.integers(0, V, tree.num_nodes)
    q = dirichlet_rows(rng, tree.num_nodes, V)  # full support: any tree is a possible draw
    res = verify_tree_stochastic(tree, np.eye(V)[am], q, mode, rng.random(tree.num_nodes),
                                 rng.random())
    assert emitted(res) == emitted(verify_greedy_tree(tree, am))


@given(seeds())
def test_chain_rule_equals_the_tree_walk(seed):
    rng = np.random.default_rng(seed)
    V, K = int(rng.integers(2, 5)), int(rng.integers(0, 5))
    y = rng.integers(0, V, K)
    p, q = dirichlet_rows(rng, K + 1, V, 0.3), dirichlet_rows(rng, K + 1, V, 0.3)
    u, uf = rng.random(K + 1), rng.random()
    m, nxt = speculative_sample_chain(y, q[:K], p, u[1:], uf)
    res = verify_tree_stochastic(DraftTree.chain(0, y), p, q, "iid", u, uf)
    assert (m, nxt) == (res.num_accepted, res.next_token)
    # p == q: every draft is accepted and the step emits K + 1 tokens
    m, _ = speculative_sample_chain(y, p[:K], p, u[1:], uf)
    assert m == K or p[m, y[m]] == 0


def test_chain_rule_by_hand():
    p = np.array([[0.6, 0.4], [0.9, 0.1]])
    q = np.array([[0.3, 0.7]])
    # accept iff u * 0.7 < 0.4, i.e. u < 4/7 = 0.5714; otherwise residual [1, 0] -> token 0
    assert speculative_sample_chain(np.array([1]), q, p, np.array([0.57]), 0.95) == (1, 1)
    assert speculative_sample_chain(np.array([1]), q, p, np.array([0.58]), 0.95) == (0, 0)


def test_virtual_duplicate_keeps_its_residual_update():
    # root children 1:a=0, 2:a (duplicate), 3:b=2; p0 = [.1, .3, .6], q0 = [.4, .1, .5].
    # after a is rejected P2 = res(p0, q0) = [0, 2/3, 1/3]; the duplicate (P2(a) = 0, never
    # accepted) updates P3 = res(P2, q0) = [0, 1, 0], so b is rejected and token 1 follows.
    # Merging the duplicate away tests b against P2: accepted iff u < (1/3)/.5 = 2/3.
    p0, q0 = np.array([0.1, 0.3, 0.6]), np.array([0.4, 0.1, 0.5])
    p, q = np.tile(p0, (4, 1)), np.tile(q0, (4, 1))
    u = np.array([0, 0.99, 0.0, 0.5])
    flags = np.array([False, False, True, False])
    for virtual in (flags, None):
        tree = DraftTree(np.array([-1, 0, 0, 0]), np.array([1, 0, 0, 2]), virtual)
        res = verify_tree_stochastic(tree, p, q, "iid", u, 0.3)
        assert res.path.tolist() == [0] and res.next_token == 1
    merged = DraftTree(np.array([-1, 0, 0]), np.array([1, 0, 2]))
    res = verify_tree_stochastic(merged, p[:3], q[:3], "iid", u[[0, 1, 3]], 0.3)
    assert emitted(res) == (2, 1)


# --- exactness by Monte Carlo ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_monte_carlo_matches_exact_calculator(mode):
    rng = np.random.default_rng(11)
    V = 3
    tree = DraftTree(np.array([-1, 0, 0, 1, 1, 2]), np.array([2, 0, 1, 1, 0, 2]))
    p, q = dirichlet_rows(rng, 6, V, 0.2), dirichlet_rows(rng, 6, V)
    exact = step_emission_distribution(tree, p, q, mode)
    n = 3000
    counts = {}
    for _ in range(n):
        e = emitted(verify_tree_stochastic(tree, p, q, mode, rng.random(6), rng.random()))
        counts[e] = counts.get(e, 0) + 1
    assert set(counts) <= set(exact)
    keys = sorted(exact, key=exact.get, reverse=True)
    big = [k for k in keys if exact[k] * n >= 5]
    f_exp = np.array([exact[k] * n for k in big] + [n * (1 - sum(exact[k] for k in big))])
    f_obs = np.array([counts.get(k, 0) for k in big] + [n - sum(counts.get(k, 0) for k in big)])
    if f_exp[-1] < 1e-9:
        f_exp, f_obs = f_exp[:-1], f_obs[:-1]
    assert chisquare(f_obs, f_exp * f_obs.sum() / f_exp.sum()).pvalue > 1e-4


# --- multi-draft ------------------------------------------------------------------------------

@given(seeds(), st.sampled_from(MODES))
def test_multidraft_equals_star_tree(seed, mode):
    rng = np.random.default_rng(seed)
    V, K = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    p, q = dirichlet_rows(rng, 2, V)
    cand = rng.integers(0, V, K)
    u, uf = rng.random(K), rng.random()
    j, tok = verify_multidraft(p, None if mode == "point" else q, cand, mode, u, uf)
    tree = DraftTree(np.r_[-1, np.zeros(K, int)], np.r_[0, cand])
    res = verify_tree_stochastic(tree, np.tile(p, (K + 1, 1)), np.tile(q, (K + 1, 1)), mode,
                                 np.r_[0, u], uf)
    if res.num_accepted:
        assert (j, tok) == (res.path[1] - 1, cand[res.path[1] - 1])
    else:
        assert (j, tok) == (-1, res.next_token)


def test_multidraft_monte_carlo_emits_the_target_law():
    rng = np.random.default_rng(5)
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.3, 0.6])
    qs = np.array([[0.1, 0.3, 0.6], [0.6, 0.2, 0.2]])
    n = 1200
    for mode in ("iid", "wor", "per-child"):
        counts = np.zeros(3)
        for _ in range(n):
            if mode == "wor":
                cand = rng.choice(3, size=2, replace=False, p=q)
            elif mode == "iid":
                cand = rng.choice(3, size=2, p=q)
            else:
                cand = np.array([rng.choice(3, p=qs[0]), rng.choice(3, p=qs[1])])
            dp = qs if mode == "per-child" else q
            counts[verify_multidraft(p, dp, cand, "iid" if mode == "per-child" else mode,
                                     rng.random(2), rng.random())[1]] += 1
        assert chisquare(counts, p * n).pvalue > 1e-4


# --- the verify wrapper -----------------------------------------------------------------------

@given(seeds(), st.sampled_from(MODES))
def test_verify_wrapper(seed, mode):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 6))
    tree = random_tree(rng, int(rng.integers(1, 10)), V)
    z = rng.standard_normal((tree.num_nodes, V))
    q = dirichlet_rows(rng, tree.num_nodes, V)
    greedy = verify(tree, z, q, temperature=0.0, mode=mode, rng=0)
    assert emitted(greedy) == emitted(verify_greedy_tree(tree, np.argmax(z, axis=1)))
    out = verify(tree, z, q, temperature=0.7, top_k=2, mode=mode, rng=seed)
    draws = np.random.default_rng(seed)
    u = draws.random(tree.num_nodes)
    ref = verify_tree_stochastic(tree, warped_probs(z, temperature=0.7, top_k=2), q, mode, u,
                                 draws.random())
    assert emitted(out) == emitted(ref) and out.path.tolist() == ref.path.tolist()


# --- Medusa typical acceptance ----------------------------------------------------------------

def medusa_typical_port(p, tree, threshold=0.09, alpha=0.3):
    """NumPy port of Medusa's evaluate_posterior (typical branch) on a padded retrieve buffer;
    padded slots are masked (Medusa instead reads a dummy token)."""
    R, lens = paths_of(tree)
    cand = np.where(R >= 0, tree.tokens[np.maximum(R, 0)], 0)  # (P, D+1)
    post = p[np.maximum(R[:, :-1], 0)]  # (P, D, V) rows predicting positions 1..D
    cprob = np.take_along_axis(post, cand[:, 1:, None], axis=2)[..., 0]  # (P, D)
    ent = -(post * np.log(post + 1e-5)).sum(-1)
    mask = (cprob > np.minimum(threshold, np.exp(-ent) * alpha))
    mask &= np.arange(1, R.shape[1])[None] < lens[:, None]
    acc = np.cumprod(mask, axis=1).sum(1)
    L = acc.max()
    if L == 0:
        return 0, 0
    best = np.flatnonzero(acc == L)
    ll = np.log(cprob[best, :L]).sum(-1)
    b = best[np.argmax(ll)]
    return L, R[b, L]


@given(seeds())
def test_typical_matches_medusa_port(seed):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 5))
    tree = random_tree(rng, int(rng.integers(1, 12)), V)
    p = dirichlet_rows(rng, tree.num_nodes, V, zeros=0.2) ** 2
    p /= p.sum(1, keepdims=True)  # peakier rows: more acceptances
    res = typical_acceptance(p, tree)
    L, last = medusa_typical_port(p, tree)
    assert res.num_accepted == L and res.path[-1] == last
    assert res.next_token == int(np.argmax(p[last]))


def test_typical_by_hand():
    # star: children 1:a, 2:b. p_0 = [.5, .45, .05]: H = 0.851..., thr = min(.09, .3 e^-H)
    # = 0.09; both a (.5) and b (.45) pass, same length: the larger log-probability (a) wins
    tree = DraftTree(np.array([-1, 0, 0]), np.array([2, 1, 0]))
    p = np.array([[0.5, 0.45, 0.05], [0, 0, 1.0], [0, 1.0, 0]])
    res = typical_acceptance(p, tree)
    assert res.path.tolist() == [0, 2] and res.next_token == 1


@given(seeds(), st.booleans())
def test_typical_greedy_limit(seed, trie):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 5))
    tree = random_tree(rng, int(rng.integers(1, 12)), V)
    if trie:
        tree = DraftTree.from_paths(int(tree.tokens[0]), [tuple(int(t) for t in
                                    tree.tokens[R[1:L]]) for R, L in zip(*paths_of(tree))])
    am = prefix_argmax(tree, V, seed)
    z = np.stack([np.roll(np.arange(V), a + 1 - V) for a in am]).astype(float)  # max at am
    p = warped_probs(z, temperature=0.02)  # temperature -> 0
    res = typical_acceptance(p, tree)
    R, lens = paths_of(tree)
    acc, best, last = verify_greedy_paths(R, lens, tree.tokens, am)
    # typical keeps the longest accepted path, like the path form of greedy verification
    assert emitted(res) == tuple(int(t) for t in tree.tokens[R[best, 1:acc[best] + 1]]) + (
        int(am[last]),)
    if trie:
        assert emitted(res) == emitted(verify_greedy_tree(tree, am))


def test_inputs_are_not_mutated():
    tree = DraftTree(np.array([-1, 0, 0]), np.array([0, 1, 1]))
    p = np.full((3, 2), 0.5, np.float32)
    q = np.array([[0.2, 0.8], [0.5, 0.5], [0.5, 0.5]])
    u = np.array([0.0, 0.9, 0.9])
    before = [a.copy() for a in (p, q, u)]
    for mode in MODES:
        verify_tree_stochastic(tree, p, q, mode, u, 0.5)
    assert all(np.array_equal(a, b) for a, b in zip((p, q, u), before))


@given(seeds(), st.sampled_from(MODES))
def test_float32_inputs_give_the_float64_result(seed, mode):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 6))
    tree = random_tree(rng, int(rng.integers(1, 10)), V)
    p32 = dirichlet_rows(rng, tree.num_nodes, V, 0.2).astype(np.float32)
    q32 = dirichlet_rows(rng, tree.num_nodes, V).astype(np.float32)
    u, uf = rng.random(tree.num_nodes), rng.random()
    a = verify_tree_stochastic(tree, p32, q32, mode, u.astype(np.float32), uf)
    b = verify_tree_stochastic(tree, p32.astype(np.float64), q32.astype(np.float64), mode,
                               u.astype(np.float32).astype(np.float64), uf)
    assert a.path.tolist() == b.path.tolist() and a.next_token == b.next_token
    assert a.path.dtype == np.int32 and a.accepted_tokens.dtype == np.int32


@given(seeds(), st.sampled_from(MODES), st.booleans())
def test_agrees_with_the_hot_path_numpy_tier(seed, mode, virtual):
    """``refseq.tree_verify`` (the batched kernel contract) is written separately; on one tree
    both must give the same integers for the same uniforms."""
    tv = pytest.importorskip("refseq.tree_verify")
    rng = np.random.default_rng(seed)
    V = int(rng.integers(1, 5))
    tree = random_tree(rng, int(rng.integers(1, 12)), V)
    if virtual and mode == "iid":  # flag later duplicate leaves
        has_child = np.zeros(tree.num_nodes, bool)
        has_child[tree.parents[1:]] = True
        flags = np.array([i > 0 and not has_child[i] and bool(
            (tree.tokens[:i][tree.parents[:i] == tree.parents[i]] == tree.tokens[i]).any())
            for i in range(tree.num_nodes)])
        tree = DraftTree(tree.parents, tree.tokens, flags)
    p = dirichlet_rows(rng, tree.num_nodes, V, 0.3)
    q = dirichlet_rows(rng, tree.num_nodes, V, 0.3)
    u, uf = rng.random(tree.num_nodes), rng.random()
    res = verify_tree_stochastic(tree, p, q, mode, u, uf)
    path, m, nxt = tv.tree_verify_stochastic(
        tree.parents[None], tree.tokens[None], p[None], q[None], mode,
        None if tree.virtual is None else tree.virtual[None], u[None], np.array([uf]),
        np.array([tree.num_nodes]))
    assert (int(m[0]), int(nxt[0])) == (res.num_accepted, res.next_token)
    assert path[0, :m[0] + 1].tolist() == res.path.tolist()
