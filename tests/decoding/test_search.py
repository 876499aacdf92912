"""Greedy decoding and ancestral sampling: brute-force arg-max chains, finished rows, batching,
exact sampling distributions on a tiny model (search-decoding properties 2, 5, 7, 8, 15)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding import PrefixLM
from refseq.decoding.search import greedy, sample_decode
from refseq.models.toy_lm import random_markov_lm


def _lm(V, seed, eos=None, alpha=1.0):
    return random_markov_lm(V, alpha, seed=seed, eos_id=eos)


def _argmax_chain(lm, prompt, T, eos):
    """Greedy written from its definition on the exact table, one prefix at a time."""
    prefix, out = list(prompt), []
    for _ in range(T):
        lp = lm.logprobs([np.array(prefix, np.int64)])[0]
        v = int(np.flatnonzero(lp == lp.max())[0])  # lowest id among ties
        out.append(v)
        prefix.append(v)
        if v == eos:
            break
    return out


@given(V=st.integers(2, 9), seed=st.integers(0, 10_000), with_eos=st.booleans(),
       T=st.integers(0, 8))
def test_greedy_is_the_arg_max_chain(V, seed, with_eos, T):
    eos = 0 if with_eos else None
    lm = _lm(V, seed, eos=eos, alpha=0.5)
    prompts = [np.array([1 % V]), np.array([1 % V, (V - 1)]), np.array([V - 1] * 3)]
    g = greedy(lm, prompts, T, eos_id=eos, pad_id=V - 1)
    assert g.tokens.dtype == np.int64 and g.tokens.shape[0] == 3
    for i, p in enumerate(prompts):
        chain = _argmax_chain(lm, p, T, eos)
        L = len(chain)
        assert g.lengths[i] == L and g.tokens[i, :L].tolist() == chain
        assert (g.tokens[i, L:] == V - 1).all() and (g.logprobs[i, L:] == 0).all()
        assert g.finished[i] == (with_eos and L > 0 and chain[-1] == eos)
        exact = lm.sequence_logprob(chain, prompt=p)
        np.testing.assert_allclose(g.logprobs[i].sum(), exact, rtol=1e-12, atol=1e-12)


def test_greedy_ties_go_to_the_lowest_id_and_pad_defaults_to_eos():
    V = 5

    def fn(prefixes):  # tokens 2 and 3 tie for the maximum; EOS 4 after two tokens
        rows = []
        for p in prefixes:
            z = np.array([0.0, 0.0, 1.0, 1.0, -5.0]) if len(p) < 3 else np.eye(V)[4] * 9
            rows.append(z)
        return np.stack(rows)

    g = greedy(PrefixLM(fn, V), [np.array([0]), np.array([0, 1, 2])], 4, eos_id=4)
    assert g.tokens.tolist() == [[2, 2, 4], [4, 4, 4]]
    assert g.lengths.tolist() == [3, 1] and g.finished.tolist() == [True, True]


def test_min_new_tokens_and_a_processor_apply_before_the_choice():
    lm = _lm(6, 3, eos=0, alpha=1.0)
    big_eos = lm.table.copy()
    big_eos[:, 0] += 5  # EOS dominates every row
    from refseq.decoding.interfaces import log_softmax
    from refseq.models.toy_lm import TabularLM

    lm2 = TabularLM(2, log_softmax(big_eos), eos_id=0)
    assert greedy(lm2, [np.array([1])], 5, eos_id=0).lengths.tolist() == [1]
    g = greedy(lm2, [np.array([1])], 5, eos_id=0, min_new_tokens=3)
    assert g.lengths.tolist() == [4] and g.tokens[0, 3] == 0 and (g.tokens[0, :3] != 0).all()
    seen = []

    def ban_two(generated, lp):
        seen.append(generated.shape)
        out = lp.copy()
        out[:, 2] = -np.inf
        return out

    g = greedy(lm, [np.array([1]), np.array([2])], 4, eos_id=0, logprob_processor=ban_two)
    assert 2 not in g.tokens.tolist()
    assert seen[0] == (2, 0) and all(s[1] == t for t, s in enumerate(seen))


@given(seed=st.integers(0, 10_000))
def test_finished_rows_leave_the_batch_and_batched_equals_looped(seed):
    lm = _lm(6, seed, eos=0, alpha=0.4)
    prompts = [np.array([1]), np.array([2, 3]), np.array([4, 5, 1]), np.array([3])]
    g = greedy(lm, prompts, 7, eos_id=0)
    for i, p in enumerate(prompts):
        one = greedy(lm, [p], 7, eos_id=0)
        L = one.lengths[0]
        assert g.lengths[i] == L and g.tokens[i, :L].tolist() == one.tokens[0, :L].tolist()
        np.testing.assert_array_equal(g.logprobs[i, :L], one.logprobs[0, :L])


# --- sampling ----------------------------------------------------------------------------------


def _exact_distribution(lm, prompt, T, **warp):
    """P(y_1..y_T) under the warped step distributions, by enumeration."""
    from refseq.decoding.sampling import warped_probs

    V = lm.vocab_size
    dist = {}
    for seq in itertools.product(range(V), repeat=T):
        p, prefix = 1.0, list(prompt)
        for v in seq:
            q = warped_probs(lm.logprobs([np.array(prefix, np.int64)]), **warp)[0]
            p *= q[v]
            prefix.append(v)
        dist[seq] = p
    return dist


@pytest.mark.parametrize("warp", [{}, {"temperature": 0.7}, {"top_k": 2},
                                  {"top_p": 0.6, "temperature": 1.3}])
def test_sampling_on_a_grid_of_uniforms_reproduces_the_warped_distribution(warp):
    """Two steps, V = 3: feeding u = (i + 0.5) / M at step 1 and a second grid at step 2 (as a
    product grid) gives every sequence M^2 p(seq) draws within 2M + 1: the first uniform hits
    its token's interval p1 M +- 1 times, and on each such grid line the second hits its interval
    p2 M +- 1 times, so the count is (p1 M +- 1)(p2 M +- 1) = p1 p2 M^2 +- (p1 M + p2 M + 1)."""
    lm = _lm(3, 5, alpha=1.0)
    M = 200
    grid = (np.arange(M) + 0.5) / M
    u = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)  # (M^2, 2)
    out = sample_decode(lm, [np.array([1])] * len(u), 2, uniforms=u, **warp)
    counts = {}
    for row in out.tokens:
        counts[tuple(row.tolist())] = counts.get(tuple(row.tolist()), 0) + 1
    for seq, p in _exact_distribution(lm, [1], 2, **warp).items():
        assert abs(counts.get(seq, 0) - p * M * M) <= 2 * M + 1, (seq, p)
        if p == 0:
            assert seq not in counts


def test_sampling_records_model_and_warped_logprobs():
    from refseq.decoding.sampling import warp as warp_fn

    lm = _lm(5, 7, eos=0, alpha=1.0)
    out = sample_decode(lm, [np.array([1]), np.array([2])], 4, rng=0, eos_id=0, top_k=2)
    for i, p in enumerate([1, 2]):
        L = out.lengths[i]
        seq = out.tokens[i, :L]
        np.testing.assert_allclose(out.logprobs[i, :L].sum(), lm.sequence_logprob(seq, [p]),
                                   rtol=1e-12)
        for t in range(L):
            prefix = np.concatenate([[p], seq[:t]]).astype(np.int64)
            z = warp_fn(lm.logprobs([prefix]), top_k=2)[0]
            lq = z - np.logaddexp.reduce(z[np.isfinite(z)])
            np.testing.assert_allclose(out.warped_logprobs[i, t], lq[seq[t]], rtol=1e-12)


def test_the_same_rng_seed_gives_the_same_samples_and_bad_uniforms_fail():
    lm = _lm(5, 7, alpha=1.0)
    a = sample_decode(lm, [np.array([1])] * 3, 5, rng=42)
    b = sample_decode(lm, [np.array([1])] * 3, 5, rng=42)
    assert np.array_equal(a.tokens, b.tokens)
    with pytest.raises(ValueError, match="uniforms"):
        sample_decode(lm, [np.array([1])], 2, uniforms=np.ones((1, 2)))
    with pytest.raises(ValueError, match="uniforms"):
        sample_decode(lm, [np.array([1])], 2, uniforms=np.zeros((2, 2)))


@pytest.mark.parametrize("kw, match", [
    (dict(max_new_tokens=-1), "max_new_tokens"), (dict(eos_id=7), "eos_id"),
    (dict(pad_id=5), "pad_id"), (dict(min_new_tokens=-1), "min_new_tokens"),
    (dict(logprob_processor="x"), "logprob_processor"), (dict(compute_dtype="int64"),
                                                          "compute_dtype"),
])
def test_greedy_bad_arguments(kw, match):
    args = dict(max_new_tokens=3)
    args.update(kw)
    with pytest.raises((TypeError, ValueError), match=match):
        greedy(_lm(5, 0), [np.array([1])], **args)
    with pytest.raises((TypeError, ValueError)):
        greedy(object(), [np.array([1])], 3)
    with pytest.raises(ValueError, match="prompts"):
        greedy(_lm(5, 0), [], 3)
