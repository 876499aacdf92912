"""Draft trees and their node orders (guide: docs/speculative.md). The batched container is
:mod:`refseq.decoding.speculative.batch`, the masks, positions, retrieve paths and Medusa
buffers of one verification step are :mod:`refseq.decoding.speculative.buffers`.

A draft tree holds the candidate continuations of one speculative-decoding step. Node 0 is the
root: the last committed token, whose KV entry is *not yet* cached (the convention of Medusa,
EAGLE and Token Recycling). Every other node ``i`` carries a drafted token ``tokens[i]`` and a
parent ``parents[i] < i`` (topological order; no BFS order is assumed). Siblings are ordered by
node index: the order in which they were drawn, which stochastic verification depends on.

=================  =================  ====================================================
symbol             code               shape / meaning
=================  =================  ====================================================
``pi(i)``          ``parents[i]``     (N,) int32; -1 at the root, ``0 <= pi(i) < i``
``x_i``            ``tokens[i]``      (N,) int32; ``x_0`` = the root (last committed) token
``d(i)``           ``depth[i]``       (N,) int32; 0 at the root
``anc*(i)``        ``ancestor_mask``  (N, N) bool; ``M[i, j]`` iff j is i or an ancestor of i
``n_past``         ``n_past``         number of cached context tokens (excludes the root)
=================  =================  ====================================================

Virtual duplicates (i.i.d. drafts only): a later sibling that repeats an earlier sibling's token
may be flagged ``virtual``. It must be a leaf; it is never accepted and needs no target row, but
it keeps its place in the sibling order because its residual update still happens there. Being a
leaf, no other node attends to it, so the masks below are structural (a virtual row is built
like any leaf and a target may skip it); :func:`retrieve_paths` leaves it out.

References
----------
Miao et al. (2023), SpecInfer, arXiv:2305.09781, Sec. 4 (token trees, tree attention).
Cai et al. (2024), Medusa, arXiv:2401.10774, Sec. 2.1.2 (static trees and their buffers).
Chen et al. (2024), Sequoia, arXiv:2402.12374 (sampling trees without replacement).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from refseq import _checks

__all__ = ["DraftTree", "dfs_permutation", "nonzero_blocks", "permute"]

_I32 = 2**31 - 1


def _ids(x, name: str, low=None) -> np.ndarray:
    """A read-only int32 copy of the 1-d integer array ``x`` (never the caller's array)."""
    arr = _checks.int_array(x, name, ndim=1, form="(N,)", low=low, high=_I32)
    out = arr.astype(np.int32)  # astype copies
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class DraftTree:
    """A draft token tree in topological order (validated on construction).

    Parameters
    ----------
    parents : ndarray (N,), int
        ``parents[0] == -1``; ``0 <= parents[i] < i`` for ``i >= 1``.
    tokens : ndarray (N,), int
        ``tokens[0]`` is the root (last committed, uncached) token; tokens are ``>= 0``.
    virtual : ndarray (N,), bool, optional
        Virtual duplicates (see the module docstring); ``None`` means none.

    The arrays are stored as read-only int32 (bool) copies. Derived (computed once):
    ``depth (N,)``, ``child_ptr (N+1,)`` / ``child_idx (N-1,)`` (children in CSR form, each
    node's children in sibling order), ``num_nodes``, ``max_depth``, ``num_leaves`` (rows of
    :func:`retrieve_paths`: non-virtual nodes without non-virtual children).

    Raises
    ------
    TypeError
        Non-integer ``parents``/``tokens`` or non-boolean ``virtual``.
    ValueError
        Any invariant violation (see :meth:`validate`).
    """

    parents: np.ndarray
    tokens: np.ndarray
    virtual: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "parents", _ids(self.parents, "parents", low=-1))
        object.__setattr__(self, "tokens", _ids(self.tokens, "tokens", low=0))
        if self.virtual is not None:
            v = np.asarray(self.virtual)
            if v.dtype != np.bool_:
                raise TypeError(f"virtual must be a boolean array (N,) or None, got {v.dtype}")
            v = v.copy()
            v.setflags(write=False)
            object.__setattr__(self, "virtual", v)
        self.validate()

    # --- invariants ------------------------------------------------------------------------
    def validate(self, vocab_size=None) -> DraftTree:
        """Check every invariant; return ``self`` or raise ``ValueError`` naming the array.

        Invariants: at least one node; ``parents`` and ``tokens`` (and ``virtual``) have the
        same length N; ``parents[0] == -1`` and ``0 <= parents[i] < i``; tokens ``>= 0`` (and
        ``< vocab_size`` when given); a virtual node is not the root, is a leaf, and repeats the
        token of an earlier sibling.
        """
        p, t, n = self.parents, self.tokens, self.parents.shape[0]
        if n == 0:
            raise ValueError("parents must hold at least the root node (N >= 1), got N = 0")
        if t.shape != p.shape:
            raise ValueError(f"tokens must have the shape of parents (N,) = {p.shape}, "
                             f"got {t.shape}")
        if p[0] != -1:
            raise ValueError(f"parents[0] must be -1 (node 0 is the root), got {p[0]}")
        bad = np.flatnonzero((p[1:] < 0) | (p[1:] >= np.arange(1, n)))
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(f"parents must satisfy 0 <= parents[i] < i for i >= 1 (topological "
                             f"order), got parents[{i}] = {p[i]}")
        if t.min() < 0:
            raise ValueError(f"tokens must be >= 0, found {t.min()}")
        if vocab_size is not None:
            V = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1)
            if t.max() >= V:
                raise ValueError(f"tokens must lie in [0, vocab_size = {V}), found {t.max()}")
        if self.virtual is not None:
            self._validate_virtual()
        return self

    def _validate_virtual(self):
        v, p, t = self.virtual, self.parents, self.tokens
        if v.shape != p.shape:
            raise ValueError(f"virtual must have the shape of parents (N,) = {p.shape}, "
                             f"got {v.shape}")
        if v[0]:
            raise ValueError("virtual[0] must be False (the root is committed, not a draft)")
        has_child = np.zeros(p.shape[0], bool)
        has_child[p[1:]] = True
        for i in np.flatnonzero(v):
            if has_child[i]:
                raise ValueError(f"virtual node {i} must be a leaf (a virtual duplicate is never "
                                 f"accepted, so it cannot have children)")
            earlier = np.flatnonzero(p[:i] == p[i])  # earlier siblings of i
            if not (t[earlier] == t[i]).any():
                raise ValueError(f"virtual node {i} must repeat the token of an earlier sibling "
                                 f"(token {t[i]} is its first occurrence)")

    # --- derived ---------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self.parents.shape[0])

    @property
    def real(self) -> np.ndarray:
        """(N,) bool: the nodes that are not virtual (the target rows that matter)."""
        return np.ones(self.num_nodes, bool) if self.virtual is None else ~self.virtual

    @cached_property
    def depth(self) -> np.ndarray:
        d = np.zeros(self.num_nodes, np.int32)
        for i in range(1, self.num_nodes):  # parents come first: d[parent] is final
            d[i] = d[self.parents[i]] + 1
        return d

    @property
    def max_depth(self) -> int:
        return int(self.depth.max())

    @cached_property
    def child_ptr(self) -> np.ndarray:
        counts = np.bincount(self.parents[1:], minlength=self.num_nodes)  # (N,)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)  # (N+1,)

    @cached_property
    def child_idx(self) -> np.ndarray:
        # a stable sort groups children by parent and keeps increasing index (sibling order)
        return (np.argsort(self.parents[1:], kind="stable") + 1).astype(np.int32)  # (N-1,)

    def children(self, i) -> np.ndarray:
        """Children of node ``i`` in sibling order, ``(k,)`` int32."""
        i = _checks.check_number(i, "i", integer=True, low=0, high=self.num_nodes - 1)
        return self.child_idx[self.child_ptr[i]:self.child_ptr[i + 1]]

    @cached_property
    def _leaves(self) -> np.ndarray:
        has_real_child = np.zeros(self.num_nodes, bool)
        has_real_child[self.parents[1:][self.real[1:]]] = True
        return np.flatnonzero(self.real & ~has_real_child)

    @property
    def num_leaves(self) -> int:
        return int(self._leaves.size)

    # --- constructors ----------------------------------------------------------------------
    @classmethod
    def chain(cls, root, tokens) -> DraftTree:
        """A chain ``root -> tokens[0] -> ... -> tokens[K-1]`` (``tokens (K,)``, K >= 0)."""
        root = _checks.check_number(root, "root", integer=True, low=0)
        tok = _checks.int_array(tokens, "tokens", ndim=1, form="(K,)", low=0)
        K = tok.shape[0]
        return cls(np.arange(-1, K, dtype=np.int32), np.concatenate([[root], tok]))

    @classmethod
    def from_paths(cls, root, paths) -> DraftTree:
        """The trie of token ``paths`` (sequences of tokens below the root).

        Paths are inserted in ``(len, path)`` order; a node is created when a path first needs
        it, so siblings never share a token. A trie merges repeated draws: never use it for
        i.i.d. sampled children (their duplicates must stay separate; see the guide).
        """
        root = _checks.check_number(root, "root", integer=True, low=0)
        seqs = _paths(paths, "paths")
        parents, tokens, node = [-1], [root], {(): 0}
        for path in sorted(seqs, key=lambda s: (len(s), s)):
            for k in range(1, len(path) + 1):
                if path[:k] not in node:
                    node[path[:k]] = len(parents)
                    parents.append(node[path[:k - 1]])
                    tokens.append(path[k - 1])
        return cls(np.array(parents), np.array(tokens))

    @classmethod
    def from_template(cls, root, template, cand) -> DraftTree:
        """A tree from a rank template (Medusa choices, Token Recycling's static tree).

        ``template`` is a prefix-closed list of rank paths; node ``1 + k`` is the k-th path in
        ``(len, path)`` order (Medusa's node order), and its token is
        ``cand(parent_token, rank)`` with ``rank = path[-1]``, e.g. ``adjacency[token, rank]``.
        """
        root = _checks.check_number(root, "root", integer=True, low=0)
        if not callable(cand):
            raise TypeError(f"cand must be a callable (parent_token, rank) -> token, "
                            f"got {type(cand).__name__}")
        order = _prefix_closed(template, "template")
        node = {path: k + 1 for k, path in enumerate(order)}
        parents, tokens = [-1], [root]
        for path in order:
            parents.append(node.get(path[:-1], 0))
            tok = cand(tokens[parents[-1]], path[-1])
            tokens.append(_checks.check_number(tok, "cand(...)", integer=True, low=0))
        return cls(np.array(parents), np.array(tokens))


