"""ADED's self-adaptation: reinforce the tri-grams of the latest committed tokens (arXiv
2407.12021, Sec. 3, "adaptive draft-verification"; reconstructed from ``Reader::search`` in the
released ``DraftRetriever/src/lib.rs``).

Once per decoding step, before drafting, on the committed sequence ``s_0 .. s_{n-1}`` *including
the new root token* (the token chosen by the previous verification)::

    for i = max(0, n - window) .. n - 3:   w(s_i, s_{i+1}, s_{i+2}) <- min(w + increment, cap)

with ``window = 16``, ``increment = 0.04``, ``cap = 3.0``; a missing entry is created with weight
``increment``. A tri-gram that stays inside the window is reinforced again at every step, and
one that occurs k times in the window gains ``k * increment``. Weights exceed 1, so the rows stop
being probability distributions (the search uses them raw; only the rollout normalises).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.aded.trigram import TrigramMatrix

__all__ = ["CAP", "INCREMENT", "WINDOW", "adapt"]

WINDOW, INCREMENT, CAP = 16, 0.04, 3.0  # released constants


def adapt(matrix, seq, window=WINDOW, increment=INCREMENT, cap=CAP) -> int:
    """Reinforce the tri-grams of the last ``window`` tokens of ``seq`` in place.

    Parameters
    ----------
    matrix : TrigramMatrix
        Mutated in place.
    seq : (n,) int
        The committed sequence, ending with the new root token.
    window : int >= 3
        Trailing tokens whose tri-grams are reinforced (positions
        ``max(0, n - window) <= i <= n - 3``).
    increment : float > 0
    cap : float > 0
        Upper bound of a reinforced weight (a weight already above it is set to it).

    Returns
    -------
    int
        The number of tri-gram positions touched, ``max(0, min(n, window) - 2)``.
    """
    _checks.check_instance(matrix, TrigramMatrix, "matrix")
    s = _checks.int_array(seq, "seq", ndim=1, low=0, form="(n,)",
                          high=matrix.vocab_size).astype(np.int64).tolist()
    window = _checks.check_number(window, "window", integer=True, low=3)
    increment = _checks.check_number(increment, "increment", low=0, low_open=True)
    cap = _checks.check_number(cap, "cap", low=0, low_open=True)
    n = len(s)
    start = max(0, n - window)
    for i in range(start, n - 2):
        row = matrix.table.setdefault((s[i], s[i + 1]), {})
        row[s[i + 2]] = min(row.get(s[i + 2], 0.0) + increment, cap)
    return max(0, n - 2 - start)
