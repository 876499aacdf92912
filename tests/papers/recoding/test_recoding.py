"""Recoding (arXiv 2101.00674; properties 1-10 as numbered in docs/papers/recoding.md,
"Properties and their tests"), the step-wise LSTM LM and ``refseq demo recoding`` at a small
size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.recoding import demo as demo
from refseq.papers.recoding.grad import state_gradients, top_hidden_from
from refseq.papers.recoding.lm import LSTMLanguageModel, lm_backward
from refseq.papers.recoding.signals import (
    anchor_loss,
    ensemble_entropy,
    ensemble_log_probs,
    ensemble_log_probs_backward,
    init_anchored_decoders,
    mc_dropout_entropy,
    mixture_entropy,
    surprisal,
    token_perplexity_code_variant,
)
from refseq.papers.recoding.training import (
    FixedStep,
    LearnedStep,
    MLPStep,
    RecodingLM,
    perplexity,
    recode,
    recoding_loss_and_grad,
    train_lm,
)
from refseq.recurrence.engine import flashrnn_step
from refseq.testing import strategies as S
from refseq.testing.gradcheck import assert_directional, assert_jvp, cotangent_loss
from refseq.train.plateau import ReduceOnPlateau
from refseq.train.sgd import SGD

# The MLP step predictor's ReLUs switch wherever the hidden states put them, and no test here
# controls their distance from the kink (one example has it 3.5e-5 away along the direction).
# Checks through it use a step whose six-point stencil reaches 9e-7, inside the 1e-6 of the
# central differences they replaced; gradcheck's round-off term grows to 1.1e-8 S, below the
# 1e-9 + 1.1e-8 (S + 1) those used (see refseq.testing.gradcheck, "Kinks").
RELU_STEP = 3e-7


@st.composite
def models(draw, max_L=3, dropout=None):
    rng = np.random.default_rng(draw(S.seeds()))
    L, H, V = draw(st.integers(1, max_L)), draw(st.integers(1, 5)), draw(st.integers(2, 7))
    p = draw(st.sampled_from([0.0, 0.3])) if dropout is None else dropout
    m = LSTMLanguageModel(V, draw(st.integers(1, 4)), H, L, dropout=p, rng=rng, init_scale=0.8)
    for k, v in m.params.items():  # non-zero biases so every term is exercised
        if "b_" in k:
            v[...] = 0.5 * rng.standard_normal(v.shape)
    B = draw(st.integers(1, 3))
    state = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in range(L)]
    return m, state, rng, B


def logits_and_targets(rng, B, V):
    return 2 * rng.standard_normal((B, V)), rng.integers(0, V, B)


@given(seed=S.seeds(), B=st.integers(1, 3), V=st.integers(2, 6), argmax=st.booleans())
def test_1_signal_gradients_and_shift_invariance(seed, B, V, argmax):
    rng = np.random.default_rng(seed)
    o, y = logits_and_targets(rng, B, V)
    y = None if argmax else y
    yy = np.argmax(o, -1) if argmax else y  # fixed target inside the difference quotient
    # each signal is one scalar per batch row: the rows' directional derivatives, elementwise
    for fn in (surprisal, token_perplexity_code_variant):
        d, g = fn(o, y)
        u = rng.standard_normal(o.shape)
        assert_jvp(lambda fn=fn: fn(o, yy)[0], {"o": o}, {"o": u}, (g * u).sum(-1),
                   name=fn.__name__)
        assert np.allclose(g.sum(-1), 0, atol=1e-14)
    K, Hh = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    ok = rng.standard_normal((K, B, V))
    d, g = mixture_entropy(ok)
    u = rng.standard_normal(ok.shape)
    assert_jvp(lambda: mixture_entropy(ok)[0], {"o": ok}, {"o": u}, (g * u).sum((0, 2)))
    assert np.allclose(g.sum(-1), 0, atol=1e-14)
    h, W, b = rng.standard_normal((B, Hh)), rng.standard_normal((V, Hh)), rng.standard_normal(V)
    masks = rng.random((K, B, Hh)) >= 0.3
    d, g = mc_dropout_entropy(h, W, b, K, 0.3, masks=masks)
    u = rng.standard_normal(h.shape)
    assert_jvp(lambda: mc_dropout_entropy(h, W, b, K, 0.3, masks=masks)[0], {"h": h}, {"h": u},
               (g * u).sum(-1))
    decs = [(rng.standard_normal((V, Hh)), rng.standard_normal(V)) for _ in range(K)]
    d, g = ensemble_entropy(h, decs)
    u = rng.standard_normal(h.shape)
    assert_jvp(lambda: ensemble_entropy(h, decs)[0], {"h": h}, {"h": u}, (g * u).sum(-1))


def _signal_of_top(m, cache, y):
    return lambda h_top: surprisal(m.decode(h_top, cache.top_mask), y)[0]


@given(setup=models())
def test_2_state_gradients_match_finite_differences(setup):
    m, state, rng, B = setup
    y = rng.integers(0, m.V, B)
    logits, new, cache = m.step(rng.integers(0, m.V, B), state, train=True, rng=rng)
    _, d_logits = surprisal(logits, y)
    d_h = d_logits @ m.params["W_dec"]
    if cache.top_mask is not None:
        d_h = np.where(cache.top_mask, d_h * cache.scale, 0)
    grads = state_gradients(m, cache, d_h)
    sig = _signal_of_top(m, cache, y)
    for l in range(m.L):
        for j, kind in enumerate(("h", "c")):
            s = new[l][j].copy()
            u = rng.standard_normal(s.shape)
            assert_jvp(lambda s=s, l=l, kind=kind: sig(top_hidden_from(m, cache, l, **{kind: s})),
                       {f"{kind}[{l}]": s}, {f"{kind}[{l}]": u}, (grads[l][j] * u).sum(-1))


SIGNAL_KW = {"surprisal": {}, "surprisal_code": {}, "mc_dropout": {"num_samples": 3},
             "ensemble": {}}


def _recoder(m, signal, step, rng, **kw):
    decs = init_anchored_decoders(3, m.H, m.V, 1.0, rng)[0] if signal == "ensemble" else None
    return RecodingLM(m, signal, step, decoders=decs, **SIGNAL_KW[signal], **kw)


@given(setup=models(), signal=st.sampled_from(list(SIGNAL_KW)))
def test_3_descent_and_identity_at_alpha_zero(setup, signal):
    m, state, rng, B = setup
    tokens, y = rng.integers(0, m.V, B), rng.integers(0, m.V, B)
    rec0 = _recoder(m, signal, 0.0, rng)
    _, tilde, diag = rec0.step(tokens, state, y, rng=1)
    _, base, _ = m.step(tokens, state)
    for (h, c), (h0, c0) in zip(tilde, base):
        assert np.array_equal(h, h0) and np.array_equal(c, c0)
    g_top = diag["grads"][-1][0]  # (B, H): α per example from its own gradient norm
    alpha = 1e-3 / (1 + np.linalg.norm(g_top, axis=1, keepdims=True))
    rec = _recoder(m, signal, lambda l, k: _PerExample(alpha), rng)
    _, _, diag = rec.step(tokens, state, y, rng=1)
    before, after = diag["delta_before"], diag["delta_after"]
    assert np.all(after <= before + 1e-15)
    strict = np.linalg.norm(g_top, axis=1) > 1e-6
    assert np.all(after[strict] < before[strict])


class _PerExample(FixedStep):
    def __init__(self, alpha):
        self.alpha, self.params = alpha, {}

    def __call__(self, h):
        return self.alpha


@given(setup=models(dropout=0.0), signal=st.sampled_from(["surprisal", "surprisal_code"]))
def test_4_no_leak_with_gold_surprisal(setup, signal):
    m, state, rng, B = setup
    tokens = rng.integers(0, m.V, (B, 4))
    rec = RecodingLM(m, signal, 0.5)
    st_r, st_b = state, state
    for t in range(3):
        lr, st_r_new, _ = rec.step(tokens[:, t], st_r, tokens[:, t + 1])
        lb, _, _ = m.step(tokens[:, t], st_r)  # baseline from the same incoming state
        assert np.array_equal(lr, lb)
        st_r = st_r_new
    _, st_b, _ = m.step(tokens[:, 0], state)  # baseline carries the unrecoded state ...
    l2b, _, _ = m.step(tokens[:, 1], st_b)
    l2r, _, _ = rec.step(tokens[:, 1], rec.step(tokens[:, 0], state, tokens[:, 1])[1], None)
    assert not np.array_equal(l2r, l2b)  # ... so the next step's logits differ


@given(setup=models(), signal=st.sampled_from(list(SIGNAL_KW)))
def test_5_batch_independence(setup, signal):
    m, state, rng, B = setup
    tokens, y = rng.integers(0, m.V, B + 1), rng.integers(0, m.V, B + 1)
    state2 = [(np.vstack([h, rng.standard_normal((1, m.H))]),
               np.vstack([c, rng.standard_normal((1, m.H))])) for h, c in state]
    rec = _recoder(m, signal, 0.1, np.random.default_rng(0))
    if signal == "mc_dropout":  # same masks for the shared examples: K = 1 and q = 0
        rec.num_samples, rec.p_mc = 1, 0.0
    out_a, st_a, _ = rec.step(tokens[:B], state, y[:B], rng=3)
    tokens2 = tokens.copy()
    out_b, st_b, _ = rec.step(tokens2, state2, y, rng=3)
    assert np.allclose(out_a, out_b[:B], rtol=1e-12, atol=1e-12)
    for (h, c), (h2, c2) in zip(st_a, st_b):
        assert np.allclose(h, h2[:B], rtol=1e-12, atol=1e-13)
        assert np.allclose(c, c2[:B], rtol=1e-12, atol=1e-13)


@given(setup=models(dropout=0.0))
def test_6_limits(setup):
    m, state, rng, B = setup
    tokens = rng.integers(0, m.V, (B, 5))
    base_logits, base_state = m.forward(tokens, state)
    rec = RecodingLM(m, "surprisal", 0.0)
    st_, outs = state, []
    for t in range(5):
        o, st_, _ = rec.step(tokens[:, t], st_, rng.integers(0, m.V, B))
        outs.append(o)
    assert np.array_equal(np.stack(outs, 1), base_logits)
    for (h, c), (h0, c0) in zip(st_, base_state):
        assert np.array_equal(h, h0) and np.array_equal(c, c0)
    rec = RecodingLM(m, "surprisal", lambda l, k: LearnedStep(theta_init=-60.0))
    o, st2, _ = rec.step(tokens[:, 0], state, tokens[:, 1])
    _, st0, _ = m.step(tokens[:, 0], state)
    for a, b in zip(st2, st0):  # α = softplus(-60) ~ 9e-27
        assert np.abs(a[0] - b[0]).max() <= 1e-24 and np.abs(a[1] - b[1]).max() <= 1e-24
    h, W, b = rng.standard_normal((B, m.H)), m.params["W_dec"], m.params["b_dec"]
    d, g = mc_dropout_entropy(h, W, b, 1, 0.0, rng=0)
    logits = h @ W.T + b
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    ent = -(p * np.log(p)).sum(-1)
    assert np.allclose(d, ent, rtol=1e-13, atol=1e-14)
    assert np.allclose(g, (-p * (np.log(p) + ent[:, None])) @ W, rtol=1e-12, atol=1e-14)


def test_7_code_variant_is_non_monotone_with_its_maximum_at_one_over_e():
    p = np.linspace(0.01, 0.99, 99)
    logits = np.log(np.stack([p, 1 - p], axis=1))
    d, _ = token_perplexity_code_variant(logits, np.zeros(99, int))
    top = np.argmax(d)
    assert abs(p[top] - 1 / np.e) < 0.011
    assert np.isclose(d.max(), np.e ** (1 / np.e) - 1, atol=1e-3)
    assert np.all(np.diff(d[:top]) > 0) and np.all(np.diff(d[top + 1:]) < 0)


@given(seed=S.seeds(), K=st.integers(2, 4))
def test_8_ensemble_is_permutation_invariant_and_averages_members(seed, K):
    rng = np.random.default_rng(seed)
    decs, _ = init_anchored_decoders(K, 3, 5, 1.0, rng)
    h = rng.standard_normal((2, 3))
    d, g = ensemble_entropy(h, decs)
    d2, g2 = ensemble_entropy(h, decs[::-1])
    assert np.allclose(d, d2, rtol=1e-13) and np.allclose(g, g2, rtol=1e-12, atol=1e-14)
    d0, _ = ensemble_entropy(h[:1], decs)
    assert np.allclose(d0, d[:1], rtol=1e-13)  # mean over members, never over the batch
    anchors = [(W + 1.0, b) for W, b in decs]
    loss, grads = anchor_loss(decs, anchors, 0.1, 1.0, 10)
    assert np.isclose(loss, 0.01 * sum(W.size for W, _ in decs))
    assert np.allclose(grads[0][0], -0.02)


@given(setup=models(max_L=2), signal=st.sampled_from(["surprisal", "surprisal_code",
                                                      "mc_dropout"]))
def test_9_first_order_training_rule(setup, signal):
    """d loss / d params (LM weights, learned θ, MLP step) equals finite differences with the
    recoding gradients g and the step predictors' inputs frozen."""
    m, state, rng, B = setup
    fac = lambda l, k: MLPStep(m.H, (4, 3), rng=1) if k == "h" else LearnedStep(rng=2)  # noqa
    rec = _recoder(m, signal, fac, rng)
    batch = rng.integers(0, m.V, (B, 5))
    loss, grads, _, frozen = recoding_loss_and_grad(rec, batch, state, train=True, rng=9)
    params = dict(m.params) | rec.step_params()
    names = ("E", "W_dec", f"{m.L - 1}.W", "0.R", "step.0.c.theta", "step.0.h.W0")
    assert_directional(
        lambda: recoding_loss_and_grad(rec, batch, state, train=True, rng=9, frozen=frozen)[0],
        params, {n: grads[n] for n in names}, rng=rng, step=RELU_STEP)


