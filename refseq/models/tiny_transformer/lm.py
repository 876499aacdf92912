"""The tiny transformer as a :class:`~refseq.decoding.interfaces.StepLM`.

Each row of the decoding state keeps its own KV cache (``(L, 2, H, S, Dh)``, see
:mod:`refseq.models.tiny_transformer.kv_cache`), so prompts of different lengths need no padding and
``reorder`` is a gather of rows. Every call runs unbatched forwards row by row: the reference
favours the obvious loop over padding and masks; use the batched ``forward`` for speed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.models.tiny_transformer.forward import forward
from refseq.models.tiny_transformer.params import check_params


class TransformerState(NamedTuple):
    """Per-row KV caches; row r has seen ``kv[r].shape[-2]`` tokens. Never mutated."""

    kv: tuple


class TransformerLM:
    """A ``StepLM`` over :func:`refseq.models.tiny_transformer.forward` with a KV cache.

    Parameters
    ----------
    params : TinyParams
    bos_id : int, optional — prepended to every prompt (then empty prompts are allowed);
        without it an empty prompt raises ``ValueError`` (the model has no start token).
    """

    def __init__(self, params, bos_id: int | None = None):
        self.params = params
        self.config = check_params(params)
        self.vocab_size = self.config.vocab_size
        self.bos_id = _checks.check_number(bos_id, "bos_id", integer=True, low=0,
                                           high=self.vocab_size - 1, allow_none=True)

    def start(self, prompts):
        """Logits (B, V) for the first new token after each prompt, and the state."""
        if len(prompts) == 0:
            raise ValueError("prompts must hold at least one prompt")
        logits, kvs = [], []
        for i, prompt in enumerate(prompts):
            ids = np.asarray(prompt)
            if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
                raise TypeError(
                    f"prompts[{i}] must be a 1-D int array, got {ids.dtype} {ids.shape}"
                )
            if self.bos_id is not None:
                ids = np.concatenate([[self.bos_id], ids.astype(np.int64)])
            if ids.size == 0:
                raise ValueError(f"prompts[{i}] is empty and no bos_id was given")
            lg, _, kv = forward(self.params, tokens=ids.astype(np.int64), return_hidden=False)
            logits.append(lg[-1])  # (V,)
            kvs.append(kv)
        return np.stack(logits), TransformerState(tuple(kvs))

    def step(self, state: TransformerState, tokens):
        """Append one token per row; logits (R, V) for the next token."""
        tokens = np.asarray(tokens)
        if tokens.shape != (len(state.kv),):
            raise ValueError(
                f"tokens must have shape (R,) = ({len(state.kv)},), got {tokens.shape}"
            )
        logits, kvs = [], []
        for kv, tok in zip(state.kv, tokens):
            lg, _, new_kv = forward(self.params, tokens=np.array([tok], np.int64), past_kv=kv,
                                    return_hidden=False)
            logits.append(lg[-1])
            kvs.append(new_kv)
        return np.stack(logits), TransformerState(tuple(kvs))

    def reorder(self, state: TransformerState, rows):
        """Gather rows (they may repeat or be dropped)."""
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= len(state.kv))):
            raise ValueError(f"rows must be 1-D indices into {len(state.kv)} rows, got {rows}")
        return TransformerState(tuple(state.kv[int(r)] for r in rows))
