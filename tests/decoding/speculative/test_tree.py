"""Draft trees and tree buffers (refseq/decoding/speculative/tree.py).

Expected values come from brute force over parent links (ancestor sets walked one node at a
time), hand-built trees, and an independent NumPy port of Medusa's ``generate_medusa_buffers``
(FasterDecoding/Medusa, ``medusa/model/utils.py``) written below in the original's own steps:
depth counts, an identity mask completed by index look-ups, and retrieve rows collected from the
longest choice down.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.speculative.batch import TreeBatch
from refseq.decoding.speculative.buffers import (
    ancestor_mask,
    attention_mask,
    medusa_buffers,
    position_ids,
    retrieve_paths,
    tree_from_medusa_buffers,
)
from refseq.decoding.speculative.tree import DraftTree, dfs_permutation, nonzero_blocks, permute

# Medusa's default sparse tree for Vicuna-7B (medusa/model/medusa_choices.py), kept as data.
MC_SIM_7B_63 = [
    [0], [0, 0], [1], [0, 1], [2], [0, 0, 0], [1, 0], [0, 2], [3], [0, 3], [4], [0, 4], [2, 0],
    [0, 5], [0, 0, 1], [5], [0, 6], [6], [0, 7], [0, 1, 0], [1, 1], [7], [0, 8], [0, 0, 2],
    [3, 0], [0, 9], [8], [9], [1, 0, 0], [0, 2, 0], [1, 2], [0, 0, 3], [4, 0], [2, 1], [0, 0, 4],
    [0, 0, 5], [0, 0, 0, 0], [0, 1, 1], [0, 0, 6], [0, 3, 0], [5, 0], [1, 3], [0, 0, 7],
    [0, 0, 8], [0, 0, 9], [6, 0], [0, 4, 0], [1, 4], [7, 0], [0, 1, 2], [2, 0, 0], [3, 1],
    [2, 2], [8, 0], [0, 5, 0], [1, 5], [1, 0, 1], [0, 2, 1], [9, 0], [0, 6, 0], [0, 0, 0, 1],
    [1, 6], [0, 7, 0],
]


# --- strategies and brute-force helpers ----------------------------------------------------------
@st.composite
def trees(draw, max_nodes=40, vocab=4, allow_virtual=True):
    """Random parents (any earlier node), tokens from a small vocabulary (duplicate sibling
    tokens are common), and, optionally, later duplicates that are leaves flagged virtual."""
    n = draw(st.integers(1, max_nodes))
    parents = [-1] + [draw(st.integers(0, i - 1)) for i in range(1, n)]
    tokens = draw(st.lists(st.integers(0, vocab - 1), min_size=n, max_size=n))
    virtual = None
    if allow_virtual and draw(st.booleans()):
        virtual = np.zeros(n, bool)
        has_child = {p for p in parents[1:]}
        for i in range(1, n):
            dup = any(parents[j] == parents[i] and tokens[j] == tokens[i] for j in range(1, i))
            if dup and i not in has_child:
                virtual[i] = draw(st.booleans())
    return DraftTree(np.array(parents), np.array(tokens), virtual)


def walk_up(parents, i):
    """Node ids from i up to the root (brute force)."""
    out = [i]
    while parents[out[-1]] != -1:
        out.append(int(parents[out[-1]]))
    return out


def real_leaves(tree):
    real = [i for i in range(tree.num_nodes) if tree.virtual is None or not tree.virtual[i]]
    return [i for i in real if not any(tree.parents[j] == i for j in real if j > 0)]


# --- DraftTree: derived arrays and buffers (property 1) ------------------------------------------
@given(trees())
def test_derived_arrays_match_brute_force(tree):
    N = tree.num_nodes
    depth = [len(walk_up(tree.parents, i)) - 1 for i in range(N)]
    np.testing.assert_array_equal(tree.depth, depth)
    assert tree.max_depth == max(depth)
    for i in range(N):
        np.testing.assert_array_equal(tree.children(i),
                                      [j for j in range(1, N) if tree.parents[j] == i])
    assert tree.child_ptr.shape == (N + 1,) and tree.child_idx.shape == (N - 1,)
    assert tree.num_leaves == len(real_leaves(tree))


@given(trees(), st.integers(0, 5))
def test_masks_and_positions(tree, n_past):
    N = tree.num_nodes
    M = ancestor_mask(tree)
    brute = np.zeros((N, N), bool)
    for i in range(N):
        brute[i, walk_up(tree.parents, i)] = True
    np.testing.assert_array_equal(M, brute)
    assert not np.triu(M, 1).any() and M.diagonal().all()
    np.testing.assert_array_equal(M.sum(1), tree.depth + 1)
    A = attention_mask(tree, n_past)
    assert A.shape == (N, n_past + N) and A[:, :n_past].all()
    np.testing.assert_array_equal(A[:, n_past:], brute)
    pos = position_ids(tree, n_past)
    assert pos.dtype == np.int64
    np.testing.assert_array_equal(pos - n_past, [len(walk_up(tree.parents, i)) - 1
                                                 for i in range(N)])


@given(trees())
def test_retrieve_paths(tree):
    retrieve, length = retrieve_paths(tree)
    leaves = real_leaves(tree)
    assert retrieve.shape == (len(leaves), tree.max_depth + 1) and retrieve.dtype == np.int32
    covered = set()
    for row, n, leaf in zip(retrieve, length, leaves):  # rows in increasing leaf index
        assert row[n - 1] == leaf and (row[n:] == -1).all()
        np.testing.assert_array_equal(row[:n], walk_up(tree.parents, leaf)[::-1])
        covered.update(row[:n].tolist())
    real = [i for i in range(tree.num_nodes) if tree.virtual is None or not tree.virtual[i]]
    assert covered == set(real)  # every non-virtual node lies on a path; no virtual one does


def test_hand_built_tree():
    #        0(9)
    #      /   |   \
    #   1(4) 2(4)v  3(5)
    #    |          /  \
    #   4(7)     5(1)  6(1)
    t = DraftTree(np.array([-1, 0, 0, 0, 1, 3, 3]), np.array([9, 4, 4, 5, 7, 1, 1]),
                  np.array([0, 0, 1, 0, 0, 0, 0], bool))
    np.testing.assert_array_equal(t.depth, [0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(t.child_ptr, [0, 3, 4, 4, 6, 6, 6, 6])
    np.testing.assert_array_equal(t.child_idx, [1, 2, 3, 4, 5, 6])
    retrieve, length = retrieve_paths(t)
    np.testing.assert_array_equal(retrieve, [[0, 1, 4], [0, 3, 5], [0, 3, 6]])
    np.testing.assert_array_equal(length, [3, 3, 3])
    assert t.num_leaves == 3 and t.max_depth == 2
    np.testing.assert_array_equal(position_ids(t, 10), [10, 11, 11, 11, 12, 12, 12])


# --- constructors -------------------------------------------------------------------------------
def test_chain():
    t = DraftTree.chain(5, np.array([3, 3, 0]))
    np.testing.assert_array_equal(t.parents, [-1, 0, 1, 2])
    np.testing.assert_array_equal(t.tokens, [5, 3, 3, 0])
    retrieve, length = retrieve_paths(t)
    np.testing.assert_array_equal(retrieve, [[0, 1, 2, 3]])
    np.testing.assert_array_equal(length, [4])
    root_only = DraftTree.chain(2, np.zeros(0, np.int64))
    assert root_only.num_nodes == 1 and root_only.num_leaves == 1
    assert root_only.child_idx.shape == (0,)


def node_paths(tree):
    return [tuple(int(tree.tokens[j]) for j in walk_up(tree.parents, i)[::-1][1:])
            for i in range(tree.num_nodes)]


def test_from_paths_hand_example():
    # (len, path) order: (4,), (1, 2), (1, 3), (1, 3, 0); the (1,) node appears with (1, 2)
    t = DraftTree.from_paths(7, [(1, 3, 0), (1, 2), (4,), (1, 3), (1, 2)])
    assert node_paths(t) == [(), (4,), (1,), (1, 2), (1, 3), (1, 3, 0)]
    np.testing.assert_array_equal(t.parents, [-1, 0, 0, 2, 2, 4])
    assert t.tokens[0] == 7


@given(st.lists(st.lists(st.integers(0, 3), min_size=0, max_size=4), max_size=8),
       st.booleans())
def test_from_paths_is_the_trie(paths, prefix_closed):
    if prefix_closed:
        paths = [p[:k] for p in paths for k in range(1, len(p) + 1)]
    t = DraftTree.from_paths(0, [tuple(p) for p in paths])
    got = node_paths(t)
    prefixes = {()} | {tuple(p[:k]) for p in paths for k in range(len(p) + 1)}
    assert sorted(got) == sorted(prefixes) and len(got) == len(set(got))  # one node per prefix
    # node order: prefixes as first met when the paths are read in (len, path) order
    met = [tuple(p[:k]) for p in sorted(map(tuple, paths), key=lambda s: (len(s), s))
           for k in range(1, len(p) + 1)]
    assert got[1:] == list(dict.fromkeys(met))
    if prefix_closed:  # then node order is exactly the (len, path) order of the prefixes
        assert got == sorted(prefixes, key=lambda s: (len(s), s))


def test_from_template_uses_parent_token_and_rank():
    A = np.array([[1, 2, 0], [2, 0, 1], [0, 2, 1]])  # Token Recycling style: A[token, rank]
    template = [(1, 0), (0,), (1,), (0, 2), (1, 0, 1)]
    t = DraftTree.from_template(2, template, lambda tok, r: A[tok, r])
    # (len, path) order: (0,), (1,), (0, 2), (1, 0), (1, 0, 1)
    np.testing.assert_array_equal(t.parents, [-1, 0, 0, 1, 2, 4])
    np.testing.assert_array_equal(t.tokens, [2, A[2, 0], A[2, 1], A[A[2, 0], 2],
                                             A[A[2, 1], 0], A[A[A[2, 1], 0], 1]])


# --- Medusa buffers: an independent port of generate_medusa_buffers ------------------------------
def medusa_port(choices, topk):
    """NumPy port of Medusa's generate_medusa_buffers, step by step as the original does it."""
    srt = sorted(choices, key=lambda x: (len(x), x))
    L = len(srt) + 1
    counts = []  # how many choices sit at each depth
    for c in srt:
        if len(c) > len(counts):
            counts.append(0)
        counts[len(c) - 1] += 1
    mask = np.eye(L, dtype=np.float32)
    mask[:, 0] = 1
    for k, c in enumerate(srt):
        for d in range(1, len(c)):
            mask[k + 1, srt.index(c[:d]) + 1] = 1
    tree_indices = np.zeros(L, np.int64)
    pos = np.zeros(L, np.int64)
    start = 0
    for depth_idx, cnt in enumerate(counts):
        for k in range(start, start + cnt):
            tree_indices[k + 1] = srt[k][-1] + topk * depth_idx + 1
        pos[start + 1:start + cnt + 1] = depth_idx + 1
        start += cnt
    rows, seen = [], []
    for c in srt[::-1]:
        if c in seen:
            continue
        rows.append([srt.index(c[:d]) for d in range(1, len(c) + 1)])
        seen.extend(c[:d] for d in range(1, len(c) + 1))
    width = max(len(r) for r in rows)
    ret = np.array([r + [-2] * (width - len(r)) for r in rows]) + 1
    ret = np.concatenate([np.zeros((len(rows), 1), np.int64), ret], axis=1)
    return {"medusa_attn_mask": mask[None, None], "tree_indices": tree_indices,
            "medusa_position_ids": pos, "retrieve_indices": ret}


