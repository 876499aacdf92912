"""Logprob processors: per-step edits of the next-token log-probabilities.

A processor is a callable ``proc(generated, logprobs) -> logprobs'`` with

- ``generated`` ``(R, t)`` int — the tokens each row has generated so far (the prompt is *not*
  included; ``t`` may be 0);
- ``logprobs`` ``(R, V)`` float32/float64 — ``log_softmax`` of the model's logits (may hold
  ``-inf``; NaN is rejected);

and returns a new ``(R, V)`` array of the same dtype; the input is never modified. Decoders
apply it after ``log_softmax`` and before adding cumulative scores (the order of Hugging Face's
``generate``), so a beam's score is a sum of *processed* per-step log-probs. Removed tokens are
set to ``-inf``; nothing is renormalised (neither peer renormalises).

Rows are laid out batch-major (row ``b * k + j`` is the ``j``-th row of batch item ``b``), as in
the decoders of :mod:`refseq.decoding`; only :func:`no_repeat_ngram` with ``prompts=`` relies on it.

==========================  ===============================================================
factory                     peer behaviour reproduced
==========================  ===============================================================
:func:`min_length`          HF ``MinNewTokensLengthLogitsProcessor``; fairseq ``min_len``
:func:`no_repeat_ngram`     HF ``NoRepeatNGramLogitsProcessor``; fairseq ``no_repeat_ngram_size``
:func:`force_eos_at_max`    fairseq ``SequenceGenerator``: only EOS at the last step
:func:`unk_penalty`         fairseq ``SequenceGenerator``: ``lprobs[:, unk] -= unk_penalty``
:func:`ban_tokens`          HF ``SuppressTokensLogitsProcessor``; fairseq's ``pad`` ban
:func:`compose`             HF ``LogitsProcessorList`` (apply in order)
==========================  ===============================================================
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import as_prompts

__all__ = ["ban_tokens", "check_step_inputs", "compose", "force_eos_at_max", "min_length",
           "no_repeat_ngram", "unk_penalty"]


def _token_ids(ids, name: str) -> np.ndarray:
    """A non-empty 1-d int64 array of token ids >= 0 from an int or a sequence of ints."""
    if isinstance(ids, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be a token id or a sequence of token ids, got {ids!r}")
    arr = np.atleast_1d(np.asarray(ids))
    if arr.size == 0:
        raise ValueError(f"{name} must name at least one token id, got {ids!r}")
    arr = _checks.int_array(arr, name, low=0, ndim=1, form="(n,)")
    return np.unique(arr.astype(np.int64))  # (n,)


def check_step_inputs(generated, logprobs) -> tuple[np.ndarray, np.ndarray]:
    """Validate a processor's arguments: ``generated`` ``(R, t)`` int with ids in ``[0, V)`` and
    ``logprobs`` ``(R, V)`` float32/float64 without NaN, ``R >= 1``, ``V >= 1``. Returns them
    as arrays (``generated`` as int64); ``TypeError``/``ValueError`` naming the argument."""
    logprobs = _checks.float_array(logprobs, "logprobs")
    if logprobs.ndim != 2 or 0 in logprobs.shape:
        raise ValueError(f"logprobs must have shape (rows, V) with rows, V >= 1, got "
                         f"{logprobs.shape}")
    R, V = logprobs.shape
    if np.isnan(logprobs).any():
        raise ValueError("logprobs must not contain NaN (a row with no distribution)")
    generated = np.asarray(generated)
    if generated.size == 0 and generated.ndim == 2 and generated.dtype.kind == "f":
        generated = generated.astype(np.int64)  # np.zeros((R, 0)) is an empty history
    generated = _checks.int_array(generated, "generated", low=0, high=V, ndim=2, form="(rows, t)")
    _checks.check_shape(generated, (R, generated.shape[1]), "generated", "(rows, t)")
    return generated.astype(np.int64), logprobs


class _Processor:
    """Shared ``__call__``: validate, copy, apply ``_apply(generated, out)`` to the copy."""

    def __call__(self, generated, logprobs):
        generated, logprobs = check_step_inputs(generated, logprobs)
        return self._apply(generated, logprobs.copy())  # (R, V)

    def _check_ids(self, ids: np.ndarray, name: str, V: int) -> None:
        if ids.max() >= V:
            raise ValueError(f"{name} must lie in [0, V) = [0, {V}) for logprobs (rows, {V}), "
                             f"found {int(ids.max())}")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class _MinLength(_Processor):
    def __init__(self, min_new_tokens, eos_ids):
        self.min_new_tokens = _checks.check_number(min_new_tokens, "min_new_tokens",
                                                   integer=True, low=0)
        self.eos_ids = _token_ids(eos_ids, "eos_ids")

    def _apply(self, generated, out):
        self._check_ids(self.eos_ids, "eos_ids", out.shape[1])
        if generated.shape[1] < self.min_new_tokens:
            out[:, self.eos_ids] = -np.inf
        return out


def min_length(min_new_tokens: int, eos_ids) -> _Processor:
    """Forbid end-of-sequence while fewer than ``min_new_tokens`` tokens are generated.

    While ``t < min_new_tokens`` (``t = generated.shape[1]``) every column of ``eos_ids`` (an id
    or a sequence of ids) is ``-inf``; from ``t = min_new_tokens`` on, nothing changes. Reproduces
    Hugging Face's ``MinNewTokensLengthLogitsProcessor`` (with ``prompt_length_to_skip`` the
    prompt length) and fairseq ``SequenceGenerator``'s ``min_len`` rule
    (``if step < min_len: lprobs[:, eos] = -inf``, ``step`` counting generated tokens).
    """
    return _MinLength(min_new_tokens, eos_ids)


class _NoRepeatNGram(_Processor):
    def __init__(self, n, prompts=None):
        self.n = _checks.check_number(n, "n", integer=True, low=1)
        if prompts is not None:
            prompts = as_prompts(prompts)
            if not prompts:
                raise ValueError("prompts must hold one prompt per batch item, got an empty list")
        self.prompts = prompts

    def _history(self, generated, r):
        """Row ``r``'s token history: its prompt (if given) then its generated tokens."""
        if self.prompts is None:
            return generated[r]
        rows_per_prompt = len(generated) // len(self.prompts)
        return np.concatenate([self.prompts[r // rows_per_prompt], generated[r]])  # (P + t,)

    def _apply(self, generated, out):
        R, V = out.shape
        n = self.n
        if self.prompts is not None:
            if R % len(self.prompts):
                raise ValueError(f"generated has {R} rows, not a multiple of len(prompts) = "
                                 f"{len(self.prompts)} (rows are batch-major: b * k + j)")
            for i, p in enumerate(self.prompts):
                if p.size and p.max() >= V:
                    raise ValueError(f"prompts[{i}] must hold ids in [0, {V}), found {p.max()}")
        for r in range(R):
            y = self._history(generated, r)  # (L,)
            if len(y) < n:  # no complete n-gram yet
                continue
            windows = np.lib.stride_tricks.sliding_window_view(y, n)  # (L - n + 1, n)
            suffix = y[len(y) - (n - 1):]  # (n - 1,) the tokens the next token would extend
            hits = np.all(windows[:, :-1] == suffix, axis=1)  # (L - n + 1,)
            out[r, windows[hits, -1]] = -np.inf
        return out


def no_repeat_ngram(n: int, *, prompts=None) -> _Processor:
    """Forbid any token that would complete an n-gram already present in the row.

    With ``y`` the row's history of length ``L``, token ``v`` becomes ``-inf`` iff the n-gram
    ``(y[L-n+1], ..., y[L-1], v)`` occurs somewhere in ``y`` (``n = 1``: every token already
    seen). Reproduces Hugging Face's ``NoRepeatNGramLogitsProcessor`` and fairseq's
    ``no_repeat_ngram_size`` (``NGramRepeatBlock``).

    Difference from the peers: HF builds the n-grams from the whole ``input_ids``, the *prompt
    included* for decoder-only models; fairseq from the target-side tokens, which start with its
    BOS (= EOS) and hold any forced prefix. refseq processors see generated tokens only, so by
    default the history is ``generated[r]``. Pass ``prompts`` (a list of 1-d int arrays, one
    per batch item) to reproduce the peers: row ``r`` of ``R`` rows then uses
    ``prompts[r // (R // len(prompts))]`` before its generated tokens (batch-major rows, e.g.
    ``R = batch * num_beams``); ``R`` must be a multiple of ``len(prompts)``.
    """
    return _NoRepeatNGram(n, prompts)


class _ForceEOSAtMax(_Processor):
    def __init__(self, max_new_tokens, eos_id):
        self.max_new_tokens = _checks.check_number(max_new_tokens, "max_new_tokens",
                                                   integer=True, low=1)
        self.eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0)

    def _apply(self, generated, out):
        self._check_ids(np.array([self.eos_id]), "eos_id", out.shape[1])
        if generated.shape[1] >= self.max_new_tokens - 1:  # the last allowed step (or later)
            keep = out[:, self.eos_id].copy()  # (R,)
            out[:] = -np.inf
            out[:, self.eos_id] = keep
        return out


def force_eos_at_max(max_new_tokens: int, eos_id: int) -> _Processor:
    """At the last step every token except ``eos_id`` is ``-inf``, so each hypothesis ends with
    EOS within ``max_new_tokens`` tokens.

    The last step is ``t = max_new_tokens - 1`` (``t`` tokens generated, the ``max_new_tokens``-th
    about to be chosen); later steps, if a decoder takes them, are treated the same. The EOS
    log-prob is kept as it is (not renormalised to 0), so a forced EOS costs its model log-prob.
    Reproduces fairseq ``SequenceGenerator`` (``if step >= max_len: lprobs[:, :eos] = -inf;
    lprobs[:, eos + 1:] = -inf``). A row whose EOS log-prob is ``-inf`` becomes all ``-inf``.
    """
    return _ForceEOSAtMax(max_new_tokens, eos_id)


class _UnkPenalty(_Processor):
    def __init__(self, unk_id, penalty):
        self.unk_id = _checks.check_number(unk_id, "unk_id", integer=True, low=0)
        self.penalty = _checks.check_number(penalty, "penalty")

    def _apply(self, generated, out):
        self._check_ids(np.array([self.unk_id]), "unk_id", out.shape[1])
        out[:, self.unk_id] -= out.dtype.type(self.penalty)
        return out


def unk_penalty(unk_id: int, penalty: float) -> _Processor:
    """Subtract ``penalty`` from the ``unk_id`` column (in the array's dtype); a negative penalty
    is a bonus. Reproduces fairseq ``SequenceGenerator``'s ``lprobs[:, self.unk] -=
    self.unk_penalty``. A negative penalty can make log-probs positive, which breaks the pruning
    argument of :func:`refseq.decoding.exact.exact_mode`."""
    return _UnkPenalty(unk_id, penalty)


class _BanTokens(_Processor):
    def __init__(self, ids):
        self.ids = _token_ids(ids, "ids")

    def _apply(self, generated, out):
        self._check_ids(self.ids, "ids", out.shape[1])
        out[:, self.ids] = -np.inf
        return out


def ban_tokens(ids) -> _Processor:
    """The columns ``ids`` (an id or a sequence of ids) are ``-inf`` at every step. Reproduces
    Hugging Face's ``SuppressTokensLogitsProcessor`` and fairseq's ``lprobs[:, pad] = -inf``."""
    return _BanTokens(ids)


class _Compose(_Processor):
    def __init__(self, processors):
        if not processors:
            raise ValueError("processors must hold at least one processor, got none")
        for i, p in enumerate(processors):
            if not callable(p):
                raise TypeError(f"processors[{i}] must be a callable (generated, logprobs) -> "
                                f"logprobs, got {type(p).__name__}")
        self.processors = tuple(processors)

    def _apply(self, generated, out):
        shape = out.shape
        for i, p in enumerate(self.processors):
            out = np.asarray(p(generated, out))
            if out.shape != shape or out.dtype.kind != "f":
                raise ValueError(f"processors[{i}] returned {out.dtype} {out.shape}; a processor "
                                 f"must return a float array (rows, V)")
        return out


def compose(*processors) -> _Processor:
    """Apply ``processors`` left to right (each sees the previous one's output), like Hugging
    Face's ``LogitsProcessorList``. The built-ins commute (each sets columns to ``-inf`` or
    shifts one column, and ``-inf - c = -inf``); order matters for processors that read values.
    The chain runs on a copy, so no processor in it can modify the caller's array."""
    return _Compose(processors)