def _fd_check_params(rec, batch, state, names, rng, **kw):
    """Loss gradients vs central differences along random directions, g frozen (test 9)."""
    loss, grads, _, frozen = recoding_loss_and_grad(rec, batch, state, train=True, rng=9, **kw)
    params = dict(rec.model.params) | rec.recoder_params()
    assert set(grads) == set(params)
    assert_directional(
        lambda: recoding_loss_and_grad(rec, batch, state, train=True, rng=9, frozen=frozen,
                                       **kw)[0],
        params, {n: grads[n] for n in names}, rng=rng, step=RELU_STEP)
    return loss, grads


@given(seed=S.seeds(), B=st.integers(1, 3), V=st.integers(2, 6), K=st.integers(1, 3),
       average=st.sampled_from(["probs", "logits"]))
def test_ensemble_output_backward_matches_finite_differences(seed, B, V, K, average):
    """VJP of log mean_k p^(k) (and of the official mean of logits) w.r.t. h and every member,
    random cotangent."""
    rng = np.random.default_rng(seed)
    Hh = int(rng.integers(1, 5))
    decs = [(rng.standard_normal((V, Hh)), rng.standard_normal(V)) for _ in range(K)]
    h, dout = rng.standard_normal((B, Hh)), rng.standard_normal((B, V))
    d_h, d_dec = ensemble_log_probs_backward(h, decs, dout, average)
    loss = cotangent_loss(lambda: ensemble_log_probs(h, decs, average), dout)
    assert_directional(loss, {"h": h}, {"h": d_h}, rng=rng)
    k = int(rng.integers(0, K))
    assert_directional(loss, {f"decs[{k}].W": decs[k][0], f"decs[{k}].b": decs[k][1]},
                       {f"decs[{k}].W": d_dec[k][0], f"decs[{k}].b": d_dec[k][1]}, rng=rng)
    if K == 1:  # one member: both averages are that member's log-softmax
        assert np.allclose(ensemble_log_probs(h, decs), ensemble_log_probs(h, decs, "logits"),
                           rtol=1e-13, atol=1e-13)


