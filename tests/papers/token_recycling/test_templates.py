"""Template invariants of "2.2.2" (property 2), the ablation templates and the buffers, with
expected values read off the official template list by hand."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.papers.token_recycling import templates
from refseq.papers.token_recycling.templates import (
    TEMPLATE_2_2_2,
    template_buffers,
    template_chain,
    template_from_layer_counts,
)


@pytest.fixture(scope="module")
def buf():
    return template_buffers(TEMPLATE_2_2_2, 8)


def test_2_2_2_counts_depth_and_ranks(buf):
    assert len(TEMPLATE_2_2_2) == 80 and buf.num_nodes == 81
    assert buf.layer_sizes == (1, 8, 21, 25, 15, 8, 3)
    assert buf.max_depth == 6  # at most 7 tokens per step (root + 6 drafts)
    assert all(0 <= r < 8 for e in TEMPLATE_2_2_2 for r in e)
    assert buf.layer_bounds.tolist() == [1, 9, 30, 55, 70, 78, 81]  # the official deep_split


def test_2_2_2_sorted_and_prefix_closed():
    assert TEMPLATE_2_2_2 == sorted(TEMPLATE_2_2_2, key=lambda e: (len(e), e))
    assert len(set(TEMPLATE_2_2_2)) == 80
    known = set(TEMPLATE_2_2_2)
    assert all(e[:d] in known for e in TEMPLATE_2_2_2 for d in range(1, len(e)))


def test_2_2_2_is_imbalanced_children_non_increasing_in_rank():
    known = [()] + TEMPLATE_2_2_2
    n_children = {e: sum(1 for c in TEMPLATE_2_2_2 if c[:-1] == e) for e in known}
    for parent in known:
        counts = [n_children.get(parent + (r,), 0) for r in range(8)
                  if parent + (r,) in n_children]
        assert counts == sorted(counts, reverse=True), parent
    assert n_children[()] == 8 and n_children[(0,)] == 8 and n_children[(7,)] == 1


def test_2_2_2_buffers_by_hand(buf):
    # node j + 1 is entry j: (0, 0) is node 9, its parent (0,) node 1; (7, 0) node 29 <- (7,) 8
    assert buf.parents[9] == 1 and buf.parents[29] == 8 and buf.rank[29] == 0
    assert buf.parents[:9].tolist() == [-1] + [0] * 8 and buf.rank[1:9].tolist() == list(range(8))
    last = TEMPLATE_2_2_2.index((0, 0, 0, 1, 0, 0)) + 1
    assert last == 80
    anc = [0] + [TEMPLATE_2_2_2.index((0, 0, 0, 1, 0, 0)[:d]) + 1 for d in range(1, 7)]
    assert np.flatnonzero(buf.allow[80]).tolist() == sorted(anc)
    assert buf.positions(10).tolist() == (10 + buf.depth).tolist()
    assert buf.rel_positions[80] == 6


def test_retrieve_rows_are_the_leaves(buf):
    has_child = np.zeros(81, bool)
    has_child[buf.parents[1:]] = True
    leaves = np.flatnonzero(~has_child)
    assert buf.retrieve.shape == (leaves.size, 7)
    assert buf.retrieve[np.arange(leaves.size), buf.retrieve_len - 1].tolist() == leaves.tolist()
    assert (buf.retrieve_len - 1).tolist() == buf.depth[leaves].tolist()
    for row, n in zip(buf.retrieve, buf.retrieve_len):
        assert row[0] == 0 and (row[n:] == -1).all()
        assert all(buf.parents[row[t]] == row[t - 1] for t in range(1, n))


def test_buffers_are_read_only(buf):
    with pytest.raises(ValueError):
        buf.parents[1] = 3
    assert buf.tree(np.arange(81)).tokens[80] == 80


def test_chain_and_layer_count_templates():
    assert template_chain(3) == [(0,), (0, 0), (0, 0, 0)]
    t = template_from_layer_counts([3, 4, 2], k=4)
    assert t == [(0,), (1,), (2,), (0, 0), (0, 1), (0, 2), (0, 3), (0, 0, 0), (0, 0, 1)]
    b = templates.template_buffers(template_from_layer_counts([8, 20, 20, 20, 10, 2]), 8)
    assert b.num_nodes == 81 and b.max_depth == 6
    assert template_buffers(template_chain(6), 1).layer_sizes == (1,) * 7


@pytest.mark.parametrize("template, k, exc, match", [
    ([(1,), (0,)], 8, ValueError, "sorted"),
    ([(0,), (0,)], 8, ValueError, "repeat"),
    ([(0,), (1, 0)], 8, ValueError, "prefix-closed"),
    ([(0,), (8,)], 8, ValueError, r"\[0, k = 8\)"),
    ([], 8, ValueError, "non-empty"),
    ("0,1", 8, TypeError, "list of rank tuples"),
    ([(0,), ()], 8, TypeError, "non-empty tuple"),
    ([(0,), (1.0,)], 8, TypeError, "integer"),
    ([(0,), (-1,)], 8, ValueError, ">= 0"),
])
def test_bad_templates(template, k, exc, match):
    with pytest.raises(exc, match=match):
        template_buffers(template, k)


def test_bad_layer_counts_and_depth():
    with pytest.raises(ValueError, match="exceeds"):
        template_from_layer_counts([2, 17], k=8)
    with pytest.raises(TypeError, match="counts_per_depth"):
        template_from_layer_counts(5)
    with pytest.raises(ValueError, match="counts_per_depth"):
        template_from_layer_counts([0])
    with pytest.raises(ValueError, match="depth"):
        template_chain(0)
    with pytest.raises(TypeError, match="k"):
        template_buffers(TEMPLATE_2_2_2, 8.0)
