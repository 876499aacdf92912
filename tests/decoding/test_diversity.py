"""Diversity penalties (arXiv 1610.02424, Sec. 5): hand-computed values, the identities between
them (one-hot embedding == Hamming, cumulative with huge gamma == Hamming, n = 1 n-gram ==
token counts) and a brute-force n-gram count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.diversity import (
    cumulative_penalty,
    embedding_ngram_penalty,
    embedding_penalty,
    hamming_penalty,
    ngram_penalty,
)

cases = st.tuples(st.integers(0, 10**6), st.integers(2, 6), st.integers(1, 4), st.integers(0, 5),
                  st.integers(1, 5))


def _draw(case):
    seed, V, Bp, M, t = case
    rng = np.random.default_rng(seed)
    return V, rng.integers(0, V, (Bp, t - 1)), rng.integers(0, V, (M, t))


def test_hamming_counts_multiplicity():
    np.testing.assert_array_equal(hamming_penalty(np.array([2, 0, 2, 2]), 4), [1, 0, 3, 0])
    np.testing.assert_array_equal(hamming_penalty(np.zeros(0, np.int64), 3), [0, 0, 0])


@settings(deadline=None)
@given(cases)
def test_one_hot_embedding_is_hamming(case):
    V, _, prev = _draw(case)
    np.testing.assert_allclose(embedding_penalty(np.eye(V) * 3.0, prev[:, -1]),
                               hamming_penalty(prev[:, -1], V), atol=1e-15)


@settings(deadline=None)
@given(cases, st.sampled_from(["pair", "group"]))
def test_cumulative_with_huge_gamma_is_hamming_and_tiny_gamma_forgets_diverged_pairs(case, scope):
    V, gp, prev = _draw(case)
    ham = hamming_penalty(prev[:, -1], V)
    big = cumulative_penalty(gp, prev[:, :-1], prev[:, -1], V, gamma=1e12, scope=scope)
    np.testing.assert_allclose(big, np.broadcast_to(ham, big.shape), rtol=1e-10)
    small = cumulative_penalty(gp, prev[:, :-1], prev[:, -1], V, gamma=1e-12)
    for b in range(len(gp)):  # only sequences identical to beam b so far still count
        same = np.all(prev[:, :-1] == gp[b], axis=1)
        np.testing.assert_array_equal(small[b], hamming_penalty(prev[same, -1], V))


def test_cumulative_by_hand():
    """Beam (1, 2) vs sequences (1, 3 | 0) and (0, 3 | 0): D = 1 and 2; gamma = 2:
    pair: P[0] = e^-0.5 + e^-1; group (one beam): the same sums; two beams differ."""
    gp, pp, tok = np.array([[1, 2]]), np.array([[1, 3], [0, 3]]), np.array([0, 0])
    P = cumulative_penalty(gp, pp, tok, 4, gamma=2.0)
    np.testing.assert_allclose(P, [[np.exp(-0.5) + np.exp(-1.0), 0, 0, 0]], rtol=1e-15)
    gp2 = np.array([[1, 2], [0, 3]])  # D = [[1, 2], [1, 0]]; group sums: [2, 2]
    P2 = cumulative_penalty(gp2, pp, tok, 4, gamma=2.0, scope="group")
    np.testing.assert_allclose(P2[:, 0], [2 * np.exp(-1.0)] * 2, rtol=1e-15)
    P3 = cumulative_penalty(gp2, pp, tok, 4, gamma=2.0)
    np.testing.assert_allclose(P3[:, 0], [np.exp(-0.5) + np.exp(-1.0), np.exp(-0.5) + 1.0])


def _ngram_brute(gp, prev, V, n):
    t = gp.shape[1] + 1
    out = np.zeros((len(gp), V))
    if t < n:
        return out
    for b in range(len(gp)):
        for v in range(V):
            gram = tuple(gp[b, t - n:]) + (v,)
            out[b, v] = sum(tuple(seq[s:s + n]) == gram for seq in prev for s in range(t - n + 1))
    return out


@settings(deadline=None)
@given(cases, st.integers(1, 3))
def test_ngram_matches_brute_force(case, n):
    V, gp, prev = _draw(case)
    np.testing.assert_array_equal(ngram_penalty(gp, prev, V, n), _ngram_brute(gp, prev, V, n))
    both = ngram_penalty(gp, prev, V, [1, n])
    np.testing.assert_array_equal(both, _ngram_brute(gp, prev, V, 1) + _ngram_brute(gp, prev, V, n))


@settings(deadline=None)
@given(cases)
def test_unigram_counts_every_use_and_equals_hamming_at_length_one(case):
    V, gp, prev = _draw(case)
    P = ngram_penalty(gp, prev, V, 1)
    np.testing.assert_array_equal(P[0], np.bincount(prev.ravel(), minlength=V))
    if prev.shape[1] == 1:
        np.testing.assert_array_equal(P[0], hamming_penalty(prev[:, 0], V))


def test_embedding_penalty_by_hand_and_clip():
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])  # cos(0, 2) = -1/sqrt2
    P = embedding_penalty(emb, np.array([2]))
    np.testing.assert_allclose(P, [-1 / np.sqrt(2), 1 / np.sqrt(2), 1.0], rtol=1e-15)
    np.testing.assert_allclose(embedding_penalty(emb, np.array([2]), clip_negative=True),
                               [0.0, 1 / np.sqrt(2), 1.0], rtol=1e-15)


@settings(deadline=None)
@given(cases)
def test_embedding_ngram_with_n_one_is_embedding(case):
    V, gp, prev = _draw(case)
    emb = np.random.default_rng(case[0]).normal(size=(V, 3))
    P = embedding_ngram_penalty(emb, gp, prev, n=1)
    np.testing.assert_allclose(P, np.broadcast_to(embedding_penalty(emb, prev[:, -1]), P.shape),
                               atol=1e-12)


def test_embedding_ngram_by_hand():
    """n = 2, beam (0,), candidate 1: e_0 + e_1 = (1, 1); earlier (1, 1): (0, 2); cos 1/sqrt2."""
    emb = np.eye(2)
    P = embedding_ngram_penalty(emb, np.array([[0]]), np.array([[1, 1]]), n=2)
    np.testing.assert_allclose(P, [[0.0, 1 / np.sqrt(2)]], atol=1e-15)  # candidate 0: (2, 0)


@pytest.mark.parametrize("call,err,match", [
    (lambda: hamming_penalty(np.array([4]), 4), ValueError, "prev_tokens_t"),
    (lambda: hamming_penalty(np.array([0.5]), 4), TypeError, "prev_tokens_t"),
    (lambda: cumulative_penalty([[0]], [[0]], [0], 2, gamma=0.0), ValueError, "gamma"),
    (lambda: cumulative_penalty([[0]], [[0]], [0], 2, scope="all"), ValueError, "scope"),
    (lambda: cumulative_penalty([[0]], [[0, 1]], [0], 2), ValueError, "prev_prefixes"),
    (lambda: ngram_penalty([[0]], [[0]], 2), ValueError, "prev_sequences"),
    (lambda: ngram_penalty([[0]], [[0, 1]], 2, n=0), ValueError, "n must be"),
    (lambda: ngram_penalty([[0]], [[0, 1]], 2, n=[]), ValueError, "n must be"),
    (lambda: embedding_penalty(np.zeros((2, 2)), [0]), ValueError, "non-zero"),
    (lambda: embedding_penalty(np.eye(2), [0], clip_negative=1), TypeError, "clip_negative"),
    (lambda: embedding_penalty(np.eye(2, dtype=int), [0]), TypeError, "emb"),
])
def test_bad_inputs(call, err, match):
    with pytest.raises(err, match=match):
        call()
