"""Sampling without replacement (refseq/papers/recursive_speculative_decoding/gumbel.py).

Expected laws come from the product formula ``prod_j q(y_j) / (1 - sum_{l<j} q(y_l))`` written
here, and from the inverse-CDF intervals of the uniforms computed by hand in the test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chi2

from refseq.papers.recursive_speculative_decoding import gumbel
from refseq.papers.recursive_speculative_decoding.gumbel import (
    exponential_race_topk,
    gumbel_topk,
    sample_without_replacement,
    without_replacement_conditionals,
)


def product_formula(q, ys):
    out, used = 1.0, 0.0
    for y in ys:
        out *= q[y] / (1.0 - used)
        used += q[y]
    return out


def test_exponential_race_equals_gumbel_topk_for_the_same_uniforms():
    rng = np.random.default_rng(0)
    for _ in range(200):
        V = int(rng.integers(2, 40))
        q = rng.dirichlet(np.ones(V) * 0.5)
        q[rng.random(V) < 0.3] = 0.0
        if q.sum() == 0:
            q[0] = 1.0
        q /= q.sum()
        u = rng.random(V)
        k = int(rng.integers(1, V + 3))
        with np.errstate(divide="ignore"):
            idx, _ = gumbel_topk(np.log(q), k, g=-np.log(-np.log(u)))
        np.testing.assert_array_equal(exponential_race_topk(q, k, u), idx)


def test_gumbel_topk_law_is_the_product_formula():
    q = np.array([0.1, 0.2, 0.3, 0.4])
    n = 200_000
    idx, _ = gumbel_topk(np.tile(np.log(q), (n, 1)), 2, rng=np.random.default_rng(1))
    pairs = list(itertools.permutations(range(4), 2))
    counts = np.array([np.sum((idx[:, 0] == a) & (idx[:, 1] == b)) for a, b in pairs])
    expected = n * np.array([product_formula(q, pr) for pr in pairs])
    assert counts.sum() == n and expected.sum() == pytest.approx(n)
    stat = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2.sf(stat, len(pairs) - 1) > 1e-4


def test_sample_without_replacement_maps_every_uniform_cell_to_its_pair():
    # q's inverse-CDF cells: draw 1 is y iff u_1 in [C(y-1), C(y)); draw 2 uses the remainder's
    # cells. Each cell's area is the product formula, so hitting the right pair in every cell
    # (at its middle and just inside both edges) proves the law exactly.
    q = np.array([0.25, 0.0, 0.375, 0.125, 0.25])
    for y1 in np.flatnonzero(q > 0):
        c1 = np.concatenate([[0.0], np.cumsum(q)])
        rest = q.copy()
        rest[y1] = 0.0
        rest /= rest.sum()
        c2 = np.concatenate([[0.0], np.cumsum(rest)])
        for y2 in np.flatnonzero(rest > 0):
            for a in (1e-9, 0.5, 1 - 1e-9):
                u1 = c1[y1] + a * (c1[y1 + 1] - c1[y1])
                u2 = c2[y2] + a * (c2[y2 + 1] - c2[y2])
                assert sample_without_replacement(q, 2, np.array([u1, u2])).tolist() == [y1, y2]
            area = q[y1] * rest[y2]
            assert area == pytest.approx(product_formula(q, (y1, y2)), abs=1e-15)


def test_zero_probability_tokens_never_come_back_and_k_beyond_the_support_pads():
    q = np.array([0.0, 0.5, 0.0, 0.5, 0.0])
    rng = np.random.default_rng(2)
    for _ in range(50):
        u = rng.random(5)
        with np.errstate(divide="ignore"):
            idx, vals = gumbel_topk(np.log(q), 4, g=-np.log(-np.log(u)))
        assert sorted(idx[:2].tolist()) == [1, 3] and idx[2:].tolist() == [-1, -1]
        assert np.isneginf(vals[2:]).all() and np.isfinite(vals[:2]).all()
        race = exponential_race_topk(q, 4, u)
        assert sorted(race[:2].tolist()) == [1, 3] and race[2:].tolist() == [-1, -1]
        seq = sample_without_replacement(q, 4, rng.random(4))
        assert sorted(seq[:2].tolist()) == [1, 3] and seq[2:].tolist() == [-1, -1]


@given(st.integers(0, 2**31 - 1), st.integers(1, 12), st.integers(1, 14))
def test_gumbel_topk_returns_distinct_support_tokens_in_descending_order(seed, V, k):
    rng = np.random.default_rng(seed)
    logp = np.where(rng.random(V) < 0.3, -np.inf, rng.standard_normal(V))
    logp[0] = 0.0  # at least one possible token
    idx, vals = gumbel_topk(logp, k, rng=rng)
    real = idx[idx >= 0]
    assert real.size == min(k, int(np.isfinite(logp).sum()))
    assert len(set(real.tolist())) == real.size and np.isfinite(logp[real]).all()
    assert np.all(np.diff(vals[: real.size]) <= 0)


def test_gumbel_topk_batches_rows_and_keeps_float32():
    logp = np.log(np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]], np.float32) + 1e-30)
    g = np.zeros_like(logp)
    idx, vals = gumbel_topk(logp, 2, g=g)
    assert idx.tolist() == [[0, 1], [2, 1]] and vals.dtype == np.float32  # ties: lower index


def test_without_replacement_conditional_renormalises_the_draft():
    q = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(without_replacement_conditionals(q, [3]),
                               [0.1 / 0.6, 0.2 / 0.6, 0.3 / 0.6, 0.0], atol=1e-15)
    np.testing.assert_allclose(without_replacement_conditionals(q, np.array([], np.int64)), q)
    np.testing.assert_allclose(without_replacement_conditionals(q, [0, 2]),
                               [0.0, 1 / 3, 0.0, 2 / 3], atol=1e-15)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: gumbel_topk(np.array([0.0, np.nan]), 1), ValueError, "NaN"),
    (lambda: gumbel_topk(np.array([0.0, np.inf]), 1), ValueError, r"\+inf"),
    (lambda: gumbel_topk(np.array([0, 1]), 1), TypeError, "float32 or float64"),
    (lambda: gumbel_topk(np.zeros(3), 0), ValueError, "k must be"),
    (lambda: gumbel_topk(np.zeros(3), True), TypeError, "k must be"),
    (lambda: gumbel_topk(np.zeros(3), 1, g=np.zeros(2)), ValueError, "shape of logp"),
    (lambda: gumbel_topk(np.zeros(3), 1, g=np.array([0, np.inf, 0])), ValueError, "finite"),
    (lambda: gumbel_topk(np.zeros((2, 0)), 1), ValueError, "V >= 1"),
    (lambda: exponential_race_topk(np.array([0.5, 0.6]), 1, np.zeros(2)), ValueError, "sum to 1"),
    (lambda: exponential_race_topk(np.array([1.5, -0.5]), 1, np.zeros(2)), ValueError, ">= 0"),
    (lambda: exponential_race_topk(np.array([0.5, 0.5]), 1, np.zeros(3)), ValueError, r"\(2,\)"),
    (lambda: exponential_race_topk(np.array([0.5, 0.5]), 1, np.ones(2)), ValueError, r"\[0, 1\)"),
    (lambda: sample_without_replacement(np.ones((2, 2)) / 4, 1, np.zeros(1)), ValueError, "1-d"),
    (lambda: sample_without_replacement(np.array([0.5, np.nan]), 1, np.zeros(1)), ValueError,
     "finite"),
    (lambda: without_replacement_conditionals(np.array([0.5, 0.5]), [0, 0]), ValueError,
     "distinct"),
    (lambda: without_replacement_conditionals(np.array([0.5, 0.5]), [2]), ValueError, "drawn"),
    (lambda: without_replacement_conditionals(np.array([0.5, 0.5]), [0, 1]), ValueError,
     "whole support"),
    (lambda: without_replacement_conditionals(np.array([0.5, 0.5]), [0.0]), TypeError, "integer"),
])
def test_bad_inputs_raise_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_module_exports():
    assert set(gumbel.__all__) == {"exponential_race_topk", "gumbel_topk",
                                   "sample_without_replacement",
                                   "without_replacement_conditionals"}
