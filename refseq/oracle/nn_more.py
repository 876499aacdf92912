"""More layer contracts (see :mod:`.nn_contracts`, whose ``register_all`` calls
:func:`register_more`): ``cross_entropy``, ``embedding``, ``position_embedding`` and ``rope``
(integer targets, ids and positions among their inputs), ``dropout`` (with its mask as an
input, so that the user's function and the reference drop the same entries), the GPT-2 ``mlp``,
``conv1d`` and the Aaren layer, each with its ``NAME_backward``."""

from __future__ import annotations

import numpy as np

__all__ = ["register_more"]


def _cross_entropy_inputs(rng, dims, dtype):
    B, T, V = dims["B"], dims["T"], dims["V"]
    logits = (3.0 * rng.standard_normal((B, T, V))).astype(dtype)
    targets = rng.integers(0, V, size=(B, T), dtype=np.int64)  # valid class ids only
    return (logits, targets), {}


def _embedding_inputs(rng, dims, dtype):
    B, T, V, D = dims["B"], dims["T"], dims["V"], dims["D"]
    ids = rng.integers(0, V, size=(B, T), dtype=np.int64)  # V < B T: ids repeat
    E = rng.standard_normal((V, D)).astype(dtype)
    return (ids, E), {}


def _rope_inputs(rng, dims, dtype):
    B, T, H, D = dims["B"], dims["T"], dims["H"], dims["D"]
    x = rng.standard_normal((B, T, H, 2 * D)).astype(dtype)
    start = int(rng.integers(0, 50))
    positions = np.arange(start, start + T, dtype=np.int64)  # (T,) shared by the batch
    return (x, positions), {}


def _position_embedding_inputs(rng, dims, dtype):
    B, T, D = dims["B"], dims["T"], dims["D"]
    T_max = T + int(rng.integers(0, 4))
    positions = np.broadcast_to(np.arange(T, dtype=np.int64), (B, T)).copy()
    P = rng.standard_normal((T_max, D)).astype(dtype)
    return (positions, P), {}


def _dropout_inputs(rng, dims, dtype):
    B, T, D = dims["B"], dims["T"], dims["D"]
    p = float(rng.choice([0.0, 0.1, 0.5, 0.9]))
    x = rng.standard_normal((B, T, D)).astype(dtype)
    mask = rng.random((B, T, D)) >= p
    return (x, mask), {"p": p}


def _dropout(x, mask, *, p):
    from refseq.nn.dropout import dropout_forward

    return dropout_forward(x, p, mask=mask)


def _mlp_inputs(rng, dims, dtype):
    B, T, D, F = dims["B"], dims["T"], dims["D"], dims["F"]
    x = rng.standard_normal((B, T, D)).astype(dtype)
    W_in = (rng.standard_normal((D, F)) / np.sqrt(D)).astype(dtype)
    W_out = (rng.standard_normal((F, D)) / np.sqrt(F)).astype(dtype)
    b_in = (0.1 * rng.standard_normal(F)).astype(dtype)
    b_out = (0.1 * rng.standard_normal(D)).astype(dtype)
    return (x, W_in, b_in, W_out, b_out), {}


def _mlp(x, W_in, b_in, W_out, b_out):
    from refseq.nn.mlp import MLPParams, mlp_forward

    return mlp_forward(x, MLPParams(W_in, b_in, W_out, b_out), "gelu")


def _mlp_backward(dy, cache):
    from refseq.nn.mlp import mlp_backward

    dx, g = mlp_backward(dy, cache)
    return dx, g.W_in, g.b_in, g.W_out, g.b_out


def _conv1d_inputs(rng, dims, dtype):
    B, T, D, K, O = dims["B"], dims["T"], dims["D"], dims["K"], dims["O"]
    x = rng.standard_normal((B, T, D)).astype(dtype)
    W = (rng.standard_normal((K, D, O)) / np.sqrt(K * D)).astype(dtype)
    b = (0.1 * rng.standard_normal(O)).astype(dtype)
    return (x, W, b), {}


def _aaren_layer_inputs(rng, dims, dtype):
    B, T, D, H, E = dims["B"], dims["T"], dims["D"], dims["H"], dims["E"]

    def draw(*shape, std=1.0):
        return (std * rng.standard_normal(shape)).astype(dtype)

    x = draw(B, T, D)
    params = (draw(H, E), draw(D, H * E, std=D ** -0.5), draw(H * E, std=0.1),
              draw(D, H * E, std=D ** -0.5), draw(H * E, std=0.1),
              draw(H * E, D, std=(H * E) ** -0.5), draw(D, std=0.1))
    mask = rng.random((B, T)) > 0.1
    return (x, *params, mask), {}


def _aaren_layer_reference(x, q, W_k, b_k, W_v, b_v, W_o, b_o, mask):
    from refseq.papers.aaren.layer import AarenParams, aaren_layer

    return aaren_layer(AarenParams(q, W_k, b_k, W_v, b_v, W_o, b_o), x, mask)[0]


