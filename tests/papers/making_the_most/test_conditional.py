"""Part C: exact (length-conditional) modes and attribute-conditional beam search (ACBS) against
brute-force enumeration on tiny ``TabularLM`` models (making-the-most properties 11-15)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.beam import beam_search
from refseq.decoding.exact import (
    enumerate_sequences,
    exact_length_conditional_modes,
    exact_mode,
)
from refseq.models.toy_lm import random_markov_lm
from refseq.papers.making_the_most.conditional import (
    conditional_beam_search,
    length_attr_logprob,
    length_attribute,
)

models = st.builds(lambda V, a, s, o: random_markov_lm(V, a, s, eos_id=V - 1, order=o),
                   st.integers(3, 4), st.sampled_from([0.3, 1.0, 3.0]), st.integers(0, 10**6),
                   st.integers(1, 2))


def _brute_modes(lm, prompt, max_len):
    """{L: (tokens, logprob)} of the most probable EOS-ending continuation with L tokens."""
    best = {}
    for seq, lp in enumerate_sequences(lm, prompt, max_len, lm.eos_id):
        if seq[-1] == lm.eos_id:
            L = len(seq) - 1
            if L not in best or lp > best[L][1]:
                best[L] = (seq, lp)
    return best


def _margin_ok(lm, prompt, max_len, L):
    """The best and second-best length-L sequences are separated (no near-ties)."""
    lps = sorted((lp for s, lp in enumerate_sequences(lm, prompt, max_len, lm.eos_id)
                  if s[-1] == lm.eos_id and len(s) == L + 1), reverse=True)
    return len(lps) < 2 or lps[0] - lps[1] > 1e-9


@given(models, st.integers(0, 3))
def test_length_conditional_modes_equal_enumeration_per_length(lm, p):
    prompt = [p % lm.vocab_size]
    brute = _brute_modes(lm, prompt, 5)
    modes = exact_length_conditional_modes(lm, prompt, range(5))
    for L in range(5):
        got = modes[L]
        assert got.exact and len(got.tokens) == L + 1 and got.tokens[-1] == lm.eos_id
        assert lm.eos_id not in got.tokens[:-1]  # exactly L tokens before EOS
        np.testing.assert_allclose(got.logprob, brute[L][1], atol=1e-10)
        if _margin_ok(lm, prompt, 5, L):
            assert got.tokens == brute[L][0]


@given(models, st.integers(0, 10**6))
def test_lower_bound_from_any_complete_sequence_does_not_change_the_mode(lm, seed):
    """Property 12: pruning with a valid lower bound (the score of a complete sequence)."""
    seqs = [s for s in enumerate_sequences(lm, [0], 4, lm.eos_id) if s[0][-1] == lm.eos_id]
    seq, lp = seqs[np.random.default_rng(seed).integers(len(seqs))]
    plain = exact_mode(lm, [0], 4, require_eos=True)
    bounded = exact_mode(lm, [0], 4, require_eos=True, lower_bound=lp)
    np.testing.assert_allclose(bounded.logprob, plain.logprob, atol=1e-10)
    assert bounded.expanded <= plain.expanded


@given(models, st.integers(0, 4), st.integers(0, 2))
def test_length_attribute_equals_enumerated_mass(lm, L, t):
    """log P(|y| = L | prefix) against the summed probabilities of enumerated continuations."""
    prefix = [v for v in range(t) if v != lm.eos_id][:t]
    seqs = enumerate_sequences(lm, [1] + prefix, 6, lm.eos_id)
    mass = [lp for s, lp in seqs if s[-1] == lm.eos_id and len(prefix) + len(s) - 1 == L]
    want = np.logaddexp.reduce(mass) if mass else -np.inf
    got = length_attr_logprob(lm, prefix, L, prompt=[1])
    np.testing.assert_allclose(got, want, atol=1e-10)
    assert length_attr_logprob(lm, prefix + [lm.eos_id], len(prefix)) == 0.0
    assert length_attr_logprob(lm, prefix + [lm.eos_id], len(prefix) + 1) == -np.inf


@given(models, st.integers(1, 4), st.integers(1, 5))
def test_acbs_with_a_neutral_attribute_is_beam_search(lm, B, T):
    """Property 13: attr == 0 (and k_pre = V) gives the neutral beam search."""
    zero = lambda p: np.zeros(len(p))  # noqa: E731
    got = conditional_beam_search(lm, [0], zero, num_beams=B, k_pre=lm.vocab_size,
                                  max_new_tokens=T, eos_ids=lm.eos_id)
    want = beam_search(lm, [np.array([0])], num_beams=B, max_new_tokens=T, eos_ids=(lm.eos_id,),
                       length_penalty=0.0, num_return_sequences=B)[0]
    assert [h.tokens.tolist() for h in got] == [h.tokens.tolist() for h in want]
    np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-10)


@given(models, st.integers(0, 3))
def test_acbs_with_exact_length_attribute_and_full_beam_is_the_length_mode(lm, L):
    """Property 14: B >= V**T and k_pre = V make ACBS exact for the length attribute."""
    V = lm.vocab_size
    mode = exact_mode(lm, [2], L + 1, length=L)
    hyps = conditional_beam_search(lm, [2], length_attribute(lm, L, prompt=[2]),
                                   num_beams=V ** (L + 1), k_pre=V, max_new_tokens=L + 1,
                                   eos_ids=lm.eos_id)
    np.testing.assert_allclose(hyps[0].score, mode.logprob, atol=1e-10)
    assert len(hyps[0].tokens) == L + 1 and hyps[0].tokens[-1] == lm.eos_id
    if _margin_ok(lm, [2], L + 1, L):
        assert tuple(hyps[0].tokens.tolist()) == mode.tokens


def _hash_attr(seed):
    """A deterministic pseudo-attribute log P(a | prefix) in [-3, 0] (a function of the prefix)."""
    def attr(prefixes):
        return np.array([-3.0 * ((hash((seed,) + tuple(p.tolist())) % 1000) / 1000.0)
                         for p in prefixes])
    return attr


def _acbs_brute(lm, prompt, attr, B, k_pre, T, eos):
    """ACBS re-derived from whole prefixes: every score recomputed from scratch each step."""
    beams, finished = [()], []
    for t in range(1, T + 1):
        cands = []
        for k, y in enumerate(beams):
            lp = lm.logprobs([np.array(list(prompt) + list(y))])[0]
            for v in np.argsort(-lp, kind="stable")[:k_pre]:
                z = y + (int(v),)
                m = lm.sequence_logprob(z, prompt)
                if m > -np.inf:
                    cands.append((m + attr([np.array(z)])[0], k * lm.vocab_size + v, z))
        cands.sort(key=lambda c: (-c[0], c[1]))
        cands = [c for c in cands if c[0] > -np.inf]
        for rank, (sc, _, z) in enumerate(cands):
            if z[-1] == eos and rank < B:
                finished.append((sc, z))
        beams = [z for _, _, z in cands if z[-1] != eos][:B]
        if t == T:
            finished += [(sc, z) for sc, _, z in cands if z in beams]
    return finished


@settings(deadline=None)
@given(models, st.integers(1, 3), st.integers(1, 4), st.integers(0, 100))
def test_acbs_scores_are_model_logprob_plus_one_attribute_term(lm, B, T, seed):
    """Property 15 and the step invariant: every returned hypothesis has score == log p(y|x) +
    attr(y) (no accumulation), and the n-best list is the top of a from-scratch re-derivation."""
    attr = _hash_attr(seed)
    k_pre = max(1, lm.vocab_size - 1)
    hyps = conditional_beam_search(lm, [1], attr, num_beams=B, k_pre=k_pre, max_new_tokens=T,
                                   eos_ids=lm.eos_id)
    for h in hyps:
        m = lm.sequence_logprob(h.tokens, [1])
        np.testing.assert_allclose(h.sum_logprob, m, atol=1e-10)
        np.testing.assert_allclose(h.score, m + attr([h.tokens])[0], atol=1e-10)
    brute = sorted(_acbs_brute(lm, [1], attr, B, k_pre, T, lm.eos_id), key=lambda c: -c[0])
    # every returned hypothesis is a brute-force finalist, and the best scores agree
    finalists = {z for _, z in brute}
    assert all(tuple(h.tokens.tolist()) in finalists for h in hyps)
    if brute:
        np.testing.assert_allclose(hyps[0].score, brute[0][0], atol=1e-10)


def test_k_pre_prefilter_can_miss_the_feasible_outputs():
    """Trap: the only length-2 continuation is pre-filtered away with k_pre = 1."""
    from refseq.models.toy_lm import TabularLM
    with np.errstate(divide="ignore"):
        table = np.log(np.array([[0.0, 0.1, 0.9],    # after 0: EOS likely
                                 [0.0, 0.1, 0.9],
                                 [1 / 3, 1 / 3, 1 / 3]]))
    lm = TabularLM(2, table, eos_id=2)
    attr = length_attribute(lm, 2, prompt=[0])
    full = conditional_beam_search(lm, [0], attr, num_beams=4, k_pre=3, max_new_tokens=3,
                                   eos_ids=2)
    narrow = conditional_beam_search(lm, [0], attr, num_beams=4, k_pre=1, max_new_tokens=3,
                                     eos_ids=2)
    assert full and len(full[0].tokens) == 3 and full[0].finished
    assert narrow == []


@pytest.mark.parametrize("kwargs, exc", [
    (dict(num_beams=0), ValueError), (dict(k_pre=0), ValueError), (dict(k_pre=9), ValueError),
    (dict(max_new_tokens=0), ValueError), (dict(eos_ids=7), ValueError),
])
def test_bad_arguments(kwargs, exc):
    lm = random_markov_lm(3, 1.0, 0, eos_id=2)
    args = dict(num_beams=2, k_pre=3, max_new_tokens=3, eos_ids=2) | kwargs
    with pytest.raises(exc):
        conditional_beam_search(lm, [0], lambda p: np.zeros(len(p)), **args)
    with pytest.raises(TypeError, match="attr_logprob_fn"):
        conditional_beam_search(lm, [0], None, num_beams=2, k_pre=3, max_new_tokens=3)
    with pytest.raises(ValueError, match="<= 0"):
        conditional_beam_search(lm, [0], lambda p: np.ones(len(p)), num_beams=2, k_pre=3,
                                max_new_tokens=3, eos_ids=2)
    with pytest.raises(TypeError, match="TabularLM"):
        length_attr_logprob(object(), [], 1)
