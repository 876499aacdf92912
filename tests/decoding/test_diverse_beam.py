"""Diverse beam search (arXiv 1610.02424): reductions to beam search and greedy, the golden
example, score bookkeeping, options, conventions and the traps (docs/papers/diverse-beam-search.md).

Expected values come from beam search and greedy decoding (refseq.decoding.beam/search), from the
exact sequence log-probs of TabularLM, from brute force over subsets, or from hand calculation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.beam import beam_search
from refseq.decoding.diverse_beam import DBSHypothesis, diverse_beam_search, group_step
from refseq.decoding.search import greedy
from refseq.models.toy_lm import TabularLM, random_markov_lm

# ------------------------------------------------------------------ the golden example
GOLDEN = TabularLM(2, np.log(np.array([[0.1, 0.5, 0.3, 0.1], [0.45, 0.1, 0.35, 0.1],
                                       [0.25, 0.15, 0.5, 0.1], [0.35, 0.3, 0.2, 0.15]])))


def _run(lm, prompt=(0,), **kw):
    kw.setdefault("max_new_tokens", 3)
    return diverse_beam_search(lm, [np.array(prompt)], **kw)[0]


def _triples(group):
    return [(h.tokens.tolist(), round(h.aug_score, 4), round(h.sum_logprob, 4)) for h in group]


G1 = [([1, 0, 1], -2.1848, -2.1848), ([1, 2, 2], -2.4361, -2.4361)]


@pytest.mark.parametrize("kw,group2", [
    (dict(diversity_strength=0.5), [([1, 0, 1], -3.6848, -2.1848), ([1, 2, 2], -3.9361, -2.4361)]),
    (dict(diversity_strength=1.0), [([1, 2, 0], -5.1293, -3.1293), ([1, 0, 1], -5.1848, -2.1848)]),
    (dict(diversity_strength=0.5, schedule="staggered"),
     [([2, 2, 2], -3.5903, -2.5903), ([2, 2, 0], -3.7834, -3.2834)]),
    (dict(diversity_strength=0.5, convention="lua"),
     [([2, 2, 2], -3.5903, -2.5903), ([2, 2, 0], -3.7834, -3.2834)]),
])
def test_golden_example(kw, group2):
    r = _run(GOLDEN, num_beams=4, num_groups=2, **kw)
    assert _triples(r.groups[0]) == G1 and _triples(r.groups[1]) == group2
    assert [h.group for h in r.flat] == [0, 0, 1, 1]  # group-major
    bs = beam_search(GOLDEN, [np.array([0])], num_beams=2, max_new_tokens=3, length_penalty=0.0,
                     num_return_sequences=2)[0]
    assert [(h.tokens.tolist(), round(h.score, 4)) for h in bs] == [(t, s) for t, s, _ in G1]


# ------------------------------------------------------------------ strategies
def _lm(seed, V, eos):
    return random_markov_lm(V, 0.5, seed, eos_id=0 if eos else None)


lm_cases = st.tuples(st.integers(0, 10**6), st.integers(5, 9), st.booleans(), st.integers(2, 6))


def assert_same_hyps(a, b, tol=1e-10):
    assert [h.tokens.tolist() for h in a] == [h.tokens.tolist() for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=tol, rtol=tol)
    np.testing.assert_allclose([h.sum_logprob for h in a], [h.sum_logprob for h in b], atol=tol,
                               rtol=tol)


@settings(deadline=None)
@given(lm_cases, st.integers(1, 4), st.sampled_from([0.0, 1.0]), st.floats(0, 3))
def test_one_group_is_beam_search(case, B, alpha, lam):
    seed, V, eos, T = case
    lm = _lm(seed, V, eos)
    kw = dict(num_beams=B, max_new_tokens=T, eos_ids=[0] if eos else [], length_penalty=alpha)
    ref = beam_search(lm, [np.array([seed % V])], num_return_sequences=B, **kw)[0]
    r = _run(lm, (seed % V,), num_groups=1, diversity_strength=lam, **kw)
    assert_same_hyps(r.groups[0], ref)


@settings(deadline=None)
@given(lm_cases, st.integers(1, 3), st.integers(2, 3),
       st.sampled_from(["hamming", "cumulative", "ngram"]))
def test_lambda_zero_every_group_is_beam_search_of_width_b_prime(case, Bp, G, diversity):
    """With lambda = 0 the groups do not interact; every group starts from the same prompt, so
    each returns exactly beam search of width B' (all groups identical, not independent draws)."""
    seed, V, eos, T = case
    lm = _lm(seed, V, eos)
    kw = dict(max_new_tokens=T, eos_ids=[0] if eos else [], length_penalty=1.0)
    ref = beam_search(lm, [np.array([1])], num_beams=Bp, num_return_sequences=Bp, **kw)[0]
    r = _run(lm, (1,), num_beams=Bp * G, num_groups=G, diversity_strength=0.0,
             diversity=diversity, **kw)
    for g, group in enumerate(r.groups):
        assert_same_hyps(group, ref)
        assert all(h.group == g and h.aug_score == h.sum_logprob for h in group)