def _paths(paths, name: str) -> list:
    """``paths`` as a list of tuples of non-negative Python ints."""
    if not isinstance(paths, (list, tuple)):
        raise TypeError(f"{name} must be a list of integer sequences, got {type(paths).__name__}")
    out = []
    for k, s in enumerate(paths):
        if not isinstance(s, (list, tuple, np.ndarray)):
            raise TypeError(f"{name}[{k}] must be a sequence of ints, got {type(s).__name__}")
        arr = _checks.int_array(np.asarray(s, dtype=np.int64) if len(s) == 0 else s,
                                f"{name}[{k}]", ndim=1, form="(L,)", low=0)
        out.append(tuple(int(x) for x in arr))
    return out


def _prefix_closed(choices, name: str, high=None) -> list:
    """``choices`` sorted by ``(len, path)``: non-empty, distinct, prefix-closed rank paths."""
    seqs = _paths(choices, name)
    if not seqs or any(len(s) == 0 for s in seqs):
        raise ValueError(f"{name} must be a non-empty list of non-empty rank paths")
    if len(set(seqs)) != len(seqs):
        raise ValueError(f"{name} must not repeat a path")
    if high is not None and max(max(s) for s in seqs) >= high:
        raise ValueError(f"{name} ranks must lie in [0, topk = {high})")
    known = set(seqs)
    for s in seqs:
        if len(s) > 1 and s[:-1] not in known:
            raise ValueError(f"{name} must be prefix-closed: {list(s)} is there but its parent "
                             f"{list(s[:-1])} is not")
    return sorted(seqs, key=lambda s: (len(s), s))


