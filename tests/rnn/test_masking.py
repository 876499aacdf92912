"""Per-sequence lengths (refseq/rnn/masking.py): reversal within each sequence's length.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from refseq.rnn.masking import reverse_within_length
from refseq.testing.strategies import seeds

KINDS = ["tanh", "sigmoid", "lstm"]


# --- reverse_within_length -----------------------------------------------------------------------

@given(seeds(), st.integers(1, 4), st.integers(0, 9))
def test_reverse_within_length(seed, B, T):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, 2))
    L = rng.integers(0, T + 1, B)
    r = reverse_within_length(x, L)
    for b in range(B):
        np.testing.assert_array_equal(r[b, :L[b]], x[b, :L[b]][::-1])
        np.testing.assert_array_equal(r[b, L[b]:], x[b, L[b]:])  # padding stays
    np.testing.assert_array_equal(reverse_within_length(r, L), x)  # involution
    np.testing.assert_array_equal(reverse_within_length(x, np.full(B, T)), x[:, ::-1])
    np.testing.assert_array_equal(reverse_within_length(x), x[:, ::-1])


