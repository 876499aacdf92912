"""Truncated Gumbels (refseq/papers/recursive_speculative_decoding/truncated_gumbel.py).

Second formulation: the naive ``-log(exp(-T) - exp(-Z) + exp(-G))`` (Kool et al., arXiv
1903.06059, Eq. 22), evaluated here in float64 where it is finite; hand values for log1mexp."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.recursive_speculative_decoding import truncated_gumbel
from refseq.papers.recursive_speculative_decoding.truncated_gumbel import (
    log1mexp,
    shift_gumbel_max,
)


def naive(G, Z, T):
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return -np.log(np.exp(-T) - np.exp(-Z) + np.exp(-G))


def test_log1mexp_hand_values_on_both_branches():
    assert log1mexp(np.array(-1e-20)) == pytest.approx(math.log(1e-20), rel=1e-14)  # -a branch
    assert log1mexp(np.array(-40.0)) == pytest.approx(-math.exp(-40.0), rel=1e-14)  # log1p branch
    assert log1mexp(np.array(-1.0)) == pytest.approx(math.log(1 - math.exp(-1.0)), rel=1e-15)
    assert log1mexp(np.array(0.0)) == -np.inf and log1mexp(np.array(-np.inf)) == 0.0
    assert log1mexp(np.float32(-1e-3) * np.ones(2, np.float32)).dtype == np.float32
    assert log1mexp(-0.5) == pytest.approx(math.log(1 - math.exp(-0.5)), rel=1e-15)


@given(st.integers(0, 2**31 - 1), st.integers(1, 30))
def test_shift_keeps_the_order_and_moves_the_maximum_to_T(seed, n):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal(n) * 3
    G[rng.random(n) < 0.2] = -np.inf
    G[rng.integers(n)] = 1.0  # a finite maximum
    Z, T = float(G.max()), float(rng.standard_normal() * 5)
    out = shift_gumbel_max(G, Z, T)
    assert abs(out.max() - T) <= 1e-12
    fin = np.isfinite(G)
    assert np.isneginf(out[~fin]).all() and np.isfinite(out[fin]).all()
    np.testing.assert_array_equal(np.argsort(-out, kind="stable"), np.argsort(-G, kind="stable"))
    ref = naive(G[fin], Z, T)
    ok = np.isfinite(ref)
    np.testing.assert_allclose(out[fin][ok], ref[ok], rtol=1e-10, atol=1e-10)


def test_extreme_values_stay_finite_where_the_naive_formula_overflows():
    G, Z, T = np.array([-800.0, -1000.0, -1200.0]), -800.0, 0.0
    assert not np.isfinite(naive(G, Z, T)).all()  # exp(1000) overflows
    out = shift_gumbel_max(G, Z, T)
    assert out[0] == T and np.isfinite(out).all() and np.all(np.diff(out) < 0)
    # G' << Z: G = G' - log1p((exp(-T) - exp(-Z)) exp(G')) = G' - log1p(-e^-200 ...) = G'
    np.testing.assert_allclose(out[1:], G[1:], rtol=1e-12)


def test_batched_rows_and_float32():
    G = np.array([[0.0, -1.0, -np.inf], [2.0, 1.5, 0.5]], np.float32)
    out = shift_gumbel_max(G, G.max(1), np.array([-3.0, 4.0], np.float32))
    assert out.dtype == np.float32 and out[0, 0] == -3.0 and out[1, 0] == 4.0
    assert np.isneginf(out[0, 2])


@pytest.mark.parametrize("call, exc, match", [
    (lambda: log1mexp(np.array([0.5])), ValueError, "<= 0"),
    (lambda: log1mexp(np.array([np.nan])), ValueError, "NaN"),
    (lambda: log1mexp(np.array([0, -1])), TypeError, "float32 or float64"),
    (lambda: shift_gumbel_max(np.array([0.0, 1.0]), 0.0, 0.0), ValueError, "exceed"),
    (lambda: shift_gumbel_max(np.array([0.0, np.nan]), 0.0, 0.0), ValueError, "NaN"),
    (lambda: shift_gumbel_max(np.array([0.0, np.inf]), 0.0, 0.0), ValueError, r"\+inf"),
    (lambda: shift_gumbel_max(np.zeros((2, 3)), np.zeros(3), 0.0), ValueError, "Z must"),
    (lambda: shift_gumbel_max(np.zeros(3), 0.0, np.inf), ValueError, "T must be finite"),
    (lambda: shift_gumbel_max(np.zeros(3), 0.0, "0.5"), TypeError, "T must be a real number"),
    (lambda: shift_gumbel_max(np.float64(0.0), 0.0, 0.0), ValueError, "dimensions"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_module_exports():
    assert truncated_gumbel.__all__ == ["log1mexp", "shift_gumbel_max"]