def assert_same_buffers(got, want):
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_medusa_buffers_mc_sim_7b_63():
    got = medusa_buffers(MC_SIM_7B_63, 10)
    assert_same_buffers(got, medusa_port(MC_SIM_7B_63, 10))
    assert got["medusa_attn_mask"].shape == (1, 1, 64, 64)
    assert got["retrieve_indices"].shape == (42, 5)  # 42 leaves, depth 4


@st.composite
def choice_sets(draw):
    """Prefix-closed rank paths: a random tree whose siblings get distinct ranks < topk."""
    topk = draw(st.integers(1, 4))
    n = draw(st.integers(1, 30))
    paths = []
    for _ in range(n):
        parent = draw(st.sampled_from([()] + paths))
        used = {p[-1] for p in paths if p[:-1] == parent}
        free = [r for r in range(topk) if r not in used]
        if free:
            paths.append(parent + (draw(st.sampled_from(free)),))
    order = draw(st.permutations(paths))
    return [list(p) for p in order], topk


@given(choice_sets())
def test_medusa_buffers_random_choices(case):
    choices, topk = case
    buffers = medusa_buffers(choices, topk)
    assert_same_buffers(buffers, medusa_port([list(c) for c in choices], topk))
    # round trip: Medusa's candidates [root, head 0's top-k, ...] give each node its token
    heads = max(len(c) for c in choices)
    cand = np.arange(100, 101 + heads * topk)
    t = tree_from_medusa_buffers(buffers, cand)
    ref = DraftTree.from_template(0, [tuple(c) for c in choices], lambda tok, r: r)
    np.testing.assert_array_equal(t.parents, ref.parents)
    srt = sorted(map(tuple, choices), key=lambda s: (len(s), s))
    np.testing.assert_array_equal(t.tokens[1:], [cand[1 + (len(s) - 1) * topk + s[-1]]
                                                 for s in srt])


