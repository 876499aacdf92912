"""refseq.metrics.diversity: TTR, distinct-n, num_unique, oracle@k against hand counts and
brute-force set arithmetic written independently of the module (Python tuples and sets)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.metrics.diversity import distinct_n, num_unique, oracle_at_k, type_token_ratio

seqs = st.lists(st.lists(st.integers(0, 5), min_size=0, max_size=12), min_size=1, max_size=5)


def _brute_distinct(sequences, n):
    grams = [tuple(s[i:i + n]) for s in sequences for i in range(len(s) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


# ---------------------------------------------------------------- type-token ratio


def test_ttr_hand_values():
    assert type_token_ratio([3, 3, 3, 3]) == 0.25  # constant window: 1 / W
    assert type_token_ratio([0, 1, 2, 3]) == 1.0  # all distinct
    assert type_token_ratio([1, 2, 1, 2, 5]) == 3 / 5
    assert type_token_ratio([1, 2, 1, 2, 5], window=2) == 1.0  # (2, 5)
    assert type_token_ratio([1, 2, 1, 2, 5], window=4) == 3 / 4  # (2, 1, 2, 5)
    assert type_token_ratio([7], window=96) == 1.0  # fewer tokens than the window
    assert type_token_ratio([4] * 200, window=96) == 1 / 96


@given(st.lists(st.integers(0, 9), min_size=1, max_size=40), st.integers(1, 50),
       st.lists(st.integers(0, 9), min_size=0, max_size=10))
def test_ttr_uses_only_the_last_window(tail, window, head):
    y = np.array(head + tail)
    got = type_token_ratio(y, window)
    w = list(y[-window:])
    assert got == len(set(w)) / len(w)
    assert 0 < got <= 1
    if len(tail) >= window:  # earlier tokens are outside the window
        changed = np.array([9 - h for h in head] + tail)
        assert type_token_ratio(changed, window) == got


def test_ttr_bad_input():
    with pytest.raises(ValueError, match="at least one token"):
        type_token_ratio([])
    with pytest.raises(TypeError, match="tokens"):
        type_token_ratio(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="window"):
        type_token_ratio([1, 2], window=0)
    with pytest.raises(TypeError, match="window"):
        type_token_ratio([1, 2], window=2.0)
    with pytest.raises(ValueError, match="tokens"):
        type_token_ratio([[1, 2]])


# ---------------------------------------------------------------- distinct-n


@given(seqs, st.integers(1, 4))
def test_distinct_n_equals_brute_force(sequences, n):
    got = distinct_n([np.array(s, np.int64) for s in sequences], n)
    assert got == _brute_distinct(sequences, n)
    assert 0.0 <= got <= 1.0


@given(st.lists(st.integers(0, 3), min_size=1, max_size=10), st.integers(1, 6), st.integers(1, 3))
def test_distinct_n_of_identical_copies(s, B, n):
    # the DBS spec's identity: B copies of one sequence -> (distinct in one) / (B (T - n + 1))
    if len(s) < n:
        assert distinct_n([np.array(s)] * B, n) == 0.0
        return
    one = len({tuple(s[i:i + n]) for i in range(len(s) - n + 1)})
    assert distinct_n([np.array(s)] * B, n) == one / (B * (len(s) - n + 1))


def test_distinct_n_hand_values():
    a, b = np.array([1, 2, 3]), np.array([4, 5, 6])
    assert distinct_n([a, b], 2) == 1.0  # no shared bigram
    assert distinct_n([a, a], 2) == 2 / 4
    assert distinct_n([a, np.array([2, 3, 9])], 2) == 3 / 4  # (2, 3) shared across rows
    assert distinct_n(np.array([[1, 1, 1, 1]]), 1) == 1 / 4  # 2-d array of rows
    assert distinct_n([np.array([1])], 2) == 0.0  # no n-gram at all
    # n-grams never span two sequences: (3, 4) is not an n-gram of [a, b]
    assert distinct_n([a, b], 2) == _brute_distinct([[1, 2, 3], [4, 5, 6]], 2)


def test_distinct_n_bad_input():
    with pytest.raises(ValueError, match="n must"):
        distinct_n([np.array([1, 2])], 0)
    with pytest.raises(TypeError, match="sequences"):
        distinct_n(np.array([1, 2, 3]), 1)
    with pytest.raises(TypeError, match=r"sequences\[1\]"):
        distinct_n([np.array([1]), np.array([0.5])], 1)
    with pytest.raises(ValueError, match=r"sequences\[0\]"):
        distinct_n([np.array([-1, 2])], 1)


# ---------------------------------------------------------------- unique, oracle@k


@given(seqs)
def test_num_unique_equals_set_of_tuples(sequences):
    assert num_unique([np.array(s, np.int64) for s in sequences]) == len(
        {tuple(s) for s in sequences})


def test_num_unique_distinguishes_prefixes():
    assert num_unique([np.array([1, 2]), np.array([1, 2, 0]), np.array([1, 2])]) == 2
    assert num_unique([np.array([], np.int64), np.array([0])]) == 2


@settings(max_examples=30)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=8), st.integers(1, 10))
def test_oracle_at_k_is_the_best_of_the_first_k(scores, k):
    hyps = list(range(len(scores)))  # a hypothesis is its index; metric looks its score up
    got = oracle_at_k(hyps, scores, lambda h, refs: refs[h], k)
    assert got == max(scores[:k])


def test_oracle_at_k_with_token_overlap_metric():
    ref = np.array([1, 2, 3, 4])

    def unigram_recall(h, r):
        return len(set(h.tolist()) & set(r.tolist())) / len(set(r.tolist()))

    hyps = [np.array([1, 9]), np.array([9, 9]), np.array([1, 2, 3])]
    assert oracle_at_k(hyps, ref, unigram_recall, 1) == 0.25
    assert oracle_at_k(hyps, ref, unigram_recall, 2) == 0.25
    assert oracle_at_k(hyps, ref, unigram_recall, 3) == 0.75
    assert oracle_at_k(np.array([[1, 9], [1, 2]]), ref, unigram_recall, 2) == 0.5
    with pytest.raises(ValueError, match="k must"):
        oracle_at_k(hyps, ref, unigram_recall, 0)
    with pytest.raises(TypeError, match="metric"):
        oracle_at_k(hyps, ref, "bleu", 1)
    with pytest.raises(ValueError, match="at least one"):
        oracle_at_k([], ref, unigram_recall, 1)
    with pytest.raises(ValueError, match="metric"):
        oracle_at_k(hyps, ref, lambda h, r: float("nan"), 1)
