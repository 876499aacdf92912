"""Analysis utilities (objective, estimates, tested children, Figure 2 bins) and the DFS
reordering of Appendix C (property 9)."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.decoding.speculative.tree import DraftTree, dfs_permutation, permute
from refseq.decoding.speculative.verify import verify_tree_stochastic
from refseq.papers.dyspec import analysis
from refseq.papers.dyspec.draft import CallableDraft
from refseq.papers.dyspec.heap import build_tree_greedy
from refseq.papers.dyspec.samplers import KeyedSampler
from tests.papers.dyspec.helpers import table_fn


def test_objective_and_estimate_by_hand():
    assert analysis.decision_objective(np.array([1.0, 0.5, 0.25])) == 1.75
    assert analysis.estimated_accepted(np.array([1.0, 0.6, 0.3, 0.1])) == pytest.approx(1.0)
    # chain with d = 0.5 at each node: slot values 1, 0.5, 0.25; node values 0.5, 0.25, 0.125
    q = np.array([0.5, 0.5, 0.0])
    res = build_tree_greedy(CallableDraft(lambda s: q, 3), [0], 0, 1,
                            sampler=KeyedSampler(0))
    assert analysis.decision_objective(res.popped_values) == 1.0
    assert analysis.estimated_accepted(res.node_value) == 0.5


def test_exact_expected_emitted_of_a_chain():
    """Context-free p, q on a K-chain: (1 - alpha^(K+1)) / (1 - alpha), alpha = sum min(p, q)."""
    p, q = np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.5, 0.3])
    tree = DraftTree.chain(0, [1, 1])
    alpha = np.minimum(p, q).sum()
    got = analysis.exact_expected_emitted(tree, np.tile(p, (3, 1)), np.tile(q, (3, 1)))
    assert got == pytest.approx((1 - alpha ** 3) / (1 - alpha), rel=1e-12)


def test_tested_children_by_hand():
    # root -> 1, 2, 3 ; 2 -> 4, 5
    tree = DraftTree(np.array([-1, 0, 0, 0, 2, 2]), np.array([9, 1, 2, 3, 4, 5]))
    nodes, acc = analysis.tested_children(tree, np.array([0, 2, 5]))
    assert nodes.tolist() == [1, 2, 4, 5] and acc.tolist() == [False, True, False, True]
    nodes, acc = analysis.tested_children(tree, np.array([0]))
    assert nodes.tolist() == [1, 2, 3] and not acc.any()


def test_acceptance_bins_by_hand():
    t = analysis.acceptance_by_draft_prob(np.array([0.05, 0.1, 0.5, 0.95, 1.0]),
                                          np.array([False, True, False, True, True]), bins=5)
    assert t["counts"].tolist() == [2, 0, 1, 0, 2]
    assert t["accepted"].tolist() == [1, 0, 0, 0, 2]
    assert t["rate"][0] == 0.5 and np.isnan(t["rate"][1]) and t["rate"][4] == 1.0


def test_block_counts_by_hand():
    """Root with children a, b (created first), then a's child, then b's child: creation order
    0 a b a1 b1; DFS order 0 a a1 b b1. With 2x2 tiles, DFS puts b's subtree off the first
    column block less often."""
    tree = DraftTree(np.array([-1, 0, 0, 1, 2]), np.array([0, 1, 2, 3, 4]))
    # creation order mask rows: 0:{0} 1:{0,1} 2:{0,2} 3:{0,1,3} 4:{0,2,4}
    # tiles (rows/cols 0-1, 2-3, 4): (0,0) (1,0) (1,1) (2,0) (2,1) (2,2) -> 6
    # DFS order 0 1 3 2 4 -> rows 0:{0} 1:{0,1} 2:{0,1,2} 3:{0,3} 4:{0,3,4}
    # tiles: (0,0) (1,0) (1,1) (2,0) (2,1) (2,2) -> 6
    assert analysis.block_counts(tree, 2) == (6, 6)
    assert analysis.block_counts(tree, 1) == (11, 11)  # sum of depth + 1 either way


def test_dfs_reordering_keeps_verification_outputs():
    """Property 9: permute(tree, dfs_permutation(tree)) with rows and uniforms mapped through
    the permutation verifies to the same token sequences. Block counts are reported."""
    rng = np.random.default_rng(0)
    target_fn, draft_fn = table_fn(1, V=6), table_fn(1, V=6, kind=1)
    counts = []
    for k in range(20):
        res = build_tree_greedy(CallableDraft(draft_fn, 6), [k % 6], 1, 40,
                                sampler=KeyedSampler(k), lazy=False)
        perm = dfs_permutation(res.tree)
        p = np.stack([target_fn((k % 6, 1) + pre) for pre in res.prefixes])
        u, uf = rng.random(res.tree.num_nodes), rng.random()
        a = verify_tree_stochastic(res.tree, p, res.draft_probs, "wor", u, uf)
        b = verify_tree_stochastic(permute(res.tree, perm), p[perm], res.draft_probs[perm],
                                   "wor", u[perm], uf)
        assert res.tree.tokens[a.path].tolist() == res.tree.tokens[perm][b.path].tolist()
        assert a.next_token == b.next_token
        counts.append(analysis.block_counts(res.tree, 8))
    before, after = np.mean(counts, axis=0)
    print(f"nonzero 8x8 blocks, 41-node heap trees: creation {before:.1f}, DFS {after:.1f}")
    tiles = (41 // 8 + 1) * (41 // 8 + 2) // 2  # lower-triangular tiles of a 41 x 41 mask
    assert 0 < after <= tiles and 0 < before <= tiles  # DFS fewer: reported, not asserted
