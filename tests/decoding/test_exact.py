"""Exact search (refseq/decoding/exact.py) against brute force: top_sequences against all V**T
sequences scored one by one, exact_mode (unconditional, EOS-only, length-conditional) against
the arg-max of the enumeration, pruning safety and effect, and the contamination example of
Yoshida, Goyal and Gimpel (arXiv 2311.08817)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refseq.decoding.exact import (
    ExactMode,
    enumerate_sequences,
    exact_length_conditional_modes,
    exact_mode,
    top_sequences,
)
from refseq.decoding.interfaces import PrefixLM
from refseq.models.tiny_transformer import TinyConfig, init_params
from refseq.models.tiny_transformer.lm import TransformerLM
from refseq.models.toy_lm import TabularLM, random_markov_lm
from refseq.testing.strategies import seeds

TIE = 1e-9  # reject draws whose best two scores are closer than this (the tie rule differs)


def _brute_mode(seqs, keep=lambda y: True):
    """Arg-max over an enumeration, or None when the top two are within TIE."""
    cands = sorted(((lp, y) for y, lp in seqs if keep(y) and lp > -np.inf), reverse=True)
    if not cands:
        return ()
    if len(cands) > 1 and cands[0][0] - cands[1][0] < TIE:
        return None
    return cands[0][1], cands[0][0]


def _prefixes(seqs):
    """Every proper prefix of the enumerated sequences: the nodes a search without pruning
    would expand (each needs one model call)."""
    return {y[:k] for y, _ in seqs for k in range(len(y))}


models = st.fixed_dictionaries({"V": st.integers(2, 4), "order": st.integers(1, 3),
                                "alpha": st.sampled_from([0.1, 0.3, 1.0, 3.0]),
                                "seed": seeds(), "eos": st.booleans()})


def _lm(m):
    eos_id = m["V"] - 1 if m["eos"] else None
    return random_markov_lm(m["V"], m["alpha"], m["seed"], eos_id=eos_id, order=m["order"])


# --- top_sequences ------------------------------------------------------------------------------

@given(m=models, T=st.integers(1, 4), n=st.integers(1, 30))
def test_top_sequences_equal_scoring_every_sequence(m, T, n):
    lm = _lm({**m, "eos": False})
    prompt = np.array([m["V"] - 1])
    every = [(y, lm.sequence_logprob(y, prompt))
             for y in itertools.product(range(m["V"]), repeat=T)]  # (V**T,) scored one by one
    want = sorted(every, key=lambda s: (-s[1], s[0]))[:n]
    scores = [lp for _, lp in want] + [lp for _, lp in sorted(every, key=lambda s: -s[1])[n:n + 1]]
    assume(all(a - b >= TIE for a, b in zip(scores, scores[1:])))  # no near-ties to reorder
    got = top_sequences(lm, prompt, T, n)
    assert [y for y, _ in got] == [y for y, _ in want]
    np.testing.assert_allclose([lp for _, lp in got], [lp for _, lp in want], rtol=0, atol=1e-12)


def test_top_sequences_break_ties_lexicographically():
    lm = TabularLM(1, np.full((1, 3), -np.log(3)), eos_id=2)  # uniform: many exact ties
    got = top_sequences(lm, [], 2, 5)
    # (2,) has p = 1/3; then the six length-2 sequences, p = 1/9, in lexicographic order
    assert [y for y, _ in got] == [(2,), (0, 0), (0, 1), (0, 2), (1, 0)]
    np.testing.assert_allclose([lp for _, lp in got], np.log([1 / 3] + [1 / 9] * 4))
    assert len(top_sequences(lm, [], 1, 10)) == 3
    # a short and a long sequence tie exactly: (0, 0) = 0.5 * 0.5 = (2,) = 0.25; (0, 0) < (2,)
    lm = TabularLM(1, np.log([[0.5, 0.25, 0.25]]), eos_id=2)
    got = top_sequences(lm, [], 2, 5)
    assert [y for y, _ in got] == [(0, 0), (2,), (0, 1), (0, 2), (1, 0)]
    assert got[0][1] == got[1][1] == np.log(0.25)


# --- exact_mode against enumeration -------------------------------------------------------------

@given(m=models, max_len=st.integers(0, 5), require_eos=st.booleans())
def test_exact_mode_equals_enumeration_argmax(m, max_len, require_eos):
    lm = _lm(m)
    assume(not require_eos or lm.eos_id is not None)
    prompt = np.array([0, m["V"] - 1])
    seqs = enumerate_sequences(lm, prompt, max_len)
    want = _brute_mode(seqs, lambda y: not require_eos or (y and y[-1] == lm.eos_id))
    assume(want is not None)
    res = exact_mode(lm, prompt, max_len, require_eos=require_eos)
    assert isinstance(res, ExactMode) and res.exact
    if want == ():
        assert res.tokens is None and res.logprob == -np.inf
        return
    assert res.tokens == want[0]
    np.testing.assert_allclose(res.logprob, want[1], rtol=0, atol=1e-12)
    # pruning never costs correctness, and never expands more than the whole tree
    assert res.expanded <= len(_prefixes(seqs))


@given(m=models, L=st.integers(0, 4))
def test_length_conditional_mode_equals_enumeration(m, L):
    lm = _lm({**m, "eos": True})
    eos = lm.eos_id
    seqs = enumerate_sequences(lm, [1], L + 1)
    want = _brute_mode(seqs, lambda y: len(y) == L + 1 and y[-1] == eos)
    assume(want is not None)
    res = exact_mode(lm, [1], L + 1, length=L)
    also = exact_length_conditional_modes(lm, [1], [L, L + 1])[L]
    if want == ():
        assert res.tokens is None and also.tokens is None
        return
    assert res.tokens == also.tokens == want[0]
    assert len(res.tokens) == L + 1 and res.tokens[-1] == eos and eos not in res.tokens[:-1]
    np.testing.assert_allclose([res.logprob, also.logprob], want[1], rtol=0, atol=1e-12)
    # a longer max_len changes nothing under the length constraint
    assert exact_mode(lm, [1], L + 3, length=L).tokens == want[0]


@given(m=models, max_len=st.integers(1, 5), pick=st.integers(0, 10**6), shift=st.booleans())
def test_a_valid_lower_bound_or_incumbent_changes_nothing(m, max_len, pick, shift):
    lm = _lm(m)
    seqs = enumerate_sequences(lm, [0], max_len)
    want = _brute_mode(seqs)
    assume(want not in (None, ()))
    y, lp = seqs[pick % len(seqs)]  # any complete sequence
    assume(lp > -np.inf)
    plain = exact_mode(lm, [0], max_len)
    bound = lp - 1e-9 if shift else lp
    for res in (exact_mode(lm, [0], max_len, lower_bound=bound),
                exact_mode(lm, [0], max_len, initial=np.array(y))):
        assert res.tokens == want[0] and res.exact
        np.testing.assert_allclose(res.logprob, want[1], rtol=0, atol=1e-12)
        assert res.expanded <= plain.expanded  # a better start prunes at least as much
    # a bound above the mode: nothing qualifies
    none = exact_mode(lm, [0], max_len, lower_bound=want[1] + 1e-6)
    assert none.tokens is None and none.logprob == -np.inf and none.exact


def test_pruning_expands_a_small_part_of_a_peaked_tree():
    lm = random_markov_lm(6, 0.1, seed=3, eos_id=5)
    seqs = enumerate_sequences(lm, [0], 7)
    full = len(_prefixes(seqs))  # 1 + 5 + 25 + ... prefixes without EOS: 19531
    res = exact_mode(lm, [0], 7)
    want = _brute_mode(seqs)
    assert res.tokens == want[0] and res.exact
    assert res.expanded < full / 100, (res.expanded, full)


def test_node_budget_stops_early_with_a_valid_incumbent():
    lm = random_markov_lm(4, 1.0, seed=0)
    full = exact_mode(lm, [0], 5)
    assert full.exact and full.expanded > 3
    for budget in range(1, full.expanded):
        res = exact_mode(lm, [0], 5, max_nodes=budget)
        assert not res.exact and res.expanded == budget
        if res.tokens is not None:  # a complete sequence, scored correctly, not above the mode
            assert len(res.tokens) == 5
            np.testing.assert_allclose(res.logprob, lm.sequence_logprob(res.tokens, [0]),
                                       rtol=0, atol=1e-12)
            assert res.logprob <= full.logprob
    assert exact_mode(lm, [0], 5, max_nodes=full.expanded) == full


def test_exact_mode_by_hand():
    # bigram over {0, 1, EOS = 2}; the greedy path 0, 0, ... never ends well, the mode is 1, 2
    p = np.array([[0.6, 0.4, 0.0],    # after 0 (and the empty prompt, left-padded with 0)
                  [0.1, 0.0, 0.9],    # after 1
                  [1 / 3, 1 / 3, 1 / 3]])
    with np.errstate(divide="ignore"):
        lm = TabularLM(2, np.log(p), eos_id=2)
    res = exact_mode(lm, [], 4, require_eos=True)
    assert res.tokens == (1, 2)
    np.testing.assert_allclose(res.logprob, np.log(0.4 * 0.9))
    # without require_eos, the truncated 0, 0, 0, 0 (0.6**4 = 0.1296) loses to 0.36 as well
    assert exact_mode(lm, [], 4).tokens == (1, 2)
    assert exact_mode(lm, [], 5).tokens == (1, 2)
    # length-conditional: L = 2 -> (0, 1, 2) = 0.6 * 0.4 * 0.9 beats (1, 0, ...) impossible
    res = exact_mode(lm, [], 3, length=2)
    assert res.tokens == (0, 1, 2)
    np.testing.assert_allclose(res.logprob, np.log(0.6 * 0.4 * 0.9))
    assert exact_mode(lm, [], 3, length=0).tokens is None  # EOS after nothing: p = 0
    assert exact_mode(lm, [], 0) == ExactMode((), 0.0, 0, True)


def test_require_eos_drops_truncated_continuations():
    p = np.array([[0.9, 0.05, 0.05],   # after 0 (and the empty prompt)
                  [0.1, 0.0, 0.9],     # after 1
                  [1 / 3, 1 / 3, 1 / 3]])
    with np.errstate(divide="ignore"):
        lm = TabularLM(2, np.log(p), eos_id=2)
    # truncated (0, 0, 0): 0.729; ending in EOS: (2,) 0.05 > (1, 2) 0.045 > (0, 0, 2) 0.0405
    assert exact_mode(lm, [], 3).tokens == (0, 0, 0)
    res = exact_mode(lm, [], 3, require_eos=True)
    assert res.tokens == (2,)
    np.testing.assert_allclose(res.logprob, np.log(0.05))


def test_a_mode_better_by_a_hair_is_found_and_a_good_incumbent_prunes():
    # length 1: (0, 2) = 0.25 is reached first (prefix 0 has mass 0.55), (1, 2) = 0.2501 wins
    dist = {(0, 2): 0.25, (0, 0, 2): 0.3, (1, 2): 0.2501, (2,): 0.1999}
    lm = _explicit_lm(dist, 3)
    res = exact_mode(lm, [], 3, eos_id=2, length=1)
    assert res.tokens == (1, 2)
    np.testing.assert_allclose(res.logprob, np.log(0.2501), rtol=1e-12)
    # bigram whose greedy dive (0, 0, ...) is long and poor; the mode (1, 2) as the incumbent
    # prunes the whole 0-subtree after one expansion
    p = np.array([[0.6, 0.4, 0.0], [0.1, 0.0, 0.9], [1 / 3, 1 / 3, 1 / 3]])
    with np.errstate(divide="ignore"):
        bigram = TabularLM(2, np.log(p), eos_id=2)
    plain = exact_mode(bigram, [], 6, require_eos=True)
    warm = exact_mode(bigram, [], 6, require_eos=True, initial=[1, 2])
    assert plain.tokens == warm.tokens == (1, 2) and plain.logprob == warm.logprob
    # plain (by hand): root, 0, 00, 000, 0000 (00000 can only take EOS, p = 0), then 00001,
    # 0001, 001, 01 and 1, each improving the incumbent: 11 model calls. warm: root, 0 (0.6 >
    # 0.36; its child 00 = 0.36 is not above), 1 (0.4; its EOS ties 0.36): 3
    assert (plain.expanded, warm.expanded) == (11, 3)


def test_exact_mode_uses_only_the_step_protocol():
    # the same model behind PrefixLM (stateless, prefix re-read every step) and a tiny transformer
    lm = random_markov_lm(4, 0.5, seed=7, eos_id=3, order=3)
    wrapped = PrefixLM(lambda prefixes: lm.logprobs(prefixes), 4)
    assert exact_mode(wrapped, [1], 5, eos_id=3) == exact_mode(lm, [1], 5)
    cfg = TinyConfig(vocab_size=5, d_model=8, n_layers=1, n_heads=2, max_positions=16)
    model = TransformerLM(init_params(cfg, seed=0))  # a per-row KV cache as the state
    seqs = enumerate_sequences(model, [0, 1], 4, eos_id=4)
    want = _brute_mode(seqs)
    res = exact_mode(model, [0, 1], 4, eos_id=4)
    assert res.tokens == want[0]
    np.testing.assert_allclose(res.logprob, want[1], rtol=0, atol=1e-10)


# --- the contamination example (arXiv 2311.08817) ------------------------------------------------

def _explicit_lm(dist: dict, V: int):
    """A StepLM for an explicit distribution over sequences:
    p(v | y) = P(sequences extending y + v) / P(sequences extending y) (uniform where 0/0)."""
    mass = {}  # prefix -> (V,) probability of each next token
    for seq, p in dist.items():
        for k in range(len(seq)):
            mass.setdefault(seq[:k], np.zeros(V))[seq[k]] += p

    def fn(prefixes):
        out = np.array([mass.get(tuple(int(t) for t in y), np.ones(V)) for y in prefixes])
        with np.errstate(divide="ignore"):
            return np.log(out / out.sum(axis=1, keepdims=True))  # (R, V)
    return PrefixLM(fn, V)


@pytest.mark.parametrize("peaked", [False, True])
def test_contamination_makes_the_mode_empty_and_conditioning_restores_it(peaked):
    # population: the 6**4 strings over {0..5}, then EOS = 6; noise: the empty output (EOS)
    V, eos, eps = 7, 6, 0.01
    strings = list(itertools.product(range(6), repeat=4))
    w = (np.random.default_rng(0).dirichlet(np.ones(len(strings))) if peaked
         else np.full(len(strings), 1 / len(strings)))
    dist = {s + (eos,): (1 - eps) * p for s, p in zip(strings, w)}
    dist[(eos,)] = eps
    assert (1 - eps) * w.max() < eps  # the regime of the example: noise beats every string
    lm = _explicit_lm(dist, V)
    mode = exact_mode(lm, [], 5, eos_id=eos)
    assert mode.tokens == (eos,)
    np.testing.assert_allclose(mode.logprob, np.log(eps), rtol=1e-12)
    cond = exact_mode(lm, [], 5, eos_id=eos, length=4)
    best = max((s for s in dist if len(s) == 5), key=dist.get)
    np.testing.assert_allclose(cond.logprob, np.log(dist[best]), rtol=1e-12)
    if peaked:  # a unique population mode
        assert cond.tokens == best
    else:  # all 1296 strings tie; the first found (children by id on ties) is all zeros
        assert cond.tokens == (0, 0, 0, 0, eos)


# --- argument checks ----------------------------------------------------------------------------

LM = random_markov_lm(3, 1.0, 0, eos_id=2)
NOEOS = random_markov_lm(3, 1.0, 0)


@pytest.mark.parametrize("call,err,match", [
    (lambda: exact_mode(LM, [0], 3, length=3), ValueError, "length must be <= max_len - 1"),
    (lambda: exact_mode(LM, [0], 3, length=-1), ValueError, "length"),
    (lambda: exact_mode(NOEOS, [0], 3, length=1), ValueError, "eos_id"),
    (lambda: exact_mode(NOEOS, [0], 3, require_eos=True), ValueError, "eos_id"),
    (lambda: exact_mode(LM, [0], 3, require_eos=1), TypeError, "require_eos"),
    (lambda: exact_mode(LM, [0], 3, lower_bound=np.nan), ValueError, "lower_bound"),
    (lambda: exact_mode(LM, [0], 3, max_nodes=0), ValueError, "max_nodes"),
    (lambda: exact_mode(LM, [0], 3, initial="greedy"), TypeError, "initial"),
    (lambda: exact_mode(LM, [0], 3, initial=[2, 0]), ValueError, "initial"),  # EOS inside
    (lambda: exact_mode(LM, [0], 3, initial=[0, 1]), ValueError, "initial"),  # not complete
    (lambda: exact_mode(LM, [0], 3, initial=[0, 1, 0], require_eos=True), ValueError,
     "initial"),
    (lambda: exact_mode(LM, [0], 3, initial=[0.5]), TypeError, "initial"),
    (lambda: exact_mode(LM, [0], 3, initial=[3]), ValueError, "initial"),
    (lambda: exact_mode(LM, [3], 3), ValueError, "prompt"),
    (lambda: exact_mode(LM, [[0]], 3), ValueError, "prompt"),
    (lambda: exact_mode(LM, [0], -1), ValueError, "max_len"),
    (lambda: exact_mode(LM, [0], 2, eos_id=3), ValueError, "eos_id"),
    (lambda: exact_mode(None, [0], 2), TypeError, "model"),
    (lambda: top_sequences(LM, [0], 2, 0), ValueError, "n must"),
    (lambda: top_sequences(LM, [0], 2, 1.0), TypeError, "n must"),
    (lambda: exact_length_conditional_modes(LM, [0], []), ValueError, "lengths"),
    (lambda: exact_length_conditional_modes(LM, [0], 2), TypeError, "lengths"),
    (lambda: exact_length_conditional_modes(LM, [0], [1, -1]), ValueError, "lengths"),
])
def test_bad_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call()
