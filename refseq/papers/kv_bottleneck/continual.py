"""Class-incremental streams, the baselines on frozen features, and accuracy over seen classes.

Träuble et al., arXiv 2207.11240, Sec. 4: the data arrive as tasks of disjoint class sets (the
CIFAR-10 runs use the pairs ``[[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]``), each trained for many
passes before the next, with no replay. The baselines read the same frozen features ``z`` as the
bottleneck: a linear probe and an MLP (the toy's ``2-32-8``, ReLU), trained by Adam, a fresh
optimiser per task as in the official toy notebook.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.nn.activations import relu_backward, relu_forward
from refseq.nn.linear import linear_backward, linear_forward
from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward
from refseq.train.adam import Adam

__all__ = ["MLPClassifier", "accuracy", "class_incremental_stream", "train_classifier"]


def class_incremental_stream(X, y, class_splits) -> list:
    """Split a labelled set into tasks: ``[(X_t, y_t) for each class set of class_splits]``.

    ``X`` is any array indexed by example on its first axis, ``y (n,)`` integer classes,
    ``class_splits`` a sequence of disjoint class lists (classes absent from every split are
    dropped). Example order within a task is kept.
    """
    X = np.asarray(X)
    y = _checks.int_array(y, "y", ndim=1, low=0, form="(n,)")
    if X.shape[:1] != y.shape:
        raise ValueError(f"X must have n = {y.size} examples on its first axis (from y), "
                         f"got shape {X.shape}")
    if not isinstance(class_splits, (list, tuple)) or not class_splits:
        raise TypeError(f"class_splits must be a non-empty list of class lists, got "
                        f"{class_splits!r:.60}")
    seen: set = set()
    tasks = []
    for t, split in enumerate(class_splits):
        classes = _checks.int_array(np.asarray(split), f"class_splits[{t}]", ndim=1, low=0,
                                    form="(classes,)")
        if seen & set(classes.tolist()) or len(set(classes.tolist())) != classes.size:
            raise ValueError(f"class_splits must be disjoint class lists, class_splits[{t}] = "
                             f"{classes.tolist()} repeats a class")
        seen |= set(classes.tolist())
        rows = np.isin(y, classes)
        tasks.append((X[rows], y[rows]))
    return tasks


def accuracy(pred, y, classes=None) -> float:
    """Share of ``pred == y`` (both ``(n,)`` integer), over the examples whose class is in
    ``classes`` if given (e.g. the classes seen so far)."""
    pred = _checks.int_array(pred, "pred", ndim=1, form="(n,)")
    y = _checks.int_array(y, "y", ndim=1, form="(n,)")
    if pred.shape != y.shape:
        raise ValueError(f"pred and y must have the same shape, got {pred.shape} and {y.shape}")
    rows = np.ones(y.shape, bool) if classes is None else np.isin(y, np.asarray(classes))
    if not rows.any():
        raise ValueError("y has no example of the given classes")
    return float(np.mean(pred[rows] == y[rows]))


class MLPClassifier:
    """Fully connected ReLU network on features: ``sizes = (d_z, K)`` is a linear probe,
    ``(d_z, 32, K)`` the toy's MLP. Weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
    (``torch.nn.Linear``'s defaults)."""

    def __init__(self, sizes, rng=None, dtype=np.float64):
        if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
            raise TypeError(f"sizes must be a list (d_z, [hidden, ...,] K) of at least two "
                            f"widths, got {sizes!r}")
        sizes = [_checks.check_number(s, f"sizes[{i}]", integer=True, low=1)
                 for i, s in enumerate(sizes)]
        dtype = _checks.check_float_dtype(dtype, "dtype")
        r = _checks.check_rng(rng)
        self.params = {}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = 1.0 / np.sqrt(a)
            self.params[f"W{i}"] = r.uniform(-bound, bound, (a, b)).astype(dtype)
            self.params[f"b{i}"] = r.uniform(-bound, bound, b).astype(dtype)
        self.layers = len(sizes) - 1

    def forward(self, z):
        """Logits ``(B, K)`` of features ``z (B, d_z)``, and the cache for :meth:`backward`."""
        x, caches = _checks.float_array(z, "z"), []
        for i in range(self.layers):
            x, c = linear_forward(x, self.params[f"W{i}"], self.params[f"b{i}"])
            caches.append(c)
            if i < self.layers - 1:
                x, c = relu_forward(x)
                caches.append(c)
        return x, caches

    def backward(self, d_logits, caches) -> dict:
        """Gradients of every parameter for the cotangent ``d_logits (B, K)``."""
        grads, d = {}, d_logits
        for i in reversed(range(self.layers)):
            if i < self.layers - 1:
                (d,) = relu_backward(d, caches[2 * i + 1])
            d, grads[f"W{i}"], grads[f"b{i}"] = linear_backward(d, caches[2 * i])
        return grads

    def predict(self, z) -> np.ndarray:
        return np.argmax(self.forward(z)[0], axis=-1)


def train_classifier(clf, stream, steps: int, lr: float = 1e-3, *, label_smoothing: float = 0.0,
                     after_task=None) -> list:
    """Full-batch Adam on each task ``(z_t, y_t)`` of ``stream`` for ``steps`` steps, a fresh
    ``Adam(lr)`` per task (the official toy notebook). Returns per-task lists of losses."""
    _checks.check_instance(clf, MLPClassifier, "clf")
    steps = _checks.check_number(steps, "steps", integer=True, low=0)
    out = []
    for t, (z, y) in enumerate(stream):
        opt, losses = Adam(lr), []
        for _ in range(steps):
            logits, cache = clf.forward(z)
            loss, ce = cross_entropy_forward(logits, y, label_smoothing=label_smoothing)
            (d,) = cross_entropy_backward(np.ones((), logits.dtype), ce)
            opt.step(clf.params, clf.backward(d, cache))
            losses.append(float(loss))
        out.append(losses)
        if after_task is not None:
            after_task(t, clf)
    return out
