"""Candidate pruning, the trie and the ablation drafters (refseq.papers.aded.candidates)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.speculative.buffers import retrieve_paths
from refseq.papers.aded import (
    TrigramMatrix,
    cut_to_choices,
    draft_full_traversal,
    draft_greedy_chain,
    paths_to_tree,
)
from refseq.papers.aded import candidates as candidates_mod

paths_st = st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=5), min_size=0,
                    max_size=30, unique_by=tuple)


def test_cut_by_hand():
    paths = [[1], [2, 3, 4], [5, 5], [6, 7]]  # distinct counts 1, 3, 1, 2 (total 7)
    assert cut_to_choices(paths, 7) == paths
    assert cut_to_choices(paths, 4) == [[1], [5, 5], [6, 7]]  # drops [2,3,4]: 7 - 3 = 4
    assert cut_to_choices(paths, 3) == [[1], [5, 5]]  # then [6,7]
    assert cut_to_choices(paths, 4, rule="keep_longest") == [[2, 3, 4]]  # drops 1, 1, then 2
    assert cut_to_choices([], 5) == []
    assert candidates_mod.CUT_RULES == ("released", "keep_longest")


@given(paths_st, st.integers(0, 40))
def test_cut_budget(paths, choices):
    kept = cut_to_choices(paths, choices)
    total = sum(len(set(p)) for p in kept)
    assert total <= choices or kept == []
    assert all(p in paths for p in kept)
    assert [p for p in paths if p in kept] == kept  # input order


def _root_paths(tree):
    return {_node_path(tree, i) for i in range(1, tree.num_nodes)}


@given(paths_st, st.integers(0, 64))
def test_trie_is_prefix_closed_bounded_and_holds_the_paths(paths, max_nodes):
    tree = paths_to_tree(9, paths, max_nodes)
    nodes = _root_paths(tree)
    assert tree.num_nodes - 1 == len(nodes) <= max_nodes
    assert all(p[:-1] in nodes or len(p) == 1 for p in nodes)  # prefix closed
    prefixes = sorted({tuple(p[:k]) for p in paths for k in range(1, len(p) + 1)},
                      key=lambda s: (len(s), s))
    assert nodes == set(prefixes[:max_nodes])  # the first max_nodes in (len, tokens) order
    if len(prefixes) <= max_nodes:
        assert all(tuple(p) in nodes for p in paths)
    keys = [(len(p), p) for p in (_node_path(tree, i) for i in range(tree.num_nodes))]
    assert keys == sorted(keys)  # nodes numbered in (len, tokens) order


def _node_path(tree, i):
    toks, j = [], i
    while j > 0:
        toks.append(int(tree.tokens[j]))
        j = int(tree.parents[j])
    return tuple(toks[::-1])


def test_empty_candidates_and_fallback():
    t = paths_to_tree(4, [])
    assert t.num_nodes == 1 and int(t.tokens[0]) == 4
    f = paths_to_tree(4, [], fallback_token=100)
    assert f.tokens.tolist() == [4, 100] and f.parents.tolist() == [-1, 0]
    r, rl = retrieve_paths(paths_to_tree(0, [[1, 2], [1, 3], [4]]))
    assert sorted(rl.tolist()) == [2, 3, 3]


def test_greedy_chain_and_full_traversal_by_hand():
    m = TrigramMatrix()
    m.set_weight((0, 1), 2, 0.7)
    m.set_weight((0, 1), 3, 0.3)
    m.set_weight((1, 2), 5, 0.9)
    m.set_weight((1, 3), 6, 1.0)
    assert draft_greedy_chain(m, (0, 1), 4) == [[2, 5]]  # (2,5) has no successor
    assert draft_greedy_chain(m, (0, 1), 1) == [[2]]
    assert draft_greedy_chain(m, (7, 7), 3) == []
    assert draft_full_traversal(m, (0, 1), 3, 10) == [[2], [3], [2, 5], [3, 6]]
    assert draft_full_traversal(m, (0, 1), 3, 3) == [[2], [3], [2, 5]]
    assert draft_full_traversal(m, (0, 1), 1, 10) == [[2], [3]]


def test_bad_inputs():
    with pytest.raises(TypeError, match="paths"):
        cut_to_choices("ab", 3)
    with pytest.raises(ValueError, match="empty"):
        cut_to_choices([[]], 3)
    with pytest.raises(ValueError, match="paths\\[0\\]"):
        cut_to_choices([[-1]], 3)
    with pytest.raises(ValueError, match="rule"):
        cut_to_choices([[1]], 3, rule="shortest")
    with pytest.raises(ValueError, match="paths\\[0\\]"):
        cut_to_choices([np.array(3)], 3)  # a 0-d array is not a path
    with pytest.raises(TypeError, match="root_pair"):
        draft_greedy_chain(TrigramMatrix(), (0,), 2)
    with pytest.raises(ValueError, match="max_nodes"):
        paths_to_tree(0, [[1]], -1)
    with pytest.raises(TypeError, match="root_token"):
        paths_to_tree(0.5, [[1]])
    with pytest.raises(TypeError, match="matrix"):
        draft_greedy_chain(None, (0, 1), 2)
    with pytest.raises(ValueError, match="depth"):
        draft_full_traversal(TrigramMatrix(), (0, 1), -1, 3)
