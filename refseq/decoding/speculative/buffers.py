"""The buffers of one verification step (guide: docs/speculative.md): the ancestor and
attention masks, position ids and retrieve paths of a draft tree, and Medusa's static-tree
buffers (Cai et al. 2024, arXiv:2401.10774, Sec. 2.1.2) for conformance. Tree attention
(SpecInfer, Miao et al. 2023, arXiv:2305.09781, Sec. 4): row i sees the cached context and
exactly its ancestors, at position ``n_past + depth(i)``, so one forward pass scores every node
as the linear sequence ending there."""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.tree import DraftTree, _n_past, _prefix_closed, _tree

__all__ = ["ancestor_mask", "attention_mask", "medusa_buffers", "position_ids",
           "retrieve_paths", "tree_from_medusa_buffers"]


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