def test_medusa_choices_rejected():
    with pytest.raises(ValueError, match="prefix-closed"):
        medusa_buffers([[0, 1]], 10)
    with pytest.raises(ValueError, match="repeat"):
        medusa_buffers([[0], [0]], 10)
    with pytest.raises(ValueError, match="topk"):
        medusa_buffers([[0], [10]], 10)
    with pytest.raises(ValueError, match="choices"):
        medusa_buffers([], 10)
    bad = medusa_buffers([[0], [1]], 4)
    bad["medusa_attn_mask"] = bad["medusa_attn_mask"].copy()
    bad["medusa_position_ids"] = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="position"):
        tree_from_medusa_buffers(bad)


# --- validate(): every invariant ----------------------------------------------------------------
INVALID = [
    ([], [], None, "N >= 1"),
    ([0, 0], [1, 2], None, r"parents\[0\] must be -1"),
    ([-1, 0, 2], [1, 2, 3], None, "topological"),
    ([-1, 0, 5], [1, 2, 3], None, "topological"),
    ([-1, -1], [1, 2], None, "topological"),
    ([-1, 0], [1, 2, 3], None, "shape of parents"),
    ([-1, 0], [1, -4], None, "tokens must lie"),
    ([-1, 0, 0], [1, 2, 2], [True, False, False], r"virtual\[0\]"),
    ([-1, 0, 0], [1, 2, 2], [False, True, False], "earlier sibling"),  # the first copy
    ([-1, 0, 0, 2], [1, 2, 2, 3], [False, False, True, False], "leaf"),
    ([-1, 0, 1], [1, 2, 2], [False, False, True], "earlier sibling"),  # same token, not sibling
    ([-1, 0, 0], [1, 2, 2], [False, False], "shape of parents"),
]


