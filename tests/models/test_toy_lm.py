"""Toy LMs with exact probabilities (``TabularLM`` and its helpers; the contract is the module
docstring of refseq/models/toy_lm.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.interfaces import PrefixLM, StepLM, log_softmax, logprobs_fn
from refseq.models.toy_lm import (
    TabularLM,
    enumerate_sequences,
    random_markov_lm,
    sample_sequences,
)
from refseq.testing.strategies import seeds

orders = st.integers(1, 3)
vocab = st.integers(1, 4)
alphas = st.sampled_from([0.1, 0.5, 1.0, 5.0])


@given(V=vocab, order=orders, alpha=alphas, seed=seeds())
def test_rows_are_distributions(V, order, alpha, seed):
    lm = random_markov_lm(V, alpha, seed, order=order)
    assert lm.table.shape == (V ** (order - 1), V) and isinstance(lm, StepLM)
    p = np.exp(lm.table)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(p >= 0)
    same = random_markov_lm(V, alpha, seed, order=order)
    assert np.array_equal(lm.table, same.table)


def test_context_index_by_hand():
    V = 3
    lm = TabularLM(3, np.full((9, V), -np.log(V)))
    # context (c1, c2) oldest first -> c1 * 3 + c2
    assert list(lm.context_index(np.array([[0, 0], [0, 2], [2, 1]]))) == [0, 2, 7]
    table = np.log(np.arange(1, 10)[:, None] * np.ones(V)) * 0 - np.log(V)
    table[7] = np.log([0.7, 0.2, 0.1])
    lm = TabularLM(3, table)
    np.testing.assert_allclose(lm.logprobs([np.array([0, 2, 1])])[0], np.log([0.7, 0.2, 0.1]))
    # short prompts are left-padded with pad_id: [1] -> context (pad, 1) = (0, 1) -> row 1
    assert np.array_equal(lm.start([np.array([1])])[1], [[0, 1]])


@given(V=st.integers(2, 4), order=orders, seed=seeds(), data=st.data())
def test_step_protocol_matches_stateless_logprobs(V, order, seed, data):
    lm = random_markov_lm(V, 0.7, seed, order=order)
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(0, V, size=data.draw(st.integers(0, 4))) for _ in range(3)]
    logits, state = lm.start(prompts)
    assert logits.shape == (3, V)
    np.testing.assert_array_equal(logits, lm.logprobs(prompts))
    prefixes = [p.copy() for p in prompts]
    for _ in range(4):
        rows = rng.integers(0, len(prefixes), size=data.draw(st.integers(1, 5)))  # repeats, drops
        tokens = rng.integers(0, V, size=len(rows))
        old_state = state.copy()
        logits, state = lm.step(lm.reorder(state, rows), tokens)
        prefixes = [np.append(prefixes[r], t) for r, t in zip(rows, tokens)]
        np.testing.assert_array_equal(logits, lm.logprobs(prefixes))
        assert np.array_equal(lm.reorder(old_state, np.arange(len(old_state))), old_state)
    # the stateless adapter (which re-normalises with log_softmax, hence rounding) and its inverse
    f = logprobs_fn(lm)
    np.testing.assert_allclose(f(prefixes), lm.logprobs(prefixes), rtol=0, atol=1e-14)
    wrapped = PrefixLM(f, V)
    l2, s2 = wrapped.start(prompts)
    np.testing.assert_allclose(l2, lm.start(prompts)[0], rtol=0, atol=1e-14)
    l3, _ = wrapped.step(wrapped.reorder(s2, [0, 0]), np.array([0, V - 1]))
    want = lm.logprobs([np.append(prompts[0], 0), np.append(prompts[0], V - 1)])
    np.testing.assert_allclose(l3, want, rtol=0, atol=1e-14)


@given(V=st.integers(1, 3), order=orders, seed=seeds(), max_len=st.integers(0, 4),
       eos=st.booleans())
def test_enumerated_sequences_sum_to_one(V, order, seed, max_len, eos):
    eos_id = V - 1 if eos else None
    lm = random_markov_lm(V, 0.5, seed, eos_id=eos_id, order=order)
    prompt = np.array([0] * order)
    seqs = enumerate_sequences(lm, prompt, max_len)
    total = np.exp(np.logaddexp.reduce([lp for _, lp in seqs])) if seqs else 0.0
    assert abs(total - 1.0) <= 1e-12
    for tokens, lp in seqs:
        assert len(tokens) <= max_len
        if eos_id is not None and eos_id in tokens:
            assert tokens.index(eos_id) == len(tokens) - 1  # EOS ends a sequence
        elif max_len:
            assert len(tokens) == max_len
        np.testing.assert_allclose(lp, lm.sequence_logprob(tokens, prompt), rtol=1e-12, atol=1e-12)
    if eos_id is None:
        assert sorted(t for t, _ in seqs) == list(itertools.product(range(V), repeat=max_len))


def test_enumeration_refuses_large_spaces():
    with pytest.raises(ValueError, match="exceeds"):
        enumerate_sequences(random_markov_lm(10, 1.0, 0), [], 7)


def test_sequence_logprob_by_hand():
    table = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))  # bigram: row = previous token
    lm = TabularLM(2, table, pad_id=0, eos_id=1)
    # prompt [1]; tokens 0, 0, 1: p = 0.9 * 0.5 * 0.5
    np.testing.assert_allclose(lm.sequence_logprob([0, 0, 1], [1]), np.log(0.9 * 0.5 * 0.5))
    assert lm.sequence_logprob([], [1]) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampling_frequencies_match_the_model(seed):
    # fixed seeds; first-token frequencies of n samples: each within 5 binomial standard
    # deviations sqrt(p (1 - p) / n) of the model's probability
    lm = random_markov_lm(4, 1.0, seed)
    n = 20_000
    x = sample_sequences(lm, n, 3, seed)
    assert x.shape == (n, 3) and x.dtype == np.int64
    p = np.exp(lm.logprobs([np.zeros(0, np.int64)])[0])
    freq = np.bincount(x[:, 0], minlength=4) / n
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12)
    assert np.array_equal(x, sample_sequences(lm, n, 3, seed))


def test_sampling_never_draws_impossible_tokens_and_pads_after_eos():
    with np.errstate(divide="ignore"):
        table = np.log(np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 1.0], [0.0, 0.3, 0.7]]))
    lm = TabularLM(2, table, pad_id=0, eos_id=2)
    x = sample_sequences(lm, 500, 6, 0, prompts=[np.array([1])] * 500)
    assert np.all(x[:, 0] == 2)  # after token 1 only EOS is possible
    assert np.all(x == 2)  # padding defaults to eos_id
    y = sample_sequences(lm, 500, 6, 0, prompts=[np.array([0])] * 500, pad_id=0)
    assert not np.any(y[:, 0] == 0)
    for row in y:  # everything after the first EOS is padding
        k = int(np.argmax(row == 2))
        assert row[k] == 2 and np.all(row[k + 1:] == 0)


def test_invalid_tables_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        TabularLM(2, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="logsumexp"):
        TabularLM(1, np.zeros((1, 3)))
    assert TabularLM(1, log_softmax(np.zeros((1, 3)))).vocab_size == 3
