"""Diversity of generated token sequences: type-token ratio, distinct-n, unique outputs, oracle@k.

All functions take token ids (1-d integer arrays; lists are converted) and return Python
numbers. Letters: T tokens of one sequence, W the TTR window, n the n-gram length, k the
number of hypotheses the oracle may pick from.

.. math::

    \\mathrm{TTR}_W(y) = \\frac{|\\{y_t : t \\in \\mathcal W\\}|}{|\\mathcal W|}, \\quad
    \\mathcal W = \\text{the last } \\min(W, T) \\text{ positions}

    \\text{distinct-}n(Y) = \\frac{|\\bigcup_{y \\in Y} G_n(y)|}{\\sum_{y \\in Y} (|y| - n + 1)^+}

with ``G_n(y)`` the set of n-grams of ``y``: the numerator counts each distinct n-gram once
over the whole list, the denominator counts every n-gram occurrence.

References
----------
Carlsson et al., *The Hyperfitting Phenomenon*, arXiv 2412.04318 (TTR of the last 96 generated
tokens, in the official code's ``_generation_validation``).
Vijayakumar et al., *Diverse Beam Search*, arXiv 1610.02424, Sec. 5 (distinct-n, oracle@k).
Li et al., *A Diversity-Promoting Objective Function for Neural Conversation Models*,
arXiv 1510.03055 (distinct-1 / distinct-2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from refseq import _checks

__all__ = ["type_token_ratio", "distinct_n", "num_unique", "oracle_at_k"]


def _tokens(x, name: str) -> np.ndarray:
    """``x`` as a 1-d int64 array of ids >= 0 (an empty list is an empty int array)."""
    arr = np.asarray(x)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    return _checks.int_array(arr, name, low=0, ndim=1, form="(T,)").astype(np.int64)


def _sequences(sequences, name: str = "sequences") -> list[np.ndarray]:
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
        sequences = list(sequences)
    if isinstance(sequences, (str, bytes, np.ndarray)) or not isinstance(sequences, Sequence):
        raise TypeError(f"{name} must be a list of 1-d integer token arrays, got "
                        f"{type(sequences).__name__}")
    return [_tokens(s, f"{name}[{i}]") for i, s in enumerate(sequences)]


def type_token_ratio(tokens, window: int | None = None) -> float:
    """Distinct tokens over tokens in the last ``window`` tokens of ``tokens`` (all if fewer).

    Parameters
    ----------
    tokens : (T,) int, T >= 1.
    window : int >= 1 or None (the whole sequence). Hyperfitting's official code uses 96,
        applied to the generated tokens only (``gen_seq[context_len:][-96:]``).

    Returns
    -------
    float in (0, 1]: 1 when the window holds no repeated token, ``1 / W`` for a constant one.

    Raises
    ------
    ValueError for an empty sequence (the ratio is undefined; the official code returns 0).
    """
    y = _tokens(tokens, "tokens")
    window = _checks.check_number(window, "window", integer=True, low=1, allow_none=True)
    if y.size == 0:
        raise ValueError("tokens must hold at least one token (the TTR of nothing is undefined)")
    w = y if window is None else y[-window:]  # (min(W, T),)
    return len(np.unique(w)) / len(w)


def _ngrams(y: np.ndarray, n: int) -> np.ndarray:
    """The n-grams of ``y`` as rows ``(max(T - n + 1, 0), n)``."""
    if len(y) < n:
        return np.zeros((0, n), np.int64)
    return np.lib.stride_tricks.sliding_window_view(y, n)  # (T - n + 1, n)


def distinct_n(sequences, n: int) -> float:
    """Distinct n-grams / total n-grams across the whole list (0.0 when there are none).

    Parameters
    ----------
    sequences : list of 1-d int arrays (lengths may differ), or a 2-d int array (rows).
    n : int >= 1.

    Returns
    -------
    float in [0, 1]; 1 when no n-gram occurs twice (within or across sequences). Of B copies
    of one sequence with ``m`` distinct n-grams among its ``T - n + 1``, it is
    ``m / (B (T - n + 1))``.
    """
    seqs = _sequences(sequences)
    n = _checks.check_number(n, "n", integer=True, low=1)
    grams = [_ngrams(s, n) for s in seqs]
    total = sum(len(g) for g in grams)
    if total == 0:
        return 0.0
    distinct = np.unique(np.concatenate(grams), axis=0)  # (m, n)
    return len(distinct) / total


def num_unique(sequences) -> int:
    """Number of distinct sequences in the list (equal length and equal ids)."""
    return len({s.tobytes() for s in _sequences(sequences)})


def oracle_at_k(hyps, refs, metric: Callable, k: int) -> float:
    """Best ``metric(hyp, refs)`` over the first ``k`` hypotheses (oracle@k, DBS Sec. 5).

    Parameters
    ----------
    hyps : list of hypotheses, best first (e.g. an n-best list's token arrays); any objects
        ``metric`` accepts.
    refs : the references, passed to ``metric`` unchanged (one reference or a list of them).
    metric : callable ``(hyp, refs) -> float``, higher is better (e.g. sentence BLEU).
    k : int >= 1; ``k > len(hyps)`` uses all of them.

    Returns
    -------
    float: ``max_{i < k} metric(hyps[i], refs)`` for one item; average over items yourself.
    """
    if not callable(metric):
        raise TypeError(f"metric must be a callable (hyp, refs) -> float, got "
                        f"{type(metric).__name__}")
    k = _checks.check_number(k, "k", integer=True, low=1)
    if isinstance(hyps, np.ndarray) and hyps.ndim >= 1:
        hyps = list(hyps)  # rows of a (k, T) array
    if isinstance(hyps, (str, bytes)) or not isinstance(hyps, Sequence):
        raise TypeError(f"hyps must be a list of hypotheses, got {type(hyps).__name__}")
    if len(hyps) == 0:
        raise ValueError("hyps must hold at least one hypothesis")
    scores = [_checks.check_number(metric(h, refs), f"metric(hyps[{i}], refs)")
              for i, h in enumerate(hyps[:k])]
    return max(scores)
