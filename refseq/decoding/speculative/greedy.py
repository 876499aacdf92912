"""Greedy verification of a draft tree (the tree walk, the path form, the chain), the result
record every verifier returns, and the argument checks the verifiers share (guide:
docs/speculative.md, "Verification and losslessness").

Conventions: node 0 is the root (committed, not cached); ``target_argmax[i]`` is the target's
arg-max after node i (ties to the lowest index), so child c matches iff ``tokens[c] ==
target_argmax[parent(c)]``; siblings are tried in sibling order (increasing node index) and the
first match is taken. The step emits the accepted tokens, then ``target_argmax`` at the last
accepted node.

References
----------
Leviathan, Kalman, Matias (2023), arXiv:2211.17192, Sec. 2.3 (the greedy case).
Cai et al. (2024), Medusa, arXiv:2401.10774, Sec. 2.1.2 (candidates as retrieve paths).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.tree import DraftTree

__all__ = ["VerifyResult", "verify_greedy_chain", "verify_greedy_paths", "verify_greedy_tree"]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of one verification step: the step emits ``accepted_tokens`` then ``next_token``.

    ``path (m+1,)`` int32 node ids from the root (``path[0] == 0``); ``accepted_tokens (m,)``
    int32, the tokens of ``path[1:]``; ``next_token`` the correction or bonus token (``-1`` only
    when ``bonus=False`` ended the step at an accepted leaf); ``num_accepted == m``.
    """

    path: np.ndarray
    accepted_tokens: np.ndarray
    next_token: int
    num_accepted: int


def _result(tree: DraftTree, path: list, next_token: int) -> VerifyResult:
    path = np.asarray(path, np.int32)  # (m+1,)
    return VerifyResult(path, tree.tokens[path[1:]].astype(np.int32), int(next_token),
                        len(path) - 1)


# --- argument checks ----------------------------------------------------------------------------

def _tree(tree) -> DraftTree:
    return _checks.check_instance(tree, DraftTree, "tree", "DraftTree")


def _virtual(tree: DraftTree) -> np.ndarray:
    """(N,) bool: virtual duplicates (never accepted, no target row)."""
    return np.zeros(tree.num_nodes, bool) if tree.virtual is None else np.asarray(tree.virtual)


def _ids(x, name, form, length=None, low=0, high=None):
    arr = _checks.int_array(x, name, ndim=1, form=form, low=low, high=high)
    if length is not None:
        _checks.check_shape(arr, (length,), name, form)
    return arr.astype(np.int64)


def _probs(x, name, rows, form, V=None, need=None):
    """``x`` as float64 ``(rows, V)``: finite, >= 0, rows ``need`` summing to 1 within
    ``sqrt(eps_float32)`` (un-normalised input is an error; float32 rounding, also after a cast
    to float64, is not)."""
    arr = _checks.float_array(x, name)
    if arr.ndim != 2 or arr.shape[0] != rows or arr.shape[1] == 0 or (V and arr.shape[1] != V):
        raise ValueError(f"{name} must have shape {form} = ({rows}, {V or 'V'}), got {arr.shape}")
    _checks.check_finite(arr, name, hint="")
    if (arr < 0).any():
        raise ValueError(f"{name} must be probabilities (>= 0), found {arr.min()}")
    tol = np.sqrt(np.finfo(np.float32).eps)
    sums = arr.astype(np.float64).sum(axis=1)  # (rows,)
    bad = np.flatnonzero((np.abs(sums - 1) > tol) & (np.ones(rows, bool) if need is None
                                                         else need))
    if bad.size:
        raise ValueError(f"{name} row {bad[0]} must sum to 1 (within {tol:.1e}), sums to "
                         f"{sums[bad[0]]!r}")
    return arr.astype(np.float64)  # a copy: the caller's array is never touched


def _vec(x, name, V=None):
    """``x`` as a float64 probability vector ``(V,)`` (checks as :func:`_probs`)."""
    if np.ndim(x) != 1 or (V is not None and np.shape(x)[0] != V):
        raise ValueError(f"{name} must be a probability vector of shape (V,) = "
                         f"({V or 'V'},), got shape {np.shape(x)}")
    return _probs(np.asarray(x)[None], name, 1, "(V,)", V=V)[0]


def _uniform(u, name):
    u = _checks.check_number(u, name, low=0, high=1, high_open=True)
    return u


