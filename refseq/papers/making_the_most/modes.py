"""Degenerate modes from data contamination, and a model over an explicit distribution.

Yoshida, Goyal and Gimpel, "MAP's not dead yet" (arXiv 2311.08817, Sec. 3; thesis arXiv
2408.16241, Part C). A data distribution that mixes a population with a little *low-entropy*
noise,

.. math:: q = (1 - \\epsilon)\\, p_{pop} + \\epsilon\\, p_{noise},

has the mode of the noise as soon as :math:`\\epsilon \\max p_{noise} > (1 - \\epsilon) \\max
p_{pop}`, i.e. above the threshold

.. math:: \\epsilon^* = \\frac{\\max p_{pop}}{\\max p_{pop} + \\max p_{noise}}.

A high-entropy population (every sequence individually improbable) has a tiny :math:`\\max
p_{pop}`, so even a perfect model of ``q`` has a degenerate mode (e.g. the empty output). The
functions here compute this exactly on explicit distributions (``dict`` sequence -> probability);
:class:`ExplicitLM` turns such a distribution into a ``StepLM`` so the exact searches of
:mod:`refseq.decoding.exact` can run on it.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import as_prompts

__all__ = ["ExplicitLM", "degeneracy_threshold", "mixture", "mixture_mode"]


def _dist(d, name: str) -> dict:
    """Check a distribution ``{tuple of ints: prob}``: non-negative finite probabilities summing
    to 1 (within 1e-9); returns ``{tuple: float}``."""
    if not isinstance(d, dict) or not d:
        raise TypeError(f"{name} must be a non-empty dict sequence -> probability, got "
                        f"{type(d).__name__}")
    out = {}
    for seq, p in d.items():
        if not isinstance(seq, tuple):
            raise TypeError(f"{name} keys must be tuples of token ids, got {seq!r}")
        key = tuple(_checks.check_number(v, f"{name} keys", integer=True, low=0) for v in seq)
        p = _checks.check_number(p, f"{name}[{seq!r}]", low=0)
        out[key] = out.get(key, 0.0) + float(p)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"{name} probabilities must sum to 1, got {total:.12g}")
    return out


def mixture(pop: dict, noise: dict, eps: float) -> dict:
    """``q = (1 - eps) pop + eps noise`` as a dict (keys of both; ``eps`` in [0, 1])."""
    pop, noise = _dist(pop, "pop"), _dist(noise, "noise")
    eps = _checks.check_number(eps, "eps", low=0, high=1)
    q = {s: (1 - eps) * p for s, p in pop.items()}
    for s, p in noise.items():
        q[s] = q.get(s, 0.0) + eps * p
    return q


def mixture_mode(pop: dict, noise: dict, eps: float):
    """The mode of ``q = (1 - eps) pop + eps noise``: ``(sequence tuple, q(sequence))``.

    Ties go to the lexicographically smallest sequence (a deterministic rule; the contamination
    argument only needs the value).
    """
    q = mixture(pop, noise, eps)
    best = min(q, key=lambda s: (-q[s], s))
    return best, q[best]


def degeneracy_threshold(pop: dict, noise: dict) -> float:
    """``eps* = max pop / (max pop + max noise)``: for ``eps > eps*`` the noise mode beats every
    population sequence (when the supports are disjoint; a shared sequence only lowers eps*'s
    relevance, not its formula, which compares the two maxima)."""
    m_pop, m_noise = max(_dist(pop, "pop").values()), max(_dist(noise, "noise").values())
    return m_pop / (m_pop + m_noise)


class ExplicitLM:
    """A ``StepLM`` whose sequences have the probabilities of an explicit distribution.

    ``ExplicitLM(dist, vocab_size, eos_id)`` with ``dist`` ``{tuple: prob}`` over EOS-terminated
    sequences (every key ends with ``eos_id`` and holds no other EOS). The next-token
    probability after a prefix ``y`` is the mass of the sequences that extend ``y v`` divided by
    the mass that extends ``y`` (a prefix tree), so :math:`\\prod_t p(y_t \\mid y_{<t}) =
    dist(y)` exactly up to rounding. A prefix of zero mass gets the uniform distribution (it
    is never reached with positive probability). Prompts are prefixes of the sequences (the
    state is the list of prefixes; the model has no other context).
    """

    def __init__(self, dist: dict, vocab_size: int, eos_id: int):
        self.vocab_size = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1)
        self.eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0,
                                           high=self.vocab_size - 1)
        dist = _dist(dist, "dist")
        self._mass: dict = {}  # prefix -> (V,) mass of the sequences continuing with each v
        for seq, p in dist.items():
            if not seq or seq[-1] != eos_id or eos_id in seq[:-1]:
                raise ValueError(f"dist keys must end with eos_id = {eos_id} (and hold no other "
                                 f"EOS), got {seq}")
            if max(seq) >= self.vocab_size:
                raise ValueError(f"dist key {seq} has a token >= vocab_size = {vocab_size}")
            for t in range(len(seq)):
                row = self._mass.setdefault(seq[:t], np.zeros(self.vocab_size))
                row[seq[t]] += p

    def _logits(self, prefixes) -> np.ndarray:
        out = np.empty((len(prefixes), self.vocab_size))  # (R, V)
        for r, prefix in enumerate(prefixes):
            row = self._mass.get(tuple(int(v) for v in prefix))
            if row is None or row.sum() <= 0:
                out[r] = 0.0  # uniform: an unreachable prefix
            else:
                with np.errstate(divide="ignore"):
                    out[r] = np.log(row / row.sum())
        return out

    def start(self, prompts):
        prefixes = [tuple(int(v) for v in p) for p in as_prompts(prompts)]
        return self._logits(prefixes), prefixes

    def step(self, state, tokens):
        tokens = np.asarray(tokens)
        if tokens.shape != (len(state),) or tokens.dtype.kind not in "iu":
            raise ValueError(f"tokens must be an int array of shape (rows,) = ({len(state)},), "
                             f"got {tokens.dtype} {tokens.shape}")
        prefixes = [p + (int(v),) for p, v in zip(state, tokens)]
        return self._logits(prefixes), prefixes

    def reorder(self, state, rows):
        return [state[int(r)] for r in np.asarray(rows).reshape(-1)]
