"""Option keywords of refseq.nn are checked: a wrong kind (str, bool, None, float for an int,
an integer dtype) is a ``TypeError``, a wrong value (NaN, out of range) a ``ValueError``; both
name the argument. Each row would be accepted, silently wrong, without its check (e.g.
``eps=-1`` gives NaN rows, ``base=0`` infinite angles, ``capacity=-1`` an empty buffer)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq import _checks, nn
from refseq.decoding import interfaces
from refseq.nn import activations, attention, conv1d, dropout, mlp, norms, positions, softmax
from refseq.nn import softmax_attention as sa

nan = math.nan
rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4))
G, Bt = np.ones(4), np.zeros(4)
MHA = attention.init_mha_params(rng, 4)
Q = rng.standard_normal((2, 3, 2, 4))

CASES = [
    ("layer_norm-eps-neg", lambda **k: norms.layer_norm_forward(X, G, Bt, **k), dict(eps=-1.0),
     ValueError, "eps must be a number >= 0"),
    ("layer_norm-eps-nan", lambda **k: norms.layer_norm_forward(X, G, Bt, **k), dict(eps=nan),
     ValueError, "eps must be a finite number"),
    ("layer_norm-eps-str", lambda **k: norms.layer_norm_forward(X, G, Bt, **k), dict(eps="1e-5"),
     TypeError, "eps must be a real number"),
    ("rms_norm-eps-neg", lambda **k: norms.rms_norm_forward(X, G, **k), dict(eps=-1.0),
     ValueError, "eps"),
    ("basic.layer_norm-eps", lambda **k: nn.layer_norm(X, G, Bt, **k), dict(eps=None),
     TypeError, "eps"),
    ("log_softmax-axis", lambda **k: softmax.log_softmax_forward(X, **k), dict(axis=3),
     ValueError, "axis must lie in"),
    ("softmax-axis-float", lambda **k: softmax.softmax_forward(X, **k), dict(axis=-1.0),
     TypeError, "axis must be an integer"),
    ("cross_entropy-smoothing-nan", lambda **k: softmax.cross_entropy_forward(
        X, np.zeros((2, 3), int), **k), dict(label_smoothing=nan), ValueError,
     "label_smoothing"),
    ("cross_entropy-smoothing-str", lambda **k: softmax.cross_entropy_forward(
        X, np.zeros((2, 3), int), **k), dict(label_smoothing="0.1"), TypeError,
     "label_smoothing"),
    ("cross_entropy-ignore_index", lambda **k: softmax.cross_entropy_forward(
        X, np.zeros((2, 3), int), **k), dict(ignore_index=-1.5), TypeError, "ignore_index"),
    ("cross_entropy-reduction", lambda **k: softmax.cross_entropy_forward(
        X, np.zeros((2, 3), int), **k), dict(reduction=None), TypeError, "reduction"),
    ("dropout-p-nan", lambda **k: dropout.dropout_forward(X, rng=0, **k), dict(p=nan),
     ValueError, "p must be a finite number"),
    ("dropout-p-str", lambda **k: dropout.dropout_forward(X, rng=0, **k), dict(p="0.5"),
     TypeError, "p must be a real number"),
    ("dropout-p-range", lambda **k: dropout.dropout_forward(X, rng=0, **k), dict(p=1.5),
     ValueError, "p must be a number >= 0 and <= 1"),
    ("dropout-rng", lambda **k: dropout.dropout_forward(X, 0.5, **k), dict(rng="seed"),
     TypeError, "rng"),
    ("rope-base-zero", lambda **k: positions.rope_forward(Q, np.arange(3), **k), dict(base=0.0),
     ValueError, "base must be a number > 1"),
    ("rope-base-str", lambda **k: positions.rope_forward(Q, np.arange(3), **k),
     dict(base="1e4"), TypeError, "base"),
    ("rope_angles-Dh", lambda **k: positions.rope_angles(np.arange(3), **k), dict(Dh=3),
     ValueError, "Dh must be even"),
    ("mha-n_heads-float", lambda **k: attention.mha_forward(X, MHA, **k), dict(n_heads=2.0),
     TypeError, "n_heads must be an integer"),
    ("mha-n_heads-zero", lambda **k: attention.mha_forward(X, MHA, **k), dict(n_heads=0),
     ValueError, "n_heads"),
    ("mha-rope_base", lambda **k: attention.mha_forward(X, MHA, 2, rope=True, **k),
     dict(rope_base=-1.0), ValueError, "rope_base"),
    ("attention-scale", lambda **k: attention.attention_forward(
        Q, Q, Q, np.ones((3, 3), bool), **k), dict(scale="1"), TypeError, "scale"),
    ("init_mha-dtype", lambda **k: attention.init_mha_params(rng, 4, **k),
     dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    ("init_mha-D", lambda **k: attention.init_mha_params(rng, **k), dict(D=0), ValueError, "D"),
    ("init_mha-std", lambda **k: attention.init_mha_params(rng, 4, **k), dict(std=nan),
     ValueError, "std"),
    ("causal_allow_mask-T", lambda **k: attention.causal_allow_mask(**k), dict(T=-1),
     ValueError, "T must be an integer >= 0"),
    ("init_mlp-dtype", lambda **k: mlp.init_mlp_params(rng, 4, 8, **k), dict(dtype="int64"),
     TypeError, "dtype"),
    ("init_mlp-D_hidden", lambda **k: mlp.init_mlp_params(rng, 4, **k), dict(D_hidden=8.0),
     TypeError, "D_hidden"),
    ("init_mlp-activation", lambda **k: mlp.init_mlp_params(rng, 4, 8, **k),
     dict(activation=None), TypeError, "activation"),
    ("gelu-approximate", lambda **k: activations.gelu_forward(X, **k), dict(approximate=True),
     TypeError, "approximate"),
    ("conv1d-groups", lambda **k: conv1d.conv1d_forward(X, np.ones((2, 4, 4)), **k),
     dict(groups=1), TypeError, "groups"),
    ("kv_cache_init-capacity", lambda **k: sa.kv_cache_init(1, 2, 3, 3, **k),
     dict(capacity=-1), ValueError, "capacity must be an integer >= 1"),
    ("kv_cache_init-capacity-float", lambda **k: sa.kv_cache_init(1, 2, 3, 3, **k),
     dict(capacity=2.5), TypeError, "capacity"),
    ("kv_cache_init-dtype", lambda **k: sa.kv_cache_init(1, 2, 3, 3, **k),
     dict(dtype=np.int32), TypeError, "dtype"),
    ("kv_cache_init-B", lambda **k: sa.kv_cache_init(H=2, Dk=3, Dv=3, **k), dict(B=0),
     ValueError, "B must be"),
    ("decoding.log_softmax-dtype", lambda **k: interfaces.log_softmax(X, **k),
     dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    ("decoding.log_softmax-logits", lambda **k: interfaces.log_softmax(**k),
     dict(logits=np.arange(3)), TypeError, "logits must have dtype"),
    ("decoding.log_softmax-axis", lambda **k: interfaces.log_softmax(X, **k), dict(axis=3),
     ValueError, "axis"),
    ("PrefixLM-vocab_size", lambda **k: interfaces.PrefixLM(lambda p: None, **k),
     dict(vocab_size=0), ValueError, "vocab_size"),
    ("logprobs_fn-compute_dtype", lambda **k: interfaces.logprobs_fn(
        interfaces.PrefixLM(lambda p: None, 3), **k), dict(compute_dtype=int), TypeError,
     "compute_dtype"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_option_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)


def test_log_softmax_int_dtype_no_longer_truncates():
    """The bug: ``log_softmax(logits, dtype=np.int32)`` cast 0.9 to 0 before normalising."""
    logits = np.array([0.9, 0.1, -2.3])
    want = logits - np.log(np.exp(logits).sum())
    np.testing.assert_allclose(interfaces.log_softmax(logits), want, rtol=1e-15)
    np.testing.assert_allclose(interfaces.log_softmax(logits, dtype=np.float32), want, rtol=1e-6)
    with pytest.raises(TypeError, match="dtype"):
        interfaces.log_softmax(logits, dtype=np.int32)


@pytest.mark.parametrize("value,kw,err,match", [
    (1, dict(integer=True, low=0), None, None),
    (np.int64(3), dict(integer=True), None, None),
    (2.5, dict(low=0, low_open=True), None, None),
    (np.float32(0.5), dict(high=1), None, None),
    (math.inf, dict(allow_inf=True), None, None),
    (None, dict(allow_none=True), None, None),
    (True, {}, TypeError, r"x must be a real number \(int or float\), got True \(bool\)"),
    (np.True_, dict(integer=True), TypeError, "x must be an integer"),
    ("1", {}, TypeError, r"got '1' \(str\)"),
    (None, {}, TypeError, r"got None \(NoneType\)"),
    (np.array(1.0), {}, TypeError, r"\(ndarray\)"),
    (1.0, dict(integer=True), TypeError, "x must be an integer"),
    (nan, {}, ValueError, "x must be a finite number, got nan"),
    (math.inf, {}, ValueError, "x must be a finite number, got inf"),
    (0.0, dict(low=0, low_open=True), ValueError, r"x must be a number > 0, got 0.0"),
    (1.0, dict(low=0, high=1, high_open=True), ValueError, r"x must be a number >= 0 and < 1"),
    (-1, dict(integer=True, low=0), ValueError, r"x must be an integer >= 0, got -1"),
])
def test_check_number(value, kw, err, match):
    if err is None:
        out = _checks.check_number(value, "x", **kw)
        assert out == value or (out is None and value is None)
        assert type(out) in ((int,) if kw.get("integer") else (float, type(None)))
        return
    with pytest.raises(err, match=match):
        _checks.check_number(value, "x", **kw)


@pytest.mark.parametrize("dtype,ok", [(np.float32, True), ("float64", True), (float, True),
                                      (np.dtype("f4"), True), (np.int32, False), (bool, False),
                                      (np.float16, False), (np.complex128, False), (None, False),
                                      ("nonsense", False), (1.0, False)])
def test_check_float_dtype(dtype, ok):
    if ok:
        assert _checks.check_float_dtype(dtype, "dtype") in _checks.FLOAT_DTYPES
    else:
        with pytest.raises(TypeError, match="dtype must be float32 or float64"):
            _checks.check_float_dtype(dtype, "dtype")


def test_check_choice_axis_rng():
    assert _checks.check_choice("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"mode must be one of \('a', 'b'\), got 'c'"):
        _checks.check_choice("c", "mode", ("a", "b"))
    with pytest.raises(TypeError, match="mode must be one of"):
        _checks.check_choice(None, "mode", ("a", "b"))
    assert _checks.check_axis(-1, 3) == 2
    with pytest.raises(ValueError, match=r"axis must lie in \[-3, 3\)"):
        _checks.check_axis(3, 3)
    g = np.random.default_rng(0)
    assert _checks.check_rng(g) is g
    assert _checks.check_rng(5).random() == np.random.default_rng(5).random()
    for bad in ("0", 1.5, True):
        with pytest.raises(TypeError, match="rng"):
            _checks.check_rng(bad)
    with pytest.raises(ValueError, match="rng"):
        _checks.check_rng(-1)


def test_check_finite_hint():
    with pytest.raises(ValueError, match=r"x must be finite; .* \(pass check_finite=False"):
        _checks.check_finite(np.array([np.nan]), "x")
    with pytest.raises(ValueError, match=r"x must be finite; found nan at index \(0,\)$"):
        _checks.check_finite(np.array([np.nan]), "x", hint="")


def test_no_check_finite_hint_where_there_is_no_flag():
    """``causal_softmax_attention`` has no ``check_finite`` keyword: its message must not
    suggest one; ``kv_attention_step`` has one and its message points to it."""
    q = np.zeros((1, 2, 1, 2))
    with pytest.raises(ValueError, match=r"^q must be finite") as info:
        sa.causal_softmax_attention(q * np.nan, q, q)
    assert "check_finite" not in str(info.value)
    cache = sa.kv_cache_init(1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"check_finite=False"):
        sa.kv_attention_step(np.full((1, 1, 2), np.nan), np.zeros((1, 1, 2)),
                             np.zeros((1, 1, 2)), cache)