def _uniforms(u, name, n):
    arr = _checks.float_array(u, name)
    _checks.check_shape(arr, (n,), name, "(N,)" if name == "u_accept" else "(K,)")
    if not np.all((arr >= 0) & (arr < 1)):
        raise ValueError(f"{name} must lie in [0, 1), found {arr[~((arr >= 0) & (arr < 1))][0]}")
    return arr.astype(np.float64)


# --- greedy -------------------------------------------------------------------------------------

def verify_greedy_tree(tree, target_argmax) -> VerifyResult:
    """Greedy tree walk: accept the first child (sibling order) whose token is the arg-max of
    the current node's target row; stop at the first node where none is; emit its arg-max.

    Parameters
    ----------
    tree : DraftTree (N nodes)
    target_argmax : ndarray (N,), int
        ``argmax(target_logits[i])`` (lowest index on ties); rows of virtual nodes are ignored.

    Returns
    -------
    VerifyResult
        Equal to plain greedy decoding's next ``m + 1`` tokens (virtual nodes are never accepted).
    """
    tree = _tree(tree)
    am = _ids(target_argmax, "target_argmax", "(N,)", tree.num_nodes)
    virtual = _virtual(tree)
    node, path = 0, [0]
    while True:
        kids = tree.child_idx[tree.child_ptr[node]:tree.child_ptr[node + 1]]
        hit = [c for c in kids if tree.tokens[c] == am[node] and not virtual[c]]
        if not hit:
            return _result(tree, path, am[node])
        node = int(hit[0])
        path.append(node)


def verify_greedy_paths(retrieve, retrieve_len, node_token, node_argmax):
    """Greedy verification on root-to-leaf paths (Medusa's / Token Recycling's path form).

    For path row p, ``accept_len[p]`` is the number of leading positions ``t = 1, 2, ...``
    (``t < retrieve_len[p]``) with ``node_token[retrieve[p, t]] == node_argmax[retrieve[p,
    t-1]]``. Entries of ``retrieve`` at ``t >= retrieve_len[p]`` are padding and never read, so
    a padding slot can never "match" (Medusa pads with a dummy token 0, which matches whenever
    the target's arg-max is token 0).

    Parameters
    ----------
    retrieve : ndarray (P, D+1), int
        Node ids root to leaf (``retrieve[p, 0]`` is the root), padded beyond ``retrieve_len``.
    retrieve_len : ndarray (P,), int in [1, D+1]
    node_token, node_argmax : ndarray (N,), int

    Returns
    -------
    accept_len : ndarray (P,), int64
    best_path : int
        The first path attaining ``max(accept_len)``.
    last_node : int
        ``retrieve[best_path, accept_len[best_path]]``: the emitted next token is its arg-max.
    """
    R = _checks.int_array(retrieve, "retrieve", ndim=2, form="(P, D+1)")
    if R.shape[0] == 0 or R.shape[1] == 0:
        raise ValueError(f"retrieve must have at least one path and one column, got {R.shape}")
    lens = _ids(retrieve_len, "retrieve_len", "(P,)", R.shape[0], low=1, high=R.shape[1] + 1)
    tok = _ids(node_token, "node_token", "(N,)")
    am = _ids(node_argmax, "node_argmax", "(N,)", tok.shape[0])
    inside = np.arange(R.shape[1])[None, :] < lens[:, None]  # (P, D+1) non-padding slots
    if ((R < 0) | (R >= tok.shape[0]))[inside].any():
        raise ValueError(f"retrieve entries within retrieve_len must be node ids in "
                         f"[0, N = {tok.shape[0]})")
    acc = np.zeros(R.shape[0], np.int64)
    for p in range(R.shape[0]):
        t = 1
        while t < lens[p] and tok[R[p, t]] == am[R[p, t - 1]]:
            t += 1
        acc[p] = t - 1
    best = int(np.argmax(acc))  # first maximum
    return acc, best, int(R[best, acc[best]])


def verify_greedy_chain(draft, target_argmax):
    """Greedy chain verification: ``m`` = number of leading ``draft[t] == target_argmax[t]``;
    returns ``(m, target_argmax[m])``. ``draft (K,)``, ``target_argmax (K+1,)`` (row t predicts
    the token after the t-th draft; row 0 follows the root)."""
    d = _ids(draft, "draft", "(K,)")
    am = _ids(target_argmax, "target_argmax", "(K+1,)", d.shape[0] + 1)
    m = 0
    while m < d.shape[0] and d[m] == am[m]:
        m += 1
    return m, int(am[m])
