"""Word and sentence accounting, truncation, and the hashing embedder (property 10)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.recurrentgpt import budget
from refseq.papers.recurrentgpt.embed import HashingEmbedder


def test_counts_by_hand():
    text = "One two three. Four five!  Six?\nSeven eight"
    assert budget.count_words(text) == 8
    assert budget.split_sentences(text) == ["One two three.", "Four five!", "Six?",
                                            "Seven eight"]
    assert budget.count_sentences(text) == 4
    assert budget.count_words("   ") == 0 and budget.count_sentences("") == 0
    assert budget.count_sentences("Dr.Who is here") == 1  # no whitespace after the dot


def test_truncate_words_by_hand():
    text = "A b c. D e. F g h i."
    assert budget.truncate_words(text, 100) == text
    assert budget.truncate_words(text, 5) == "A b c. D e."
    assert budget.truncate_words(text, 4) == "A b c."
    assert budget.truncate_words(text, 2) == "A b"  # first sentence too long: hard cut
    assert budget.truncate_words(text, 0) == ""


_sentence = st.lists(st.sampled_from(["ab", "cd", "efg", "h"]), min_size=1, max_size=6).map(
    lambda ws: " ".join(ws) + ".")


@given(st.lists(_sentence, min_size=1, max_size=8), st.integers(0, 40))
def test_truncate_keeps_a_sentence_prefix_within_budget(sentences, budget_words):
    text = " ".join(sentences)
    out = budget.truncate_words(text, budget_words)
    assert budget.count_words(out) <= budget_words
    total = 0
    expected = []
    for s in sentences:  # the longest whole-sentence prefix within the budget
        if total + budget.count_words(s) > budget_words:
            break
        expected.append(s)
        total += budget.count_words(s)
    if budget.count_words(text) <= budget_words:
        assert out == text
    elif expected:
        assert out == " ".join(expected)
    else:
        assert out.split() == text.split()[:budget_words]


def test_hashing_embedder_by_hand():
    e = HashingEmbedder(D=16, ngram=(1, 1), seed=3)
    h = int.from_bytes(hashlib.blake2b(b"varn", digest_size=8,
                                       key=(3).to_bytes(8, "little")).digest(), "little")
    expected = np.zeros(16)
    expected[h % 16] = 1.0 if h >> 63 else -1.0
    got = e.encode(["Varn", "varn VARN", ""])
    np.testing.assert_array_equal(got[0], expected)  # a single word: one signed unit entry
    np.testing.assert_array_equal(got[1], expected)  # repeated words normalise to the same
    np.testing.assert_array_equal(got[2], np.zeros(16))  # no words: a zero row
    assert e.grams("The Varn light") == ["the", "varn", "light"]
    assert HashingEmbedder(ngram=(1, 2)).grams("a b c") == ["a", "b", "c", "a b", "b c"]


@given(st.lists(st.text(max_size=40), min_size=1, max_size=5), st.integers(1, 64))
def test_hashing_rows_are_unit_or_zero(texts, D):
    e = HashingEmbedder(D=D)
    rows = e.encode(texts)
    assert rows.shape == (len(texts), D) and rows.dtype == np.float64
    norms = np.linalg.norm(rows, axis=1)
    has_words = np.array([bool(e.grams(t)) for t in texts])
    # a text with words can still hash to a zero vector when signed counts cancel exactly
    assert np.all((np.abs(norms - 1) < 1e-12) | (norms == 0))
    assert np.all(norms[~has_words] == 0)


def test_embedding_identical_across_processes():
    code = ("from refseq.papers.recurrentgpt.embed import HashingEmbedder;"
            "e = HashingEmbedder(D=32).encode(['the silver lighthouse of Varn']);"
            "print(e.tobytes().hex())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": s, "PATH": ""}).stdout
            for s in ("1", "2")}
    here = HashingEmbedder(D=32).encode(["the silver lighthouse of Varn"]).tobytes().hex()
    assert outs == {here + "\n"}


def test_bad_ngram():
    with pytest.raises(ValueError, match="ngram"):
        HashingEmbedder(ngram=(2, 1))
    with pytest.raises(TypeError, match="texts"):
        HashingEmbedder().encode("one text")