@given(setup=models(max_L=2), redecode=st.booleans(), anchored=st.booleans(),
       average=st.sampled_from(["probs", "logits"]))
def test_9_ensemble_training_gradients(setup, redecode, anchored, average):
    """Anchored-ensemble training (docs/papers/recoding.md, "Training the anchored ensemble and
    the plateau schedule"): the members decode the output, get exact gradients of the mean
    cross-entropy plus the anchor loss; the LM, the step predictors and the members all match
    finite differences with g frozen."""
    m, state, rng, B = setup
    K = 2
    decs, anchors = init_anchored_decoders(K, m.H, m.V, 0.5, rng)
    kw = dict(anchors=anchors, data_noise=0.3, prior_var=0.5, n_data=7) if anchored else {}
    fac = lambda l, k: MLPStep(m.H, (4, 3), rng=1) if k == "h" else LearnedStep(rng=2)  # noqa
    rec = RecodingLM(m, "ensemble", fac, redecode, decoders=decs, average=average, **kw)
    batch = rng.integers(0, m.V, (B, 4))
    names = ("E", f"{m.L - 1}.W", "0.R", "0.b_hh", "step.0.c.theta", "step.0.h.W0",
             "dec.0.W", "dec.1.b", "dec.1.W")
    loss, grads = _fd_check_params(rec, batch, state, names, rng)
    assert not grads["W_dec"].any() and not grads["b_dec"].any()  # the members decode
    if anchored:  # the anchor term is added to loss and gradients, nothing else changes
        plain = RecodingLM(m, "ensemble", fac, redecode, decoders=decs, average=average)
        loss0, grads0, _, _ = recoding_loss_and_grad(plain, batch, state, train=True, rng=9)
        a_loss, a_grads = anchor_loss(decs, anchors, 0.3, 0.5, 7)
        assert np.isclose(loss, loss0 + a_loss, rtol=1e-14)
        assert np.allclose(grads["dec.1.W"], grads0["dec.1.W"] + a_grads[1][0], rtol=1e-13,
                           atol=1e-15)
        assert np.array_equal(grads["E"], grads0["E"])


