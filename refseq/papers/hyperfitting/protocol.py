"""The open-ended generation protocol (arXiv 2412.04318, Sec. 3; official
``_generation_validation``): continue held-out sequences from a short context.

For each row ``u`` of ``gen_val``, the context is ``c = u[:context_len]`` and the model writes
``total_len - context_len`` tokens after it (the official ``generate(max_length=seq_len)``),
greedily by default: ``y_t = argmax_v p(v | c, y_<t)``, ties to the lowest id
(:func:`refseq.decoding.search.greedy`). With an EOS id a row stops there and the rest of its
slots hold ``pad_id`` (the official code pads with the EOS id). Greedy decoding is the point of
the paper; :func:`continue_sample` (top-p sampling with ``top_k`` off) is the baseline it is
compared with.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.decoding.search import greedy, sample_decode
from refseq.models.tiny_transformer import TinyParams
from refseq.models.tiny_transformer.batched_lm import BatchedTransformerLM
from refseq.models.tiny_transformer.lm import TransformerLM
from refseq.papers.hyperfitting.citation import CitationBlocker, NgramIndex

__all__ = ["Continuations", "as_step_lm", "continue_greedy", "continue_sample"]


class Continuations(NamedTuple):
    """``tokens (n, total_len - context_len)`` int64 (``pad_id`` after EOS) and ``lengths (n,)``
    (generated tokens per row, EOS included)."""

    tokens: np.ndarray
    lengths: np.ndarray


def as_step_lm(model, equal_lengths: bool = False):
    """``TinyParams`` -> the batched tiny transformer
    (:class:`~refseq.models.tiny_transformer.batched_lm.BatchedTransformerLM`, one forward per
    step; ``equal_lengths``) or the row-by-row :class:`TransformerLM`; a ``StepLM`` is returned
    as is."""
    equal_lengths = _checks.check_flag(equal_lengths, "equal_lengths")
    if isinstance(model, TinyParams):
        return BatchedTransformerLM(model) if equal_lengths else TransformerLM(model)
    return _checks.check_methods(model, "model", ("start", "step", "reorder"),
                                 "TinyParams or a StepLM (start, step, reorder)")


def _contexts(gen_val, context_len, total_len, V):
    rows = _checks.int_array(gen_val, "gen_val", low=0, high=V, ndim=2, form="(n, T)")
    if rows.shape[0] == 0:
        raise ValueError("gen_val must hold at least one row")
    context_len = _checks.check_number(context_len, "context_len", integer=True, low=1,
                                       high=rows.shape[1])
    total_len = _checks.check_number(total_len, "total_len", integer=True, low=context_len)
    return [r[:context_len].astype(np.int64) for r in rows], total_len - context_len


def _full_width(out, n_new, pad_id, eos_id):
    """Pad the decoder's ``(n, steps)`` tokens to ``(n, n_new)`` with the pad id it used."""
    pad = pad_id if pad_id is not None else (np.atleast_1d(eos_id)[0] if eos_id is not None
                                             else 0)
    tokens = np.full((len(out.tokens), n_new), pad, np.int64)
    tokens[:, :out.tokens.shape[1]] = out.tokens
    return Continuations(tokens, out.lengths.copy())


def continue_greedy(model, gen_val, context_len: int = 32, total_len: int = 256, eos_id=None,
                    pad_id: int | None = None, blocker=None) -> Continuations:
    """Greedy continuations of the first ``context_len`` tokens of each row of ``gen_val``.

    Parameters
    ----------
    model : TinyParams or a StepLM.
    gen_val : (n, T) int, T >= context_len.
    context_len : int >= 1 (32 in the paper). total_len : context plus continuation (256).
    eos_id, pad_id : as :func:`refseq.decoding.search.greedy`.
    blocker : None, an :class:`NgramIndex`, or a :class:`CitationBlocker` (whose ``events``
        collect the all-blocked steps, rows numbered as in ``gen_val``). Its n-grams run over
        the context/continuation boundary.

    Returns
    -------
    Continuations. Without ``blocker`` it equals
    ``greedy(model, contexts, total_len - context_len, eos_id, pad_id)`` padded to full width.
    """
    lm = as_step_lm(model, equal_lengths=True)
    contexts, n_new = _contexts(gen_val, context_len, total_len, getattr(lm, "vocab_size", None))
    if blocker is None:
        return _full_width(greedy(lm, contexts, n_new, eos_id, pad_id), n_new, pad_id, eos_id)
    if isinstance(blocker, NgramIndex):
        blocker = CitationBlocker(blocker)
    _checks.check_instance(blocker, (CitationBlocker, NgramIndex), "blocker")
    if eos_id is None:  # rows never leave the batch: one call, row r <-> contexts[r]
        out = greedy(lm, contexts, n_new, None, pad_id,
                     logprob_processor=blocker.bind(contexts))
        return _full_width(out, n_new, pad_id, eos_id)
    # with EOS, finished rows leave the batch: decode one context per call (same output, since
    # a batch equals a loop over its rows)
    parts = [_full_width(greedy(lm, [c], n_new, eos_id, pad_id,
                                logprob_processor=blocker.bind([c], row_offset=r)),
                         n_new, pad_id, eos_id) for r, c in enumerate(contexts)]
    return Continuations(np.concatenate([p.tokens for p in parts]),
                         np.concatenate([p.lengths for p in parts]))


def continue_sample(model, gen_val, context_len: int = 32, total_len: int = 256,
                    top_p: float = 0.95, temperature: float = 1.0, rng=None, eos_id=None,
                    pad_id: int | None = None) -> Continuations:
    """Sampled continuations, the paper's baseline: nucleus sampling with ``top_p`` (0.95 here;
    the paper's value is **unconfirmed**), ``temperature``, and **no** top-k (Hugging Face's
    ``do_sample=True`` would add ``top_k=50`` unless told ``top_k=0``). ``rng``: Generator or
    seed. Otherwise as :func:`continue_greedy`."""
    lm = as_step_lm(model, equal_lengths=True)
    contexts, n_new = _contexts(gen_val, context_len, total_len, getattr(lm, "vocab_size", None))
    out = sample_decode(lm, contexts, n_new, temperature=temperature, top_k=0, top_p=top_p,
                        rng=rng, eos_id=eos_id, pad_id=pad_id)
    return _full_width(out, n_new, pad_id, eos_id)
