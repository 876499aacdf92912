"""Tree attention (spec property 2) and the TreeLM wrappers' shapes and dtypes (property 15).

The oracle for every tree row is a *fresh* linear forward of the tiny transformer on the
sequence ``context, root, path(i)`` (no cache, default causal mask and positions): one
independent forward per node, against one masked forward for the whole tree.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.speculative.target import (
    BatchedTreeLM,
    TabularTreeLM,
    TinyTransformerTreeLM,
    TreeLM,
)
from refseq.decoding.speculative.tree import DraftTree, dfs_permutation, permute
from refseq.models.tiny_transformer import TinyConfig, final_norm, forward, init_params
from refseq.models.toy_lm import random_markov_lm

V = 11


def _params(dtype="float64", rope=False):
    cfg = TinyConfig(vocab_size=V, d_model=16, n_layers=2, n_heads=2, max_positions=96,
                     rope=rope, dtype=dtype)
    return init_params(cfg, 3)


PARAMS = {(dt, rope): _params(dt, rope) for dt in ("float64", "float32") for rope in (False, True)}


def _path_tokens(tree, i):
    nodes = [i]
    while tree.parents[nodes[-1]] >= 0:
        nodes.append(int(tree.parents[nodes[-1]]))
    return tree.tokens[nodes[::-1]].astype(np.int64)  # root .. i


@st.composite
def trees(draw, max_nodes=40):
    N = draw(st.integers(1, max_nodes))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    parents = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, N)])
    tokens = rng.integers(0, V, N)
    return DraftTree(parents, tokens)


@settings(deadline=None)
@given(tree=trees(), n_ctx=st.integers(0, 8), rope=st.booleans(), seed=st.integers(0, 1000))
def test_forward_tree_rows_equal_fresh_linear_forwards(tree, n_ctx, rope, seed):
    params = PARAMS["float64", rope]
    context = np.random.default_rng(seed).integers(0, V, n_ctx)
    lm = TinyTransformerTreeLM(params)
    lm.prefill(np.concatenate([context, tree.tokens[:1]]))
    assert lm.n_past == n_ctx
    logits, hidden = lm.forward_tree(tree)
    for i in range(tree.num_nodes):
        seq = np.concatenate([context, _path_tokens(tree, i)])
        ref, hid, _ = forward(params, tokens=seq)  # a fresh causal forward
        np.testing.assert_allclose(logits[i], ref[-1], rtol=0, atol=1e-10)
        np.testing.assert_allclose(hidden[i], final_norm(params, hid[-1][-1]), rtol=0, atol=1e-10)
    # DFS order: the same rows, permuted (new node k = old node perm[k])
    perm = dfs_permutation(tree)
    logits_p, _ = lm.forward_tree(permute(tree, perm))
    np.testing.assert_allclose(logits_p, logits[perm], rtol=0, atol=1e-10)


def test_float32_tree_rows_match_float64_fresh_forward():
    tree = DraftTree(np.array([-1, 0, 0, 1, 1, 3]), np.array([2, 5, 7, 1, 5, 9]))
    context = np.array([3, 1, 4, 1, 5])
    lm = TinyTransformerTreeLM(PARAMS["float32", False])
    lm.prefill(np.concatenate([context, [2]]))
    logits, hidden = lm.forward_tree(tree)
    assert logits.dtype == np.float32 and hidden.dtype == np.float32
    p64 = PARAMS["float64", False]
    for i in range(tree.num_nodes):
        ref = forward(p64, tokens=np.concatenate([context, _path_tokens(tree, i)]))[0][-1]
        np.testing.assert_allclose(logits[i], ref, rtol=0, atol=1e-4)


def test_virtual_rows_are_zero_and_change_nothing_else():
    parents = np.array([-1, 0, 0, 0, 1, 1])
    tokens = np.array([4, 6, 2, 6, 3, 3])  # node 3 repeats node 1, node 5 repeats node 4
    virtual = np.array([False, False, False, True, False, True])
    lm = TinyTransformerTreeLM(PARAMS["float64", False])
    lm.prefill(np.array([1, 2, 4]))
    full, _ = lm.forward_tree(DraftTree(parents, tokens))
    lg, hid = lm.forward_tree(DraftTree(parents, tokens, virtual))
    assert not lg[virtual].any() and not hid[virtual].any()
    np.testing.assert_allclose(lg[~virtual], full[~virtual], rtol=0, atol=1e-12)
    assert lm.cache.shape[-2] == lm.n_past + 4  # only the 4 real nodes got slots
    lm.commit(np.array([0, 1, 4]))  # slots of nodes 0, 1, 4 are 0, 1, 3 of the block
    ref = forward(PARAMS["float64", False], tokens=np.array([1, 2, 4, 6, 3]))[2]
    np.testing.assert_allclose(lm.cache, ref, rtol=0, atol=1e-10)


def test_prefill_caches_all_but_the_root():
    params = PARAMS["float64", False]
    lm = TinyTransformerTreeLM(params)
    logits, hidden = lm.prefill(np.array([3, 1, 4]))
    ref, hid, kv = forward(params, tokens=np.array([3, 1, 4]))
    assert lm.n_past == 2 and lm.cache.shape[-2] == 2
    np.testing.assert_array_equal(lm.cache, kv[..., :2, :])
    np.testing.assert_allclose(logits, ref[-1], atol=1e-12)
    # the root is scored again by the first tree (same logits)
    lg, _ = lm.forward_tree(DraftTree.chain(4, np.zeros(0, np.int64)))
    np.testing.assert_allclose(lg[0], logits, rtol=0, atol=1e-10)


def test_tabular_tree_lm_reads_the_table_row_of_each_node():
    lm = random_markov_lm(5, 0.7, seed=1, order=3)  # p(x_t | x_{t-2}, x_{t-1})
    t = TabularTreeLM(lm)
    assert isinstance(t, TreeLM)
    logits0, hidden0 = t.prefill(np.array([2, 0, 3]))
    assert hidden0.shape == (0,)
    np.testing.assert_allclose(logits0, lm.table[0 * 5 + 3])
    tree = DraftTree(np.array([-1, 0, 0, 1]), np.array([3, 4, 1, 2]))
    logits, hidden = t.forward_tree(tree)
    assert logits.shape == (4, 5) and hidden.shape == (4, 0)
    # node 0: context (0, 3); node 1: (3, 4); node 2: (3, 1); node 3: (4, 2)
    for i, (a, b) in enumerate([(0, 3), (3, 4), (3, 1), (4, 2)]):
        np.testing.assert_allclose(logits[i], lm.table[a * 5 + b], atol=1e-12)
    t.commit(np.array([0, 1, 3]))
    np.testing.assert_array_equal(t.committed, [2, 0, 3, 4, 2])
    assert t.n_past == 5


def test_shapes_and_dtypes():
    for dt in ("float32", "float64"):
        params = PARAMS[dt, False]
        lm = TinyTransformerTreeLM(params)
        assert isinstance(lm, TreeLM) and isinstance(BatchedTreeLM(params), TreeLM)
        lg, hid = lm.prefill(np.array([1, 2], np.int32))
        assert lg.shape == (V,) and hid.shape == (16,) and lg.dtype == np.dtype(dt)
        tree = DraftTree(np.array([-1, 0, 1], np.int32), np.array([2, 3, 4], np.int32))
        lg, hid = lm.forward_tree(tree)
        assert lg.shape == (3, V) and hid.shape == (3, 16) and hid.dtype == np.dtype(dt)
        assert lm.cache.dtype == np.dtype(dt)


def test_bad_calls_raise():
    lm = TinyTransformerTreeLM(PARAMS["float64", False])
    tree = DraftTree(np.array([-1, 0]), np.array([1, 2]))
    with pytest.raises(ValueError, match="prefill"):
        lm.forward_tree(tree)
    lm.prefill(np.array([1]))
    with pytest.raises(ValueError, match="pending"):
        lm.commit(np.array([0]))
    with pytest.raises(ValueError, match="tree"):
        lm.forward_tree(DraftTree(np.array([-1, 0]), np.array([1, V])))
    lm.forward_tree(tree)
    with pytest.raises(ValueError, match="path"):
        lm.commit(np.array([0, 2]))
    with pytest.raises(ValueError, match="tokens"):
        lm.prefill(np.zeros(0, np.int64))
