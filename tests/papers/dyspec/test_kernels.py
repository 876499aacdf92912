"""The tree-verification hot path on DySpec's trees: irregular, deep, in creation order (not
BFS). The batched kernels (``refseq.tree_verify``, ``mode = 1`` "wor" and greedy) must equal the
per-tree reference walk of the core bit for bit, and the jit tier the NumPy tier."""

from __future__ import annotations

import numpy as np
import pytest

from refseq import tree_verify as tv
from refseq.decoding.speculative.batch import TreeBatch
from refseq.decoding.speculative.buffers import ancestor_mask
from refseq.decoding.speculative.greedy import verify_greedy_tree
from refseq.decoding.speculative.verify import verify_tree_stochastic
from refseq.papers.dyspec.draft import CallableDraft
from refseq.papers.dyspec.heap import build_tree_greedy
from refseq.papers.dyspec.samplers import KeyedSampler
from refseq.papers.dyspec.threshold import build_tree_threshold


def _rowfn(seed, V, kind, T=0.6):
    def fn(seq):
        rng = np.random.default_rng([seed, kind, *seq[-3:]])
        z = rng.standard_normal(V) * 3.0 / T
        e = np.exp(z - z.max())
        return e / e.sum()
    return fn


def _batch(V, sizes, seed):
    trees, p, q = [], [], []
    for b, n in enumerate(sizes):
        draft = CallableDraft(_rowfn(seed + b, V, 1), V)
        if b % 2:
            res = build_tree_threshold(draft, [b], 1, 0.002, max_nodes=n, sampler=KeyedSampler(b))
        else:
            res = build_tree_greedy(draft, [b], 1, n, sampler=KeyedSampler(b), lazy=False)
        trees.append(res)
        tf = _rowfn(seed + b, V, 0)
        p.append(np.stack([tf((b, 1) + pre) for pre in res.prefixes]))
        q.append(res.draft_probs)
    tb = TreeBatch.from_trees([r.tree for r in trees])
    B, N = tb.parents.shape
    P, Q = np.zeros((B, N, V)), np.zeros((B, N, V))
    for b in range(B):
        P[b, :p[b].shape[0]], Q[b, :q[b].shape[0]] = p[b], q[b]
    P[tb.parents < -1] = 1.0 / V  # padding rows: any distribution
    return trees, tb, P, Q


@pytest.mark.parametrize("V,sizes", [(7, (30, 12, 50)), (512, (255, 100, 60, 200))])
def test_batched_kernels_equal_the_reference_walk(V, sizes):
    trees, tb, P, Q = _batch(V, sizes, seed=V)
    assert max(r.tree.num_nodes for r in trees) <= 256
    rng = np.random.default_rng(1)
    u, uf = rng.random(tb.parents.shape), rng.random(tb.parents.shape[0])
    path, m, nxt = tv.tree_verify_stochastic(tb.parents, tb.tokens, P, Q, 1, None, u, uf,
                                             tb.num_nodes)
    am = np.argmax(P, axis=-1)
    gpath, gm, gnxt = tv.tree_verify_greedy(tb.parents, tb.tokens, am, tb.num_nodes)
    allow, pos = tv.tree_masks(tb.parents, tb.num_nodes, np.zeros(len(trees), np.int64))
    for b, r in enumerate(trees):
        n = r.tree.num_nodes
        ref = verify_tree_stochastic(r.tree, P[b, :n], Q[b, :n], "wor", u[b, :n], uf[b])
        assert path[b, :m[b] + 1].tolist() == ref.path.tolist() and nxt[b] == ref.next_token
        g = verify_greedy_tree(r.tree, am[b, :n])
        assert gpath[b, :gm[b] + 1].tolist() == g.path.tolist() and gnxt[b] == g.next_token
        np.testing.assert_array_equal(allow[b, :n, :n].astype(bool), ancestor_mask(r.tree))
        np.testing.assert_array_equal(pos[b, :n], r.tree.depth)
    pytest.importorskip("numba")
    for got, want in zip(tv.tree_verify_stochastic(tb.parents, tb.tokens, P, Q, 1, None, u, uf,
                                                   tb.num_nodes, backend="jit"),
                         (path, m, nxt)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(tv.tree_verify_greedy(tb.parents, tb.tokens, am, tb.num_nodes,
                                               backend="jit"), (gpath, gm, gnxt)):
        np.testing.assert_array_equal(got, want)
