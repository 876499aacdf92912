"""The tree-verification hot path: batched tree masks, greedy and stochastic verification, KV
compaction, for ``B`` padded draft trees (docs/hot-paths/tree-verify.md).

Batch layout: tree ``b`` owns nodes ``0 .. num_nodes[b] - 1`` of ``N`` (node 0 the root,
``0 <= parents[b, i] < i``); padding nodes have ``parents = -2``, ``tokens = -1`` and never
influence an output. ``target_probs[b, i]`` is the target distribution of the token that follows
node ``i``. Outputs of the verifiers: ``path`` (B, D_max+1) int32 node ids from the root, -1
padded (``D_max`` = the batch's largest tree depth), ``num_accepted`` (B,) and ``next_token`` (B,).

Each function validates its arguments (:mod:`refseq.tree_verify.checks`), then runs this NumPy
reference (a loop over trees of the per-tree walks in :mod:`refseq.tree_verify.reference`) or
the compiled tier chosen by ``backend`` ("numpy", "jit", "cuda"), found by :mod:`refseq.tiers`.

References: Leviathan et al. (2023), arXiv 2211.17192; Chen et al. (2023), arXiv 2302.01318;
SpecInfer, Miao et al. (2023), arXiv 2305.09781 (token trees, multi-step speculative sampling);
Sequoia, Chen et al. (2024), arXiv 2402.12374 (sampling without replacement).
"""

from __future__ import annotations

import numpy as np

from refseq.tiers import check_backend, implementation
from refseq.tree_verify import reference as _ref
from refseq.tree_verify.checks import (
    MODES,
    check_kv_args,
    check_paths_args,
    check_rows_read,
    check_stochastic_args,
    check_tree_batch,
)

__all__ = ["MODES", "kv_commit", "tree_masks", "tree_verify_greedy",
           "tree_verify_greedy_paths", "tree_verify_stochastic"]


def _dispatch(name, backend, *args):
    return implementation("tree_verify", name, backend)(*args)


def tree_masks(parents, num_nodes, n_past, *, backend="numpy"):
    """Tree attention mask and position ids of a batch of trees.

    Parameters
    ----------
    parents : (B, N) int — padded parent arrays; num_nodes : (B,) int in [1, N];
    n_past : (B,) int >= 0 — cached context length per tree.
    backend : "numpy" | "jit" | "cuda".

    Returns
    -------
    allow : (B, N, N) uint8 — ``allow[b, i, j] = 1`` iff j is i or an ancestor of i (the tree
        block of the attention mask; every cached column is allowed). A padding row allows only
        itself, so a softmax over it stays finite.
    positions : (B, N) int32 — ``n_past[b] + depth(i)``; ``n_past[b]`` at padding nodes.
    """
    compiled = check_backend(backend) != "numpy"
    parents, _, num_nodes, depth = check_tree_batch(parents, None, num_nodes)
    n_past = _check_n_past(n_past, parents.shape[0])
    if compiled:
        return _dispatch("tree_masks", backend, parents, num_nodes, n_past)
    B, N = parents.shape
    allow = np.zeros((B, N, N), np.uint8)
    for b in range(B):
        for i in range(N):
            j = i
            while j >= 0:  # i, its parent, ..., the root (-1 above it; -2 at padding)
                allow[b, i, j] = 1
                j = parents[b, j] if i < num_nodes[b] else -1
    positions = n_past[:, None] + np.maximum(depth, 0)  # (B, N)
    return allow, positions.astype(np.int32)


def _check_n_past(n_past, B):
    from refseq import _checks

    n_past = _checks.int_array(n_past, "n_past", ndim=1, form="(B,)", low=0, high=2**31 - 2**16)
    if n_past.shape != (B,):
        raise ValueError(f"n_past must have shape (B,) = ({B},), got {n_past.shape}")
    return np.ascontiguousarray(n_past, np.int32)


def _pack(paths, nexts, width):
    """Per-tree path lists -> ``(path (B, width) -1 padded, num_accepted, next_token)``."""
    B = len(paths)
    path = np.full((B, width), -1, np.int32)
    for b, p in enumerate(paths):
        path[b, :len(p)] = p
    num_accepted = np.array([len(p) - 1 for p in paths], np.int32)
    return path, num_accepted, np.asarray(nexts, np.int32)


