"""The tree-verification hot path (``refseq.tree_verify``, NumPy and jit tiers) on RSD-C, RSD-S
and i.i.d. trees from random tables: bit-exact against the core's per-tree walk in float64 with
identical uniforms (N up to 64, V up to 512, B up to 8)."""

from __future__ import annotations

import numpy as np
import pytest

from refseq import tree_verify as tv
from refseq.decoding.speculative.batch import TreeBatch
from refseq.decoding.speculative.verify import verify_tree_stochastic
from refseq.models.toy_lm import TabularLM
from refseq.papers.recursive_speculative_decoding.baselines import iid_tree
from refseq.papers.recursive_speculative_decoding.rsd_trees import (
    constant_branching_tree,
    stochastic_beam_tree,
)
from tests.papers.recursive_speculative_decoding.helpers import node_paths


def _lms(V, seed, scale=3.0):
    """Bigram target and draft: the draft's logits are the target's plus N(0, 1) noise."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((V, V)) * scale
    zd = z + rng.standard_normal(z.shape)
    return tuple(TabularLM(2, x - np.logaddexp.reduce(x, axis=1, keepdims=True)) for x in (z, zd))


def _batch(V, builders, seed):
    target, draft = _lms(V, seed)
    rng = np.random.default_rng(seed)
    trees, ps = [], []
    for build in builders:
        ctx, root = [int(rng.integers(V))], int(rng.integers(V))
        t = build(draft, ctx, root, rng)
        trees.append(t)
        ps.append(np.exp(target.logprobs([np.array(ctx + [root] + list(pre))
                                          for pre in node_paths(t.tree)])))
    tb = TreeBatch.from_trees([t.tree for t in trees])
    B, N = tb.parents.shape
    P, Q = np.full((B, N, V), 1.0 / V), np.zeros((B, N, V))
    for b, t in enumerate(trees):
        n = t.tree.num_nodes
        P[b, :n], Q[b, :n] = ps[b], t.draft_probs
    return trees, tb, P, Q


RSD = [lambda d, c, r, g: constant_branching_tree(d, c, r, (4, 3, 2), rng=g),  # 4+12+24 drafts
       lambda d, c, r, g: stochastic_beam_tree(d, c, r, 8, 7, rng=g),  # up to 56 drafts
       lambda d, c, r, g: constant_branching_tree(d, c, r, (2, 2, 1), rng=g),
       lambda d, c, r, g: stochastic_beam_tree(d, c, r, 4, 3, rng=g)]
IID = [lambda d, c, r, g: iid_tree(d, c, r, (4, 3, 2), rng=g),
       lambda d, c, r, g: iid_tree(d, c, r, (2, 2, 1), rng=g)]


@pytest.mark.parametrize("V, builders, mode", [(7, RSD * 2, "wor"), (512, RSD, "wor"),
                                               (7, IID * 3, "iid")])
def test_batched_kernel_equals_the_reference_walk(V, builders, mode):
    trees, tb, P, Q = _batch(V, builders, seed=V)
    assert max(t.tree.num_nodes for t in trees) <= 64 and len(trees) <= 8
    rng = np.random.default_rng(1)
    u, uf = rng.random(tb.parents.shape), rng.random(tb.parents.shape[0])
    code = {"iid": 0, "wor": 1}[mode]
    path, m, nxt = tv.tree_verify_stochastic(tb.parents, tb.tokens, P, Q, code, None, u, uf,
                                             tb.num_nodes)
    for b, t in enumerate(trees):
        n = t.tree.num_nodes
        ref = verify_tree_stochastic(t.tree, P[b, :n], Q[b, :n], mode, u[b, :n], uf[b])
        assert path[b, :m[b] + 1].tolist() == ref.path.tolist() and nxt[b] == ref.next_token
    assert m.max() > 0
    pytest.importorskip("numba")
    for got, want in zip(tv.tree_verify_stochastic(tb.parents, tb.tokens, P, Q, code, None, u,
                                                   uf, tb.num_nodes, backend="jit"),
                         (path, m, nxt)):
        np.testing.assert_array_equal(got, want)
