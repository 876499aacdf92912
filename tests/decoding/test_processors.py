"""Logprob processors (refseq/decoding/processors.py): hand-made cases, a brute-force n-gram
oracle, no in-place mutation, argument checks, and Hugging Face's processors as peers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.processors import (
    ban_tokens,
    compose,
    force_eos_at_max,
    min_length,
    no_repeat_ngram,
    unk_penalty,
)
from refseq.testing.strategies import seeds

NEG = -np.inf


def _lp(rows, V, seed=0, dtype=np.float64):
    z = np.random.default_rng(seed).normal(size=(rows, V))
    return (z - np.logaddexp.reduce(z, axis=1, keepdims=True)).astype(dtype)  # (rows, V)


def _expect(lp, banned):
    """``lp`` with the (row, token) pairs of ``banned`` set to -inf (written out by hand)."""
    out = lp.copy()
    for r, v in banned:
        out[r, v] = NEG
    return out


# --- hand-made cases ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_min_length_by_hand(dtype):
    lp = _lp(2, 5, dtype=dtype)
    proc = min_length(2, eos_ids=[4, 1])
    for t in (0, 1):  # fewer than 2 tokens generated: both EOS columns banned
        out = proc(np.zeros((2, t), np.int64), lp)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, _expect(lp, [(0, 1), (0, 4), (1, 1), (1, 4)]))
    for t in (2, 3):
        np.testing.assert_array_equal(proc(np.zeros((2, t), np.int64), lp), lp)
    np.testing.assert_array_equal(min_length(0, 4)(np.zeros((2, 0), np.int64), lp), lp)


def test_no_repeat_ngram_by_hand():
    lp = _lp(2, 5)
    g = np.array([[1, 2, 3, 1, 2], [0, 0, 0, 4, 0]])
    # n = 3: row 0 ends (1, 2) and (1, 2, 3) occurred -> ban 3; row 1 ends (4, 0): (4, 0, x) never
    np.testing.assert_array_equal(no_repeat_ngram(3)(g, lp), _expect(lp, [(0, 3)]))
    # n = 2: row 0 ends 2, bigram (2, 3) -> ban 3; row 1 ends 0: (0, 0), (0, 4) -> ban 0 and 4
    np.testing.assert_array_equal(no_repeat_ngram(2)(g, lp), _expect(lp, [(0, 3), (1, 0), (1, 4)]))
    # n = 1: every token seen is banned
    np.testing.assert_array_equal(no_repeat_ngram(1)(g, lp),
                                  _expect(lp, [(0, 1), (0, 2), (0, 3), (1, 0), (1, 4)]))
    # n = 4: suffix (3, 1, 2) never started a 4-gram; n = 6 > t: nothing to ban
    np.testing.assert_array_equal(no_repeat_ngram(4)(g, lp), lp)
    np.testing.assert_array_equal(no_repeat_ngram(6)(g, lp), lp)
    # the prompt counts only when given: histories [1, 2, 1] (ban 2) and [1, 2, 0] (nothing)
    np.testing.assert_array_equal(no_repeat_ngram(2, prompts=[[1, 2]])(g[:, :1], lp),
                                  _expect(lp, [(0, 2)]))
    np.testing.assert_array_equal(no_repeat_ngram(2)(g[:, :1], lp), lp)


def test_force_eos_at_max_by_hand():
    lp = _lp(3, 4)
    proc = force_eos_at_max(3, eos_id=2)
    for t in (0, 1):
        np.testing.assert_array_equal(proc(np.zeros((3, t), np.int64), lp), lp)
    for t in (2, 5):  # the last step (t = max_new_tokens - 1) and any later one
        out = proc(np.zeros((3, t), np.int64), lp)
        want = np.full_like(lp, NEG)
        want[:, 2] = lp[:, 2]  # EOS keeps its log-prob (no renormalisation)
        np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(force_eos_at_max(1, 0)(np.zeros((3, 0), np.int64), lp)[:, 1:],
                                  NEG)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unk_penalty_and_ban_tokens_by_hand(dtype):
    lp = _lp(2, 4, dtype=dtype)
    lp[1, 3] = NEG
    g = np.array([[0, 1], [2, 2]])
    out = unk_penalty(3, 1.5)(g, lp)
    want = lp.copy()
    want[0, 3] = lp[0, 3] - dtype(1.5)
    assert out.dtype == dtype and out[1, 3] == NEG
    np.testing.assert_array_equal(out, want)
    for t in (0, 2):
        out = ban_tokens([0, 3])(np.zeros((2, t), np.int64), lp)
        np.testing.assert_array_equal(out, _expect(lp, [(0, 0), (0, 3), (1, 0), (1, 3)]))
    np.testing.assert_array_equal(ban_tokens(1)(g, lp), _expect(lp, [(0, 1), (1, 1)]))


def test_compose_applies_in_order():
    lp = _lp(2, 6)
    g = np.array([[1, 2, 1], [3, 3, 3]])
    seen = []

    def spy(generated, logprobs):  # a user processor that records what it receives
        seen.append(logprobs.copy())
        logprobs[:, 0] = 7.0  # mutating its argument must not reach the caller
        return logprobs

    procs = [min_length(5, 5), no_repeat_ngram(2), spy, unk_penalty(4, 2.0)]
    out = compose(*procs)(g, lp)
    step = lp
    for p in procs[:2]:
        step = p(g, step)
    np.testing.assert_array_equal(seen[0], step)  # spy saw the output of the first two
    step = step.copy()
    step[:, 0] = 7.0
    np.testing.assert_array_equal(out, procs[3](g, step))
    assert lp[0, 0] != 7.0 and np.isfinite(lp).all()


# --- brute force --------------------------------------------------------------------------------

def _banned_by_ngram_set(history, n, V):
    """Tokens v such that (last n-1 tokens, v) is one of the n-grams of ``history``."""
    h = [int(x) for x in history]
    grams = {tuple(h[i:i + n]) for i in range(len(h) - n + 1)}
    if len(h) < n - 1:
        return set()
    tail = tuple(h[len(h) - n + 1:]) if n > 1 else ()
    return {v for v in range(V) if tail + (v,) in grams}


@given(seed=seeds(), V=st.integers(1, 5), n=st.integers(1, 4), rows=st.integers(1, 3),
       t=st.integers(0, 9), with_prompts=st.booleans(), dtype=st.sampled_from([np.float32,
                                                                                np.float64]))
def test_no_repeat_ngram_equals_brute_force(seed, V, n, rows, t, with_prompts, dtype):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, V, size=(rows, t))  # small V: many repeats
    lp = _lp(rows, V, seed, dtype)
    prompts = [rng.integers(0, V, size=rng.integers(0, 4))] if with_prompts else None
    kw = {} if prompts is None else {"prompts": prompts}
    out = no_repeat_ngram(n, **kw)(g, lp)
    assert out.dtype == dtype
    for r in range(rows):
        hist = g[r] if prompts is None else np.concatenate([prompts[0], g[r]])
        banned = _banned_by_ngram_set(hist, n, V)
        for v in range(V):
            assert out[r, v] == (NEG if v in banned else lp[r, v]), (r, v, banned)


def test_no_repeat_ngram_prompts_follow_batch_major_rows():
    # 2 batch items x 2 beams: rows 0, 1 use prompts[0], rows 2, 3 prompts[1]
    lp = _lp(4, 4)
    g = np.array([[1], [2], [1], [2]])
    out = no_repeat_ngram(2, prompts=[[1, 3], [2, 0]])(g, lp)
    # histories [1, 3, 1], [1, 3, 2], [2, 0, 1], [2, 0, 2]: ban (1 -> 3) in row 0, (2 -> 0) row 3
    np.testing.assert_array_equal(out, _expect(lp, [(0, 3), (3, 0)]))
    with pytest.raises(ValueError, match="multiple of len\\(prompts\\)"):
        no_repeat_ngram(2, prompts=[[1], [2], [3]])(g, lp)


# --- no in-place mutation, argument checks ------------------------------------------------------

ALL = [min_length(5, [0]), no_repeat_ngram(1), force_eos_at_max(2, 0), unk_penalty(1, 0.5),
       ban_tokens([2]), compose(ban_tokens(1), no_repeat_ngram(2))]


@pytest.mark.parametrize("proc", ALL, ids=repr)
def test_inputs_are_not_modified(proc):
    g = np.array([[0, 1, 0, 1], [2, 2, 2, 2]])
    lp = _lp(2, 4)
    g0, lp0 = g.copy(), lp.copy()
    out = proc(g, lp)
    assert out is not lp and not np.shares_memory(out, lp)
    np.testing.assert_array_equal(lp, lp0)
    np.testing.assert_array_equal(g, g0)
    assert not np.array_equal(out, lp)  # every processor here changes something


@pytest.mark.parametrize("make,kw,err,match", [
    (min_length, dict(min_new_tokens=-1, eos_ids=0), ValueError, "min_new_tokens"),
    (min_length, dict(min_new_tokens=1.0, eos_ids=0), TypeError, "min_new_tokens"),
    (min_length, dict(min_new_tokens=1, eos_ids=[]), ValueError, "eos_ids"),
    (min_length, dict(min_new_tokens=1, eos_ids=[-1]), ValueError, "eos_ids"),
    (min_length, dict(min_new_tokens=1, eos_ids=1.5), TypeError, "eos_ids"),
    (min_length, dict(min_new_tokens=1, eos_ids=True), TypeError, "eos_ids"),
    (no_repeat_ngram, dict(n=0), ValueError, "n must"),
    (no_repeat_ngram, dict(n="2"), TypeError, "n must"),
    (no_repeat_ngram, dict(n=2, prompts=[]), ValueError, "prompts"),
    (no_repeat_ngram, dict(n=2, prompts=[[0.5]]), ValueError, "prompts"),
    (force_eos_at_max, dict(max_new_tokens=0, eos_id=0), ValueError, "max_new_tokens"),
    (force_eos_at_max, dict(max_new_tokens=2, eos_id=-1), ValueError, "eos_id"),
    (unk_penalty, dict(unk_id=0, penalty=np.nan), ValueError, "penalty"),
    (unk_penalty, dict(unk_id=0, penalty="1"), TypeError, "penalty"),
    (unk_penalty, dict(unk_id=None, penalty=1.0), TypeError, "unk_id"),
    (ban_tokens, dict(ids=np.array([[1]])), ValueError, "ids"),
    (ban_tokens, dict(ids="1"), TypeError, "ids"),
    (compose, dict(), ValueError, "at least one"),
])
def test_bad_construction_arguments_are_named(make, kw, err, match):
    with pytest.raises(err, match=match):
        make(**kw)


def test_compose_rejects_non_callables_and_bad_outputs():
    with pytest.raises(TypeError, match="processors\\[1\\]"):
        compose(ban_tokens(0), 3)
    with pytest.raises(ValueError, match="processors\\[0\\] returned"):
        compose(lambda g, lp: lp[:, :-1])(np.zeros((2, 0), np.int64), _lp(2, 4))


@pytest.mark.parametrize("proc", ALL, ids=repr)
@pytest.mark.parametrize("g,lp,err,match", [
    (np.zeros((2, 1)), _lp(2, 4), TypeError, "generated"),  # float tokens
    (np.zeros(2, int), _lp(2, 4), ValueError, "generated"),  # 1-d
    (np.zeros((3, 1), int), _lp(2, 4), ValueError, "generated"),  # rows differ
    (np.full((2, 1), 4), _lp(2, 4), ValueError, "generated"),  # id >= V
    (np.full((2, 1), -1), _lp(2, 4), ValueError, "generated"),
    (np.zeros((2, 1), int), _lp(2, 4)[0], ValueError, "logprobs"),  # 1-d
    (np.zeros((2, 1), int), np.zeros((2, 4), int), TypeError, "logprobs"),
    (np.zeros((2, 1), int), np.zeros((2, 0)), ValueError, "logprobs"),  # V = 0
    (np.zeros((2, 1), int), np.full((2, 4), np.nan), ValueError, "logprobs"),
])
def test_bad_call_arguments_are_named(proc, g, lp, err, match):
    with pytest.raises(err, match=match):
        proc(g, lp)


@pytest.mark.parametrize("proc,name", [(min_length(1, [0, 5]), "eos_ids"),
                                       (force_eos_at_max(1, 5), "eos_id"),
                                       (unk_penalty(5, 1.0), "unk_id"), (ban_tokens(5), "ids"),
                                       (no_repeat_ngram(2, prompts=[[5]]), "prompts")])
def test_ids_outside_the_vocabulary_are_named_at_call_time(proc, name):
    with pytest.raises(ValueError, match=name):
        proc(np.zeros((2, 1), np.int64), _lp(2, 4))


# --- peers: Hugging Face logits processors ------------------------------------------------------

@given(seed=seeds(), V=st.integers(2, 6), n=st.integers(1, 4), rows=st.integers(1, 3),
       t=st.integers(0, 8), P=st.integers(0, 3), m=st.integers(0, 6))
def test_hf_peer_no_repeat_ngram_and_min_new_tokens(seed, V, n, rows, t, P, m):
    torch = pytest.importorskip("torch")
    lp_mod = pytest.importorskip("transformers.generation.logits_process")
    rng = np.random.default_rng(seed)
    g = rng.integers(0, V, size=(rows, t))
    lp = _lp(rows, V, seed, np.float32)
    # generated tokens only: HF input_ids = generated, prompt_length_to_skip = 0
    ids_t, lp_t = torch.from_numpy(g), torch.from_numpy(lp.copy())
    hf = lp_mod.NoRepeatNGramLogitsProcessor(n)(ids_t, lp_t.clone()).numpy()
    np.testing.assert_array_equal(no_repeat_ngram(n)(g, lp), hf)
    hf = lp_mod.MinNewTokensLengthLogitsProcessor(0, m, [V - 1, 0])(ids_t, lp_t.clone()).numpy()
    np.testing.assert_array_equal(min_length(m, [V - 1, 0])(g, lp), hf)
    # with a prompt (HF sees prompt + generated; refseq gets prompts=), one prompt per row
    prompts = rng.integers(0, V, size=(rows, P))
    full = torch.from_numpy(np.concatenate([prompts, g], axis=1))
    hf = lp_mod.NoRepeatNGramLogitsProcessor(n)(full, lp_t.clone()).numpy()
    np.testing.assert_array_equal(no_repeat_ngram(n, prompts=list(prompts))(g, lp), hf)
    hf = lp_mod.MinNewTokensLengthLogitsProcessor(P, m, V - 1)(full, lp_t.clone()).numpy()
    np.testing.assert_array_equal(min_length(m, V - 1)(g, lp), hf)
