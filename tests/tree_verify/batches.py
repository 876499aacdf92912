"""Random padded tree batches for the tree-verification tests, and the boundary detector.

:func:`batches` draws ``TreeBatch``-shaped inputs (:func:`refseq.testing.trees.random_tree_batch`:
random parents in topological order, duplicate sibling tokens, padding, zero probabilities,
virtual duplicates in iid mode); :func:`near_boundary` tells, from the reference walk's own
intermediate values (:func:`refseq.tree_verify.reference.near_boundary`), which trees have a
uniform within ``tol`` of a decision boundary, where a tier that sums in another order may
legitimately decide otherwise.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from refseq.testing.trees import STOCHASTIC_ARGS, random_tree_batch
from refseq.tree_verify import reference as ref

TOL = ref.BOUNDARY_TOL


def make_batch(seed, B, N, V, mode, dtype, zero_frac=0.3):
    """Keyword arguments of ``tree_verify_stochastic`` for one random batch."""
    return random_tree_batch(np.random.default_rng(seed), B, N, V, mode, dtype, zero_frac)


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
    """(B,) bool: :func:`refseq.tree_verify.reference.near_boundary` of a keyword batch."""
    return ref.near_boundary(*(kw[k] for k in STOCHASTIC_ARGS))


def assert_same_walks(got, want, boundary):
    """Integer outputs identical on every tree not flagged by :func:`near_boundary`."""
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.int32 and g.shape == w.shape
        np.testing.assert_array_equal(g[~boundary], w[~boundary])
