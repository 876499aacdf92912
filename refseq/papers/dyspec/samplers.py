"""Samplers of a slot's token and the exhaustive enumeration of a builder's outcomes.

DySpec draws each new token from the *residual* draft distribution of its slot: the owner's
draft distribution with the already drawn siblings removed and renormalised (sampling without
replacement; Xiong et al., arXiv 2410.11744, Sec. 4.1, Eq. 8). A sampler is a callable
``sampler(residual (V,), key) -> token`` where ``key = (prefix of the slot's owner, sib)``.

- :class:`InverseCdfSampler` (default): a uniform from ``rng`` per draw.
- :class:`KeyedSampler`: the uniform is a hash of ``(seed, key)``, so the greedy heap
  (Algorithm 1) and the layer-wise threshold builder (Algorithm 2) draw the same token for the
  same slot although they visit the slots in different orders.
- :class:`EnumeratingSampler`: returns pre-chosen tokens and multiplies their residual
  probabilities; :func:`enumerate_outcomes` walks every sequence of choices, which gives the
  exact law of the built tree (for the exactness proofs on tiny vocabularies).

Every sampler returns a token with positive residual probability (inverse CDF: the smallest
``t`` with ``cumsum(R)[t] > u * sum(R)``, clamped to the last positive entry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from refseq import _checks

__all__ = ["EnumeratingSampler", "InverseCdfSampler", "KeyedSampler", "enumerate_outcomes",
           "inverse_cdf"]


def inverse_cdf(residual, u: float) -> int:
    """The smallest ``t`` with ``cumsum(R)[t] > u * sum(R)`` (float64, left to right); never a
    zero-probability token. ``residual (V,)`` float32/float64, finite, non-negative with positive
    sum; ``u`` in [0, 1)."""
    u = _checks.check_number(u, "u", low=0, high=1, high_open=True)
    return _inverse_cdf(_residual(residual), u)


def _inverse_cdf(R: np.ndarray, u: float) -> int:
    """:func:`inverse_cdf` on a residual already checked by :func:`_residual`."""
    c = np.cumsum(R)
    t = int(np.searchsorted(c, u * c[-1], side="right"))
    last = int(np.flatnonzero(R > 0)[-1])
    return min(t, last)


def _residual(R) -> np.ndarray:
    R = _checks.float_array(R, "residual")
    if R.ndim != 1 or R.size == 0:
        raise ValueError(f"residual must be a (V,) probability vector, got shape {R.shape}")
    _checks.check_finite(R, "residual", hint="")
    if (R < 0).any() or not R.sum() > 0:
        raise ValueError("residual must be non-negative with a positive sum")
    return R.astype(np.float64)


class InverseCdfSampler:
    """Draw by inverse CDF with one uniform ``rng.random()`` per call.

    Parameters
    ----------
    rng : numpy.random.Generator, int seed or None
    """

    def __init__(self, rng=None):
        self.rng = _checks.check_rng(rng)

    def __call__(self, residual, key=None) -> int:
        return _inverse_cdf(_residual(residual), self.rng.random())


class KeyedSampler:
    """Draw by inverse CDF with the uniform ``hash(seed, key) / 2**64`` (BLAKE2b of the key's
    text): a deterministic function of the slot, independent of the order of the draws.

    Parameters
    ----------
    seed : int >= 0
    """

    def __init__(self, seed: int = 0):
        self.seed = _checks.check_number(seed, "seed", integer=True, low=0)

    def uniform(self, key) -> float:
        """The uniform of slot ``key = (prefix tuple, sib)``, in [0, 1)."""
        prefix, sib = key
        text = f"{self.seed}|{','.join(str(int(t)) for t in prefix)}|{int(sib)}".encode()
        h = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
        return h / 2.0**64

    def __call__(self, residual, key) -> int:
        return _inverse_cdf(_residual(residual), self.uniform(key))


class EnumeratingSampler:
    """Return ``choices[k]`` at the k-th draw; past the end, the first token of the support (a
    canonical value). Records the support of every draw and multiplies ``prob`` by the
    residual probability of every returned token.

    Parameters
    ----------
    choices : sequence of int
    """

    def __init__(self, choices=()):
        if isinstance(choices, (str, bytes)) or not isinstance(choices, (Sequence, np.ndarray)):
            raise TypeError(f"choices must be a sequence of token ids (a list or tuple of ints), "
                            f"got {type(choices).__name__}")
        self.choices = [_checks.check_number(c, f"choices[{k}]", integer=True, low=0)
                        for k, c in enumerate(choices)]
        self.k, self.prob, self.supports = 0, 1.0, []

    def __call__(self, residual, key=None) -> int:
        R = _residual(residual)
        support = np.flatnonzero(R > 0)
        if self.k < len(self.choices):
            y = self.choices[self.k]
            if y >= R.size or R[y] <= 0:
                raise ValueError(f"choice {y} at draw {self.k} has zero residual probability")
        else:
            y = int(support[0])
        self.supports.append(support.tolist())
        self.prob *= float(R[y])
        self.k += 1
        return int(y)


def enumerate_outcomes(build) -> list:
    """Every outcome of a randomised builder, with its probability.

    ``build(sampler)`` must run a builder with the given sampler and return its result (e.g.
    ``lambda s: build_tree_greedy(draft, ctx, root, 3, sampler=s)``). The walk is depth-first
    over the choice sequences: a run with choices ``c`` that makes exactly ``len(c)`` draws is an
    outcome (probability: the product of the drawn residual probabilities); a run that makes
    more draws branches over the support of draw ``len(c)``, which depends on ``c`` only. Each
    outcome is listed once.

    Returns
    -------
    list of (result, prob)
        The probabilities sum to 1.
    """
    if not callable(build):
        raise TypeError(f"build must be a callable sampler -> result, got {type(build).__name__}")
    out, stack = [], [[]]
    while stack:
        choices = stack.pop()
        s = EnumeratingSampler(choices)
        res = build(s)
        if s.k == len(choices):
            out.append((res, s.prob))
        else:
            stack += [choices + [y] for y in reversed(s.supports[len(choices)])]
    return out
