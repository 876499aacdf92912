"""Numba CPU twins of the tree-verification hot path; same contracts as
:mod:`refseq.tree_verify` (called by it after validation, with int32 arrays and the output
path width ``D_max + 1``). Kernels in :mod:`refseq.jit.tree_verify.kernels`: ``prange`` over
trees (over (tree, node) for the masks, (tree, layer) for the KV copy), sequential inside.
"""

from __future__ import annotations

import numpy as np

from refseq.jit.tree_verify.kernels import (
    greedy_kernel,
    kv_kernel,
    masks_kernel,
    paths_kernel,
    row_status_kernel,
    stochastic_kernel,
)

# Called only through refseq.tree_verify(backend=...), after its checks: no public surface.
__all__: list[str] = []


def tree_masks(parents, num_nodes, n_past):
    """Twin of :func:`refseq.tree_verify.tree_masks` on validated int32 arrays."""
    B, N = parents.shape
    allow, positions = np.empty((B, N, N), np.uint8), np.empty((B, N), np.int32)
    masks_kernel(parents, num_nodes, n_past, allow, positions)
    return allow, positions


def _outputs(B, width):
    return np.full((B, width), -1, np.int32), np.empty(B, np.int32), np.empty(B, np.int32)


def tree_verify_greedy(parents, tokens, target_argmax, num_nodes, width):
    """Twin of :func:`refseq.tree_verify.tree_verify_greedy`; ``width`` = D_max + 1."""
    path, num_acc, nxt = _outputs(parents.shape[0], width)
    greedy_kernel(parents, tokens, target_argmax, num_nodes, path, num_acc, nxt)
    return path, num_acc, nxt


def tree_verify_greedy_paths(retrieve, retrieve_len, node_token, node_argmax):
    """Twin of :func:`refseq.tree_verify.tree_verify_greedy_paths` on validated arrays."""
    B, P = retrieve_len.shape
    accept_len, best = np.empty((B, P), np.int32), np.zeros(B, np.int32)
    last = np.empty(B, np.int32)
    paths_kernel(retrieve, retrieve_len, node_token, node_argmax, accept_len, best, last)
    return accept_len, best, last


def tree_verify_stochastic(parents, tokens, target, draft, mode, virtual, u_accept, u_final,
                           num_nodes, width):
    """Twin of :func:`refseq.tree_verify.tree_verify_stochastic`; ``draft`` None in point mode
    (a (B, N, 1) dummy of the target's dtype is passed to the kernel, never read)."""
    B = parents.shape[0]
    if draft is None:
        draft = np.zeros((B, parents.shape[1], 1), target.dtype)
    path, num_acc, nxt = _outputs(B, width)
    stochastic_kernel(parents, tokens, target, draft, mode, virtual, u_accept, u_final,
                      num_nodes, path, num_acc, nxt)
    return path, num_acc, nxt


def row_status(x, b_idx, i_idx):
    """Twin of :func:`refseq.tree_verify.checks.row_status`: one parallel read of the listed
    rows of ``x`` (B, N, V) (the rows a walk read; used by the compiled tiers' after-the-walk
    check)."""
    from refseq.tree_verify.checks import _SUM_TOL

    out = np.zeros(b_idx.shape[0], np.int8)
    row_status_kernel(x, np.ascontiguousarray(b_idx, np.int64),
                      np.ascontiguousarray(i_idx, np.int64), _SUM_TOL, out)
    return out


def kv_commit(cache, n_past, path, num_accepted):
    """Twin of :func:`refseq.tree_verify.kv_commit`: compacts ``cache`` in place."""
    kv_kernel(cache, n_past, path, num_accepted)
