"""KV bookkeeping after a verification step: keep the accepted path, drop the rest of the tree.

After a tree forward the cache holds ``n_past`` committed slots followed by one slot per tree
node (node ``i`` in slot ``n_past + i``). Verification accepts a root-to-node path
``path = (0, a_1, ..., a_m)`` of node ids (increasing, because parents precede children). The
committed cache must then equal the cache of a linear prefill over the committed tokens followed
by the path's tokens, which is a gather:

.. math:: \\mathrm{cache}[\\ldots, n_{past} + j, :] \\leftarrow
          \\mathrm{cache}[\\ldots, n_{past} + \\mathrm{path}_j, :], \\qquad j = 0..m,

after which the length is ``n_past + m + 1``. The accepted node at depth ``j`` had position id
``n_past + j`` (tree positions are ``n_past + depth``), so it lands in the slot of that position
and its keys, rotary or not, stay valid (docs/speculative.md, "Target, KV cache and the engine").

Layouts (:mod:`refseq.models.tiny_transformer.kv_cache`):

=====================================  ==========================================
``(L, 2, H, S, Dh)``                    one sequence, ``n_past`` an int, ``path (m+1,)``
``(B, L, 2, H, S, Dh)``                 ``B`` rows, ``n_past (B,)``, ``path (B, P)``
=====================================  ==========================================

In the batched form each row has its own ``n_past`` and its own accepted length: ``path[b]`` is
``-1``-padded after its ``m_b + 1`` node ids (the ``path`` output of the tree-verification hot
path). The gather works on any array whose slot axis is ``-2``: a draft model's cache, or the
per-node hidden states of drafters that read the target's features (``hidden[path]``).

The cache is a buffer owned by the model that calls this function (Medusa keeps a preallocated
``past_key_values_data`` the same way): it is **modified in place**, slots at and after the new
length are stale, and the new length is returned.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks

__all__ = ["commit_path"]


def _check_path(p: np.ndarray, n_past: int, S: int, name: str) -> int:
    """Validate one row's path (already stripped of padding); return m."""
    if p.size == 0 or p[0] != 0:
        raise ValueError(f"{name} must start with the root node 0, got {p.tolist()}")
    if p.size > 1 and np.any(np.diff(p) <= 0):
        raise ValueError(f"{name} must be strictly increasing node ids (parents precede "
                         f"children), got {p.tolist()}")
    if n_past + int(p[-1]) >= S:
        raise ValueError(f"{name} points past the cache: node {int(p[-1])} would be slot "
                         f"n_past + {int(p[-1])} = {n_past + int(p[-1])} but the cache has "
                         f"S = {S} slots")
    return p.size - 1


def _gather_row(cache: np.ndarray, n_past: int, path: np.ndarray) -> None:
    # in increasing destination order: src = n_past + path[j] >= dst = n_past + j, and a later
    # source n_past + path[k] (k > j) is > path[j] >= j, so no source is overwritten before use
    for j, node in enumerate(path):
        if node != j:
            cache[..., n_past + j, :] = cache[..., n_past + int(node), :]


def commit_path(cache, n_past, path):
    """Compact a cache to the accepted path of a draft tree, in place.

    Parameters
    ----------
    cache : ndarray (L, 2, H, S, Dh) or (B, L, 2, H, S, Dh), float32 or float64
        Slot axis ``-2``; any leading shape works for the unbatched form (e.g. hidden states
        ``(S, D)`` with a trailing axis), the batched form needs ``cache.ndim >= 3``.
    n_past : int, or (B,) int array for the batched form
        Committed slots before the tree block of each row.
    path : (m+1,) int, or (B, P) int with ``-1`` padding after each row's path
        Node ids from the root (0) to the last accepted node, strictly increasing.

    Returns
    -------
    int or ndarray (B,) int64
        The new committed length ``n_past + m + 1`` (per row).

    Raises
    ------
    TypeError
        Non-float cache, non-integer ``n_past`` or ``path``.
    ValueError
        A path that does not start at 0, is not increasing, has padding in the middle, or
        points past the cache; ``n_past`` negative or larger than S; shapes that do not match.

    Notes
    -----
    ``cache`` is written in place (see the module docstring); the slots ``n_past + m + 1 ..``
    keep stale values. The copy runs in increasing destination order, which is safe because
    ``path`` is increasing (Token Recycling's ``past_key_values_data[..., n_past + path, :]``
    copy, Medusa's ``update_inference_inputs``).
    """
    cache = _checks.float_array(cache, "cache", ndim_min=1)
    if not isinstance(cache, np.ndarray) or not cache.flags.writeable:
        raise TypeError("cache must be a writeable ndarray (it is compacted in place)")
    path = _checks.int_array(path, "path", ndim=(1, 2), form="(m+1,) or (B, P)")
    S = cache.shape[-2] if cache.ndim >= 2 else 0
    if path.ndim == 1:
        n = _checks.check_number(n_past, "n_past", integer=True, low=0, high=S)
        if cache.ndim < 2:
            raise ValueError(f"cache must have a slot axis -2, got shape {cache.shape}")
        _checks.int_array(path, "path", low=0)
        m = _check_path(path, n, S, "path")
        _gather_row(cache, n, path)
        return n + m + 1
    if cache.ndim < 3 or cache.shape[0] != path.shape[0]:
        raise ValueError(f"a batched path (B, P) = {path.shape} needs a batched cache "
                         f"(B, ..., S, Dh) with the same B, got cache {cache.shape}")
    B = path.shape[0]
    n_past = _checks.int_array(n_past, "n_past", ndim=1, low=0, high=S + 1, form="(B,)")
    _checks.check_shape(n_past, (B,), "n_past", "(B,)")
    _checks.int_array(path, "path", low=-1)
    new = np.empty(B, np.int64)
    for b in range(B):
        row = path[b]
        valid = row >= 0  # (P,)
        k = int(valid.sum())
        if not valid[:k].all():
            raise ValueError(f"path[{b}] must hold its node ids first and -1 padding after, got "
                             f"{row.tolist()}")
        m = _check_path(row[:k], int(n_past[b]), S, f"path[{b}]")
        _gather_row(cache[b], int(n_past[b]), row[:k])
        new[b] = n_past[b] + m + 1
    return new
