"""Static draft-tree templates of Token Recycling and their buffers (Luo et al., arXiv
2408.08696, Sec. 3.2 and Appendix; official code ``model/recycling/tree_template_.py``).

A template is a prefix-closed list of *rank tuples*: ``(r_1, ..., r_d)`` is the node reached
from the root by taking the ``r_1``-th recorded successor, then the ``r_2``-th successor of that
token, and so on. Node 0 is the root, node ``j + 1`` the j-th entry; entries are sorted by
``(len, path)`` (breadth first), so each depth is one contiguous layer of nodes.

The tree is static, so every buffer (parents, ranks, depths, layer bounds, the ancestor mask,
relative positions and the root-to-leaf paths) is computed once per template; a step only
shifts the positions by ``n_past`` (the official ``prepare_data``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.buffers import ancestor_mask, retrieve_paths
from refseq.decoding.speculative.tree import DraftTree

__all__ = ["TEMPLATE_2_2_2", "TemplateBuffers", "template_buffers", "template_chain",
           "template_from_layer_counts"]

#: The official default template "2.2.2" (``choose_tree_template("2.2.2")``): 80 draft nodes
#: plus the root, layer sizes 8, 21, 25, 15, 8, 3 (depth 6, so at most 7 tokens per step).
TEMPLATE_2_2_2: list[tuple[int, ...]] = (
    [(r,) for r in range(8)]
    + [(0, r) for r in range(8)] + [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2),
                                    (3, 0), (3, 1), (4, 0), (5, 0), (6, 0), (7, 0)]
    + [(0, 0, r) for r in range(8)] + [(0, 1, 0), (0, 1, 1), (0, 1, 2), (0, 2, 0), (0, 2, 1),
                                       (0, 3, 0), (0, 4, 0), (0, 5, 0), (0, 6, 0), (0, 7, 0),
                                       (1, 0, 0), (1, 0, 1), (1, 1, 0), (2, 0, 0), (3, 0, 0),
                                       (4, 0, 0), (5, 0, 0)]
    + [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 2), (0, 0, 0, 3), (0, 0, 0, 4), (0, 0, 1, 0),
       (0, 0, 1, 1), (0, 0, 2, 0), (0, 0, 3, 0), (0, 0, 4, 0), (0, 1, 0, 0), (0, 2, 0, 0),
       (1, 0, 0, 0), (2, 0, 0, 0), (3, 0, 0, 0)]
    + [(0, 0, 0, 0, 0), (0, 0, 0, 0, 1), (0, 0, 0, 0, 2), (0, 0, 0, 1, 0), (0, 0, 0, 2, 0),
       (0, 0, 1, 0, 0), (0, 1, 0, 0, 0), (1, 0, 0, 0, 0)]
    + [(0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 1), (0, 0, 0, 1, 0, 0)]
)


@dataclass(frozen=True, eq=False)
class TemplateBuffers:
    """The static buffers of one template (N = entries + 1 nodes, D = depth, P = leaves).

    Attributes
    ----------
    template : tuple of rank tuples (the entries, node ``j + 1`` = entry ``j``)
    k : int, the matrix width the ranks index
    parents : (N,) int32, -1 at the root (the official ``father_index``)
    rank : (N,) int32, the last rank of each entry, -1 at the root (``candi_index``)
    depth : (N,) int32, entry length (``candi_positon_ids`` before the ``n_past`` shift)
    layer_bounds : (D+1,) int64, layer d (d = 1..D) is nodes ``layer_bounds[d-1]`` to
        ``layer_bounds[d] - 1`` (the official ``deep_split``; ``layer_bounds[0] == 1``)
    allow : (N, N) bool, ``allow[i, j]`` iff j is i or an ancestor of i (tree attention)
    rel_positions : (N,) int64, the depths; node i sits at ``n_past + rel_positions[i]``
    retrieve : (P, D+1) int32, root-to-leaf node ids in increasing leaf order, -1 padded
        (the official ``search_path``)
    retrieve_len : (P,) int32, valid entries per row (leaf depth + 1)
    """

    template: tuple
    k: int
    parents: np.ndarray
    rank: np.ndarray
    depth: np.ndarray
    layer_bounds: np.ndarray
    allow: np.ndarray
    rel_positions: np.ndarray
    retrieve: np.ndarray
    retrieve_len: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.parents.shape[0])

    @property
    def max_depth(self) -> int:
        return int(self.depth.max())

    @property
    def layer_sizes(self) -> tuple:
        """Nodes per depth, the root included: ``(1, 8, 21, 25, 15, 8, 3)`` for "2.2.2"."""
        return (1,) + tuple(int(n) for n in np.diff(self.layer_bounds))

    def positions(self, n_past) -> np.ndarray:
        """``(N,) int64`` position ids ``n_past + depth`` of one step."""
        n_past = _checks.check_number(n_past, "n_past", integer=True, low=0)
        return n_past + self.rel_positions

    def tree(self, tokens) -> DraftTree:
        """The :class:`DraftTree` with this template's parents and ``tokens (N,)``."""
        return DraftTree(self.parents, tokens)