@settings(deadline=None)
@given(lm_cases, st.integers(1, 4))
def test_one_beam_per_group_and_lambda_zero_is_greedy(case, G):
    seed, V, eos, T = case
    lm = _lm(seed, V, eos)
    out = greedy(lm, [np.array([2])], max_new_tokens=T, eos_id=0 if eos else None)
    L = int(out.lengths[0])
    r = _run(lm, (2,), num_beams=G, num_groups=G, diversity_strength=0.0, max_new_tokens=T,
             eos_ids=[0] if eos else [])
    for (h,) in r.groups:
        assert h.tokens.tolist() == out.tokens[0, :L].tolist()
        assert h.sum_logprob == pytest.approx(out.logprobs[0, :L].sum(), abs=1e-10)


@settings(deadline=None)
@given(lm_cases, st.integers(1, 2), st.floats(0.1, 3), st.floats(0.1, 3),
       st.sampled_from(["neutral", "lua", "hf"]))
def test_group_g_depends_only_on_groups_up_to_g(case, Bp, lam2, lam3, conv):
    seed, V, eos, T = case
    lm = _lm(seed, V, eos)
    kw = dict(num_beams=3 * Bp, num_groups=3, max_new_tokens=T, eos_ids=[0] if eos else [],
              convention=conv)
    a = _run(lm, (3,), diversity_strength=np.array([0.0, lam2, lam3]), **kw)
    b = _run(lm, (3,), diversity_strength=np.array([5.0, lam2, 2 * lam3 + 1]), **kw)
    c = _run(lm, (3,), diversity_strength=2 * lam2, diversity="ngram", **kw)
    for x, y in ((a, b), (a, c)):  # group 1: no lambda, no diversity function
        assert_same_hyps(x.groups[0], y.groups[0])
    assert_same_hyps(a.groups[1], b.groups[1])  # group 2 ignores lambda_3


@settings(deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 3), st.integers(1, 4))
def test_group_step_top_k_maximises_the_group_objective(seed, Bp, k):
    """Brute force over all sets of k distinct extensions (eq. 3's arg-max as a sum)."""
    rng = np.random.default_rng(seed)
    V = 4
    cum = rng.normal(size=Bp)
    lp, P = np.log(rng.dirichlet(np.ones(V), size=Bp)), rng.integers(0, 3, (Bp, V)) * 1.0
    lam = rng.uniform(0, 2)
    s, b, v = group_step(cum, lp, P, lam, k)
    total = (cum[:, None] + lp - lam * P).ravel()
    best = max(sum(total[list(c)]) for c in itertools.combinations(range(Bp * V), k))
    assert s.sum() == pytest.approx(best, abs=1e-12)
    np.testing.assert_allclose(s, total[b * V + v], atol=0)
    np.testing.assert_array_equal(b * V + v, np.argsort(-total, kind="stable")[:k])


@settings(deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 3), st.integers(2, 8))
def test_lua_top_b_prime_per_row_never_changes_the_selection(seed, Bp, V):
    """At most B' candidates of one row can be in the global top B' (spec property 11)."""
    rng = np.random.default_rng(seed)
    cum, lp = rng.normal(size=Bp), np.log(rng.dirichlet(np.ones(V), size=Bp))
    k = min(Bp, V)
    full = group_step(cum, lp, np.zeros(V), 0.0, k)
    cut = lp.copy()
    for row in cut:
        row[np.argsort(-row, kind="stable")[k:]] = -np.inf
    restricted = group_step(cum, cut, np.zeros(V), 0.0, k)
    for x, y in zip(full, restricted):
        np.testing.assert_array_equal(x, y)