def _aaren_layer_vjp(args, kw, cts):
    """The gradients for x, q, W_k, W_v, b_v, W_o, b_o, chained through softmax_scan_backward
    (not for b_k: it shifts every score of a head by the same q . b_k, which the softmax ignores,
    so its gradient is identically 0 and any implementation's value is rounding noise)."""
    from refseq.scan import softmax_scan, softmax_scan_backward

    x, q, W_k, b_k, W_v, b_v, W_o, b_o, mask = args
    (dy,) = cts
    B, T, D = x.shape
    H, E = q.shape
    scale = x.dtype.type(1 / np.sqrt(E))
    K = (x @ W_k + b_k).reshape(B, T, H, E)
    V = (x @ W_v + b_v).reshape(B, T, H, E)
    s = scale * np.einsum("he,bthe->bth", q, K)
    o, _ = softmax_scan(s, V, mask)
    o_flat = o.reshape(B, T, H * E)
    dW_o = np.einsum("bti,btj->ij", o_flat, dy)
    do = (dy @ W_o.T).reshape(B, T, H, E)
    gs, gv = softmax_scan_backward(s, V, do, mask)[:2]
    dK = (scale * gs[..., None] * q).reshape(B, T, H * E)
    dq = scale * np.einsum("bth,bthe->he", gs, K)
    dV = gv.reshape(B, T, H * E)
    dx = dK @ W_k.T + dV @ W_v.T
    return (dx, dq, np.einsum("btd,bti->di", x, dK), np.einsum("btd,bti->di", x, dV),
            dV.sum(axis=(0, 1)), dW_o, dy.sum(axis=(0, 1)))


def _scale_arg(i, factor):
    def large(args, kw):
        return tuple(x * factor if j == i else x for j, x in enumerate(args)), kw

    return large


def _vjp_at(forward, backward, diff):
    """The vjp of a ``refseq.nn`` pair whose differentiable arguments are ``diff`` (the backward
    returns their gradients in order)."""

    def vjp(args, kw, cts):
        _, cache = forward(*args, **kw)
        grads = backward(cts[0], cache)
        return tuple(grads[: len(diff)])

    return vjp


