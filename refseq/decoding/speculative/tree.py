"""Draft trees and the tree buffers of one verification step (guide: docs/speculative.md).

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

__all__ = ["DraftTree", "TreeBatch", "ancestor_mask", "attention_mask", "position_ids",
           "retrieve_paths", "medusa_buffers", "tree_from_medusa_buffers", "dfs_permutation",
           "permute", "nonzero_blocks"]

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


# --- batched container --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TreeBatch:
    """B draft trees padded to ``N_max`` nodes (the kernels' input; validated on construction).

    Parameters
    ----------
    parents, tokens : ndarray (B, N_max), int
        Row b holds tree b in its first ``num_nodes[b]`` entries; padding entries are
        ``parents = -2``, ``tokens = -1`` (ignored everywhere).
    num_nodes : ndarray (B,), int
        ``1 <= num_nodes[b] <= N_max``.
    virtual : ndarray (B, N_max), bool, optional
        Virtual duplicates per tree; ``False`` on padding.
    """

    parents: np.ndarray
    tokens: np.ndarray
    num_nodes: np.ndarray
    virtual: np.ndarray | None = None

    def __post_init__(self):
        p = _checks.int_array(self.parents, "parents", ndim=2, form="(B, N_max)", low=-2,
                              high=_I32).astype(np.int32)
        t = _checks.int_array(self.tokens, "tokens", ndim=2, form="(B, N_max)", low=-1,
                              high=_I32).astype(np.int32)
        _checks.check_shape(t, p.shape, "tokens", "(B, N_max)")
        B, n_max = p.shape
        n = _checks.int_array(self.num_nodes, "num_nodes", ndim=1, form="(B,)", low=1,
                              high=n_max + 1).astype(np.int32)
        _checks.check_shape(n, (B,), "num_nodes", "(B,)")
        v = _checks.bool_mask(self.virtual, (B, n_max), "virtual", "(B, N_max)")
        pad = np.arange(n_max) >= n[:, None]  # (B, N_max)
        if (p[pad] != -2).any() or (t[pad] != -1).any():
            raise ValueError("parents/tokens padding (entries at or after num_nodes[b]) must be "
                             "parents = -2 and tokens = -1")
        if v is not None and v[pad].any():
            raise ValueError("virtual must be False on padding entries")
        for name, arr in (("parents", p), ("tokens", t), ("num_nodes", n), ("virtual", v)):
            if arr is not None:
                arr = arr.copy()
                arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for b in range(B):
            try:
                self.tree(b)
            except ValueError as e:
                raise ValueError(f"tree {b} of the batch (parents[{b}], tokens[{b}]): "
                                 f"{e}") from None

    @property
    def batch_size(self) -> int:
        return int(self.parents.shape[0])

    @property
    def n_max(self) -> int:
        return int(self.parents.shape[1])

    def tree(self, b) -> DraftTree:
        """Tree ``b`` without its padding."""
        b = _checks.check_number(b, "b", integer=True, low=0, high=self.batch_size - 1)
        n = self.num_nodes[b]
        v = None if self.virtual is None else self.virtual[b, :n]
        return DraftTree(self.parents[b, :n], self.tokens[b, :n], v)

    @classmethod
    def from_trees(cls, trees, n_max=None) -> TreeBatch:
        """Pad a non-empty list of :class:`DraftTree` to ``n_max`` (default: the largest N)."""
        if not isinstance(trees, (list, tuple)) or not trees:
            raise TypeError(f"trees must be a non-empty list of DraftTree, "
                            f"got {type(trees).__name__}")
        for k, tr in enumerate(trees):
            _tree(tr, f"trees[{k}]")
        largest = max(tr.num_nodes for tr in trees)
        n_max = largest if n_max is None else _checks.check_number(n_max, "n_max", integer=True,
                                                                   low=largest)
        B = len(trees)
        parents = np.full((B, n_max), -2, np.int32)
        tokens = np.full((B, n_max), -1, np.int32)
        virtual = np.zeros((B, n_max), bool)
        for b, tr in enumerate(trees):
            parents[b, :tr.num_nodes], tokens[b, :tr.num_nodes] = tr.parents, tr.tokens
            virtual[b, :tr.num_nodes] = ~tr.real
        any_virtual = any(tr.virtual is not None for tr in trees)
        return cls(parents, tokens, np.array([tr.num_nodes for tr in trees]),
                   virtual if any_virtual else None)


# --- buffers of one verification step ------------------------------------------------------------
def ancestor_mask(tree) -> np.ndarray:
    """``M (N, N) bool``: ``M[i, j]`` iff node j is node i or one of its ancestors.

    Row i is its parent's row plus the diagonal entry; the parent's row is complete because
    ``parents[i] < i``. The mask is lower-triangular in node order and row i has ``depth(i) + 1``
    True entries. Virtual nodes are leaves, so their columns are read by their own row only.
    """
    tree = _tree(tree)
    N = tree.num_nodes
    M = np.zeros((N, N), bool)
    for i in range(N):
        if i > 0:
            M[i] = M[tree.parents[i]]
        M[i, i] = True
    return M


def attention_mask(tree, n_past) -> np.ndarray:
    """``(N, n_past + N) bool`` tree attention: every cached column, then :func:`ancestor_mask`.

    Row i sees the context and ``anc*(i)``, so with :func:`position_ids` its logits equal those of
    the linear sequence ``context, root, path(i)`` (SpecInfer, Sec. 4.2).
    """
    n_past = _n_past(n_past)
    M = ancestor_mask(tree)  # (N, N)
    return np.concatenate([np.ones((M.shape[0], n_past), bool), M], axis=1)  # (N, n_past + N)


def position_ids(tree, n_past) -> np.ndarray:
    """``(N,) int64`` position of each node: ``n_past + depth`` (the root sits at ``n_past``)."""
    n_past = _n_past(n_past)
    return n_past + _tree(tree).depth.astype(np.int64)


def retrieve_paths(tree) -> tuple[np.ndarray, np.ndarray]:
    """Root-to-leaf node ids, one row per leaf in increasing leaf index.

    Returns
    -------
    retrieve : ndarray (P, D+1), int32
        Row p lists the nodes from 0 to leaf p, padded with -1; ``D = tree.max_depth``.
    retrieve_len : ndarray (P,), int32
        Number of valid entries in each row (``depth(leaf) + 1``).

    Notes
    -----
    Medusa's ``retrieve_indices`` with an explicit length instead of a pad pointing at a dummy
    token. Leaves are the non-virtual nodes without non-virtual children (a virtual duplicate is
    never accepted, so no path ends in one).
    """
    tree = _tree(tree)
    leaves = tree._leaves
    retrieve = np.full((leaves.size, tree.max_depth + 1), -1, np.int32)  # (P, D+1)
    lengths = tree.depth[leaves] + 1  # (P,)
    for row, leaf in enumerate(leaves):
        node = leaf
        for t in range(lengths[row] - 1, -1, -1):  # fill from the leaf back to the root
            retrieve[row, t] = node
            node = tree.parents[node]
    return retrieve, lengths.astype(np.int32)


def medusa_buffers(choices, topk) -> dict:
    """The four buffers of FasterDecoding/Medusa's ``generate_medusa_buffers``, in NumPy.

    Parameters
    ----------
    choices : list of int sequences
        Prefix-closed, distinct rank paths (``[0, 1]``: the 2nd candidate of head 1 below the
        1st of head 0); ranks in ``[0, topk)``.
    topk : int
        Candidates kept per Medusa head (Medusa's ``TOPK``).

    Returns
    -------
    dict
        ``"medusa_attn_mask"`` (1, 1, L, L) float32 (L = len(choices) + 1; node ``1 + k`` is the
        k-th choice in ``(len, path)`` order), ``"tree_indices"`` (L,) int64 (``rank + topk *
        (depth - 1) + 1`` into ``[root token, head 0's top-k, head 1's top-k, ...]``, 0 at the
        root), ``"medusa_position_ids"`` (L,) int64 (depths), ``"retrieve_indices"`` (P, D+1)
        int64 (one row per leaf, leaves in *decreasing* node order as Medusa emits them, padded
        with -1, Medusa's ``-2`` pad shifted by +1).
    """
    topk = _checks.check_number(topk, "topk", integer=True, low=1)
    order = _prefix_closed(choices, "choices", high=topk)
    node = {path: k + 1 for k, path in enumerate(order)}
    tree = DraftTree(np.array([-1] + [node.get(s[:-1], 0) for s in order]),
                     np.array([0] + [s[-1] + topk * (len(s) - 1) + 1 for s in order]))
    retrieve, _ = retrieve_paths(tree)
    return {
        "medusa_attn_mask": ancestor_mask(tree).astype(np.float32)[None, None],  # (1, 1, L, L)
        "tree_indices": tree.tokens.astype(np.int64),
        "medusa_position_ids": tree.depth.astype(np.int64),
        "retrieve_indices": retrieve[::-1].astype(np.int64),
    }


def tree_from_medusa_buffers(buffers, candidates=None) -> DraftTree:
    """The :class:`DraftTree` that Medusa's buffers describe.

    ``candidates (C,)`` int is Medusa's flat candidate list ``[root token, top-k of head 0, ...]``;
    node tokens are ``candidates[tree_indices]``. Without it the tokens are the ``tree_indices``
    themselves. Each node's parent is its deepest proper ancestor in the mask; the mask and
    position ids must then agree with the tree (``ValueError`` otherwise).
    """
    if not isinstance(buffers, dict) or not {"medusa_attn_mask", "tree_indices",
                                             "medusa_position_ids"} <= set(buffers):
        raise TypeError("buffers must be a dict with medusa_attn_mask, tree_indices and "
                        "medusa_position_ids (as returned by medusa_buffers)")
    mask = _checks.float_array(buffers["medusa_attn_mask"], "buffers['medusa_attn_mask']")
    pos = _checks.int_array(buffers["medusa_position_ids"], "buffers['medusa_position_ids']",
                            ndim=1, form="(L,)", low=0)
    idx = _checks.int_array(buffers["tree_indices"], "buffers['tree_indices']", ndim=1,
                            form="(L,)", low=0)
    L = pos.shape[0]
    if mask.shape != (1, 1, L, L) or idx.shape != (L,):
        raise ValueError(f"buffers must hold a (1, 1, L, L) mask and (L,) index arrays, got "
                         f"{mask.shape}, {idx.shape}, {pos.shape}")
    m = mask[0, 0] != 0  # (L, L)
    parents = np.full(L, -1)
    for i in range(1, L):
        anc = np.flatnonzero(m[i, :i])
        if anc.size == 0:
            raise ValueError(f"buffers['medusa_attn_mask'] row {i} must see the root (column 0)")
        parents[i] = anc[np.argmax(pos[anc])]
    if candidates is None:
        tokens = idx
    else:
        cand = _checks.int_array(candidates, "candidates", ndim=1, form="(C,)", low=0)
        if idx.max() >= cand.shape[0]:
            raise ValueError(f"candidates must cover tree_indices up to {idx.max()}, "
                             f"got {cand.shape[0]} entries")
        tokens = cand[idx]  # (L,)
    tree = DraftTree(parents, tokens)
    if not (ancestor_mask(tree) == m).all() or not (tree.depth == pos).all():
        raise ValueError("buffers must describe a tree: the mask must be the ancestor mask and "
                         "medusa_position_ids the depths")
    return tree


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
