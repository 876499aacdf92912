"""The draft maker (refseq.papers.aded.mcts): a hand-traced search, the invariants, priors,
determinism and the prior-driven exploration of c1 = 32."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.aded import C1, C1_FIRST_COMMIT, C2, TrigramMatrix, adapt, mcts_draft
from refseq.papers.aded import mcts as mcts_mod
from refseq.papers.aded.mcts import mcts_search, puct_score


def _tiny():
    m = TrigramMatrix()
    m.set_weight((0, 1), 2, 0.6)
    m.set_weight((0, 1), 3, 0.4)
    return m


def test_hand_traced_search():
    """3 iterations on (0,1) -> {2: .6, 3: .4}, nothing after (traced by hand):
    it 1 expands the root and enters child 2 (R = 1 + .6); it 2 visits the unvisited child 3
    (R = 1.4); it 3 compares 1.6 + k * .6 * sqrt(2) / 2 with 1.4 + k * .4 * sqrt(2) / 2."""
    res = mcts_search(_tiny(), (0, 1), iterations=3, rng=0)
    root = res.root
    c2, c3 = root.children
    assert (c2.pair, c3.pair) == ((1, 2), (1, 3))
    assert (root.visits, c2.visits, c3.visits) == (3, 2, 1)
    assert c2.value_sum == pytest.approx(3.2) and c3.value_sum == pytest.approx(1.4)
    assert root.value_sum == pytest.approx(4.6)
    assert res.candidates == [[2], [3]]
    assert res.stats == {"num_nodes": 3, "max_depth": 1, "num_expanded": 1, "num_candidates": 2}


def test_hand_traced_chain_gives_every_prefix_extended_by_one_greedy_token():
    """(0,1)->2, (1,2)->3, (2,3)->4, (3,4)->5, one successor each, 3 iterations, L = 4:
    it 1 creates (1,2); it 2 creates (2,3); it 3 creates (3,4) (each expansion once per node).
    Sentences [1] (3 visits), [1,2] (3), [1,2,3] (2), [1,2,3,4] (1); each of length >= 2 gains
    the arg-max successor; the root token is dropped; [1] becomes empty and is removed."""
    m = TrigramMatrix()
    for a, b, c in [(0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5)]:
        m.set_weight((a, b), c, 1.0)
    res = mcts_search(m, (0, 1), iterations=3, rng=0)
    assert res.candidates == [[2, 3], [2, 3, 4], [2, 3, 4, 5]]
    assert [n.visits for n in res.root.walk()] == [3, 3, 2, 1]
    assert res.stats["num_expanded"] == 3 and res.stats["max_depth"] == 3
    # returns: it 1 state (0,1),(1,2),(2,3),(3,4): R = 1 + 3 = 4; likewise its 2 and 3
    assert res.root.value_sum == pytest.approx(12.0)


def test_expansion_enters_the_first_child_and_ties_go_to_the_first_unvisited():
    m = TrigramMatrix()
    for c, w in [(5, 0.5), (6, 0.3), (7, 0.2)]:
        m.set_weight((0, 1), c, w)
    one = mcts_search(m, (0, 1), iterations=1, rng=0)
    assert [ch.visits for ch in one.root.children] == [1, 0, 0]  # highest prior first
    two = mcts_search(m, (0, 1), iterations=2, rng=0)
    assert [ch.visits for ch in two.root.children] == [1, 1, 0]  # first +inf wins


def test_puct_score_by_hand():
    k = 32.0 + math.log((4 + 8 + 1) / 8)
    assert puct_score(2, 3.0, 0.5, 4) == pytest.approx(1.5 + k * 0.5 * 2 / 3)
    assert puct_score(0, 0.0, 0.5, 4) == math.inf
    assert puct_score(1, 1.0, 0.5, 4, c1=C1_FIRST_COMMIT) == pytest.approx(
        1 + (1.814 + math.log(13 / 8)) * 0.5 * 2 / 2)
    assert (C1, C2) == (32.0, 8.0)


def test_released_return_rule_reads_the_repeated_token():
    """``state[i + 1].0`` is the context's own last token: with w(0,1,1) = 0.3 present,
    every released return is 1 + 0.3 (child pairs (1, c) carry nothing further)."""
    m = _tiny()
    m.set_weight((0, 1), 1, 0.3)
    rel = mcts_search(m, (0, 1), iterations=4, rng=0, return_rule="released")
    assert rel.root.value_sum == pytest.approx(4 * 1.3)
    path = mcts_search(m, (0, 1), iterations=4, rng=0, return_rule="path")
    # path rule: one simulation per child (priors .6, .3, .4 -> R = 1.6, 1.3, 1.4) then the best
    assert path.root.value_sum != pytest.approx(4 * 1.3)


def _random_matrix(rng, V, k_max, p_missing=0.0):
    """Rows like a built table: 1..k_max successors, weights normalised to sum 1."""
    W = np.zeros((V, V, V))
    for a in range(V):
        for b in range(V):
            if rng.random() < p_missing:
                continue
            k = int(rng.integers(1, k_max + 1))
            w = rng.random(k) + 0.01
            W[a, b, rng.choice(V, k, replace=False)] = w / w.sum()
    return TrigramMatrix.from_dense(W)


@given(st.integers(0, 10**6), st.integers(1, 60), st.integers(2, 5))
def test_search_invariants_and_priors(seed, iterations, L):
    rng = np.random.default_rng(seed)
    m = _random_matrix(rng, 5, 3, p_missing=0.2)
    adapt(m, rng.integers(0, 5, 12))  # weights above 1 possible: priors stay raw
    root_pair = (int(rng.integers(5)), int(rng.integers(5)))
    res = mcts_search(m, root_pair, iterations=iterations, sentence_length=L, rng=seed)
    root = res.root
    if m.successors(root_pair):
        assert root.visits == iterations
    for node in root.walk():
        assert node.visits >= sum(ch.visits for ch in node.children)
        assert node.depth <= L - 1
        for ch in node.children:
            assert ch.prior == m.weight(node.pair, ch.token)  # raw weight at call time
            assert ch.pair == (node.pair[1], ch.token)
        assert [ch.token for ch in node.children] in ([], m.successors(node.pair))
        if node.children:  # all siblings once before any twice
            v = [ch.visits for ch in node.children]
            assert max(v) <= 1 or min(v) >= 1
    for cand in res.candidates:
        assert 1 <= len(cand) <= L
        seq = list(root_pair) + cand
        for t in range(len(cand) - 1):  # all but the greedy extension follow matrix entries
            assert m.weight((seq[t], seq[t + 1]), seq[t + 2]) > 0
        if len(cand) >= 2:
            last_ctx = (seq[-3], seq[-2])
            assert m.weight(last_ctx, seq[-1]) > 0
    assert len({tuple(c) for c in res.candidates}) == len(res.candidates)


def test_extension_is_the_argmax_successor_and_longest_candidates_have_L_tokens():
    rng = np.random.default_rng(3)
    m = _random_matrix(rng, 6, 3)
    res = mcts_search(m, (0, 1), iterations=150, rng=1)
    assert max(len(c) for c in res.candidates) == 4
    assert res.stats["max_depth"] == 3
    deep = [c for c in res.candidates if len(c) == 4]
    for c in deep:
        seq = [0, 1] + c
        assert seq[-1] == m.successors((seq[-3], seq[-2]))[0]


def test_determinism_and_rng_use():
    m = _random_matrix(np.random.default_rng(5), 6, 3)
    a = mcts_draft(m, (2, 3), rng=7)
    b = mcts_draft(m, (2, 3), rng=np.random.default_rng(7))
    assert a == b and len(a) > 0
    assert mcts_draft(TrigramMatrix(), (2, 3), rng=0) == []


def _prior_driven_violations(n_matrices):
    bad = 0
    found = 0
    seed = 0
    while found < n_matrices:
        rng = np.random.default_rng(seed)
        seed += 1
        m = _random_matrix(rng, 6, 2)
        root = (int(rng.integers(6)), int(rng.integers(6)))
        succ = m.successors(root)
        if len(succ) != 2:
            continue
        w = [m.weight(root, c) for c in succ]
        if w[0] < 2 * w[1]:
            continue
        found += 1
        res = mcts_search(m, root, iterations=2000, rng=seed)
        hi, lo = res.root.children  # successor order: the higher prior first
        bad += hi.visits <= lo.visits
    return bad


def test_exploration_is_prior_driven():
    assert _prior_driven_violations(25) == 0


@pytest.mark.slow
def test_exploration_is_prior_driven_200_matrices():
    assert _prior_driven_violations(200) == 0


def test_rollout_normalises_raw_weights():
    """Scaling a row leaves the rollout law unchanged (inverse CDF on w / sum w)."""
    row = {4: 2.0, 7: 1.0, 9: 1.0}
    succ = [4, 7, 9]
    for u, want in [(0.0, 4), (0.49, 4), (0.5, 7), (0.74, 7), (0.75, 9), (0.999, 9)]:
        assert mcts_mod._sample(row, succ, u) == want
        assert mcts_mod._sample({k: 3 * v for k, v in row.items()}, succ, u) == want
    assert mcts_mod._sample({1: 0.0}, [1], 0.5) is None


def test_bad_inputs():
    m = _tiny()
    with pytest.raises(TypeError, match="matrix"):
        mcts_search({}, (0, 1))
    with pytest.raises(TypeError, match="pair"):
        mcts_search(m, 1)
    with pytest.raises(ValueError, match="iterations"):
        mcts_search(m, (0, 1), iterations=0)
    with pytest.raises(ValueError, match="sentence_length"):
        mcts_search(m, (0, 1), sentence_length=1)
    with pytest.raises(ValueError, match="c1"):
        mcts_search(m, (0, 1), c1=0.0)
    with pytest.raises(ValueError, match="return_rule"):
        mcts_search(m, (0, 1), return_rule="mean")
    with pytest.raises(TypeError, match="top_sentences"):
        mcts_search(m, (0, 1), top_sentences=2.5)
    with pytest.raises(TypeError, match="root_pair"):
        mcts_search(m, "ab")
    with pytest.raises(TypeError, match="root_pair\\[0\\]"):
        mcts_search(m, (0.5, 1))


@pytest.mark.parametrize("kw, error, name", [
    ({"child_visits": 1.5}, TypeError, "child_visits"),
    ({"child_visits": -1}, ValueError, "child_visits"),
    ({"child_visits": 5}, ValueError, "parent_visits"),  # more visits than its parent
    ({"child_value_sum": np.nan}, ValueError, "child_value_sum"),
    ({"prior": -0.1}, ValueError, "prior"),
    ({"prior": "0.5"}, TypeError, "prior"),
    ({"parent_visits": -1}, ValueError, "parent_visits"),
    ({"c1": 0.0}, ValueError, "c1"),
    ({"c2": 0.0}, ValueError, "c2"),
])
def test_puct_score_bad_inputs(kw, error, name):
    args = {"child_visits": 2, "child_value_sum": 3.0, "prior": 0.5, "parent_visits": 4, **kw}
    with pytest.raises(error, match=name):
        puct_score(**args)