def test_ensemble_training_updates_members_and_plateau_schedule():
    """train_lm trains the members in place (they are the recoder's decoders) and cuts the
    learning rate on validation plateaus."""
    rng = np.random.default_rng(0)
    m = LSTMLanguageModel(5, 4, 6, 1, dropout=0.2, rng=1)
    decs, anchors = init_anchored_decoders(2, 6, 5, 0.1, rng)
    before = [W.copy() for W, _ in decs]
    rec = RecodingLM(m, "ensemble", 1e-3, decoders=decs, anchors=anchors, data_noise=0.1,
                     prior_var=0.1, n_data=200)
    stream, valid = rng.integers(0, 5, 200), rng.integers(0, 5, 60)
    opt = SGD(1.0)
    # threshold 100 (the official setting): no evaluation counts as better, so with
    # patience 0 every epoch divides the rate by 4
    sched = ReduceOnPlateau(opt, factor=0.25, patience=0, threshold=100.0)
    lines = []
    hist = train_lm(rec, stream, 3, opt, bptt_len=8, batch_size=4, rng=2, log=lines.append,
                    valid=valid, plateau=sched)
    assert len(hist) == 3 and np.all(np.isfinite(hist))
    assert opt.lr == 1.0 * 0.25 ** 3 and "valid ppl" in lines[-1]
    assert all(not np.array_equal(W, W0) for (W, _), W0 in zip(rec.decoders, before))
    assert rec.decoders[0][0] is decs[0][0]  # updated in place
    opt2 = SGD(1.0)  # default plateau: factor 0.25, patience 0, on validation perplexity
    train_lm(RecodingLM(m, "surprisal", 0.1), stream, 2, opt2, bptt_len=8, batch_size=4,
             valid=valid)
    assert opt2.lr in (1.0, 0.25)
    with pytest.raises(ValueError, match="valid"):
        train_lm(m, stream, 1, SGD(1.0), batch_size=4, plateau=ReduceOnPlateau(lr=1.0))


