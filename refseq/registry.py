"""The hot-path registry: one entry per public hot-path function.

An entry names the public function ``refseq.<hot_path>:<name>`` (which takes ``backend=``), an
input generator, the shapes ``refseq audit`` runs and the tolerance kind. Its compiled twins are
found by the mirrored layout (:func:`refseq.tiers.implementation`). The tests, ``refseq audit``
and the kernel harness of :mod:`refseq.testing` read this table, so a new kernel is one entry
here, one module per tier and its tests. The registry imports the references; no reference
imports the registry.

Backward entries of the scan have no kernels of their own: their public function runs the
reverse scans of the forward entry named in ``uses`` on the requested tier.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from refseq.recurrence.cells import CELLS
from refseq.tiers import TIERS, BackendUnavailable, check_backend, implementation, tier_available

__all__ = ["REGISTRY", "TIERS", "BackendUnavailable", "HotPath", "register", "resolve",
           "tier_available"]


@dataclass(frozen=True)
class HotPath:
    """One registered hot-path function.

    ``make_inputs(rng, dims, dtype) -> (args, kwargs)`` draws well-scaled random inputs for the
    named dimensions; ``audit_dims`` are the shapes ``refseq audit`` runs on CPU tiers and
    ``cudasim_dims`` the tiny ones it uses under the CUDA simulator. ``test_dims`` and
    ``cudasim_test_dims`` are the ranges the kernel harness draws from (hypothesis, through
    :func:`refseq.testing.strategies.registry_dims`): a name maps to an inclusive ``(low, high)``
    integer range, or to a tuple of strings to choose from (every cell of the recurrence).
    ``kind`` selects the tolerance multiple (2x forward, 4x backward; docs/design.md, "The
    tolerance rule"), or ``"exact"``: integer (or copied) outputs that every tier must reproduce
    bit for bit, on the same inputs as the tier receives, except on the leading-axis rows that
    ``boundary(args, kwargs) -> (B,) bool`` flags (trees whose reference walk has a uniform
    within rounding of a decision boundary, :func:`refseq.tree_verify.reference.near_boundary`).
    ``"indices"`` (the key-value lookup): integer outputs reproduced exactly on the tier's
    inputs and floating outputs within the forward rule, both outside the entries that
    ``boundary(args, kwargs)`` flags — then a tuple of boolean masks, one per output leaf
    (queries with a near-tie, :func:`refseq.kv_lookup.reference.near_tie`).
    ``capture(args, kwargs, returned)`` gives what is compared when the function also writes an
    argument in place (``kv_commit``'s cache); it copies, so later calls cannot change it.
    ``error_samples`` is the number of backward-error and of rounding samples
    the oracle adds to the reference's float32 run (:func:`refseq.testing.harness.oracle`): 0
    keeps the single float32 run; the recurrence takes 2 of each, because on its tiny problems a
    single run can be luckily exact while a kernel's own ``tanh``/``exp`` may round otherwise
    (docs/design.md, "The tolerance rule").
    """

    name: str
    hot_path: str
    make_inputs: Callable
    audit_dims: tuple
    cudasim_dims: tuple
    kind: str = "forward"
    uses: str | None = None
    test_dims: dict | None = None
    cudasim_test_dims: dict | None = None
    error_samples: int = 0
    boundary: Callable | None = None
    capture: Callable | None = None

    @property
    def public(self) -> str:
        """``"module:function"`` of the public function (the one with ``backend=``)."""
        return f"refseq.{self.hot_path}:{self.name}"

    @property
    def kernel(self) -> str:
        """The entry whose compiled twins run when this function runs on a compiled tier."""
        return self.uses or self.name

    def function(self) -> Callable:
        return getattr(importlib.import_module(f"refseq.{self.hot_path}"), self.name)

    def call(self, backend: str, *args, **kwargs):
        """Run the public function on ``backend`` (raises ``BackendUnavailable`` if it can't)."""
        if check_backend(backend) != "numpy":
            implementation(self.hot_path, self.kernel, backend)  # fail early, with the hint
        return self.function()(*args, backend=backend, **kwargs)

    def result(self, backend: str, *args, **kwargs):
        """:meth:`call`, then what the checks compare (``capture`` applied, when set)."""
        out = self.call(backend, *args, **kwargs)
        return out if self.capture is None else self.capture(args, kwargs, out)


def resolve(name: str, backend: str) -> Callable:
    """The implementation of entry ``name`` on ``backend`` (the public function for numpy);
    never falls back silently."""
    if name not in REGISTRY:
        raise KeyError(f"no hot path named {name!r}; registered: {sorted(REGISTRY)}")
    entry = REGISTRY[name]
    if check_backend(backend) == "numpy":
        return entry.function()
    return implementation(entry.hot_path, entry.kernel, backend)


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


# The harness's ranges: T = 1 and lengths that are not multiples of a tile or block are always
# possible; under the simulator every thread is interpreted, so shapes stay tiny.
_LINEAR_TEST = {"B": (1, 3), "T": (1, 130), "D": (1, 8)}
_LINEAR_SIM = {"B": (1, 2), "T": (1, 19), "D": (1, 3)}
_SOFTMAX_TEST = {"B": (1, 3), "T": (1, 130), "H": (1, 3), "D": (1, 8)}
_SOFTMAX_SIM = {"B": (1, 2), "T": (1, 19), "H": (1, 2), "D": (1, 3)}

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
        make_inputs=_linear_inputs,
        audit_dims=({"B": 4, "T": 1000, "D": 64}, {"B": 1, "T": 4097, "D": 3}),
        cudasim_dims=({"B": 2, "T": 37, "D": 3},),
        test_dims=_LINEAR_TEST,
        cudasim_test_dims=_LINEAR_SIM,
    )
)
register(
    HotPath(
        name="linear_scan_backward",
        hot_path="scan",
        uses="linear_scan",
        kind="backward",
        make_inputs=_linear_backward_inputs,
        audit_dims=({"B": 4, "T": 1000, "D": 64},),
        cudasim_dims=({"B": 2, "T": 37, "D": 3},),
        test_dims=_LINEAR_TEST,
        cudasim_test_dims=_LINEAR_SIM,
    )
)
register(
    HotPath(
        name="softmax_scan",
        hot_path="scan",
        make_inputs=_softmax_inputs,
        audit_dims=({"B": 4, "T": 1000, "H": 4, "D": 32}, {"B": 1, "T": 4097, "H": 1, "D": 3}),
        cudasim_dims=({"B": 2, "T": 37, "H": 2, "D": 3},),
        test_dims=_SOFTMAX_TEST,
        cudasim_test_dims=_SOFTMAX_SIM,
    )
)
register(
    HotPath(
        name="softmax_scan_backward",
        hot_path="scan",
        uses="linear_scan",
        kind="backward",
        make_inputs=_softmax_backward_inputs,
        audit_dims=({"B": 4, "T": 1000, "H": 4, "D": 32},),
        cudasim_dims=({"B": 2, "T": 37, "H": 2, "D": 3},),
        test_dims=_SOFTMAX_TEST,
        cudasim_test_dims=_SOFTMAX_SIM,
    )
)


def _recurrence_inputs(rng, dims, dtype):
    from refseq.recurrence.cells import CELLS

    spec = CELLS[dims["cell"]]
    B, T, N, D = dims["B"], dims["T"], dims["N"], dims["D"]
    Wx = rng.standard_normal((B, T, spec.num_gates_w, N, D)).astype(dtype)
    R = (rng.standard_normal((spec.num_gates_r, N, D, D)) / np.sqrt(D)).astype(dtype)
    b = (0.1 * rng.standard_normal((spec.num_gates_t, N, D))).astype(dtype)
    return (Wx, R, b), {"cell": dims["cell"]}


def _recurrence_backward_inputs(rng, dims, dtype):
    from refseq.recurrence.engine import flashrnn_forward

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
_RNN_CELLS = tuple(CELLS)
_RNN_TEST = {"cell": _RNN_CELLS, "B": (1, 3), "T": (0, 24), "N": (1, 3), "D": (1, 6)}
_RNN_TEST_SIM = {"cell": _RNN_CELLS, "B": (1, 2), "T": (0, 5), "N": (1, 2), "D": (1, 3)}

register(
    HotPath(
        name="flashrnn_forward",
        hot_path="recurrence",
        error_samples=2,
        make_inputs=_recurrence_inputs,
        audit_dims=_RNN_AUDIT,
        cudasim_dims=_RNN_SIM,
        test_dims=_RNN_TEST,
        cudasim_test_dims=_RNN_TEST_SIM,
    )
)
register(
    HotPath(
        name="flashrnn_backward",
        hot_path="recurrence",
        error_samples=2,
        make_inputs=_recurrence_backward_inputs,
        audit_dims=_RNN_AUDIT,
        cudasim_dims=_RNN_SIM,
        kind="backward",
        test_dims=_RNN_TEST,
        cudasim_test_dims=_RNN_TEST_SIM,
    )
)


def _projection_inputs(rng, dims, dtype):
    B, T, I, G, N, D = (dims[k] for k in ("B", "T", "I", "G", "N", "D"))
    x = rng.standard_normal((B, T, I)).astype(dtype)
    W = (rng.standard_normal((G, N, D, I)) / np.sqrt(I)).astype(dtype)
    bias = (0.1 * rng.standard_normal((G, N, D))).astype(dtype)
    return (x, W, bias), {}


def _projection_backward_inputs(rng, dims, dtype):
    (x, W, _), _ = _projection_inputs(rng, dims, dtype)
    dWx = rng.standard_normal((dims["B"], dims["T"]) + W.shape[:3]).astype(dtype)
    return (dWx, x, W), {}


_PROJ_AUDIT = ({"B": 16, "T": 64, "I": 64, "G": 4, "N": 2, "D": 32},)
_PROJ_SIM = ({"B": 2, "T": 5, "I": 3, "G": 4, "N": 1, "D": 3},)
_PROJ_TEST = {"B": (1, 3), "T": (0, 17), "I": (1, 9), "G": (1, 4), "N": (1, 3), "D": (1, 5)}
_PROJ_TEST_SIM = {"B": (1, 2), "T": (0, 4), "I": (1, 3), "G": (1, 4), "N": (1, 2), "D": (1, 3)}

register(
    HotPath(
        name="project_inputs",
        hot_path="recurrence",
        make_inputs=_projection_inputs,
        audit_dims=_PROJ_AUDIT,
        cudasim_dims=_PROJ_SIM,
        test_dims=_PROJ_TEST,
        cudasim_test_dims=_PROJ_TEST_SIM,
    )
)
register(
    HotPath(
        name="project_inputs_backward",
        hot_path="recurrence",
        make_inputs=_projection_backward_inputs,
        audit_dims=_PROJ_AUDIT,
        cudasim_dims=_PROJ_SIM,
        kind="backward",
        test_dims=_PROJ_TEST,
        cudasim_test_dims=_PROJ_TEST_SIM,
    )
)


# --- the tree-verification hot path: integer outputs, compared exactly -------------------------


def _lazy(module, name):
    """``refseq.testing.<module>.<name>`` (input generators, exempt entries), loaded on first
    use so that importing the registry imports no test tooling."""
    def call(*args):
        return getattr(importlib.import_module(f"refseq.testing.{module}"), name)(*args)

    call.__name__ = f"_{module}_{name}"
    return call


_TREE_TEST = {"B": (1, 8), "N": (1, 40), "V": (1, 300)}
_TREE_SIM = {"B": (1, 2), "N": (1, 6), "V": (1, 6)}
_TREE_AUDIT = ({"B": 16, "N": 64, "V": 1000}, {"B": 3, "N": 7, "V": 5})
_TREE_CUDASIM = ({"B": 2, "N": 5, "V": 4},)
_MODES = ("iid", "wor", "point")

for _name, _kind, _extra in (("tree_masks", "masks", {}),
                             ("tree_verify_greedy", "greedy", {}),
                             ("tree_verify_greedy_paths", "paths", {}),
                             ("kv_commit", "kv", {"capture": _lazy("trees", "kv_capture")})):
    register(HotPath(name=_name, hot_path="tree_verify", kind="exact",
                     make_inputs=_lazy("trees", f"{_kind}_inputs"), audit_dims=_TREE_AUDIT,
                     cudasim_dims=_TREE_CUDASIM, test_dims=_TREE_TEST,
                     cudasim_test_dims=_TREE_SIM, **_extra))
register(
    HotPath(
        name="tree_verify_stochastic",
        hot_path="tree_verify",
        kind="exact",
        boundary=_lazy("trees", "stochastic_boundary"),
        make_inputs=_lazy("trees", "stochastic_inputs"),
        audit_dims=tuple({**d, "mode": m} for d in _TREE_AUDIT for m in _MODES),
        cudasim_dims=tuple({**d, "mode": m} for d in _TREE_CUDASIM for m in _MODES),
        test_dims={**_TREE_TEST, "mode": _MODES},
        cudasim_test_dims={**_TREE_SIM, "mode": _MODES},
    )
)


# --- the key-value lookup hot path: indices exact (near-ties exempt), floats by the rule --------


_KV_METRICS = ("l2", "cosine")
_KV_TEST = {"B": (1, 3), "C": (1, 8), "N": (1, 5), "M": (1, 512), "D": (1, 32), "k": (1, 8),
            "metric": _KV_METRICS}
_KV_SIM = {"B": (1, 2), "C": (1, 2), "N": (1, 3), "M": (1, 12), "D": (1, 4), "k": (1, 3),
           "metric": _KV_METRICS}
_KV_AUDIT = ({"B": 256, "C": 16, "N": 1, "M": 512, "D": 16, "k": 8, "metric": "l2"},
             {"B": 3, "C": 5, "N": 7, "M": 33, "D": 5, "k": 3, "metric": "cosine"})
_KV_CUDASIM = ({"B": 2, "C": 2, "N": 2, "M": 9, "D": 3, "k": 2, "metric": "l2"},)


def _kv_drop(dims, *names):
    return {k: v for k, v in dims.items() if k not in names}


register(HotPath(name="kv_lookup", hot_path="kv_lookup", kind="indices",
                 boundary=_lazy("lookups", "lookup_boundary"),
                 make_inputs=_lazy("lookups", "lookup_inputs"),
                 audit_dims=_KV_AUDIT, cudasim_dims=_KV_CUDASIM, test_dims=_KV_TEST,
                 cudasim_test_dims=_KV_SIM))
register(HotPath(name="kv_scatter_add", hot_path="kv_lookup", kind="indices",
                 make_inputs=_lazy("lookups", "scatter_inputs"),
                 audit_dims=tuple({**_kv_drop(d, "D", "metric"), "V": 10} for d in _KV_AUDIT),
                 cudasim_dims=tuple({**_kv_drop(d, "D", "metric"), "V": 2} for d in _KV_CUDASIM),
                 test_dims={**_kv_drop(_KV_TEST, "D", "metric"), "V": (1, 12)},
                 cudasim_test_dims={**_kv_drop(_KV_SIM, "D", "metric"), "V": (1, 3)}))
register(HotPath(name="kv_assign_stats", hot_path="kv_lookup", kind="indices",
                 boundary=_lazy("lookups", "stats_boundary"),
                 make_inputs=_lazy("lookups", "stats_inputs"),
                 audit_dims=tuple(_kv_drop(d, "k", "metric") for d in _KV_AUDIT),
                 cudasim_dims=tuple(_kv_drop(d, "k", "metric") for d in _KV_CUDASIM),
                 test_dims=_kv_drop(_KV_TEST, "k", "metric"),
                 cudasim_test_dims=_kv_drop(_KV_SIM, "k", "metric")))