@settings(deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 3), st.integers(2, 3), st.integers(2, 5))
def test_large_lambda_makes_groups_choose_disjoint_tokens(seed, Bp, G, T):
    V = (G - 1) * Bp + 3
    lm = random_markov_lm(V, 1.0, seed)  # finite log-probs, no EOS
    r = _run(lm, (0,), num_beams=G * Bp, num_groups=G, diversity_strength=1e6, max_new_tokens=T)
    for t in range(T):  # each final beam's token at t was kept by its group at step t
        seen = set()
        for group in r.groups:
            mine = {int(h.tokens[t]) for h in group}
            assert not mine & seen
            seen |= mine
        if Bp == 1:
            assert len(seen) == G


@settings(deadline=None)
@given(lm_cases, st.integers(1, 2), st.integers(2, 3), st.floats(0, 2),
       st.sampled_from(["hamming", "cumulative", "ngram"]), st.booleans(),
       st.sampled_from(["augmented", "raw"]), st.sampled_from(["lockstep", "staggered"]))
def test_score_identities(case, Bp, G, lam, diversity, accumulate, final_rank, schedule):
    seed, V, eos, T = case
    lm = _lm(seed, V, eos)
    prompt = np.array([seed % V])
    r = _run(lm, prompt, num_beams=G * Bp, num_groups=G, diversity_strength=lam, max_new_tokens=T,
             diversity=diversity, eos_ids=[0] if eos else [], accumulate_penalty=accumulate,
             final_rank=final_rank, schedule=schedule, length_penalty=0.0)
    for h in r.flat:
        assert isinstance(h, DBSHypothesis)
        lam_g = lam if h.group else 0.0
        assert h.aug_score == pytest.approx(h.sum_logprob - lam_g * h.token_penalties.sum(),
                                            abs=1e-10)
        assert h.sum_logprob == pytest.approx(lm.sequence_logprob(h.tokens, prompt), abs=1e-10)
        assert h.score == (h.aug_score if final_rank == "augmented" else h.sum_logprob)
        assert h.length == len(h.tokens) == len(h.token_penalties)
        assert h.finished == (eos and h.tokens[-1] == 0)
        assert not eos or 0 not in h.tokens[:-1]  # an EOS candidate never runs on
    for group in r.groups:
        assert [h.score for h in group] == sorted((h.score for h in group), reverse=True)


def _lm_from_rows(rows):
    """A bigram TabularLM from next-token probability rows (zeros become -inf)."""
    with np.errstate(divide="ignore"):
        return TabularLM(2, np.log(np.array(rows, float)))


def test_penalty_source_candidates_counts_discarded_candidates():
    """G = 2, B' = 1, T = 1: group 1's candidates are tokens 1 (kept) and 2 (discarded).
    kept:       group 2 scores 1: log .5 - .6 = -1.293, 2: log .35 = -1.050 -> token 2;
    candidates: 2: log .35 - .6 = -1.650, 3: log .15 = -1.897, 1: -1.293 -> token 1."""
    lm = _lm_from_rows([[0, 0.5, 0.35, 0.15]] * 4)
    kw = dict(num_beams=2, num_groups=2, diversity_strength=0.6, max_new_tokens=1)
    kept, cands = _run(lm, **kw), _run(lm, penalty_source="candidates", **kw)
    assert [h.tokens.tolist() for h in kept.flat] == [[1], [2]]
    assert [h.tokens.tolist() for h in cands.flat] == [[1], [1]]
    assert kept.flat[1].token_penalties.tolist() == [0.0]
    assert cands.flat[1].token_penalties.tolist() == [1.0]
    assert cands.flat[1].aug_score == pytest.approx(np.log(0.5) - 0.6, abs=1e-12)


def test_penalty_source_candidates_counts_eos_candidates():
    """Group 1's best candidate is EOS (token 3, finished); it runs on with token 1. fairseq
    counts the EOS candidate, so group 2 pays for EOS and picks token 2 over it."""
    lm = _lm_from_rows([[0, 0.3, 0.25, 0.45]] * 4)
    kw = dict(num_beams=2, num_groups=2, diversity_strength=1.0, max_new_tokens=2, eos_ids=[3],
              length_penalty=0.0)
    kept = _run(lm, **kw)
    cands = _run(lm, penalty_source="candidates", **kw)
    assert kept.groups[1][0].tokens.tolist() == [3]  # EOS was not kept: no penalty on it
    assert cands.groups[1][0].tokens.tolist() != [3]


