"""Number, dtype and option keywords of the PV-RNN reference are checked and named (a NaN
meta-prior ``w`` or a str ``tau`` used to be accepted)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.papers.pv_rnn import data, er, loss, model, params, vrnn

P = params.init_pvrnn([(3, 2)], 2, 2, 4, 0)
EPS = model.draw_eps(P, 2, 4, np.random.default_rng(0))
_, CACHE = model.pvrnn_forward(P, EPS, np.arange(2))
TARGETS = np.zeros((2, 4, 2))
DATA = 0.5 * np.tanh(np.random.default_rng(1).standard_normal((2, 4, 2)))
PRIMS, TRANS = [np.ones((2, 2)), -np.ones((3, 2))], np.full((2, 2), 0.5)


def fresh():
    return params.init_pvrnn([(3, 2)], 2, 2, 4, 0)


CASES = [
    ("init-tau-str", lambda **k: params.init_pvrnn([(3, 2)], 2, 2, 4, 0, **k), dict(tau="2"),
     TypeError, "tau"),
    ("init-tau-nan", lambda **k: params.init_pvrnn([(3, 2)], 2, 2, 4, 0, **k),
     dict(tau=math.nan), ValueError, "tau"),
    ("init-dtype", lambda **k: params.init_pvrnn([(3, 2)], 2, 2, 4, 0, **k),
     dict(dtype=np.int32), TypeError, "dtype"),
    ("init-T", lambda **k: params.init_pvrnn([(3, 2)], 2, 2, rng=0, **k), dict(T=4.0),
     TypeError, "T must be"),
    ("init-A_std", lambda **k: params.init_pvrnn([(3, 2)], 2, 2, 4, 0, **k),
     dict(A_std=-1.0), ValueError, "A_std"),
    ("loss-w-nan", lambda **k: loss.pvrnn_loss(CACHE, TARGETS, **k), dict(w=math.nan),
     ValueError, "w must be a finite number"),
    ("loss-w-str", lambda **k: loss.pvrnn_loss(CACHE, TARGETS, **k), dict(w="1"), TypeError,
     "w must be a real number"),
    ("loss-beta-list", lambda **k: loss.pvrnn_loss(CACHE, TARGETS, **k), dict(beta=[1.0, 2.0]),
     ValueError, "beta must be a number or a list of one per layer"),
    ("loss-beta-neg", lambda **k: loss.pvrnn_loss(CACHE, TARGETS, **k), dict(beta=-1.0),
     ValueError, "beta"),
    ("loss-rec_weight", lambda **k: loss.pvrnn_loss(CACHE, TARGETS, **k),
     dict(rec_weight=math.inf), ValueError, "rec_weight"),
    ("forward-n_posterior_steps", lambda **k: model.pvrnn_forward(P, EPS, np.arange(2), **k),
     dict(n_posterior_steps=1.5), TypeError, "n_posterior_steps"),
    ("train-lr", lambda **k: er.train_pvrnn(fresh(), DATA, 1, **k), dict(lr="0.1"), TypeError,
     "lr"),
    ("train-betas", lambda **k: er.train_pvrnn(fresh(), DATA, 1, **k), dict(betas=0.9),
     TypeError, "betas"),
    ("train-adam_eps", lambda **k: er.train_pvrnn(fresh(), DATA, 1, **k), dict(adam_eps=0.0),
     ValueError, "adam_eps"),
    ("train-epochs", lambda **k: er.train_pvrnn(fresh(), DATA, **k), dict(epochs=1.0),
     TypeError, "epochs"),
    ("train-minibatch", lambda **k: er.train_pvrnn(fresh(), DATA, 1, **k),
     dict(minibatch_size=0), ValueError, "minibatch_size"),
    ("ER-window", lambda **k: er.ErrorRegression(P, n_iter=1, **k), dict(window=2.0),
     TypeError, "window"),
    ("ER-w_er", lambda **k: er.ErrorRegression(P, 2, 1, **k), dict(w_er=math.nan), ValueError,
     "w_er"),
    ("ER-lr", lambda **k: er.ErrorRegression(P, 2, 1, **k), dict(lr=-1.0), ValueError, "lr"),
    ("pfsm-n_seq", lambda **k: data.pfsm_sequences(PRIMS, TRANS, n_segments=2, rng=0, **k),
     dict(n_seq=2.5), TypeError, "n_seq"),
    ("softmax_encode-sigma", lambda **k: data.softmax_encode(np.zeros((1, 1)), 4, x_min=-1.0,
                                                             x_max=1.0, **k),
     dict(sigma="0.1"), TypeError, "sigma"),
    ("softmax_encode-x_max", lambda **k: data.softmax_encode(np.zeros((1, 1)), 4, 0.1, -1.0,
                                                             **k),
     dict(x_max=math.nan), ValueError, "x_max"),
    ("softmax_encode-num_units", lambda **k: data.softmax_encode(np.zeros((1, 1)), sigma=0.1,
                                                                 x_min=-1.0, x_max=1.0, **k),
     dict(num_units=4.0), TypeError, "num_units"),
    ("vrnn-init-dtype", lambda **k: vrnn.init_vrnn(3, 2, 2, 0, **k), dict(dtype=np.int32),
     TypeError, "dtype"),
    ("vrnn-init-tau", lambda **k: vrnn.init_vrnn(3, 2, 2, 0, **k), dict(tau="2"), TypeError,
     "tau"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_keyword_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)


def test_per_layer_weights_are_still_accepted():
    total, _, _ = loss.pvrnn_loss(CACHE, TARGETS, w=[0.5], beta=np.array([1.0]))
    assert np.isfinite(total)


def test_error_regression_horizon_is_checked():
    reg = er.ErrorRegression(P, 2, 1, rng=0)
    with pytest.raises(TypeError, match="horizon must be an integer"):
        reg.step(np.zeros((2, 2)), horizon=1.0)
    with pytest.raises(ValueError, match="horizon must be an integer >= 0"):
        reg.run(np.zeros((3, 2)), horizon=-1)
