"""Number, dtype and option keywords of the RNN-review reference are checked and named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.papers.rnn_review.jordan import jordan_forward
from refseq.papers.rnn_review.lm import RNNLanguageModel

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 2))
JW = dict(W_hx=np.ones((4, 2)), W_hc=np.ones((4, 3)), b_h=np.zeros(4), W_yh=np.ones((3, 4)),
          b_y=np.zeros(3))

CASES = [
    ("jordan-alpha-nan", lambda **k: jordan_forward(X, **JW, **k), dict(alpha=math.nan),
     ValueError, "alpha"),
    ("jordan-alpha-str", lambda **k: jordan_forward(X, **JW, **k), dict(alpha="0.5"), TypeError,
     "alpha"),
    ("jordan-feedback", lambda **k: jordan_forward(X, **JW, **k), dict(feedback=None),
     TypeError, "feedback"),
    ("lm-init-dtype", lambda **k: RNNLanguageModel.init(0, 5, 3, 4, **k), dict(dtype=np.int32),
     TypeError, "dtype"),
    ("lm-init-n_layers", lambda **k: RNNLanguageModel.init(0, 5, 3, 4, **k),
     dict(n_layers=0), ValueError, "n_layers"),
    ("lm-init-H", lambda **k: RNNLanguageModel.init(0, 5, 3, **k), dict(H=4.0), TypeError,
     "H must be"),
    ("lm-bos_id", lambda **k: RNNLanguageModel.init(0, 5, 3, 4, **k), dict(bos_id="0"),
     TypeError, "bos_id"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_keyword_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)
