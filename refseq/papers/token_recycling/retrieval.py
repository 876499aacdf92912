"""Draft-tree retrieval from the adjacency matrix (Luo et al., arXiv 2408.08696, Sec. 3.2;
official ``prepare_data_input_ids``).

With root token r and template entry ``(r_1, ..., r_d)``::

    tok(()) = r,      tok((r_1, ..., r_d)) = M[ tok((r_1, ..., r_{d-1})), r_d ]

Computed layer by layer (breadth first): all nodes of depth d are one vectorised gather
``tokens[layer] = M[tokens[parents[layer]], rank[layer]]`` from the finished layer d - 1, so a
tree of depth D costs D gathers. The merged sequence ``S`` is ``tokens`` in node order.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.tree import DraftTree
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.templates import TemplateBuffers

__all__ = ["retrieve_tokens", "retrieve_tree", "retrieve_tree_batch"]


def _args(state, buf):
    _checks.check_instance(state, TokenRecyclingState, "state")
    _checks.check_instance(buf, TemplateBuffers, "buf", "TemplateBuffers (from template_buffers)")
    if buf.k > state.k:
        raise ValueError(f"buf was built for k = {buf.k} ranks but the matrix has only "
                         f"k = {state.k} columns")


def retrieve_tree_batch(state, roots, buf) -> np.ndarray:
    """Merged sequences of ``B`` trees from one matrix: ``tokens (B, N)`` int64.

    Parameters
    ----------
    state : TokenRecyclingState
    roots : ndarray (B,), int in [0, V)
        Each tree's root (last committed) token.
    buf : TemplateBuffers

    Returns
    -------
    tokens : ndarray (B, N), int64
        ``tokens[:, 0] = roots``; node i's token is ``M[tokens[:, parents[i]], rank[i]]``.
    """
    _args(state, buf)
    roots = _checks.int_array(roots, "roots", ndim=1, low=0, high=state.vocab_size, form="(B,)")
    B, N = roots.shape[0], buf.num_nodes
    tokens = np.zeros((B, N), np.int64)
    tokens[:, 0] = roots
    lb = buf.layer_bounds  # (D+1,), lb[0] == 1
    for d in range(1, lb.size):
        layer = slice(int(lb[d - 1]), int(lb[d]))
        father = tokens[:, buf.parents[layer]]  # (B, n_d) tokens of the finished layer d - 1
        tokens[:, layer] = state.M[father, buf.rank[layer]]  # one gather per layer
    return tokens


def retrieve_tokens(state, root, buf) -> np.ndarray:
    """The merged sequence ``S`` of one tree, ``tokens (N,)`` int64 (``tokens[0] = root``)."""
    _checks.check_instance(state, TokenRecyclingState, "state")
    root = _checks.check_number(root, "root", integer=True, low=0, high=state.vocab_size - 1)
    return retrieve_tree_batch(state, np.array([root]), buf)[0]


def retrieve_tree(state, root, buf) -> DraftTree:
    """One step's draft tree: the template's parents with the tokens of :func:`retrieve_tokens`.

    Parameters
    ----------
    state : TokenRecyclingState
    root : int in [0, V)
        The last committed token (node 0; committed, not cached).
    buf : TemplateBuffers
        From :func:`~refseq.papers.token_recycling.templates.template_buffers`.

    Returns
    -------
    DraftTree
        Siblings may repeat a token (e.g. all zeros after a cold start); this is harmless for
        exactness because greedy verification accepts at most the target's arg-max.
    """
    tokens = retrieve_tokens(state, root, buf)  # (N,) checks the arguments
    return DraftTree(buf.parents, tokens)