def tree_verify_greedy(parents, tokens, target_argmax, num_nodes, *, backend="numpy"):
    """Greedy verification of a batch of trees (the greedy limit of speculative sampling).

    From the root, repeatedly accept the first child (sibling order) whose token equals
    ``target_argmax[b, node]``; ``next_token`` is ``target_argmax`` at the last accepted node.

    Parameters
    ----------
    parents, tokens : (B, N) int — padded trees; target_argmax : (B, N) int — the target's
    arg-max after each node (lowest index on ties), >= 0 at real nodes, ignored at padding;
    num_nodes : (B,) int; backend : "numpy" | "jit" | "cuda".

    Returns
    -------
    path : (B, D_max+1) int32, -1 padded; num_accepted : (B,) int32; next_token : (B,) int32.
    """
    compiled = check_backend(backend) != "numpy"
    parents, tokens, num_nodes, depth = check_tree_batch(parents, tokens, num_nodes)
    target_argmax = np.asarray(target_argmax)
    from refseq import _checks

    target_argmax = _checks.int_array(target_argmax, "target_argmax", ndim=2, form="(B, N)",
                                      high=2**31 - 1)
    if target_argmax.shape != parents.shape:
        raise ValueError(f"target_argmax must have the shape of parents (B, N) = "
                         f"{parents.shape}, got {target_argmax.shape}")
    if (target_argmax[depth >= 0] < 0).any():
        raise ValueError("target_argmax must be >= 0 at real nodes")
    target_argmax = np.ascontiguousarray(target_argmax, np.int32)
    width = int(depth.max()) + 1
    if compiled:
        return _dispatch("tree_verify_greedy", backend, parents, tokens, target_argmax,
                         num_nodes, width)
    walks = [_ref.walk_greedy(parents[b], tokens[b], target_argmax[b], num_nodes[b])
             for b in range(parents.shape[0])]
    return _pack([w[0] for w in walks], [w[1] for w in walks], width)


def tree_verify_greedy_paths(retrieve, retrieve_len, node_token, node_argmax, *,
                             backend="numpy"):
    """Greedy verification in path form (Medusa's ``evaluate_posterior``, with explicit lengths).

    For row p of tree b, ``accept_len[b, p]`` is the number of leading positions
    ``1 <= t < retrieve_len[b, p]`` with ``node_token[b, retrieve[b, p, t]] ==
    node_argmax[b, retrieve[b, p, t-1]]`` (stopping at the first mismatch); padding rows get -1.

    Parameters
    ----------
    retrieve : (B, P, D+1) int — root-to-leaf node ids, -1 padded; padding rows (all -1) after
    the real ones; retrieve_len : (B, P) int — path lengths (0 for a padding row);
    node_token, node_argmax : (B, N) int — each node's token and the target's arg-max after it;
    backend : "numpy" | "jit" | "cuda".

    Returns
    -------
    accept_len : (B, P) int32; best_path : (B,) int32 — the first row attaining the maximum;
    last_node : (B,) int32 — ``retrieve[b, best_path, accept_len]``.
    """
    compiled = check_backend(backend) != "numpy"
    args = check_paths_args(retrieve, retrieve_len, node_token, node_argmax)
    if compiled:
        return _dispatch("tree_verify_greedy_paths", backend, *args)
    retrieve, retrieve_len, node_token, node_argmax = args
    B, P = retrieve_len.shape
    accept_len = np.full((B, P), -1, np.int32)
    for b in range(B):
        for p in range(P):
            if retrieve_len[b, p] == 0:
                continue
            r, k = retrieve[b, p], 0
            while k + 1 < retrieve_len[b, p] and node_token[b, r[k + 1]] == node_argmax[b, r[k]]:
                k += 1
            accept_len[b, p] = k
    best = np.argmax(accept_len, axis=1).astype(np.int32)  # first maximum
    last = retrieve[np.arange(B), best, accept_len[np.arange(B), best]].astype(np.int32)
    return accept_len, best, last


