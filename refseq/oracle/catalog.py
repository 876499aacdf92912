"""The contracts the oracle checks a user's implementation against.

A :class:`Contract` is the one place where a function's canonical signature, the layout of its
arguments and outputs, its float64 NumPy reference, its input generator and its properties
(carried state, reverse, large magnitudes, the vector-Jacobian product) are written down. The
oracle (:func:`refseq.oracle.check`), the command line (``refseq check``), the pytest plugin and
the docs table (:func:`contract_table`) all read these records.

The hot-path contracts come from the registry (:mod:`refseq.registry`: one per entry, forward
and backward, every cell of the recurrence); the ``refseq.nn`` and attention contracts are
written here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CONTRACTS", "Contract", "contract_table", "contracts", "get_contract"]


@dataclass(frozen=True)
class Contract:
    """One function the oracle can check.

    Attributes
    ----------
    name : the contract's name (``check(fn, "linear_scan")``).
    signature : the canonical call, e.g. ``"linear_scan(a, b, h0) -> h"``.
    layouts : argument (and output) name -> layout, e.g. ``{"a": "(B, T, D)"}``.
    outputs : what the function returns, in words.
    reference : the float64 NumPy reference, called like the user's function.
    make_inputs : ``(rng, dims, dtype) -> (args, kwargs)``, well-scaled random inputs.
    dims : the ranges random cases draw from: name -> inclusive ``(low, high)`` or a tuple of
        choices.
    odd_dims : the fixed "odd sizes" case (lengths and widths that are no power of two).
    kind : "forward" (tolerance factor 2), "backward" (factor 4) or "exact" (integer or copied
        outputs, equal value for value; ``boundary(args, kwargs) -> (B,) bool`` names the trees
        allowed to differ because a uniform lies within rounding of a decision boundary), or
        "indices" (integer outputs exact, floats by the forward rule, outside the per-leaf
        masks ``boundary`` returns: the key-value lookup's near-tie queries).
    error_samples, modules : backward-error and rounding samples added to the reference's
        float32 run, and the modules whose elementary functions are rounded
        (:func:`refseq.testing.harness.oracle`).
    carry : ``(fn, args, kwargs, k) -> output``: two calls, on steps ``[0, k)`` and ``[k, T)``
        with the first call's final state carried into the second, assembled like one call's
        output; None when the function has no state.
    reverse : the function takes ``reverse=True``.
    large : ``(args, kwargs) -> (args, kwargs)``: the inputs scaled to large magnitudes.
    vjp : ``(args, kwargs, cotangents) -> grads`` in NumPy, the gradient of
        ``sum(cotangent * output)`` for the positional arguments named by ``diff``; None when
        the function has no backward contract.
    diff : indices of the positional arguments ``vjp`` differentiates.
    grad_outputs : how many leading output leaves receive a cotangent (the others none).
    backward_contract : the contract a user's explicit backward (``backward=``) is checked
        against.
    """

    name: str
    signature: str
    layouts: dict
    outputs: str
    reference: Callable
    make_inputs: Callable
    dims: dict
    odd_dims: dict
    kind: str = "forward"
    error_samples: int = 0
    modules: tuple = ()
    carry: Callable | None = None
    reverse: bool = False
    large: Callable | None = None
    vjp: Callable | None = None
    diff: tuple = ()
    grad_outputs: int = 1
    backward_contract: str | None = None
    boundary: Callable | None = None
    notes: str = field(default="", compare=False)

    def describe(self) -> str:
        """A few lines: the signature, the layouts, the outputs and the properties."""
        lines = [self.signature, "  " + ", ".join(f"{k}: {v}" for k, v in self.layouts.items()),
                 f"  returns {self.outputs}", f"  properties: {', '.join(properties(self))}"]
        if self.notes:
            lines.append(f"  {self.notes}")
        return "\n".join(lines)


def properties(contract: Contract) -> list[str]:
    """The names of the properties the oracle checks for ``contract`` (besides autograd)."""
    if contract.kind == "lossless":
        from refseq.oracle.lossless import MODES

        return [f"{mode} trees" for mode in MODES]
    names = ["random", "single node" if "N" in contract.dims else "length 1", "odd sizes"]
    if contract.large is not None:
        names.append("large magnitudes")
    if contract.carry is not None:
        names.append("carried state")
    if contract.reverse:
        names.append("reverse")
    if contract.vjp is not None:
        names.append("backward (autograd or backward=)")
    return names


# --- carry: two calls with the state carried == one call --------------------------------------


def _carry_linear(fn, args, kw, k):
    a, b, h0 = args
    h1 = fn(a[:, :k], b[:, :k], h0, **kw)
    h2 = fn(a[:, k:], b[:, k:], np.asarray(h1)[:, -1], **kw)
    return np.concatenate([np.asarray(h1), np.asarray(h2)], axis=1)


def _carry_softmax(fn, args, kw, k):
    s, v, mask = args
    o1, state = fn(s[:, :k], v[:, :k], mask[:, :k], None, **kw)
    o2, state = fn(s[:, k:], v[:, k:], mask[:, k:], state, **kw)
    return np.concatenate([o1, o2], axis=1), tuple(state)


def _carry_recurrence(fn, args, kw, k):
    Wx, R, b = args
    all1, last1 = fn(Wx[:, :k], R, b, None, **kw)
    all2, last2 = fn(Wx[:, k:], R, b, last1, **kw)
    return np.concatenate([all1, all2], axis=2), last2


def _scaled(factors):
    """``large``: multiply positional argument i by ``factors[i]`` (1 where not named)."""

    def large(args, kw):
        return tuple(x * factors.get(i, 1.0) if isinstance(x, np.ndarray) and x.dtype.kind == "f"
                     else x for i, x in enumerate(args)), kw

    return large


# --- the vector-Jacobian products (float64 references) ----------------------------------------


def _vjp_linear(args, kw, cts):
    from refseq.scan import linear_scan, linear_scan_backward

    a, b, h0 = args
    h = linear_scan(a, b, h0, **kw)
    return linear_scan_backward(a, h, cts[0], h0, **kw)


def _vjp_softmax(args, kw, cts):
    from refseq.scan import softmax_scan_backward

    s, v, mask = args
    gs, gv, _ = softmax_scan_backward(s, v, cts[0], mask)
    return gs, gv


def _vjp_recurrence(args, kw, cts):
    from refseq.recurrence import flashrnn_backward, flashrnn_forward

    Wx, R, b = args
    _, _, cache = flashrnn_forward(Wx, R, b, return_cache=True, **kw)
    exact = {"exact_stabiliser": True} if kw.get("cell") == "slstm" else {}
    _, dWx, dR, db = flashrnn_backward(cts[0], cts[1], R, b, cache, **kw, **exact)
    return dWx, dR, db


def _vjp_projection(args, kw, cts):
    from refseq.recurrence import project_inputs_backward

    x, W, _ = args
    dx, dW = project_inputs_backward(cts[0], x, W)
    return dx, dW, cts[0].sum(axis=(0, 1))


# --- the registry contracts --------------------------------------------------------------------

_REGISTRY_DOC = {
    "linear_scan": dict(
        signature="linear_scan(a, b, h0, *, reverse=False) -> h",
        layouts={"a": "(B, T, D)", "b": "(B, T, D)", "h0": "(B, D)", "h": "(B, T, D)"},
        outputs="h, with h_t = a_t * h_{t-1} + b_t and h_{-1} = h0 (reverse: from t = T-1 down)",
        carry=_carry_linear, reverse=True, large=_scaled({1: 1e6, 2: 1e6}),
        vjp=_vjp_linear, diff=(0, 1, 2), backward_contract="linear_scan_backward"),
    "linear_scan_backward": dict(
        signature="linear_scan_backward(a, h, grad_h, h0, *, reverse=False) -> "
                  "(grad_a, grad_b, grad_h0)",
        layouts={"a": "(B, T, D)", "h": "(B, T, D)", "grad_h": "(B, T, D)", "h0": "(B, D)"},
        outputs="the gradients of sum(grad_h * h) for a, b and h0",
        reverse=True, large=_scaled({2: 1e6})),
    "softmax_scan": dict(
        signature="softmax_scan(s, v, mask, state=None) -> (o, (m, u, w))",
        layouts={"s": "(B, T, H)", "v": "(B, T, H, D)", "mask": "(B, T) bool",
                 "state": "None or (m (B, H), u (B, H), w (B, H, D))", "o": "(B, T, H, D)"},
        outputs="o, the running softmax-weighted mean of v (masked tokens skipped), and the "
                "final state (m, u, w) to carry into the next call",
        carry=_carry_softmax, large=_scaled({0: 10.0, 1: 1e3}),
        vjp=_vjp_softmax, diff=(0, 1), grad_outputs=1,
        backward_contract="softmax_scan_backward"),
    "softmax_scan_backward": dict(
        signature="softmax_scan_backward(s, v, grad_o, mask) -> (grad_s, grad_v, grad_state)",
        layouts={"s": "(B, T, H)", "v": "(B, T, H, D)", "grad_o": "(B, T, H, D)",
                 "mask": "(B, T) bool"},
        outputs="the gradients of sum(grad_o * o) for s and v (grad_state None)",
        large=_scaled({0: 10.0, 2: 1e3})),
    "flashrnn_forward": dict(
        signature="flashrnn_forward(Wx, R, b, states0=None, *, cell) -> (states_all, last_states)",
        layouts={"Wx": "(B, T, G_w, N, D)", "R": "(G_r, N, D, D) [gate, head, out, in]",
                 "b": "(G_t, N, D)", "states0": "None or (S, B, N, D)",
                 "states_all": "(S, B, T, N, D)"},
        outputs="every step's states and the last ones (refseq.recurrence.CELLS gives the gate "
                "orders of cell = elman, elman_relu, lstm, gru, slstm)",
        carry=_carry_recurrence, large=_scaled({0: 10.0}),
        vjp=_vjp_recurrence, diff=(0, 1, 2), grad_outputs=2,
        backward_contract="flashrnn_backward"),
    "flashrnn_backward": dict(
        signature="flashrnn_backward(d_states_all, d_last_states, R, b, cache, *, cell) -> "
                  "(d_states0, dWx, dR, db)",
        layouts={"d_states_all": "(S, B, T, N, D)", "d_last_states": "(S, B, N, D)",
                 "cache": "{'states': (S, B, T+1, N, D), 'gates': (T, B, G_t, N, D)}"},
        outputs="the gradients of the forward (FlashRNN's convention for the sLSTM stabiliser)",
        large=_scaled({0: 1e4, 1: 1e4})),
    "project_inputs": dict(
        signature="project_inputs(x, W, bias) -> Wx",
        layouts={"x": "(B, T, I)", "W": "(G, N, D, I)", "bias": "(G, N, D)",
                 "Wx": "(B, T, G, N, D)"},
        outputs="Wx[b, t, g, n, d] = sum_i W[g, n, d, i] x[b, t, i] + bias[g, n, d]",
        large=_scaled({0: 1e4}), vjp=_vjp_projection, diff=(0, 1, 2),
        backward_contract="project_inputs_backward"),
    "project_inputs_backward": dict(
        signature="project_inputs_backward(dWx, x, W) -> (dx, dW)",
        layouts={"dWx": "(B, T, G, N, D)", "x": "(B, T, I)", "W": "(G, N, D, I)"},
        outputs="the gradients of sum(dWx * Wx) for x and W", large=_scaled({0: 1e4})),
}

from refseq.oracle.decoding_contracts import KV_DOCS, TREE_DOCS, kv_reference  # noqa: E402

_REGISTRY_DOC.update(TREE_DOCS)
_REGISTRY_DOC.update(KV_DOCS)

_ODD = {"B": 3, "T": 37, "D": 5, "H": 3, "N": 3, "I": 7, "G": 3}
_ODD_TREES = {"B": 3, "N": 13, "V": 7}


def _registry_contract(entry) -> Contract:
    doc = dict(_REGISTRY_DOC[entry.name])
    dims = dict(entry.test_dims)
    if "T" in dims:  # the oracle starts at T = 1: an empty sequence is no user's contract
        dims["T"] = (max(1, dims["T"][0]), dims["T"][1])
    odd = {k: _ODD[k] for k in dims if k in _ODD}
    if entry.hot_path == "tree_verify":
        odd = {k: _ODD_TREES[k] for k in ("B", "N", "V")}
        if "mode" in dims:
            odd["mode"] = "wor"
    if entry.hot_path == "kv_lookup":  # the audit's odd case: 3 x 5 x 7 queries, M = 33
        odd = dict(entry.audit_dims[-1])
    if "cell" in dims:
        odd["cell"] = "lstm"
        odd["T"] = 13
    reference = kv_reference if entry.name == "kv_commit" else entry.function()
    return Contract(
        name=entry.name, reference=reference, make_inputs=entry.make_inputs, dims=dims,
        odd_dims=odd, kind=entry.kind, error_samples=entry.error_samples,
        modules=(f"refseq.{entry.hot_path}",), boundary=entry.boundary, **doc)


CONTRACTS: dict[str, Contract] = {}


def register_contract(contract: Contract) -> Contract:
    """Add ``contract`` to :data:`CONTRACTS` (a ValueError if the name is taken)."""
    if contract.name in CONTRACTS:
        raise ValueError(f"contract {contract.name!r} is registered twice")
    CONTRACTS[contract.name] = contract
    return contract


def _load_registry():
    from refseq.registry import REGISTRY

    for entry in REGISTRY.values():
        if entry.name in _REGISTRY_DOC:
            register_contract(_registry_contract(entry))


_load_registry()
from refseq.oracle import nn_contracts as _nn  # noqa: E402  (registers the nn contracts)

_nn.register_all(register_contract)


from refseq.oracle.decoding_contracts import register_samplers  # noqa: E402

register_samplers(register_contract, Contract)


def contracts() -> list[str]:
    """The names of every contract, in registration order."""
    return list(CONTRACTS)


def get_contract(contract) -> Contract:
    """``contract`` itself, or the registered contract of that name (ValueError otherwise)."""
    if isinstance(contract, Contract):
        return contract
    if not isinstance(contract, str):
        raise TypeError(f"contract must be a contract name or a Contract, got "
                        f"{type(contract).__name__}")
    if contract not in CONTRACTS:
        raise ValueError(f"unknown contract {contract!r}; known: {', '.join(CONTRACTS)}")
    return CONTRACTS[contract]


def contract_table() -> str:
    """A Markdown table of every contract: name, signature, layouts, properties."""
    rows = ["| contract | signature | layouts | properties |", "|---|---|---|---|"]
    for c in CONTRACTS.values():
        layouts = "; ".join(f"`{k}` {v}" for k, v in c.layouts.items())
        rows.append(f"| `{c.name}` | `{c.signature}` | {layouts} | {', '.join(properties(c))} |")
    return "\n".join(rows)
