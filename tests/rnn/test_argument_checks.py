"""Number, dtype and option keywords of refseq.rnn are checked and named: a wrong kind is a
``TypeError``, a wrong value a ``ValueError``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.rnn import bidirectional, bptt, elman, lstm, output, stack

rng = np.random.default_rng(0)
XL = rng.standard_normal((2, 3, 3))
LP = lstm.init_lstm_params(rng, 3, 4)
EL = elman.ElmanLayer.init(rng, 3, 4)
LOGITS = rng.standard_normal((2, 3, 5))


def tbptt(**kw):
    model = bptt.RNNModel(EL, 0.1 * np.ones((5, 4)), np.zeros(5))
    args = dict(model=model, stream_x=XL, stream_y=np.zeros((2, 3), int), k1=1, k2=2) | kw
    return next(bptt.truncated_bptt(**args))


CASES = [
    ("init_lstm-dtype", lambda **k: lstm.init_lstm_params(rng, 3, 4, **k), dict(dtype=np.int32),
     TypeError, "dtype must be float32 or float64"),
    ("init_lstm-scale", lambda **k: lstm.init_lstm_params(rng, 3, 4, **k), dict(scale=math.nan),
     ValueError, "scale"),
    ("init_lstm-forget_bias", lambda **k: lstm.init_lstm_params(rng, 3, 4, **k),
     dict(forget_bias="1"), TypeError, "forget_bias"),
    ("init_lstm-H", lambda **k: lstm.init_lstm_params(rng, 3, **k), dict(H=4.0), TypeError, "H"),
    ("lstm_forward-output_activation", lambda **k: lstm.lstm_forward(XL, LP, **k),
     dict(output_activation=None), TypeError, "output_activation"),
    ("elman_forward-activation", lambda **k: elman.elman_forward(
        XL, 0.3 * np.ones((4, 3)), 0.1 * np.eye(4), np.zeros(4), **k), dict(activation="gelu"),
     ValueError, "activation"),
    ("ElmanLayer.init-dtype", lambda **k: elman.ElmanLayer.init(rng, 3, 4, **k),
     dict(dtype=np.float16), TypeError, "dtype"),
    ("ElmanLayer.init-scale", lambda **k: elman.ElmanLayer.init(rng, 3, 4, **k),
     dict(scale=-1.0), ValueError, "scale"),
    ("ElmanLayer.init-rng", lambda **k: elman.ElmanLayer.init(I=3, H=4, **k),
     dict(rng="0"), TypeError, "rng"),
    ("stack-dropout-nan", lambda **k: stack.stack([EL], XL, rng=0, **k),
     dict(dropout_nonrecurrent=math.nan), ValueError, "dropout_nonrecurrent"),
    ("stack-dropout-str", lambda **k: stack.stack([EL], XL, rng=0, **k),
     dict(dropout_nonrecurrent="0.1"), TypeError, "dropout_nonrecurrent"),
    ("truncated_bptt-k1-float", tbptt, dict(k1=1.0), TypeError, "k1 must be an integer"),
    ("truncated_bptt-k2-small", tbptt, dict(k1=2, k2=1), ValueError, "k2 must be an integer >= 2"),
    ("sequence_cross_entropy-reduction", lambda **k: output.sequence_cross_entropy(
        LOGITS, np.zeros((2, 3), int), **k), dict(reduction=1), TypeError, "reduction"),
    ("bidirectional-merge", lambda **k: bidirectional.bidirectional(
        EL.forward, EL.forward, XL, **k), dict(merge="max"), ValueError, "merge"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_keyword_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)


def test_valid_keywords_still_work():
    assert lstm.init_lstm_params(0, 3, 4, dtype=np.float32, forget_bias=1).W_ix.dtype == \
        np.float32
    y, _, _ = stack.stack([EL], XL, dropout_nonrecurrent=0.5, rng=0)
    assert y.shape == (2, 3, 4)
