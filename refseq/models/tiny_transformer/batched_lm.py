"""The tiny transformer as a batched ``StepLM``: one forward call per step for all rows.

:class:`~refseq.models.tiny_transformer.lm.TransformerLM` runs one unbatched forward per row, the
obvious loop; this class gives the same logits (to rounding: the batched matrix products sum in
another order) with one batched forward per call, which is what makes beam search over many
rows fast. Prompts of different lengths are left-padded: row ``r`` keeps a ``(S,)`` boolean
``valid`` mask over the cache slots (False = padding), attention is allowed to valid slots only,
and positions count real tokens, so the padding changes nothing but the shapes::

    start:  tokens (R, P) left-padded, positions = max(arange(P) - pad_r, 0),
            allow[r, i, j] = j <= i and valid[r, j]
    step:   one token per row at position length_r, allow[r, 0, :] = (valid[r], True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import as_prompts
from refseq.models.tiny_transformer.forward import forward
from refseq.models.tiny_transformer.params import check_params

__all__ = ["BatchedState", "BatchedTransformerLM"]


class BatchedState(NamedTuple):
    """Left-padded caches of ``R`` rows over ``S`` slots. Never mutated (steps return new ones)."""

    kv: np.ndarray  # (R, L, 2, H, S, Dh)
    valid: np.ndarray  # (R, S) bool, False on left padding
    length: np.ndarray  # (R,) int64, real tokens seen = the next position


class BatchedTransformerLM:
    """A ``StepLM`` over :func:`refseq.models.tiny_transformer.forward`, batched over rows.

    Parameters
    ----------
    params : TinyParams
    bos_id : int, optional — prepended to every prompt (then empty prompts are allowed).

    Notes
    -----
    Every call stacks all rows into one forward, so a step costs one batched forward instead of
    ``R`` small ones; the cache is re-concatenated each step (``O(S)`` copying per step). Logits
    equal :class:`TransformerLM`'s to rounding (tests/models/tiny_transformer/test_batched_lm.py).
    """

    def __init__(self, params, bos_id: int | None = None):
        self.params = params
        self.config = check_params(params)
        self.vocab_size = self.config.vocab_size
        self.bos_id = _checks.check_number(bos_id, "bos_id", integer=True, low=0,
                                           high=self.vocab_size - 1, allow_none=True)

    def start(self, prompts):
        """Logits (R, V) for the first new token after each prompt, and the state."""
        prompts = as_prompts(prompts)
        if len(prompts) == 0:
            raise ValueError("prompts must hold at least one prompt")
        if self.bos_id is not None:
            prompts = [np.concatenate([[self.bos_id], p]).astype(np.int64) for p in prompts]
        lengths = np.array([len(p) for p in prompts], np.int64)  # (R,)
        if lengths.min() == 0:
            raise ValueError(f"prompts[{int(np.argmin(lengths))}] is empty and no bos_id was "
                             "given")
        R, P = len(prompts), int(lengths.max())
        pad = P - lengths  # (R,) left padding per row
        tokens = np.zeros((R, P), np.int64)
        for r, p in enumerate(prompts):
            tokens[r, pad[r]:] = p
        valid = np.arange(P)[None, :] >= pad[:, None]  # (R, P)
        positions = np.maximum(np.arange(P)[None, :] - pad[:, None], 0)  # (R, P)
        allow = np.tril(np.ones((P, P), bool))[None] & valid[:, None, :]  # (R, P, P)
        logits, _, kv = forward(self.params, tokens=tokens, positions=positions,
                                allow_mask=allow, return_hidden=False)
        return logits[:, -1], BatchedState(kv, valid, lengths)  # (R, V)

    def step(self, state: BatchedState, tokens):
        """Append one token per row; logits (R, V) for the next token."""
        tokens = np.asarray(tokens)
        R = len(state.length)
        if tokens.shape != (R,):
            raise ValueError(f"tokens must have shape (R,) = ({R},), got {tokens.shape}")
        allow = np.concatenate([state.valid, np.ones((R, 1), bool)], axis=1)  # (R, S + 1)
        logits, _, kv = forward(self.params, tokens=tokens[:, None],
                                positions=state.length[:, None], allow_mask=allow[:, None, :],
                                past_kv=state.kv, return_hidden=False)
        return logits[:, -1], BatchedState(kv, allow, state.length + 1)  # (R, V)

    def reorder(self, state: BatchedState, rows):
        """Gather rows (they may repeat or be dropped)."""
        rows = np.asarray(rows)
        R = len(state.length)
        if rows.ndim != 1 or rows.dtype.kind not in "iu" or (
                rows.size and (rows.min() < 0 or rows.max() >= R)):
            raise ValueError(f"rows must be 1-D integer indices into {R} rows, got {rows}")
        return BatchedState(state.kv[rows], state.valid[rows], state.length[rows])