@pytest.mark.parametrize("parents, tokens, virtual, match", INVALID)
def test_validate_rejects(parents, tokens, virtual, match):
    v = None if virtual is None else np.array(virtual, bool)
    with pytest.raises(ValueError, match=match):
        DraftTree(np.array(parents, np.int64), np.array(tokens, np.int64), v)


def test_validate_types_and_vocab():
    with pytest.raises(TypeError, match="parents"):
        DraftTree(np.array([-1.0, 0.0]), np.array([1, 2]))
    with pytest.raises(TypeError, match="virtual"):
        DraftTree(np.array([-1, 0, 0]), np.array([1, 2, 2]), np.array([0, 0, 1]))
    t = DraftTree(np.array([-1, 0]), np.array([1, 4]))
    assert t.validate(vocab_size=5) is t
    with pytest.raises(ValueError, match="vocab_size"):
        t.validate(vocab_size=4)
    with pytest.raises(ValueError):  # stored arrays are read-only copies
        t.tokens[1] = 0


def test_caller_arrays_untouched():
    parents, tokens = np.array([-1, 0, 0]), np.array([3, 1, 2])
    t = DraftTree(parents, tokens)
    parents[1], tokens[1] = 7, 7
    np.testing.assert_array_equal(t.parents, [-1, 0, 0])
    np.testing.assert_array_equal(t.tokens, [3, 1, 2])


# --- TreeBatch ----------------------------------------------------------------------------------
@given(st.lists(trees(max_nodes=12), min_size=1, max_size=4), st.integers(0, 3))
def test_tree_batch_round_trip(tree_list, extra):
    n_max = max(t.num_nodes for t in tree_list) + extra
    batch = TreeBatch.from_trees(tree_list, n_max=n_max)
    assert batch.parents.shape == batch.tokens.shape == (len(tree_list), n_max)
    for b, t in enumerate(tree_list):
        n = t.num_nodes
        assert batch.num_nodes[b] == n
        assert (batch.parents[b, n:] == -2).all() and (batch.tokens[b, n:] == -1).all()
        back = batch.tree(b)
        np.testing.assert_array_equal(back.parents, t.parents)
        np.testing.assert_array_equal(back.tokens, t.tokens)
        np.testing.assert_array_equal(back.real, t.real)