def test_accumulate_false_ranks_by_raw_running_score():
    """accumulate_penalty=False: the running score is the raw log-prob, so group 2's choice at
    step 2 is not biased by its step-1 penalty (aug_score still records every penalty)."""
    r = _run(GOLDEN, num_beams=4, num_groups=2, diversity_strength=0.5, accumulate_penalty=False)
    for h in r.groups[1]:
        assert h.aug_score == pytest.approx(h.sum_logprob - 0.5 * h.token_penalties.sum())
    # per step the penalty is a constant shift within a group here (both group-2 beams pay the
    # same at each step), so the ranking equals accumulate mode's
    a = _run(GOLDEN, num_beams=4, num_groups=2, diversity_strength=0.5)
    assert [h.tokens.tolist() for h in r.groups[1]] == [h.tokens.tolist() for h in a.groups[1]]


def test_fairseq_finalised_list_is_first_come_and_shared_by_groups():
    """fairseq SequenceGenerator appends finished hypotheses while fewer than B are finalised
    (no eviction) and stops the sentence at B. Token 0 is EOS; B = 2, G = 1, T = 2, alpha = 1:
    step 1 finalises [0] (rank 1 < B, score log .2 = -1.609); at step 2 only EOS is allowed and
    [1, 0] (rank 0) fills the list, so [2, 0] (score (log .15 + log .95) / 2 = -0.974) is dropped
    although it beats [0] (an n-best list with eviction would keep it)."""
    lm = _lm_from_rows([[0.25] * 4, [0.95, 0.03, 0.01, 0.01], [0.95, 0.03, 0.01, 0.01],
                        [0.2, 0.55, 0.15, 0.1]])
    r = _run(lm, (3,), num_beams=2, num_groups=1, diversity_strength=0.0, eos_ids=[0],
             max_new_tokens=2, length_penalty=1.0, convention="fairseq")
    assert [h.tokens.tolist() for h in r.flat] == [[1, 0], [0]]
    assert r.flat[1].score == pytest.approx(np.log(0.2), abs=1e-12)
    assert r.flat[0].score == pytest.approx((np.log(0.55) + np.log(0.95)) / 2, abs=1e-12)


def test_first_step_expands_only_the_first_row():
    """V = 2 and B' = 3: only 2 sequences of length 1 exist per group; no copy of the prompt
    row may add a duplicate (the -1e9 initial score of HF is finite and would)."""
    lm = _lm_from_rows([[0.6, 0.4]] * 2)
    r = _run(lm, num_beams=6, num_groups=2, diversity_strength=0.5, max_new_tokens=1)
    for group in r.groups:
        assert sorted(h.tokens.tolist() for h in group) == [[0], [1]]
        assert all(np.isfinite(h.score) and h.score > -100 for h in group)
    hf = _run(lm, num_beams=6, num_groups=2, diversity_strength=0.5, max_new_tokens=1,
              convention="hf", eos_ids=[], pad_id=0)
    assert any(h.score < -1e8 for h in hf.groups[0])  # HF's documented -1e9 artefact


def test_normaliser_counts_generated_tokens_including_eos():
    """Token 3 is EOS. [1, 3] has L = 2 (EOS counted, prompt not): score (log .5 + log .6) / 2;
    [3] has L = 1: score log .3. An off-by-one (L - 1 or prompt + L) changes both."""
    lm = _lm_from_rows([[0.1, 0.5, 0.1, 0.3], [0.2, 0.1, 0.1, 0.6], [0.3, 0.3, 0.3, 0.1],
                        [0.25] * 4])
    r = _run(lm, num_beams=4, num_groups=2, diversity_strength=0.0, eos_ids=[3],
             length_penalty=1.0, early_stopping=True)
    scores = {tuple(h.tokens.tolist()): h.score for h in r.groups[0]}
    assert scores[(1, 3)] == pytest.approx((np.log(0.5) + np.log(0.6)) / 2, abs=1e-12)
    assert scores[(3,)] == pytest.approx(np.log(0.3), abs=1e-12)
    for h in r.flat:
        assert h.score == pytest.approx(h.aug_score / len(h.tokens), abs=1e-12)


@settings(deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=3), st.integers(1, 2),
       st.integers(2, 3), st.sampled_from(["neutral", "hf", "fairseq", "lua"]), st.booleans())
