"""HSO for few-shot scoring (``hso_fewshot_scores``): the demonstrations' states optimised on
their own LM loss, label words scored after the query."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.interfaces import log_softmax
from refseq.models.tiny_transformer import TinyConfig, forward, init_params, kv_from_hidden
from refseq.papers.making_the_most.fewshot import (
    demo_cache,
    demo_nll_and_grad,
    hso_fewshot_scores,
)
from refseq.train.adam import Adam

CFG = TinyConfig(vocab_size=9, d_model=8, n_layers=2, n_heads=2, max_positions=30)
PARAMS = init_params(CFG, 3)
targets = st.sampled_from(["kv", "hidden"])
fast = settings(deadline=None, max_examples=8)


def _case(seed, n, n_q):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, CFG.vocab_size, n), rng.integers(0, CFG.vocab_size, n_q),
            rng.permutation(CFG.vocab_size)[:3])


@fast
@given(st.integers(0, 10**6), st.integers(2, 12), st.integers(1, 5), targets,
       st.sampled_from([(0, 0.1), (3, 0.0)]))
def test_without_optimisation_the_scores_are_the_plain_forward(seed, n, n_q, target, steps_lr):
    d, q, labels = _case(seed, n, n_q)
    steps, lr = steps_lr
    got = hso_fewshot_scores(PARAMS, d, q, labels, steps=steps, lr=lr, target=target)
    logits, _, _ = forward(PARAMS, tokens=np.concatenate([d, q]))  # (n + n_q, V)
    np.testing.assert_allclose(got, log_softmax(logits[-1])[labels], atol=1e-12)


@fast
@given(st.integers(0, 10**6), st.integers(2, 12), targets)
def test_demo_loss_at_the_initial_cache_is_the_ordinary_loss(seed, n, target):
    """Reading every demonstration key/value from C_0 changes nothing; the last slot, which no
    demonstration input reads, gets no gradient."""
    d, _, _ = _case(seed, n, 1)
    C = demo_cache(PARAMS, d, target)
    nll, g = demo_nll_and_grad(PARAMS, d, C, target)
    logits, _, _ = forward(PARAMS, tokens=d)
    want = -log_softmax(logits[:-1])[np.arange(n - 1), d[1:]].sum()
    np.testing.assert_allclose(nll, want, rtol=1e-12)
    ax = -2 if target == "kv" else 1
    assert np.all(np.take(g, -1, axis=ax) == 0) and np.abs(g).max() > 0


@fast
@given(st.integers(0, 10**6), st.integers(2, 10), targets)
def test_demo_gradient_matches_finite_differences(seed, n, target):
    d, _, _ = _case(seed, n, 1)
    C = demo_cache(PARAMS, d, target)
    _, g = demo_nll_and_grad(PARAMS, d, C, target)
    u = np.random.default_rng(seed + 1).standard_normal(C.shape)

    def f(x):
        return demo_nll_and_grad(PARAMS, d, x, target)[0]

    fd = (f(C + 1e-6 * u) - f(C - 1e-6 * u)) / 2e-6
    np.testing.assert_allclose(np.sum(g * u), fd, rtol=1e-5, atol=1e-9)


@fast
@given(st.integers(0, 10**6), st.integers(2, 10), st.integers(1, 4), st.integers(1, 4), targets)
def test_scores_equal_refseq_train_adam_on_the_whole_cache(seed, n, n_q, steps, target):
    """A second formulation: ``refseq.train.Adam`` (PyTorch's form of the update) on the cache
    as one parameter, then a cached forward of the query."""
    d, q, labels = _case(seed, n, n_q)
    got = hso_fewshot_scores(PARAMS, d, q, labels, steps=steps, lr=0.05, target=target)
    p = {"C": demo_cache(PARAMS, d, target).copy()}
    opt = Adam(lr=0.05)
    for _ in range(steps):
        opt.step(p, {"C": demo_nll_and_grad(PARAMS, d, p["C"], target)[1] / (n - 1)})
    past = p["C"] if target == "kv" else kv_from_hidden(PARAMS, p["C"])
    logits, _, _ = forward(PARAMS, tokens=q, positions=n + np.arange(n_q), past_kv=past)
    want = log_softmax(logits[-1])[labels]
    np.testing.assert_allclose(got, want, atol=1e-10)
    plain = hso_fewshot_scores(PARAMS, d, q, labels, steps=0, lr=0.05, target=target)
    assert not np.allclose(got, plain, atol=1e-6)


def test_one_step_moves_every_read_slot_by_about_lr():
    """Hand derivation: after one Adam step ``m / (1 - b1) = G`` and ``v / (1 - b2) = G^2``, so
    each coordinate moves by ``lr G / (|G| + eps)``: about ``lr`` wherever ``G != 0``."""
    d, q, labels = _case(0, 8, 2)
    C0 = demo_cache(PARAMS, d, "kv")
    _, g = demo_nll_and_grad(PARAMS, d, C0, "kv")
    C1 = C0 - 0.01 * g / (np.abs(g) + 1e-8)
    logits, _, _ = forward(PARAMS, tokens=q, positions=8 + np.arange(2), past_kv=C1)
    got = hso_fewshot_scores(PARAMS, d, q, labels, steps=1, lr=0.01, grad_scale="sum")
    np.testing.assert_allclose(got, log_softmax(logits[-1])[labels], atol=1e-12)


@pytest.mark.parametrize("kwargs, exc", [
    (dict(demo_tokens=np.array([1])), ValueError),
    (dict(query_tokens=np.zeros(0, int)), ValueError),
    (dict(label_token_ids=np.zeros(0, int)), ValueError),
    (dict(label_token_ids=np.array([9])), ValueError), (dict(demo_tokens=np.zeros(3)), TypeError),
    (dict(query_tokens=np.zeros(25, int)), ValueError), (dict(steps=-1), ValueError),
    (dict(steps=1.5), TypeError), (dict(lr=-0.1), ValueError), (dict(target="w"), ValueError),
    (dict(grad_scale="max"), ValueError), (dict(betas=(0.9, 1.0)), ValueError),
])
def test_bad_arguments(kwargs, exc):
    args = dict(demo_tokens=np.arange(6), query_tokens=np.array([1, 2]),
                label_token_ids=np.array([3, 4]), steps=1, lr=0.1) | kwargs
    with pytest.raises(exc):
        hso_fewshot_scores(PARAMS, **args)
