"""The deep, poorly initialised MLP of the gradient-noise paper at small scale (Neelakantan et
al., arXiv 1511.06807, Sec. 4.1: 20-layer ReLU network, 50 units per layer, "bad"
initialisation), at a scale that runs in seconds (docs/papers/gradient-noise.md).

Data (:func:`teacher_dataset`): ``x ~ N(0, I_10)``, labels ``y = 1[tanh(x V) u > 0]`` from a
random teacher ``V (10, 32)``, ``u (32,)`` — a smooth, roughly balanced two-class problem
(instead of MNIST). Model (:func:`deep_relu_mlp`): 20 hidden ReLU layers of width 50 and a
linear 2-way output, all weights ``N(0, 0.1^2)``, biases 0. Each layer then scales activations
by about ``0.1 * sqrt(50 / 2) = 0.5``, so after 20 layers the input's signal is ~1e-6 of its
size and so are the gradients reaching the first layers: plain SGD only learns the output bias
and stays at the majority-class rate. Annealed gradient noise
(:mod:`refseq.train.gradient_noise`) random-walks the weights up to a trainable scale.

Training (:func:`run`): SGD lr 0.1, batches of 64 sampled with replacement, global-norm clipping
at 10, noise added after clipping, ``gamma = 0.55``. Three independent streams per run, all from
``seed``: ``np.random.default_rng([seed, 0])`` initialises the weights, ``[seed, 1]`` samples
batches and ``[seed, 2]`` draws the noise; the data set comes from ``data_seed`` (fixed).

Layers come from :mod:`refseq.nn` (``linear``, ``relu``, ``cross_entropy``); the training loop is
:func:`refseq.train.train`.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.nn.activations import relu_backward, relu_forward
from refseq.nn.linear import linear_backward, linear_forward
from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward
from refseq.train import SGD, GradientNoise, train


def teacher_dataset(n: int = 2000, in_dim: int = 10, hidden: int = 32,
                    rng: np.random.Generator | None = None):
    """``x (n, in_dim) ~ N(0, I)``, ``y (n,) = 1[tanh(x V) u > 0]`` (int64) with ``V ~ N(0, 1)``
    of shape ``(in_dim, hidden)`` and ``u ~ N(0, 1)`` of shape ``(hidden,)``, all from ``rng``."""
    n, in_dim, hidden = (_checks.check_number(v, name, integer=True, low=1) for v, name in
                         ((n, "n"), (in_dim, "in_dim"), (hidden, "hidden")))
    rng = np.random.default_rng(0) if rng is None else _checks.check_rng(rng)
    V = rng.standard_normal((in_dim, hidden))  # (Din, hidden)
    u = rng.standard_normal(hidden)  # (hidden,)
    x = rng.standard_normal((n, in_dim))  # (n, Din)
    y = (np.tanh(x @ V) @ u > 0).astype(np.int64)  # (n,)
    return x, y


def layer_names(depth: int) -> list[str]:
    """Hidden layers ``h00 .. h{depth-1}`` then ``out`` (zero-padded so sorted order = depth)."""
    depth = _checks.check_number(depth, "depth", integer=True, low=0)
    return [f"h{i:02d}" for i in range(depth)] + ["out"]


def deep_relu_mlp(depth: int = 20, width: int = 50, in_dim: int = 10, out_dim: int = 2,
                  init_std: float = 0.1, rng: np.random.Generator | None = None) -> dict:
    """Parameters ``{"<layer>.W": (D_in, D_out), "<layer>.b": (D_out,)}`` for ``depth`` hidden ReLU
    layers of ``width`` and a linear output; ``W ~ N(0, init_std^2)``, ``b = 0``."""
    depth = _checks.check_number(depth, "depth", integer=True, low=0)
    width, in_dim, out_dim = (_checks.check_number(v, name, integer=True, low=1) for v, name in
                              ((width, "width"), (in_dim, "in_dim"), (out_dim, "out_dim")))
    init_std = _checks.check_number(init_std, "init_std", low=0)
    rng = np.random.default_rng(0) if rng is None else _checks.check_rng(rng)
    dims = [in_dim] + [width] * depth + [out_dim]
    params = {}
    for name, d_in, d_out in zip(layer_names(depth), dims[:-1], dims[1:]):
        params[f"{name}.W"] = init_std * rng.standard_normal((d_in, d_out))
        params[f"{name}.b"] = np.zeros(d_out)
    return params


def _depth(params) -> int:
    """Hidden-layer count of ``params``, after checking it holds exactly the MLP's parameters."""
    _checks.check_instance(params, dict, "params", "dict of arrays (from deep_relu_mlp)")
    depth = sum(1 for k in params if k.startswith("h") and k.endswith(".W"))
    expected = {f"{name}.{p}" for name in layer_names(depth) for p in "Wb"}
    missing, extra = sorted(expected - params.keys()), sorted(params.keys() - expected)
    if missing or extra:
        raise ValueError(f"params must hold the layers of deep_relu_mlp ({layer_names(depth)} "
                         f"with .W and .b); missing {missing}, unexpected {extra}")
    return depth


