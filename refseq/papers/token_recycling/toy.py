"""The toy targets of the small-scale result: order-2 tables with a bigram component.

``logits[a, b, :] = s1 * A[b, :] + s2 * B[a, b, :]`` for the context
``(a, b) = (x_{t-2}, x_{t-1})``, with ``A ~ N(0, 1)^(V x V)`` drawn first and
``B ~ N(0, 1)^(V x V x V)`` second from ``numpy.random.default_rng(seed)``. ``s1`` sets the
bigram share (a candidate list recorded after token b in one context is reusable in another,
the regularity of language that Token Recycling exploits, Luo et al., arXiv 2408.08696,
Sec. 1); ``s2`` the context-specific part. ``s2 = 0`` is a pure bigram (order-1) target,
``s1 = 0`` a pure random order-2 table.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.decoding.speculative.target import TabularTreeLM
from refseq.models.toy_lm import TabularLM

__all__ = ["demo_prompts", "order2_logits", "order2_target"]


def order2_logits(V: int = 64, s1: float = 1.0, s2: float = 0.6, seed: int = 0) -> np.ndarray:
    """``logits (V, V, V)`` float64: ``logits[a, b] = s1 A[b] + s2 B[a, b]`` (see the module)."""
    V = _checks.check_number(V, "V", integer=True, low=1)
    s1 = _checks.check_number(s1, "s1")
    s2 = _checks.check_number(s2, "s2")
    seed = _checks.check_number(seed, "seed", integer=True, low=0)
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((V, V))  # (V, V) drawn first
    B = rng.standard_normal((V, V, V))  # (V, V, V) drawn second
    return s1 * A[None, :, :] + s2 * B


def order2_target(V: int = 64, s1: float = 1.0, s2: float = 0.6,
                  seed: int = 0) -> TabularTreeLM:
    """The order-2 table as a :class:`TabularTreeLM` (a ``TabularLM`` of order 3, row
    ``a * V + b``; contexts shorter than two tokens are left-padded with token 0)."""
    z = order2_logits(V, s1, s2, seed).reshape(-1, V)  # (V*V, V) row a*V + b
    return TabularTreeLM(TabularLM(3, log_softmax(z)))


def demo_prompts(queries: int = 5, length: int = 8, V: int = 64) -> list:
    """Prompt q is ``default_rng(q).integers(V, size=length)``, q = 0 .. queries - 1."""
    queries = _checks.check_number(queries, "queries", integer=True, low=1)
    length = _checks.check_number(length, "length", integer=True, low=1)
    V = _checks.check_number(V, "V", integer=True, low=1)
    return [np.random.default_rng(q).integers(V, size=length) for q in range(queries)]
