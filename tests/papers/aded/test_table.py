"""The tri-gram table (refseq.papers.aded.trigram) and the adaptive update
(refseq.papers.aded.adaptation): build, pruning, storage forms, reinforcement."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.aded import TrigramMatrix, adapt, build_from_sequences
from refseq.papers.aded import adaptation as adaptation_mod
from refseq.papers.aded import trigram as trigram_mod
from refseq.papers.aded.drafter import ADEDDrafter

corpora = st.lists(st.lists(st.integers(0, 5), min_size=0, max_size=30), min_size=1,
                   max_size=6)


def _counts(corpus):
    """Tri-gram counts by a second formulation (zip of shifted copies)."""
    c = Counter()
    for s in corpus:
        c.update(zip(s, s[1:], s[2:]))
    return c


@given(corpora)
def test_unpruned_rows_are_empirical_frequencies_summing_to_one(corpus):
    m = TrigramMatrix.build([np.array(s, np.int64) for s in corpus], top_n=None)
    counts = _counts(corpus)
    ctx_total = Counter()
    for (a, b, _), n in counts.items():
        ctx_total[(a, b)] += n
    assert m.num_contexts == len(ctx_total)
    for (a, b, c), n in counts.items():
        assert m.weight((a, b), c) == pytest.approx(n / ctx_total[(a, b)], abs=1e-12)
    for row in m.table.values():
        assert abs(sum(row.values()) - 1.0) < 1e-12


@given(corpora, st.integers(1, 4))
def test_pruning_keeps_the_largest_without_renormalising(corpus, top_n):
    seqs = [np.array(s, np.int64) for s in corpus]
    full = TrigramMatrix.build(seqs, top_n=None)
    m = TrigramMatrix.build(seqs, top_n=top_n)
    for ctx, row in full.table.items():
        kept = m.table[ctx]
        assert len(kept) == min(top_n, len(row))
        ranked = sorted(row, key=lambda c: (-row[c], c))  # ties: lower id first
        assert set(kept) == set(ranked[:top_n])
        assert all(kept[c] == row[c] for c in kept)  # not renormalised


def test_default_top_n_is_twelve_and_ties_keep_the_lower_id():
    seq = []
    for c in range(20):  # context (0, 1) followed once by each of 20 tokens
        seq += [0, 1, c + 2]
    m = build_from_sequences([np.array(seq)])
    assert m.successors((0, 1)) == list(range(2, 14))  # 12 kept, equal counts, lowest ids
    assert m.weight((0, 1), 2) == pytest.approx(1 / 20)  # 1/20 stays (no renormalisation)
    assert trigram_mod.TOP_N == 12


def test_repeated_sequence_gives_hand_counted_frequencies():
    m = TrigramMatrix.build([np.array([1, 2, 1, 2, 3])] * 3)
    # triples: (1,2,1), (2,1,2), (1,2,3): context (1,2) -> {1: 1/2, 3: 1/2}; (2,1) -> {2: 1}
    assert m.table == {(1, 2): {1: 0.5, 3: 0.5}, (2, 1): {2: 1.0}}
    assert m.successors((1, 2)) == [1, 3] and m.successors((9, 9)) == []
    assert m.weight((1, 2), 7) == 0.0


def test_csr_dense_and_file_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    m = TrigramMatrix.build([rng.integers(0, 7, 40) for _ in range(5)], vocab_size=7)
    keys, indptr, succ, w = m.to_csr()
    assert keys.dtype == np.int32 and succ.dtype == np.int32 and w.dtype == np.float32
    assert keys.shape == (m.num_contexts, 2) and indptr[-1] == succ.size == m.num_entries
    assert m.nbytes == keys.nbytes + indptr.nbytes + succ.nbytes + w.nbytes
    back = TrigramMatrix.from_csr(*m.to_csr(np.float64))
    assert back.table == m.table
    W = m.dense()
    assert W.shape == (7, 7, 7)
    assert TrigramMatrix.from_dense(W).table == m.table
    m.save(tmp_path / "t.npz")
    assert TrigramMatrix.load(tmp_path / "t.npz").table == m.table
    f32 = TrigramMatrix.from_csr(keys, indptr, succ, w)
    assert all(abs(f32.weight(k, c) - m.weight(k, c)) < 1e-7 for k in m.table for c in m.table[k])


def test_copy_is_independent():
    m = TrigramMatrix.build([np.array([0, 1, 2, 0, 1, 2])])
    c = m.copy()
    adapt(c, np.array([0, 1, 2]))
    assert m.weight((0, 1), 2) == 1.0 and c.weight((0, 1), 2) == pytest.approx(1.04)


@given(st.lists(st.integers(0, 3), min_size=0, max_size=40))
def test_adapt_touches_the_window_and_adds_per_occurrence(seq):
    m = TrigramMatrix()
    n = len(seq)
    touched = adapt(m, np.array(seq, np.int64))
    assert touched == max(0, min(n, 16) - 2)
    window = Counter(zip(seq, seq[1:], seq[2:])) if n < 16 else \
        Counter(zip(seq[n - 16:], seq[n - 15:], seq[n - 14:]))
    assert sum(window.values()) == touched
    for (a, b, c), k in window.items():
        assert abs(m.weight((a, b), c) - min(0.04 * k, 3.0)) < 1e-12
    assert m.num_entries == len(window)


def test_adapt_repeats_and_caps():
    m = TrigramMatrix.build([np.array([5, 6, 7])])  # w(5,6,7) = 1
    seq = np.array([5, 6, 7])
    for k in range(1, 11):
        adapt(m, seq)
        assert abs(m.weight((5, 6), 7) - (1 + 0.04 * k)) < 1e-12
    for _ in range(100):
        adapt(m, seq)
    assert m.weight((5, 6), 7) == 3.0
    m.set_weight((1, 1), 1, 5.0)  # above the cap: the update clamps to the cap
    adapt(m, np.array([1, 1, 1]))
    assert m.weight((1, 1), 1) == 3.0
    assert (adaptation_mod.WINDOW, adaptation_mod.INCREMENT, adaptation_mod.CAP) == (16, 0.04, 3.0)


def test_adapt_window_of_exactly_the_last_sixteen_tokens():
    seq = np.arange(20)  # all trigrams distinct
    m = TrigramMatrix()
    assert adapt(m, seq) == 14
    assert m.weight((3, 4), 5) == 0.0 and m.weight((4, 5), 6) == pytest.approx(0.04)
    assert m.weight((17, 18), 19) == pytest.approx(0.04)


def test_drafter_adapts_on_context_plus_root():
    """The window ends with the new root token: the trigram closing on it is reinforced."""
    m = TrigramMatrix()
    d = ADEDDrafter(m, rng=0)
    d.draft(np.array([3, 4]), 9)
    assert m.weight((3, 4), 9) == pytest.approx(0.04)
    d.draft(np.array([3, 4, 9]), 1)  # (3,4,9) still in the window: reinforced again
    assert m.weight((3, 4), 9) == pytest.approx(0.08) and m.weight((4, 9), 1) == pytest.approx(0.04)


def test_bad_inputs():
    with pytest.raises(TypeError, match="corpus"):
        TrigramMatrix.build(np.arange(5))
    with pytest.raises(TypeError, match="corpus\\[0\\]"):
        TrigramMatrix.build([np.array([0.5, 1.0, 2.0])])
    with pytest.raises(ValueError, match="corpus\\[0\\]"):
        TrigramMatrix.build([np.array([0, -1, 2])])
    with pytest.raises(ValueError, match="top_n"):
        TrigramMatrix.build([np.arange(4)], top_n=0)
    with pytest.raises(ValueError, match="corpus\\[0\\]"):
        TrigramMatrix.build([np.array([0, 1, 5])], vocab_size=4)
    m = TrigramMatrix(vocab_size=4)
    with pytest.raises(TypeError, match="pair"):
        m.successors(3)
    with pytest.raises(ValueError, match="pair\\[1\\]"):
        m.weight((0, 4), 1)
    with pytest.raises(ValueError, match="w must"):
        m.set_weight((0, 1), 2, -1.0)
    with pytest.raises(ValueError, match="W must"):
        TrigramMatrix.from_dense(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="finite"):
        TrigramMatrix.from_dense(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="indptr"):
        TrigramMatrix.from_csr(np.zeros((1, 2), np.int32), np.array([0, 2]), np.array([1]),
                               np.array([0.5]))
    with pytest.raises(TypeError, match="matrix"):
        adapt({}, np.arange(3))
    with pytest.raises(TypeError, match="seq"):
        adapt(TrigramMatrix(), np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="window"):
        adapt(TrigramMatrix(), np.arange(3), window=2)
    with pytest.raises(ValueError, match="increment"):
        adapt(TrigramMatrix(), np.arange(3), increment=0.0)
    with pytest.raises(TypeError, match="sequences"):
        build_from_sequences(np.zeros((2, 3), np.int64))
    with pytest.raises(TypeError, match="sequences\\[0\\]"):
        build_from_sequences([np.arange(3.0)])
    with pytest.raises(ValueError, match="sequences\\[1\\]"):
        build_from_sequences([np.arange(3), np.array([0, 1, 4])], vocab_size=4)
    with pytest.raises(TypeError, match="corpus"):
        TrigramMatrix.build(3)
