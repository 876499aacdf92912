"""Random padded tree batches for the tree-verification tests, and the boundary detector.

:func:`tree_batches` draws ``TreeBatch``-shaped inputs (random parents in topological order,
duplicate sibling tokens, padding, zero probabilities, virtual duplicates in iid mode);
:func:`near_boundary` tells, from the reference walk's own intermediate values
(:func:`refseq.tree_verify.reference.margins`), which trees have a uniform within ``tol`` of a
decision boundary, where a tier that sums in another order may legitimately decide otherwise.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refseq.tree_verify import reference as ref

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def _probs(rng, shape, dtype, zero_frac):
    p = rng.random(shape) ** 3
    p[rng.random(shape) < zero_frac] = 0.0
    p[..., 0] += (p.sum(-1) == 0)  # never an all-zero row
    return (p / p.sum(-1, keepdims=True)).astype(dtype)


def make_batch(seed, B, N, V, mode, dtype, zero_frac=0.3):
    """Keyword arguments of ``tree_verify_stochastic`` for one random batch."""
    rng = np.random.default_rng(seed)
    parents = np.full((B, N), -2, np.int32)
    tokens = np.full((B, N), -1, np.int32)
    virtual = np.zeros((B, N), np.uint8)
    num_nodes = rng.integers(1, N + 1, B).astype(np.int32)
    for b in range(B):
        n = num_nodes[b]
        parents[b, 0] = -1
        for i in range(1, n):  # a bias to recent nodes makes deep trees as well as bushy ones
            parents[b, i] = rng.integers(max(0, i - 3), i) if rng.random() < 0.6 else \
                rng.integers(0, i)
        tokens[b, :n] = rng.integers(0, min(V, 4) if rng.random() < 0.5 else V, n)
        if mode == 0:  # flag some later duplicate leaves virtual
            for i in range(1, n):
                sib = np.flatnonzero(parents[b, :i] == parents[b, i])
                leaf = not (parents[b, i + 1:n] == i).any()
                if leaf and (tokens[b, sib] == tokens[b, i]).any() and rng.random() < 0.5:
                    virtual[b, i] = 1
    target = _probs(rng, (B, N, V), dtype, zero_frac)
    draft = _probs(rng, (B, N, V), dtype, zero_frac)
    if rng.random() < 0.3:  # some rows equal: residuals with zero mass, fallback to P
        target[:, :N // 2] = draft[:, :N // 2]
    return dict(parents=parents, tokens=tokens, target_probs=target,
                draft_probs=draft if mode != 2 or rng.random() < 0.5 else None, mode=mode,
                virtual=virtual if mode == 0 else None, u_accept=rng.random((B, N)),
                u_final=rng.random(B), num_nodes=num_nodes)


@st.composite
def batches(draw, max_B=4, max_N=64, max_V=512):
    """Hypothesis strategy: a valid ``tree_verify_stochastic`` call."""
    B = draw(st.integers(1, max_B))
    N = draw(st.integers(1, max_N))
    V = draw(st.integers(1, max_V))
    mode = draw(st.sampled_from([0, 1, 2]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_batch(seed, B, N, V, mode, dtype, draw(st.sampled_from([0.0, 0.3, 0.8])))


def near_boundary(kw):
    """(B,) bool: trees whose reference walk has a decision margin below the dtype's tolerance
    (an acceptance gap ``|u Q(y) - P(y)|``, a CDF step ``|cdf[t] - u total|``, or a positive
    residual mass). Their outputs may legitimately differ between tiers."""
    tol = TOL[np.asarray(kw["target_probs"]).dtype]
    B, N = kw["parents"].shape
    virt = np.zeros((B, N), np.uint8) if kw["virtual"] is None else kw["virtual"]
    out = np.zeros(B, bool)
    for b in range(B):
        draft = None if kw["draft_probs"] is None else kw["draft_probs"][b]
        *_, trace = ref.margins(kw["parents"][b], kw["tokens"][b], kw["target_probs"][b], draft,
                                kw["mode"], virt[b], kw["u_accept"][b], kw["u_final"][b],
                                kw["num_nodes"][b])
        out[b] = any(abs(m) < tol if kind != "mass" else 0 < m < tol for kind, m in trace)
    return out


def assert_same_walks(got, want, boundary):
    """Integer outputs identical on every tree not flagged by :func:`near_boundary`."""
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.int32 and g.shape == w.shape
        np.testing.assert_array_equal(g[~boundary], w[~boundary])
