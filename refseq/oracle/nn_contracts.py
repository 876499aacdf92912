"""Contracts of the attention functions and the ``refseq.nn`` layers (see :mod:`.catalog`).

Each layer with a backward has two contracts: ``NAME`` (the forward, whose backward the oracle
also checks through autograd or ``backward=``) and ``NAME_backward``, made by
:func:`backward_contract`: ``NAME_backward(dy, *inputs) -> (d input, ...)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["backward_contract", "register_all"]

_ODD = {"B": 3, "T": 37, "H": 3, "D": 5, "K": 7}


def _layer_norm_inputs(rng, dims, dtype):
    B, T, D = dims["B"], dims["T"], dims["D"]
    x = rng.standard_normal((B, T, D)).astype(dtype)
    gamma = (1 + 0.1 * rng.standard_normal(D)).astype(dtype)
    beta = (0.1 * rng.standard_normal(D)).astype(dtype)
    return (x, gamma, beta), {}


def _rms_norm_inputs(rng, dims, dtype):
    (x, gamma, _), kw = _layer_norm_inputs(rng, dims, dtype)
    return (x, gamma), kw


def _x_inputs(rng, dims, dtype):
    return ((3.0 * rng.standard_normal((dims["B"], dims["T"], dims["D"]))).astype(dtype),), {}


def _linear_inputs(rng, dims, dtype):
    B, T, D, K = dims["B"], dims["T"], dims["D"], dims["K"]
    x = rng.standard_normal((B, T, D)).astype(dtype)
    W = (rng.standard_normal((D, K)) / np.sqrt(D)).astype(dtype)
    b = (0.1 * rng.standard_normal(K)).astype(dtype)
    return (x, W, b), {}


def _attention_inputs(rng, dims, dtype):
    B, T, H, D = dims["B"], dims["T"], dims["H"], dims["D"]
    q, k, v = (rng.standard_normal((B, T, H, D)).astype(dtype) for _ in range(3))
    mask = rng.random((B, T)) > 0.1
    return (q, k, v, mask), {}


def _aaren_inputs(rng, dims, dtype):
    (_, k, v, mask), _ = _attention_inputs(rng, dims, dtype)
    q = rng.standard_normal((dims["H"], dims["D"])).astype(dtype)
    return (q, k, v, mask), {}


def _aaren_reference(q, k, v, mask, state=None):
    from refseq.papers.aaren.rnn import aaren_scan

    return aaren_scan(q, k, v, mask, state=state)


def _carry_aaren(fn, args, kw, k):
    q, keys, v, mask = args
    o1, state = fn(q, keys[:, :k], v[:, :k], mask[:, :k], None, **kw)
    o2, state = fn(q, keys[:, k:], v[:, k:], mask[:, k:], state, **kw)
    return np.concatenate([o1, o2], axis=1), tuple(state)


def _first(forward):
    """The reference ``forward(*args)[0]`` (the ``refseq.nn`` forwards return ``(y, cache)``)."""

    def reference(*args, **kw):
        return forward(*args, **kw)[0]

    reference.__name__ = forward.__name__
    return reference


def _vjp_of(forward, backward, n_diff):
    """A ``vjp`` from a ``refseq.nn`` pair ``forward -> (y, cache)``, ``backward(dy, cache)``."""

    def vjp(args, kw, cts):
        _, cache = forward(*args, **kw)
        grads = backward(cts[0], cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        return tuple(grads[:n_diff])

    return vjp


def _scale_all(factor):
    def large(args, kw):
        return tuple(x * factor if isinstance(x, np.ndarray) and x.dtype.kind == "f" and i == 0
                     else x for i, x in enumerate(args)), kw

    return large


def backward_contract(forward):
    """The contract ``NAME_backward(dy, *inputs) -> grads`` of a forward contract with a vjp:
    its reference is the forward's ``vjp``, its inputs the forward's plus a random ``dy``."""
    from refseq.oracle.catalog import Contract

    def make_inputs(rng, dims, dtype):
        args, kw = forward.make_inputs(rng, dims, np.float64)
        y = forward.reference(*args, **kw)
        dy = rng.standard_normal(np.shape(y))
        return tuple(np.asarray(x).astype(dtype) if np.asarray(x).dtype.kind == "f" else x
                     for x in (dy,) + tuple(args)), kw

    def reference(dy, *args, **kw):
        return tuple(forward.vjp(args, kw, (dy,)))

    names = forward.signature.split("(", 1)[1].split(")")[0]
    return Contract(
        name=f"{forward.name}_backward",
        signature=f"{forward.name}_backward(dy, {names}) -> gradients of the inputs",
        layouts={"dy": "the forward output's shape", **forward.layouts},
        outputs=f"the gradients of sum(dy * {forward.name}(...)) for its inputs, in order",
        reference=reference, make_inputs=make_inputs, dims=forward.dims,
        odd_dims=forward.odd_dims, kind="backward", modules=forward.modules,
        error_samples=forward.error_samples)


def register_all(register):
    """Register the attention and ``refseq.nn`` contracts with ``register``.

    They take two backward-error and two rounding samples (``error_samples=2``): their small
    cases (T = 1, a few entries) go through ``exp``, ``erf``, ``tanh`` whose float32 rounding
    differs between libraries, and one float32 run of the reference can be luckily exact.
    """
    import importlib

    activations, linear, norms, softmax = (importlib.import_module(f"refseq.nn.{m}") for m in
                                           ("activations", "linear", "norms", "softmax"))
    from refseq.nn.softmax_attention import causal_softmax_attention
    from refseq.oracle.catalog import Contract
    btd = {"B": (1, 3), "T": (1, 17), "D": (1, 9)}
    odd = {k: _ODD[k] for k in ("B", "T", "D")}
    register(Contract(
        name="causal_softmax_attention",
        signature="causal_softmax_attention(q, k, v, mask) -> o",
        layouts={"q": "(B, T, H, Dk)", "k": "(B, T, H, Dk)", "v": "(B, T, H, Dv)",
                 "mask": "(B, T) bool (False: padding key)", "o": "(B, T, H, Dv)"},
        outputs="o_i = sum_{j <= i, valid} softmax_j(<q_i, k_j> / sqrt(Dk)) v_j",
        reference=causal_softmax_attention, make_inputs=_attention_inputs,
        dims={"B": (1, 3), "T": (1, 17), "H": (1, 3), "D": (1, 6)},
        odd_dims={"B": 3, "T": 19, "H": 3, "D": 5}, modules=("refseq.nn",), error_samples=2,
        large=lambda args, kw: ((args[0] * 10, args[1], args[2] * 1e3, args[3]), kw)))
    register(Contract(
        name="aaren_scan",
        signature="aaren_scan(q, k, v, mask, state=None) -> (o, (m, u, w))",
        layouts={"q": "(H, Dk) (one learned query per head)", "k": "(B, T, H, Dk)",
                 "v": "(B, T, H, Dv)", "mask": "(B, T) bool", "o": "(B, T, H, Dv)"},
        outputs="Aaren attention of every prefix and the final state (m, u, w) to carry on",
        reference=_aaren_reference, make_inputs=_aaren_inputs,
        dims={"B": (1, 3), "T": (1, 40), "H": (1, 3), "D": (1, 6)},
        odd_dims={"B": 3, "T": 37, "H": 3, "D": 5}, modules=("refseq.papers.aaren", "refseq.scan"),
        error_samples=2,
        carry=_carry_aaren,
        large=lambda args, kw: ((args[0] * 10, args[1], args[2] * 1e3, args[3]), kw)))
    layers = [
        ("layer_norm", "layer_norm(x, gamma, beta) -> y", norms.layer_norm_forward,
         norms.layer_norm_backward, _layer_norm_inputs, 3,
         {"x": "(B, T, D)", "gamma": "(D,)", "beta": "(D,)"}, "normalised over the last axis, "
         "eps = 1e-5 (biased variance)"),
        ("rms_norm", "rms_norm(x, gamma) -> y", norms.rms_norm_forward, norms.rms_norm_backward,
         _rms_norm_inputs, 2, {"x": "(B, T, D)", "gamma": "(D,)"}, "x / rms(x) * gamma, "
         "eps = 1e-6"),
        ("linear", "linear(x, W, b) -> y", linear.linear_forward, linear.linear_backward,
         _linear_inputs, 3, {"x": "(B, T, D)", "W": "(D, K) (y = x W + b)", "b": "(K,)"},
         "y = x W + b"),
        ("softmax", "softmax(x) -> y", softmax.softmax_forward, softmax.softmax_backward,
         _x_inputs, 1, {"x": "(B, T, D)"}, "softmax over the last axis"),
        ("log_softmax", "log_softmax(x) -> y", softmax.log_softmax_forward,
         softmax.log_softmax_backward, _x_inputs, 1, {"x": "(B, T, D)"},
         "log-softmax over the last axis"),
        ("gelu", "gelu(x) -> y", activations.gelu_forward, activations.gelu_backward,
         _x_inputs, 1, {"x": "(B, T, D)"}, "exact GELU, x Phi(x)"),
        ("silu", "silu(x) -> y", activations.silu_forward, activations.silu_backward,
         _x_inputs, 1, {"x": "(B, T, D)"}, "SiLU / swish, x sigmoid(x)"),
        ("tanh", "tanh(x) -> y", activations.tanh_forward, activations.tanh_backward,
         _x_inputs, 1, {"x": "(B, T, D)"}, "tanh(x)"),
        ("sigmoid", "sigmoid(x) -> y", activations.sigmoid_forward,
         activations.sigmoid_backward, _x_inputs, 1, {"x": "(B, T, D)"},
         "1 / (1 + exp(-x))"),
        ("relu", "relu(x) -> y", activations.relu_forward, activations.relu_backward,
         _x_inputs, 1, {"x": "(B, T, D)"}, "max(x, 0) (gradient 0 at x = 0)"),
    ]
    for name, sig, fwd, bwd, make, n, layouts, what in layers:
        dims = dict(btd, K=(1, 7)) if name == "linear" else btd
        if name == "layer_norm":  # with D = 1 every row normalises to 0: no layer norm at all
            dims = dict(btd, D=(2, 9))
        forward = Contract(
            name=name, signature=sig, layouts=layouts, outputs=f"y, {what}",
            reference=_first(fwd), make_inputs=make, dims=dims,
            odd_dims=dict(odd, K=7) if name == "linear" else odd, modules=("refseq.nn",),
            error_samples=2,
            large=_scale_all(1e3 if "norm" in name or name == "linear" else 30.0),
            vjp=_vjp_of(fwd, bwd, n), diff=tuple(range(n)),
            backward_contract=f"{name}_backward")
        register(forward)
        register(backward_contract(forward))
    from refseq.oracle.nn_more import register_more

    register_more(register)