def register_more(register):
    """Register cross_entropy, embedding, position_embedding, rope, dropout, mlp, conv1d and
    aaren_layer with their backward contracts."""
    from refseq.nn.conv1d import conv1d_backward, conv1d_forward
    from refseq.nn.dropout import dropout_backward
    from refseq.nn.embedding import embedding_backward, embedding_forward
    from refseq.nn.positions import (
        position_embedding_backward,
        position_embedding_forward,
        rope_backward,
        rope_forward,
    )
    from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward
    from refseq.oracle.catalog import Contract
    from refseq.oracle.nn_contracts import _first, backward_contract

    layers = [
        dict(name="cross_entropy", signature="cross_entropy(logits, targets) -> loss",
             layouts={"logits": "(B, T, V)", "targets": "(B, T) int64 in [0, V)",
                      "loss": "() (0-d)"},
             outputs="loss, the mean over (B, T) of -log softmax(logits)[target] (torch's "
                     "F.cross_entropy on the flattened positions)",
             forward=cross_entropy_forward, backward=cross_entropy_backward, diff=(0,),
             make_inputs=_cross_entropy_inputs,
             dims={"B": (1, 3), "T": (1, 17), "V": (2, 9)}, odd_dims={"B": 3, "T": 37, "V": 7},
             large=_scale_arg(0, 30.0)),
        dict(name="embedding", signature="embedding(ids, E) -> y",
             layouts={"ids": "(B, T) int64 in [0, V)", "E": "(V, D)", "y": "(B, T, D)"},
             outputs="y[b, t] = E[ids[b, t]] (the backward: dE, rows of repeated ids summed)",
             forward=embedding_forward, backward=embedding_backward, diff=(1,),
             make_inputs=_embedding_inputs,
             dims={"B": (1, 3), "T": (1, 17), "V": (1, 7), "D": (1, 9)},
             odd_dims={"B": 3, "T": 37, "V": 7, "D": 5}, large=_scale_arg(1, 1e3)),
        dict(name="position_embedding", signature="position_embedding(positions, P) -> y",
             layouts={"positions": "(B, T) int64 in [0, T_max)", "P": "(T_max, D)",
                      "y": "(B, T, D)"},
             outputs="y[b, t] = P[positions[b, t]] (GPT-2's learned wpe; the backward: dP, "
                     "rows of repeated positions summed)",
             forward=position_embedding_forward, backward=position_embedding_backward,
             diff=(1,), make_inputs=_position_embedding_inputs,
             dims={"B": (1, 3), "T": (1, 17), "D": (1, 9)}, odd_dims={"B": 3, "T": 37, "D": 5},
             large=_scale_arg(1, 1e3)),
        dict(name="dropout", signature="dropout(x, mask, *, p) -> y",
             layouts={"x": "(B, T, D)", "mask": "(B, T, D) bool (True: kept)", "p": "float",
                      "y": "(B, T, D)"},
             outputs="y = x * mask / (1 - p), inverted dropout with the given mask (0 where "
                     "p = 1, as torch); the mask is an input so both sides drop the same entries",
             forward=_dropout, backward=dropout_backward, diff=(0,),
             make_inputs=_dropout_inputs,
             dims={"B": (1, 3), "T": (1, 17), "D": (1, 9)}, odd_dims={"B": 3, "T": 37, "D": 5},
             large=_scale_arg(0, 1e3)),
        dict(name="mlp", signature="mlp(x, W_in, b_in, W_out, b_out) -> y",
             layouts={"x": "(B, T, D)", "W_in": "(D, F)", "b_in": "(F,)", "W_out": "(F, D)",
                      "b_out": "(D,)", "y": "(B, T, D)"},
             outputs="y = GELU(x W_in + b_in) W_out + b_out, exact (erf) GELU: GPT-2's "
                     "position-wise MLP (refseq.nn.mlp_forward, activation='gelu')",
             forward=_mlp, backward=_mlp_backward, diff=(0, 1, 2, 3, 4),
             make_inputs=_mlp_inputs,
             dims={"B": (1, 3), "T": (1, 9), "D": (1, 6), "F": (1, 9)},
             odd_dims={"B": 3, "T": 19, "D": 5, "F": 7}, large=_scale_arg(0, 30.0)),
        dict(name="rope", signature="rope(x, positions) -> y",
             layouts={"x": "(B, T, H, Dh), Dh even", "positions": "(T,) int64",
                      "y": "(B, T, H, Dh)"},
             outputs="y, x rotated by its positions (rotate-half pairing, base 10000)",
             forward=rope_forward, backward=rope_backward, diff=(0,), make_inputs=_rope_inputs,
             dims={"B": (1, 3), "T": (1, 17), "H": (1, 3), "D": (1, 4)},
             odd_dims={"B": 3, "T": 37, "H": 3, "D": 5}, large=_scale_arg(0, 1e3)),
        dict(name="conv1d", signature="conv1d(x, W, b) -> y",
             layouts={"x": "(B, T, C_in)", "W": "(K, C_in, C_out) (W[K-1] meets the current "
                      "step)", "b": "(C_out,)", "y": "(B, T, C_out)"},
             outputs="y, the causal (left zero-padded) dense convolution, y_t = "
                     "sum_k x_{t+k-K+1} W_k + b (torch's F.conv1d with weight W.permute(2, 1, 0))",
             forward=conv1d_forward, backward=conv1d_backward, diff=(0, 1, 2),
             make_inputs=_conv1d_inputs,
             dims={"B": (1, 3), "T": (1, 17), "D": (1, 6), "K": (1, 4), "O": (1, 6)},
             odd_dims={"B": 3, "T": 37, "D": 5, "K": 3, "O": 7}, large=_scale_arg(0, 1e3)),
    ]
    for spec in layers:
        fwd, bwd, diff = spec.pop("forward"), spec.pop("backward"), spec.pop("diff")
        forward = Contract(
            **spec, reference=_first(fwd), modules=("refseq.nn",), error_samples=2,
            vjp=_vjp_at(fwd, bwd, diff), diff=diff,
            backward_contract=f"{spec['name']}_backward")
        register(forward)
        register(backward_contract(forward))
    forward = Contract(
        name="aaren_layer",
        signature="aaren_layer(x, q, W_k, b_k, W_v, b_v, W_o, b_o, mask) -> y",
        layouts={"x": "(B, T, D)", "q": "(H, E) (one learned query per head)",
                 "W_k": "(D, H*E)", "b_k": "(H*E,)", "W_v": "(D, H*E)", "b_v": "(H*E,)",
                 "W_o": "(H*E, D)", "b_o": "(D,)", "mask": "(B, T) bool", "y": "(B, T, D)"},
        outputs="y, refseq.papers.aaren.aaren_layer with AarenParams(q, W_k, ..., b_o), "
                "head_merge='concat', scale 1/sqrt(E), no carried state; its backward: the "
                "gradients for x, q, W_k, W_v, b_v, W_o, b_o (b_k's is identically 0)",
        reference=_aaren_layer_reference, make_inputs=_aaren_layer_inputs,
        dims={"B": (1, 3), "T": (1, 17), "D": (1, 6), "H": (1, 3), "E": (1, 4)},
        odd_dims={"B": 3, "T": 19, "D": 5, "H": 3, "E": 3},
        modules=("refseq.papers.aaren", "refseq.scan", "refseq.nn"), error_samples=2,
        large=_scale_arg(0, 10.0), vjp=_aaren_layer_vjp, diff=(0, 1, 2, 4, 5, 6, 7),
        backward_contract="aaren_layer_backward")
    register(forward)
    register(backward_contract(forward))
