"""Recoding's step-size predictors α (Ulmer, arXiv 2101.00674).

Each predictor maps a layer's (detached) ``h`` (B, H) to ``α`` (B, 1) and has ``params`` and a
``backward(d_alpha, h)``: :class:`FixedStep` (a constant), :class:`LearnedStep`
(``softplus(θ)``) and :class:`MLPStep` (an MLP per example, the official 300-100 sizes).
Narrative: docs/papers/recoding.md.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks


def softplus(x):
    """``log(1 + exp(x))`` elementwise, overflow-free; x float32/float64 of any shape."""
    return np.logaddexp(0, _checks.float_array(x, "x"))


class FixedStep:
    """``α = alpha`` for every example."""

    def __init__(self, alpha: float):
        self.alpha, self.params = _checks.check_number(alpha, "alpha", low=0), {}

    def __call__(self, h):
        return np.full((np.shape(h)[0], 1), self.alpha, np.asarray(h).dtype)

    def backward(self, d_alpha, h):
        return {}


class LearnedStep:
    """``α = softplus(θ)``, scalar θ initialised ``U(0, 1)`` (or ``theta_init``)."""

    def __init__(self, theta_init=None, rng=None):
        t = _checks.check_rng(rng).uniform(0, 1) if theta_init is None else \
            _checks.check_number(theta_init, "theta_init")
        self.params = {"theta": np.array([float(t)])}

    def __call__(self, h):
        h = np.asarray(h)
        return np.full((h.shape[0], 1), softplus(self.params["theta"][0]), h.dtype)

    def backward(self, d_alpha, h):
        th = self.params["theta"]
        return {"theta": np.array([float(np.sum(d_alpha)) / (1 + np.exp(-th[0]))])}


class MLPStep:
    """``α(b) = softplus(w_3ᵀ ReLU(W_2 ReLU(W_1 h(b) + b_1) + b_2) + b_3)`` per example (B, 1),
    sizes ``H -> layers[0] -> layers[1] -> 1`` (official 300, 100); the input is detached."""

    def __init__(self, hidden_size: int, layers=(300, 100), rng=None, dtype=np.float64):
        rng, dtype = _checks.check_rng(rng), _checks.check_float_dtype(dtype, "dtype")
        hidden_size = _checks.check_number(hidden_size, "hidden_size", integer=True, low=1)
        if not isinstance(layers, (tuple, list)) or len(layers) != 2:
            raise TypeError(f"layers must be a pair of hidden widths (official (300, 100)), "
                            f"got {layers!r}")
        layers = [_checks.check_number(n, f"layers[{i}]", integer=True, low=1)
                  for i, n in enumerate(layers)]
        sizes = [hidden_size, *layers, 1]
        self.params = {}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lim = 1 / np.sqrt(a)
            self.params[f"W{i}"] = rng.uniform(-lim, lim, (a, b)).astype(dtype)
            self.params[f"b{i}"] = np.zeros(b, dtype)
        self.n = len(sizes) - 1

    def _forward(self, h):
        acts, x = [], np.asarray(h)
        for i in range(self.n):
            acts.append(x)
            x = x @ self.params[f"W{i}"] + self.params[f"b{i}"]
            if i < self.n - 1:
                x = np.maximum(x, 0)
        return acts, x  # x: (B, 1) pre-softplus

    def __call__(self, h):
        return softplus(self._forward(h)[1]).astype(np.asarray(h).dtype, copy=False)

    def backward(self, d_alpha, h):
        acts, a = self._forward(h)
        d = d_alpha / (1 + np.exp(-a))  # softplus' = sigmoid
        g = {}
        for i in reversed(range(self.n)):
            if i < self.n - 1:
                d = d * (acts[i + 1] > 0)
            g[f"W{i}"], g[f"b{i}"] = acts[i].T @ d, d.sum(axis=0)
            d = d @ self.params[f"W{i}"].T
        return g
