"""Adapters: how the oracle calls a user's function written for NumPy, PyTorch or JAX.

The oracle works in NumPy. An adapter turns a user's callable into one that takes and returns
NumPy arrays (:meth:`Adapter.wrap`) and, for frameworks with automatic differentiation, computes
the gradient of ``sum(cotangent * output)`` through it (:meth:`Adapter.vjp`). Arrays inside
tuples, lists, named tuples and dicts are converted too; everything else passes unchanged.

A user's function whose argument order or layout differs from the contract's is checked through
a small wrapper written in the user's framework, e.g. a time-major ``(T, B, D)`` scan::

    def my_scan_as_contract(a, b, h0):          # the contract: (B, T, D)
        return my_scan(a.transpose(0, 1), b.transpose(0, 1), h0).transpose(0, 1)

    refseq.oracle.check(my_scan_as_contract, "linear_scan", adapter="torch")
"""

from __future__ import annotations

import importlib

import numpy as np

__all__ = ["ADAPTERS", "Adapter", "JaxAdapter", "NumpyAdapter", "TorchAdapter", "get_adapter"]


def _map(x, leaf):
    """``x`` with ``leaf`` applied to every non-container item (tuples, lists, dicts kept)."""
    if isinstance(x, dict):
        return {k: _map(v, leaf) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        items = [_map(v, leaf) for v in x]
        if hasattr(x, "_fields"):
            return type(x)(*items)
        return type(x)(items)
    return leaf(x)


class Adapter:
    """The NumPy adapter and the base of the others: arrays pass unchanged, no autograd."""

    name = "numpy"
    differentiable = False

    def to_framework(self, x):
        return x

    def to_numpy(self, x):
        return np.asarray(x)

    def wrap(self, fn):
        """``fn`` as a NumPy-in, NumPy-out callable."""

        def call(*args, **kwargs):
            args = _map(args, self.to_framework)
            kwargs = {k: _map(v, self.to_framework) for k, v in kwargs.items()}
            return _map(fn(*args, **kwargs), lambda y: None if y is None else self.to_numpy(y))

        call.__name__ = getattr(fn, "__name__", "fn")
        return call

    def vjp(self, fn, args, kwargs, diff, cotangents):
        """Gradients of ``sum(cotangent * output leaf)`` for ``args[i], i in diff``."""
        raise NotImplementedError(f"the {self.name} adapter has no automatic differentiation")


class NumpyAdapter(Adapter):
    """NumPy arrays in and out (the default)."""


class TorchAdapter(Adapter):
    """``torch.Tensor`` in and out on ``device`` ("cpu" or "cuda"); backward by autograd."""

    name = "torch"
    differentiable = True

    def __init__(self, device="cpu"):
        try:
            self.torch = importlib.import_module("torch")
        except ImportError:
            raise ImportError("adapter='torch' needs PyTorch: pip install torch") from None
        if not isinstance(device, str):
            raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got "
                            f"{type(device).__name__}")
        self.device = device

    def to_framework(self, x):
        if isinstance(x, np.ndarray):
            # reshape: np.ascontiguousarray turns a 0-d array (a scalar loss) into shape (1,)
            return self.torch.from_numpy(np.ascontiguousarray(x).reshape(x.shape)).to(self.device)
        return x

    def to_numpy(self, y):
        if isinstance(y, self.torch.Tensor):
            return y.detach().cpu().numpy()
        return np.asarray(y)

    def vjp(self, fn, args, kwargs, diff, cotangents):
        torch = self.torch
        targs = list(_map(tuple(args), self.to_framework))
        for i in diff:
            targs[i] = targs[i].detach().requires_grad_(True)
        kw = {k: _map(v, self.to_framework) for k, v in kwargs.items()}
        out = fn(*targs, **kw)
        outs = [y for y in _leaves(out, torch.Tensor)]
        pairs = [(y, self.to_framework(c).to(y.dtype)) for y, c in zip(outs, cotangents)
                 if c is not None and y.requires_grad]
        inputs = [targs[i] for i in diff]
        if not pairs:
            return tuple(np.zeros(x.shape, np.asarray(args[i]).dtype) for i, x in zip(diff, inputs))
        grads = torch.autograd.grad([p[0] for p in pairs], inputs, [p[1] for p in pairs],
                                    allow_unused=True)
        return tuple(np.zeros(tuple(x.shape), np.asarray(args[i]).dtype) if g is None
                     else self.to_numpy(g) for i, x, g in zip(diff, inputs, grads))


class JaxAdapter(Adapter):
    """``jax.Array`` in and out; backward by ``jax.vjp``. Needs jax (and float64 enabled)."""

    name = "jax"
    differentiable = True

    def __init__(self):
        try:
            self.jax = importlib.import_module("jax")
        except ImportError:
            raise ImportError("adapter='jax' needs JAX, which is not installed here: "
                              "pip install jax") from None
        self.jax.config.update("jax_enable_x64", True)

    def to_framework(self, x):
        if isinstance(x, np.ndarray):
            return self.jax.numpy.asarray(x)
        return x

    def vjp(self, fn, args, kwargs, diff, cotangents):
        jargs = list(_map(tuple(args), self.to_framework))
        kw = {k: _map(v, self.to_framework) for k, v in kwargs.items()}

        def of_diff(*xs):
            full = list(jargs)
            for i, x in zip(diff, xs):
                full[i] = x
            return fn(*full, **kw)

        out, pullback = self.jax.vjp(of_diff, *(jargs[i] for i in diff))
        leaves, treedef = self.jax.tree_util.tree_flatten(out)
        cts = [np.zeros(np.shape(y), np.asarray(y).dtype) if c is None else c.astype(y.dtype)
               for y, c in zip(leaves, list(cotangents) + [None] * len(leaves))]
        grads = pullback(self.jax.tree_util.tree_unflatten(treedef, cts))
        return tuple(np.asarray(g) for g in grads)


def _leaves(x, kind):
    if isinstance(x, dict):
        return [y for v in x.values() for y in _leaves(v, kind)]
    if isinstance(x, (tuple, list)):
        return [y for v in x for y in _leaves(v, kind)]
    return [x] if isinstance(x, kind) else []


ADAPTERS = {"numpy": NumpyAdapter, "torch": TorchAdapter, "jax": JaxAdapter}


def get_adapter(adapter, device=None) -> Adapter:
    """An :class:`Adapter` from its name ("numpy", "torch", "jax") or the adapter itself."""
    if isinstance(adapter, Adapter):
        return adapter
    if not isinstance(adapter, str):
        raise TypeError(f"adapter must be one of {sorted(ADAPTERS)} or an Adapter, got "
                        f"{type(adapter).__name__}")
    if adapter not in ADAPTERS:
        raise ValueError(f"adapter must be one of {sorted(ADAPTERS)}, got {adapter!r}")
    if adapter == "torch":
        return TorchAdapter("cpu" if device is None else device)
    if device not in (None, "cpu"):
        raise ValueError(f"device applies to adapter='torch' only, got device={device!r} "
                         f"with adapter={adapter!r}")
    return ADAPTERS[adapter]()
