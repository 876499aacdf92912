"""Compiled (Numba, CPU) forms of the two matrix operations, with exactly the reference's
semantics (Luo et al., arXiv 2408.08696, Sec. 3.2 and 3.3).

- :func:`retrieve_tree_numba`: the merged sequence in node order; node i reads its parent's
  finished token (``parents[i] < i``), which is what the layer-parallel gathers compute.
- :func:`update_matrix_numba`: rule ``"last"`` without a parallel scatter: a reverse scan over
  the nodes with a ``seen`` marker per token value, so the highest node index holding a value
  is the only writer of its row (a GPU version would take ``atomicMax`` into a per-token winner
  array, then let only winners write their k candidates).

Neither operation is a hot path (they are gathers and scatters of a few hundred integers); the
kernels exist to pin the semantics a compiled implementation must keep.
"""

from __future__ import annotations

import numba
import numpy as np

from refseq import _checks
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.templates import TemplateBuffers
from refseq.papers.token_recycling.update import _logits, candidate_tokens

__all__ = ["retrieve_tree_numba", "update_matrix_numba"]


@numba.njit(cache=True)
def _retrieve(M, parents, rank, root):  # pragma: no cover - compiled
    N = parents.shape[0]
    out = np.empty(N, np.int64)
    out[0] = root
    for i in range(1, N):
        out[i] = M[out[parents[i]], rank[i]]
    return out


@numba.njit(cache=True)
def _scatter_last(M, tokens, cand, seen):  # pragma: no cover - compiled
    written = 0
    for i in range(tokens.shape[0] - 1, -1, -1):  # reverse scan: the last holder wins
        t = tokens[i]
        if seen[t]:
            continue
        seen[t] = True
        written += 1
        for j in range(cand.shape[1]):
            M[t, j] = cand[i, j]
    for i in range(tokens.shape[0]):  # clear the markers for the next call
        seen[tokens[i]] = False
    return written


def retrieve_tree_numba(state, root, buf) -> np.ndarray:
    """``tokens (N,)`` int64 of the tree rooted at ``root`` (equals
    :func:`~refseq.papers.token_recycling.retrieval.retrieve_tokens`)."""
    _checks.check_instance(state, TokenRecyclingState, "state")
    _checks.check_instance(buf, TemplateBuffers, "buf", "TemplateBuffers (from template_buffers)")
    if buf.k > state.k:
        raise ValueError(f"buf was built for k = {buf.k} ranks but the matrix has only "
                         f"k = {state.k} columns")
    root = _checks.check_number(root, "root", integer=True, low=0, high=state.vocab_size - 1)
    return _retrieve(state.M, buf.parents.astype(np.int64), buf.rank.astype(np.int64), root)


def update_matrix_numba(state, tokens, logits) -> int:
    """Rule ``"last"`` of :func:`~refseq.papers.token_recycling.update.update_matrix`, in place;
    returns the number of distinct rows written. The top-k per node is the reference's
    :func:`~refseq.papers.token_recycling.update.candidate_tokens` (ties: lower id first)."""
    _checks.check_instance(state, TokenRecyclingState, "state")
    t = _checks.int_array(tokens, "tokens", ndim=1, low=0, high=state.vocab_size, form="(N,)")
    z = _logits(logits, "logits", 2, "(N, V)")
    _checks.check_shape(z, (t.shape[0], state.vocab_size), "logits", "(N, V)")
    cand = candidate_tokens(z, state.k).astype(state.M.dtype)  # (N, k)
    seen = np.zeros(state.vocab_size, np.bool_)
    return int(_scatter_last(state.M, t.astype(np.int64), cand, seen))
