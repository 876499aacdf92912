"""Part C: the contamination argument (property 16) and the explicit-distribution model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from refseq.decoding.exact import enumerate_sequences, exact_mode
from refseq.papers.making_the_most.modes import (
    ExplicitLM,
    degeneracy_threshold,
    mixture,
    mixture_mode,
)

EOS = 3


def _random_dist(seed, n_max=6, length=3, V=3):
    rng = np.random.default_rng(seed)
    seqs = list(itertools.product(range(V), repeat=length))
    idx = rng.choice(len(seqs), size=rng.integers(1, n_max + 1), replace=False)
    p = rng.dirichlet(np.ones(len(idx)))
    return {seqs[i] + (EOS,): float(q) for i, q in zip(idx, p)}


@given(st.integers(0, 10**6), st.floats(0.05, 0.95))
@example(0, 0.5)  # the tie that once failed this test
def test_mixture_mode_switches_to_the_noise_mode_exactly_at_eps_star(seed, a):
    pop = _random_dist(seed)  # length-3 population
    noise = {(EOS,): a, (0, EOS): 1 - a}  # low-entropy, disjoint support (length <= 1)
    eps_star = degeneracy_threshold(pop, noise)
    m_pop, m_noise = max(pop.values()), max(noise.values())
    np.testing.assert_allclose(eps_star, m_pop / (m_pop + m_noise), rtol=1e-12)  # by hand
    below, _ = mixture_mode(pop, noise, eps_star * (1 - 1e-6))
    above, q = mixture_mode(pop, noise, min(1.0, eps_star * (1 + 1e-6)))
    # "a mode", not "the mode": at a = 0.5 both noise sequences are arg-maxes (a tie; the tie
    # rule is tested separately), so the test checks membership in the arg-max set
    assert below in pop and pop[below] == m_pop
    assert above in noise and noise[above] == m_noise
    np.testing.assert_allclose(q, min(1.0, eps_star * (1 + 1e-6)) * m_noise, rtol=1e-12)


def test_mixture_mode_ties_go_to_the_lexicographically_smallest_sequence():
    """By hand: noise {(EOS,): 1/2, (0, EOS): 1/2}, eps = 0.9, pop mass 0.1 on one string:
    q = 0.45 for both noise sequences, 0.1 for the population one; (0, 3) < (3,)."""
    pop, noise = {(1, 1, EOS): 1.0}, {(EOS,): 0.5, (0, EOS): 0.5}
    mode, q = mixture_mode(pop, noise, 0.9)
    assert mode == (0, EOS) and np.isclose(q, 0.45)
    assert mixture_mode(pop, {(0, EOS): 0.5, (EOS,): 0.5}, 0.9)[0] == (0, EOS)  # dict order


@given(st.integers(0, 10**6), st.floats(0.0, 1.0))
def test_explicit_lm_reproduces_its_distribution_and_exact_mode_finds_its_argmax(seed, eps):
    pop = _random_dist(seed)
    q = mixture(pop, {(EOS,): 1.0}, eps)
    lm = ExplicitLM(q, 4, EOS)
    seqs = {s: lp for s, lp in enumerate_sequences(lm, [], 4, EOS) if s[-1] == EOS}
    for s, p in q.items():  # every sequence of q gets its probability back
        if p > 0:
            np.testing.assert_allclose(np.exp(seqs[s]), p, atol=1e-12)
    assert np.isclose(sum(np.exp(lp) for s, lp in seqs.items() if s in q), 1.0)
    mode = exact_mode(lm, [], 4, require_eos=True)
    np.testing.assert_allclose(np.exp(mode.logprob), max(q.values()), rtol=1e-9)


def test_uniform_population_with_empty_noise_has_the_empty_mode():
    """The spec's reproduction A at a smaller size: 3**3 strings, eps = 0.1."""
    pop = {s + (EOS,): 1 / 27 for s in itertools.product(range(3), repeat=3)}
    lm = ExplicitLM(mixture(pop, {(EOS,): 1.0}, 0.1), 4, EOS)
    assert exact_mode(lm, [], 4, require_eos=True).tokens == (EOS,)
    three = exact_mode(lm, [], 4, length=3)
    assert three.tokens in pop and np.isclose(np.exp(three.logprob), 0.9 / 27)


def test_bad_distributions():
    with pytest.raises(ValueError, match="sum to 1"):
        mixture({(0, EOS): 0.5}, {(EOS,): 1.0}, 0.1)
    with pytest.raises(TypeError, match="dict"):
        degeneracy_threshold([], {(EOS,): 1.0})
    with pytest.raises(ValueError, match="eps"):
        mixture_mode({(0, EOS): 1.0}, {(EOS,): 1.0}, 1.5)
    with pytest.raises(ValueError, match="end with eos_id"):
        ExplicitLM({(0, 1): 1.0}, 4, EOS)