def test_tree_batch_rejects():
    t = DraftTree.chain(1, np.array([2, 3]))
    with pytest.raises(ValueError, match="n_max"):
        TreeBatch.from_trees([t], n_max=2)
    good = TreeBatch.from_trees([t], n_max=5)
    p, k, n = good.parents.copy(), good.tokens.copy(), good.num_nodes
    p[0, 4] = 0  # a padding entry that is not -2
    with pytest.raises(ValueError, match="padding"):
        TreeBatch(p, k, n)
    with pytest.raises(ValueError, match="num_nodes"):
        TreeBatch(good.parents, good.tokens, np.array([6]))
    p = good.parents.copy()
    p[0, 2] = 2  # tree 0 is not topological
    with pytest.raises(ValueError, match="tree 0"):
        TreeBatch(p, good.tokens, n)
    with pytest.raises(TypeError, match="trees"):
        TreeBatch.from_trees([])


# --- node orders --------------------------------------------------------------------------------
@given(trees())
def test_dfs_permutation(tree):
    perm = dfs_permutation(tree)
    assert sorted(perm.tolist()) == list(range(tree.num_nodes)) and perm[0] == 0
    new = permute(tree, perm)
    # preorder: every subtree is one contiguous block starting at its root
    M = ancestor_mask(new)
    for i in range(new.num_nodes):
        desc = np.flatnonzero(M[:, i])
        np.testing.assert_array_equal(desc, np.arange(i, i + desc.size))
        # sibling order is kept: children map back to increasing old ids
        old = perm[new.children(i)]
        assert (np.diff(old) > 0).all()


@st.composite
def trees_and_orders(draw):
    """A tree and a random topological order of its nodes (the root first). Without virtual
    nodes: an order that moves a virtual copy before its first copy is rightly rejected."""
    tree = draw(trees(allow_virtual=False))
    placed, perm = {0}, [0]
    while len(perm) < tree.num_nodes:
        ready = [i for i in range(tree.num_nodes) if i not in placed
                 and tree.parents[i] in placed]
        i = draw(st.sampled_from(ready))
        placed.add(i)
        perm.append(i)
    return tree, np.array(perm)


@given(trees_and_orders())
def test_permute_transforms_masks_and_inverts(case):
    tree, perm = case
    new = permute(tree, perm)
    np.testing.assert_array_equal(ancestor_mask(new), ancestor_mask(tree)[perm][:, perm])
    np.testing.assert_array_equal(new.tokens, tree.tokens[perm])
    np.testing.assert_array_equal(new.depth, tree.depth[perm])
    np.testing.assert_array_equal(new.real, tree.real[perm])
    inv = np.argsort(perm)
    back = permute(new, inv)
    np.testing.assert_array_equal(back.parents, tree.parents)
    np.testing.assert_array_equal(back.tokens, tree.tokens)


def test_permute_keeps_virtual_valid_only_in_sibling_order():
    t = DraftTree(np.array([-1, 0, 0]), np.array([0, 5, 5]), np.array([0, 0, 1], bool))
    with pytest.raises(ValueError, match="earlier sibling"):
        permute(t, np.array([0, 2, 1]))  # the virtual copy would come first


def test_permute_rejects():
    t = DraftTree(np.array([-1, 0, 1]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="perm"):
        permute(t, np.array([1, 0, 2]))  # root not first
    with pytest.raises(ValueError, match="perm"):
        permute(t, np.array([0, 1, 1]))  # not a permutation
    with pytest.raises(ValueError, match="perm"):
        permute(t, np.array([0, 2, 1]))  # child before its parent


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_nonzero_blocks_brute_force(R, C, block, seed):
    m = np.random.default_rng(seed).random((R, C)) < 0.2
    want = sum(m[r:r + block, c:c + block].any() for r in range(0, R, block)
               for c in range(0, C, block))
    assert nonzero_blocks(m, block) == want


def test_nonzero_blocks_dfs_example():
    # root with two chains of 3 written interleaved: DFS makes both chains contiguous
    t = DraftTree(np.array([-1, 0, 0, 1, 2, 3, 4]), np.arange(7))
    assert nonzero_blocks(ancestor_mask(t), 2) == 10  # 1 + 2 + 3 + 4 tiles per tile row
    assert nonzero_blocks(ancestor_mask(permute(t, dfs_permutation(t))), 2) == 8  # 1+2+2+3