def _entries(template, name: str = "template") -> tuple:
    if not isinstance(template, (list, tuple)):
        raise TypeError(f"{name} must be a non-empty list of rank tuples, got "
                        f"{type(template).__name__}")
    if len(template) == 0:
        raise ValueError(f"{name} must be a non-empty list of rank tuples, got an empty list")
    out = []
    for j, e in enumerate(template):
        if not isinstance(e, (list, tuple)) or len(e) == 0:
            raise TypeError(f"{name}[{j}] must be a non-empty tuple of ranks, got {e!r}")
        for r in e:
            _checks.check_number(r, f"{name}[{j}] ranks", integer=True, low=0)
        out.append(tuple(int(r) for r in e))
    return tuple(out)


def template_buffers(template, k: int = 8) -> TemplateBuffers:
    """The buffers of ``template`` (the official ``prepare_data``, in NumPy).

    Parameters
    ----------
    template : list of rank tuples
        Distinct, non-empty, sorted by ``(len, path)``, prefix-closed (every proper prefix of an
        entry is an entry), ranks in ``[0, k)``.
    k : int
        Width of the adjacency matrix the ranks index.

    Returns
    -------
    TemplateBuffers

    Raises
    ------
    TypeError
        A non-list template or a non-integer rank.
    ValueError
        Unsorted, repeated or non-prefix-closed entries, a rank ``>= k``.
    """
    k = _checks.check_number(k, "k", integer=True, low=1)
    entries = _entries(template)
    if len(set(entries)) != len(entries):
        raise ValueError("template must not repeat an entry")
    if list(entries) != sorted(entries, key=lambda e: (len(e), e)):
        raise ValueError("template entries must be sorted by (len, path): node j + 1 is entry j "
                         "and each depth must be one contiguous layer")
    if max(max(e) for e in entries) >= k:
        raise ValueError(f"template ranks must lie in [0, k = {k}), found "
                         f"{max(max(e) for e in entries)}")
    index = {e: j + 1 for j, e in enumerate(entries)}
    parents = [-1]
    for e in entries:
        if len(e) > 1 and e[:-1] not in index:
            raise ValueError(f"template must be prefix-closed: {e} is there but its parent "
                             f"{e[:-1]} is not")
        parents.append(index[e[:-1]] if len(e) > 1 else 0)
    parents = np.array(parents, np.int32)
    rank = np.array([-1] + [e[-1] for e in entries], np.int32)
    depth = np.array([0] + [len(e) for e in entries], np.int32)
    counts = np.bincount(depth)  # (D+1,) nodes per depth, counts[0] == 1
    layer_bounds = np.cumsum(counts).astype(np.int64)  # (D+1,) layer d ends at bounds[d]
    tree = DraftTree(parents, np.zeros(parents.size, np.int64))
    retrieve, retrieve_len = retrieve_paths(tree)
    arrays = dict(parents=parents, rank=rank, depth=depth, layer_bounds=layer_bounds,
                  allow=ancestor_mask(tree), rel_positions=depth.astype(np.int64),
                  retrieve=retrieve, retrieve_len=retrieve_len)
    for a in arrays.values():
        a.setflags(write=False)
    return TemplateBuffers(template=entries, k=k, **arrays)


def template_from_layer_counts(counts_per_depth, k: int = 8) -> list:
    """An imbalanced template with ``counts_per_depth[d - 1]`` nodes at depth d.

    Each layer takes the lexicographically smallest rank tuples whose parent is in the previous
    layer, so lower ranks (more likely successors) get more children and deeper branches, the
    design of "2.2.2". Used for the breadth and depth ablations of Sec. 5.1 (the exact trees of
    that section are not published).

    Parameters
    ----------
    counts_per_depth : sequence of int >= 1
        Layer sizes below the root; layer d can hold at most ``k *`` (layer d - 1's size).
    k : int
        Number of ranks (matrix width).
    """
    k = _checks.check_number(k, "k", integer=True, low=1)
    if not isinstance(counts_per_depth, (list, tuple)) or not counts_per_depth:
        raise TypeError("counts_per_depth must be a non-empty list of positive ints, got "
                        f"{counts_per_depth!r}")
    counts = [_checks.check_number(c, "counts_per_depth", integer=True, low=1)
              for c in counts_per_depth]
    out, layer = [], [()]
    for d, c in enumerate(counts, start=1):
        cand = sorted(p + (r,) for p in layer for r in range(k))
        if c > len(cand):
            raise ValueError(f"counts_per_depth[{d - 1}] = {c} exceeds k * (nodes at depth "
                             f"{d - 1}) = {len(cand)}")
        layer = cand[:c]
        out += layer
    return out


def template_chain(depth: int) -> list:
    """The chain template ``[(0,), (0, 0), ...]`` of ``depth`` nodes (rank-0 successors only)."""
    depth = _checks.check_number(depth, "depth", integer=True, low=1)
    return [(0,) * d for d in range(1, depth + 1)]
