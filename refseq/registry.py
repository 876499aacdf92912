"""The hot-path registry: one entry per public hot-path function.

An entry names the public function (which takes ``backend=``), the implementation of each tier as
a lazily imported ``"module:function"`` path, an input generator, the audit shapes and the
tolerance kind. The dispatchers (``backend=`` of the public functions), the tests, ``refseq audit``
and ``refseq bench`` all read this table, so a new kernel is one entry here, one module per tier
and its tests.

Backward entries have no kernels of their own: their public function runs the reverse scans of
the forward entry named in ``uses`` on the requested tier.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

TIERS = ("numpy", "jit", "cuda")

INSTALL_HINT = {
    "jit": "the jit tier needs numba: pip install numba",
    "cuda": (
        "the cuda tier needs numba-cuda and a CUDA GPU: pip install 'refseq[cuda]' "
        "(set NUMBA_ENABLE_CUDASIM=1 before importing numba to run it on the CPU simulator)"
    ),
}


class BackendUnavailable(RuntimeError):
    """A tier was asked for that cannot run here; the message says how to install it."""


@dataclass(frozen=True)
class HotPath:
    """One registered hot-path function.

    ``make_inputs(rng, dims, dtype) -> (args, kwargs)`` draws well-scaled random inputs for the
    named dimensions; ``audit_dims`` are the shapes ``refseq audit`` runs on CPU tiers and
    ``cudasim_dims`` the tiny ones it uses under the CUDA simulator. ``kind`` selects the
    tolerance multiple of style.md #9 (2x forward, 4x backward).
    """

    name: str
    hot_path: str
    public: str
    impls: Mapping[str, str]
    make_inputs: Callable
    audit_dims: tuple
    cudasim_dims: tuple
    kind: str = "forward"
    uses: str | None = None
    summary: str = ""
    bench_dims: tuple = field(default=())

    def function(self) -> Callable:
        return _load(self.public)

    def call(self, backend: str, *args, **kwargs):
        """Run the public function on ``backend`` (raises ``BackendUnavailable`` if it can't)."""
        if backend != "numpy":
            resolve(self.uses or self.name, backend)  # fail early, with the install hint
        return self.function()(*args, backend=backend, **kwargs)


def _load(path: str) -> Callable:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def tier_available(backend: str) -> tuple[bool, str]:
    """``(available, reason)`` for a tier on this machine."""
    if backend == "numpy":
        return True, ""
    if backend == "jit":
        try:
            importlib.import_module("numba")
        except ImportError:
            return False, INSTALL_HINT["jit"]
        return True, ""
    if backend == "cuda":
        from refseq.cuda import availability

        return availability()
    raise ValueError(f"backend must be one of {TIERS}, got {backend!r}")


def resolve(name: str, backend: str) -> Callable:
    """The implementation of entry ``name`` on ``backend``; never falls back silently."""
    if name not in REGISTRY:
        raise KeyError(f"no hot path named {name!r}; registered: {sorted(REGISTRY)}")
    if backend not in TIERS:
        raise ValueError(f"backend must be one of {TIERS}, got {backend!r}")
    ok, why = tier_available(backend)
    if not ok:
        raise BackendUnavailable(f"{name}: backend {backend!r} is unavailable: {why}")
    return _load(REGISTRY[name].impls[backend])


# ---------------------------------------------------------------------------------------------
# Input generators (well-scaled: decays in (0.5, 1), unit-variance inputs, scores of scale 3).


def _linear_inputs(rng, dims, dtype):
    B, T, D = dims["B"], dims["T"], dims["D"]
    a = rng.uniform(0.5, 1.0, (B, T, D)).astype(dtype)
    b = rng.standard_normal((B, T, D)).astype(dtype)
    h0 = rng.standard_normal((B, D)).astype(dtype)
    return (a, b, h0), {}


def _linear_backward_inputs(rng, dims, dtype):
    from refseq.scan import linear_scan

    (a, b, h0), _ = _linear_inputs(rng, dims, np.float64)
    h = linear_scan(a, b, h0)
    g = rng.standard_normal(h.shape)
    return tuple(x.astype(dtype) for x in (a, h, g, h0)), {}


def _softmax_inputs(rng, dims, dtype):
    B, T, H, D = dims["B"], dims["T"], dims["H"], dims["D"]
    s = (3.0 * rng.standard_normal((B, T, H))).astype(dtype)
    v = rng.standard_normal((B, T, H, D)).astype(dtype)
    mask = rng.random((B, T)) > 0.1
    return (s, v, mask), {}


def _softmax_backward_inputs(rng, dims, dtype):
    (s, v, mask), _ = _softmax_inputs(rng, dims, dtype)
    g = rng.standard_normal(v.shape).astype(dtype)
    return (s, v, g, mask), {}


REGISTRY: dict[str, HotPath] = {}


def register(entry: HotPath) -> HotPath:
    if entry.name in REGISTRY:
        raise ValueError(f"hot path {entry.name!r} is registered twice")
    REGISTRY[entry.name] = entry
    return entry


register(
    HotPath(
        name="linear_scan",
        hot_path="scan",
        public="refseq.scan:linear_scan",
        impls={
            "numpy": "refseq.scan:_linear_scan_numpy",
            "jit": "refseq.jit.scan:linear_scan",
            "cuda": "refseq.cuda.scan:linear_scan",
        },
        make_inputs=_linear_inputs,
        audit_dims=({"B": 4, "T": 1000, "D": 64}, {"B": 1, "T": 4097, "D": 3}),
        cudasim_dims=({"B": 2, "T": 37, "D": 3},),
        summary="h_t = a_t * h_{t-1} + b_t",
    )
)
register(
    HotPath(
        name="linear_scan_backward",
        hot_path="scan",
        public="refseq.scan:linear_scan_backward",
        impls={},
        uses="linear_scan",
        kind="backward",
        make_inputs=_linear_backward_inputs,
        audit_dims=({"B": 4, "T": 1000, "D": 64},),
        cudasim_dims=({"B": 2, "T": 37, "D": 3},),
        summary="VJP of linear_scan via the reverse scan",
    )
)
register(
    HotPath(
        name="softmax_scan",
        hot_path="scan",
        public="refseq.scan:softmax_scan",
        impls={
            "numpy": "refseq.scan:_softmax_scan_numpy",
            "jit": "refseq.jit.scan:softmax_scan",
            "cuda": "refseq.cuda.scan:softmax_scan",
        },
        make_inputs=_softmax_inputs,
        audit_dims=({"B": 4, "T": 1000, "H": 4, "D": 32}, {"B": 1, "T": 4097, "H": 1, "D": 3}),
        cudasim_dims=({"B": 2, "T": 37, "H": 2, "D": 3},),
        summary="Aaren prefix softmax (m, u, w)",
    )
)
register(
    HotPath(
        name="softmax_scan_backward",
        hot_path="scan",
        public="refseq.scan:softmax_scan_backward",
        impls={},
        uses="linear_scan",
        kind="backward",
        make_inputs=_softmax_backward_inputs,
        audit_dims=({"B": 4, "T": 1000, "H": 4, "D": 32},),
        cudasim_dims=({"B": 2, "T": 37, "H": 2, "D": 3},),
        summary="VJP of softmax_scan via two reverse scans",
    )
)


def _recurrence_inputs(rng, dims, dtype):
    from refseq.rnn.cells import CELLS

    spec = CELLS[dims["cell"]]
    B, T, N, D = dims["B"], dims["T"], dims["N"], dims["D"]
    Wx = rng.standard_normal((B, T, spec.num_gates_w, N, D)).astype(dtype)
    R = (rng.standard_normal((spec.num_gates_r, N, D, D)) / np.sqrt(D)).astype(dtype)
    b = (0.1 * rng.standard_normal((spec.num_gates_t, N, D))).astype(dtype)
    return (Wx, R, b), {"cell": dims["cell"]}


def _recurrence_backward_inputs(rng, dims, dtype):
    from refseq.rnn.flashrnn import flashrnn_forward

    (Wx, R, b), kw = _recurrence_inputs(rng, dims, np.float64)
    states_all, last, cache = flashrnn_forward(Wx, R, b, cell=kw["cell"], return_cache=True)
    d_all = rng.standard_normal(states_all.shape)
    d_last = rng.standard_normal(last.shape)
    cache = {k: v.astype(dtype) for k, v in cache.items()}
    return tuple(x.astype(dtype) for x in (d_all, d_last, R, b)) + (cache,), kw


_RNN_AUDIT = (
    {"cell": "lstm", "B": 4, "T": 64, "N": 2, "D": 16},
    {"cell": "gru", "B": 2, "T": 33, "N": 1, "D": 8},
    {"cell": "slstm", "B": 2, "T": 33, "N": 4, "D": 4},
    {"cell": "elman", "B": 3, "T": 17, "N": 1, "D": 5},
)
_RNN_SIM = ({"cell": "lstm", "B": 2, "T": 5, "N": 2, "D": 3},)

register(
    HotPath(
        name="flashrnn_forward",
        hot_path="recurrence",
        public="refseq.rnn.flashrnn:flashrnn_forward",
        impls={
            "numpy": "refseq.rnn.flashrnn:flashrnn_forward",
            "jit": "refseq.jit.recurrence:flashrnn_forward",
            "cuda": "refseq.cuda.recurrence:flashrnn_forward",
        },
        make_inputs=_recurrence_inputs,
        audit_dims=_RNN_AUDIT,
        cudasim_dims=_RNN_SIM,
        summary="head-wise RNN forward (elman, lstm, gru, slstm)",
    )
)
register(
    HotPath(
        name="flashrnn_backward",
        hot_path="recurrence",
        public="refseq.rnn.flashrnn:flashrnn_backward",
        impls={
            "numpy": "refseq.rnn.flashrnn:flashrnn_backward",
            "jit": "refseq.jit.recurrence:flashrnn_backward",
            "cuda": "refseq.cuda.recurrence:flashrnn_backward",
        },
        make_inputs=_recurrence_backward_inputs,
        audit_dims=_RNN_AUDIT,
        cudasim_dims=_RNN_SIM,
        kind="backward",
        summary="BPTT of flashrnn_forward",
    )
)
