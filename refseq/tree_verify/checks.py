"""Argument checks of the tree-verification hot path, shared by every tier.

Each check returns fresh C-contiguous arrays (int32 tree arrays, float64 uniforms, probabilities
in the caller's float dtype) and raises ``TypeError`` (wrong kind or dtype) or ``ValueError``
(wrong shape, value, or padding) naming the argument, so no tier ever sees an invalid batch.

Batch layout (docs/hot-paths/tree-verify.md): ``B`` trees padded to ``N`` nodes; tree ``b`` owns
nodes ``0 .. num_nodes[b] - 1`` (``parents[b, 0] == -1``, ``0 <= parents[b, i] < i``); padding
nodes ``i >= num_nodes[b]`` have ``parents == -2`` and ``tokens == -1``.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

MODES = ("iid", "wor", "point")  #: mode codes 0, 1, 2
_I32 = 2**31 - 1
_SUM_TOL = 1e-3  # a probability row must sum to 1 within this (catches logits passed by mistake)


def _i32(x, name, form, ndim, low=None, high=_I32):
    arr = _checks.int_array(x, name, ndim=ndim, form=form, low=low, high=high)
    return np.ascontiguousarray(arr, dtype=np.int32)


def _nonempty(arr, name, form):
    if 0 in arr.shape:
        raise ValueError(f"{name} must be a non-empty array {form}, got shape {arr.shape}")


def check_tree_batch(parents, tokens, num_nodes):
    """Validate a padded batch of trees; return ``(parents, tokens, num_nodes, depth)`` (int32).

    ``tokens`` may be None (``tree_masks`` needs only the structure). ``depth`` (B, N) is -1 at
    padding nodes.
    """
    parents = _i32(parents, "parents", "(B, N)", 2, low=-2)
    _nonempty(parents, "parents", "(B, N)")
    B, N = parents.shape
    num_nodes = _i32(num_nodes, "num_nodes", "(B,)", 1, low=1, high=N + 1)
    if num_nodes.shape != (B,):
        raise ValueError(f"num_nodes must have shape (B,) = ({B},), got {num_nodes.shape}")
    pad = np.arange(N)[None, :] >= num_nodes[:, None]  # (B, N)
    if tokens is not None:
        tokens = _i32(tokens, "tokens", "(B, N)", 2, low=-1)
        if tokens.shape != (B, N):
            raise ValueError(f"tokens must have the shape of parents (B, N) = {(B, N)}, "
                             f"got {tokens.shape}")
        if (tokens[~pad] < 0).any():
            b, i = np.argwhere(~pad & (tokens < 0))[0]
            raise ValueError(f"tokens must be >= 0 at real nodes, got tokens[{b}, {i}] = -1")
        if (tokens[pad] != -1).any():
            b, i = np.argwhere(pad & (tokens != -1))[0]
            raise ValueError(f"tokens must be -1 at padding nodes (i >= num_nodes[b]), got "
                             f"tokens[{b}, {i}] = {tokens[b, i]}")
    if (parents[:, 0] != -1).any():
        b = int(np.flatnonzero(parents[:, 0] != -1)[0])
        raise ValueError(f"parents[b, 0] must be -1 (node 0 is the root), got parents[{b}, 0] = "
                         f"{parents[b, 0]}")
    idx = np.arange(N)[None, :]
    bad = ~pad & (idx >= 1) & ((parents < 0) | (parents >= idx))
    if bad.any():
        b, i = np.argwhere(bad)[0]
        raise ValueError(f"parents must satisfy 0 <= parents[b, i] < i at real nodes "
                         f"(topological order), got parents[{b}, {i}] = {parents[b, i]}")
    if (parents[pad] != -2).any():
        b, i = np.argwhere(pad & (parents != -2))[0]
        raise ValueError(f"parents must be -2 at padding nodes (i >= num_nodes[b]), got "
                         f"parents[{b}, {i}] = {parents[b, i]}")
    depth = np.full((B, N), -1, np.int32)
    depth[:, 0] = 0
    for i in range(1, N):  # parents come first: their depth is final
        real = ~pad[:, i]
        depth[real, i] = depth[real, parents[real, i]] + 1
    return parents, tokens, num_nodes, depth


def check_mode(mode) -> int:
    """``mode`` as its code: 0 ("iid"), 1 ("wor") or 2 ("point"); a name is accepted too."""
    if isinstance(mode, str):
        return MODES.index(_checks.check_choice(mode, "mode", MODES))
    if isinstance(mode, bool) or not isinstance(mode, (int, np.integer)):
        raise TypeError(f"mode must be an int in (0, 1, 2) or one of {MODES}, "
                        f"got {type(mode).__name__}")
    if int(mode) not in (0, 1, 2):
        raise ValueError(f"mode must be 0 (iid), 1 (wor) or 2 (point), got {mode}")
    return int(mode)


def _prob_array(x, name, shape):
    """A (B, N, V) float32/float64 array; its rows are checked after the walk
    (:func:`check_rows_read`), where only the rows the verification read are inspected."""
    x = _checks.float_array(x, name)
    if x.ndim != 3 or x.shape[:2] != shape or x.shape[2] < 1:
        raise ValueError(f"{name} must have shape (B, N, V) with (B, N) = {shape} and V >= 1, "
                         f"got {x.shape}")
    return np.ascontiguousarray(x)


def rows_read(parents, num_nodes, mode, path, num_accepted):
    """The probability rows a stochastic walk read: ``(b, i, is_draft)`` index arrays.

    At every node ``i`` of tree ``b``'s accepted path, the walk reads ``target_probs[b, i]``
    (acceptance tests, residuals, the final draw) and, in modes "iid" and "wor", when ``i`` has
    children, ``draft_probs[b, i]`` (their proposal law). No other row can change an output.
    Order: by tree, then along the path, the target row before the draft row; this is the order
    in which :func:`check_rows_read` names the first bad row.
    """
    b_idx, i_idx, is_draft = [], [], []
    for b in range(parents.shape[0]):
        n = int(num_nodes[b])
        with_child = np.zeros(n, bool)
        with_child[parents[b, 1:n]] = True
        for i in path[b, :num_accepted[b] + 1]:
            b_idx.append(b), i_idx.append(i), is_draft.append(False)
            if mode != 2 and with_child[i]:
                b_idx.append(b), i_idx.append(i), is_draft.append(True)
    return np.array(b_idx, np.intp), np.array(i_idx, np.intp), np.array(is_draft, bool)


def row_status(x, b_idx, i_idx):
    """Per listed row of ``x`` (B, N, V): 0 valid, 1 not finite, 2 a negative entry, 3 not
    summing to 1 within 1e-3 (NumPy; the compiled tiers use a fused twin of it)."""
    rows = x[b_idx, i_idx]  # (K, V), a gather of the rows read only
    sums = rows.sum(axis=1, dtype=np.float64)
    finite = np.isfinite(rows).all(axis=1) if rows.size else np.ones(0, bool)
    status = np.where(np.abs(sums - 1.0) > _SUM_TOL, 3, 0)
    status[(rows.min(axis=1, initial=0.0) < 0) & finite] = 2
    status[~finite] = 1
    return status.astype(np.int8)


def check_rows_read(target, draft, mode, parents, num_nodes, path, num_accepted, status=None):
    """After the walk: raise ``ValueError`` if a probability row it read is not a distribution.

    ``status(x, b_idx, i_idx)`` computes :func:`row_status` (the tier's own; NumPy's by default).
    Rows the walk never read cannot change its outputs and are not inspected, so the cost is that
    of the rows read, not of the (B, N, V) arrays. The first bad row in :func:`rows_read` order
    is named, identically on every tier (the tiers walk identically up to that row).
    """
    status = row_status if status is None else status
    b_idx, i_idx, is_draft = rows_read(parents, num_nodes, mode, path, num_accepted)
    codes = np.zeros(b_idx.size, np.int8)
    codes[~is_draft] = status(target, b_idx[~is_draft], i_idx[~is_draft])
    if is_draft.any():
        codes[is_draft] = status(draft, b_idx[is_draft], i_idx[is_draft])
    if not codes.any():
        return
    k = int(np.flatnonzero(codes)[0])
    b, i = int(b_idx[k]), int(i_idx[k])
    name, x = ("draft_probs", draft) if is_draft[k] else ("target_probs", target)
    row = x[b, i]
    if codes[k] == 1:
        v = int(np.flatnonzero(~np.isfinite(row))[0])
        raise ValueError(f"{name} must be finite; found {row[v]} at index {(b, i, v)}")
    if codes[k] == 2:
        raise ValueError(f"{name} must be >= 0 (probabilities), found {row.min()} in "
                         f"{name}[{b}, {i}]")
    raise ValueError(f"{name}[{b}, {i}] must sum to 1 (a probability row), sums to "
                     f"{row.sum(dtype=np.float64):.6g}")


def _uniforms(x, name, shape, form):
    x = _checks.float_array(x, name, dtype=np.float64)
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {form} = {shape}, got {x.shape}")
    if x.size and not ((x >= 0) & (x < 1)).all():  # also rejects NaN
        bad = x[~((x >= 0) & (x < 1))][0]
        raise ValueError(f"{name} must lie in [0, 1) (uniforms), found {bad}")
    return np.ascontiguousarray(x)


def check_stochastic_args(parents, tokens, target_probs, draft_probs, mode, virtual, u_accept,
                          u_final, num_nodes):
    """Validate :func:`refseq.tree_verify.tree_verify_stochastic`'s arguments.

    Returns ``(parents, tokens, target_probs, draft_probs, mode, virtual, u_accept, u_final,
    num_nodes, depth)``; ``draft_probs`` is None in point mode when given empty, ``virtual`` is a
    (B, N) uint8 array (zeros when given None or empty), ``target_probs``/``draft_probs`` keep
    their float dtype (the tiers compute in float64). The contents of the probability rows are
    checked after the walk, by :func:`check_rows_read`: only the rows it read.
    """
    parents, tokens, num_nodes, depth = check_tree_batch(parents, tokens, num_nodes)
    B, N = parents.shape
    mode = check_mode(mode)
    real = depth >= 0  # (B, N)
    if virtual is None or np.size(virtual) == 0:
        virt = np.zeros((B, N), np.uint8)
    else:
        v = np.asarray(virtual)
        if v.dtype != np.bool_ and v.dtype.kind not in "iu":
            raise TypeError(f"virtual must be a bool or uint8 array (B, N) or empty, "
                            f"got dtype {v.dtype}")
        if v.shape != (B, N):
            raise ValueError(f"virtual must have shape (B, N) = {(B, N)} or be empty, "
                             f"got {v.shape}")
        if v.dtype != np.bool_ and not np.isin(v, (0, 1)).all():
            raise ValueError("virtual must hold only 0 and 1")
        virt = np.ascontiguousarray(v.astype(np.uint8))
        _check_virtual(virt, parents, tokens, real, mode)
    target_probs = _prob_array(target_probs, "target_probs", (B, N))
    V = target_probs.shape[2]
    if (tokens >= V).any():
        b, i = np.argwhere(tokens >= V)[0]
        raise ValueError(f"tokens must lie in [0, V = {V}), got tokens[{b}, {i}] = "
                         f"{tokens[b, i]}")
    if draft_probs is None or (np.size(draft_probs) == 0 and mode == 2):
        if mode != 2:
            raise ValueError(f"draft_probs (B, N, V) is required in mode {MODES[mode]!r} "
                             "(only 'point' ignores it)")
        draft_probs = None
    else:
        draft_probs = _prob_array(draft_probs, "draft_probs", (B, N))
        if draft_probs.shape[2] != V:
            raise ValueError(f"draft_probs must have shape (B, N, V) = {target_probs.shape}, "
                             f"got {draft_probs.shape}")
    u_accept = _uniforms(u_accept, "u_accept", (B, N), "(B, N)")
    u_final = _uniforms(u_final, "u_final", (B,), "(B,)")
    return (parents, tokens, target_probs, draft_probs, mode, virt, u_accept, u_final,
            num_nodes, depth)


def _check_virtual(virt, parents, tokens, real, mode):
    if (virt.astype(bool) & ~real).any():
        b, i = np.argwhere(virt.astype(bool) & ~real)[0]
        raise ValueError(f"virtual must be 0 at padding nodes, got virtual[{b}, {i}] = 1")
    if not virt.any():
        return
    if mode != 0:
        raise ValueError(f"virtual duplicates are only meaningful in mode 'iid', got mode "
                         f"{MODES[mode]!r} with virtual nodes")
    for b, i in np.argwhere(virt):
        if i == 0:
            raise ValueError(f"virtual[{b}, 0] must be 0 (the root is committed, not a draft)")
        if (parents[b, i + 1:] == i).any():
            raise ValueError(f"virtual node {i} of tree {b} must be a leaf")
        sib = np.flatnonzero(parents[b, :i] == parents[b, i])
        if not (tokens[b, sib] == tokens[b, i]).any():
            raise ValueError(f"virtual node {i} of tree {b} must repeat the token of an "
                             f"earlier sibling")


def check_paths_args(retrieve, retrieve_len, node_token, node_argmax):
    """Validate :func:`refseq.tree_verify.tree_verify_greedy_paths`'s arguments (int32 copies).

    ``retrieve`` (B, P, D+1): row p of tree b lists ``retrieve_len[b, p]`` node ids starting at
    the root 0, then -1; padding rows (``retrieve_len == 0``, all -1) follow the real ones, and
    every tree has at least one real row. ``node_token``/``node_argmax`` (B, N) are >= -1, and
    >= 0 at every node a path visits.
    """
    node_token = _i32(node_token, "node_token", "(B, N)", 2, low=-1)
    _nonempty(node_token, "node_token", "(B, N)")
    B, N = node_token.shape
    node_argmax = _i32(node_argmax, "node_argmax", "(B, N)", 2, low=-1)
    if node_argmax.shape != (B, N):
        raise ValueError(f"node_argmax must have the shape of node_token (B, N) = {(B, N)}, "
                         f"got {node_argmax.shape}")
    retrieve = _i32(retrieve, "retrieve", "(B, P, D+1)", 3, low=-1, high=N)
    _nonempty(retrieve, "retrieve", "(B, P, D+1)")
    if retrieve.shape[0] != B:
        raise ValueError(f"retrieve must have shape (B, P, D+1) with B = {B}, "
                         f"got {retrieve.shape}")
    P, W = retrieve.shape[1:]
    retrieve_len = _i32(retrieve_len, "retrieve_len", "(B, P)", 2, low=0, high=W + 1)
    if retrieve_len.shape != (B, P):
        raise ValueError(f"retrieve_len must have shape (B, P) = {(B, P)}, "
                         f"got {retrieve_len.shape}")
    inside = np.arange(W)[None, None, :] < retrieve_len[:, :, None]  # (B, P, W)
    if (retrieve[inside] < 0).any() or (retrieve[~inside] != -1).any():
        raise ValueError("retrieve must hold node ids >= 0 at t < retrieve_len[b, p] and -1 "
                         "after (padding)")
    real_row = retrieve_len > 0
    if not real_row[:, 0].all() or (np.diff(real_row.astype(np.int8), axis=1) > 0).any():
        raise ValueError("retrieve_len must be >= 1 for the first row of every tree, and "
                         "padding rows (retrieve_len == 0) must follow the real ones")
    if (retrieve[:, :, 0][real_row] != 0).any():
        raise ValueError("retrieve rows must start at the root node 0")
    b_idx = np.broadcast_to(np.arange(B)[:, None, None], retrieve.shape)
    visited = (b_idx[inside], retrieve[inside])
    if (node_token[visited] < 0).any() or (node_argmax[visited] < 0).any():
        raise ValueError("node_token and node_argmax must be >= 0 at every node a path visits")
    return retrieve, retrieve_len, node_token, node_argmax


def check_kv_args(cache, n_past, path, num_accepted):
    """Validate :func:`refseq.tree_verify.kv_commit`'s arguments.

    ``cache`` must be a writeable float32/float64 ndarray (B, layers, 2, heads, S, dh) (it is
    updated in place); ``path`` (B, D+1) holds node ids with ``path[b, 0] == 0``,
    ``path[b, j] >= j`` for ``j <= num_accepted[b]`` and -1 after; every slot read or written
    lies below S.
    """
    if not isinstance(cache, np.ndarray):
        raise TypeError(f"cache must be a numpy array (B, layers, 2, heads, S, dh) updated in "
                        f"place, got {type(cache).__name__}")
    _checks.float_array(cache, "cache")
    if cache.ndim != 6 or cache.shape[2] != 2 or 0 in cache.shape:
        raise ValueError(f"cache must have shape (B, layers, 2, heads, S, dh) with no empty "
                         f"axis, got {cache.shape}")
    if not cache.flags.writeable:
        raise ValueError("cache must be writeable (kv_commit updates it in place)")
    B, S = cache.shape[0], cache.shape[4]
    n_past = _i32(n_past, "n_past", "(B,)", 1, low=0, high=S)
    path = _i32(path, "path", "(B, D+1)", 2, low=-1, high=S)
    num_accepted = _i32(num_accepted, "num_accepted", "(B,)", 1, low=0, high=path.shape[1])
    for name, x in (("n_past", n_past), ("num_accepted", num_accepted)):
        if x.shape != (B,):
            raise ValueError(f"{name} must have shape (B,) = ({B},), got {x.shape}")
    if path.shape[0] != B or path.shape[1] < 1:
        raise ValueError(f"path must have shape (B, D+1) with B = {B}, got {path.shape}")
    j = np.arange(path.shape[1])[None, :]
    kept = j <= num_accepted[:, None]  # (B, D+1)
    if (path[:, 0] != 0).any() or (path[kept] < j.repeat(B, 0)[kept]).any():
        raise ValueError("path must start at node 0 and satisfy path[b, j] >= j for "
                         "j <= num_accepted[b] (node ids in topological order)")
    if (path[~kept] != -1).any():
        raise ValueError("path must be -1 after num_accepted[b] (padding)")
    if (n_past + path.max(axis=1) >= S).any():
        raise ValueError(f"n_past[b] + path[b] must stay below the cache length S = {S}")
    return cache, n_past, path, num_accepted
