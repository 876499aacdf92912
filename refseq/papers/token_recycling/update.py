"""The matrix update of Token Recycling (Luo et al., arXiv 2408.08696, Sec. 3.1 and 3.3;
official ``adj_matrix[input_ids] = torch.topk(outputs.logits, k)``).

After verification, the candidate tokens of *every* node of the merged sequence ``S`` (the root,
accepted and rejected drafts alike) overwrite the row of that node's token::

    M[ tok(i) ] <- argtopk(z_i, k)        for every node i of S

The rejected nodes' candidates were computed under wrong prefixes, yet they are kept on purpose
("trash" becomes "treasure"). When a token appears at several nodes, the official CUDA scatter
is unordered (the paper notes that the k slots of a row can even mix writers); the reference is
deterministic: rule ``"last"`` keeps the row of the highest node index (a sequential loop in
node order), ``"first"`` the lowest.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.token_recycling.matrix import TokenRecyclingState

__all__ = ["RULES", "candidate_tokens", "update_matrix", "update_matrix_batch", "winner_nodes"]

RULES = ("last", "first")


def _logits(logits, name: str, ndim: int, form: str) -> np.ndarray:
    z = _checks.float_array(logits, name)
    if z.ndim != ndim or z.shape[-1] == 0:
        raise ValueError(f"{name} must be a float array {form}, got shape {z.shape}")
    if np.isnan(z).any() or (z == np.inf).any():
        raise ValueError(f"{name} must not contain NaN or +inf (-inf marks a banned token)")
    return z


def candidate_tokens(logits, k: int) -> np.ndarray:
    """``argtopk`` per row: ``C (R, k)`` int64, by descending logit, ties by ascending token id.

    Parameters
    ----------
    logits : ndarray (R, V), float32 or float64 (no NaN or +inf)
    k : int in [1, V]
    """
    z = _logits(logits, "logits", 2, "(R, V)")
    k = _checks.check_number(k, "k", integer=True, low=1, high=z.shape[1])
    # a stable sort of -z keeps equal logits in increasing token order
    return np.argsort(-z, axis=1, kind="stable")[:, :k].astype(np.int64)


def winner_nodes(tokens, rule: str = "last") -> tuple[np.ndarray, np.ndarray]:
    """For each distinct token value, the node whose candidates its row receives.

    Returns ``(values (U,), nodes (U,))`` int64, values increasing; ``"last"``: the highest node
    index holding the value, ``"first"``: the lowest.
    """
    t = _checks.int_array(tokens, "tokens", ndim=1, low=0, form="(N,)").astype(np.int64)
    rule = _checks.check_choice(rule, "rule", RULES)
    if rule == "first":
        values, nodes = np.unique(t, return_index=True)  # first occurrence
    else:
        values, rev = np.unique(t[::-1], return_index=True)  # first occurrence in reverse
        nodes = t.size - 1 - rev
    return values, nodes.astype(np.int64)


def update_matrix(state, tokens, logits, rule: str = "last") -> int:
    """``M[tokens[i]] <- argtopk(logits[i], k)`` for every node i (Sec. 3.3), in place.

    Parameters
    ----------
    state : TokenRecyclingState
    tokens : ndarray (N,), int in [0, V)
        The merged sequence S (root first).
    logits : ndarray (N, V), float
        The target's logits at every node (``logits[i]`` predicts the token after node i).
    rule : {"last", "first"}
        Which node wins a row that several nodes hold (see the module docstring).

    Returns
    -------
    int
        Number of distinct rows written.
    """
    _checks.check_instance(state, TokenRecyclingState, "state")
    t = _checks.int_array(tokens, "tokens", ndim=1, low=0, high=state.vocab_size, form="(N,)")
    z = _logits(logits, "logits", 2, "(N, V)")
    _checks.check_shape(z, (t.shape[0], state.vocab_size), "logits", "(N, V)")
    values, nodes = winner_nodes(t, rule)
    state.M[values] = candidate_tokens(z[nodes], state.k)  # one row assignment, no duplicates
    return int(values.size)


def update_matrix_batch(state, tokens, logits, rule: str = "last") -> int:
    """The update for ``B`` trees sharing one matrix: rows applied in row-major order (b, then
    i), the deterministic analogue of one parallel scatter serving a batch.

    ``tokens (B, N)`` int, ``logits (B, N, V)`` float. Returns the number of rows written.
    """
    _checks.check_instance(state, TokenRecyclingState, "state")
    t = _checks.int_array(tokens, "tokens", ndim=2, low=0, high=state.vocab_size, form="(B, N)")
    z = _logits(logits, "logits", 3, "(B, N, V)")
    _checks.check_shape(z, t.shape + (state.vocab_size,), "logits", "(B, N, V)")
    return update_matrix(state, t.reshape(-1), z.reshape(-1, state.vocab_size), rule)
