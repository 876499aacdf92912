"""Cross-checks against ports of the peers (tests/papers/recursive_speculative_decoding/
peer_ports.py): Kool et al.'s truncated Gumbel (stochastic-beam-search, fairseq/gumbel.py; torch)
and Sequoia's without-replacement sampling and recursive rejection sampling (NumPy)."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.decoding.speculative.toy_result import toy_models
from refseq.decoding.speculative.verify import _draw, residual, verify_tree_stochastic
from refseq.papers.recursive_speculative_decoding.gumbel import (
    exponential_race_topk,
    without_replacement_conditionals,
)
from refseq.papers.recursive_speculative_decoding.rsd_trees import (
    constant_branching_tree,
    stochastic_beam_tree,
)
from refseq.papers.recursive_speculative_decoding.truncated_gumbel import shift_gumbel_max
from tests.papers.recursive_speculative_decoding import peer_ports as peers
from tests.papers.recursive_speculative_decoding.helpers import node_paths

TARGET, DRAFT = toy_models()


def test_shift_gumbel_max_equals_kool_et_al_to_1e12():
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for _ in range(50):
        B, V = int(rng.integers(1, 5)), int(rng.integers(2, 40))
        phi = rng.standard_normal((B, V)) * 4 - 3
        phi[rng.random((B, V)) < 0.2] = -np.inf
        phi[:, 0] = 0.0
        T = rng.standard_normal(B) * 2
        g = -np.log(-np.log(rng.random((B, V))))
        want, argmax = peers.kool_gumbel_with_maximum(phi, T, g)
        G = phi + g
        got = shift_gumbel_max(G, G.max(-1), T)
        assert (np.argmax(got, -1) == argmax).all()
        far = G < G.max(-1, keepdims=True) - 1e-3  # the peer loses digits when g is near Z
        np.testing.assert_allclose(got[far & np.isfinite(G)], want[far & np.isfinite(G)],
                                   rtol=1e-12, atol=1e-12)
        assert (np.isneginf(got) == np.isneginf(want)).all()
        np.testing.assert_array_equal(got.max(-1), T)


def test_near_the_maximum_log1mexp_is_the_more_accurate_form():
    pytest.importorskip("torch")
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    G, Z, T = np.array([[1.0 - 3e-9, 1.0, -2.0]]), np.array([1.0]), np.array([30.0])
    exact = float(-mpmath.log(mpmath.e ** -30 - mpmath.e ** -1.0 + mpmath.e ** -(1.0 - 3e-9)))
    ours = shift_gumbel_max(G, Z, T)[0, 0]
    theirs = peers.kool_shift_gumbel_maximum(G, T, Z)[0, 0]
    assert abs(ours - exact) < 1e-14 < abs(theirs - exact)


def test_the_first_rsd_s_level_is_kool_et_al_gumbel_with_maximum():
    pytest.importorskip("torch")
    t = stochastic_beam_tree(DRAFT, [3], 7, 5, 1, rng=np.random.default_rng(4))
    U = np.random.default_rng(4).random((1, 32))  # the same uniforms the builder drew
    q = t.draft_probs[0]
    G, _ = peers.kool_gumbel_with_maximum(np.log(q)[None], np.zeros(1), -np.log(-np.log(U)))
    top = np.argsort(-G[0], kind="stable")[:5]
    assert t.tree.tokens[1:].tolist() == top.tolist()
    np.testing.assert_allclose(t.perturbed[1:], G[0, top], rtol=1e-12, atol=1e-12)


def test_sequoia_sampling_without_replacement_equals_the_exponential_race():
    rng = np.random.default_rng(1)
    for _ in range(100):
        V = int(rng.integers(2, 30))
        q = rng.dirichlet(np.ones(V))
        u = rng.random(V)
        k = int(rng.integers(1, V + 1))
        want = peers.sequoia_sampling_without_replacement(np.log(q), u, k)
        np.testing.assert_array_equal(exponential_race_topk(q, k, u), want)
    # with k beyond the support Sequoia returns zero-probability tokens (log u / 0 = -inf);
    # the reference stops at the support and pads with -1
    q = np.array([0.5, 0.0, 0.5])
    assert 1 in peers.sequoia_sampling_without_replacement(np.log(q + 1e-300), rng.random(3), 3)
    assert exponential_race_topk(q, 3, rng.random(3))[-1] == -1


@pytest.mark.parametrize("builder", ["rsd-c", "rsd-s"])
def test_sequoia_accept_step_equals_the_core_wor_walk_on_rsd_trees(builder):
    rng = np.random.default_rng(2)
    stops = 0
    for _ in range(40):
        ctx, root = [int(rng.integers(32))], int(rng.integers(32))
        if builder == "rsd-c":
            t = constant_branching_tree(DRAFT, ctx, root, (3, 2, 1), rng=rng)
        else:
            t = stochastic_beam_tree(DRAFT, ctx, root, 4, 3, rng=rng)
        P = np.stack([np.exp(TARGET.logprobs([np.array(ctx + [root] + list(pre))])[0])
                      for pre in node_paths(t.tree)])
        u, uf = rng.random(t.tree.num_nodes), rng.random()
        path, res = peers.sequoia_verify(t.tree, P, t.draft_probs, u)
        ref = verify_tree_stochastic(t.tree, P, t.draft_probs, "wor", u, uf)
        assert path == ref.path.tolist()
        if res is not None:  # stopped at a node: same residual, same final token
            stops += 1
            node = path[-1]
            kids = np.flatnonzero(t.tree.parents == node)
            mine = P[node]
            for j in range(kids.size):  # res(P_j, q_j) with q_j the w/o-replacement law
                qj = without_replacement_conditionals(t.draft_probs[node], t.tree.tokens[kids[:j]])
                mine = residual(mine, qj)
            np.testing.assert_allclose(res, mine, rtol=1e-12, atol=1e-15)
            assert _draw(res, uf) == ref.next_token
    assert stops > 5
