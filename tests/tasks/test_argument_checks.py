"""Keywords of the Reber task are checked and named (wrong kind: ``TypeError``; wrong value:
``ValueError``)."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.tasks import reber

G = np.random.default_rng(0)

CASES = [
    ("reber_dataset-n-float", lambda **k: reber.reber_dataset(rng=G, **k), dict(n=2.0),
     TypeError, "n must be an integer"),
    ("reber_dataset-n-neg", lambda **k: reber.reber_dataset(rng=G, **k), dict(n=-1),
     ValueError, "n must be"),
    ("reber_dataset-max_len", lambda **k: reber.reber_dataset(4, G, **k), dict(max_len="9"),
     TypeError, "max_len"),
    ("reber_dataset-min_len", lambda **k: reber.reber_dataset(4, G, **k), dict(min_len=5.5),
     TypeError, "min_len"),
    ("reber_dataset-style", lambda **k: reber.reber_dataset(4, G, **k), dict(style=None),
     TypeError, "style"),
    ("reber_invalid-style", lambda **k: reber.reber_invalid(G, **k), dict(style="swap"),
     ValueError, "style"),
    ("enumerate_reber-max_len", lambda **k: reber.enumerate_reber(**k), dict(max_len=9.0),
     TypeError, "max_len"),
    ("vocab_size-vocab", lambda **k: reber.vocab_size(**k), dict(vocab=7), TypeError, "vocab"),
    ("encode-vocab", lambda **k: reber.encode(["BTE"], **k), dict(vocab="utf8"), ValueError,
     "vocab"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_keyword_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)
