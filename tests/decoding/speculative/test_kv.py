"""KV compaction (spec property 13): ``commit_path`` against a plain gather and against a linear
prefill over the committed tokens; the next step's logits are unchanged; batched rows with
different accepted lengths are independent."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.speculative.kv import commit_path
from refseq.decoding.speculative.target import BatchedTreeLM, TinyTransformerTreeLM
from refseq.decoding.speculative.tree import DraftTree
from refseq.models.tiny_transformer import TinyConfig, forward, init_params

V = 9
PARAMS = init_params(TinyConfig(vocab_size=V, d_model=12, n_layers=2, n_heads=3,
                                max_positions=80), 5)


def _random_tree(rng, N):
    parents = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, N)])
    return DraftTree(parents, rng.integers(0, V, N))


def _path_to(tree, i):
    nodes = [i]
    while tree.parents[nodes[-1]] >= 0:
        nodes.append(int(tree.parents[nodes[-1]]))
    return np.array(nodes[::-1], np.int64)  # node ids root .. i


@settings(deadline=None)
@given(n_past=st.integers(0, 6), N=st.integers(1, 12), seed=st.integers(0, 10**6))
def test_commit_path_equals_a_gather(n_past, N, seed):
    rng = np.random.default_rng(seed)
    tree = _random_tree(rng, N)
    path = _path_to(tree, int(rng.integers(0, N)))
    cache = rng.standard_normal((2, 2, 3, n_past + N, 4))
    before = cache.copy()
    want = np.concatenate([before[..., :n_past, :], before[..., n_past + path, :]], axis=-2)
    new = commit_path(cache, n_past, path)
    assert new == n_past + path.size
    np.testing.assert_array_equal(cache[..., :new, :], want)


def test_commit_path_copies_in_increasing_destination_order():
    # path (0, 2, 5): dst 2 <- src 5 must come after dst 1 <- src 2 (a reversed loop reads the
    # overwritten slot 2)
    cache = np.arange(8.0).reshape(1, 8, 1)  # slot s holds s
    assert commit_path(cache, 1, np.array([0, 2, 5])) == 4
    np.testing.assert_array_equal(cache[0, :4, 0], [0, 1, 3, 6])


@settings(deadline=None)
@given(n_ctx=st.integers(0, 6), N=st.integers(1, 14), seed=st.integers(0, 10**6))
def test_compacted_cache_equals_linear_prefill_and_next_logits_unchanged(n_ctx, N, seed):
    rng = np.random.default_rng(seed)
    context = rng.integers(0, V, n_ctx)
    tree = _random_tree(rng, N)
    path = _path_to(tree, int(rng.integers(0, N)))
    lm = TinyTransformerTreeLM(PARAMS)
    lm.prefill(np.concatenate([context, tree.tokens[:1]]))
    logits, _ = lm.forward_tree(tree)
    lm.commit(path)
    committed = np.concatenate([context, tree.tokens[path]])
    _, _, kv = forward(PARAMS, tokens=committed)  # the linear prefill over committed tokens
    assert lm.n_past == committed.size
    np.testing.assert_allclose(lm.cache, kv, rtol=0, atol=1e-10)
    # next step: the root is the target's choice after the last accepted node
    nxt = int(rng.integers(0, V))
    lg2, _ = lm.forward_tree(DraftTree.chain(nxt, np.zeros(0, np.int64)))
    ref = forward(PARAMS, tokens=np.concatenate([committed, [nxt]]))[0][-1]
    np.testing.assert_allclose(lg2[0], ref, rtol=0, atol=1e-10)
    # and the accepted node's own logits (the bonus row) survive the compaction unchanged
    np.testing.assert_allclose(logits[path[-1]],
                               forward(PARAMS, tokens=committed)[0][-1], rtol=0, atol=1e-10)


@settings(deadline=None)
@given(seed=st.integers(0, 10**6))
def test_batched_rows_with_different_accepted_lengths_are_independent(seed):
    rng = np.random.default_rng(seed)
    B = 3
    prompts = [rng.integers(0, V, int(rng.integers(1, 7))) for _ in range(B)]
    trees = [_random_tree(rng, int(rng.integers(1, 10))) for _ in range(B)]
    trees = [DraftTree(t.parents, np.concatenate([p[-1:], t.tokens[1:]]))
             for p, t in zip(prompts, trees)]
    paths = [_path_to(t, int(rng.integers(0, t.num_nodes))) for t in trees]
    P = max(p.size for p in paths)
    padded = np.full((B, P), -1)
    for b, p in enumerate(paths):
        padded[b, :p.size] = p
    blm = BatchedTreeLM(PARAMS)
    blm.prefill(prompts)
    lg, hid = blm.forward_tree(trees)
    blm.commit(padded)
    for b in range(B):  # each row alone
        one = TinyTransformerTreeLM(PARAMS)
        one.prefill(prompts[b])
        lg1, hid1 = one.forward_tree(trees[b])
        n = trees[b].num_nodes
        np.testing.assert_allclose(lg[b, :n], lg1, rtol=0, atol=1e-10)
        np.testing.assert_allclose(hid[b, :n], hid1, rtol=0, atol=1e-10)
        assert not lg[b, n:].any()
        one.commit(paths[b])
        assert blm.n_past[b] == one.n_past
        np.testing.assert_allclose(blm.cache[b, ..., :one.n_past, :], one.cache, rtol=0,
                                   atol=1e-10)


def test_batched_commit_path_equals_per_row_commit():
    rng = np.random.default_rng(0)
    cache = rng.standard_normal((3, 2, 2, 1, 10, 2))
    n_past = np.array([0, 3, 5])
    path = np.array([[0, 2, 4], [0, -1, -1], [0, 1, 3]])
    per_row = cache.copy()
    want = [commit_path(per_row[b], int(n_past[b]), path[b][path[b] >= 0]) for b in range(3)]
    new = commit_path(cache, n_past, path)
    np.testing.assert_array_equal(new, want)
    for b in range(3):
        np.testing.assert_array_equal(cache[b, ..., :new[b], :], per_row[b, ..., :new[b], :])


def test_float32_cache_and_bad_paths():
    cache = np.zeros((1, 2, 1, 6, 2), np.float32)
    assert commit_path(cache, 2, np.array([0, 1], np.int32)) == 4
    for bad, word in ([1, 2], "root"), ([0, 2, 1], "increasing"), ([0, 4], "past"):
        with pytest.raises(ValueError, match=word):
            commit_path(np.zeros((1, 2, 1, 6, 2)), 2, np.array(bad))
    with pytest.raises(ValueError, match="padding"):
        commit_path(np.zeros((2, 1, 6, 2)), np.array([0, 0]), np.array([[0, -1, 1], [0, 1, 2]]))
    with pytest.raises(TypeError, match="cache"):
        commit_path(np.zeros((1, 6, 2), np.int64), 0, np.array([0]))