def test_10_shapes_dtypes_and_no_in_place_update():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((3, 4)).astype(np.float32)
    a = MLPStep(4, rng=0, dtype=np.float32)(h)
    assert a.shape == (3, 1) and a.dtype == np.float32 and (a > 0).all()
    state = [(h.copy(), h.copy() + 1)]
    grads = [(np.ones_like(h), np.full_like(h, np.nan))]
    keep = [(x.copy(), y.copy()) for x, y in state]
    out = recode(state, grads, [(a, np.float32(0.5))])
    assert out[0][0].dtype == np.float32 and np.array_equal(state[0][0], keep[0][0])
    assert np.array_equal(out[0][1], state[0][1])  # NaN -> 0 (the reference's policy)
    assert np.array_equal(recode(state, grads, [(0, 1.0)], "one")[0][1], state[0][1] - 1)
    m = LSTMLanguageModel(5, 3, 4, 2, dropout=0.2, rng=0, dtype=np.float32)
    rec = RecodingLM(m, "mc_dropout", 1e-3, num_samples=2)
    out, st_, diag = rec.step(np.array([1, 2]), None, rng=0)
    assert out.dtype == np.float32 and st_[0][0].dtype == np.float32


@given(setup=models(), data=st.data())
def test_lm_step_is_the_engine_step_and_backward_matches_fd(setup, data):
    m, state, rng, B = setup
    tok = rng.integers(0, m.V, B)
    _, new, cache = m.step(tok, state)
    p = m.params
    Wx = np.einsum("gndi,bi->bgnd", p["0.W"], m.params["E"][tok]) + p["0.b_ih"]
    prev = np.stack([state[0][0], state[0][1]])[:, :, None]
    eng = flashrnn_step(Wx, p["0.R"], p["0.b_hh"], prev, cell="lstm")
    assert np.allclose(eng[0, :, 0], new[0][0], rtol=1e-14, atol=1e-15)
    tokens = rng.integers(0, m.V, (B, 4))
    caches, st_, logits = [], state, []
    for t in range(4):
        lg, st_, c = m.step(tokens[:, t], st_, train=True, rng=t)
        caches.append(c)
        logits.append(lg)
    dl = rng.standard_normal((B, 4, m.V))  # random cotangent
    dfin = [(rng.standard_normal((B, m.H)), rng.standard_normal((B, m.H))) for _ in range(m.L)]
    g, d0, _ = lm_backward(m, caches, dl, dfin)

    def outputs():
        s, out = state, []
        for t in range(4):
            lg, s, _ = m.step(tokens[:, t], s, train=True, rng=t)
            out.append(lg)
        return out, s

    name = data.draw(st.sampled_from(sorted(m.params)))
    loss = cotangent_loss(outputs, ([dl[:, t] for t in range(4)], dfin))
    assert_directional(loss, m.params, {name: g[name]}, rng=rng)


