"""Part B: hidden-state optimisation (making-the-most properties 6-10) on a tiny transformer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.interfaces import log_softmax
from refseq.models.tiny_transformer import TinyConfig, forward, init_params
from refseq.papers.making_the_most.hso import hso_evaluate, segment_nll_and_grad

CFG = TinyConfig(vocab_size=7, d_model=8, n_layers=2, n_heads=2, max_positions=40)
PARAMS = init_params(CFG, 0)
targets = st.sampled_from(["kv", "hidden"])
fast = settings(deadline=None, max_examples=8)


def _tokens(seed, n):
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, n)


def _masked_full_nll(tokens, s, c):
    """One full forward where token j attends to max(0, a_j - c) .. j (a_j: its segment start)."""
    n = len(tokens)
    a = (np.arange(n) // s) * s  # (n,)
    k = np.arange(n)
    allow = (k[None, :] <= k[:, None]) & (k[None, :] >= np.maximum(0, a - c)[:, None])  # (n, n)
    logits, _, _ = forward(PARAMS, tokens=tokens, allow_mask=allow)
    lp = log_softmax(logits[:-1])  # (n-1, V)
    return np.concatenate([[np.nan], -lp[np.arange(n - 1), tokens[1:]]])


@fast
@given(st.integers(0, 10**6), st.integers(2, 25), st.integers(1, 6), st.integers(1, 9), targets)
def test_baseline_cached_evaluation_equals_a_masked_full_forward(seed, n, s, c, target):
    """Properties 6 and 10: lr = 0 is the cached evaluation, which is one masked forward."""
    tok = _tokens(seed, n)
    got = hso_evaluate(PARAMS, tok, segment=s, cache_len=c, lr=0.0, target=target)
    np.testing.assert_allclose(got.nll_per_token, _masked_full_nll(tok, s, c), atol=1e-10)
    assert np.all(got.update_norms == 0)


@fast
@given(st.integers(0, 10**6), st.integers(2, 8), targets)
def test_a_single_segment_is_the_baseline(seed, n, target):
    tok = _tokens(seed, n)
    got = hso_evaluate(PARAMS, tok, segment=8, cache_len=4, lr=0.1, target=target)
    np.testing.assert_allclose(got.nll_per_token, _masked_full_nll(tok, 8, 4), atol=1e-12)


@fast
@given(st.integers(0, 10**6), st.integers(1, 3), targets, st.booleans())
def test_no_leakage_from_later_segments(seed, i, target, recompute):
    """Property 7: nll of the targets scored in segments <= i ignores every later token."""
    s, n = 4, 20
    tok = _tokens(seed, n)
    other = tok.copy()
    cut = (i + 1) * s + 1  # tokens 0 .. i s + s are inputs or targets of segments <= i
    other[cut:] = (other[cut:] + 1) % CFG.vocab_size
    kw = dict(segment=s, cache_len=6, lr=0.05, target=target, recompute_after_update=recompute)
    a, b = hso_evaluate(PARAMS, tok, **kw), hso_evaluate(PARAMS, other, **kw)
    np.testing.assert_array_equal(a.nll_per_token[:cut], b.nll_per_token[:cut])
    assert not np.allclose(a.nll_per_token[cut:], b.nll_per_token[cut:])


@fast
@given(st.integers(0, 10**6), targets)
def test_cache_gradient_matches_finite_differences(seed, target):
    """Property 8: directional derivative with a random direction (float64, eps 1e-6)."""
    rng = np.random.default_rng(seed)
    tok = _tokens(seed, 9)
    _, h, kv = forward(PARAMS, tokens=tok[:5])
    cache = kv if target == "kv" else np.stack(h[:-1])  # (L,2,H,5,Dh) or (L,5,D)
    cpos = np.arange(5)
    args = (tok[5:8], tok[6:9], np.arange(5, 8))
    _, g, _ = segment_nll_and_grad(PARAMS, *args[:2], args[2], cache, cpos, target)
    d = rng.standard_normal(cache.shape)

    def f(x):
        return segment_nll_and_grad(PARAMS, *args[:2], args[2], x, cpos, target)[0].sum()

    fd = (f(cache + 1e-6 * d) - f(cache - 1e-6 * d)) / 2e-6
    np.testing.assert_allclose(np.sum(g * d), fd, rtol=1e-5, atol=1e-9)


def _hso_by_token(tokens, s, c, lr, b1, b2, eps, steps, target):
    """HSO with the cache and Adam moments keyed by absolute token index (dicts)."""
    n = len(tokens)
    slot = {}  # j -> state of token j (per layer, ...)
    m, v, t = {}, {}, {}
    ax = -2 if target == "kv" else 1
    nll = np.full(n, np.nan)
    for a in range(0, n - 1, s):
        live = sorted(slot)[-c:] if slot else []
        seg, tg, pos = tokens[a:a + s], tokens[a + 1:a + s + 1], np.arange(a, min(a + s, n))

        def grad_at(cache_slots, live=live, seg=seg, tg=tg, pos=pos):
            empty = ((CFG.n_layers, 2, CFG.n_heads, 0, CFG.d_head) if target == "kv"
                     else (CFG.n_layers, 0, CFG.d_model))
            cache = (np.stack([cache_slots[j] for j in live], axis=ax) if live
                     else np.zeros(empty))
            return segment_nll_and_grad(PARAMS, seg, tg, pos, cache, np.array(live, int), target)
        out, g, new = grad_at(slot)
        nll[a + 1:a + 1 + len(tg)] = out
        for k in range(steps if live else 0):
            if k:
                g = grad_at(slot)[1]
            g = g / len(tg)
            for q, j in enumerate(live):
                gq = np.take(g, q, axis=ax)
                t[j] = t.get(j, 0) + 1
                m[j] = b1 * m.get(j, 0) + (1 - b1) * gq
                v[j] = b2 * v.get(j, 0) + (1 - b2) * gq * gq
                slot[j] = slot[j] - lr * (m[j] / (1 - b1 ** t[j])) / (
                    np.sqrt(v[j] / (1 - b2 ** t[j])) + eps)
        for q, j in enumerate(pos):
            slot[j] = np.take(new, q, axis=ax)
    return nll


@fast
@given(st.integers(0, 10**6), st.integers(1, 5), st.integers(1, 9), st.integers(1, 2), targets)
def test_adam_state_moves_with_its_token(seed, s, c, steps, target):
    """Property 9: slot-aligned Adam bookkeeping == moments keyed by absolute token index."""
    tok = _tokens(seed, 16)
    got = hso_evaluate(PARAMS, tok, segment=s, cache_len=c, lr=0.05, steps=steps, target=target)
    want = _hso_by_token(tok, s, c, 0.05, 0.9, 0.999, 1e-8, steps, target)
    np.testing.assert_allclose(got.nll_per_token, want, atol=1e-10)


def test_hso_changes_the_scores_and_reports_the_baseline():
    tok = _tokens(1, 30)
    r = hso_evaluate(PARAMS, tok, segment=5, cache_len=8, lr=0.05, baseline=True)
    np.testing.assert_allclose(r.nll_baseline, _masked_full_nll(tok, 5, 8), atol=1e-10)
    assert not np.allclose(r.nll_per_token[7:], r.nll_baseline[7:])
    assert r.update_norms[0] == 0 and np.all(r.update_norms[1:] > 0)


@pytest.mark.parametrize("kwargs, exc", [
    (dict(segment=0), ValueError), (dict(cache_len=0), ValueError), (dict(lr=-1.0), ValueError),
    (dict(target="weights"), ValueError), (dict(grad_scale="max"), ValueError),
    (dict(recompute_after_update=1), TypeError), (dict(tokens=np.zeros(1, int)), ValueError),
    (dict(tokens=np.full(5, 9)), ValueError), (dict(tokens=np.zeros(3)), TypeError),
])
def test_bad_arguments(kwargs, exc):
    args = dict(tokens=_tokens(0, 10), segment=3, cache_len=4, lr=0.1) | kwargs
    with pytest.raises(exc):
        hso_evaluate(PARAMS, **args)
