"""Beam search against brute force on enumerable toy models: the running set after every step,
the EOS admission rule, exact search in the limit, batched == looped, and each convention's
rules (search-decoding conventions; docs/decoding.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refseq.decoding import PrefixLM
from refseq.decoding.beam import beam_search, beam_step
from refseq.decoding.nbest import normalize
from refseq.decoding.search import greedy
from refseq.models.toy_lm import TabularLM, enumerate_sequences, random_markov_lm


class Spy(PrefixLM):
    """A stateless model over a TabularLM that records the prefixes of every call."""

    def __init__(self, lm):
        self.calls = []

        def fn(prefixes):
            self.calls.append([tuple(int(x) for x in p) for p in prefixes])
            return lm.logprobs(prefixes)

        super().__init__(fn, lm.vocab_size)


def _lm(V, seed, eos=None, alpha=0.5):
    return random_markov_lm(V, alpha, seed=seed, eos_id=eos)


# --- beam_step ---------------------------------------------------------------------------------


def test_beam_step_ranks_by_score_then_flat_index():
    cum = np.array([[0.0, -1.0]])
    lp = np.log(np.array([[[0.5, 0.25, 0.25], [1.0, 1e-300, 1e-300]]]))  # (1, 2, 3)
    s, k, v = beam_step(cum, lp, 4)
    # totals: beam0 -> [-0.69, -1.39, -1.39], beam1 -> [-1, ...]: ties (-1.39) by flat index
    assert k.tolist() == [[0, 1, 0, 0]] and v.tolist() == [[0, 0, 1, 2]]
    np.testing.assert_allclose(s, [[np.log(0.5), -1.0, np.log(0.25), np.log(0.25)]])


@given(batch=st.integers(1, 3), B=st.integers(1, 4), V=st.integers(1, 9), data=st.data())
def test_beam_step_equals_a_full_stable_sort(batch, B, V, data):
    """The partial selection equals sorting all B V candidates (ties and -inf included)."""
    values = st.sampled_from([0.0, -0.5, -1.0, -2.0, -np.inf])  # many ties on purpose
    cum = np.array(data.draw(st.lists(values, min_size=batch * B, max_size=batch * B)))
    lp = np.array(data.draw(st.lists(values, min_size=batch * B * V, max_size=batch * B * V)))
    cum, lp = cum.reshape(batch, B), lp.reshape(batch, B, V)
    n = data.draw(st.integers(1, B * V))
    total = (cum[:, :, None] + lp).reshape(batch, B * V)
    order = np.argsort(-total, axis=1, kind="stable")[:, :n]
    s, k, v = beam_step(cum, lp, n)
    assert np.array_equal(k * V + v, order)
    assert np.array_equal(s, np.take_along_axis(total, order, axis=1))


def test_beam_step_puts_minus_inf_last_and_validates():
    s, k, v = beam_step(np.array([[0.0, -np.inf]]), np.zeros((1, 2, 2)) - np.log(2), 4)
    assert k.tolist() == [[0, 0, 1, 1]] and np.isneginf(s[0, 2:]).all()
    with pytest.raises(ValueError, match="n_cand"):
        beam_step(np.zeros((1, 2)), np.zeros((1, 2, 3)), 7)
    with pytest.raises(ValueError, match="logprobs"):
        beam_step(np.zeros((1, 2)), np.zeros((1, 3, 3)), 2)


# --- the defining invariant: the running set after every step -----------------------------------


def _brute_force_running(lm, running, B, eos):
    """The top-B non-EOS one-token extensions of ``running`` (ordered prefixes), ranked by exact
    score descending, ties by (beam index, token) — written from the definition."""
    V = lm.vocab_size
    cands = []
    for k, (prefix, score) in enumerate(running):
        lp = lm.logprobs([np.array(prefix, np.int64)])[0]
        cands += [(score + lp[v], k * V + v, prefix + (v,)) for v in range(V)]
    cands.sort(key=lambda c: (-c[0], c[1]))
    return [(c[2], c[0]) for c in cands if c[2][-1] not in eos][:B], cands


@given(V=st.integers(4, 7), B=st.integers(1, 4), seed=st.integers(0, 10_000),
       with_eos=st.booleans())
def test_running_beams_are_the_top_B_non_eos_extensions_at_every_step(V, B, seed, with_eos):
    eos = (0,) if with_eos else ()
    lm = _lm(V, seed, eos=0 if with_eos else None)
    spy = Spy(lm)
    T = 4
    beam_search(spy, [np.array([1])], num_beams=B, max_new_tokens=T, eos_ids=eos,
                length_penalty=0.0, early_stopping="never")
    running = [((1,), 0.0)]  # the prompt, score 0
    for call in spy.calls[1:]:  # every step call feeds the running prefixes, best first
        expected, cands = _brute_force_running(lm, running, B, eos)
        scores = sorted((c[0] for c in cands), reverse=True)
        assume(all(a - b > 1e-9 for a, b in zip(scores, scores[1:]) if np.isfinite(b)))
        expected = [(p, sc) for p, sc in expected if sc > -np.inf]
        # with fewer than B real candidates the search pads with copies scored -inf
        assert len(call) == B and call[:len(expected)] == [p for p, _ in expected]
        running = expected


def test_an_eos_ranked_below_B_is_not_admitted():
    """EOS is the (B+1)-th candidate at step 1; after that every token costs log 50, so a
    search that admitted it would rank the one-token hypothesis first."""
    B, V, eos = 3, 50, 49
    first = np.full(V, -30.0)
    first[[1, 2, 3]] = [0.0, -0.1, -0.2]
    first[eos] = -0.3  # rank 3 = B among the candidates: not admitted

    def fn(prefixes):
        return np.stack([first if len(p) == 1 else np.zeros(V) for p in prefixes])

    out = beam_search(PrefixLM(fn, V), [np.array([0])], num_beams=B, max_new_tokens=3,
                      eos_ids=(eos,), length_penalty=0.0, num_return_sequences=B)[0]
    assert all(h.tokens.tolist() != [eos] for h in out)
    # and when EOS ranks 2 < B it is admitted, and wins
    first[eos] = -0.15
    out = beam_search(PrefixLM(fn, V), [np.array([0])], num_beams=B, max_new_tokens=3,
                      eos_ids=(eos,), length_penalty=0.0)[0]
    assert out[0].tokens.tolist() == [eos] and out[0].finished


# --- exact search in the limit, greedy, hypotheses --------------------------------------------


@given(V=st.integers(2, 3), T=st.integers(1, 3), seed=st.integers(0, 10_000),
       with_eos=st.booleans())
def test_a_beam_as_wide_as_the_tree_is_exact_search(V, T, seed, with_eos):
    eos = 0 if with_eos else None
    lm = _lm(V, seed, eos=eos)
    every = enumerate_sequences(lm, [1], T, eos_id=eos)
    B = V ** T
    out = beam_search(lm, [np.array([1])], num_beams=B, max_new_tokens=T,
                      eos_ids=() if eos is None else (eos,), length_penalty=0.0,
                      num_return_sequences=min(B, len(every)))[0]
    finite = sorted((s for s in every if np.isfinite(s[1])), key=lambda s: -s[1])
    scores = [s for _, s in finite]
    assume(all(a - b > 1e-9 for a, b in zip(scores, scores[1:])))
    assert [tuple(h.tokens.tolist()) for h in out] == [seq for seq, _ in finite]
    np.testing.assert_allclose([h.score for h in out], scores, rtol=1e-10, atol=1e-10)


@given(V=st.integers(3, 9), seed=st.integers(0, 10_000), with_eos=st.booleans(),
       n=st.integers(1, 3))
def test_greedy_equals_beam_search_with_one_beam(V, seed, with_eos, n):
    lm = _lm(V, seed, eos=0 if with_eos else None, alpha=2.0)
    prompts = [np.array([1 + i % (V - 1)] * (i + 1)) for i in range(n)]
    g = greedy(lm, prompts, 6, eos_id=0 if with_eos else None)
    b = beam_search(lm, prompts, num_beams=1, max_new_tokens=6,
                    eos_ids=(0,) if with_eos else (), length_penalty=0.0)
    for i in range(n):
        (h,) = b[i]
        L = g.lengths[i]
        assert h.tokens.tolist() == g.tokens[i, :L].tolist()
        assert h.finished == g.finished[i]
        np.testing.assert_allclose(h.sum_logprob, g.logprobs[i, :L].sum(), rtol=1e-12)


@given(V=st.integers(3, 8), B=st.integers(1, 4), seed=st.integers(0, 10_000),
       alpha=st.sampled_from([0.0, 0.6, 1.0, 2.0]), norm=st.sampled_from(["power", "gnmt"]))
def test_finished_hypotheses_end_with_eos_and_carry_their_exact_scores(V, B, seed, alpha, norm):
    lm = _lm(V, seed, eos=0, alpha=1.0)
    out = beam_search(lm, [np.array([1, 2])], num_beams=B, max_new_tokens=5, eos_ids=(0,),
                      length_penalty=alpha, length_norm=norm, num_return_sequences=B)[0]
    assert out == sorted(out, key=lambda h: -h.score)
    for h in out:
        assert h.length == len(h.tokens) and h.tokens.dtype == np.int64
        assert (h.tokens[-1] == 0) == h.finished and (h.tokens[:-1] != 0).all()
        exact = lm.sequence_logprob(h.tokens, prompt=[1, 2])  # independent of the search
        np.testing.assert_allclose(h.sum_logprob, exact, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(h.token_logprobs.sum(), exact, rtol=1e-10, atol=1e-10)
        L = len(h.tokens)
        by_hand = exact / (L ** alpha if norm == "power" else ((5 + L) / 6) ** alpha)
        np.testing.assert_allclose(h.score, by_hand, rtol=1e-10, atol=1e-12)


# --- batching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["neutral", "hf", "fairseq"])
@given(seed=st.integers(0, 10_000), B=st.integers(1, 3),
       early=st.sampled_from([True, False, "never"]))
def test_batched_equals_looped(convention, seed, B, early):
    lm = _lm(7, seed, eos=0, alpha=0.7)
    prompts = [np.array([1]), np.array([2, 3, 4]), np.array([5, 6]), np.array([3])]
    kw = dict(num_beams=B, max_new_tokens=6, eos_ids=(0,), length_penalty=1.0,
              early_stopping=early, num_return_sequences=B, convention=convention)
    batched = beam_search(lm, prompts, **kw)
    for p, hyps in zip(prompts, batched):
        (alone,) = beam_search(lm, [p], **kw)
        assert [h.tokens.tolist() for h in hyps] == [h.tokens.tolist() for h in alone]
        assert [h.score for h in hyps] == [h.score for h in alone]


# --- stopping and conventions ------------------------------------------------------------------


class StepCounter(TabularLM):
    def __init__(self, lm):
        super().__init__(lm.order, lm.table, eos_id=lm.eos_id)
        self.steps = 0

    def step(self, state, tokens):
        self.steps += 1
        return super().step(state, tokens)


@pytest.mark.parametrize("convention, early", [("neutral", True), ("hf", True),
                                                ("fairseq", False)])
@given(seed=st.integers(0, 10_000), B=st.integers(1, 4))
def test_search_stops_once_B_hypotheses_are_finished(convention, early, seed, B):
    """early_stopping=True (fairseq: always): the last step run is the one that finished the
    B-th hypothesis, so the model stepped exactly (longest returned length - 1) times."""
    lm = StepCounter(_lm(6, seed, eos=0, alpha=0.3))
    T = 30
    out = beam_search(lm, [np.array([1])], num_beams=B, max_new_tokens=T, eos_ids=(0,),
                      early_stopping=early, num_return_sequences=B, convention=convention)[0]
    last = max(len(h.tokens) for h in out)
    assume(last < T)
    assert len(out) == B and all(h.finished for h in out)
    assert lm.steps == last - 1


@given(seed=st.integers(0, 10_000), B=st.integers(1, 4), alpha=st.sampled_from([0.5, 1.0, 2.0]))
def test_never_does_not_return_a_worse_top_score_than_false(seed, B, alpha):
    lm = _lm(6, seed, eos=0, alpha=0.3)
    kw = dict(num_beams=B, max_new_tokens=8, eos_ids=(0,), length_penalty=alpha)
    top_false = beam_search(lm, [np.array([1])], early_stopping=False, **kw)[0][0].score
    top_never = beam_search(lm, [np.array([1])], early_stopping="never", **kw)[0][0].score
    assert top_never >= top_false - 1e-12


@given(seed=st.integers(0, 10_000), B=st.integers(1, 4), T=st.integers(1, 6),
       alpha=st.sampled_from([0.0, 1.0]))
def test_fairseq_rules(seed, B, T, alpha):
    """Only EOS at the last step (every hypothesis finishes), the pad token is never chosen, the
    normaliser counts the EOS (step + 1)."""
    V, eos, pad = 7, 0, 3
    lm = _lm(V, seed, eos=eos, alpha=0.5)
    out = beam_search(lm, [np.array([1])], num_beams=B, max_new_tokens=T, eos_ids=(eos,),
                      pad_id=pad, length_penalty=alpha, convention="fairseq",
                      num_return_sequences=B)[0]
    assert out
    for h in out:
        assert h.finished and h.tokens[-1] == eos and len(h.tokens) <= T
        assert pad not in h.tokens.tolist()
        np.testing.assert_allclose(h.score, h.sum_logprob / len(h.tokens) ** alpha, rtol=1e-12)


def test_fairseq_finalises_first_come_and_never_evicts():
    """B = 2, alpha = 1. Step 1 finalises [EOS] (score log .35 = -1.05); step 2 brings two EOS
    candidates normalised to -0.51 and -0.75. fairseq takes the first (the list is then full and
    the sentence done) and keeps [EOS]; an n-best list that evicts would return the two new."""
    V = 5

    def fn(prefixes):
        rows = []
        for p in prefixes:
            if len(p) == 1:
                q = np.array([0.35, 0.4, 0.25, 1e-9, 1e-9])
            else:
                q = np.array([0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3, 1e-9])
            rows.append(np.log(q / q.sum()))
        return np.stack(rows)

    out = beam_search(PrefixLM(fn, V), [np.array([1])], num_beams=2, max_new_tokens=5,
                      eos_ids=(0,), length_penalty=1.0, convention="fairseq",
                      num_return_sequences=2)[0]
    assert [h.tokens.tolist() for h in out] == [[1, 0], [0]]
    neutral = beam_search(PrefixLM(fn, V), [np.array([1])], num_beams=2, max_new_tokens=5,
                          eos_ids=(0,), length_penalty=1.0, early_stopping=True,
                          num_return_sequences=2)[0]
    assert [h.tokens.tolist() for h in neutral] == [[1, 0], [2, 0]]


def test_hf_counts_top_B_candidates_at_the_length_limit_as_finished():
    """No EOS at all: under "hf" the last step's top-B candidates are the hypotheses (as
    transformers' max-length criterion); under "neutral" the B best running beams are, cut."""
    lm = _lm(5, 3, alpha=0.5)
    for conv in ("hf", "neutral"):
        out = beam_search(lm, [np.array([1])], num_beams=3, max_new_tokens=4,
                          num_return_sequences=3, convention=conv)[0]
        assert len(out) == 3 and all(len(h.tokens) == 4 and not h.finished for h in out)
        every = enumerate_sequences(lm, [1], 4)
        for h in out:
            assert (tuple(h.tokens.tolist()), pytest.approx(h.sum_logprob)) in [
                (s, pytest.approx(p)) for s, p in every]


