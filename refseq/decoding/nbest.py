"""Finished hypotheses of beam search: :class:`Hypothesis`, length normalisation, the n-best list.

A beam search keeps two sets per batch item: the running beams (the live prefixes) and the
*n-best list* of finished hypotheses, ranked by a length-normalised score. With ``S`` the sum of
the hypothesis' per-token log-probabilities and ``L`` its generated length (the number of
generated tokens, the end-of-sequence token included, the prompt excluded),

- ``"power"``: ``score = S / L**alpha`` (Hugging Face ``length_penalty``, fairseq ``lenpen``);
- ``"gnmt"``: ``score = S / ((5 + L) / 6)**alpha`` (Wu et al. 2016, arXiv 1609.08144, eq. 14);
- ``"none"``: ``score = S``.

Since ``S <= 0``, ``alpha > 0`` favours longer hypotheses and ``alpha = 0`` ranks by ``S``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refseq import _checks

__all__ = ["LENGTH_NORMS", "Hypothesis", "NBestList", "normalize"]

LENGTH_NORMS = ("power", "gnmt", "none")


@dataclass(frozen=True, eq=False)
class Hypothesis:
    """One output of a beam search.

    Attributes
    ----------
    tokens : (L,) int64 — the generated tokens (prompt excluded; the EOS token included when
        ``finished``).
    score : float — the length-normalised score the n-best list ranks by.
    sum_logprob : float — ``S``, the sum of ``token_logprobs`` (accumulated step by step in the
        search's compute dtype).
    token_logprobs : (L,) float — the processed log-probability of each generated token.
    length : int — ``L``, the length used in the normaliser (``len(tokens)``).
    finished : bool — True when the hypothesis ended with an EOS token (False: cut at
        ``max_new_tokens``).
    """

    tokens: np.ndarray
    score: float
    sum_logprob: float
    token_logprobs: np.ndarray
    length: int
    finished: bool

    def __repr__(self) -> str:
        return (f"Hypothesis(tokens={self.tokens.tolist()}, score={self.score:.6g}, "
                f"sum_logprob={self.sum_logprob:.6g}, length={self.length}, "
                f"finished={self.finished})")


def _check_norm(length_penalty, length_norm):
    length_penalty = _checks.check_number(length_penalty, "length_penalty")
    _checks.check_choice(length_norm, "length_norm", LENGTH_NORMS)
    return length_penalty


def normalize(sum_logprob, gen_len, length_penalty: float = 1.0, length_norm: str = "power"):
    """The length-normalised score of a hypothesis (module docstring).

    Parameters
    ----------
    sum_logprob : float or array — ``S``.
    gen_len : int or int array >= 1 — ``L``, generated tokens including EOS.
    length_penalty : float — ``alpha``. length_norm : "power" | "gnmt" | "none".

    Returns
    -------
    float (or array): ``S / L**alpha``, ``S / ((5 + L) / 6)**alpha`` or ``S``, in float64.
    """
    alpha = _check_norm(length_penalty, length_norm)
    L = np.asarray(gen_len)
    if L.dtype.kind not in "iu" or (L.size and L.min() < 1):
        raise ValueError(f"gen_len must be an integer >= 1 (generated tokens, EOS included), "
                         f"got {gen_len!r}")
    S = _checks.float_array(sum_logprob, "sum_logprob").astype(np.float64)
    if length_norm == "power":
        out = S / L.astype(np.float64) ** alpha
    elif length_norm == "gnmt":
        out = S / ((5.0 + L) / 6.0) ** alpha
    else:
        out = S + 0.0 * L
    return float(out) if out.ndim == 0 else out


class NBestList:
    """The ``capacity`` best finished hypotheses of one batch item, by normalised score.

    :meth:`add` inserts a hypothesis when the list has room or when its score beats the worst
    one (strictly); when over capacity the worst is dropped, and among equally bad ones the
    latest inserted goes (earlier insertions win ties). :meth:`hypotheses` lists them best first
    (ties: earlier insertion first).
    """

    def __init__(self, capacity: int, length_penalty: float = 1.0, length_norm: str = "power"):
        self.capacity = _checks.check_number(capacity, "capacity", integer=True, low=1)
        self.length_penalty = _check_norm(length_penalty, length_norm)
        self.length_norm = length_norm
        self._entries: list[tuple[float, int, Hypothesis]] = []  # (score, insertion order, hyp)
        self._count = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def worst_score(self) -> float:
        """The lowest normalised score in the list (``+inf`` while it is empty)."""
        return min((e[0] for e in self._entries), default=np.inf)

    def add(self, tokens, sum_logprob: float, gen_len: int, token_logprobs=None,
            finished: bool = True) -> bool:
        """Offer a hypothesis; returns True when it was inserted.

        ``tokens`` (L,) generated tokens, ``sum_logprob`` ``S``, ``gen_len`` ``L`` (>= 1),
        ``token_logprobs`` (L,) (default: NaN, unknown), ``finished`` whether it ended with EOS.
        """
        tokens = np.array(tokens, dtype=np.int64).reshape(-1)
        score = normalize(sum_logprob, int(gen_len), self.length_penalty, self.length_norm)
        if len(self._entries) >= self.capacity and not score > self.worst_score:
            return False
        lps = (np.full(len(tokens), np.nan) if token_logprobs is None
               else _checks.float_array(token_logprobs, "token_logprobs").reshape(-1).copy())
        hyp = Hypothesis(tokens, score, float(sum_logprob), lps, int(gen_len),
                         _checks.check_flag(finished, "finished"))
        self._entries.append((score, self._count, hyp))
        self._count += 1
        if len(self._entries) > self.capacity:  # drop the worst; among ties, the latest
            worst = min(self._entries, key=lambda e: (e[0], -e[1]))
            self._entries.remove(worst)
        return True

    def is_done(self, best_running_sum: float, cur_gen_len: int, max_gen_len: int,
                early_stopping: bool | str = False) -> bool:
        """Can no running beam improve the list any more?

        False while the list has fewer than ``capacity`` entries. Otherwise True when
        ``early_stopping is True``; else the best running sum ``S`` normalised at
        ``L = cur_gen_len`` (``L = max_gen_len`` for ``early_stopping="never"`` with a positive
        ``length_penalty``, the most a longer hypothesis could gain) must not beat
        :attr:`worst_score`. A heuristic for ``False``: a running beam's sum only decreases, but
        with ``alpha > 0`` its normalised score could still rise (Hugging Face's rule).
        """
        if len(self._entries) < self.capacity:
            return False
        if early_stopping is True:
            return True
        L = max_gen_len if (early_stopping == "never" and self.length_penalty > 0) else cur_gen_len
        if not np.isfinite(best_running_sum):
            return True
        best = normalize(best_running_sum, max(int(L), 1), self.length_penalty, self.length_norm)
        return not best > self.worst_score

    def hypotheses(self) -> list[Hypothesis]:
        """The hypotheses, best score first (ties: earlier insertion first)."""
        return [e[2] for e in sorted(self._entries, key=lambda e: (-e[0], e[1]))]
