"""The RNN language model with a step API (docs/papers/rnn-review.md, "The RNN language
model"): stepping == the full forward, reorder == recomputation, states are never mutated, the
training hook's gradients match finite differences, bad input names the argument, and the model
is a ``StepLM``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.interfaces import StepLM, log_softmax
from refseq.papers.rnn_review.lm import RNNLanguageModel, RNNLMState
from refseq.rnn.bptt import bptt_grads
from refseq.testing.gradcheck import assert_directional, cotangent_loss
from refseq.testing.strategies import seeds

V, I, H = 6, 3, 4
TOL = dict(rtol=1e-12, atol=1e-12)
# (cell, cell_kwargs): every Elman activation and LSTM switch setting the review names
KINDS = {
    "tanh": ("elman", {"activation": "tanh"}),
    "sigmoid": ("elman", {"activation": "sigmoid"}),
    "relu": ("elman", {"activation": "relu"}),
    "lstm": ("lstm", {}),
    "lstm_variant": ("lstm", {"forget_gate": False, "peepholes": True,
                              "output_activation": "identity"}),
}


def make_lm(seed, kind="tanh", n_layers=1, bos_id=None, dtype=np.float64):
    cell, kw = KINDS[kind]
    return RNNLanguageModel.init(seed, V, I, H, n_layers=n_layers, cell=cell, dtype=dtype,
                                 bos_id=bos_id, **kw)


def full_next(lm, prefix):
    """Log-probs of the token after ``prefix``, from one full-sequence forward."""
    ids = ([lm.bos_id] if lm.bos_id is not None else []) + [int(t) for t in prefix]
    logits, _, _ = lm.forward(np.array([ids], np.int64))
    return log_softmax(logits[0, -1])


def leaves(s):
    return [a for v in s for a in leaves(v)] if isinstance(s, (tuple, list)) else [s]


# --- stepping == full forward; reorder == recomputation ----------------------------------------

@given(seeds(), st.sampled_from(sorted(KINDS)), st.integers(1, 2), st.integers(1, 3),
       st.integers(1, 7))
def test_stepping_token_by_token_equals_full_forward(seed, kind, n_layers, B, T):
    lm = make_lm(seed, kind, n_layers)
    tokens = np.random.default_rng(seed).integers(0, V, (B, T))
    logits, state_last, _ = lm.forward(tokens)  # (B, T, V)
    lp, state = lm.start(list(tokens[:, :1]))
    np.testing.assert_allclose(lp, log_softmax(logits[:, 0]), **TOL)
    for t in range(1, T):
        lp, state = lm.step(state, tokens[:, t])
        np.testing.assert_allclose(lp, log_softmax(logits[:, t]), **TOL)
    for a, b in zip(leaves(state.layers), leaves(state_last.layers)):
        np.testing.assert_allclose(a, b, **TOL)


@given(seeds(), st.sampled_from(sorted(KINDS)), st.integers(1, 2), st.booleans(),
       st.lists(st.integers(0, 5), min_size=1, max_size=3), st.integers(1, 4))
def test_start_step_reorder_match_recomputation(seed, kind, n_layers, bos, lengths, n_steps):
    rng = np.random.default_rng(seed)
    lm = make_lm(seed, kind, n_layers, bos_id=2 if bos else None)
    if not bos:
        lengths = [max(n, 1) for n in lengths]  # no start token: prompts must be non-empty
    prefixes = [list(rng.integers(0, V, n)) for n in lengths]
    lp, state = lm.start([np.array(p, np.int64) for p in prefixes])
    for _ in range(n_steps):
        for row, prefix in enumerate(prefixes):
            np.testing.assert_allclose(lp[row], full_next(lm, prefix), **TOL)
        rows = rng.integers(0, len(prefixes), rng.integers(1, len(prefixes) + 2))  # repeat/drop
        state = lm.reorder(state, rows)
        prefixes = [list(prefixes[r]) for r in rows]
        tokens = rng.integers(0, V, len(prefixes))
        lp, state = lm.step(state, tokens)  # the StepLM argument order
        for prefix, tok in zip(prefixes, tokens):
            prefix.append(int(tok))
    for row, prefix in enumerate(prefixes):
        np.testing.assert_allclose(lp[row], full_next(lm, prefix), **TOL)


def test_step_returns_normalised_log_probs_and_is_a_steplm():
    lm = make_lm(0, "lstm", 2)
    assert isinstance(lm, StepLM)
    assert lm.vocab_size == V
    lp, state = lm.start([np.array([1, 2, 3])])
    lp2, _ = lm.step(state, np.array([4]))
    for a in (lp, lp2):
        assert a.shape == (1, V)
        np.testing.assert_allclose(np.exp(a).sum(axis=-1), 1.0, rtol=1e-14)
    lp3, _ = lm.step(state, 4)  # a scalar token for a one-row state
    np.testing.assert_array_equal(lp3, lp2)
    with pytest.raises(ValueError, match="state must be an RNNLMState"):
        # the textbook order step(token, state) is not accepted (docs/papers/rnn-review.md,
        # "Deviations of the language model")
        lm.step(np.array([4]), state)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    lm = make_lm(1, "tanh", 1, dtype=dtype)
    lp, state = lm.start([np.array([1, 2])])
    lp, state = lm.step(state, np.array([3]))
    assert lp.dtype == dtype and all(a.dtype == dtype for a in leaves(state.layers))


# --- states are never mutated ------------------------------------------------------------------

@given(seeds(), st.sampled_from(["tanh", "lstm"]), st.integers(1, 2))
def test_a_kept_state_steps_the_same_twice(seed, kind, n_layers):
    rng = np.random.default_rng(seed)
    lm = make_lm(seed, kind, n_layers)
    _, old = lm.start([rng.integers(0, V, 3), rng.integers(0, V, 1)])
    snapshot = [a.copy() for a in leaves(old.layers)]
    a, b = rng.integers(0, V, 2), rng.integers(0, V, 2)
    lp1, s1 = lm.step(old, a)
    lm.step(old, b)  # a different continuation in between
    lm.reorder(old, np.array([1, 1, 0]))
    lm.step(s1, b)
    lp2, s2 = lm.step(old, a)
    np.testing.assert_array_equal(lp1, lp2)
    for x, y in zip(leaves(s1.layers), leaves(s2.layers)):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(leaves(old.layers), snapshot):
        np.testing.assert_array_equal(x, y)
        assert not x.flags.writeable  # the guarantee is enforced, not only observed


# --- training hook: gradients against finite differences ---------------------------------------

@settings(max_examples=8)
@given(seeds(), st.sampled_from(["tanh", "sigmoid", "lstm", "lstm_variant"]), st.integers(1, 2),
       st.booleans(), st.sampled_from(["sum", "mean_tokens", "mean_sequences"]))
def test_loss_gradients_match_finite_differences(seed, kind, n_layers, bos, reduction):
    rng = np.random.default_rng(seed)
    lm = make_lm(seed, kind, n_layers, bos_id=0 if bos else None)
    B, T = 3, 5
    tokens = rng.integers(0, V, (B, T))
    lengths = rng.integers(2, T + 1, B)
    tokens[np.arange(T)[None] >= lengths[:, None]] = -7  # padding is never read
    loss, grads = lm.loss_and_grads(tokens, lengths, reduction)
    assert sorted(grads) == sorted(lm.params)
    names = sorted(lm.params)
    # three random directions, each moving every parameter at once; never a plain sum
    assert_directional(lambda: float(lm.loss_and_grads(tokens, lengths, reduction)[0]),
                       lm.params, {k: grads[k] for k in names}, rng=rng, n_directions=3,
                       per_argument=False)


@settings(max_examples=8)
@given(seeds(), st.sampled_from(["tanh", "lstm_variant"]), st.integers(1, 2))
def test_backward_with_random_cotangents_matches_finite_differences(seed, kind, n_layers):
    rng = np.random.default_rng(seed)
    lm = make_lm(seed, kind, n_layers)
    B, T = 2, 4
    tokens = rng.integers(0, V, (B, T))
    lengths = rng.integers(0, T + 1, B)
    _, st0 = lm.start([rng.integers(0, V, 2) for _ in range(B)])
    state0 = [a.copy() for a in leaves(st0.layers)]  # writable copies to perturb

    def structured():
        it, out = iter(state0), []
        for layer in st0.layers:
            out.append(tuple(next(it) for _ in layer) if isinstance(layer, tuple) else next(it))
        return RNNLMState(tuple(out))

    logits, last, cache = lm.forward(tokens, structured(), lengths)
    C = rng.standard_normal(logits.shape)
    D = [rng.standard_normal(a.shape) for a in leaves(last.layers)]
    d_last = []
    it = iter(D)
    for layer in last.layers:
        d_last.append(tuple(next(it) for _ in layer) if isinstance(layer, tuple) else next(it))
    grads, d0 = lm.backward(C, d_last, cache)

    def outputs():
        lg, ls, _ = lm.forward(tokens, structured(), lengths)
        return lg, leaves(ls.layers)

    names = sorted(lm.params)
    arrays = {**{k: lm.params[k] for k in names},
              **{f"state0[{i}]": a for i, a in enumerate(state0)}}
    analytic = dict(zip(arrays, [grads[k] for k in names] + leaves(d0.layers)))
    assert_directional(cotangent_loss(outputs, (C, D)), arrays, analytic, rng=rng,
                       n_directions=3, per_argument=False)


@given(seeds(), st.sampled_from(["tanh", "lstm"]), st.integers(1, 6))
def test_summed_loss_equals_decoder_scores(seed, kind, T):
    """With a start token, ``-loss`` is the sum of the step API's log-probs of the sequence."""
    rng = np.random.default_rng(seed)
    lm = make_lm(seed, kind, 2, bos_id=1)
    seqs = rng.integers(0, V, (2, T))
    loss, _ = lm.loss_and_grads(seqs)
    lp, state = lm.start([np.array([], np.int64)] * 2)
    score = np.zeros(2)
    for t in range(T):
        score += lp[np.arange(2), seqs[:, t]]
        lp, state = lm.step(state, seqs[:, t])
    np.testing.assert_allclose(-float(loss), score.sum(), rtol=1e-12)
    # the hook is bptt_grads on the shifted sequences
    inputs = np.concatenate([np.full((2, 1), 1), seqs[:, :-1]], axis=1)
    loss2, grads2 = bptt_grads(lm, inputs, seqs)
    assert float(loss2) == float(loss)


