"""Peers: NumPy ports (own code) of the official Luowaterbi/TokenRecycling functions and of
smpanaro/token-recycling's tree walk (``official_port.py``), compared with the reference:
buffers, trees, accepted paths, KV copy, matrix update and the whole loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.speculative.kv import commit_path
from refseq.papers.token_recycling.generate import token_recycling_generate, verify_step
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.retrieval import retrieve_tree
from refseq.papers.token_recycling.templates import (
    TEMPLATE_2_2_2,
    template_buffers,
    template_from_layer_counts,
)
from refseq.papers.token_recycling.toy import demo_prompts, order2_target
from refseq.papers.token_recycling.update import update_matrix
from refseq.testing.strategies import seeds

from . import official_port as port

BUF = template_buffers(TEMPLATE_2_2_2, 8)
PORT = port.prepare_data([list(e) for e in TEMPLATE_2_2_2])


@pytest.mark.parametrize("template", [TEMPLATE_2_2_2, template_from_layer_counts([4, 6, 5, 2]),
                                      [(0,), (0, 0), (0, 0, 0)]])
def test_buffers_equal_prepare_data(template):
    buf = template_buffers(template, 8)
    attn, pos, sp, father, candi, deep_split = port.prepare_data(template)
    assert np.array_equal(attn.astype(bool), buf.allow)
    assert pos.tolist() == buf.rel_positions.tolist()
    assert father.tolist() == buf.parents.tolist() and candi.tolist() == buf.rank.tolist()
    assert deep_split == buf.layer_bounds.tolist()
    assert sp.tolist() == buf.retrieve.tolist()  # same leaf order, same -1 padding


@given(seed=seeds(), V=st.sampled_from([8, 20, 64]))
def test_trees_and_accepted_paths_equal_the_official_ones(seed, V):
    rng = np.random.default_rng(seed)
    s = TokenRecyclingState(V).set_matrix(rng.integers(0, V, (V, 8)))
    root = int(rng.integers(V))
    _, _, sp, father, candi, deep_split = PORT
    ids = port.prepare_data_input_ids(root, s.M, father, candi, deep_split)
    tree = retrieve_tree(s, root, BUF)
    assert ids.tolist() == tree.tokens.tolist()
    # target arg-max that follows a random tree path for a random number of levels
    am = rng.integers(0, V, 81)
    node = 0
    for _ in range(int(rng.integers(0, 7))):
        kids = np.flatnonzero(BUF.parents == node)
        if kids.size == 0:
            break
        node = int(rng.choice(kids))
        am[BUF.parents[node]] = tree.tokens[node]
    logits = np.eye(V)[am]  # (81, V) one-hot rows: argmax = am
    accept_len, index_path, next_root, _ = port.path_reward_verify(ids, am, sp)
    path, nxt = verify_step(tree, logits, BUF, "paths")
    assert path.tolist() == index_path.tolist() and nxt == next_root
    assert len(path) == accept_len
    # smpanaro's depth-first walk finds a path of the same (maximal) length
    dfs = port.longest_sequence_dfs(BUF.parents, tree.tokens, am)
    assert max(len(dfs), 1) == accept_len


@given(seed=seeds())
def test_kv_copy_equals_commit_path(seed):
    rng = np.random.default_rng(seed)
    n_past = int(rng.integers(0, 5))
    cache = rng.standard_normal((2, 2, 3, n_past + 81, 4))
    leaf = int(rng.integers(BUF.retrieve.shape[0]))
    index_path = BUF.retrieve[leaf, : int(rng.integers(1, BUF.retrieve_len[leaf] + 1))]
    a, b = cache.copy(), cache.copy()
    assert port.kv_copy(a, n_past, index_path.astype(np.int64)) == commit_path(b, n_past,
                                                                                index_path)
    L = n_past + index_path.size
    assert np.array_equal(a[..., :L, :], b[..., :L, :])


@given(seed=seeds(), V=st.sampled_from([81, 200]))
def test_matrix_update_equals_the_official_scatter_without_duplicates(seed, V):
    rng = np.random.default_rng(seed)
    tokens = rng.permutation(V)[:81]  # distinct: the official scatter is then well defined
    logits = rng.standard_normal((81, V))
    a = TokenRecyclingState(V).set_matrix(rng.integers(0, V, (V, 8)))
    M = a.M.copy()
    port.matrix_update(M, tokens, logits)
    update_matrix(a, tokens, logits, "last")
    assert np.array_equal(a.M, M)


def test_whole_loop_equals_the_official_loop_on_the_demo():
    """The official loop (path rewards, NumPy's last-write scatter) on the demo's five queries,
    hot start on the official loop's matrix: each query starts from the matrix the official
    loop left, and gives the same accepted lengths and tokens. The official loop stops only
    once more than ``max_new_tokens`` tokens are committed, so it may run extra steps; it is
    compared up to our last step."""
    target = order2_target(64, 1.0, 0.6)
    adj = np.zeros((64, 8), np.int64)
    extra = 0
    for p in demo_prompts():
        state = TokenRecyclingState(64).set_matrix(adj)
        ours, stats = token_recycling_generate(target, p, 128, state)
        theirs, accept = port.recycling_loop(target, p, 128, adj, TEMPLATE_2_2_2)
        assert accept[: stats.steps] == stats.accept_len
        assert theirs[: ours.size].tolist() == ours.tolist() and theirs.size > 128
        extra += len(accept) - stats.steps
    assert extra >= 1  # the overshoot happened at least once
