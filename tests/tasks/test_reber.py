"""Reber grammar: generated strings are accepted or rejected as they should be, ``is_reber``
equals brute-force enumeration (docs/papers/rnn-sparsity.md, "Properties and their tests"), and
the encoding contract of ``encode``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.tasks.reber import (
    REBER7,
    encode,
    enumerate_reber,
    is_reber,
    reber_dataset,
    reber_invalid,
    reber_valid,
)
from refseq.testing.strategies import seeds


def test_known_examples():
    for s in ("BTSSXXTTVVE", "BPTVPXTTVVE", "BPTTTTTVPSE", "BTXSE", "BPVVE"):
        assert is_reber(s)
    for s in ("", "B", "BE", "BTSSXXTTVV", "TSSXXTTVVE", "BTXSEE", "BTXSSE", "BPVVEX", "BPXVE"):
        assert not is_reber(s)


def test_is_reber_equals_brute_force_enumeration():
    """is_reber accepts exactly the automaton's strings: every string over the 7 symbols up to
    length 6, and every B + {T,P,S,X,V}^k + E for k <= 7 (lengths up to 9), is classified as the
    breadth-first walk says; the walk's strings up to length 12 all pass."""
    walk12 = enumerate_reber(12)
    assert walk12 and all(is_reber(s) for s in walk12)
    walk9 = {s for s in walk12 if len(s) <= 9}
    for L in range(7):
        for tup in itertools.product(REBER7, repeat=L):
            s = "".join(tup)
            assert is_reber(s) == (s in walk9), s
    for k in range(8):
        for tup in itertools.product("TPSXV", repeat=k):
            s = "B" + "".join(tup) + "E"
            assert is_reber(s) == (s in walk9), s


def test_enumeration_counts_by_length():
    """Independent count: number of accepting paths of each length by matrix powers of the
    automaton's transition-count matrix (states 0..5)."""
    A = np.zeros((6, 6), np.int64)
    for a, b in ((0, 1), (0, 2), (1, 1), (1, 3), (2, 2), (2, 4), (3, 2), (3, 5), (4, 3), (4, 5)):
        A[a, b] += 1
    walk = enumerate_reber(14)
    for L in range(2, 15):  # L - 2 interior symbols
        expected = np.linalg.matrix_power(A, L - 2)[0, 5]
        assert sum(len(s) == L for s in walk) == expected


@given(seeds())
def test_generators(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        assert is_reber(reber_valid(rng))
        bad = reber_invalid(rng, "substitution")
        assert not is_reber(bad) and set(bad[1:-1]) <= set("TPSXV")
        assert bad[0] == "B" and bad[-1] == "E"
        bad2 = reber_invalid(rng, "random_letters")
        assert not is_reber(bad2) and bad2[0] == "B" and bad2[-1] == "E"
        assert all("A" <= c <= "Z" for c in bad2)


def test_transition_probabilities_are_uniform():
    """Each state's two choices have probability 1/2: the second symbol is T with probability 1/2
    (5-sigma bound for N = 4000 draws), and P(length 5) = P(BTXSE) + P(BPVVE) = 2 * 2^-3."""
    rng = np.random.default_rng(0)
    N = 4000
    strings = [reber_valid(rng) for _ in range(N)]
    for p, count in ((0.5, sum(s[1] == "T" for s in strings)),
                     (0.25, sum(len(s) == 5 for s in strings))):
        assert abs(count / N - p) <= 5 * np.sqrt(p * (1 - p) / N)


@given(seeds(), st.integers(0, 30))
def test_dataset_and_encode(seed, n):
    rng = np.random.default_rng(seed)
    strings, labels = reber_dataset(n, rng, min_len=6, max_len=20)
    assert len(strings) == n and labels.shape == (n,)
    assert labels.sum() == n - n // 2
    assert all(is_reber(s) == bool(y) for s, y in zip(strings, labels))
    assert all(6 <= len(s) <= 20 for s in strings)
    if n == 0:
        return
    tokens, lengths = encode(strings)
    assert tokens.shape == (n, lengths.max())
    for b, s in enumerate(strings):
        assert "".join(REBER7[t - 1] for t in tokens[b, : lengths[b]]) == s
        assert (tokens[b, lengths[b]:] == 0).all()
    tok_a, _ = encode(strings, "ascii128")
    assert all(chr(tok_a[b, t]) == s[t] for b, s in enumerate(strings) for t in range(len(s)))


def test_deterministic():
    a = reber_dataset(50, np.random.default_rng(3))
    b = reber_dataset(50, np.random.default_rng(3))
    assert a[0] == b[0] and (a[1] == b[1]).all()


def test_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError):
        is_reber(123)
    with pytest.raises(TypeError):
        reber_valid(0)
    with pytest.raises(ValueError, match="style"):
        reber_invalid(rng, "nope")
    with pytest.raises(ValueError, match="not in vocab"):
        encode(["BZE"], "reber7")
    with pytest.raises(ValueError, match="non-empty"):
        encode(["BTXSE", ""])
    with pytest.raises(ValueError, match="vocab"):
        encode(["BTXSE"], "ascii")
    with pytest.raises(TypeError):
        encode("BTXSE")
    with pytest.raises(ValueError, match="min_len"):
        reber_dataset(4, rng, min_len=10, max_len=6)
    with pytest.raises(ValueError, match="shortest"):
        reber_dataset(4, rng, max_len=4)


def test_length_probability_is_exact():
    """Each string of length l is one walk of l - 2 fair choices: probability 2^-(l-2)."""
    from refseq.tasks.reber import _length_probability

    strings = enumerate_reber(14)
    for lo, hi in [(None, 5), (5, 9), (7, 14), (12, 14)]:
        want = sum(2.0 ** -(len(s) - 2) for s in strings if len(s) >= (lo or 0) and len(s) <= hi)
        assert _length_probability(lo, hi) == pytest.approx(want, rel=1e-12)
    assert _length_probability(None, None) == pytest.approx(1.0)


def test_rare_length_range_is_refused_up_front():
    """Rejection sampling of a length almost no walk reaches would never end: refused at once."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="min_len"):
        reber_dataset(4, rng, min_len=100)
    strings, _ = reber_dataset(4, rng, min_len=20)  # rare (about 1 %) but feasible
    assert all(len(s) >= 20 for s in strings)