def test_seeded_reproducibility_and_bad_inputs():
    a = LSTMLanguageModel(5, 3, 4, 2, dropout=0.3, rng=7)
    b = LSTMLanguageModel(5, 3, 4, 2, dropout=0.3, rng=7)
    toks = np.array([[1, 2, 3], [0, 4, 1]])
    assert np.array_equal(a.forward(toks, train=True, rng=1)[0],
                          b.forward(toks, train=True, rng=1)[0])
    with pytest.raises(ValueError, match="tokens"):
        a.step(np.array([9]))
    with pytest.raises(TypeError, match="tokens"):
        a.step(np.array([1.0]))
    with pytest.raises(ValueError, match="signal"):
        RecodingLM(a, "entropy")
    with pytest.raises(ValueError, match="decoders"):
        RecodingLM(a, "ensemble")
    decs, anchors = init_anchored_decoders(2, 4, 5, 1.0, 0)
    with pytest.raises(ValueError, match="decoders"):
        RecodingLM(a, "ensemble", decoders=[(np.zeros((5, 3)), np.zeros(5))])
    with pytest.raises(ValueError, match="data_noise"):
        RecodingLM(a, "ensemble", decoders=decs, anchors=anchors, prior_var=1.0, n_data=10)
    with pytest.raises(ValueError, match="n_data"):
        RecodingLM(a, "ensemble", decoders=decs, anchors=anchors, data_noise=1.0,
                   prior_var=1.0, n_data=0)
    with pytest.raises(ValueError, match="one \\(W, b\\) per decoder"):
        RecodingLM(a, "ensemble", decoders=decs, anchors=anchors[:1], data_noise=1.0,
                   prior_var=1.0, n_data=10)
    with pytest.raises(ValueError, match="only used"):
        RecodingLM(a, "surprisal", anchors=anchors, data_noise=1.0, prior_var=1.0, n_data=10)
    with pytest.raises(ValueError, match="average"):
        RecodingLM(a, "ensemble", decoders=decs, average="median")
    with pytest.raises(ValueError, match="average"):
        ensemble_log_probs_backward(np.zeros((1, 4)), decs, np.zeros((1, 5)), "median")
    with pytest.raises(ValueError, match="d_out"):
        ensemble_log_probs_backward(np.zeros((1, 4)), decs, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="target"):
        surprisal(np.zeros((2, 5)), np.array([0, 5]))
    with pytest.raises(ValueError, match="p_drop"):
        mc_dropout_entropy(np.zeros((1, 4)), np.zeros((5, 4)), np.zeros(5), 2, 1.0)
    with pytest.raises(ValueError, match="nan_policy"):
        recode([], [], [], "two")
    with pytest.raises(ValueError, match="dropout"):
        LSTMLanguageModel(5, 3, 4, dropout=1.0)
    with pytest.raises(ValueError, match="state"):
        a.step(np.array([1]), [(np.zeros((1, 4)), np.zeros((1, 4)))])
    assert perplexity(a, toks) > 1


def test_demo_small():
    """Structure, plus the first-order criterion at α = 0.01 (reliable: a 1e-2 step on a
    convex-in-h surprisal of a trained LM lowers δ at essentially every step)."""
    result = demo.run(n_train=2000, n_test=400, epochs=1, alphas=(0.01, 1.0))
    assert [r["alpha"] for r in result["rows"]] == [0.01, 1.0]
    assert result["rows"][0]["frac_lower"] >= 0.99 and result["ok"]
    lines = demo.format_table(result).splitlines()
    assert lines[0].startswith("Surprisal recoding on Reber-grammar streams")
    assert lines[-1].endswith("yes")
    for i in range(20):
        s = demo.reber_string(np.random.default_rng(i))
        assert s[0] == "B" and s[-1] == "E" and set(s) <= set(demo.SYMBOLS)