def tree_verify_stochastic(parents, tokens, target_probs, draft_probs, mode, virtual, u_accept,
                           u_final, num_nodes, *, backend="numpy"):
    """Stochastic (lossless) verification of a batch of trees by recursive rejection sampling.

    Parameters
    ----------
    parents, tokens : (B, N) int — padded trees (tokens < V at real nodes).
    target_probs : (B, N, V) float32 | float64 — warped target distribution after each node
        (rows of real non-virtual nodes sum to 1).
    draft_probs : (B, N, V) float32 | float64, or None / empty in mode "point" — the law each
        node's children were drawn from.
    mode : 0 "iid" | 1 "wor" | 2 "point" (int32 code or name).
    virtual : (B, N) uint8 | bool, or None / empty — virtual duplicates (iid only; leaves that
        repeat an earlier sibling's token: never accepted, their residual update still happens).
    u_accept : (B, N) float in [0, 1) — one uniform per node for its acceptance test.
    u_final : (B,) float in [0, 1) — the uniform of each tree's final draw.
    num_nodes : (B,) int; backend : "numpy" | "jit" | "cuda".

    Returns
    -------
    path : (B, D_max+1) int32, -1 padded; num_accepted : (B,) int32; next_token : (B,) int32.

    Notes
    -----
    Child c of node u with token y is accepted iff ``u_accept[c] * Q(y) < P(y)`` (no division);
    the final token is the smallest t with ``P[t] > 0`` and ``cumsum(P)[t] > u_final * sum(P)``,
    in float64. See :func:`refseq.tree_verify.reference.walk_stochastic` for the proposal laws.

    The probability rows are validated after the walk, and only those it read (on every tier,
    :func:`refseq.tree_verify.checks.check_rows_read`): ``target_probs[b, i]`` at each node i of
    the accepted path and ``draft_probs[b, i]`` where that node has children. A row that is not
    finite, has a negative entry or does not sum to 1 (within 1e-3) raises ``ValueError`` naming
    it; a row no walk reads cannot change an output and is not inspected, so the call costs
    about the rows read, not the ``2 B N V`` entries.
    """
    compiled = check_backend(backend) != "numpy"
    (parents, tokens, target, draft, mode, virt, u_accept, u_final, num_nodes,
     depth) = check_stochastic_args(parents, tokens, target_probs, draft_probs, mode, virtual,
                                    u_accept, u_final, num_nodes)
    width = int(depth.max()) + 1
    if compiled:
        path, num_accepted, next_token = _dispatch(
            "tree_verify_stochastic", backend, parents, tokens, target, draft, mode, virt,
            u_accept, u_final, num_nodes, width)
        status = implementation("tree_verify", "row_status", backend)
    else:
        walks = [_ref.walk_stochastic(parents[b], tokens[b], target[b],
                                      None if draft is None else draft[b], mode, virt[b],
                                      u_accept[b], u_final[b], num_nodes[b])
                 for b in range(parents.shape[0])]
        path, num_accepted, next_token = _pack([w[0] for w in walks], [w[1] for w in walks],
                                               width)
        status = None
    check_rows_read(target, draft, mode, parents, num_nodes, path, num_accepted, status)
    return path, num_accepted, next_token


def kv_commit(cache, n_past, path, num_accepted, *, backend="numpy"):
    """Compact each row's KV cache to its accepted path, **in place**.

    For tree b with ``m = num_accepted[b]``: slots ``n_past[b] + path[b, j]`` are copied to
    ``n_past[b] + j`` for ``j = 0 .. m`` in increasing j (safe: ``path[b, j] >= j``).

    Parameters
    ----------
    cache : (B, layers, 2, heads, S, dh) float32 | float64 ndarray — updated in place;
    n_past : (B,) int; path : (B, D+1) int, -1 padded; num_accepted : (B,) int;
    backend : "numpy" | "jit" | "cuda".

    Returns
    -------
    new_n_past : (B,) int32 — ``n_past + num_accepted + 1``, the valid length of each row.
    """
    compiled = check_backend(backend) != "numpy"
    cache, n_past, path, num_accepted = check_kv_args(cache, n_past, path, num_accepted)
    if compiled:
        _dispatch("kv_commit", backend, cache, n_past, path, num_accepted)
    else:
        for b in range(cache.shape[0]):
            for j in range(num_accepted[b] + 1):  # increasing destination
                cache[b, :, :, :, n_past[b] + j] = cache[b, :, :, :, n_past[b] + path[b, j]]
    return (n_past + num_accepted + 1).astype(np.int32)