# --- bad input ---------------------------------------------------------------------------------

def test_bad_input_names_the_argument():
    lm = make_lm(0, "lstm", 2)
    _, state = lm.start([np.array([1, 2]), np.array([3])])
    cases = [
        (lambda: lm.start([np.array([1, V])]), r"prompts\[0\] must lie in \[0, 6\)"),
        (lambda: lm.start([np.array([1]), np.array([-1])]), r"prompts\[1\]"),
        (lambda: lm.start([np.array([], np.int64)]), r"prompts\[0\] is empty and no bos_id"),
        (lambda: lm.start([np.array([[1, 2]])]), r"prompts\[0\] must be a 1-d"),
        (lambda: lm.start([]), "prompts must hold"),
        (lambda: lm.step(state, np.array([1, V])), r"tokens must lie in \[0, 6\)"),
        (lambda: lm.step(state, np.array([1, 2, 3])), r"tokens must have shape \(R,\) = \(2,\)"),
        (lambda: lm.step(state, np.array([[1, 2]])), "tokens must have shape"),
        (lambda: lm.step(np.array([1, 2]), np.array([1, 2])), "state must be an RNNLMState"),
        (lambda: lm.reorder(state, np.array([0, 2])), "rows must be 1-D indices into 2 rows"),
        (lambda: lm.reorder(state, np.array([[0]])), "rows must be"),
        (lambda: lm.forward(np.array([1, 2])), r"tokens must have shape \(B, T\)"),
        (lambda: lm.forward(np.array([[1, 99]])), "tokens must lie"),
        (lambda: lm.forward(np.array([[1, 2]]), [None]), "state0 must hold one state per layer"),
        (lambda: lm.loss_and_grads(np.array([[1, 9]])), "tokens must lie"),
        (lambda: lm.loss_and_grads(np.array([[1]])), "T >= 2 without bos_id"),
        (lambda: lm.loss_and_grads(np.array([[1, 2]]), np.array([3])), "lengths must be <="),
        (lambda: make_lm(0, "tanh", bos_id=V), "bos_id must be an integer >= 0"),
        (lambda: RNNLanguageModel(np.zeros(3), lm.layers, lm.params["W_yh"], lm.params["b_y"]),
         "E must have shape"),
        (lambda: RNNLanguageModel(lm.params["E"], lm.layers, np.zeros((V + 1, H)),
                                  lm.params["b_y"]), "W_yh must have shape"),
        (lambda: RNNLanguageModel(lm.params["E"], [], lm.params["W_yh"], lm.params["b_y"]),
         "layers must hold"),
        (lambda: RNNLanguageModel.init(0, V, I, H, cell="gru"), "cell must be one of"),
    ]
    for call, msg in cases:
        with pytest.raises(ValueError, match=msg):
            call()
    with pytest.raises(TypeError, match="tokens must be an integer array"):
        lm.step(state, np.array([1.0, 2.0]))
