"""Random padded tree batches for the tree-verification hot path (:mod:`refseq.tree_verify`).

:func:`random_tree_batch` draws the keyword arguments of ``tree_verify_stochastic``: random
parents in topological order (a bias to recent nodes gives deep trees as well as bushy ones),
tokens mostly drawn from the parent's draft row (without replacement in wor mode) and a target
mixed from the draft and noise, so that acceptances are common and walks go deep; duplicate
sibling tokens, padding, zero probabilities, rows where target and draft agree (zero residual
mass), and virtual duplicates in iid mode. The ``*_inputs(rng, dims, dtype)``
functions are the registry's input generators (:mod:`refseq.registry`) for the five functions
of the hot path; they draw ``B`` trees of up to ``N`` nodes over ``V`` tokens.
"""

from __future__ import annotations

import numpy as np

__all__ = ["greedy_inputs", "kv_capture", "kv_inputs", "masks_inputs", "paths_inputs",
           "random_tree_batch", "stochastic_boundary", "stochastic_inputs"]

MODE_CODES = {"iid": 0, "wor": 1, "point": 2}


def _probs(rng, shape, dtype, zero_frac):
    p = rng.random(shape) ** rng.choice([3, 12])  # 12: peaked rows, frequent acceptances
    p[rng.random(shape) < zero_frac] = 0.0
    p[..., 0] += (p.sum(-1) == 0)  # never an all-zero row
    return (p / p.sum(-1, keepdims=True)).astype(dtype)


def _trees(rng, B, N, V, with_virtual, draft=None, wor=False, top=False):
    """Random padded trees; with ``draft`` (B, N, V), most tokens are drawn from their parent's
    draft row (without replacement among siblings when ``wor``; among the row's 3 most likely
    tokens when ``top``, as a deterministic drafter would), so that walks go deep; the rest are
    uniform (zero-probability tokens included)."""
    parents = np.full((B, N), -2, np.int32)
    tokens = np.full((B, N), -1, np.int32)
    virtual = np.zeros((B, N), np.uint8)
    num_nodes = rng.integers(1, N + 1, B).astype(np.int32)
    small = min(V, 4) if rng.random() < 0.5 else V
    for b in range(B):
        n = num_nodes[b]
        parents[b, 0] = -1
        tokens[b, 0] = rng.integers(0, V)
        for i in range(1, n):
            u = rng.integers(max(0, i - 3), i) if rng.random() < 0.6 else rng.integers(0, i)
            parents[b, i] = u
            q = None if draft is None else draft[b, u].astype(np.float64)
            if q is not None and wor:
                q[tokens[b, np.flatnonzero(parents[b, :i] == u)]] = 0.0
            if q is not None and q.sum() > 0 and rng.random() < 0.8:
                tokens[b, i] = (rng.choice(np.argsort(q)[-3:]) if top else
                                rng.choice(V, p=q / q.sum()))
            else:
                tokens[b, i] = rng.integers(0, small)
        if with_virtual:  # flag some later duplicate leaves virtual
            for i in range(1, n):
                sib = np.flatnonzero(parents[b, :i] == parents[b, i])
                leaf = not (parents[b, i + 1:n] == i).any()
                if leaf and (tokens[b, sib] == tokens[b, i]).any() and rng.random() < 0.5:
                    virtual[b, i] = 1
    return parents, tokens, virtual, num_nodes


