"""The model interface every decoder consumes: the ``StepLM`` protocol.

A language model for decoding is anything with

- ``vocab_size: int`` — ``V``;
- ``start(prompts) -> (logits (B, V), state)`` — ``prompts`` a list of ``B`` int arrays (possibly
  of different lengths, possibly empty); ``logits[b]`` are the next-token logits after prompt
  ``b``;
- ``step(state, tokens (R,)) -> (logits (R, V), state)`` — append one token per row;
- ``reorder(state, rows (R',)) -> state`` — gather rows (beam re-indexing, row expansion);
  ``rows`` may repeat and drop rows.

Logits may be float32 or float64 and need not be normalised; decoders apply :func:`log_softmax`
themselves. ``state`` is opaque to decoders. A model must not mutate a state it has returned
(decoders may keep an old state and step it twice).

:func:`logprobs_fn` turns a model into the stateless ``prefixes -> log-probs (R, V)`` function;
:class:`PrefixLM` goes the other way (a stateless function as a ``StepLM``, re-reading the whole
prefix every step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from refseq import _checks

State = Any


@runtime_checkable
class StepLM(Protocol):
    """Incremental next-token model (see the module docstring for the contract)."""

    vocab_size: int

    def start(self, prompts: list[np.ndarray]) -> tuple[np.ndarray, State]: ...

    def step(self, state: State, tokens: np.ndarray) -> tuple[np.ndarray, State]: ...

    def reorder(self, state: State, rows: np.ndarray) -> State: ...


def log_softmax(logits, axis: int = -1, dtype=np.float64) -> np.ndarray:
    """Stable ``z - logsumexp(z)`` in ``dtype`` (float64 by default). Rows that are all ``-inf``
    give NaN (no distribution); ``-inf`` entries of other rows stay ``-inf``; a NaN makes its row
    NaN.

    ``logits`` must be float32 or float64 (integer logits are a caller's bug) and ``dtype``, the
    computation's dtype, float32 or float64 (an integer dtype would truncate the logits).
    """
    dtype = _checks.check_float_dtype(dtype, "dtype")
    z = _checks.float_array(logits, "logits", dtype=dtype, ndim_min=1)
    axis = _checks.check_axis(axis, z.ndim)
    m = np.max(z, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return z - m - np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))


def as_prompts(prompts) -> list[np.ndarray]:
    """Validate a list of 1-d integer token arrays (lists are converted)."""
    if isinstance(prompts, np.ndarray) and prompts.ndim == 2:
        prompts = list(prompts)
    if isinstance(prompts, (str, bytes, np.ndarray)) or not hasattr(prompts, "__iter__"):
        raise TypeError(f"prompts must be a list of 1-d integer token arrays, got "
                        f"{type(prompts).__name__}")
    out = []
    for i, p in enumerate(prompts):
        a = np.asarray(p)
        if a.size == 0:
            a = a.astype(np.int64).reshape(0)
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ValueError(f"prompts[{i}] must be a 1-d integer array, got {a.dtype} {a.shape}")
        if a.size and a.min() < 0:
            raise ValueError(f"prompts[{i}] must hold token ids >= 0, found {a.min()}")
        out.append(a.astype(np.int64))
    return out


def logprobs_fn(model: StepLM,
                compute_dtype=np.float64) -> Callable[[list[np.ndarray]], np.ndarray]:
    """The stateless adapter: ``f(prefixes) -> log-probs (R, V)`` of the next token after each
    prefix, computed as ``log_softmax(model.start(prefixes)[0])`` in ``compute_dtype``
    (float32 or float64)."""
    compute_dtype = _checks.check_float_dtype(compute_dtype, "compute_dtype")
    if not all(callable(getattr(model, a, None)) for a in ("start", "step", "reorder")):
        raise TypeError(f"model must be a StepLM (start, step and reorder methods), got "
                        f"{type(model).__name__}")

    def f(prefixes: Sequence[np.ndarray]) -> np.ndarray:
        logits, _ = model.start(as_prompts(prefixes))
        return log_softmax(logits, dtype=compute_dtype)  # (R, V)

    f.vocab_size = model.vocab_size
    return f


class PrefixLM:
    """A ``StepLM`` from a stateless ``fn(prefixes: list[ndarray]) -> logits (R, V)``; the state is
    the list of prefixes (each step re-runs ``fn`` on full prefixes: simple, O(T^2))."""

    def __init__(self, fn: Callable[[list[np.ndarray]], np.ndarray], vocab_size: int):
        if not callable(fn):
            raise TypeError(f"fn must be a callable prefixes -> logits, got {type(fn).__name__}")
        self.fn = fn
        self.vocab_size = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1)

    def start(self, prompts):
        prefixes = as_prompts(prompts)
        return np.asarray(self.fn(prefixes)), prefixes

    def step(self, state, tokens):
        tokens = np.asarray(tokens)
        if tokens.shape != (len(state),):
            raise ValueError(
                f"tokens must have shape (rows,) = ({len(state)},), got {tokens.shape}")
        prefixes = [np.append(p, np.int64(t)) for p, t in zip(state, tokens)]
        return np.asarray(self.fn(prefixes)), prefixes

    def reorder(self, state, rows):
        return [state[int(r)] for r in np.asarray(rows).reshape(-1)]