def test_hf_initialises_unused_beams_at_minus_1e9():
    """V < 2B: the first step has fewer real candidates than beams. Neutral leaves the rest at
    -inf (never returned); "hf" runs them with a -1e9 score, as transformers does."""
    lm = _lm(2, 0, alpha=1.0)
    neutral = beam_search(lm, [np.array([1])], num_beams=4, max_new_tokens=1,
                          num_return_sequences=4)[0]
    hf = beam_search(lm, [np.array([1])], num_beams=4, max_new_tokens=1,
                     num_return_sequences=4, convention="hf")[0]
    assert len(neutral) == 2 and all(np.isfinite(h.score) for h in neutral)
    assert len(hf) == 4 and sum(h.score < -1e8 for h in hf) == 2


def test_no_input_is_modified():
    lm = _lm(5, 1, eos=0)
    table = lm.table.copy()
    prompts = [np.array([1, 2]), np.array([3])]
    copies = [p.copy() for p in prompts]
    beam_search(lm, prompts, num_beams=2, max_new_tokens=3, eos_ids=(0,))
    assert np.array_equal(lm.table, table)
    assert all(np.array_equal(p, c) for p, c in zip(prompts, copies))


def test_float32_compute_gives_float32_token_logprobs_and_the_same_tokens():
    lm = _lm(6, 2, eos=0, alpha=2.0)
    a = beam_search(lm, [np.array([1])], num_beams=2, max_new_tokens=4, eos_ids=(0,))[0]
    b = beam_search(lm, [np.array([1])], num_beams=2, max_new_tokens=4, eos_ids=(0,),
                    compute_dtype=np.float32)[0]
    assert b[0].token_logprobs.dtype == np.float32
    assert a[0].tokens.tolist() == b[0].tokens.tolist()
    np.testing.assert_allclose(b[0].sum_logprob, a[0].sum_logprob, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw, match", [
    (dict(num_beams=0), "num_beams"), (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(eos_ids=(9,)), "eos_ids"), (dict(pad_id=-1), "pad_id"),
    (dict(length_norm="log"), "length_norm"), (dict(early_stopping="sometimes"), "early_stopping"),
    (dict(early_stopping=1), "early_stopping"),
    (dict(num_return_sequences=3), "num_return_sequences"), (dict(convention="vllm"), "convention"),
    (dict(convention="fairseq"), "exactly one EOS"),
    (dict(logprob_processor=3), "logprob_processor"),
    (dict(temperature=0.0), "temperature"), (dict(compute_dtype=np.int32), "compute_dtype"),
    (dict(min_new_tokens=9), "min_new_tokens"),
])
def test_bad_arguments_name_themselves(kw, match):
    args = dict(num_beams=2, max_new_tokens=3)
    args.update(kw)
    with pytest.raises((TypeError, ValueError), match=match):
        beam_search(_lm(5, 0), [np.array([1])], **args)


def test_normalize_by_hand():
    assert normalize(-6.0, 3, 1.0) == -2.0
    assert normalize(-6.0, 3, 0.0) == -6.0
    assert normalize(-6.0, 7, 1.0, "gnmt") == -3.0  # (5 + 7) / 6 = 2
    assert normalize(-6.0, 3, 2.0, "none") == -6.0
    with pytest.raises(ValueError, match="gen_len"):
        normalize(-1.0, 0)