def test_batch_equals_loop(seeds, Bp, G, conv, eos):
    lm = random_markov_lm(7, 0.4, seeds[0], eos_id=0)
    prompts = [np.array([s % 7, (s // 7) % 7]) for s in seeds]
    kw = dict(num_beams=G * Bp, num_groups=G, diversity_strength=0.7, max_new_tokens=4,
              eos_ids=[0] if eos or conv == "fairseq" else [], convention=conv, pad_id=6)
    batch = diverse_beam_search(lm, prompts, **kw)
    for p, r in zip(prompts, batch):
        (one,) = diverse_beam_search(lm, [p], **kw)
        for x, y in zip(r.groups, one.groups):
            assert_same_hyps(x, y, tol=0)
        assert_same_hyps(r.flat, one.flat, tol=0)


def test_flat_order_group_major_or_interleaved():
    lm = random_markov_lm(8, 0.5, 3)
    kw = dict(num_beams=6, num_groups=3, diversity_strength=0.5, max_new_tokens=3)
    neutral = _run(lm, **kw)
    assert [h.group for h in neutral.flat] == [0, 0, 1, 1, 2, 2]
    fs = _run(lm, eos_ids=[7], convention="fairseq", **kw)
    assert [h.group for h in fs.flat] == [0, 1, 2, 0, 1, 2]
    for k, h in enumerate(fs.flat):
        assert h is fs.groups[k % 3][k // 3]
    best = _run(lm, num_return_sequences=4, **kw).flat
    assert len(best) == 4 and [h.score for h in best] == sorted(
        (h.score for h in neutral.flat), reverse=True)[:4]


@settings(deadline=None)
@given(lm_cases, st.integers(1, 3), st.floats(0, 2))
def test_staggered_equals_lockstep_with_one_beam_per_group(case, G, lam):
    seed, V, _, T = case
    lm = _lm(seed, V, False)
    kw = dict(num_beams=G, num_groups=G, diversity_strength=lam, max_new_tokens=T)
    a, b = _run(lm, **kw), _run(lm, schedule="staggered", **kw)
    for x, y in zip(a.groups, b.groups):
        assert_same_hyps(x, y)


def test_suppress_ids_and_min_new_tokens():
    r = _run(GOLDEN, num_beams=4, num_groups=2, diversity_strength=0.5, suppress_ids=[1],
             eos_ids=[3], min_new_tokens=2)
    for h in r.flat:
        assert 1 not in h.tokens and 3 not in h.tokens[:2]


def test_inputs_are_not_modified():
    table = GOLDEN.table.copy()
    prompt = np.array([0, 1])
    _run(TabularLM(2, table), prompt, num_beams=4, num_groups=2, diversity_strength=0.5)
    np.testing.assert_array_equal(table, GOLDEN.table)
    assert prompt.tolist() == [0, 1]


def test_user_callable_diversity_receives_the_protocol():
    calls = []

    def penalty(group_prefixes, prev_sequences, vocab_size, bonus=0.0):
        calls.append((group_prefixes.shape, prev_sequences.shape, vocab_size))
        return np.bincount(prev_sequences[:, -1], minlength=vocab_size) + bonus

    a = _run(GOLDEN, num_beams=4, num_groups=2, diversity_strength=0.5, diversity=penalty,
             bonus=0.0)
    b = _run(GOLDEN, num_beams=4, num_groups=2, diversity_strength=0.5)
    for x, y in zip(a.groups, b.groups):
        assert_same_hyps(x, y)
    assert calls == [((2, t - 1), (2, t), 4) for t in (1, 2, 3)]


@pytest.mark.parametrize("kw,err,match", [
    (dict(num_beams=4, num_groups=3), ValueError, "multiple of num_groups"),
    (dict(diversity_strength=-1.0), ValueError, "diversity_strength"),
    (dict(diversity_strength=np.array([0.5])), ValueError, "diversity_strength"),
    (dict(diversity="nope"), ValueError, "diversity must be one of"),
    (dict(diversity=3), TypeError, "diversity must be"),
    (dict(schedule="staggered", penalty_source="candidates"), ValueError, "lockstep"),
    (dict(convention="hf", schedule="staggered"), ValueError, "fixes schedule"),
    (dict(convention="fairseq"), ValueError, "exactly one EOS"),
    (dict(accumulate_penalty=1), TypeError, "accumulate_penalty must be a bool"),
    (dict(final_rank="best"), ValueError, "final_rank"),
    (dict(num_return_sequences=5), ValueError, "num_return_sequences"),
    (dict(diversity="embedding"), TypeError, "emb"),
    (dict(eos_ids=[7]), ValueError, "eos_ids"),
])
def test_bad_arguments(kw, err, match):
    args = dict(num_beams=4, num_groups=2, diversity_strength=0.5)
    args.update(kw)
    with pytest.raises(err, match=match):
        _run(GOLDEN, **args)


def test_bad_diversity_output_is_named():
    with pytest.raises(ValueError, match="diversity output must have shape"):
        _run(GOLDEN, num_beams=4, num_groups=2, diversity_strength=0.5,
             diversity=lambda gp, prev, V: np.zeros(V + 1))