def _check_x(params, x, name: str) -> np.ndarray:
    """``x (n, D_in)`` as a float array matching the first layer of ``params``."""
    d_in = params[f"{layer_names(_depth(params))[0]}.W"].shape[0]
    x = _checks.float_array(x, name)
    if x.ndim != 2 or x.shape[1] != d_in:
        raise ValueError(f"{name} must have shape (n, D_in) with D_in = {d_in} (the first "
                         f"layer's input width), got {x.shape}")
    return x


def _check_y(params, y, n: int, name: str) -> np.ndarray:
    """Class labels ``y (n,)`` in ``[0, out_dim)``."""
    y = _checks.int_array(y, name, low=0, high=params["out.W"].shape[1], ndim=1, form="(n,)")
    _checks.check_shape(y, (n,), name, "(n,)")
    return y


def forward(params: dict, x: np.ndarray):
    """Logits ``(n, out_dim)`` and the caches for :func:`backward`."""
    x = _check_x(params, x, "x")
    caches = []
    h = x  # (n, Din)
    names = layer_names(_depth(params))
    for name in names[:-1]:
        h, c_lin = linear_forward(h, params[f"{name}.W"], params[f"{name}.b"])  # (n, width)
        h, c_act = relu_forward(h)
        caches.append((c_lin, c_act))
    logits, c_out = linear_forward(h, params["out.W"], params["out.b"])  # (n, out_dim)
    return logits, (caches, c_out)


def backward(dlogits: np.ndarray, params: dict, cache) -> dict:
    """Gradients of every parameter given ``dlogits (n, out_dim)``."""
    if not isinstance(cache, tuple) or len(cache) != 2:
        raise TypeError("cache must be the (caches, out_cache) pair returned by forward")
    caches, c_out = cache
    _depth(params)
    dlogits = _checks.float_array(dlogits, "dlogits")
    _checks.check_shape(dlogits, (c_out[0].shape[0], params["out.W"].shape[1]), "dlogits",
                        "(n, out_dim)")
    names = layer_names(len(caches))
    grads = {}
    dh, grads["out.W"], grads["out.b"] = linear_backward(dlogits, c_out)  # (n, width)
    for name, (c_lin, c_act) in zip(reversed(names[:-1]), reversed(caches)):
        (dh,) = relu_backward(dh, c_act)
        dh, grads[f"{name}.W"], grads[f"{name}.b"] = linear_backward(dh, c_lin)
    return grads


def loss_and_grad(params: dict, batch) -> tuple[float, dict]:
    """Mean softmax cross-entropy of ``batch = (x (n, Din), y (n,))`` and its gradients."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be a pair (x, y), got {type(batch).__name__}")
    x = _check_x(params, batch[0], "batch[0] (x)")
    y = _check_y(params, batch[1], x.shape[0], "batch[1] (y)")
    logits, cache = forward(params, x)
    loss, c_ce = cross_entropy_forward(logits, y)
    (dlogits,) = cross_entropy_backward(np.ones((), logits.dtype), c_ce)
    return float(loss), backward(dlogits, params, cache)


def accuracy(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``argmax(logits) == y`` (ties: lowest class)."""
    x = _check_x(params, x, "x")
    y = _check_y(params, y, x.shape[0], "y")
    logits, _ = forward(params, x)
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def run(seed: int = 0, eta: float = 0.03, steps: int = 2000, lr: float = 0.1, batch: int = 64,
        clip_norm: float | None = 10.0, gamma: float = 0.55, *, n: int = 2000, depth: int = 20,
        width: int = 50, init_std: float = 0.1, data_seed: int = 1234, log=None) -> dict:
    """Train once; return ``{"accuracy", "majority", "final_loss", "seconds", "log"}``.

    ``accuracy`` is the training-set accuracy after the last step; ``majority`` the majority-class
    rate of the data (what a constant predictor scores). ``eta = 0`` trains without noise.
    """
    seed = _checks.check_number(seed, "seed", integer=True, low=0)
    eta = _checks.check_number(eta, "eta", low=0)
    batch = _checks.check_number(batch, "batch", integer=True, low=1)
    clip_norm = _checks.check_number(clip_norm, "clip_norm", low=0, low_open=True,
                                     allow_inf=True, allow_none=True)
    x, y = teacher_dataset(n, rng=_checks.check_rng(data_seed, "data_seed"))
    params = deep_relu_mlp(depth, width, x.shape[1], 2, init_std, np.random.default_rng([seed, 0]))
    batch_rng = np.random.default_rng([seed, 1])

    def get_batch(t):
        idx = batch_rng.integers(0, n, size=batch)  # with replacement
        return x[idx], y[idx]

    noise = GradientNoise(eta, gamma, rng=np.random.default_rng([seed, 2])) if eta > 0 else None
    tlog = train(params, loss_and_grad, get_batch, SGD(lr), steps=steps, clip=clip_norm,
                 noise=noise, log_every=max(steps, 1), log=log)
    majority = float(max(np.mean(y), 1 - np.mean(y)))
    return {"accuracy": accuracy(params, x, y), "majority": majority,
            "final_loss": float(tlog.losses[-1]) if steps else float("nan"),
            "seconds": tlog.seconds, "log": tlog}