def _tree(tree, name: str = "tree") -> DraftTree:
    return _checks.check_instance(tree, DraftTree, name)


def _n_past(n_past) -> int:
    return _checks.check_number(n_past, "n_past", integer=True, low=0)


# --- node orders --------------------------------------------------------------------------------
def dfs_permutation(tree) -> np.ndarray:
    """``perm (N,) int32``: node ids in depth-first preorder, children in sibling order.

    ``perm[0] == 0``; each subtree becomes a contiguous block, which makes the ancestor mask
    block-sparse (DySpec's reordering; :func:`nonzero_blocks`).
    """
    tree = _tree(tree)
    perm, stack = [], [0]
    while stack:
        i = stack.pop()
        perm.append(i)
        stack.extend(tree.children(i)[::-1].tolist())  # first sibling on top
    return np.array(perm, np.int32)


def permute(tree, perm) -> DraftTree:
    """The same tree with new node ``k`` = old node ``perm[k]``.

    ``perm`` must be a permutation of ``range(N)`` with ``perm[0] == 0`` that lists every parent
    before its children. Siblings are reordered as ``perm`` orders them (keep their relative order
    for stochastic verification, as :func:`dfs_permutation` does). Masks transform as
    ``ancestor_mask(permute(t, perm)) == ancestor_mask(t)[perm][:, perm]``.
    """
    tree = _tree(tree)
    N = tree.num_nodes
    perm = _checks.int_array(perm, "perm", ndim=1, form="(N,)", low=0, high=N)
    if perm.shape != (N,) or np.unique(perm).size != N or perm[0] != 0:
        raise ValueError(f"perm must be a permutation of range(N = {N}) starting with the root 0")
    inv = np.empty(N, np.int64)
    inv[perm] = np.arange(N)  # old id -> new id
    old_parents = tree.parents[perm]  # (N,)
    parents = np.where(old_parents >= 0, inv[np.maximum(old_parents, 0)], -1)
    if (parents[1:] >= np.arange(1, N)).any():
        raise ValueError("perm must list every parent before its children (topological order)")
    virtual = None if tree.virtual is None else tree.virtual[perm]
    return DraftTree(parents, tree.tokens[perm], virtual)


def nonzero_blocks(mask, block) -> int:
    """Number of ``block x block`` tiles of the 2-d ``mask`` holding a True entry.

    Edge tiles of a shape that is not a multiple of ``block`` count like full ones.
    """
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array (R, C), got {m.dtype}")
    if m.ndim != 2:
        raise ValueError(f"mask must be a 2-d boolean array (R, C), got shape {m.shape}")
    block = _checks.check_number(block, "block", integer=True, low=1)
    R, C = -(-m.shape[0] // block), -(-m.shape[1] // block)  # tiles per axis (ceil)
    padded = np.zeros((R * block, C * block), bool)
    padded[:m.shape[0], :m.shape[1]] = m
    tiles = padded.reshape(R, block, C, block).any(axis=(1, 3))  # (R, C)
    return int(tiles.sum())
