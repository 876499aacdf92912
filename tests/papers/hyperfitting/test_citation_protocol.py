"""Citation blocker, overlap and the greedy protocol: spec properties 6 and 7."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.search import greedy
from refseq.models.tiny_transformer import TinyConfig, init_params
from refseq.models.tiny_transformer.batched_lm import BatchedTransformerLM
from refseq.models.tiny_transformer.lm import TransformerLM
from refseq.models.toy_lm import random_markov_lm
from refseq.papers.hyperfitting.citation import (
    CitationBlocker,
    NgramIndex,
    longest_common_substring,
    training_overlap,
)
from refseq.papers.hyperfitting.protocol import continue_greedy, continue_sample


def _all_ngrams(rows, n):
    """Brute force: every length-n window of every row, as tuples."""
    return {tuple(r[i:i + n]) for r in rows for i in range(len(r) - n + 1)}


@settings(max_examples=30)
@given(st.integers(0, 10**6), st.integers(1, 5), st.integers(1, 6))
def test_6_index_agrees_with_substring_search(seed, n, N):
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 4, (N, 7))
    idx = NgramIndex(train, n)
    assert idx.ngrams == _all_ngrams(train.tolist(), n)
    for _ in range(20):
        g = tuple(int(x) for x in rng.integers(0, 4, n))
        text = [",".join(map(str, r)) for r in train.tolist()]
        found = any(("," + t + ",").find("," + ",".join(map(str, g)) + ",") >= 0 for t in text)
        assert (g in idx) == found
        expect = sorted({r[i + n - 1] for r in train.tolist() for i in range(8 - n)
                         if tuple(r[i:i + n - 1]) == g[:-1]})
        assert idx.blocked(np.array(g[:-1])).tolist() == expect


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), st.integers(2, 4))
def test_6_blocked_continuations_hold_no_training_ngram(seed, n):
    lm = random_markov_lm(6, 0.3, seed)
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 6, (6, 10))
    gen_val = rng.integers(0, 6, (5, 9))
    blocker = CitationBlocker(NgramIndex(train, n))
    out = continue_greedy(lm, gen_val, context_len=3, total_len=9 + 6, blocker=blocker)
    forbidden = _all_ngrams(train.tolist(), n)
    events = set(blocker.events)
    for r in range(len(gen_val)):
        z = np.concatenate([gen_val[r, :3], out.tokens[r]]).tolist()  # context + continuation
        for t in range(len(out.tokens[r])):
            end = 3 + t  # z[end] is generated token t; the n-gram may start in the context
            if end - n + 1 < 0:
                continue
            if tuple(z[end - n + 1:end + 1]) in forbidden:
                assert (r, t) in events  # only when every token was blocked
        ov = training_overlap(out.tokens[r], {n: NgramIndex(train, n)}, gen_val[r, :3])
        if not any(e[0] == r for e in events):
            assert ov["overlap"][n] == 0.0


def test_6_empty_training_set_gives_plain_greedy():
    lm = random_markov_lm(7, 0.5, 3, eos_id=6)
    gen_val = np.random.default_rng(0).integers(0, 6, (4, 5))
    plain = continue_greedy(lm, gen_val, 2, 12, eos_id=6)
    for eos in (6, None):
        a = continue_greedy(lm, gen_val, 2, 12, eos_id=eos, blocker=NgramIndex([], 3))
        b = continue_greedy(lm, gen_val, 2, 12, eos_id=eos)
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_array_equal(a.lengths, b.lengths)
    assert plain.tokens.shape == (4, 10)


def test_6_all_blocked_step_is_left_unchanged_and_recorded():
    # V = 2 and training data holding every bigram: the blocker can never change anything
    train = np.array([[0, 0, 1, 1, 0]])
    lm = random_markov_lm(2, 1.0, 0)
    blocker = CitationBlocker(NgramIndex(train, 2))
    a = continue_greedy(lm, np.array([[1, 0, 1]]), 1, 5, blocker=blocker)
    b = continue_greedy(lm, np.array([[1, 0, 1]]), 1, 5)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert blocker.events == [(0, 0), (0, 1), (0, 2), (0, 3)]


def test_6_overlap_counts_and_longest_substring_by_hand():
    train = np.array([[1, 2, 3, 4, 5, 6], [7, 7, 7, 7, 7, 7]])
    idx = {2: NgramIndex(train, 2), 4: NgramIndex(train, 4)}
    ov = training_overlap(np.array([3, 4, 5, 0, 7, 7]), idx)
    assert ov["counts"] == {2: (3, 5), 4: (0, 3)}  # (3,4), (4,5), (7,7) of 5 bigrams
    assert ov["longest"] == 3  # 3, 4, 5
    with_ctx = training_overlap(np.array([3, 9]), idx, context=np.array([1, 2]))
    # (2, 3) and (1, 2, 3, 9) span the boundary; (1, 2) lies in the context and is not counted
    assert with_ctx["counts"] == {2: (1, 2), 4: (0, 1)}
    assert np.isnan(training_overlap(np.array([3, 9]), idx)["overlap"][4])  # no 4-gram
    assert longest_common_substring(np.array([6, 7, 7]), list(train)) == 2  # no run across rows
    assert longest_common_substring(np.array([5, 6, 7]), list(train)) == 2
    with pytest.raises(ValueError, match="4-grams"):
        training_overlap(np.array([1]), {3: idx[4]})


def test_6_blocker_bad_input():
    blk = CitationBlocker(NgramIndex([[1, 2, 3]], 2), contexts=[np.array([1])])
    with pytest.raises(ValueError, match="contexts"):
        blk(np.zeros((2, 0), np.int64), np.zeros((2, 4)))
    with pytest.raises(TypeError, match="index"):
        CitationBlocker({(1, 2)})
    with pytest.raises(ValueError, match="n must"):
        NgramIndex([[1, 2]], 0)


# ------------------------------------------------------------------ 7. the greedy protocol


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from([None, 3]))
def test_7_continue_greedy_is_the_greedy_decoder(seed, eos):
    lm = random_markov_lm(8, 0.3, seed, eos_id=eos)
    gen_val = np.random.default_rng(seed).integers(0, 8, (5, 10))
    out = continue_greedy(lm, gen_val, context_len=4, total_len=12, eos_id=eos, pad_id=7)
    ref = greedy(lm, [r[:4] for r in gen_val], 8, eos_id=eos, pad_id=7)
    assert out.tokens.shape == (5, 8)
    np.testing.assert_array_equal(out.tokens[:, :ref.tokens.shape[1]], ref.tokens)
    assert (out.tokens[:, ref.tokens.shape[1]:] == 7).all()
    np.testing.assert_array_equal(out.lengths, ref.lengths)


def test_7_batched_tiny_transformer_equals_the_row_by_row_model():
    cfg = TinyConfig(vocab_size=13, d_model=16, n_layers=2, n_heads=2, max_positions=20)
    params = init_params(cfg, seed=3)
    gen_val = np.random.default_rng(0).integers(0, 13, (4, 20))
    out = continue_greedy(params, gen_val, 5, 20)  # BatchedTransformerLM
    ref = greedy(TransformerLM(params), [r[:5] for r in gen_val], 15)
    np.testing.assert_array_equal(out.tokens, ref.tokens)
    a, sa = BatchedTransformerLM(params).start(list(gen_val[:, :5]))
    b, _ = TransformerLM(params).start(list(gen_val[:, :5]))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert sa.kv.shape == (4, 2, 2, 2, 5, 8)


def test_7_sampling_baseline_and_protocol_bad_input():
    lm = random_markov_lm(8, 0.3, 0)
    gen_val = np.random.default_rng(1).integers(0, 8, (3, 6))
    a = continue_sample(lm, gen_val, 2, 8, top_p=0.9, rng=5)
    b = continue_sample(lm, gen_val, 2, 8, top_p=0.9, rng=5)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    c = continue_sample(lm, gen_val, 2, 8, top_p=1e-9, rng=5)  # top-p -> 0: greedy
    np.testing.assert_array_equal(c.tokens, continue_greedy(lm, gen_val, 2, 8).tokens)
    with pytest.raises(ValueError, match="context_len"):
        continue_greedy(lm, gen_val, 7, 8)
    with pytest.raises(ValueError, match="total_len"):
        continue_greedy(lm, gen_val, 3, 2)
    with pytest.raises(TypeError, match="model"):
        continue_greedy("lm", gen_val, 2, 8)
    with pytest.raises(TypeError, match="blocker"):
        continue_greedy(lm, gen_val, 2, 8, blocker={(1, 2)})
