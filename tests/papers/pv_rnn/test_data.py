"""PV-RNN data helpers: softmax encoding, the PFSM generator and its transition statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.papers.pv_rnn.data import (
    SM_REF_RANGE,
    estimate_transition_matrix,
    pfsm_accepts,
    pfsm_sequences,
    softmax_decode,
    softmax_encode,
)
from refseq.testing import strategies as S


@st.composite
def machines(draw, max_K=4):
    """A random PFSM: each row has a random non-empty support (zeros elsewhere)."""
    rng = np.random.default_rng(draw(S.seeds()))
    K = draw(st.integers(1, max_K))
    support = rng.random((K, K)) < 0.6
    support[np.arange(K), rng.integers(0, K, K)] = True
    P = rng.random((K, K)) * support
    P /= P.sum(axis=1, keepdims=True)
    pi = rng.random(K) * (rng.random(K) < 0.7)
    pi[rng.integers(K)] += 0.5
    return P, pi / pi.sum(), rng


@given(machine=machines(), X=st.integers(1, 2), n_seq=st.integers(1, 5),
       n_seg=st.integers(1, 9), equal=st.booleans())
def test_pfsm_sequences_follow_the_machine(machine, X, n_seq, n_seg, equal):
    P, pi, rng = machine
    K = P.shape[0]
    lens = [3] * K if equal else list(rng.integers(1, 5, K))
    prims = [rng.standard_normal((n, X)) for n in lens]
    data, sym, lengths = pfsm_sequences(prims, P, n_seq, n_seg, rng, initial=pi,
                                        return_symbols=True)
    assert sym.shape == (n_seq, n_seg) and data.shape == (n_seq, int(lengths.max()), X)
    assert pfsm_accepts(sym, P, pi).all()  # every emitted string is in the machine's language
    assert (pi[sym[:, 0]] > 0).all() and (P[sym[:, :-1], sym[:, 1:]] > 0).all()  # spelled out
    for s in range(n_seq):  # the data is the concatenation of the chosen primitives, exactly
        t = 0
        for k in sym[s]:
            assert np.array_equal(data[s, t:t + lens[k]], prims[k])
            t += lens[k]
        assert t == lengths[s] and not data[s, t:].any()
    seeded = [pfsm_sequences(prims, P, n_seq, n_seg, 7, initial=pi) for _ in range(2)]
    assert np.array_equal(*seeded)  # reproducible from a seed


@settings(max_examples=5)
@given(seed=S.seeds())
def test_pfsm_transition_probabilities_are_recovered_within_a_sample_size_bound(seed):
    """|P̂_ij - P_ij| <= sqrt(ln(2 K² M / α) / (2 n_i)) with α = 1e-9.

    Derivation: by the strong Markov property the successors of the visits to state i are i.i.d.
    draws from row i ("stack of cards" construction), so Hoeffding gives
    P(|P̂_ij - P_ij| >= δ | n_i = n) <= 2 exp(-2 n δ²) for the first n of them; a union bound
    over the K² entries and the M possible values of the random visit count n_i (M = total
    number of transitions) makes the bound hold with probability >= 1 - α.
    """
    P = np.array([[0.7, 0.3, 0.0], [0.0, 0.2, 0.8], [0.5, 0.25, 0.25]])
    K = 3
    prims = [np.full((2, 1), float(k)) for k in range(K)]
    _, sym, _ = pfsm_sequences(prims, P, 200, 50, seed, return_symbols=True)
    P_hat, counts = estimate_transition_matrix(sym, K)
    n_i = counts.sum(axis=1)
    M = counts.sum()
    assert M == 200 * 49 and (n_i > 0).all()
    bound = np.sqrt(np.log(2 * K * K * M / 1e-9) / (2 * n_i))[:, None]  # (K, 1)
    assert (np.abs(P_hat - P) <= bound).all(), (P_hat, bound)
    assert (counts[P == 0] == 0).all()  # impossible transitions never appear


def test_estimate_transition_matrix_counts_exactly():
    sym = np.array([[0, 1, 1, 0], [1, 0, 0, 0]])
    P_hat, counts = estimate_transition_matrix(sym, 3)
    assert np.array_equal(counts, [[2, 1, 0], [2, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(P_hat[:2], [[2 / 3, 1 / 3, 0], [2 / 3, 1 / 3, 0]])
    assert np.isnan(P_hat[2]).all()  # never visited


def test_pfsm_accepts_rejects_impossible_strings():
    P = np.array([[0.0, 1.0], [0.5, 0.5]])
    pi = np.array([1.0, 0.0])
    acc = pfsm_accepts(np.array([[0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 1]]), P, pi)
    assert acc.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="symbols"):  # 2 is not a symbol of the machine
        pfsm_accepts(np.array([[0, 1, 2, 0]]), P, pi)


@given(seed=S.seeds(), U=st.integers(2, 12), G=st.integers(1, 3),
       sigma=st.sampled_from([0.005, 0.02, 0.1]))
def test_softmax_encoding_properties(seed, U, G, sigma):
    rng = np.random.default_rng(seed)
    lo, hi = -2.0, 3.0
    x = rng.uniform(lo, hi, (4, G))
    p = softmax_encode(x, U, sigma, lo, hi)
    g = p.reshape(4, G, U)
    assert p.shape == (4, G * U) and (g >= 0).all()
    np.testing.assert_allclose(g.sum(-1), 1, rtol=0, atol=1e-14)
    # argmax = nearest reference point (tie rule: x drawn continuously, ties have measure 0)
    r = np.linspace(*SM_REF_RANGE, U)
    xn = (x - lo) / (hi - lo)
    near = np.abs(r - xn[..., None]).argmin(-1)
    d = np.sort(np.abs(r - xn[..., None]), axis=-1)
    clear = d[..., 1] - d[..., 0] > 1e-9
    assert np.array_equal(g.argmax(-1)[clear], near[clear])
    # one-hot groups decode exactly to their reference point
    k = rng.integers(0, U, (4, G))
    onehot = np.eye(U)[k].reshape(4, G * U)
    np.testing.assert_allclose(softmax_decode(onehot, U, lo, hi), lo + (hi - lo) * r[k],
                               rtol=1e-15, atol=1e-15)
    # the round trip is symmetric about the range's centre and non-decreasing in x (flat only
    # where a narrow profile saturates at an end unit)
    y = softmax_decode(p, U, lo, hi)
    y_m = softmax_decode(softmax_encode(lo + hi - x, U, sigma, lo, hi), U, lo, hi)
    np.testing.assert_allclose(y + y_m, lo + hi, rtol=0, atol=1e-12)
    xs = np.linspace(lo, hi, 50)[:, None]
    ys = softmax_decode(softmax_encode(xs, U, sigma, lo, hi), U, lo, hi)[:, 0]
    assert (np.diff(ys) >= -1e-12).all() and ys[-1] > ys[0]


def test_bad_inputs_name_the_argument():
    P = np.array([[0.5, 0.5], [1.0, 0.0]])
    prims = [np.zeros((2, 1)), np.ones((3, 1))]
    with pytest.raises(ValueError, match="row-stochastic"):
        pfsm_sequences(prims, [[0.5, 0.6], [1.0, 0.0]], 2, 3, 0)
    with pytest.raises(ValueError, match="square"):
        pfsm_sequences(prims, np.ones((2, 3)) / 3, 2, 3, 0)
    with pytest.raises(ValueError, match="primitives"):
        pfsm_sequences(prims[:1], P, 2, 3, 0)
    with pytest.raises(ValueError, match="primitives"):
        pfsm_sequences([np.zeros((2, 1)), np.zeros((2, 2))], P, 2, 3, 0)
    with pytest.raises(ValueError, match="initial"):
        pfsm_sequences(prims, P, 2, 3, 0, initial=[0.2, 0.2])
    with pytest.raises(ValueError, match="n_seq"):
        pfsm_sequences(prims, P, 0, 3, 0)
    with pytest.raises(ValueError, match="x must lie"):
        softmax_encode(np.array([[2.0]]), 5, 0.1, -1.0, 1.0)
    with pytest.raises(ValueError, match="num_units"):
        softmax_encode(np.array([[0.0]]), 1, 0.1, -1.0, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        softmax_encode(np.array([[0.0]]), 4, 0.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="multiple of num_units"):
        softmax_decode(np.ones((1, 5)) / 5, 4, -1.0, 1.0)
    with pytest.raises(TypeError, match="symbols"):
        estimate_transition_matrix(np.zeros((2, 3)))