def random_tree_batch(rng, B, N, V, mode, dtype, zero_frac=0.3) -> dict:
    """Keyword arguments of ``tree_verify_stochastic`` for one random batch (``mode`` 0, 1, 2;
    in point mode ``draft_probs`` is None about half the time)."""
    draft = _probs(rng, (B, N, V), dtype, zero_frac)
    lam = rng.choice([0.2, 0.6, 1.0])  # how far the target is from the draft
    target = ((1 - lam) * draft + lam * _probs(rng, (B, N, V), np.float64, zero_frac))
    target = (target / target.sum(-1, keepdims=True)).astype(dtype)
    if rng.random() < 0.3:  # some rows equal: residuals with zero mass, fallback to P
        target[:, :N // 2] = draft[:, :N // 2]
    parents, tokens, virtual, num_nodes = _trees(rng, B, N, V, mode == 0,
                                                 draft if mode != 2 or rng.random() < 0.5
                                                 else target, wor=mode == 1, top=mode == 2)
    return dict(parents=parents, tokens=tokens, target_probs=target,
                draft_probs=draft if mode != 2 or rng.random() < 0.5 else None, mode=mode,
                virtual=virtual if mode == 0 else None, u_accept=_uniform(rng, (B, N), dtype),
                u_final=_uniform(rng, (B,), dtype), num_nodes=num_nodes)


def _uniform(rng, shape, dtype):
    """Uniforms on the grid k / 2**24, k < 2**24: exact in float32, so a cast to either dtype
    gives the same numbers and never rounds up to 1."""
    return (np.floor(rng.random(shape) * 2**24) / 2**24).astype(dtype)


STOCHASTIC_ARGS = ("parents", "tokens", "target_probs", "draft_probs", "mode", "virtual",
                   "u_accept", "u_final", "num_nodes")


def stochastic_inputs(rng, dims, dtype):
    """Registry inputs of ``tree_verify_stochastic``: dims ``B``, ``N``, ``V``, ``mode``."""
    kw = random_tree_batch(rng, dims["B"], dims["N"], dims["V"], MODE_CODES[dims["mode"]], dtype)
    return tuple(kw[k] for k in STOCHASTIC_ARGS), {}


def greedy_inputs(rng, dims, dtype):
    """Registry inputs of ``tree_verify_greedy``: dims ``B``, ``N``, ``V``; the arg-max is drawn
    from the tokens' range, so walks go deep."""
    parents, tokens, _, num_nodes = _trees(rng, dims["B"], dims["N"], dims["V"], False)
    argmax = np.where(tokens >= 0, rng.integers(0, min(dims["V"], 4), tokens.shape), -1)
    return (parents, tokens, argmax.astype(np.int32), num_nodes), {}


def masks_inputs(rng, dims, dtype):
    """Registry inputs of ``tree_masks``: dims ``B``, ``N`` (and ``V``, unused)."""
    parents, _, _, num_nodes = _trees(rng, dims["B"], dims["N"], 2, False)
    return (parents, num_nodes, rng.integers(0, 50, dims["B"]).astype(np.int32)), {}


def paths_inputs(rng, dims, dtype):
    """Registry inputs of ``tree_verify_greedy_paths``: each tree's retrieve rows (one per leaf,
    padded to the batch's widest tree with -1 rows) and per-node tokens and arg-max."""
    from refseq.decoding.speculative.buffers import retrieve_paths
    from refseq.decoding.speculative.tree import DraftTree

    parents, tokens, argmax = greedy_inputs(rng, dims, dtype)[0][:3]
    B, N = parents.shape
    rows = []
    for b in range(B):
        n = int((tokens[b] >= 0).sum())
        rows.append(retrieve_paths(DraftTree(parents[b, :n], tokens[b, :n])))
    P = max(r.shape[0] for r, _ in rows)
    W = max(r.shape[1] for r, _ in rows)
    retrieve = np.full((B, P, W), -1, np.int32)
    retrieve_len = np.zeros((B, P), np.int32)
    for b, (r, length) in enumerate(rows):
        retrieve[b, :r.shape[0], :r.shape[1]] = r
        retrieve_len[b, :r.shape[0]] = length
    return (retrieve, retrieve_len, tokens, argmax), {}


def kv_inputs(rng, dims, dtype):
    """Registry inputs of ``kv_commit``: a cache (B, 2, 2, 2, S, 3) of ``dtype`` and the greedy
    walks' paths of a random batch (S leaves room for ``n_past + N``)."""
    from refseq.tree_verify import tree_verify_greedy

    args = greedy_inputs(rng, dims, dtype)[0]
    path, num_accepted, _ = tree_verify_greedy(*args)
    B, N = args[0].shape
    n_past = rng.integers(0, 6, B).astype(np.int32)
    cache = rng.standard_normal((B, 2, 2, 2, 6 + N, 3)).astype(dtype)
    return (cache, n_past, path, num_accepted), {}


def stochastic_boundary(args, kwargs):
    """The registry's exempt trees of ``tree_verify_stochastic``: those the reference's own
    margins put near a decision boundary (:func:`refseq.tree_verify.reference.near_boundary`)."""
    from refseq.tree_verify.checks import check_mode
    from refseq.tree_verify.reference import near_boundary

    parents, tokens, target, draft, mode, *rest = args
    return near_boundary(parents, tokens, target, draft, check_mode(mode), *rest)


def kv_capture(args, kwargs, returned):
    """What the registry compares for ``kv_commit``: the new ``n_past`` and a copy of the cache
    it compacted in place."""
    return returned, args[0].copy()
