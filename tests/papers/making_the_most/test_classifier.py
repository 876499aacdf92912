"""The learned prefix classifier (reconstructed, FUDGE-style) and its use as ACBS's attribute."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.models.tiny_transformer import TinyConfig, TransformerLM, forward, init_params
from refseq.models.toy_lm import sample_sequences
from refseq.papers.making_the_most.classifier import (
    PrefixClassifier,
    fit_prefix_classifier,
    prefix_features,
)
from refseq.papers.making_the_most.conditional import conditional_beam_search

scipy_optimize = pytest.importorskip("scipy.optimize")

CFG = TinyConfig(vocab_size=6, d_model=8, n_layers=2, n_heads=2, max_positions=16)
PARAMS = init_params(CFG, 1)
fast = settings(deadline=None, max_examples=8)


def _by_hand_features(prompt, prefix):
    """One unbatched forward of ``prompt + prefix``; LN_f written out at the last position."""
    _, hidden, _ = forward(PARAMS, tokens=np.concatenate([prompt, prefix]).astype(int))
    h = hidden[-1][-1]
    mu, var = h.mean(), h.var()
    return (h - mu) / np.sqrt(var + CFG.ln_eps) * PARAMS.lnf_gamma + PARAMS.lnf_beta


@fast
@given(st.integers(0, 10**6), st.integers(0, 3), st.integers(1, 5), st.integers(1, 4))
def test_scores_are_log_sigmoid_of_the_final_normed_state(seed, P, t, R):
    rng = np.random.default_rng(seed)
    prompt, prefixes = rng.integers(0, 6, P), rng.integers(0, 6, (R, t))
    w, b = rng.standard_normal(8), float(rng.standard_normal())
    clf = PrefixClassifier(PARAMS, w, b, prompt=prompt)
    want = np.array([-np.log1p(np.exp(-(w @ _by_hand_features(prompt, p) + b)))
                     for p in prefixes])
    np.testing.assert_allclose(clf(prefixes), want, atol=1e-12)


def _objective_by_hand(theta, feats, labels, l2):
    """Mean BCE over every (sequence, prefix) pair + l2/2 |w|^2, features one prefix at a time."""
    w, b = theta[:-1], theta[-1]
    z = np.array([w @ f + b for f in feats])
    p = 1 / (1 + np.exp(-z))
    return -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)) + 0.5 * l2 * w @ w


@fast
@given(st.integers(0, 10**6), st.sampled_from([None, 5]))
def test_fit_equals_a_generic_minimiser_of_the_fudge_objective(seed, eos):
    rng = np.random.default_rng(seed)
    seqs, prompt = rng.integers(0, 6, (6, 4)), np.array([2])
    labels = np.arange(6) % 2 == 0
    feats, labs = [], []
    for y, a in zip(seqs, labels):
        end = len(y) if eos is None or eos not in y else list(y).index(eos) + 1
        for t in range(1, end + 1):  # every prefix through the first EOS, labelled a
            feats.append(_by_hand_features(prompt, y[:t]))
            labs.append(float(a))
    ref = scipy_optimize.minimize(_objective_by_hand, np.zeros(9),
                                  args=(feats, np.array(labs), 0.1), method="BFGS",
                                  options={"gtol": 1e-11})
    clf = fit_prefix_classifier(PARAMS, seqs, labels, prompt=prompt, eos_id=eos, l2=0.1)
    np.testing.assert_allclose(np.append(clf.weights, clf.bias), ref.x, atol=1e-5)
    F, row = prefix_features(PARAMS, seqs, prompt=prompt, eos_id=eos)
    assert len(F) == len(feats) and np.array_equal(labels[row], np.array(labs) == 1)


def test_any_labelling_of_single_token_prefixes_is_learned():
    """The V = 6 one-token prefixes give 6 generic points in the 7-dim image of LN_f, so any
    labelling is linearly separable; with a small ridge the fit classifies all of them."""
    seqs = np.arange(6)[:, None]  # (6, 1)
    for labels in (np.array([1, 0, 1, 0, 0, 1], bool), np.arange(6) < 2):
        clf = fit_prefix_classifier(PARAMS, seqs, labels, l2=1e-6)
        assert np.array_equal(clf.logits(seqs) > 0, labels)


def test_a_zero_classifier_shifts_acbs_scores_by_log_half():
    lm = TransformerLM(PARAMS)
    kw = dict(num_beams=3, k_pre=6, max_new_tokens=4, eos_ids=5)
    plain = conditional_beam_search(lm, [1], lambda p: np.zeros(len(p)), **kw)
    half = conditional_beam_search(lm, [1], PrefixClassifier(PARAMS, prompt=[1]), **kw)
    assert [h.tokens.tolist() for h in half] == [h.tokens.tolist() for h in plain]
    np.testing.assert_allclose([h.score for h in half], [h.score + np.log(0.5) for h in plain],
                               atol=1e-12)


def test_a_fitted_classifier_guides_acbs_with_one_attribute_term():
    """FUDGE pipeline on the model's own samples (attribute: the output ends within 3 tokens);
    every returned score is ``log p(y | x) + log P_phi(a | x, y)`` (spec property 15)."""
    lm = TransformerLM(PARAMS)
    seqs = sample_sequences(lm, 60, 6, 0, prompts=[[1]] * 60, eos_id=5)  # (60, 6)
    labels = (seqs[:, :3] == 5).any(axis=1)
    clf = fit_prefix_classifier(PARAMS, seqs, labels, prompt=[1], eos_id=5)
    hyps = conditional_beam_search(lm, [1], clf, num_beams=3, k_pre=6, max_new_tokens=5,
                                   eos_ids=5)
    assert hyps
    for h in hyps:
        np.testing.assert_allclose(h.score, h.sum_logprob + clf(h.tokens[None])[0], atol=1e-12)


@pytest.mark.parametrize("kwargs, exc", [
    (dict(labels=np.ones(4, bool)), ValueError), (dict(labels=np.ones(4)), TypeError),
    (dict(labels=np.ones(3, bool)), ValueError), (dict(l2=0.0), ValueError),
    (dict(sequences=np.full((4, 2), 6)), ValueError), (dict(sequences=np.zeros((4, 2))), TypeError),
    (dict(eos_id=6), ValueError), (dict(max_iter=0), ValueError),
])
def test_bad_fit_arguments(kwargs, exc):
    args = dict(sequences=np.arange(8).reshape(4, 2) % 6, labels=np.array([1, 0, 1, 0], bool))
    with pytest.raises(exc):
        fit_prefix_classifier(PARAMS, **(args | kwargs))


@pytest.mark.parametrize("make, exc", [
    (lambda: PrefixClassifier(PARAMS, np.zeros(7)), ValueError),
    (lambda: PrefixClassifier(PARAMS, np.full(8, np.nan)), ValueError),
    (lambda: PrefixClassifier(PARAMS, bias=np.nan), ValueError),
    (lambda: PrefixClassifier(PARAMS, prompt=[6]), ValueError),
    (lambda: PrefixClassifier(PARAMS)(np.zeros((2, 0), int)), ValueError),
    (lambda: PrefixClassifier(PARAMS)(np.array([1, 2])), ValueError),
    (lambda: PrefixClassifier(PARAMS)(np.zeros((1, 2))), TypeError),
])
def test_bad_classifier_arguments(make, exc):
    with pytest.raises(exc):
        make()
