"""``aaren_layer`` / ``aaren_layer_step`` errors name the layer's own arguments (``x``, ``mask``,
``state``, ``scale``, ``params.W_k`` ...), never the internal ones of the functions they call
(``W``, ``b``, ``s``, ``v``), and never suggest a ``check_finite`` flag the layer does not have.
The builders check their sizes and dtype."""

from __future__ import annotations

import re

import numpy as np
import pytest

from refseq.papers.aaren import layer as L
from refseq.papers.aaren import rnn, stack

rng = np.random.default_rng(0)
P = L.init_aaren_params(rng, 4, 2, 3, 5)
X = rng.standard_normal((2, 6, 4))
INTERNAL = re.compile(r"^(W|b|s|v|q|k) must|check_finite=False")

BAD_PARAMS = [
    ("W_k-int", dict(W_k=P.W_k.astype(int)), TypeError, r"^params\.W_k must have dtype"),
    ("b_k-shape", dict(b_k=np.zeros(5)), ValueError, r"^params\.b_k must have shape \(H\*Dk,\)"),
    ("W_v-shape", dict(W_v=np.zeros((4, 7))), ValueError, r"^params\.W_v must have shape"),
    ("b_v-shape", dict(b_v=np.zeros(3)), ValueError, r"^params\.b_v must have shape \(H\*Dv,\)"),
    ("W_o-shape", dict(W_o=np.zeros((5, 4))), ValueError, r"^params\.W_o must have shape"),
    ("W_o-int", dict(W_o=P.W_o.astype(int)), TypeError, r"^params\.W_o must have dtype"),
    ("b_o-shape", dict(b_o=np.zeros(5)), ValueError, r"^params\.b_o must have shape \(D,\)"),
    ("q-nan", dict(q=np.full_like(P.q, np.nan)), ValueError, r"^params\.q must be finite"),
    ("W_k-inf", dict(W_k=np.full_like(P.W_k, np.inf)), ValueError,
     r"^params\.W_k must be finite"),
]


@pytest.mark.parametrize("step", [False, True], ids=["layer", "layer_step"])
@pytest.mark.parametrize("fields,err,match", [b[1:] for b in BAD_PARAMS],
                         ids=[b[0] for b in BAD_PARAMS])
def test_bad_params_are_named_as_params_fields(step, fields, err, match):
    p = P._replace(**fields)
    with pytest.raises(err) as info:
        if step:
            L.aaren_layer_step(p, X[:, 0])
        else:
            L.aaren_layer(p, X)
    msg = str(info.value)
    assert re.search(match, msg), msg
    assert not INTERNAL.search(msg), msg


@pytest.mark.parametrize("call,err,match", [
    (lambda: L.aaren_layer(P, X * np.nan), ValueError, r"^x must be finite"),
    (lambda: L.aaren_layer_step(P, X[:, 0] * np.inf), ValueError, r"^x_t must be finite"),
    (lambda: L.aaren_layer(P, X, mask=np.ones((2, 5), bool)), ValueError, r"^mask must"),
    (lambda: L.aaren_layer(P, X, scale="1"), TypeError, r"^scale must"),
    (lambda: L.aaren_layer(P, X, scale=np.nan), ValueError, r"^scale must"),
    (lambda: L.aaren_layer_step(P, X[:, 0], scale=np.inf), ValueError, r"^scale must"),
    (lambda: L.aaren_layer(P, X, state=rnn.softmax_state_init(3, 2, 5)), ValueError,
     r"^state\.m must"),
    (lambda: L.aaren_layer(P, X, head_merge="max"), ValueError, r"^head_merge must"),
    (lambda: L.aaren_layer(P._replace(W_k=P.W_k * 1e200), X * 1e200), ValueError,
     r"^the scores scale \* <params\.q, x W_k \+ b_k> must be finite.*overflowed"),
    (lambda: L.aaren_layer(P._replace(W_v=P.W_v * 1e200), X * 1e200), ValueError,
     r"^the values x W_v \+ b_v must be finite"),
], ids=["x-nan", "x_t-inf", "mask", "scale-str", "scale-nan", "step-scale-inf", "state",
        "head_merge", "score-overflow", "value-overflow"])
def test_layer_errors_name_the_layer_arguments(call, err, match):
    with pytest.raises(err) as info, np.errstate(over="ignore", invalid="ignore"):
        call()
    msg = str(info.value)
    assert re.search(match, msg), msg
    assert not INTERNAL.search(msg), msg


def test_absent_biases_are_accepted():
    p = L.init_aaren_params(rng, 4, 2, 3, 5, bias=False)
    y, _ = L.aaren_layer(p, X)
    y_t, _ = L.aaren_layer_step(p, X[:, 0])
    np.testing.assert_allclose(y[:, 0], y_t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("call,err,match", [
    (lambda: L.init_aaren_params(rng, 4.0, 2, 3, 5), TypeError, "D must be an integer"),
    (lambda: L.init_aaren_params(rng, 4, 0, 3, 5), ValueError, "H must be an integer >= 1"),
    (lambda: L.init_aaren_params(rng, 4, 2, 3, 5, dtype=np.int32), TypeError, "dtype"),
    (lambda: L.init_aaren_params("rng", 4, 2, 3, 5), TypeError, "rng"),
    (lambda: stack.init_aaren_block_params(rng, 4, 2, 3, 5, F=0), ValueError, "F must be"),
    (lambda: stack.init_aaren_stack_params(rng, 1.0, 4, 2, 3, 5), TypeError, "L must be"),
    (lambda: rnn.softmax_state_init(2, 2, 3, dtype=np.int64), TypeError, "dtype"),
    (lambda: rnn.softmax_state_init(2, 2, 0), ValueError, "Dv must be"),
    (lambda: rnn.lengths_to_mask(np.array([1, 2]), 3, padding="both"), ValueError, "padding"),
    (lambda: rnn.lengths_to_mask(np.array([1, 2]), 3.0), TypeError, "T must be"),
    (lambda: rnn.aaren_scan(P.q, np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 5)), method=None),
     TypeError, "method"),
])
def test_builders_check_their_arguments(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_aaren_scores_has_no_flag_to_suggest():
    with pytest.raises(ValueError, match=r"^q must be finite") as info:
        rnn.aaren_scores(np.full((2, 3), np.nan), np.zeros((1, 4, 2, 3)))
    assert "check_finite" not in str(info.value)
