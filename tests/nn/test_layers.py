"""Functional layers of refseq.nn: every backward against central finite differences with random
cotangents and random directions (never a ``.sum()`` cotangent, which would hide a transposed
gradient; docs/nn.md, "How the gradients are checked"), plus each layer's own properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refseq import nn
from refseq.nn.linear import linear_backward, linear_forward
from refseq.testing.gradcheck import assert_directional, cotangent_loss
from refseq.testing.strategies import normal, seeds


def check_vjp(forward, backward, args, wrt, rng):
    """Check ``backward`` against ``refseq.testing.gradcheck`` for each ``args[i]``, i in ``wrt``.

    A random cotangent ``dy`` (the loss is ``<dy, forward(*args)[0]>``) and one random direction
    ``d`` per checked argument, under gradcheck's rule plus one derived absolute floor,
    ``16 eps_64 max|dy| sum|d|``: a gradient that cancels to rounding level (cross-entropy over
    one class, whose loss is identically zero, so that gradcheck's round-off term ``S`` is 0)
    is ``dy`` times a difference of O(1) terms, each rounded once per entry of ``d``.
    """
    y, cache = forward(*args)
    dy = normal(rng, np.shape(y))
    grads = backward(dy, cache)
    assert len(grads) == len(args), "one gradient per forward array argument"
    work = list(args)  # float64 copies of the checked arguments, moved in place
    for i in wrt:
        work[i] = np.array(args[i], np.float64)
    loss = cotangent_loss(lambda: forward(*work)[0], dy)
    for i in wrt:
        d = normal(rng, args[i].shape)
        floor = 16 * np.finfo(np.float64).eps * float(np.abs(dy).max() * np.abs(d).sum())
        assert_directional(loss, {f"argument {i}": work[i]}, {f"argument {i}": grads[i]},
                           directions=[{f"argument {i}": d}], atol=floor)
    return grads


lead_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)
widths = st.integers(1, 6)

# ---------------------------------------------------------------- gradients (float64)


@given(seeds(), lead_shapes, widths, widths, st.booleans())
def test_linear_vjp(seed, lead, D_in, D_out, bias):
    rng = np.random.default_rng(seed)
    args = [normal(rng, (*lead, D_in)), normal(rng, (D_in, D_out))]
    args.append(normal(rng, (D_out,)) if bias else None)
    grads = check_vjp(linear_forward, linear_backward, args, [0, 1, 2][: 2 + bias], rng)
    assert (grads[2] is None) == (not bias)


@given(seeds(), lead_shapes, st.integers(1, 5), widths)
def test_embedding_vjp_accumulates_repeated_ids(seed, lead, V, D):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, (*lead, 3))  # repeats are likely: the scatter-add must accumulate

    def forward(E):
        return nn.embedding_forward(ids, E)

    (dE,) = check_vjp(forward, nn.embedding_backward, [normal(rng, (V, D))], [0], rng)
    assert dE.shape == (V, D)


@given(seeds(), lead_shapes, st.integers(2, 9), st.sampled_from(["layer", "rms"]))
def test_norm_vjp(seed, lead, D, kind):
    rng = np.random.default_rng(seed)
    x, gamma = normal(rng, (*lead, D), scale=3.0), normal(rng, (D,))
    if kind == "layer":
        args = [x + 2.0, gamma, normal(rng, (D,))]  # an offset the centring must remove
        check_vjp(nn.layer_norm_forward, nn.layer_norm_backward, args, [0, 1, 2], rng)
    else:
        check_vjp(nn.rms_norm_forward, nn.rms_norm_backward, [x, gamma], [0, 1], rng)


ACTS = {
    "gelu": (lambda x: nn.gelu_forward(x), nn.gelu_backward),
    "gelu_tanh": (lambda x: nn.gelu_forward(x, "tanh"), nn.gelu_backward),
    "silu": (nn.silu_forward, nn.silu_backward),
    "tanh": (nn.tanh_forward, nn.tanh_backward),
    "sigmoid": (nn.sigmoid_forward, nn.sigmoid_backward),
    "relu": (nn.relu_forward, nn.relu_backward),
}


@pytest.mark.parametrize("name", sorted(ACTS))
@given(seed=seeds(), lead=lead_shapes)
def test_activation_vjp(name, seed, lead):
    rng = np.random.default_rng(seed)
    forward, backward = ACTS[name]
    x = normal(rng, (*lead, 5), scale=2.0)
    if name == "relu":  # the kink at 0 outside gradcheck's stencil: 3 h |d_i| < 2e-3
        assume(np.abs(x).min() > 2e-3)
    check_vjp(forward, backward, [x], [0], rng)


@pytest.mark.parametrize("log", [False, True])
@given(seed=seeds(), lead=lead_shapes, V=st.integers(1, 7), axis=st.sampled_from([-1, 0]))
def test_softmax_vjp(log, seed, lead, V, axis):
    rng = np.random.default_rng(seed)
    fwd, bwd = ((nn.log_softmax_forward, nn.log_softmax_backward) if log
                else (nn.softmax_forward, nn.softmax_backward))
    check_vjp(lambda x: fwd(x, axis=axis), bwd, [normal(rng, (*lead, V), scale=3.0)], [0], rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(seed=seeds(), lead=lead_shapes, V=st.integers(1, 7),
       smoothing=st.sampled_from([0.0, 0.1, 1.0]), p_ignore=st.sampled_from([0.0, 0.3]))
def test_cross_entropy_vjp(reduction, seed, lead, V, smoothing, p_ignore):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, V, (*lead, 4))
    targets[rng.random(targets.shape) < p_ignore] = -100
    targets.flat[0] = rng.integers(0, V)  # at least one counted target: the mean is finite

    def forward(logits):
        return nn.cross_entropy_forward(logits, targets, label_smoothing=smoothing,
                                        reduction=reduction)

    logits = normal(rng, (*lead, 4, V), scale=3.0)
    check_vjp(forward, nn.cross_entropy_backward, [logits], [0], rng)


@given(seeds(), lead_shapes, st.sampled_from([0.0, 0.25, 0.5, 0.9]))
def test_dropout_vjp(seed, lead, p):
    rng = np.random.default_rng(seed)
    mask = rng.random((*lead, 5)) >= p
    check_vjp(lambda x: nn.dropout_forward(x, p, mask=mask), nn.dropout_backward,
              [normal(rng, (*lead, 5))], [0], rng)


@given(seed=seeds(), B=st.integers(1, 2), T=st.integers(1, 9), K=st.integers(1, 4),
       C_in=st.integers(1, 3), C_out=st.integers(1, 3), depthwise=st.booleans(),
       bias=st.booleans(), with_state=st.booleans())
def test_conv1d_vjp(seed, B, T, K, C_in, C_out, depthwise, bias, with_state):
    rng = np.random.default_rng(seed)
    C_out = C_in if depthwise else C_out
    W = normal(rng, (K, C_in) if depthwise else (K, C_in, C_out))
    args = [normal(rng, (B, T, C_in)), W, normal(rng, (C_out,)) if bias else None,
            normal(rng, (B, K - 1, C_in)) if with_state else None]
    groups = "depthwise" if depthwise else "dense"
    wrt = [i for i, a in enumerate(args) if a is not None]
    grads = check_vjp(lambda x, W, b, s: nn.conv1d_forward(x, W, b, s, groups=groups),
                      nn.conv1d_backward, args, wrt, rng)
    assert [g is None for g in grads] == [a is None for a in args]


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "swiglu"])
@given(seed=seeds(), lead=lead_shapes, D=widths, F=widths, bias=st.booleans())
def test_mlp_vjp(activation, seed, lead, D, F, bias):
    rng = np.random.default_rng(seed)
    params = nn.init_mlp_params(rng, D, F, activation, np.float64, bias=bias)
    params = nn.MLPParams(*(None if p is None else p + normal(rng, p.shape, scale=0.3)
                            for p in params))  # non-zero biases

    def forward(x, *p):
        return nn.mlp_forward(x, nn.MLPParams(*p), activation)

    def backward(dy, cache):
        dx, grads = nn.mlp_backward(dy, cache)
        assert isinstance(grads, nn.MLPParams)
        return (dx, *grads)

    args = [normal(rng, (*lead, D)), *params]
    check_vjp(forward, backward, args, [i for i, a in enumerate(args) if a is not None], rng)


@given(seeds(), lead_shapes, st.integers(1, 6), widths)
def test_position_embedding_vjp(seed, lead, T_max, D):
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, T_max, (*lead, 3))
    check_vjp(lambda P: nn.position_embedding_forward(positions, P),
              nn.position_embedding_backward, [normal(rng, (T_max, D))], [0], rng)


@given(seed=seeds(), B=st.integers(1, 2), T=st.integers(1, 6), H=st.integers(1, 3),
       half=st.integers(1, 4), shared=st.booleans())
def test_rope_vjp(seed, B, T, H, half, shared):
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, 50, (T,) if shared else (B, T))
    check_vjp(lambda x: nn.rope_forward(x, positions), nn.rope_backward,
              [normal(rng, (B, T, H, 2 * half))], [0], rng)


# ---------------------------------------------------------------- the check can fail


def test_gradient_check_catches_a_transposed_gradient():
    """A square linear map whose backward forgets the transpose: .sum() cotangents would miss
    it for a symmetric-sum pattern; random cotangents do not."""
    rng = np.random.default_rng(0)
    W = normal(rng, (4, 4))

    def wrong_backward(dy, cache):
        dx, dW, db = linear_backward(dy, cache)
        return dy @ cache.W, dW, db

    with pytest.raises(AssertionError, match="argument 0"):
        check_vjp(linear_forward, wrong_backward, [normal(rng, (3, 4)), W, None], [0], rng)


# ---------------------------------------------------------------- dtypes

DTYPE_CASES = {
    "linear": lambda r, t: linear_forward(normal(r, (2, 3), t), normal(r, (3, 4), t),
                                             normal(r, (4,), t)),
    "layer_norm": lambda r, t: nn.layer_norm_forward(normal(r, (2, 3), t), normal(r, (3,), t),
                                                     normal(r, (3,), t)),
    "rms_norm": lambda r, t: nn.rms_norm_forward(normal(r, (2, 3), t), normal(r, (3,), t)),
    "gelu": lambda r, t: nn.gelu_forward(normal(r, (2, 3), t)),
    "gelu_tanh": lambda r, t: nn.gelu_forward(normal(r, (2, 3), t), "tanh"),
    "silu": lambda r, t: nn.silu_forward(normal(r, (2, 3), t)),
    "tanh": lambda r, t: nn.tanh_forward(normal(r, (2, 3), t)),
    "sigmoid": lambda r, t: nn.sigmoid_forward(normal(r, (2, 3), t)),
    "relu": lambda r, t: nn.relu_forward(normal(r, (2, 3), t)),
    "softmax": lambda r, t: nn.softmax_forward(normal(r, (2, 3), t)),
    "log_softmax": lambda r, t: nn.log_softmax_forward(normal(r, (2, 3), t)),
    "cross_entropy": lambda r, t: nn.cross_entropy_forward(normal(r, (2, 3), t),
                                                           np.array([0, 2])),
    "dropout": lambda r, t: nn.dropout_forward(normal(r, (2, 3), t), 0.5, rng=1),
    "conv1d": lambda r, t: nn.conv1d_forward(normal(r, (2, 5, 3), t), normal(r, (3, 3, 2), t),
                                             normal(r, (2,), t), normal(r, (2, 2, 3), t)),
    "mlp": lambda r, t: nn.mlp_forward(normal(r, (2, 3), t),
                                       nn.init_mlp_params(r, 3, 4, "swiglu", t), "swiglu"),
    "embedding": lambda r, t: nn.embedding_forward(np.array([[0, 2]]), normal(r, (3, 4), t)),
    "position": lambda r, t: nn.position_embedding_forward(np.arange(2), normal(r, (3, 4), t)),
    "rope": lambda r, t: nn.rope_forward(normal(r, (1, 3, 2, 4), t), np.arange(3)),
}
BACKWARD = {"gelu_tanh": "gelu", "position": "position_embedding"}


@pytest.mark.parametrize("name", sorted(DTYPE_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_in_is_dtype_out(name, dtype):
    """float32 in -> float32 out, gradients included; float32 agrees with float64 to float32
    accuracy (a sanity check of the casts; accuracy is what the gradient checks test)."""
    runs = {}
    for t in (dtype, np.float64):
        y, cache = DTYPE_CASES[name](np.random.default_rng(0), t)
        backward = getattr(nn, BACKWARD.get(name, name) + "_backward")
        dy = normal(np.random.default_rng(1), np.shape(y), t)
        grads = backward(dy, cache)
        runs[t] = [y, *[g for g in nn_leaves(grads)]]
    for a, b in zip(runs[dtype], runs[np.float64]):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def nn_leaves(grads):
    for g in grads:
        if isinstance(g, tuple):
            yield from nn_leaves(g)
        elif g is not None:
            yield g


# ---------------------------------------------------------------- bad input

BAD = [
    (lambda: linear_forward(np.ones((2, 3)), np.ones((4, 2))), ValueError, "W"),
    (lambda: linear_forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(3)), ValueError, "b"),
    (lambda: linear_forward(np.ones((2, 3), int), np.ones((3, 2))), TypeError, "x"),
    (lambda: linear_forward(np.ones((2, 3)), np.ones((3, 2), np.float16)), TypeError, "W"),
    (lambda: nn.embedding_forward(np.array([0, 3]), np.ones((3, 2))), ValueError, "ids"),
    (lambda: nn.embedding_forward(np.array([-1]), np.ones((3, 2))), ValueError, "ids"),
    (lambda: nn.embedding_forward(np.array([0.0]), np.ones((3, 2))), TypeError, "ids"),
    (lambda: nn.embedding_forward(np.array([0]), np.ones(3)), ValueError, "E"),
    (lambda: nn.layer_norm_forward(np.ones((2, 3)), np.ones(2), np.ones(3)), ValueError, "gamma"),
    (lambda: nn.layer_norm_forward(np.ones((2, 3)), np.ones(3), np.ones(4)), ValueError, "beta"),
    (lambda: nn.rms_norm_forward(np.ones((2, 3)), np.ones(4)), ValueError, "gamma"),
    (lambda: nn.gelu_forward(np.ones(3), "erf"), ValueError, "approximate"),
    (lambda: nn.relu_forward([1, 2]), TypeError, "x"),
    (lambda: nn.cross_entropy_forward(np.ones((2, 3)), np.array([0, 3])), ValueError, "targets"),
    (lambda: nn.cross_entropy_forward(np.ones((2, 3)), np.array([0])), ValueError, "targets"),
    (lambda: nn.cross_entropy_forward(np.ones((2, 3)), np.zeros(2)), TypeError, "targets"),
    (lambda: nn.cross_entropy_forward(np.ones((2, 3)), np.zeros(2, int), reduction="avg"),
     ValueError, "reduction"),
    (lambda: nn.cross_entropy_forward(np.ones((2, 3)), np.zeros(2, int), label_smoothing=1.5),
     ValueError, "label_smoothing"),
    (lambda: nn.dropout_forward(np.ones(3), 1.5), ValueError, "p"),
    (lambda: nn.dropout_forward(np.ones(3), 0.5, mask=np.ones(2, bool)), ValueError, "mask"),
    (lambda: nn.conv1d_forward(np.ones((2, 3)), np.ones((2, 3, 1))), ValueError, "x"),
    (lambda: nn.conv1d_forward(np.ones((1, 2, 3)), np.ones((2, 2, 1))), ValueError, "W"),
    (lambda: nn.conv1d_forward(np.ones((1, 2, 3)), np.ones((2, 2)), groups="depthwise"),
     ValueError, "W"),
    (lambda: nn.conv1d_forward(np.ones((1, 2, 3)), np.ones((2, 3, 1)), state=np.ones((1, 2, 3))),
     ValueError, "state"),
    (lambda: nn.conv1d_forward(np.ones((1, 2, 3)), np.ones((2, 3, 1)), groups="grouped"),
     ValueError, "groups"),
    (lambda: nn.mlp_forward(np.ones((2, 3)), (1, 2, 3, 4)), TypeError, "params"),
    (lambda: nn.mlp_forward(np.ones((2, 3)), nn.init_mlp_params(0, 3, 4), "swiglu"),
     ValueError, "W_gate"),
    (lambda: nn.mlp_forward(np.ones((2, 3)), nn.init_mlp_params(0, 3, 4), "relu"),
     ValueError, "activation"),
    (lambda: nn.position_embedding_forward(np.array([0, 4]), np.ones((4, 2))), ValueError,
     "positions"),
    (lambda: nn.rope_forward(np.ones((2, 1, 3)), np.arange(2)), ValueError, "Dh"),
    (lambda: nn.rope_forward(np.ones((2, 1, 4)), np.arange(3)), ValueError, "positions"),
    (lambda: nn.rope_forward(np.ones((2, 1, 4)), np.zeros(2)), TypeError, "positions"),
    (lambda: nn.rope_forward(np.ones((3, 2, 1, 4)), np.zeros((2, 2), int)), ValueError,
     "positions"),
    (lambda: linear_backward(np.ones((2, 5)), linear_forward(np.ones((2, 3)),
                                                                   np.ones((3, 4)))[1]),
     ValueError, "dy"),
]


@pytest.mark.parametrize("call, error, name", BAD)
def test_bad_input_names_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
