"""Number keywords of the gradient-noise experiment are checked and named."""

from __future__ import annotations

import math

import pytest

from refseq.papers.gradient_noise import mlp as gn_mlp

CASES = [
    ("gn-deep_relu_mlp-init_std", lambda **k: gn_mlp.deep_relu_mlp(2, 3, **k),
     dict(init_std=math.nan), ValueError, "init_std"),
    ("gn-teacher-n", lambda **k: gn_mlp.teacher_dataset(**k), dict(n=10.0), TypeError, "n must"),
    ("gn-run-batch", lambda **k: gn_mlp.run(steps=1, n=10, depth=1, width=2, **k),
     dict(batch=0), ValueError, "batch"),
    ("gn-run-gamma", lambda **k: gn_mlp.run(steps=1, n=10, depth=1, width=2, **k),
     dict(gamma=math.nan), ValueError, "gamma"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_keyword_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)
