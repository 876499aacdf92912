"""Every public function against the standard bad inputs, from ONE table.

The library's standard (refseq/_checks.py, docs/design.md): bad input raises ``TypeError`` (wrong
kind of object or dtype) or ``ValueError`` (wrong shape or value) with a message that names the
argument; nothing is silently wrong. This module holds that standard for the whole public surface:

- :func:`public_surface` walks the packages and lists every public callable: the ``__all__`` of
  each module that has one, and, for a module without ``__all__`` that no enclosing package
  gives an ``__all__`` either, the public names it defines (an internal module of a package with
  an ``__all__`` is reached through that package). ``test_every_public_callable_is_covered``
  fails naming any callable that is neither a row of :data:`TABLE` nor in :data:`EXCLUDED`
  (with its reason), so a new public function cannot skip this file.
- Each row of :data:`TABLE` is ``row(fn, build, arrays=..., flags=..., keywords=..., cases=...)``:
  ``build()`` returns valid keyword arguments (small shapes); the valid call is the control and
  must succeed (``test_control``). Each array argument gets the bad inputs of its kind (see
  :data:`F`, :data:`FREE`, :data:`LEAD`, :data:`ANY`, :data:`STATS`, :data:`FEATURES`,
  :func:`ids`, :data:`MASK`:
  wrong ndim, a mismatched shape, int32/bool/float16/complex dtypes; for integer arrays float
  dtype and values out of range), each flag ``'False'``, ``1`` and ``None``, each keyword its
  listed out-of-range or wrong-kind values, and ``cases`` adds row-specific ones (a wrong record,
  an empty axis where one is not allowed, ...). NaN and inf are fed to the float arrays of
  functions whose ``check_finite`` defaults to True; functions without ``check_finite``
  propagate NaN as documented and are not fed NaN.
- Expected: ``TypeError`` or ``ValueError`` whose message names the argument (as a word; for a
  mismatched shape, any of the function's arguments, since the mismatch is between two of them).
  Anything else fails with what happened: no error (a silent result), another exception type, a
  message that does not name the argument, or a hang (a call is stopped after ``HANG_S``).
- :data:`PENDING` would list public callables whose rows are not written yet; it is empty and
  ``test_no_public_callable_is_pending`` keeps it so.

The cuda tier runs under ``NUMBA_ENABLE_CUDASIM=1`` on tiny shapes; without numba-cuda its rows
are skipped. The torch tier (Hugging Face peers, a tiny random GPT-2) is skipped without torch and
transformers; builders run only when a row needs its valid arguments, so such a row costs nothing
at collection. A builder gives the positional arguments of a function with ``*args`` under the
key ``"*"``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import signal
from dataclasses import dataclass, field

import numpy as np
import pytest

import refseq

# --- the public surface -------------------------------------------------------------------------

# Subtrees that are not library API taking user arrays (reason each); everything else is walked.
SKIPPED_MODULES = {
    "refseq.testing": "the comparison oracle and hypothesis strategies (tests/testing/ covers "
                      "their argument checks); feeding the oracle bad input tests the test tools",
    "refseq.bench": "benchmark drivers: every argument comes from the refseq bench parser, "
                    "validated by tests/test_cli.py",
    "refseq.peers": "torch re-implementations used only by the peer tests (optional extra)",
    "refseq.cli": "the command line: tests/test_cli.py feeds every option bad values",
    "refseq.audit": "refseq audit's driver: arguments come from the validated command line",
    "refseq.registry": "the hot-path table and its lookups: data, not a computation",
    "refseq.tiers": "backend lookup; its check_backend is exercised through every backend= row",
    "refseq.__main__": "runs the command line on import",
    "refseq.plots": "the demos' --plot figures: their data are the demos' own results, and the "
                    "--plot option's checks (path, extension, matplotlib) are in "
                    "tests/test_plots.py",
}


def _skipped(name: str) -> bool:
    if name.endswith(".demo"):  # paper demos: command line, tests/test_cli.py
        return True
    if any(part.startswith("_") for part in name.split(".")):  # private modules
        return True
    return any(name == m or name.startswith(m + ".") for m in SKIPPED_MODULES)


def _order(name: str):
    # canonical homes first, so that a re-export (refseq.papers.flashrnn) maps to its home
    return (name.startswith("refseq.papers"), name.startswith(("refseq.jit", "refseq.cuda")), name)


def public_surface() -> dict:
    """``{dotted name: callable}`` of every public callable (first name wins for re-exports)."""
    names = [m.name for m in pkgutil.walk_packages(refseq.__path__, "refseq.")]
    mods = {}
    for n in sorted((n for n in names if not _skipped(n)), key=_order):
        mods[n] = importlib.import_module(n)
    out, seen = {}, set()
    for n, mod in mods.items():
        public = getattr(mod, "__all__", None)
        if public is None:
            parts = n.split(".")
            if any(getattr(importlib.import_module(".".join(parts[:i])), "__all__", None)
                   is not None for i in range(2, len(parts))):
                continue  # an internal module of a package that declares its surface
            public = [k for k, v in vars(mod).items() if not k.startswith("_") and callable(v)
                      and getattr(v, "__module__", None) == n]
        for k in public:
            v = getattr(mod, k)
            if callable(v) and not inspect.ismodule(v) and id(v) not in seen:
                seen.add(id(v))
                out[f"{n}.{k}"] = v
    return out


def resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


# --- bad-input kinds ----------------------------------------------------------------------------

FLOAT_DTYPES = ("int32", "bool", "float16", "complex")
# a float array of fixed rank whose shape is tied to the other arguments
F = frozenset({"ndim", "shape", *FLOAT_DTYPES})
# a float array with free leading axes (..., D): a 0-d array is the wrong rank
LEAD = frozenset({"ndim0", "shape", *FLOAT_DTYPES})
# a float array of any shape (elementwise functions)
ANY = frozenset(FLOAT_DTYPES)
# a float array whose last axis is free (a value width Dv, an input width I): no "shape" case
FREE = F - {"shape"}
# statistics helpers (features, targets): integer and float16 data are legitimate input
STATS = frozenset({"ndim", "shape", "complex"})
# a feature matrix (n, F): F is free, so a changed last axis is no error
FEATURES = STATS - {"shape"}
# a boolean mask tied to the other arguments' shape
MASK = frozenset({"ndim", "shape", "float", "two"})


@dataclass(frozen=True)
class Ids:
    """An integer array (token ids, positions, lengths) with values in ``[low, high)``."""

    high: int | None = None
    low: int = 0
    kinds: frozenset = frozenset({"ndim", "float", "low", "high"})


def ids(high=None, low=0, kinds=("ndim", "float", "low", "high")):
    """Integer array in ``[low, high)``; ``kinds`` picks the bad inputs (drop "ndim" for an
    array of any shape, "low" where negative values are meaningful)."""
    return Ids(high, low, frozenset(k for k in kinds if k != "high" or high is not None))


def _set(x, index, value):
    y = np.array(x, dtype=np.result_type(np.asarray(x).dtype, np.float64)
                 if isinstance(value, float) else np.asarray(x).dtype)
    y.flat[index] = value
    return y


def _mutations(spec, x):
    """``(kind, bad value)`` for array argument ``x`` under ``spec``."""
    x = np.asarray(x)
    if isinstance(spec, Ids):
        out = {"ndim": x[..., None] if x.ndim else x.reshape(1, 1),
               "float": x.astype(np.float64) + 0.5,
               "low": _set(x, 0, spec.low - 1) if x.size else None,
               "high": _set(x, -1, spec.high) if x.size and spec.high is not None else None}
        return [(k, out[k]) for k in sorted(spec.kinds) if out.get(k) is not None]
    out = {}
    for kind in sorted(spec):
        if kind == "ndim":
            out[kind] = x[..., None]
        elif kind == "ndim0":
            out[kind] = np.asarray(x.reshape(-1)[0] if x.size else 0.0, x.dtype)
        elif kind == "shape":
            out[kind] = x[..., :-1] if x.shape and x.shape[-1] > 1 else np.concatenate([x, x], -1)
        elif kind == "int32":
            out[kind] = np.round(x).astype(np.int32) if x.dtype != np.bool_ else x.astype(np.int32)
        elif kind == "bool":
            out[kind] = x > 0
        elif kind == "float16":
            out[kind] = x.astype(np.float16)
        elif kind == "complex":
            out[kind] = x.astype(np.complex128)
        elif kind == "float":  # a mask given as floats
            out[kind] = x.astype(np.float64)
        elif kind == "two":  # an integer mask with a value other than 0/1
            out[kind] = _set(x.astype(np.int64), 0, 2)
        elif kind in ("nan", "inf"):
            out[kind] = _set(x, 0, np.nan if kind == "nan" else np.inf)
    return list(out.items())


FLAG_BAD = ("'False'", "1", "None")
_FLAG_VALUES = {"'False'": "False", "1": 1, "None": None}


@dataclass
class Row:
    fn: str
    build: callable
    arrays: dict = field(default_factory=dict)
    flags: tuple = ()
    keywords: dict = field(default_factory=dict)
    cases: list = field(default_factory=list)  # (argument named, label, kwargs -> bad kwargs)
    finite: bool | None = None  # None: from the signature's check_finite default
    id: str | None = None
    tier: str = "numpy"
    note: str = ""

    @property
    def name(self):
        return self.id or self.fn.rpartition(".")[2]

    def checks_finite(self):
        if self.finite is not None:
            return self.finite
        try:
            p = inspect.signature(resolve(self.fn)).parameters.get("check_finite")
        except (TypeError, ValueError):
            return False
        return p is not None and p.default is True


def row(fn, build, **kw):
    return Row(fn, build, **kw)


def tiers(fn_by_tier: dict, build, **kw):
    """The same row for the numpy reference and its compiled twins (``{tier: dotted name}``)."""
    out = []
    for tier, fn in fn_by_tier.items():
        name = fn.rpartition(".")[2]
        out.append(Row(fn, build, id=name if tier == "numpy" else f"{tier}.{name}", tier=tier,
                       **kw))
    return out


def _rng():
    return np.random.default_rng(0)


def _f(*shape, low=None, high=None):
    r = _rng()
    if low is not None:
        return r.uniform(low, high, shape)
    return r.standard_normal(shape)


# --- builders of valid arguments (small shapes; last axes >= 2 so that a slice mismatches) -----

B, T, D, H = 2, 5, 3, 2


def _linear_scan():
    return {"a": _f(B, T, D, low=0.5, high=1.0), "b": _f(B, T, D), "h0": _f(B, D)}


def _linear_scan_backward():
    from refseq.scan import linear_scan

    kw = _linear_scan()
    h = linear_scan(kw["a"], kw["b"], kw["h0"])
    return {"a": kw["a"], "h": h, "grad_h": _f(B, T, D), "h0": kw["h0"]}


def _softmax_state():
    from refseq.scan import SoftmaxState

    return SoftmaxState(_f(B, H), _f(B, H, low=0.5, high=1.0), _f(B, H, D))


def _softmax_scan():
    return {"s": 3 * _f(B, T, H), "v": _f(B, T, H, D), "mask": _rng().random((B, T)) > 0.2,
            "state": _softmax_state()}


def _softmax_scan_backward():
    kw = _softmax_scan()
    return {**kw, "grad_o": _f(B, T, H, D)}


def _bad_state(name="state"):
    """A carried SoftmaxState of the wrong shape, a plain array, and one with u < 0."""
    from refseq.scan import SoftmaxState

    def shape(kw):
        m, u, w = kw[name]
        return {**kw, name: SoftmaxState(m[:, :1], u[:, :1], w[:, :1])}

    def array(kw):
        return {**kw, name: np.zeros((B, H))}

    def negative(kw):
        m, u, w = kw[name]
        return {**kw, name: SoftmaxState(m, -u, w)}

    return [(name, "state-shape", shape), (name, "state-array", array),
            (name, "state-u-negative", negative)]


def _assoc():
    from refseq.scan import AFFINE

    kw = _linear_scan()
    return {"op": AFFINE, "elems": (kw["a"], kw["b"])}


def _elems_cases():
    def mismatch(kw):
        a, b = kw["elems"]
        return {**kw, "elems": (a, b[:, :-1])}

    def not_tuple(kw):
        return {**kw, "elems": kw["elems"][0]}

    def ints(kw):
        a, b = kw["elems"]
        return {**kw, "elems": (a, b.astype(np.int32))}

    return [("elems", "elems-mismatched", mismatch), ("elems", "elems-array", not_tuple),
            ("elems", "elems-int32", ints)]


def _affine_pair():
    kw = _linear_scan()
    return {"left": (kw["a"][:, :1], kw["b"][:, :1]), "right": (kw["a"][:, 1:2], kw["b"][:, 1:2])}


def _softmax_leaf():
    kw = _softmax_scan()
    return {"s": kw["s"], "v": kw["v"], "mask": kw["mask"]}


def _softmax_pair():
    from refseq.scan import softmax_leaf

    leaf = softmax_leaf(**_softmax_leaf())
    return {"left": tuple(x[:, :1] for x in leaf), "right": tuple(x[:, 1:2] for x in leaf)}


CELL_DIMS = {"lstm": (4, 4, 4, 2), "gru": (3, 3, 4, 1), "elman": (1, 1, 1, 1),
             "slstm": (4, 4, 4, 4)}  # G_w, G_r, G_t, S


def _rec(cell="lstm", N=2, Dh=3, B_=2, T_=4):
    Gw, Gr, Gt, S = CELL_DIMS[cell]
    return {"Wx": _f(B_, T_, Gw, N, Dh), "R": _f(Gr, N, Dh, Dh) / np.sqrt(Dh),
            "b": 0.1 * _f(Gt, N, Dh), "states0": 0.1 * _f(S, B_, N, Dh), "cell": cell}


def _rec_step():
    kw = _rec()
    return {"Wx_t": kw["Wx"][:, 0], "R": kw["R"], "b": kw["b"], "states": kw["states0"],
            "cell": "lstm"}


def _rec_backward():
    def build():
        from refseq.recurrence import flashrnn_forward

        kw = _rec()
        states_all, last, cache = flashrnn_forward(**kw, return_cache=True)
        return {"d_states_all": _f(*states_all.shape), "d_last_states": _f(*last.shape),
                "R": kw["R"], "b": kw["b"], "cache": cache, "cell": "lstm"}
    return build


def _bad_cache():
    def missing(kw):
        return {**kw, "cache": {k: v for k, v in list(kw["cache"].items())[1:]}}

    def shape(kw):
        return {**kw, "cache": {k: v[..., :-1] for k, v in kw["cache"].items()}}

    return [("cache", "cache-missing-key", missing), ("cache", "cache-shape", shape)]


def _proj():
    return {"x": _f(B, T, 4), "W": _f(4, 2, 3, 4), "bias": _f(4, 2, 3)}


def _proj_backward():
    return {"dWx": _f(B, T, 4, 2, 3), "x": _f(B, T, 4), "W": _f(4, 2, 3, 4)}


def _pointwise():
    kw = _rec()
    return {"cell": "lstm", "Wx_t": kw["Wx"][:, 0], "Ry_t": _f(B, 4, 2, 3), "b": kw["b"],
            "states": kw["states0"]}


def _pointwise_backward():
    from refseq.recurrence import pointwise_forward

    kw = _pointwise()
    new, cache = pointwise_forward(**kw)
    return {"cell": "lstm", "d_states_total": _f(*new.shape), "states_prev": kw["states"],
            "states_new": new, "cache": cache}


def _torch_lstm(G=4, Hh=3, I=2):
    return lambda: {"weight_ih": _f(G * Hh, I), "weight_hh": _f(G * Hh, Hh),
                    "bias_ih": _f(G * Hh), "bias_hh": _f(G * Hh)}


def _torch_grads(G=4, Hh=3, I=2, Gt=None):
    return lambda: {"dW": _f(G, 1, Hh, I), "dR": _f(G, 1, Hh, Hh), "db": _f(Gt or G, 1, Hh)}


BACKEND = {"backend": ["torch", 3, None]}
CELL = {"cell": ["nope", 3]}

SCAN_FLAGS = ("reverse",)

TABLE: list[Row] = []  # filled section by section below; ids made unique in _unique_ids

# refseq.scan (+ jit, cuda): docs/hot-paths/scan.md
TABLE += tiers({"numpy": "refseq.scan.linear_scan", "jit": "refseq.jit.scan.linear_scan",
                "cuda": "refseq.cuda.scan.linear_scan"}, _linear_scan,
               arrays={"a": F, "b": F, "h0": F}, flags=("reverse", "check_finite"))
TABLE[0].keywords = BACKEND
TABLE[-1].keywords = {"method": ["nope", 3], "threads": [0, -32, 3.0], "per_thread": [0, -1]}
TABLE += [
    row("refseq.scan.linear_scan_backward", _linear_scan_backward,
        arrays={"a": F, "h": F, "grad_h": F, "h0": F}, flags=("reverse",), keywords=BACKEND),
]
TABLE += tiers({"numpy": "refseq.scan.softmax_scan", "jit": "refseq.jit.scan.softmax_scan",
                "cuda": "refseq.cuda.scan.softmax_scan"}, _softmax_scan,
               arrays={"s": F, "v": F, "mask": MASK}, flags=("check_finite",),
               cases=_bad_state())
TABLE[-3].keywords = BACKEND
TABLE[-1].keywords = {"method": ["nope", 3], "threads": [0, -32, 3.0], "per_thread": [0, -1]}
TABLE += [
    row("refseq.scan.softmax_scan_backward", _softmax_scan_backward,
        arrays={"s": F, "v": F, "grad_o": F, "mask": MASK}, keywords=BACKEND,
        cases=_bad_state()),
    row("refseq.scan.softmax_scan_textbook", lambda: {k: v for k, v in _softmax_scan().items()
                                                       if k != "state"},
        arrays={"s": F, "v": FREE, "mask": MASK}),
    row("refseq.scan.check_linear_scan_args", _linear_scan,
        arrays={"a": F, "b": F, "h0": F}, flags=("check_finite",), finite=True),
    row("refseq.scan.check_softmax_scan_args", _softmax_scan,
        arrays={"s": F, "v": F, "mask": MASK}, flags=("check_finite",), finite=True,
        cases=_bad_state()),
    row("refseq.scan.check_softmax_state",
        lambda: {"state": _softmax_state(), "shape": (B, H, D), "dtype": np.float64},
        flags=("check_finite",), keywords={"dtype": [np.int32, np.float16, "nope"]},
        cases=_bad_state()),
    row("refseq.scan.softmax_leaf", _softmax_leaf, arrays={"s": F, "v": FREE, "mask": MASK}),
    row("refseq.scan.affine_combine", _affine_pair,
        cases=[("right", "right-shape", lambda kw: {**kw, "right": (kw["right"][0][..., :-1],
                                                                    kw["right"][1][..., :-1])}),
               ("left", "left-not-pair", lambda kw: {**kw, "left": kw["left"][0]})]),
    row("refseq.scan.softmax_combine", _softmax_pair,
        cases=[("right", "right-shape", lambda kw: {**kw, "right": tuple(
            x[:, :, :1] for x in kw["right"])}),
               ("left", "left-not-triple", lambda kw: {**kw, "left": kw["left"][0]})]),
    row("refseq.scan.affine_identity", lambda: {"like": _affine_pair()["left"]},
        cases=[("like", "like-array", lambda kw: {"like": kw["like"][0]})]),
    row("refseq.scan.softmax_identity", lambda: {"shape": (B, 1, H), "D": D,
                                                  "dtype": np.float64},
        keywords={"D": [-1, 2.5], "dtype": [np.int32, "nope"], "shape": [(-1,), "ab"]}),
] + [
    row(f"refseq.scan.{name}", _assoc, flags=("reverse", "exclusive"),
        keywords={"axis": [5, 1.0, "1"], "op": [None, "affine"]}, cases=_elems_cases())
    for name in ("scan_sequential", "scan_blelloch", "scan_hillis_steele")
] + [
    row("refseq.scan.scan_chunked", _assoc, flags=("reverse", "exclusive"),
        keywords={"axis": [5, 1.0], "chunk": [0, -1, 2.5], "op": [None]}, cases=_elems_cases()),
    row("refseq.cuda.scan.choose_method", lambda: {"T": 37, "rows": 4},
        keywords={"T": [-1, 2.5], "rows": [-1, 1.5], "threads": [0, 3.0], "per_thread": [0]}),
]

# refseq.recurrence (+ jit, cuda): docs/hot-paths/recurrence.md
_REC_KW = {"cell": ["nope", 3], "forward_clipval": [-1.0, "1", np.nan]}
TABLE += tiers({"numpy": "refseq.recurrence.flashrnn_forward",
                "jit": "refseq.jit.recurrence.flashrnn_forward",
                "cuda": "refseq.cuda.recurrence.flashrnn_forward"}, _rec,
               arrays={"Wx": F, "R": F, "b": F, "states0": F},
               flags=("return_cache", "clamp_gates_le_one", "check_finite"), keywords=_REC_KW)
TABLE[-3].keywords = {**_REC_KW, **BACKEND, "accumulate_dtype": [np.int32, "nope"]}
TABLE[-3].flags += ("emulate_bfloat16",)
TABLE += [
    row("refseq.recurrence.flashrnn_step", _rec_step,
        arrays={"Wx_t": F, "R": F, "b": F, "states": F},
        flags=("clamp_gates_le_one", "emulate_bfloat16", "check_finite"), keywords=_REC_KW),
    row("refseq.recurrence.check_recurrence_args", _rec,
        arrays={"Wx": F, "R": F, "b": F, "states0": F}, flags=("check_finite", "step"),
        keywords=CELL, finite=True),
    row("refseq.recurrence.check_backward_args", _rec_backward(),
        arrays={"d_states_all": F, "d_last_states": F, "R": F, "b": F},
        flags=("check_finite",), keywords=CELL, finite=True, cases=_bad_cache()),
    row("refseq.recurrence.get_cell", lambda: {"cell": "lstm"}, keywords={"cell": ["nope", 3,
                                                                                    None]}),
    row("refseq.recurrence.pointwise_forward", _pointwise,
        arrays={"Wx_t": F, "Ry_t": F, "b": F, "states": F}, keywords=CELL,
        cases=[("clamp_gates_le_one", "option-not-bool",
                lambda kw: {**kw, "cell": "slstm", "Wx_t": _f(B, 4, 2, 3), "Ry_t": _f(B, 4, 2, 3),
                            "states": _f(4, B, 2, 3), "clamp_gates_le_one": "False"}),
               ("options", "unknown-option", lambda kw: {**kw, "bogus": True})]),
    row("refseq.recurrence.pointwise_backward", _pointwise_backward,
        arrays={"d_states_total": F, "states_prev": F, "states_new": F}, keywords=CELL),
    row("refseq.recurrence.to_block_diagonal", lambda: {"R": _f(4, 2, 3, 3)},
        arrays={"R": F}),
    row("refseq.recurrence.from_block_diagonal",
        lambda: {"Rdense": np.stack([np.kron(np.eye(2), _f(3, 3))] * 4), "N": 2},
        arrays={"Rdense": F}, flags=("strict",), keywords={"N": [0, -1, 2.0, 4]},
        cases=[("strict", "off-diagonal", lambda kw: {**kw, "Rdense": kw["Rdense"] + 1.0})]),
    row("refseq.recurrence.permute_layout", lambda: {"x": _f(4, 2, 3, 3), "src": "GHDP",
                                                      "dst": "HPGD"},
        keywords={"src": ["GHD", "GHDD", 3], "dst": ["HPG", "XPGD", None]}),
    row("refseq.recurrence.round_to_bfloat16", lambda: {"x": _f(3, 4)}, arrays={"x": ANY}),
    row("refseq.recurrence.lstm_from_torch", _torch_lstm(4),
        arrays={"weight_ih": FREE, "weight_hh": F, "bias_ih": F, "bias_hh": F}),
    row("refseq.recurrence.gru_from_torch", _torch_lstm(3),
        arrays={"weight_ih": FREE, "weight_hh": F, "bias_ih": F, "bias_hh": F}),
    row("refseq.recurrence.elman_from_torch", _torch_lstm(1),
        arrays={"weight_ih": FREE, "weight_hh": F, "bias_ih": F, "bias_hh": F}),
    row("refseq.recurrence.lstm_to_torch", _torch_grads(4), arrays={"dW": FREE, "dR": F, "db": F}),
    row("refseq.recurrence.gru_to_torch", _torch_grads(3, Gt=4),
        arrays={"dW": FREE, "dR": F, "db": F}),
    row("refseq.recurrence.elman_to_torch", _torch_grads(1), arrays={"dW": FREE, "dR": F, "db": F}),
]
TABLE += tiers({"numpy": "refseq.recurrence.flashrnn_backward",
                "jit": "refseq.jit.recurrence.flashrnn_backward",
                "cuda": "refseq.cuda.recurrence.flashrnn_backward"}, _rec_backward(),
               arrays={"d_states_all": F, "d_last_states": F, "R": F, "b": F},
               flags=("gradient_recurrent_cut", "clamp_gates_le_one"),
               keywords={"cell": ["nope", 3], "gradient_recurrent_clipval": [-1.0, "1"]},
               cases=_bad_cache())
TABLE[-3].keywords = {**TABLE[-3].keywords, **BACKEND}
TABLE[-3].flags += ("exact_stabiliser",)
TABLE += tiers({"numpy": "refseq.recurrence.project_inputs",
                "jit": "refseq.jit.recurrence.project_inputs",
                "cuda": "refseq.cuda.recurrence.projection.project_inputs"}, _proj,
               arrays={"x": F, "W": F, "bias": F}, flags=("check_finite",))
TABLE[-3].keywords = BACKEND
TABLE += tiers({"numpy": "refseq.recurrence.project_inputs_backward",
                "jit": "refseq.jit.recurrence.project_inputs_backward",
                "cuda": "refseq.cuda.recurrence.projection.project_inputs_backward"},
               _proj_backward, arrays={"dWx": F, "x": F, "W": F}, flags=("check_finite",))
TABLE[-3].keywords = BACKEND
TABLE += [
    row("refseq.recurrence.projection.check_projection_args", _proj,
        arrays={"x": F, "W": F, "bias": F}, flags=("check_finite",)),
    row("refseq.recurrence.projection.check_projection_backward_args", _proj_backward,
        arrays={"dWx": F, "x": F, "W": F}, flags=("check_finite",)),
    row("refseq.jit.recurrence.plan", lambda: {"B": 2, "N": 2, "D": 3, "G_r": 4},
        keywords={"B": [-1, 2.5], "N": [-1], "D": [-3], "G_r": [-1], "threads": [0, -1],
                  "modes": [("nope",), "units"]}),
    row("refseq.cuda.recurrence.r_fits_shared",
        lambda: {"G_r": 4, "D": 3, "batch_tile": 16, "itemsize": 4},
        keywords={"G_r": [-1], "D": [-1], "batch_tile": [0, 2.5], "itemsize": [3, 0]}),
]

# refseq.nn: forward (x, params) -> (y, cache); backward (dy, cache) -> grads. docs/nn.md
_D, _F = 4, 6


def _with_cache(fwd, build):
    """Builder of ``{dy, cache}`` for a backward from its forward's valid arguments."""

    def make():
        y, cache = resolve(fwd)(**build())
        return {"dy": _f(*np.shape(y)), "cache": cache}

    return make


def _x(*shape):
    return lambda: {"x": _f(*shape)}


_LIN = lambda: {"x": _f(B, T, _D), "W": _f(_D, _F), "b": _f(_F)}  # noqa: E731
_NORM = lambda: {"x": _f(B, T, _D), "gamma": _f(_D), "beta": _f(_D)}  # noqa: E731
_RMS = lambda: {"x": _f(B, T, _D), "gamma": _f(_D)}  # noqa: E731
_FFN = lambda: {"x": _f(B, T, _D), "W_1": _f(_D, _F), "b_1": _f(_F), "W_2": _f(_F, _D),  # noqa
                "b_2": _f(_D)}
_CONV = lambda: {"x": _f(B, T, 3), "W": _f(2, 3, 4), "b": _f(4), "state": _f(B, 1, 3)}  # noqa
_ROPE = lambda: {"x": _f(B, T, H, 4), "positions": np.arange(T)}  # noqa: E731
_POS = lambda: {"positions": np.arange(T), "P": _f(8, _D)}  # noqa: E731
_EMB = lambda: {"ids": np.array([[0, 1, 2], [3, 4, 0]]), "E": _f(5, _D)}  # noqa: E731
_CE = lambda: {"logits": _f(B, T, 5), "targets": np.arange(B * T).reshape(B, T) % 5}  # noqa


def _mlp(activation="gelu"):
    def make():
        from refseq.nn import init_mlp_params

        return {"x": _f(B, T, _D), "params": init_mlp_params(0, _D, _F, activation),
                "activation": activation}
    return make


def _dy_case(label="dy-shape"):
    return [("dy", label, lambda kw: {**kw, "dy": kw["dy"][..., :-1]}),
            ("dy", "dy-int32", lambda kw: {**kw, "dy": kw["dy"].astype(np.int32)}),
            ("dy", "dy-complex", lambda kw: {**kw, "dy": kw["dy"].astype(np.complex128)})]


_ACTS = ("relu", "sigmoid", "silu", "tanh", "gelu")
TABLE += [
    row(f"refseq.nn.{a}_forward", _x(B, T, _D), arrays={"x": ANY},
        keywords={"approximate": ["nope", 3]} if a == "gelu" else {}) for a in _ACTS
] + [
    row(f"refseq.nn.{a}_backward", _with_cache(f"refseq.nn.{a}_forward", _x(B, T, _D)),
        cases=_dy_case()) for a in _ACTS
] + [
    row("refseq.nn.gelu", _x(B, T, _D), arrays={"x": ANY}),
    row("refseq.nn.softmax_forward", _x(B, T, _D), arrays={"x": ANY},
        keywords={"axis": [3, -4, 1.0, "1"]}),
    row("refseq.nn.log_softmax_forward", _x(B, T, _D), arrays={"x": ANY},
        keywords={"axis": [3, 1.0]},
        cases=[("x", "x-empty-axis", lambda kw: {**kw, "x": kw["x"][..., :0]})]),
    row("refseq.nn.softmax_backward", _with_cache("refseq.nn.softmax_forward", _x(B, T, _D)),
        cases=_dy_case()),
    row("refseq.nn.log_softmax_backward",
        _with_cache("refseq.nn.log_softmax_forward", _x(B, T, _D)), cases=_dy_case()),
    row("refseq.nn.linear", _LIN, arrays={"x": LEAD, "W": F, "b": F}),
    row("refseq.nn.linear_forward", _LIN, arrays={"x": LEAD, "W": F, "b": F}),
    row("refseq.nn.linear_backward", _with_cache("refseq.nn.linear_forward", _LIN),
        cases=_dy_case()),
    row("refseq.nn.layer_norm", _NORM, arrays={"x": LEAD, "gamma": F, "beta": F},
        keywords={"eps": [-1.0, np.nan, "1e-5"]}),
    row("refseq.nn.layer_norm_forward", _NORM, arrays={"x": LEAD, "gamma": F, "beta": F},
        keywords={"eps": [-1.0, np.nan, "1e-5"]},
        cases=[("x", "x-D-0", lambda kw: {"x": kw["x"][..., :0], "gamma": kw["gamma"][:0],
                                          "beta": kw["beta"][:0]})]),
    row("refseq.nn.layer_norm_backward", _with_cache("refseq.nn.layer_norm_forward", _NORM),
        cases=_dy_case()),
    row("refseq.nn.rms_norm_forward", _RMS, arrays={"x": LEAD, "gamma": F},
        keywords={"eps": [-1.0, np.nan, "1e-6"]}),
    row("refseq.nn.rms_norm_backward", _with_cache("refseq.nn.rms_norm_forward", _RMS),
        cases=_dy_case()),
    row("refseq.nn.ffn", _FFN, arrays={"x": LEAD, "W_1": F, "b_1": F, "W_2": F, "b_2": F}),
    row("refseq.nn.conv1d_forward", _CONV, arrays={"x": F, "W": F, "b": F, "state": F},
        keywords={"groups": ["nope", 1]}),
    row("refseq.nn.conv1d_backward", _with_cache("refseq.nn.conv1d_forward", _CONV),
        cases=_dy_case()),
    row("refseq.nn.dropout_forward", lambda: {"x": _f(B, T, _D), "p": 0.5, "rng": 0},
        arrays={"x": ANY}, flags=("training",),
        keywords={"p": [-0.1, 1.5, np.nan, "0.5"], "rng": ["seed", -1, 1.5]},
        cases=[("mask", "mask-shape", lambda kw: {**kw, "mask": np.ones((B, T), bool)}),
               ("mask", "mask-float", lambda kw: {**kw, "mask": np.ones((B, T, _D))})]),
    row("refseq.nn.dropout_backward",
        _with_cache("refseq.nn.dropout_forward", lambda: {"x": _f(B, T, _D), "p": 0.5,
                                                          "rng": 0}), cases=_dy_case()),
    row("refseq.nn.embedding_forward", _EMB,
        arrays={"ids": ids(5, kinds=("float", "low", "high")), "E": FREE}),
    row("refseq.nn.embedding_backward", _with_cache("refseq.nn.embedding_forward", _EMB),
        cases=_dy_case()),
    row("refseq.nn.position_embedding_forward", _POS,
        arrays={"positions": ids(8, kinds=("float", "low", "high")), "P": FREE}),
    row("refseq.nn.position_embedding_backward",
        _with_cache("refseq.nn.position_embedding_forward", _POS), cases=_dy_case()),
    row("refseq.nn.rope_forward", _ROPE,
        arrays={"x": F, "positions": ids(None, kinds=("ndim", "float"))},
        keywords={"base": [0.0, -1.0, np.nan, "1e4"]},
        cases=[("x", "x-odd-Dh", lambda kw: {**kw, "x": kw["x"][..., :3]})]),
    row("refseq.nn.rope_backward", _with_cache("refseq.nn.rope_forward", _ROPE),
        cases=_dy_case()),
    row("refseq.nn.cross_entropy_forward", _CE, arrays={"logits": F, "targets": ids(5)},
        keywords={"label_smoothing": [-0.1, 1.5, np.nan], "reduction": ["avg", 1],
                  "ignore_index": [1.5, "x"]}),
    row("refseq.nn.cross_entropy_backward",
        lambda: {"dloss": np.array(1.0), "cache": resolve("refseq.nn.cross_entropy_forward")(
            **_CE())[1]},
        cases=[("dloss", "dloss-shape", lambda kw: {**kw, "dloss": np.ones(3)}),
               ("dloss", "dloss-complex", lambda kw: {**kw, "dloss": np.array(1 + 1j)})]),
    row("refseq.nn.mlp_forward", _mlp(), arrays={"x": LEAD},
        keywords={"activation": ["relu6", 3, "swiglu"]}),
    row("refseq.nn.mlp_backward", _with_cache("refseq.nn.mlp_forward", _mlp()),
        cases=_dy_case()),
    row("refseq.nn.init_mlp_params", lambda: {"rng": 0, "D": _D, "D_hidden": _F},
        flags=("bias",), keywords={"D": [0, -1, 2.5], "D_hidden": [0, "6"],
                                   "activation": ["nope"], "dtype": [np.int32, np.float16],
                                   "rng": ["seed", -1]}),
]

# refseq.rnn: recurrent layers (B, T, I) -> (B, T, H)
_I, _H = 3, 4


def _elman():
    return {"x": _f(B, T, _I), "W_hx": _f(_H, _I), "W_hh": _f(_H, _H) / 2, "b_h": _f(_H),
            "h0": _f(B, _H), "lengths": np.array([T, 2])}


def _lstm_params():
    from refseq.rnn.lstm import init_lstm_params

    return init_lstm_params(_rng(), _I, _H)


def _lstm():
    return {"x": _f(B, T, _I), "params": _lstm_params(), "state0": (_f(B, _H), _f(B, _H)),
            "lengths": np.array([T, 2])}


def _elman_backward():
    from refseq.rnn.elman import elman_forward

    h, last, cache = elman_forward(**_elman())
    return {"dh": _f(*h.shape), "dh_last": _f(*last.shape), "cache": cache}


def _lstm_backward():
    from refseq.rnn.lstm import lstm_forward

    h, last, cache = lstm_forward(**_lstm())
    return {"dh": _f(*h.shape), "d_last": (_f(B, _H), _f(B, _H)), "cache": cache}


def _elman_layer():
    from refseq.rnn.elman import ElmanLayer

    kw = _elman()
    return ElmanLayer(kw["W_hx"], kw["W_hh"], kw["b_h"])


def _bidir():
    return {"forward_fn": _elman_layer(), "backward_fn": _elman_layer(), "x": _f(B, T, _I),
            "lengths": np.array([T, 2])}


def _bidir_backward():
    from refseq.rnn.bidirectional import bidirectional

    out, cache = bidirectional(**_bidir())
    return {"dout": _f(*out.shape), "cache": cache}


def _brnn():
    return {"h_fwd": _f(B, T, _H), "h_bwd": _f(B, T, _H), "W_yh": _f(5, _H), "W_yz": _f(5, _H),
            "b_y": _f(5)}


def _stack():
    return {"layers": [_elman_layer()], "x": _f(B, T, _I), "lengths": np.array([T, 2]),
            "dropout_nonrecurrent": 0.0, "rng": 0}


def _stack_backward():
    from refseq.rnn.stack import stack

    y, states, cache = stack(**_stack())
    return {"dy": _f(*y.shape), "d_states_last": [_f(B, _H)], "cache": cache}


def _rnn_model():
    from refseq.rnn.bptt import RNNModel

    return RNNModel(_elman_layer(), _f(5, _H), _f(5))


def _bptt():
    return {"model": _rnn_model(), "x": _f(B, T, _I),
            "targets": np.arange(B * T).reshape(B, T) % 5, "mask": np.ones((B, T), bool)}


def _grads():
    return {"grads": {"w": _f(3, 2), "b": _f(2)}}


_LENGTHS = ids(T + 1)  # lengths in [0, T]
TABLE += [
    row("refseq.rnn.elman.elman_forward", _elman,
        arrays={"x": F, "W_hx": F, "W_hh": F, "b_h": F, "h0": F, "lengths": _LENGTHS},
        flags=("use_engine",), keywords={"activation": ["softsign", 3]}),
    row("refseq.rnn.elman.elman_backward", _elman_backward, arrays={"dh": F, "dh_last": F}),
    row("refseq.rnn.elman.ElmanLayer", lambda: {k: v for k, v in _elman().items()
                                                 if k in ("W_hx", "W_hh", "b_h")},
        arrays={"W_hx": FREE, "W_hh": F, "b_h": F}, keywords={"activation": ["softsign", 3]}),
    row("refseq.rnn.lstm.lstm_forward", _lstm, arrays={"x": F, "lengths": _LENGTHS},
        flags=("forget_gate", "peepholes"),
        keywords={"output_activation": ["relu", 3], "params": [{"W_gx": np.zeros((4, 3))}, 3]},
        cases=[("state0", "state0-shape", lambda kw: {**kw, "state0": (_f(B, 3), _f(B, 3))}),
               ("state0", "state0-array", lambda kw: {**kw, "state0": _f(B, _H)})]),
    row("refseq.rnn.lstm.lstm_backward", _lstm_backward, arrays={"dh": F}),
    row("refseq.rnn.lstm.init_lstm_params", lambda: {"rng": _rng(), "I": _I, "H": _H},
        flags=("peepholes",), keywords={"I": [0, -1, 2.5], "H": [0, "4"],
                                        "dtype": [np.int32, np.float16], "scale": [-1.0, np.nan],
                                        "forget_bias": [np.nan, "1"], "rng": ["x", -1]}),
    row("refseq.rnn.lstm.LSTMLayer", lambda: {"params": _lstm_params()},
        flags=("forget_gate", "peepholes"), keywords={"output_activation": ["relu", 3],
                                                      "params": [3, {"W_gx": np.zeros(2)}]}),
    row("refseq.rnn.bidirectional.bidirectional", _bidir, arrays={"x": F, "lengths": _LENGTHS},
        keywords={"merge": ["avg", 3], "forward_fn": [None, 3]}),
    row("refseq.rnn.bidirectional.bidirectional_backward", _bidir_backward,
        arrays={"dout": F}),
    row("refseq.rnn.bidirectional.brnn_output", _brnn,
        arrays={"h_fwd": F, "h_bwd": F, "W_yh": F, "W_yz": F, "b_y": F}),
    row("refseq.rnn.bidirectional.brnn_output_backward",
        lambda: {"dlogits": _f(B, T, 5), **{k: v for k, v in _brnn().items() if k != "b_y"}},
        arrays={"dlogits": F, "h_fwd": F, "h_bwd": F, "W_yh": F, "W_yz": F}),
    row("refseq.rnn.stack.stack", _stack, arrays={"x": F, "lengths": _LENGTHS},
        keywords={"dropout_nonrecurrent": [-0.1, 1.0, np.nan], "rng": ["x", -1],
                  "layers": [[], None]},
        cases=[("states0", "states0-count", lambda kw: {**kw, "states0": [None, None]})]),
    row("refseq.rnn.stack.stack_backward", _stack_backward, arrays={"dy": F},
        cases=[("d_states_last", "count", lambda kw: {**kw, "d_states_last": []})]),
    row("refseq.rnn.bptt.RNNModel", lambda: {"layer": _elman_layer(), "W_yh": _f(5, _H),
                                              "b_y": _f(5)},
        arrays={"W_yh": F, "b_y": F}, keywords={"layer": [None, 3]}),
    row("refseq.rnn.bptt.bptt_grads", _bptt,
        arrays={"x": F, "targets": ids(5), "mask": MASK},
        keywords={"reduction": ["avg", 3]}),
    row("refseq.rnn.bptt.truncated_bptt",
        lambda: {"model": _rnn_model(), "stream_x": _f(B, T, _I),
                 "stream_y": np.arange(B * T).reshape(B, T) % 5, "k1": 2, "k2": 3},
        arrays={"stream_x": F, "stream_y": ids(5)},
        keywords={"k1": [0, -1, 2.5], "k2": [1, "3"], "reduction": ["avg"]},
        note="a generator: the bad input must raise at the call, not at the first next()"),
    row("refseq.rnn.bptt.clip_grad_norm", lambda: {**_grads(), "max_norm": 1.0},
        keywords={"max_norm": [-1.0, 0.0, np.nan, "1"], "grads": [[np.ones(2)], None]},
        cases=[("grads", "grads-int", lambda kw: {**kw, "grads": {"w": np.ones(2, int)}})]),
    row("refseq.rnn.bptt.clip_grad_value", lambda: {**_grads(), "clip_value": 1.0},
        keywords={"clip_value": [-1.0, 0.0, np.nan, "1"], "grads": [[np.ones(2)], None]},
        cases=[("grads", "grads-int", lambda kw: {**kw, "grads": {"w": np.ones(2, int)}})]),
    row("refseq.rnn.output.softmax_output",
        lambda: {"h": _f(B, T, _H), "W_yh": _f(5, _H), "b_y": _f(5)},
        arrays={"h": F, "W_yh": F, "b_y": F}),
    row("refseq.rnn.output.softmax_output_backward",
        lambda: {"dlogits": _f(B, T, 5), "h": _f(B, T, _H), "W_yh": _f(5, _H)},
        arrays={"dlogits": F, "h": F, "W_yh": F}),
    row("refseq.rnn.output.sequence_cross_entropy",
        lambda: {"logits": _f(B, T, 5), "targets": np.arange(B * T).reshape(B, T) % 5,
                 "mask": np.ones((B, T), bool)},
        arrays={"logits": F, "targets": ids(5), "mask": MASK},
        keywords={"reduction": ["avg", 3]}),
    row("refseq.rnn.output.last_step", lambda: {"h": _f(B, T, _H), "lengths": np.array([T, 2])},
        arrays={"h": FREE, "lengths": ids(T + 1, low=1)}),
    row("refseq.rnn.output.last_step_backward",
        lambda: {"dy": _f(B, _H), "h_shape": (B, T, _H), "lengths": np.array([T, 2])},
        arrays={"dy": F, "lengths": ids(T + 1, low=1)},
        keywords={"h_shape": [(B, T), (B, T, _H + 1), "BTH"]}),
    row("refseq.rnn.masking.check_lengths", lambda: {"lengths": np.array([T, 2]), "B": B, "T": T},
        arrays={"lengths": _LENGTHS}, keywords={"B": [-1, 2.5], "T": [-1, "5"]}),
    row("refseq.rnn.masking.length_mask", lambda: {"lengths": np.array([T, 2]), "T": T},
        arrays={"lengths": _LENGTHS}, keywords={"T": [-1, 2.5]}),
    row("refseq.rnn.masking.reverse_index", lambda: {"lengths": np.array([T, 2]), "T": T},
        arrays={"lengths": _LENGTHS}, keywords={"T": [-1, 2.5]}),
    row("refseq.rnn.masking.reverse_within_length",
        lambda: {"x": _f(B, T, _H), "lengths": np.array([T, 2])},
        arrays={"lengths": _LENGTHS},
        cases=[("x", "x-ndim1", lambda kw: {**kw, "x": kw["x"][0, 0]})]),
    row("refseq.rnn.masking.mask_from",
        lambda: {"mask": np.ones((B, T), bool), "lengths": None, "B": B, "T": T},
        arrays={"mask": MASK}, keywords={"B": [-1, 2.5], "T": [-1]},
        cases=[("lengths", "both", lambda kw: {**kw, "lengths": np.array([T, 2])})]),
]

# refseq.train: optimisers, schedules, the loop
def _params():
    return {"w": _f(3, 2), "b": _f(2)}


def _train():
    from refseq.train import SGD

    def loss_and_grad(p, batch):  # whatever names it is given (so a bad params fails in train)
        return float(sum((v ** 2).sum() for v in p.values())), {k: 2 * v for k, v in p.items()}

    return {"params": _params(), "loss_and_grad": loss_and_grad, "batches": lambda t: None,
            "optimizer": SGD(0.1), "steps": 2, "log": None}


_LR = [-1.0, np.nan, "0.1", None]
TABLE += [
    row("refseq.train.SGD", lambda: {"lr": 0.1}, flags=("nesterov",),
        keywords={"lr": _LR, "momentum": [-0.1, 1.0, "0.9"], "weight_decay": [-1.0, np.nan],
                  "dampening": [-0.1, 1.5]}),
    row("refseq.train.Adam", lambda: {}, keywords={
        "lr": _LR, "betas": [(0.9,), (1.0, 0.999), (0.9, -0.1), 0.9], "eps": [0.0, -1e-8],
        "weight_decay": [-1.0, np.nan]}),
    row("refseq.train.AdamW", lambda: {}, keywords={
        "lr": _LR, "betas": [(0.9,), (1.0, 0.999)], "eps": [0.0, -1e-8],
        "weight_decay": [-1.0, np.nan]}),
    row("refseq.train.Optimizer", lambda: {"lr": 0.1}, keywords={"lr": _LR}),
    row("refseq.train.ReduceOnPlateau", lambda: {"lr": 0.1}, keywords={
        "lr": [-1.0, np.nan, "0.1"], "mode": ["up", 1], "factor": [1.0, -0.1, np.nan],
        "patience": [-1, 1.5], "threshold": [-1.0, np.nan], "threshold_mode": ["x"],
        "cooldown": [-1, 0.5], "min_lr": [-1.0, np.nan], "eps": [-1.0, np.nan],
        "optimizer": [3, "sgd"]}),
    row("refseq.train.reduce_on_plateau", lambda: {"lr": 0.1}, keywords={
        "factor": [1.0, -0.1], "patience": [-1], "mode": ["up"], "optimizer": [3]}),
    row("refseq.train.Constant", lambda: {"lr": 0.1}, keywords={"lr": _LR}),
    row("refseq.train.constant", lambda: {"lr": 0.1}, keywords={"lr": _LR}),
    row("refseq.train.WarmupCosine",
        lambda: {"lr": 0.1, "warmup_steps": 2, "total_steps": 10},
        keywords={"lr": _LR, "warmup_steps": [-1, 2.5, 11], "total_steps": [0, -1, 1.5],
                  "min_lr": [-1.0, 0.2, np.nan]}),
    row("refseq.train.warmup_cosine",
        lambda: {"lr": 0.1, "warmup_steps": 2, "total_steps": 10},
        keywords={"lr": _LR, "warmup_steps": [-1, 11], "total_steps": [0],
                  "min_lr": [-1.0, 0.2]}),
    row("refseq.train.train", _train, keywords={
        "steps": [-1, 2.5, "2"], "clip": [-1.0, 0.0, np.nan], "log_every": [0, -1, 2.5],
        "optimizer": [None, 3], "loss_and_grad": [None, 3], "batches": [3, None],
        "params": [[1.0, 2.0], {"w": [1.0, 2.0]}, {"w": np.ones(2, int)}],
        "schedule": [3], "log": [3], "tokens": [3]}),
    row("refseq.train.count_tokens", lambda: {"batch": (np.zeros((2, 3)), np.zeros((2, 3)))},
        keywords={"batch": [None, 3, (), "text"]}),
    row("refseq.train.format_progress",
        lambda: {"step": 1, "steps": 10, "loss": 1.0, "lr": 0.1, "grad_norm": 1.0,
                 "tokens_per_s": 10.0},
        keywords={"step": [-1, 1.5], "steps": [-1], "lr": ["x"], "loss": [None]}),
    row("refseq.train.as_param_dict", lambda: {"params": _params()},
        keywords={"params": [3, {"w": [1.0]}, {"w": 1.0}, {3: np.ones(2)}], "prefix": [3]}),
    row("refseq.train.check_same_structure",
        lambda: {"params": _params(), "grads": _params()},
        cases=[("grads", "missing", lambda kw: {**kw, "grads": {"w": kw["grads"]["w"]}}),
               ("grads", "shape", lambda kw: {**kw, "grads": {**kw["grads"],
                                                              "w": np.zeros((2, 3))}}),
               ("grads", "not_mapping", lambda kw: {**kw, "grads": [np.zeros(2)]})]),
    row("refseq.train.global_norm", lambda: {"grads": _params()},
        keywords={"grads": [[np.ones(2)], None, {"w": "x"}, {"w": np.ones(2, complex)}]}),
]


# refseq.train.lm and the tiny transformer (refseq.models.tiny_transformer)
def _tiny_config(**kw):
    from refseq.models.tiny_transformer import TinyConfig

    return TinyConfig(**{"vocab_size": 7, "d_model": 8, "n_layers": 2, "n_heads": 2,
                         "max_positions": 16, **kw})


def _tiny_params():
    from refseq.models.tiny_transformer import init_params

    return init_params(_tiny_config())


def _tokens():
    return np.arange(B * T).reshape(B, T) % 7


def _tiny_forward():
    return {"params": _tiny_params(), "tokens": _tokens()}


def _tiny_backward():
    from refseq.models.tiny_transformer import forward

    params = _tiny_params()
    out = forward(params, _tokens(), return_cache=True)
    logits, cache = out[0], out[-1]
    return {"params": params, "cache": cache, "dlogits": _f(*logits.shape)}


def _tiny_h():
    return {"params": _tiny_params(), "h": _f(B, T, 8)}


def _tiny_layers():
    return {"params": _tiny_params(), "h": _f(B, T, 8), "lo": 0, "hi": 2}


def _tiny_layers_backward():
    from refseq.models.tiny_transformer import forward_layers

    kw = _tiny_layers()
    out = forward_layers(**kw, return_cache=True)
    return {"params": kw["params"], "cache": out[-1], "dh_out": _f(*out[0].shape)}


def _lm_head_backward():
    from refseq.models.tiny_transformer import lm_head

    kw = _tiny_h()
    logits, cache = lm_head(**kw, return_cache=True)
    return {"params": kw["params"], "cache": cache, "dlogits": _f(*logits.shape)}


def _kv_backward():
    from refseq.models.tiny_transformer import kv_from_hidden

    kw = {"params": _tiny_params(), "h_in": _f(B, T, 8)}
    kv, cache = kv_from_hidden(**kw, return_cache=True)
    return {"params": kw["params"], "cache": cache, "d_kv": _f(*kv.shape)}


def _bad_params(name="params"):
    def wrong(kw):
        return {**kw, name: 3}

    def dtype(kw):
        from refseq.models.tiny_transformer import map_parameters

        return {**kw, name: map_parameters(lambda a: a.astype(np.int32), kw[name])}
    return [(name, "params-int", wrong), (name, "params-int32-arrays", dtype)]


_TT = "refseq.models.tiny_transformer"
TABLE += [
    row(f"{_TT}.TinyConfig",
        lambda: {"vocab_size": 7, "d_model": 8, "n_layers": 2, "n_heads": 2,
                 "max_positions": 16},
        flags=("tied_head", "rope"),
        keywords={"vocab_size": [0, -1, 7.0], "d_model": [0, 7], "n_layers": [-1, "2"],
                  "n_heads": [0, 3], "max_positions": [0], "d_hidden": [0, -1],
                  "dtype": ["int32", "float16", np.int32], "activation": ["relu6"]}),
    row(f"{_TT}.init_params", lambda: {"config": _tiny_config()},
        keywords={"config": [None, {"vocab_size": 7}], "seed": [-1, "x", 1.5]}),
    row(f"{_TT}.check_params", lambda: {"params": _tiny_params()}, cases=_bad_params()),
    row(f"{_TT}.forward", _tiny_forward, arrays={"tokens": ids(7)},
        flags=("return_hidden", "return_cache"), cases=_bad_params() + [
            ("embeds", "embeds-and-tokens", lambda kw: {**kw, "embeds": _f(B, T, 8)}),
            ("embeds", "embeds-int", lambda kw: {"params": kw["params"],
                                                 "embeds": np.ones((B, T, 8), int)}),
            ("positions", "positions-past-max", lambda kw: {**kw, "positions": np.arange(
                16, 16 + T)}),
            ("positions", "positions-float", lambda kw: {**kw, "positions": np.arange(
                T) + 0.5}),
            ("allow_mask", "allow_mask-shape", lambda kw: {**kw, "allow_mask": np.ones(
                (T, T + 1), bool)}),
            ("allow_mask", "allow_mask-float", lambda kw: {**kw, "allow_mask": np.ones(
                (T, T))}),
            ("past_kv", "past_kv-shape", lambda kw: {**kw, "past_kv": np.zeros((3, 2))}),
            ("tokens", "tokens-too-long", lambda kw: {**kw, "tokens": np.zeros((B, 17), int)}),
        ]),
    row(f"{_TT}.backward", _tiny_backward, arrays={"dlogits": F}, cases=[
        ("d_hidden", "d_hidden-shape", lambda kw: {**kw, "d_hidden": np.zeros((B, T, 3))})]),
    row(f"{_TT}.final_norm", _tiny_h, arrays={"h": LEAD}),
    row(f"{_TT}.lm_head", _tiny_h, arrays={"h": LEAD}, flags=("return_cache",)),
    row(f"{_TT}.lm_head_backward", _lm_head_backward, arrays={"dlogits": F}),
    row(f"{_TT}.token_embeddings", lambda: {"params": _tiny_params(), "tokens": _tokens()},
        arrays={"tokens": ids(7)}),
    row(f"{_TT}.forward_layers", _tiny_layers, arrays={"h": F},
        flags=("return_hidden", "return_cache"),
        keywords={"lo": [-1, 3, 1.0], "hi": [3, -1, "2"]}),
    row(f"{_TT}.forward_layers_backward", _tiny_layers_backward, arrays={"dh_out": F}),
    row(f"{_TT}.kv_from_hidden", lambda: {"params": _tiny_params(), "h_in": _f(B, T, 8)},
        arrays={"h_in": F}, flags=("return_cache",)),
    row(f"{_TT}.kv_from_hidden_backward", _kv_backward, arrays={"d_kv": F}),
    row(f"{_TT}.named_parameters", lambda: {"params": _tiny_params()},
        keywords={"params": [3, None]}),
    row(f"{_TT}.param_shapes", lambda: {"config": _tiny_config()},
        keywords={"config": [3, None]}),
    row(f"{_TT}.params_from_named",
        lambda: {"config": _tiny_config(), "named": dict(resolve(
            f"{_TT}.named_parameters")(_tiny_params()))},
        cases=[("named", "missing", lambda kw: {**kw, "named": dict(list(
            kw["named"].items())[1:])}),
               ("named", "shape", lambda kw: {**kw, "named": {k: v[..., :1] for k, v in
                                                              kw["named"].items()}}),
               ("named", "int32", lambda kw: {**kw, "named": {k: v.astype(np.int32) for k, v
                                                              in kw["named"].items()}})]),
    row(f"{_TT}.map_parameters", lambda: {"fn": np.copy, "params": _tiny_params()},
        keywords={"fn": [None, 3], "params": [3]}),
]


def _saved(tmp=[]):  # noqa: B006 - one temporary directory per session
    import tempfile

    from refseq.models.tiny_transformer import save

    if not tmp:
        tmp.append(tempfile.mkdtemp(prefix="refseq-bad-inputs-"))
    path = os.path.join(tmp[0], "tiny.npz")
    save(path, _tiny_params())
    return path


TABLE += [
    row(f"{_TT}.save", lambda: {"path": os.path.join(os.path.dirname(_saved()), "out.npz"),
                                "params": _tiny_params()},
        keywords={"params": [3, None, {"wte": np.zeros(2)}]}),
    row(f"{_TT}.load", lambda: {"path": _saved()},
        keywords={"config": [3, "tiny"]},
        cases=[("config", "config-mismatch", lambda kw: {**kw, "config": _tiny_config(
            d_model=4)})]),
    row("refseq.train.lm.param_dict", lambda: {"params": _tiny_params()},
        keywords={"params": [3, None]}),
    row("refseq.train.lm.lm_loss_and_grad",
        lambda: {"named": resolve("refseq.train.lm.param_dict")(_tiny_params()),
                 "batch": np.arange(B * (T + 1)).reshape(B, T + 1) % 7,
                 "config": _tiny_config()},
        arrays={"batch": ids(7)},
        cases=[("batch", "batch-T1", lambda kw: {**kw, "batch": kw["batch"][:, :1]}),
               ("named", "named-missing", lambda kw: {**kw, "named": dict(list(
                   kw["named"].items())[1:])})]),
    row("refseq.train.lm.make_lm_objective", lambda: {"params": _tiny_params()},
        keywords={"params": [3, None]}),
]


# refseq.decoding, refseq.models.toy_lm, refseq.tasks
def _markov():
    from refseq.models.toy_lm import random_markov_lm

    return random_markov_lm(4, 1.0, 0, eos_id=3)


def _table():
    t = np.log(np.full((4, 4), 0.25))
    return {"order": 2, "table": t}


TABLE += [
    row("refseq.decoding.PrefixLM", lambda: {"fn": lambda p: np.zeros((len(p), 4)),
                                              "vocab_size": 4},
        keywords={"vocab_size": [0, -1, 4.0, "4"], "fn": [None, 3]}),
    row("refseq.decoding.as_prompts", lambda: {"prompts": [np.array([1, 2]), [0]]},
        keywords={"prompts": [np.array([1, 2]), [np.array([1.5])], [np.zeros((2, 2), int)],
                              "12", [None], [np.array([-1])]]}),
    row("refseq.decoding.log_softmax", lambda: {"logits": _f(3, 4)}, arrays={"logits": ANY},
        keywords={"axis": [2, 1.0], "dtype": [np.int32, np.float16, "nope"]}),
    row("refseq.decoding.logprobs_fn", lambda: {"model": _markov()},
        keywords={"model": [None, 3], "compute_dtype": [np.int32, np.float16, "nope"]}),
    row("refseq.models.toy_lm.TabularLM", _table, arrays={"table": F},
        keywords={"order": [0, -1, 2.0], "pad_id": [-1, 4, 1.5], "eos_id": [4, -1, "3"]},
        cases=[("table", "table-not-normalised", lambda kw: {**kw, "table": kw["table"] + 1}),
               ("table", "table-nan", lambda kw: {**kw, "table": _set(kw["table"], 0,
                                                                       np.nan)})]),
    row("refseq.models.toy_lm.random_markov_lm", lambda: {"V": 4, "alpha": 1.0, "seed": 0},
        keywords={"V": [0, -1, 4.0], "alpha": [0.0, -1.0, np.nan, "1"], "seed": [-1, "x"],
                  "eos_id": [4, -1], "order": [0, 1.5], "pad_id": [-1, 4]}),
    row("refseq.models.toy_lm.enumerate_sequences",
        lambda: {"model": _markov(), "prompt": np.array([0]), "max_len": 2},
        arrays={"prompt": ids(4)},
        keywords={"max_len": [-1, 1.5, "2"], "eos_id": [4, -1], "model": [None, 3]}),
    row("refseq.models.toy_lm.sample_sequences",
        lambda: {"lm": _markov(), "n": 2, "T": 3, "seed": 0},
        keywords={"n": [-1, 2.5], "T": [-1, "3"], "seed": [-1, "x"], "eos_id": [4, -1],
                  "pad_id": [4, -1], "lm": [None, 3],
                  "prompts": [[np.array([1.5])], [np.array([9])], "01"]}),
    row("refseq.tasks.reber.reber_valid", lambda: {"rng": _rng()},
        keywords={"rng": ["x", None, 1.5]}),
    row("refseq.tasks.reber.reber_invalid", lambda: {"rng": _rng()},
        keywords={"rng": ["x", 1.5], "style": ["nope", 3]}),
    row("refseq.tasks.reber.is_reber", lambda: {"s": "BTXSE"}, keywords={"s": [3, None,
                                                                              ["B", "E"]]}),
    row("refseq.tasks.reber.enumerate_reber", lambda: {"max_len": 8},
        keywords={"max_len": [-1, 8.5, "8"]}),
    row("refseq.tasks.reber.reber_dataset", lambda: {"n": 4, "rng": _rng()},
        keywords={"n": [-1, 2.5, "4"], "rng": ["x"], "min_len": [-1, 100, 2.5],
                  "max_len": [1, -1], "style": ["nope"]}),
    row("refseq.tasks.reber.vocab_size", lambda: {"vocab": "reber7"},
        keywords={"vocab": ["nope", 7, None]}),
    row("refseq.tasks.reber.encode", lambda: {"strings": ["BTXSE", "BPVVE"]},
        keywords={"strings": ["BTXSE", [""], ["BQE"], [3]], "vocab": ["nope", 7]}),
]

# refseq.decoding: sampling, search, beam, processors, exact, diverse beam (docs/decoding.md)
_DEC = "refseq.decoding"


def _logits():
    return _f(2, 4)


def _logprobs():
    from refseq.decoding import log_softmax

    return log_softmax(_f(2, 4))


def _dead_row(name="logits"):
    """A row with no finite logit (every token removed): it defines no distribution."""
    return (name, f"{name}-dead-row", lambda kw: {**kw, name: _set(kw[name], slice(0, 4),
                                                                    -np.inf)})


_LM = {"model": [None, 3]}
_PROMPTS = {"prompts": ["01", [], [np.array([1.5])], [np.array([-1])], [np.array([9])],
                        [np.zeros((2, 2), int)]]}
_DTYPE = {"compute_dtype": [np.int32, np.float16, "nope"]}
_PROC = {"logprob_processor": [3, "x"]}
_WARP = {"temperature": [0, -1.0, np.nan, "1"], "top_k": [1.5, "2", None],
         "top_p": [0.0, 1.5, np.nan, "0.9"], "top_k_ties": ["nope", 3],
         "top_p_mode": ["nope", 3], "min_keep": [0, 1.5]}


def _decode():
    return {"model": _markov(), "prompts": [np.array([0]), np.array([1, 2])],
            "max_new_tokens": 3, "eos_id": 3}


_DECODE_KW = {**_LM, **_PROMPTS, **_DTYPE, **_PROC, "max_new_tokens": [-1, 1.5, "3"],
              "eos_id": [4, -1, 1.5, "3"], "pad_id": [4, -1, 1.5],
              "min_new_tokens": [-1, 1.5]}


def _beam():
    return {"model": _markov(), "prompts": [np.array([0]), np.array([1, 2])], "num_beams": 2,
            "max_new_tokens": 3, "eos_ids": (3,)}


_BEAM_KW = {**_LM, **_PROMPTS, **_DTYPE, **_PROC, "num_beams": [0, 1.5, "2"],
            "max_new_tokens": [0, 1.5, "3"], "eos_ids": [4, -1, 1.5, "3", [4], None],
            "pad_id": [4, -1, 1.5], "min_new_tokens": [-1, 4, 1.5],
            "length_penalty": [np.nan, np.inf, "1", None], "length_norm": ["nope", 3],
            "early_stopping": ["always", "True", None, 1], "convention": ["nope", 3]}


def _fairseq_two_eos(kw):
    return {**kw, "convention": "fairseq", "eos_ids": (2, 3)}


def _dbs():
    return {"model": _markov(), "prompts": [np.array([0])], "num_beams": 4, "num_groups": 2,
            "diversity_strength": 0.5, "max_new_tokens": 3, "eos_ids": (3,)}


TABLE += [
    row(f"{_DEC}.temperature", lambda: {"logits": _logits(), "T": 0.7},
        arrays={"logits": FREE}, finite=True,
        keywords={"T": [0, -1.0, np.nan, np.inf, "1", None]}, cases=[_dead_row()]),
    row(f"{_DEC}.top_k_filter", lambda: {"logits": _logits(), "k": 2},
        arrays={"logits": FREE}, finite=True,
        keywords={"k": [1.5, "2", None], "min_keep": [0, -1, 1.5], "ties": ["nope", 3]},
        cases=[_dead_row()]),
    row(f"{_DEC}.top_p_filter", lambda: {"logits": _logits(), "p": 0.9},
        arrays={"logits": FREE}, finite=True,
        keywords={"p": [0.0, -0.1, 1.5, np.nan, "0.9", None], "min_keep": [0, 1.5],
                  "mode": ["nope", 3]},
        cases=[_dead_row()]),
    row(f"{_DEC}.warp", lambda: {"logits": _logits(), "temperature": 0.7, "top_k": 3,
                               "top_p": 0.9},
        arrays={"logits": FREE}, finite=True,
        keywords={**_WARP, "order": ["temperature", ("nope",), ("top_k", "top_k"),
                                     ("temperature", "top_k"), None]},
        cases=[_dead_row()]),
    row(f"{_DEC}.warped_probs", lambda: {"logits": _logits(), "temperature": 0.7, "top_k": 3,
                                       "top_p": 0.9},
        arrays={"logits": FREE}, finite=True,
        keywords={**_WARP, "order": ["temperature", ("nope",)]}, cases=[_dead_row()]),
    row(f"{_DEC}.sample", lambda: {"logits": _logits(), "u": np.array([0.3, 0.9])},
        arrays={"logits": FREE, "u": F}, finite=True,
        keywords={"u": [np.array([1.0, 0.5]), np.array([-0.1, 0.5]), "x"], "rng": [0]},
        cases=[_dead_row()]),
    row(f"{_DEC}.sample", lambda: {"logits": _logits(), "rng": 0}, id="sample-rng",
        keywords={"rng": [-1, "x", 1.5]}),
    row(f"{_DEC}.gumbel_noise", lambda: {"rng": 0, "shape": (2, 3)},
        keywords={"rng": ["x", -1, 1.5], "shape": [-1, (2, -1), (2.5,), "3", [2, 3], None]}),
    row(f"{_DEC}.gumbel_argmax", lambda: {"logits": _logits(), "g": _f(2, 4)},
        arrays={"logits": F, "g": F}, finite=True, cases=[_dead_row()]),
    row(f"{_DEC}.greedy", _decode, keywords=_DECODE_KW),
    row(f"{_DEC}.sample_decode", lambda: {**_decode(), "rng": 0, "top_k": 3, "top_p": 0.9},
        keywords={**_DECODE_KW, **{k: v for k, v in _WARP.items() if k != "min_keep"},
                  "rng": ["x", -1, 1.5],
                  "uniforms": [np.zeros((2, 2)), np.full((2, 3), 1.0), np.zeros((2, 3), int),
                               "x"]}),
    row(f"{_DEC}.normalize", lambda: {"sum_logprob": -3.0, "gen_len": 2},
        keywords={"sum_logprob": ["x", None, np.array([-1.0 + 0j])],
                  "gen_len": [0, 1.5, np.array([1, 0]), "3", None],
                  "length_penalty": [np.nan, np.inf, "1", None], "length_norm": ["nope", 3]}),
    row(f"{_DEC}.NBestList", lambda: {"capacity": 2},
        keywords={"capacity": [0, -1, 1.5, "2"], "length_penalty": [np.nan, "1"],
                  "length_norm": ["nope", 3]}),
    row(f"{_DEC}.beam_step", lambda: {"cum_scores": _f(2, 3), "logprobs": _f(2, 3, 4),
                                    "n_cand": 4},
        arrays={"cum_scores": F, "logprobs": FREE}, finite=True,
        keywords={"n_cand": [0, 13, 1.5, "4"]}),
    row(f"{_DEC}.beam_search", _beam,
        keywords={**_BEAM_KW, "num_return_sequences": [0, 3, 1.5],
                  "candidate_multiplier": [0, 1.5], "temperature": [0, np.nan, "1"]},
        cases=[(("convention", "eos_ids"), "fairseq-two-eos", _fairseq_two_eos)]),
]

# refseq.decoding.processors: factories validate their settings; the processors their inputs
_P = f"{_DEC}.processors"
TABLE += [
    row(f"{_P}.check_step_inputs",
        lambda: {"generated": np.array([[0, 1], [3, 2]]), "logprobs": _logprobs()},
        arrays={"generated": ids(4), "logprobs": FREE},
        cases=[("logprobs", "logprobs-nan", lambda kw: {**kw, "logprobs": _set(
                    kw["logprobs"], 0, np.nan)}),
               ("generated", "generated-rows", lambda kw: {**kw, "generated": kw[
                    "generated"][:1]}),
               ("logprobs", "logprobs-empty", lambda kw: {**kw, "logprobs": np.zeros((2, 0))})]),
    row(f"{_P}.min_length", lambda: {"min_new_tokens": 2, "eos_ids": 3},
        keywords={"min_new_tokens": [-1, 1.5, "2"],
                  "eos_ids": [-1, [], "3", True, [1.5], [[1, 2]], None]}),
    row(f"{_P}.no_repeat_ngram", lambda: {"n": 2, "prompts": [np.array([0, 1])]},
        keywords={"n": [0, 1.5, "2"], "prompts": ["01", [], [np.array([1.5])],
                                                  [np.array([-1])]]}),
    row(f"{_P}.force_eos_at_max", lambda: {"max_new_tokens": 3, "eos_id": 3},
        keywords={"max_new_tokens": [0, 1.5, "3"], "eos_id": [-1, 1.5, "3", None]}),
    row(f"{_P}.unk_penalty", lambda: {"unk_id": 1, "penalty": 0.5},
        keywords={"unk_id": [-1, 1.5, None], "penalty": [np.nan, np.inf, "1", None]}),
    row(f"{_P}.ban_tokens", lambda: {"ids": [0, 2]},
        keywords={"ids": [-1, [], "3", True, [1.5], [[1, 2]], None]}),
    row(f"{_P}.compose", lambda: {"*": (_ban(0), _ban(1))},
        cases=[("processors", "processors-none", lambda kw: {**kw, "*": ()}),
               ("processors", "processors-not-callable", lambda kw: {**kw, "*": (_ban(0), 3)})]),
]


def _ban(i):
    from refseq.decoding.processors import ban_tokens

    return ban_tokens(i)


# refseq.decoding.exact: enumeration and branch-and-bound over a StepLM
def _exact():
    return {"model": _markov(), "prompt": np.array([0]), "max_len": 3}


_EXACT_KW = {**_LM, "max_len": [-1, 1.5, "3"], "eos_id": [4, -1, 1.5]}
TABLE += [
    row(f"{_DEC}.exact_mode", _exact, arrays={"prompt": ids(4)}, flags=("require_eos",),
        keywords={**_EXACT_KW, "length": [-1, 1.5, 3], "lower_bound": [np.nan, "x", None],
                  "initial": [np.array([1.5]), np.array([9]), np.array([0, 3, 1]),
                              np.array([[3]]), np.array([0])],
                  "max_nodes": [0, 1.5, "3"]}),
    row(f"{_DEC}.top_sequences", lambda: {**_exact(), "n": 2}, arrays={"prompt": ids(4)},
        keywords={**_EXACT_KW, "n": [0, 1.5, "2", None], "max_len": [-1, 20]}),
    row(f"{_DEC}.exact.exact_length_conditional_modes",
        lambda: {"model": _markov(), "prompt": np.array([0]), "lengths": [1, 2]},
        arrays={"prompt": ids(4)},
        keywords={**_LM, "lengths": [[], [-1], [1.5], "12", 3, None], "eos_id": [4, -1],
                  "max_nodes": [0, 1.5]}),
]

# refseq.decoding.diverse_beam and .diversity (Vijayakumar et al., arXiv 1610.02424)
_DV = f"{_DEC}.diversity"
_B2 = 2  # beams per group in the diversity rows


def _group_step():
    return {"cum": np.array([0.0, -1.0]), "logprobs": _logprobs(), "penalty": np.ones((2, 4)),
            "lam": 0.5, "n_cand": 3}


TABLE += [
    row(f"{_DEC}.diverse_beam.group_step", _group_step,
        arrays={"cum": F, "logprobs": F, "penalty": F}, flags=("first_step",), finite=True,
        keywords={"lam": [-1, np.nan, "1", None], "n_cand": [0, 9, 1.5]}),
    row(f"{_DEC}.diverse_beam_search", _dbs,
        keywords={**_BEAM_KW, "num_beams": [0, 3, 1.5], "num_groups": [0, 5, 1.5, "2"],
                  "diversity_strength": [-1, np.nan, "1", None, np.array([0.5]),
                                         np.array([0.5, -1.0]), np.array([1, 2])],
                  "diversity": ["nope", 3, None], "suppress_ids": [[4], -1, "1", None],
                  "schedule": ["nope", 3], "penalty_source": ["nope", 3],
                  "accumulate_penalty": ["True", 1], "final_rank": ["nope", 3],
                  "num_return_sequences": [0, 5, 1.5]},
        cases=[(("schedule", "penalty_source"), "staggered-candidates",
                lambda kw: {**kw, "schedule": "staggered", "penalty_source": "candidates"}),
               (("convention", "schedule"), "hf-staggered",
                lambda kw: {**kw, "convention": "hf", "schedule": "staggered"}),
               (("convention", "eos_ids"), "fairseq-two-eos", _fairseq_two_eos),
               ("gamma", "cumulative-gamma-0",
                lambda kw: {**kw, "diversity": "cumulative", "gamma": 0.0}),
               ("emb", "embedding-no-emb", lambda kw: {**kw, "diversity": "embedding"}),
               ("emb", "embedding-emb-rows", lambda kw: {**kw, "diversity": "embedding",
                                                         "emb": _f(3, 2)}),
               ("foo", "diversity-unknown-keyword", lambda kw: {**kw, "foo": 1})]),
    row(f"{_DV}.hamming_penalty", lambda: {"prev_tokens_t": np.array([0, 2, 2]),
                                           "vocab_size": 4},
        arrays={"prev_tokens_t": ids(4)}, keywords={"vocab_size": [0, 1.5, "4", None]}),
    row(f"{_DV}.cumulative_penalty",
        lambda: {"group_prefixes": np.array([[0, 1], [1, 1]]),
                 "prev_prefixes": np.array([[0, 1], [2, 3], [1, 1]]),
                 "prev_tokens_t": np.array([0, 2, 2]), "vocab_size": 4},
        arrays={"group_prefixes": ids(4), "prev_prefixes": ids(4), "prev_tokens_t": ids(4)},
        keywords={"vocab_size": [0, 1.5], "gamma": [0, -1, np.nan, "1"],
                  "scope": ["nope", 3]},
        cases=[("prev_prefixes", "prev_prefixes-t", lambda kw: {**kw, "prev_prefixes": kw[
                    "prev_prefixes"][:, :1]}),
               (("prev_prefixes", "prev_tokens_t"), "prev_tokens_t-M", lambda kw: {
                    **kw, "prev_tokens_t": kw["prev_tokens_t"][:2]})]),
    row(f"{_DV}.ngram_penalty",
        lambda: {"group_prefixes": np.array([[0, 1], [1, 1]]),
                 "prev_sequences": np.array([[0, 1, 2], [1, 1, 2], [3, 1, 1]]),
                 "vocab_size": 4},
        arrays={"group_prefixes": ids(4), "prev_sequences": ids(4)},
        keywords={"vocab_size": [0, 1.5], "n": [0, [], [1, 0], 1.5, "2", None]},
        cases=[("prev_sequences", "prev_sequences-t", lambda kw: {**kw, "prev_sequences": kw[
                    "prev_sequences"][:, :2]})]),
    row(f"{_DV}.embedding_penalty",
        lambda: {"emb": _f(4, 3), "prev_tokens_t": np.array([0, 2, 2])},
        arrays={"emb": FREE, "prev_tokens_t": ids(4)}, flags=("clip_negative",), finite=True,
        cases=[("emb", "emb-zero-row", lambda kw: {**kw, "emb": _set(kw["emb"], slice(0, 3),
                                                                    0.0)}),
               ("emb", "emb-empty", lambda kw: {**kw, "emb": np.zeros((0, 3))})]),
    row(f"{_DV}.embedding_ngram_penalty",
        lambda: {"emb": _f(4, 3), "group_prefixes": np.array([[0, 1], [1, 1]]),
                 "prev_sequences": np.array([[0, 1, 2], [1, 1, 2], [3, 1, 1]])},
        arrays={"emb": FREE, "group_prefixes": ids(4), "prev_sequences": ids(4)},
        flags=("clip_negative",), finite=True, keywords={"n": [0, 1.5, "2", None]},
        cases=[("prev_sequences", "prev_sequences-t", lambda kw: {**kw, "prev_sequences": kw[
                    "prev_sequences"][:, :2]}),
               ("emb", "emb-zero-row", lambda kw: {**kw, "emb": _set(kw["emb"], slice(0, 3),
                                                                    0.0)})]),
]


# refseq.decoding.peers: Hugging Face models (tier "torch": skipped without torch/transformers)
def _gpt2(training=False):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=8, n_positions=16,
                                   bos_token_id=None, eos_token_id=None))
    return m.train() if training else m.eval()


def _train_mode(name="hf_model"):
    return (name, f"{name}-training-mode", lambda kw: {**kw, name: _gpt2(training=True)})


_HF_PROMPT = {"prompt": [np.array([1.5]), [], np.array([-1]), np.array([8]), "01", None]}
TABLE += [
    row(f"{_DEC}.HFStepLM", lambda: {"hf_model": _gpt2()}, tier="torch",
        keywords={"hf_model": [None, 3, _markov()], **_DTYPE}, cases=[_train_mode()]),
    row(f"{_DEC}.run_hf_generate", lambda: {"hf_model": _gpt2(), "prompt": np.array([1, 2]),
                                          "max_new_tokens": 2, "do_sample": False},
        tier="torch", keywords={"hf_model": [None, 3], **_HF_PROMPT},
        cases=[_train_mode(), ("generate_kwargs", "generate_kwargs-reserved",
                               lambda kw: {**kw, "output_scores": False})]),
    row(f"{_DEC}.compare_with_hf", lambda: {"hf_model": _gpt2(), "prompt": np.array([1, 2]),
                                          "max_new_tokens": 2, "num_beams": 2, "eos_id": 3},
        tier="torch",
        keywords={"hf_model": [None, 3], **_HF_PROMPT, "max_new_tokens": [0, -1, 1.5, "2"],
                  "num_beams": [0, 1.5, "2"], "eos_id": [8, -1, 1.5], "pad_id": [8, -1, 1.5],
                  "length_penalty": [np.nan, "1"], "early_stopping": ["always", None],
                  "num_return_sequences": [0, 3, 1.5]},
        cases=[_train_mode()]),
]

# refseq.metrics (diversity of generated sequences)
_SEQS = {"sequences": ["01", 3, np.array([1, 2]), [np.array([1.5])], [np.array([-1])],
                       [np.zeros((2, 2), int)], None]}
TABLE += [
    row("refseq.metrics.type_token_ratio", lambda: {"tokens": np.array([1, 2, 2, 5])},
        arrays={"tokens": ids(kinds=("ndim", "float", "low"))},
        keywords={"window": [0, 1.5, "96"]},
        cases=[("tokens", "tokens-empty", lambda kw: {**kw, "tokens": np.zeros(0, int)})]),
    row("refseq.metrics.distinct_n", lambda: {"sequences": [np.array([1, 2, 2]),
                                                            np.array([2, 2])], "n": 2},
        keywords={**_SEQS, "n": [0, 1.5, "2", None]}),
    row("refseq.metrics.num_unique", lambda: {"sequences": [np.array([1, 2]), np.array([1, 2]),
                                                            np.array([2])]},
        keywords=_SEQS),
    row("refseq.metrics.oracle_at_k",
        lambda: {"hyps": [np.array([1, 2]), np.array([2])], "refs": np.array([1, 2]),
                 "metric": lambda h, r: float(len(h)), "k": 2},
        keywords={"metric": [None, 3], "k": [0, 1.5, "2"], "hyps": ["ab", [], 3, None]},
        cases=[("metric", "metric-str", lambda kw: {**kw, "metric": lambda h, r: "1"}),
               ("metric", "metric-nan", lambda kw: {**kw, "metric": lambda h, r: np.nan})]),
]

# refseq.models.tiny_transformer: StepLMs and the GPT-2 weight converters (no torch needed:
# configs are read by attribute, state dicts may hold NumPy arrays)
def _gpt2_config(**kw):
    from types import SimpleNamespace

    from refseq.models.tiny_transformer import gpt2_config_kwargs

    return SimpleNamespace(**{"model_type": "gpt2", **gpt2_config_kwargs(_tiny_config()), **kw})


def _gpt2_state_dict():
    from refseq.models.tiny_transformer import to_gpt2_state_dict

    return to_gpt2_state_dict(_tiny_params())


def _gpt2_model():
    from types import SimpleNamespace

    sd = _gpt2_state_dict()
    return SimpleNamespace(config=_gpt2_config(), state_dict=lambda: sd)


def _sd_cases():
    def missing(kw):
        sd = dict(kw["state_dict"])
        sd.pop("transformer.ln_f.bias")
        return {**kw, "state_dict": sd}

    def extra(kw):
        return {**kw, "state_dict": {**kw["state_dict"], "transformer.nope": np.zeros(2)}}

    def shape(kw):
        sd = kw["state_dict"]
        return {**kw, "state_dict": {**sd, "transformer.wte.weight":
                                     sd["transformer.wte.weight"][:, :-1]}}

    def ints(kw):
        sd = kw["state_dict"]
        return {**kw, "state_dict": {**sd, "transformer.wpe.weight":
                                     sd["transformer.wpe.weight"].astype(np.int32)}}

    def head_differs(kw):  # a tied config whose lm_head.weight is not wte
        from refseq.models.tiny_transformer import init_params, to_gpt2_state_dict

        cfg = _tiny_config(tied_head=True)
        sd = to_gpt2_state_dict(init_params(cfg))
        return {"config": cfg, "state_dict": {**sd, "lm_head.weight": sd["lm_head.weight"] + 1}}

    return [("state_dict", "state_dict-missing", missing),
            ("state_dict", "state_dict-unexpected", extra),
            ("state_dict", "state_dict-shape", shape), ("state_dict", "state_dict-int32", ints),
            (("state_dict", "tied_head"), "state_dict-head-differs", head_differs)]


_BOS = {"params": [3, None], "bos_id": [-1, 7, 1.5, "0"]}
_CONFIG = {"config": [3, None, "tiny"]}
TABLE += [
    row(f"{_TT}.TransformerLM", lambda: {"params": _tiny_params(), "bos_id": 0}, keywords=_BOS),
    row(f"{_TT}.BatchedTransformerLM", lambda: {"params": _tiny_params(), "bos_id": 0},
        keywords=_BOS),
    row(f"{_TT}.gpt2_names", lambda: {"config": _tiny_config()},
        keywords={**_CONFIG, "prefix": [3, None]},
        cases=[("rope", "config-rope", lambda kw: {**kw, "config": _tiny_config(rope=True)})]),
    row(f"{_TT}.gpt2_config_kwargs", lambda: {"config": _tiny_config()}, keywords=_CONFIG,
        cases=[("rope", "config-rope", lambda kw: {**kw, "config": _tiny_config(rope=True)})]),
    row(f"{_TT}.config_from_gpt2", lambda: {"hf_config": _gpt2_config()},
        keywords={"hf_config": [3, None], "dtype": [np.int32, np.float16, "nope"]},
        cases=[("model_type", "hf_config-bert", lambda kw: {**kw, "hf_config": _gpt2_config(
                    model_type="bert")}),
               ("activation_function", "hf_config-relu", lambda kw: {
                    **kw, "hf_config": _gpt2_config(activation_function="relu")}),
               ("reorder_and_upcast_attn", "hf_config-upcast", lambda kw: {
                    **kw, "hf_config": _gpt2_config(reorder_and_upcast_attn=True)}),
               ("scale_attn_weights", "hf_config-unscaled", lambda kw: {
                    **kw, "hf_config": _gpt2_config(scale_attn_weights=False)})]),
    row(f"{_TT}.from_gpt2_state_dict",
        lambda: {"state_dict": _gpt2_state_dict(), "config": _tiny_config()},
        keywords={"state_dict": [3, None, [("wte", 1)]], **_CONFIG}, cases=_sd_cases()),
    row(f"{_TT}.to_gpt2_state_dict", lambda: {"params": _tiny_params()},
        keywords={"params": [3, None, {"wte": np.zeros(2)}]},
        cases=[("rope", "params-rope", lambda kw: {**kw, "params": resolve(
            f"{_TT}.init_params")(_tiny_config(rope=True))})]),
    row(f"{_TT}.from_gpt2", lambda: {"hf_model": _gpt2_model()},
        keywords={"hf_model": [3, None, _tiny_params()],
                  "dtype": [np.int32, np.float16, "nope"]}),
]

# refseq.papers.hyperfitting (The Hyperfitting Phenomenon, arXiv 2412.04318)
_HY = "refseq.papers.hyperfitting"


def _rows7(n=2, T=6, shift=0):
    return (np.arange(n * T).reshape(n, T) * 3 + shift) % 7


def _docs():
    return [np.arange(5) % 4, np.arange(2), np.arange(4) + 1, np.arange(3) * 2, np.arange(6) % 3]


def _index(n=2):
    from refseq.papers.hyperfitting import NgramIndex

    return NgramIndex([np.array([0, 1, 2, 0, 1]), np.array([2, 2, 3])], n)


_MODEL = {"model": [None, 3]}
_CONT = {**_MODEL, "context_len": [0, 7, 1.5, "2"], "total_len": [1, 1.5, "4"],
         "eos_id": [7, -1, 1.5], "pad_id": [7, -1, 1.5]}
_GEN_VAL = {"gen_val": ids(7)}
_GEN_VAL_EMPTY = ("gen_val", "gen_val-empty", lambda kw: {**kw, "gen_val": np.zeros((0, 6),
                                                                                    int)})


def _hyperfit():
    return {"params": _tiny_params(), "train": _rows7(4, 5), "epochs": 1, "lr": 1e-2,
            "batch_size": 2, "val": _rows7(2, 5, 1), "gen_val": _rows7(2, 6, 2),
            "context_len": 2}


TABLE += [
    row(f"{_HY}.make_hyperfit_splits",
        lambda: {"documents": _docs(), "n_train": 2, "n_val": 1, "n_gen_val": 1, "seq_len": 3,
                 "selection": "random", "rng": 0},
        keywords={"documents": ["abc", 3, None, [np.array([1.5, 2.5, 3.5])],
                                [np.array([-1, 0, 1])], [np.zeros((3, 3), int)]],
                  "n_train": [0, 1.5, "2"], "n_val": [-1, 1.5], "n_gen_val": [2, -1],
                  "seq_len": [0, "3"], "selection": ["nope", 3], "rng": ["x", -1]},
        cases=[("documents", "documents-too-few", lambda kw: {**kw, "seq_len": 5})]),
    row(f"{_HY}.epoch_batches",
        lambda: {"n": 5, "batch_size": 2, "shuffle": True, "drop_last": True, "rng": _rng()},
        flags=("shuffle", "drop_last"),
        keywords={"n": [-1, 1.5, "5", None], "batch_size": [0, -1, 1.5],
                  "rng": ["x", -1, 1.5]}),
    row(f"{_HY}.evaluate", lambda: {"params": _tiny_params(), "val": _rows7(2, 5, 1),
                                    "gen_val": _rows7(2, 6, 2), "context_len": 2},
        arrays={"val": ids(7), **_GEN_VAL}, flags=("exclude_pad",),
        keywords={"params": [3, None], "context_len": [0, 7, 1.5], "total_len": [1, 1.5],
                  "ttr_window": [0, 1.5], "val_batch_size": [0, 1.5], "eos_id": [7, -1]},
        cases=[_GEN_VAL_EMPTY,
               ("val", "val-T1", lambda kw: {**kw, "val": kw["val"][:, :1]})]),
    row(f"{_HY}.hyperfit", _hyperfit,
        arrays={"train": ids(7), "val": ids(7), **_GEN_VAL}, flags=("shuffle", "drop_last"),
        keywords={"params": [3, None], "preset": ["nope", 3], "epochs": [-1, 1.5],
                  "lr": [-1.0, np.nan, "x"], "batch_size": [0, 5, 1.5],
                  "optimizer": ["sgd", 3], "betas": [(1.0, 0.9), 0.9, "x"],
                  "eps": [-1.0, np.nan], "weight_decay": [-1.0, np.nan],
                  "grad_clip": [0, -1, "1"], "dropout": [0.1, 1.0, "0"],
                  "validate_every": [0, 1.5], "context_len": [0, 7],
                  "ttr_window": [0, 1.5], "val_batch_size": [0, 1.5], "eval_fn": [3],
                  "seed": [-1, "x"]},
        cases=[("train", "train-T1", lambda kw: {**kw, "train": kw["train"][:, :1]})]),
    row(f"{_HY}.as_step_lm", lambda: {"model": _tiny_params()}, flags=("equal_lengths",),
        keywords=_MODEL),
    row(f"{_HY}.continue_greedy", lambda: {"model": _tiny_params(), "gen_val": _rows7(),
                                           "context_len": 2, "total_len": 4},
        arrays=_GEN_VAL, keywords={**_CONT, "blocker": [3, "x"]}, cases=[_GEN_VAL_EMPTY]),
    row(f"{_HY}.continue_sample", lambda: {"model": _tiny_params(), "gen_val": _rows7(),
                                           "context_len": 2, "total_len": 4, "rng": 0},
        arrays=_GEN_VAL,
        keywords={**_CONT, "top_p": [0.0, 1.5, "0.9"], "temperature": [0, np.nan, "1"],
                  "rng": ["x", -1]},
        cases=[_GEN_VAL_EMPTY]),
    row(f"{_HY}.teacher_forced_logits",
        lambda: {"model": _tiny_params(), "tokens": _rows7(3, 5), "batch_size": 2},
        arrays={"tokens": ids(7)}, keywords={**_MODEL, "batch_size": [0, 1.5, "2"]},
        cases=[("tokens", "tokens-empty", lambda kw: {**kw, "tokens": np.zeros((0, 5), int)}),
               ("model", "model-logits-shape", lambda kw: {**kw, "model": lambda x: np.zeros(
                   x.shape)})]),
    row(f"{_HY}.mean_entropy", lambda: {"logits": _f(2, 3, 4)}, arrays={"logits": FREE},
        keywords={"eps": [-1.0, np.nan, "x"]},
        cases=[("logits", "logits-empty-list", lambda kw: {**kw, "logits": []}),
               ("logits", "logits-str", lambda kw: {**kw, "logits": "x"}),
               ("logits", "logits-empty-axis", lambda kw: {**kw, "logits": np.zeros((2, 0, 4))})]),
    row(f"{_HY}.validate", lambda: {"model": _tiny_params(), "val": _rows7(3, 5)},
        arrays={"val": ids(7)},
        keywords={**_MODEL, "batch_size": [0, 1.5], "eps": [-1.0, np.nan]},
        cases=[("val", "val-T1", lambda kw: {**kw, "val": kw["val"][:, :1]})]),
    row(f"{_HY}.val_loss", lambda: {"model": _tiny_params(), "val": _rows7(3, 5)},
        arrays={"val": ids(7)}, keywords={**_MODEL, "batch_size": [0, 1.5]}),
    row(f"{_HY}.perplexity", lambda: {"loss": 1.5},
        keywords={"loss": [-1.0, np.nan, np.inf, "x", None]}),
    row(f"{_HY}.mean_ttr", lambda: {"continuations": _rows7(), "lengths": np.array([6, 3])},
        arrays={"continuations": ids(kinds=("ndim", "float", "low")),
                "lengths": ids(7, low=1)},
        flags=("exclude_pad",), keywords={"window": [0, 1.5, "96"]},
        cases=[("lengths", "lengths-n", lambda kw: {**kw, "lengths": kw["lengths"][:1]})]),
    row(f"{_HY}.top1_agreement", lambda: {"logits_a": _f(2, 3, 4), "logits_b": _f(2, 3, 4)},
        arrays={"logits_a": LEAD, "logits_b": LEAD}),
    row(f"{_HY}.reference_rank",
        lambda: {"logits_reference": _f(2, 3, 4), "tokens": np.array([[0, 3, 1], [2, 2, 0]])},
        arrays={"logits_reference": LEAD, "tokens": ids(4)},
        cases=[("tokens", "tokens-shape", lambda kw: {**kw, "tokens": kw["tokens"][:, :2]})]),
    row(f"{_HY}.rank_stats",
        lambda: {"logits_model": _f(2, 3, 4), "logits_reference": _f(2, 3, 4),
                 "targets": np.array([[0, 3, 1], [2, 2, 0]])},
        arrays={"logits_model": LEAD, "logits_reference": LEAD, "targets": ids(4)},
        cases=[("targets", "targets-shape", lambda kw: {**kw, "targets": kw["targets"][:, :2]})]),
    row(f"{_HY}.NgramIndex", lambda: {"train": [np.array([0, 1, 2, 0]), np.array([2, 2])],
                                      "n": 2},
        keywords={"n": [0, 1.5, "2", None],
                  "train": ["abc", 3, None, [np.array([1.5])], [np.array([-1])],
                            [np.zeros((2, 2), int)]]}),
    row(f"{_HY}.CitationBlocker", lambda: {"index": _index(), "contexts": [np.array([0, 1])]},
        keywords={"index": [3, None], "row_offset": [-1, 1.5, "0"], "events": [3, "x"],
                  "contexts": ["ab", 3, [np.array([1.5])], [np.array([-1])]]}),
    row(f"{_HY}.citation_blocker", lambda: {"index": _index(), "contexts": [np.array([0, 1])]},
        keywords={"index": [3, None],
                  "contexts": ["ab", 3, [np.array([1.5])], [np.array([-1])]]}),
    row(f"{_HY}.training_overlap",
        lambda: {"continuation": np.array([0, 1, 2, 2]), "index_by_n": {2: _index(2)},
                 "context": np.array([2, 0])},
        arrays={"continuation": ids(kinds=("ndim", "float", "low"))},
        keywords={"index_by_n": [3, {}, {3: 1}, None],
                  "context": [np.array([1.5]), np.array([-1]), np.zeros((2, 2), int), "ab"]},
        cases=[("index_by_n", "index_by_n-wrong-n", lambda kw: {**kw, "index_by_n": {
            3: _index(2)}})]),
    row(f"{_HY}.longest_common_substring",
        lambda: {"tokens": np.array([0, 1, 2]), "sequences": [np.array([1, 2, 0]),
                                                              np.array([2, 2])]},
        arrays={"tokens": ids(kinds=("ndim", "float", "low"))},
        keywords={"sequences": [3, "ab", None, [np.array([1.5])], [np.array([-1])],
                                [np.zeros((2, 2), int)]]}),
]

# refseq.papers.making_the_most (Yoshida, arXiv 2408.16241; MAP's not dead yet, 2311.08817)
_MM = "refseq.papers.making_the_most"


def _pop():
    return {(1, 2, 0): 0.5, (2, 0): 0.5}


_DIST_BAD = [{}, 3, None, {(1,): 0.7}, {(-1,): 1.0}, {(1,): "x"}, {(1,): -0.5, (2,): 1.5},
             {1: 1.0}, {("a",): 1.0}, {(1.5,): 1.0}]


def _attr():
    from refseq.papers.making_the_most import length_attribute

    return length_attribute(_markov(), 2)


def _seg():
    from refseq.papers.making_the_most import segment_nll_and_grad

    params, tokens = _tiny_params(), np.array([1, 2, 3, 4, 5])
    L, H = params.config.n_layers, params.config.n_heads
    empty = np.zeros((L, 2, H, 0, params.config.d_head))
    cache = segment_nll_and_grad(params, tokens[:3], tokens[1:4], np.arange(3), empty,
                                 np.zeros(0, int), "kv")[2]  # (L, 2, H, 3, Dh)
    return {"params": params, "seg": tokens[3:], "targets": tokens[4:],
            "positions": np.arange(3, 5), "cache": cache, "cache_pos": np.arange(3),
            "target": "kv"}


TABLE += [
    row(f"{_MM}.mixture", lambda: {"pop": _pop(), "noise": {(0,): 1.0}, "eps": 0.1},
        keywords={"pop": _DIST_BAD, "noise": _DIST_BAD[:4], "eps": [-0.1, 1.5, np.nan, "0.1"]}),
    row(f"{_MM}.mixture_mode", lambda: {"pop": _pop(), "noise": {(0,): 1.0}, "eps": 0.1},
        keywords={"pop": _DIST_BAD[:4], "noise": _DIST_BAD, "eps": [-0.1, None]}),
    row(f"{_MM}.degeneracy_threshold", lambda: {"pop": _pop(), "noise": {(0,): 1.0}},
        keywords={"pop": _DIST_BAD[:4], "noise": _DIST_BAD}),
    row(f"{_MM}.ExplicitLM", lambda: {"dist": _pop(), "vocab_size": 3, "eos_id": 0},
        keywords={"dist": [*_DIST_BAD, {(1, 2): 1.0}, {(0, 1, 0): 1.0}, {(5, 0): 1.0}],
                  "vocab_size": [0, 1.5, "3"], "eos_id": [3, -1, 1.5, None]}),
    row(f"{_MM}.length_attr_logprob",
        lambda: {"lm": _markov(), "prefix": np.array([1, 2]), "L": 3, "prompt": np.array([0])},
        arrays={"prefix": ids(4), "prompt": ids(4)},
        keywords={"lm": [None, 3, resolve(f"{_DEC}.PrefixLM")(np.zeros, 4)], "L": [-1, 1.5, "3"],
                  "eos_id": [4, -1, 1.5]}),
    row(f"{_MM}.length_attribute", lambda: {"lm": _markov(), "L": 3, "prompt": np.array([0])},
        arrays={"prompt": ids(4)},
        keywords={"lm": [None, 3], "L": [-1, 1.5, "3"], "eos_id": [4, -1, 1.5]}),
    row(f"{_MM}.conditional_beam_search",
        lambda: {"model": _markov(), "prompt": np.array([0]), "attr_logprob_fn": _attr(),
                 "num_beams": 2, "k_pre": 3, "max_new_tokens": 4, "eos_ids": (3,)},
        arrays={"prompt": ids(4)},
        keywords={**_LM, "attr_logprob_fn": [None, 3], "final_attr_logprob_fn": [3, "x"],
                  "num_beams": [0, 1.5], "k_pre": [0, 5, 1.5], "max_new_tokens": [0, "4"],
                  "eos_ids": [4, -1, "3", 1.5, None], "length_penalty": [np.nan, "1", None],
                  "num_return_sequences": [0, 3, 1.5]},
        cases=[("attr_logprob_fn", "attr_logprob_fn-positive", lambda kw: {
                    **kw, "attr_logprob_fn": lambda p: np.ones(len(p))}),
               ("attr_logprob_fn", "attr_logprob_fn-shape", lambda kw: {
                    **kw, "attr_logprob_fn": lambda p: np.zeros(len(p) + 1)})]),
    row(f"{_MM}.hso_evaluate",
        lambda: {"params": _tiny_params(), "tokens": np.arange(6) % 7, "segment": 2,
                 "cache_len": 3, "lr": 0.1},
        arrays={"tokens": ids(7)}, flags=("recompute_after_update", "baseline"),
        keywords={"params": [3, None], "segment": [0, 1.5, "2"], "cache_len": [0, "3"],
                  "lr": [-1.0, np.nan, "x", None], "betas": [(1.0, 0.9), 0.9, "x", (0.9,)],
                  "eps": [0, -1.0], "steps": [0, 1.5], "target": ["nope", 3],
                  "grad_scale": ["nope", 3]},
        cases=[("tokens", "tokens-one", lambda kw: {**kw, "tokens": kw["tokens"][:1]}),
               ("tokens", "tokens-past-max_positions", lambda kw: {**kw, "tokens": np.arange(
                   17) % 7})]),
    row(f"{_MM}.segment_nll_and_grad", _seg,
        arrays={"seg": ids(7), "targets": ids(7), "positions": ids(16), "cache": F,
                "cache_pos": ids(16)},
        keywords={"params": [3, None], "target": ["nope", 3, None]},
        cases=[("targets", "targets-longer-than-seg", lambda kw: {
                    **kw, "targets": np.concatenate([kw["targets"], [1, 1]])}),
               (("seg", "positions"), "positions-length", lambda kw: {
                    **kw, "positions": kw["positions"][:1]}),
               (("cache", "cache_pos"), "cache_pos-length", lambda kw: {
                    **kw, "target": "hidden", "cache": np.zeros((2, 3, 8)),
                    "cache_pos": kw["cache_pos"][:1]})]),
]

def _recurrent(**kw):
    from refseq.papers.making_the_most import RecurrentLM

    return RecurrentLM(_tiny_params(), **{"window": 3, "n_mem": 2, **kw})


def _pool(pool="attention"):
    model = _recurrent(pool=pool)
    D = model.config.d_model
    return {"mem": model.mem, "pool": pool, "carry": True, "R": _f(2, 3 + 2, D),
            "S": _f(2, 2, D), "w": 3}


_REC_MODEL = {"model": [3, None, _tiny_params()]}
TABLE += [
    row(f"{_MM}.memory_mask", lambda: {"M": 2, "T": 3},
        keywords={"M": [-1, 1.5, "2", None], "T": [-1, 1.5, "3"]}),
    row(f"{_MM}.pool_forward", _pool, arrays={"R": F, "S": F}, flags=("carry",),
        keywords={"mem": [3, None, {}], "pool": ["nope", 3, "mean"], "w": [0, 2, 1.5, "3"]}),
    row(f"{_MM}.RecurrentLM", lambda: {"base": _tiny_params(), "window": 3, "n_mem": 2},
        flags=("carry",),
        keywords={"base": [3, None], "window": [0, 1.5, 15], "n_mem": [-1, 1.5, "2"],
                  "write_layer": [-1, 2, 1.5], "read_layer": [0, 3, 1.5],
                  "pool": ["nope", 3], "mem_init": ["nope", 3], "seed": [-1, "x", 1.5]}),
    row(f"{_MM}.trainable_parameters", lambda: {"model": _recurrent()},
        flags=("finetune_base",), keywords=_REC_MODEL),
    row(f"{_MM}.recurrent_loss_and_grad",
        lambda: {"model": _recurrent(), "tokens": _rows7(2, 5), "bptt_windows": 2},
        arrays={"tokens": ids(7)},
        keywords={**_REC_MODEL, "bptt_windows": [0, 1.5, "2"]},
        cases=[("tokens", "tokens-n1", lambda kw: {**kw, "tokens": kw["tokens"][:, :1]})]),
    row(f"{_MM}.train_recurrent",
        lambda: {"model": _recurrent(), "data": _rows7(3, 5), "lr": 1e-2, "steps": 1,
                 "batch_size": 2, "bptt_windows": 2},
        arrays={"data": ids(7)}, flags=("finetune_base",),
        keywords={**_REC_MODEL, "lr": [-1.0, np.nan, "x"], "steps": [0, 1.5],
                  "batch_size": [0, 1.5], "bptt_windows": [0, 1.5], "seed": [-1, "x"]},
        cases=[("data", "data-empty", lambda kw: {**kw, "data": kw["data"][:0]}),
               ("data", "data-n1", lambda kw: {**kw, "data": kw["data"][:, :1]})]),
    row(f"{_MM}.isolated_windows",
        lambda: {"params": _tiny_params(), "tokens": np.arange(7) % 7, "window": 3},
        arrays={"tokens": ids(7)},
        keywords={"params": [3, None], "window": [0, 17, 1.5, "3"]},
        cases=[("tokens", "tokens-empty", lambda kw: {**kw, "tokens": np.zeros(0, int)})]),
    row(f"{_MM}.sliding_window",
        lambda: {"params": _tiny_params(), "tokens": np.arange(7) % 7, "window": 3},
        arrays={"tokens": ids(7)},
        keywords={"params": [3, None], "window": [0, 17, 1.5, "3"]},
        cases=[("tokens", "tokens-empty", lambda kw: {**kw, "tokens": np.zeros(0, int)})]),
]


def _demo_cache():
    from refseq.papers.making_the_most import demo_cache

    return {"params": _tiny_params(), "demo_tokens": np.array([1, 2, 3, 4]),
            "cache": demo_cache(_tiny_params(), np.array([1, 2, 3, 4]), "kv"), "target": "kv"}


_CLF = {"params": [3, None], "prompt": [np.array([1.5]), np.array([7]), np.array([[1]]), "ab"],
        "eos_id": [7, -1, 1.5]}
TABLE += [
    row(f"{_MM}.PrefixClassifier",
        lambda: {"params": _tiny_params(), "weights": _f(8), "bias": 0.5,
                 "prompt": np.array([1])},
        arrays={"weights": F, "prompt": ids(7)}, finite=True,
        keywords={"params": [3, None], "bias": [np.nan, "1", None]}),
    row(f"{_MM}.prefix_features",
        lambda: {"params": _tiny_params(), "sequences": _rows7(3, 4), "eos_id": 3},
        arrays={"sequences": ids(7)}, keywords=_CLF,
        cases=[("sequences", "sequences-empty", lambda kw: {**kw, "sequences": kw[
            "sequences"][:0]})]),
    row(f"{_MM}.fit_prefix_classifier",
        lambda: {"params": _tiny_params(), "sequences": _rows7(4, 3),
                 "labels": np.array([True, False, True, False]), "max_iter": 3},
        arrays={"sequences": ids(7), "labels": MASK},
        keywords={**_CLF, "l2": [0, -1.0, np.nan, "1"], "max_iter": [0, 1.5],
                  "tol": [-1.0, np.nan]},
        cases=[("labels", "labels-one-class", lambda kw: {**kw, "labels": np.ones(4, bool)})]),
    row(f"{_MM}.demo_cache",
        lambda: {"params": _tiny_params(), "demo_tokens": np.array([1, 2, 3]), "target": "kv"},
        arrays={"demo_tokens": ids(7)},
        keywords={"params": [3, None], "target": ["nope", 3, None]},
        cases=[("demo_tokens", "demo_tokens-empty", lambda kw: {
                    **kw, "demo_tokens": np.zeros(0, int)}),
               ("demo_tokens", "demo_tokens-past-max_positions", lambda kw: {
                    **kw, "demo_tokens": np.arange(17) % 7})]),
    row(f"{_MM}.demo_nll_and_grad", _demo_cache, arrays={"demo_tokens": ids(7), "cache": F},
        keywords={"params": [3, None], "target": ["nope", 3, None]},
        cases=[("demo_tokens", "demo_tokens-one", lambda kw: {
                    **kw, "demo_tokens": kw["demo_tokens"][:1]}),
               ("cache", "cache-slots", lambda kw: {**kw, "cache": kw["cache"][..., :3, :]})]),
    row(f"{_MM}.hso_fewshot_scores",
        lambda: {"params": _tiny_params(), "demo_tokens": np.array([1, 2, 3, 4]),
                 "query_tokens": np.array([5, 6]), "label_token_ids": np.array([0, 3]),
                 "steps": 2, "lr": 0.1},
        arrays={"demo_tokens": ids(7), "query_tokens": ids(7), "label_token_ids": ids(7)},
        keywords={"params": [3, None], "steps": [-1, 1.5, "2"], "lr": [-1.0, np.nan, "x"],
                  "target": ["nope", 3], "betas": [(1.0, 0.9), 0.9, (0.9,)],
                  "eps": [0, -1.0], "grad_scale": ["nope", 3]},
        cases=[("demo_tokens", "demo_tokens-one", lambda kw: {
                    **kw, "demo_tokens": kw["demo_tokens"][:1]}),
               ("query_tokens", "query_tokens-empty", lambda kw: {
                    **kw, "query_tokens": np.zeros(0, int)}),
               (("demo_tokens", "query_tokens"), "past-max_positions", lambda kw: {
                    **kw, "query_tokens": np.arange(13) % 7})]),
]


# refseq.cuda.recurrence mirrors (NumPy mirrors of the GPU decompositions, public in mirror)
TABLE += [
    row("refseq.cuda.recurrence.mirror.flashrnn_forward", _rec, id="mirror.flashrnn_forward",
        arrays={"Wx": F, "R": F, "b": F, "states0": F},
        flags=("return_cache", "clamp_gates_le_one", "fma"),
        keywords={"cell": ["nope", 3], "batch_tile": [0, -1, 2.5]}),
    row("refseq.cuda.recurrence.mirror.forward_blocked", _rec, id="mirror.forward_blocked",
        arrays={"Wx": F, "R": F, "b": F, "states0": F}, flags=("clamp_gates_le_one", "fma"),
        keywords={"cell": ["nope", 3], "batch_tile": [0, -1, 2.5]}),
    row("refseq.cuda.recurrence.mirror.backward_blocked", _rec_backward(),
        id="mirror.backward_blocked",
        arrays={"d_states_all": F, "d_last_states": F, "R": F, "b": F},
        flags=("gradient_recurrent_cut", "clamp_gates_le_one", "fma"),
        keywords={"cell": ["nope", 3], "batch_tile": [0, -1]}, cases=_bad_cache()),
]

# refseq.papers.aaren (Attention as an RNN)
_A = "refseq.papers.aaren"
_Dk, _Dv, _Dm = 3, 2, 4


def _qkv():
    return {"q": _f(H, _Dk), "k": _f(B, T, H, _Dk), "v": _f(B, T, H, _Dv),
            "mask": _rng().random((B, T)) > 0.2}


def _aaren_state(Dv=_Dv):
    from refseq.scan import SoftmaxState

    return SoftmaxState(_f(B, H), _f(B, H, low=0.5, high=1.0), _f(B, H, Dv))


def _aaren_params(kind="params"):
    def make():
        from refseq.papers.aaren import (
            init_aaren_block_params,
            init_aaren_params,
            init_aaren_stack_params,
        )
        if kind == "params":
            return init_aaren_params(_rng(), _Dm, H, _Dk, _Dv)
        if kind == "block":
            return init_aaren_block_params(_rng(), _Dm, H, _Dk, _Dv)
        return init_aaren_stack_params(_rng(), 2, _Dm, H, _Dk, _Dv)
    return make


_SCALE = {"scale": [np.nan, np.inf, "1"]}  # any finite real is a valid scale
_MERGE = {"head_merge": ["max", 3]}
_INIT = {"D": [0, -1, 2.5], "H": [0], "Dk": [-1], "Dv": [0, "2"], "dtype": [np.int32,
                                                                            np.float16],
         "head_merge": ["max"], "rng": ["x"]}
TABLE += [
    row(f"{_A}.softmax_state_init", lambda: {"B": B, "H": H, "Dv": _Dv},
        keywords={"B": [-1, 2.5], "H": [-1], "Dv": [-1, "2"], "dtype": [np.int32, "nope"]}),
    row(f"{_A}.aaren_scores", lambda: {k: v for k, v in _qkv().items() if k in "qk"},
        arrays={"q": F, "k": F}, keywords=_SCALE),
    row(f"{_A}.attend_one_query", _qkv, arrays={"q": F, "k": F, "v": FREE, "mask": MASK},
        keywords=_SCALE),
    row(f"{_A}.aaren_naive", _qkv, arrays={"q": F, "k": F, "v": FREE, "mask": MASK},
        keywords=_SCALE),
    row(f"{_A}.aaren_scan", lambda: {**_qkv(), "state": _aaren_state()},
        arrays={"q": F, "k": F, "v": F, "mask": MASK},
        keywords={**_SCALE, "method": ["nope", 3], "chunk": [0, -1, 2.5]},
        flags=("check_finite",), cases=_bad_state()),
    row(f"{_A}.aaren_cell_step",
        lambda: {"state": _aaren_state(), "s_t": _f(B, H), "v_t": _f(B, H, _Dv),
                 "valid_t": np.array([True, False])},
        arrays={"s_t": F, "v_t": F, "valid_t": MASK}, flags=("check_finite",),
        cases=_bad_state()),
    row(f"{_A}.aaren_recurrent",
        lambda: {"s": _f(B, T, H), "v": _f(B, T, H, _Dv), "mask": _qkv()["mask"],
                 "state": _aaren_state()},
        arrays={"s": F, "v": F, "mask": MASK}, flags=("check_finite",), cases=_bad_state()),
    row(f"{_A}.aaren_unstable_rolling", lambda: {"s": _f(B, T, H), "v": _f(B, T, H, _Dv)},
        arrays={"s": F, "v": FREE}),
    row(f"{_A}.lengths_to_mask", lambda: {"lengths": np.array([T, 2]), "T": T},
        arrays={"lengths": ids(T + 1)}, keywords={"T": [-1, 2.5], "padding": ["up", 3]}),
    row(f"{_A}.init_aaren_params", lambda: {"rng": _rng(), "D": _Dm, "H": H, "Dk": _Dk,
                                             "Dv": _Dv},
        flags=("bias",), keywords=_INIT),
    row(f"{_A}.init_aaren_block_params", lambda: {"rng": _rng(), "D": _Dm, "H": H, "Dk": _Dk,
                                                   "Dv": _Dv},
        flags=("bias",), keywords={**_INIT, "F": [0, -1]}),
    row(f"{_A}.init_aaren_stack_params", lambda: {"rng": _rng(), "L": 2, "D": _Dm, "H": H,
                                                   "Dk": _Dk, "Dv": _Dv},
        flags=("bias",), keywords={**_INIT, "L": [0, -1, 1.5]}),
    row(f"{_A}.aaren_layer", lambda: {"params": _aaren_params()(), "x": _f(B, T, _Dm),
                                       "mask": _qkv()["mask"], "state": _aaren_state()},
        arrays={"x": F, "mask": MASK}, keywords={**_SCALE, **_MERGE, **BACKEND},
        cases=_bad_state() + [("params", "params-int", lambda kw: {**kw, "params": 3})]),
    row(f"{_A}.aaren_layer_step", lambda: {"params": _aaren_params()(), "x_t": _f(B, _Dm),
                                            "state": _aaren_state(),
                                            "valid_t": np.array([True, False])},
        arrays={"x_t": F, "valid_t": MASK}, keywords={**_SCALE, **_MERGE},
        cases=_bad_state()),
    row(f"{_A}.aaren_block", lambda: {"params": _aaren_params("block")(), "x": _f(B, T, _Dm),
                                       "mask": _qkv()["mask"], "state": _aaren_state()},
        arrays={"x": F, "mask": MASK}, keywords={**_SCALE, **_MERGE, **BACKEND},
        cases=_bad_state()),
    row(f"{_A}.aaren_block_step", lambda: {"params": _aaren_params("block")(),
                                            "x_t": _f(B, _Dm), "state": _aaren_state(),
                                            "valid_t": np.array([True, False])},
        arrays={"x_t": F, "valid_t": MASK}, keywords={**_SCALE, **_MERGE},
        cases=_bad_state()),
    row(f"{_A}.aaren_stack", lambda: {"params_list": _aaren_params("stack")(),
                                       "x": _f(B, T, _Dm), "mask": _qkv()["mask"]},
        arrays={"x": F, "mask": MASK}, keywords={**_SCALE, **_MERGE, **BACKEND},
        cases=[("states", "states-count", lambda kw: {**kw, "states": [_aaren_state()]})]),
    row(f"{_A}.aaren_stack_step", lambda: {"params_list": _aaren_params("stack")(),
                                            "x_t": _f(B, _Dm)},
        arrays={"x_t": F}, keywords={**_SCALE, **_MERGE},
        cases=[("states", "states-count", lambda kw: {**kw, "states": [_aaren_state()]})]),
]


def _rnn_fwd():
    kw = _rec()
    return {"x": _f(B, 4, 5), "W": _f(4, 2, 3, 5), "R": kw["R"], "b": kw["b"],
            "states0": kw["states0"], "cell": "lstm"}


def _rnn_bwd():
    from refseq.recurrence import rnn_forward

    kw = _rnn_fwd()
    states_all, last, cache = rnn_forward(**kw, return_cache=True)
    return {"d_states_all": _f(*states_all.shape), "d_last_states": _f(*last.shape),
            "x": kw["x"], "W": kw["W"], "R": kw["R"], "b": kw["b"], "cache": cache,
            "cell": "lstm"}


TABLE += [
    row("refseq.recurrence.rnn_forward", _rnn_fwd,
        arrays={"x": F, "W": F, "R": F, "b": F, "states0": F},
        flags=("return_cache", "clamp_gates_le_one", "check_finite"),
        keywords={**_REC_KW, **BACKEND}),
    row("refseq.recurrence.rnn_backward", _rnn_bwd,
        arrays={"d_states_all": F, "d_last_states": F, "x": F, "W": F, "R": F, "b": F},
        flags=("gradient_recurrent_cut", "clamp_gates_le_one", "check_finite"),
        keywords={"cell": ["nope", 3], "gradient_recurrent_clipval": [-1.0, "1"], **BACKEND},
        cases=_bad_cache()),
    row("refseq.jit.scan.chunk_length", lambda: {"T": 4096, "channels": 4},
        keywords={"T": [-1, 2.5, "4096"], "channels": [-1, 1.5]}),
]

# refseq.train: gradient noise (Neelakantan et al.)
_NOISE = {"eta": [-0.1, np.nan, "0.01"], "gamma": [-0.1, np.nan, "0.55"]}
TABLE += [
    row("refseq.train.noise_variance", lambda: {"t": 3, "eta": 0.01},
        keywords={"t": [-1, np.nan, "3"], **_NOISE}),
    row("refseq.train.noise_std", lambda: {"t": 3, "eta": 0.01},
        keywords={"t": [-1, np.nan, "3"], **_NOISE}),
    row("refseq.train.constant_noise_std", lambda: {"eta": 0.01},
        keywords={"eta": [-0.1, np.nan, "0.01"]}),
    row("refseq.train.add_gradient_noise",
        lambda: {"grads": _params(), "t": 3, "eta": 0.01, "rng": _rng()},
        keywords={"t": [-1, 2.5, "3"], **_NOISE, "rng": [None, "x"],
                  "schedule": ["linear", 3], "draw_dtype": [np.int32, np.float16],
                  "grads": [[np.ones(2)], {"w": np.ones(2, int)}]},
        cases=[("masks", "masks-shape", lambda kw: {**kw, "masks": {"w": np.ones(2, bool),
                                                                    "b": np.ones(2, bool)}}),
               ("masks", "masks-float", lambda kw: {**kw, "masks": {"w": np.ones((3, 2)),
                                                                    "b": np.ones(2)}})]),
    row("refseq.train.GradientNoise", lambda: {"eta": 0.01, "rng": 0},
        keywords={**_NOISE, "rng": ["x", -1], "schedule": ["linear"],
                  "order": ["never", 3], "t0": [-1, 1.5], "draw_dtype": [np.int32]}),
    row("refseq.train.NoisyOptimizer",
        lambda: {"base": resolve("refseq.train.SGD")(0.1), "eta": 0.01, "rng": 0},
        keywords={**_NOISE, "rng": ["x"], "base": [None, 3], "clip_norm": [-1.0, 0.0, np.nan],
                  "clip_value": [-1.0, "1"], "order": ["never"], "t0": [-1]}),
    row("refseq.train.apply_clip_and_noise", lambda: {"grads": _params()},
        keywords={"clip_norm": [-1.0, 0.0, np.nan, "1"], "clip_value": [-1.0, 0.0, "1"],
                  "noise": [3, "gaussian"], "grads": [[np.ones(2)], {"w": np.ones(2, int)}]}),
]

# refseq.papers.gradient_noise: the paper's experiment (deep ReLU MLP on a teacher problem)
_GN = "refseq.papers.gradient_noise"


def _gn_params():
    from refseq.papers.gradient_noise import deep_relu_mlp

    return deep_relu_mlp(depth=2, width=4, in_dim=3, out_dim=2, rng=_rng())


def _gn_batch():
    return _f(6, 3), np.arange(6) % 2


def _gn_backward():
    from refseq.papers.gradient_noise import forward

    params = _gn_params()
    logits, cache = forward(params, _gn_batch()[0])
    return {"dlogits": _f(*logits.shape), "params": params, "cache": cache}


TABLE += [
    row(f"{_GN}.teacher_dataset", lambda: {"n": 8, "in_dim": 3, "hidden": 4, "rng": _rng()},
        keywords={"n": [0, -1, 2.5], "in_dim": [0, "3"], "hidden": [-1], "rng": ["x"]}),
    row(f"{_GN}.layer_names", lambda: {"depth": 3}, keywords={"depth": [-1, 2.5, "3"]}),
    row(f"{_GN}.deep_relu_mlp", lambda: {"depth": 2, "width": 4, "in_dim": 3, "rng": _rng()},
        keywords={"depth": [-1, 2.5], "width": [0, "4"], "in_dim": [-1], "out_dim": [0],
                  "init_std": [-0.1, np.nan], "rng": ["x"]}),
    row(f"{_GN}.forward", lambda: {"params": _gn_params(), "x": _gn_batch()[0]},
        arrays={"x": F}, cases=[("params", "params-missing", lambda kw: {
            **kw, "params": dict(list(kw["params"].items())[1:])})]),
    row(f"{_GN}.backward", _gn_backward, arrays={"dlogits": F}),
    row(f"{_GN}.loss_and_grad", lambda: {"params": _gn_params(), "batch": _gn_batch()},
        cases=[("batch", "y-out-of-range", lambda kw: {**kw, "batch": (kw["batch"][0],
                                                                       kw["batch"][1] + 5)}),
               ("batch", "x-int", lambda kw: {**kw, "batch": (kw["batch"][0].astype(int),
                                                              kw["batch"][1])}),
               ("batch", "y-length", lambda kw: {**kw, "batch": (kw["batch"][0],
                                                                 kw["batch"][1][:-1])})]),
    row(f"{_GN}.accuracy", lambda: {"params": _gn_params(), "x": _gn_batch()[0],
                                    "y": _gn_batch()[1]},
        arrays={"x": F, "y": ids(2)}),
    row(f"{_GN}.run", lambda: {"seed": 0, "eta": 0.01, "steps": 2, "n": 8, "depth": 2,
                               "width": 4, "batch": 4},
        keywords={"seed": [-1, "x"], "eta": [-0.1, np.nan], "steps": [-1, 1.5], "lr": [-0.1],
                  "batch": [0, -1], "clip_norm": [-1.0, 0.0], "gamma": [-0.1],
                  "n": [0], "depth": [-1], "width": [0]}),
]

# refseq.papers.rnn_review
_RR = "refseq.papers.rnn_review"


def _rr_elman():
    return {"x": _f(T, _I), "W_hx": _f(_H, _I), "W_hh": _f(_H, _H) / 2, "b_h": _f(_H)}


def _rr_lstm(single=True):
    return lambda: {"x": _f(T, _I) if single else _f(B, T, _I), "params": _lstm_params()}


TABLE += [
    row(f"{_RR}.elman_jacobian_chain", _rr_elman,
        arrays={"x": F, "W_hx": F, "W_hh": F, "b_h": F},
        keywords={"activation": ["softsign", 3]},
        cases=[("h0", "h0-shape", lambda kw: {**kw, "h0": _f(_H + 1)})]),
    row(f"{_RR}.jacobian_bound", lambda: {"W_hh": _f(_H, _H), "activation": "tanh", "T": T},
        arrays={"W_hh": F}, keywords={"activation": ["softsign", 3], "T": [-1, 2.5, "5"]}),
    row(f"{_RR}.scalar_rnn_gradient", lambda: {"w": 0.5, "activation_derivatives": _f(T)},
        arrays={"activation_derivatives": ANY}, keywords={"w": [np.nan, "0.5", None]}),
    row(f"{_RR}.lstm_step_jacobians", _rr_lstm(False), arrays={"x": F},
        flags=("forget_gate", "peepholes"), keywords={"output_activation": ["relu", 3]}),
    row(f"{_RR}.lstm_state_jacobian", _rr_lstm(), arrays={"x": F},
        flags=("forget_gate", "peepholes"),
        keywords={"which": ["x", 3], "output_activation": ["relu", 3]}),
]

# refseq.papers.pv_rnn (PV-RNN; VRNN baseline)
_PV = "refseq.papers.pv_rnn"
_S, _Tp, _X = 3, 6, 1


def _pv_params():
    from refseq.papers.pv_rnn import init_pvrnn

    return init_pvrnn([(4, 2)], _X, _S, _Tp, _rng())


def _pv_eps(params=None):
    from refseq.papers.pv_rnn import draw_eps

    return draw_eps(params or _pv_params(), _S, _Tp, _rng())


def _pv_forward():
    params = _pv_params()
    return {"params": params, "eps": _pv_eps(params), "seq_index": np.arange(_S)}


def _pv_cache():
    from refseq.papers.pv_rnn import pvrnn_forward

    kw = _pv_forward()
    return kw["params"], pvrnn_forward(**kw)[1]


def _pv_loss(with_params=False):
    def make():
        params, cache = _pv_cache()
        out = {"cache": cache, "targets": 0.5 * np.tanh(_f(_S, _Tp, _X)),
               "mask": np.ones((_S, _Tp), bool)}
        return {"params": params, **out} if with_params else out
    return make


def _vrnn_params():
    from refseq.papers.pv_rnn import init_vrnn

    return init_vrnn(4, 2, _X, _rng())


def _vrnn_cache():
    from refseq.papers.pv_rnn import vrnn_forward

    params = _vrnn_params()
    return params, vrnn_forward(params, _f(_S, _Tp, _X), _f(_S, _Tp, 2))[1]


def _bad_eps(name="eps"):
    return [(name, "eps-shape", lambda kw: {**kw, name: [e[:, :, :1] for e in kw[name]]}),
            (name, "eps-count", lambda kw: {**kw, name: kw[name] * 2}),
            (name, "eps-int", lambda kw: {**kw, name: [e.astype(np.int32) for e in kw[name]]})]


_PRIMS = lambda: [_f(4, _X), _f(3, _X)]  # noqa: E731
_TRANS = lambda: np.array([[0.5, 0.5], [0.9, 0.1]])  # noqa: E731
_W = {"w": [-1.0, np.nan, "1"], "beta": [-1.0, np.nan], "normalize": ["mean", 3]}
TABLE += [
    row(f"{_PV}.init_pvrnn", lambda: {"sizes": [(4, 2)], "X": _X, "S": _S, "T": _Tp,
                                       "rng": _rng()},
        keywords={"sizes": [[], [(0, 2)], [(4, -1)], [4]], "X": [0, -1, 1.5], "S": [0],
                  "T": [-1, "6"], "tau": [0.5, 0.0, np.nan], "bias_init": ["ones", 3],
                  "A_init": ["nope"], "A_std": [-1.0, np.nan], "dtype": [np.int32, np.float16],
                  "sm_units": [-1, 2.5], "rng": ["x"]}),
    row(f"{_PV}.check_params", lambda: {"params": _pv_params()},
        keywords={"params": [3, None]}),
    row(f"{_PV}.named_parameters", lambda: {"params": _pv_params()}, flags=("with_A",),
        keywords={"params": [3]}),
    row(f"{_PV}.draw_eps", lambda: {"params": _pv_params(), "B": _S, "T": _Tp, "rng": _rng()},
        keywords={"B": [-1, 1.5], "T": [-1, "6"], "rng": ["x"], "params": [3]}),
    row(f"{_PV}.pvrnn_forward", _pv_forward, arrays={"seq_index": ids(_S)},
        flags=("unit_first", "set_A_to_prior"),
        keywords={"mode": ["both", 3], "n_posterior_steps": [-1, 1.5, _Tp + 1],
                  "params": [3]},
        cases=_bad_eps() + [("state0", "state0-shape", lambda kw: {
            **kw, "state0": [(np.zeros((_S, 3)), np.zeros((_S, 3)))]})]),
    row(f"{_PV}.init_A_from_prior", _pv_forward, arrays={"seq_index": ids(_S)},
        cases=_bad_eps()),
    row(f"{_PV}.output_fc", lambda: {"d1": _f(_S, _Tp, 4), "W_out": _f(_X, 4), "b_out": _f(_X)},
        arrays={"d1": LEAD, "W_out": F, "b_out": F}),
    row(f"{_PV}.output_softmax_groups",
        lambda: {"d1": _f(_S, _Tp, 4), "W_out": _f(6, 4), "b_out": _f(6), "groups": 2},
        arrays={"d1": LEAD, "W_out": F, "b_out": F}, keywords={"groups": [0, 4, -1, 1.5]}),
    row(f"{_PV}.log_softmax_groups", lambda: {"a": _f(_S, 6), "units": 3},
        arrays={"a": LEAD}, keywords={"units": [0, 4, -1, 1.5]}),
    row(f"{_PV}.softmax_groups_textbook", lambda: {"a": _f(_S, 6), "units": 3},
        arrays={"a": LEAD}, keywords={"units": [0, 4, -1, 1.5]}),
    row(f"{_PV}.pvrnn_loss", _pv_loss(), arrays={"targets": F},
        keywords={**_W, "rec_weight": [-1.0, np.nan], "cache": [3, None]}),
    row(f"{_PV}.pvrnn_backward", _pv_loss(True), arrays={"targets": F},
        keywords={**_W, "rec_weight": [-1.0, np.nan], "cache": [3]}),
    row(f"{_PV}.kl_per_step", lambda: {"cache": _pv_cache()[1]}, keywords={"cache": [3, None]}),
    row(f"{_PV}.mean_sigma", lambda: {"cache": _pv_cache()[1]},
        keywords={"which": ["x", 3], "t_from": [-1, 1.5, _Tp + 1], "cache": [3]}),
    row(f"{_PV}.train_pvrnn", lambda: {"params": _pv_params(), "epochs": 1, "log": None,
                                        "data": 0.5 * np.tanh(_f(_S, _Tp, _X))},
        arrays={"data": F},
        keywords={"epochs": [-1, 1.5, "1"], "minibatch_size": [0, -1, 1.5],
                  "lr": [-1.0, np.nan], "betas": [(0.9,), (1.0, 0.9)], "adam_eps": [-1.0],
                  **_W, "rng": ["x"], "freeze_top_down_of": [(5,), ("a",)],
                  "log_every": [-1, 1.5]},
        cases=[("data", "data-outside-(-1,1)", lambda kw: {**kw, "data": kw["data"] + 5})]),
    row(f"{_PV}.ErrorRegression", lambda: {"params": _pv_params(), "window": 3, "n_iter": 2},
        flags=("growing_window", "resample_eps"),
        keywords={"window": [0, -1, 1.5], "n_iter": [-1, 1.5], "n_init_iter": [-1],
                  "lr": [-1.0, np.nan], "betas": [(0.9,)], "adam_eps": [-1.0],
                  "w_er": [-1.0, np.nan], "new_slot_init": ["nope"], "er_normalize": ["nope"],
                  "rng": ["x"], "params": [3]}),
    row(f"{_PV}.softmax_encode", lambda: {"x": _f(_S, _Tp, 2), "num_units": 5, "sigma": 0.1,
                                           "x_min": -3.0, "x_max": 3.0},
        arrays={"x": ANY},
        keywords={"num_units": [0, 1.5], "sigma": [0.0, -1.0, np.nan], "x_min": [np.nan, 3.0],
                  "x_max": [-3.0, "3"]}),
    row(f"{_PV}.softmax_decode", lambda: {"p": np.full((_S, 10), 0.2), "num_units": 5,
                                           "x_min": -3.0, "x_max": 3.0},
        arrays={"p": LEAD}, keywords={"num_units": [0, 3, 1.5], "x_min": [np.nan, 3.0],
                                      "x_max": [-3.0]}),
    row(f"{_PV}.pfsm_sequences", lambda: {"primitives": _PRIMS(), "transition": _TRANS(),
                                           "n_seq": 2, "n_segments": 3, "rng": _rng()},
        arrays={"transition": F}, flags=("return_symbols",),
        keywords={"n_seq": [0, -1, 1.5], "n_segments": [0, "3"], "rng": ["x"],
                  "primitives": [[], [np.zeros((3, 2)), np.zeros((3, 1))]]},
        cases=[("transition", "not-stochastic", lambda kw: {**kw, "transition": kw[
            "transition"] * 2}),
               ("initial", "initial-shape", lambda kw: {**kw, "initial": np.ones(3) / 3})]),
    row(f"{_PV}.pfsm_accepts", lambda: {"symbols": np.array([[0, 1, 0], [1, 0, 0]]),
                                         "transition": _TRANS()},
        arrays={"symbols": ids(2), "transition": F}),
    row(f"{_PV}.estimate_transition_matrix", lambda: {"symbols": np.array([[0, 1, 0],
                                                                            [1, 0, 0]])},
        arrays={"symbols": ids(None)}, keywords={"K": [0, 1, -1, 1.5]}),
    row(f"{_PV}.init_vrnn", lambda: {"D": 4, "Z": 2, "X": _X, "rng": _rng()},
        keywords={"D": [0, -1, 1.5], "Z": [0], "X": ["1"], "tau": [0.5, np.nan],
                  "dtype": [np.int32], "rng": ["x"]}),
    row(f"{_PV}.vrnn_forward", lambda: {"params": _vrnn_params(), "x": _f(_S, _Tp, _X),
                                         "eps": _f(_S, _Tp, 2)},
        arrays={"x": F, "eps": F}, keywords={"params": [3]}),
    row(f"{_PV}.vrnn_generate", lambda: {"params": _vrnn_params(), "eps": _f(_S, _Tp, 2)},
        arrays={"eps": F}, keywords={"params": [3]}),
    row(f"{_PV}.vrnn_loss", lambda: {"cache": _vrnn_cache()[1]},
        keywords={"w": [-1.0, np.nan], "normalize": ["mean"], "cache": [3]}),
    row(f"{_PV}.vrnn_backward", lambda: dict(zip(("params", "cache"), _vrnn_cache())),
        keywords={"w": [-1.0, np.nan], "normalize": ["mean"], "cache": [3]}),
]

# refseq.papers.recoding (surprisal / entropy recoding of an LSTM LM)
_RC = "refseq.papers.recoding"
_Vr, _Hr = 7, 4


def _rc_model():
    from refseq.papers.recoding import LSTMLanguageModel

    return LSTMLanguageModel(_Vr, _Hr, _Hr, rng=0)


def _rc_step():
    m = _rc_model()
    logits, state, cache = m.step(np.array([0, 3]))
    return m, logits, state, cache


def _rc_tokens():
    return np.arange(B * (T + 1)).reshape(B, T + 1) % _Vr


def _decoders(K=2):
    r = _rng()
    return [(r.standard_normal((_Vr, _Hr)), r.standard_normal(_Vr)) for _ in range(K)]


def _bad_decoders(name="decoders"):
    return [(name, "decoders-shape", lambda kw: {**kw, name: [(W[:, :-1], b) for W, b in
                                                             kw[name]]}),
            (name, "decoders-empty", lambda kw: {**kw, name: []}),
            (name, "decoders-int", lambda kw: {**kw, name: [(W.astype(np.int32), b) for W, b in
                                                           kw[name]]})]


def _rc_backward():
    m = _rc_model()
    caches, state = [], None
    for t in range(3):
        logits, state, cache = m.step(np.array([t, t + 1]), state)
        caches.append(cache)
    return {"model": m, "caches": caches, "dlogits": _f(B, 3, _Vr)}


def _rc_recoder():
    from refseq.papers.recoding import RecodingLM

    return RecodingLM(_rc_model(), "surprisal", step=0.1)


_LOGITS = lambda: {"logits": _f(B, _Vr), "target": np.array([1, 6])}  # noqa: E731
TABLE += [
    row(f"{_RC}.LSTMLanguageModel", lambda: {"vocab_size": _Vr, "embedding_size": _Hr,
                                              "hidden_size": _Hr, "rng": 0},
        keywords={"vocab_size": [0, -1, 7.5], "embedding_size": [0, "4"], "hidden_size": [-1],
                  "num_layers": [0, 1.5], "dropout": [-0.1, 1.0, np.nan],
                  "dtype": [np.int32, np.float16], "init_scale": [-0.1, np.nan],
                  "rng": ["x", -1]}),
    row(f"{_RC}.lm_backward", _rc_backward, arrays={"dlogits": F},
        keywords={"model": [3]},
        cases=[("caches", "caches-count", lambda kw: {**kw, "caches": kw["caches"][:1]})]),
    row(f"{_RC}.surprisal", _LOGITS, arrays={"logits": F, "target": ids(_Vr)}),
    row(f"{_RC}.token_perplexity_code_variant", _LOGITS,
        arrays={"logits": F, "target": ids(_Vr)}),
    row(f"{_RC}.mixture_entropy", lambda: {"member_logits": _f(2, B, _Vr)},
        arrays={"member_logits": FREE}),
    row(f"{_RC}.mc_dropout_entropy",
        lambda: {"h_top": _f(B, _Hr), "W_dec": _f(_Vr, _Hr), "b_dec": _f(_Vr),
                 "num_samples": 3, "p_drop": 0.2, "rng": 0},
        arrays={"h_top": F, "W_dec": F, "b_dec": F},
        keywords={"num_samples": [0, -1, 1.5], "p_drop": [-0.1, 1.0, np.nan], "rng": ["x"]},
        cases=[("masks", "masks-shape", lambda kw: {**kw, "masks": np.ones((3, B, 2), bool)}),
               ("masks", "masks-float", lambda kw: {**kw, "masks": np.ones((3, B, _Hr))})]),
    row(f"{_RC}.ensemble_entropy", lambda: {"h_top": _f(B, _Hr), "decoders": _decoders()},
        arrays={"h_top": F}, cases=_bad_decoders()),
    row(f"{_RC}.ensemble_log_probs", lambda: {"h_top": _f(B, _Hr), "decoders": _decoders()},
        arrays={"h_top": F}, keywords={"average": ["mean", 3]}, cases=_bad_decoders()),
    row(f"{_RC}.ensemble_log_probs_backward",
        lambda: {"h_top": _f(B, _Hr), "decoders": _decoders(), "d_out": _f(B, _Vr)},
        arrays={"h_top": F, "d_out": F}, keywords={"average": ["mean", 3]},
        cases=_bad_decoders()),
    row(f"{_RC}.init_anchored_decoders",
        lambda: {"K": 2, "H": _Hr, "V": _Vr, "prior_var": 1.0, "rng": 0},
        keywords={"K": [0, -1, 1.5], "H": [0], "V": ["7"], "prior_var": [0.0, -1.0, np.nan],
                  "dtype": [np.int32], "rng": ["x"]}),
    row(f"{_RC}.anchor_loss",
        lambda: {"decoders": _decoders(), "anchors": _decoders(), "data_noise": 0.1,
                 "prior_var": 1.0, "N": 100},
        keywords={"data_noise": [-1.0, np.nan], "prior_var": [0.0, -1.0], "N": [0, -1, 1.5]},
        cases=_bad_decoders() + [("anchors", "anchors-count", lambda kw: {
            **kw, "anchors": kw["anchors"][:1]})]),
    row(f"{_RC}.state_gradients",
        lambda: (lambda m, lg, st, c: {"model": m, "cache_t": c, "d_h_top": _f(B, _Hr)})(
            *_rc_step()),
        arrays={"d_h_top": F}, keywords={"model": [3], "cache_t": [3]}),
    row(f"{_RC}.top_hidden_from",
        lambda: (lambda m, lg, st, c: {"model": m, "cache_t": c, "layer": 0,
                                       "h": _f(B, _Hr)})(*_rc_step()),
        arrays={"h": F}, keywords={"layer": [-1, 1, 0.5]},
        cases=[("c", "h-and-c", lambda kw: {**kw, "c": _f(B, _Hr)})]),
    row(f"{_RC}.softplus", lambda: {"x": _f(B, _Hr)}, arrays={"x": ANY}),
    row(f"{_RC}.FixedStep", lambda: {"alpha": 0.1}, keywords={"alpha": [-0.1, np.nan, "0.1",
                                                                         None]}),
    row(f"{_RC}.LearnedStep", lambda: {"rng": 0},
        keywords={"theta_init": [np.nan, "0.5"], "rng": ["x"]}),
    row(f"{_RC}.MLPStep", lambda: {"hidden_size": _Hr, "layers": (3, 2), "rng": 0},
        keywords={"hidden_size": [0, -1, 1.5], "layers": [(3,), (0, 2), "32"],
                  "dtype": [np.int32], "rng": ["x"]}),
    row(f"{_RC}.recode",
        lambda: {"state": [(_f(B, _Hr), _f(B, _Hr))], "grads": [(_f(B, _Hr), _f(B, _Hr))],
                 "alphas": [(0.1, 0.1)]},
        keywords={"nan_policy": ["drop", 3]},
        cases=[("grads", "grads-shape", lambda kw: {**kw, "grads": [(_f(B, 3), _f(B, 3))]}),
               ("grads", "grads-count", lambda kw: {**kw, "grads": kw["grads"] * 2}),
               ("alphas", "alphas-shape", lambda kw: {**kw, "alphas": [(np.ones((3, 1)),
                                                                       0.1)]}),
               ("state", "state-int", lambda kw: {**kw, "state": [(np.ones((B, _Hr), int),
                                                                  np.ones((B, _Hr), int))]})]),
    row(f"{_RC}.RecodingLM", lambda: {"model": _rc_model()},
        keywords={"signal": ["loss", 3], "step": [-0.1, np.nan, "0.1"], "redecode": ["yes", 1],
                  "num_samples": [0, 1.5], "p_mc": [-0.1, 1.0], "nan_policy": ["drop"],
                  "average": ["mean"], "model": [3]}),
    row(f"{_RC}.recoding_loss_and_grad",
        lambda: {"model_or_recoder": _rc_recoder(), "batch": _rc_tokens(), "rng": 0},
        arrays={"batch": ids(_Vr)}, flags=("train", "gold_for_surprisal"),
        keywords={"model_or_recoder": [3], "rng": ["x"]},
        cases=[("batch", "batch-T1", lambda kw: {**kw, "batch": kw["batch"][:, :1]})]),
    row(f"{_RC}.train_lm",
        lambda: {"model_or_recoder": _rc_model(), "stream": np.arange(64) % _Vr, "epochs": 1,
                 "optimizer": resolve("refseq.train.SGD")(0.1), "bptt_len": 3,
                 "batch_size": 4, "rng": 0},
        arrays={"stream": ids(_Vr)},
        keywords={"epochs": [-1, 1.5, "1"], "bptt_len": [0, -1], "batch_size": [0, 100],
                  "clip": [-1.0, 0.0, np.nan], "optimizer": [None, 3], "rng": ["x"],
                  "model_or_recoder": [3]}),
    row(f"{_RC}.batchify", lambda: {"stream": np.arange(20) % _Vr, "batch_size": 4},
        arrays={"stream": ids(None)}, keywords={"batch_size": [0, -1, 1.5, 11]}),
    row(f"{_RC}.perplexity", lambda: {"model_or_recoder": _rc_model(), "tokens": _rc_tokens()},
        arrays={"tokens": ids(_Vr)}, flags=("gold_for_surprisal",),
        keywords={"model_or_recoder": [3]}),
    row(f"{_RC}.recoding_diagnostics",
        lambda: {"recoder": _rc_recoder(), "tokens": _rc_tokens()},
        arrays={"tokens": ids(_Vr)}, keywords={"recoder": [3, None]}),
]

# refseq.papers.rnn_review: Jordan network and the RNN language model
_J = dict(x=lambda: _f(B, T, _I), W_hx=lambda: _f(_H, _I), W_hc=lambda: _f(_H, 5),
          b_h=lambda: _f(_H), W_yh=lambda: _f(5, _H), b_y=lambda: _f(5))


def _jordan():
    return {k: v() for k, v in _J.items()}


def _jordan_backward():
    from refseq.papers.rnn_review import jordan_forward

    out = jordan_forward(**_jordan())
    h, logits, cache = out[0], out[1], out[-1]
    return {"dh": _f(*h.shape), "dlogits": _f(*logits.shape), "cache": cache}


def _rnnlm():
    return {"E": _f(5, _I), "layers": [_elman_layer()], "W_yh": _f(5, _H), "b_y": _f(5)}


TABLE += [
    row(f"{_RR}.jordan_forward", _jordan,
        arrays={"x": F, "W_hx": F, "W_hc": F, "b_h": F, "W_yh": F, "b_y": F},
        keywords={"alpha": [-0.1, 1.5, np.nan], "feedback": ["logits?", 3],
                  "activation": ["softsign"]},
        cases=[("y0", "y0-shape", lambda kw: {**kw, "y0": _f(B, 4)}),
               ("targets", "targets-out-of-range", lambda kw: {
                   **kw, "feedback": "targets", "targets": np.full((B, T), 9)})]),
    row(f"{_RR}.jordan_backward", _jordan_backward, arrays={"dh": F, "dlogits": F}),
    row(f"{_RR}.RNNLanguageModel", _rnnlm, arrays={"E": F, "W_yh": F, "b_y": F},
        keywords={"bos_id": [-1, 5, 1.5], "layers": [[], None]}),
]

# refseq.papers.rnn_sparsity (magnitude pruning; random-graph structured RNNs)
_SP = "refseq.papers.rnn_sparsity"
_EDGES = lambda: np.array([[0, 1], [1, 2], [2, 3], [0, 3], [1, 3]])  # noqa: E731
_DAG = lambda: np.array([[0, 1], [0, 2], [1, 3], [2, 3]])  # noqa: E731
_LAYERS = lambda: [[0], [1, 2], [3]]  # noqa: E731


def _sp_rnn():
    from refseq.papers.rnn_sparsity import PruneRNN

    return PruneRNN(3, [4], "RNN_TANH", _rng())


def _sp_model():
    from refseq.papers.rnn_sparsity import ReberClassifier

    return ReberClassifier(8, 3, _sp_rnn(), _rng())


def _sp_data(n=8):
    from refseq.tasks.reber import encode, reber_dataset

    strings, labels = reber_dataset(n, _rng())
    tokens, lengths = encode(strings, "reber7")
    return tokens, lengths, labels


def _bad_data(name):
    return [(name, f"{name}-lengths-mismatch", lambda kw: {**kw, name: (
                kw[name][0], kw[name][1][:-1], kw[name][2])}),
            (name, f"{name}-tokens-oob", lambda kw: {**kw, name: (
                kw[name][0] + 20, kw[name][1], kw[name][2])}),
            (name, f"{name}-labels-3", lambda kw: {**kw, name: (
                kw[name][0], kw[name][1], kw[name][2] + 2)}),
            (name, f"{name}-not-triple", lambda kw: {**kw, name: kw[name][0]})]


_MODE = {"mode": ["LSTM2", 3]}
_NEG_N = {"n": [-1, 2.5, "4"]}
TABLE += [
    row(f"{_SP}.MaskedRecurrentLayer", lambda: {"input_size": 3, "hidden_size": 4,
                                                 "mode": "GRU", "rng": _rng()},
        keywords={"input_size": [0, -1, 1.5], "hidden_size": [0, "4"], **_MODE,
                  "rng": ["x", -1], "dtype": [np.int32, np.float16]}),
    row(f"{_SP}.PruneRNN", lambda: {"input_size": 3, "hidden_layers": [4], "rng": _rng()},
        keywords={"input_size": [0, -1], "hidden_layers": [[], [0], [4.5], 4], **_MODE,
                  "rng": ["x"], "dtype": [np.int32]}),
    row(f"{_SP}.ArbitraryStructureRNN",
        lambda: {"input_size": 1, "layers": _LAYERS(), "directed_edges": _DAG(), "rng": _rng()},
        arrays={"directed_edges": ids(4)},
        keywords={"input_size": [0, -1], **_MODE, "mask_layout": ["nope", 3], "rng": ["x"],
                  "layers": [[], [[0], [0]]]},
        cases=[("directed_edges", "backward_edge", lambda kw: {
            **kw, "directed_edges": np.array([[3, 0]])})]),
    row(f"{_SP}.ReberClassifier", lambda: {"vocab_size": 8, "embed_dim": 3, "rnn": _sp_rnn(),
                                            "rng": _rng()},
        keywords={"vocab_size": [0, -1, 1.5], "embed_dim": [0, 4], "rnn": [None, 3],
                  "readout": ["first", 3], "rng": ["x"], "dtype": [np.int32]}),
    row(f"{_SP}.percentile_threshold", lambda: {"weights": _f(4, 3), "percent": 50.0},
        arrays={"weights": ANY}, keywords={"percent": [-1.0, 101.0, np.nan, "50"]},
        cases=[("weights", "weights-empty", lambda kw: {**kw, "weights": np.zeros(0)})]),
    row(f"{_SP}.magnitude_masks", lambda: {"model": _sp_model(), "percent": 50.0},
        flags=("i2h", "h2h"),
        keywords={"percent": [-1.0, 101.0, np.nan], "scope": ["local?", 3], "model": [3]}),
    row(f"{_SP}.apply_masks", lambda: {"model": _sp_model(), "masks": resolve(
        f"{_SP}.magnitude_masks")(_sp_model(), 50.0)},
        keywords={"model": [3]},
        cases=[("masks", "masks-unknown-name", lambda kw: {**kw, "masks": {"nope": np.ones(
            2, bool)}}),
               ("masks", "masks-shape", lambda kw: {**kw, "masks": {k: v[..., :1] for k, v in
                                                                   kw["masks"].items()}}),
               ("masks", "masks-float", lambda kw: {**kw, "masks": {
                   k: v.astype(np.float64) + 0.5 for k, v in kw["masks"].items()}})]),
    row(f"{_SP}.sparsity", lambda: {"model": _sp_model()}, flags=("i2h", "h2h"),
        keywords={"model": [3]}),
    row(f"{_SP}.barabasi_albert", lambda: {"n": 10, "m": 2, "rng": _rng()},
        flags=("use_networkx",), keywords={**_NEG_N, "m": [0, 10, -1, 1.5], "rng": ["x"]}),
    row(f"{_SP}.watts_strogatz", lambda: {"n": 10, "k": 4, "p": 0.5, "rng": _rng()},
        keywords={**_NEG_N, "k": [-2, 11, 2.5], "p": [-0.1, 1.5, np.nan], "rng": ["x"]}),
    row(f"{_SP}.connected_watts_strogatz",
        lambda: {"n": 10, "k": 4, "p": 0.5, "tries": 5, "rng": _rng()}, flags=("use_networkx",),
        keywords={**_NEG_N, "k": [-2, 11], "p": [-0.1, 1.5], "tries": [0, -1, 1.5],
                  "rng": ["x"]}),
    row(f"{_SP}.thesis_graph", lambda: {"generator": "ba", "rng": _rng()},
        flags=("use_networkx",), keywords={"generator": ["er", 3], "rng": ["x"]}),
    row(f"{_SP}.adjacency", lambda: {"n": 4, "edges": _EDGES()}, flags=("directed",),
        arrays={"edges": ids(4)}, keywords=_NEG_N),
    row(f"{_SP}.is_connected", lambda: {"n": 4, "edges": _EDGES()}, arrays={"edges": ids(4)},
        keywords=_NEG_N),
    row(f"{_SP}.orient_dag", lambda: {"n": 4, "undirected_edges": _EDGES()},
        arrays={"undirected_edges": ids(4)}, keywords=_NEG_N),
    row(f"{_SP}.layer_index", lambda: {"n": 4, "directed_edges": _DAG()},
        arrays={"directed_edges": ids(4)}, keywords=_NEG_N,
        cases=[("directed_edges", "cycle", lambda kw: {**kw, "directed_edges": np.array(
            [[0, 1], [1, 0]])})]),
    row(f"{_SP}.layer_connectivity", lambda: {"layers": _LAYERS(), "directed_edges": _DAG()},
        arrays={"directed_edges": ids(4)},
        keywords={"layers": [[[0], [0]], "0123", [[0.5]]]}),
    row(f"{_SP}.expand_gate_mask", lambda: {"E": np.ones((2, 3), np.int8), "gates": 4},
        keywords={"gates": [0, -1, 1.5], "layout": ["nope", 3]},
        cases=[("E", "E-ndim", lambda kw: {**kw, "E": np.ones(3, np.int8)}),
               ("E", "E-float", lambda kw: {**kw, "E": np.full((2, 3), 0.5)})]),
    row(f"{_SP}.graph_properties", lambda: {"n": 4, "undirected_edges": _EDGES()},
        arrays={"undirected_edges": ids(4)}, keywords=_NEG_N),
    row(f"{_SP}.structure_properties", lambda: {"layers": _LAYERS(), "directed_edges": _DAG()},
        arrays={"directed_edges": ids(4)}, keywords={"layers": [[], "0123", [[0.5]]]}),
    row(f"{_SP}.brandes", lambda: {"n": 4, "edges": _EDGES()}, arrays={"edges": ids(4)},
        keywords=_NEG_N),
    row(f"{_SP}.train_classifier", lambda: {"model": _sp_model(), "train": _sp_data(),
                                             "epochs": 1, "rng": _rng()},
        keywords={"epochs": [-1, 1.5, "1"], "lr": [-1.0, np.nan], "batch_size": [0, -1],
                  "clip": [-1.0, 0.0, np.nan], "rng": ["x"], "model": [3]},
        cases=_bad_data("train")),
    row(f"{_SP}.evaluate", lambda: {"model": _sp_model(), "data": _sp_data()},
        keywords={"batch_size": [0, -1, 1.5], "model": [3]}, cases=_bad_data("data")),
    row(f"{_SP}.prune_and_retrain",
        lambda: {"model": _sp_model(), "base_params": {k: v.copy() for k, v in
                                                       _sp_model().params().items()},
                 "train": _sp_data(), "test": _sp_data(), "percents": [50],
                 "groups": ("both",), "retrain_epochs": 1},
        keywords={"percents": [[-10], [150], ["50"]], "groups": [("all",), "both"],
                  "retrain_epochs": [-1, 1.5], "lr": [-1.0, np.nan], "batch_size": [0],
                  "clip": [-1.0], "scope": ["nope"], "seed": [-1, "x"]},
        cases=_bad_data("train") + [("base_params", "base_params-missing", lambda kw: {
            **kw, "base_params": {}})]),
    row(f"{_SP}.epochs_to_regain",
        lambda: {"table": [{"epoch": 0, "test_acc": 0.5}, {"epoch": 1, "test_acc": 0.9}],
                 "base_acc": 0.95, "tol": 0.1},
        keywords={"base_acc": [-0.1, 1.5, np.nan], "tol": [-0.1, np.nan, "0.1"],
                  "table": [3, [{"epoch": 1}]]}),
    row(f"{_SP}.random_structure_experiment",
        lambda: {"generator": "ba", "mode": "RNN_TANH", "n_graphs": 1, "train": _sp_data(),
                 "test": _sp_data(), "vocab_size": 8, "epochs": 1, "batch_size": 8},
        keywords={"generator": ["er"], **_MODE, "n_graphs": [-1, 1.5], "vocab_size": [0, 3],
                  "epochs": [-1], "batch_size": [0], "lr": [-1.0], "clip": [-1.0],
                  "mask_layout": ["nope"], "seed": [-1]},
        cases=_bad_data("train")),
    row(f"{_SP}.minmax_scale", lambda: {"X": _f(6, 3)}, arrays={"X": FEATURES}),
    row(f"{_SP}.pearson", lambda: {"x": _f(6), "y": _f(6) + 1}, arrays={"x": STATS, "y": STATS},
        cases=[("x", "x-constant", lambda kw: {**kw, "x": np.ones(6)}),
               ("x", "x-length-1", lambda kw: {"x": kw["x"][:1], "y": kw["y"][:1]})]),
    row(f"{_SP}.train_test_split", lambda: {"n": 10, "test_size": 0.2},
        keywords={"n": [-1, 2.5], "test_size": [0.0, 1.0, -0.1, np.nan, "0.2"],
                  "seed": [-1, "x"]}),
    row(f"{_SP}.bayesian_ridge", lambda: {"X": _f(8, 3), "y": _f(8)},
        arrays={"X": FEATURES, "y": STATS},
        keywords={"max_iter": [0, -1, 1.5], "tol": [-1.0, np.nan], "alpha_1": [-1.0],
                  "alpha_2": [np.nan], "lambda_1": [-1.0], "lambda_2": ["1e-6"]}),
    row(f"{_SP}.r2_score", lambda: {"y_true": _f(6), "y_pred": _f(6)},
        arrays={"y_true": STATS, "y_pred": STATS},
        cases=[("y_true", "y_true-constant", lambda kw: {**kw, "y_true": np.ones(6)})]),
    row(f"{_SP}.fit_predict_r2", lambda: {"X": _f(20, 3), "y": _f(20)},
        arrays={"X": FEATURES, "y": STATS},
        keywords={"regressor": ["lasso", 3], "test_size": [0.0, 1.0, np.nan],
                  "seed": [-1, "x"]}),
]

# --- refseq.decoding.speculative.tree (SECTION-TREE) ---
_ST = "refseq.decoding.speculative.tree"
_SB = "refseq.decoding.speculative.buffers"
_TREE_P, _TREE_T = np.array([-1, 0, 0, 1]), np.array([3, 1, 2, 0])


def _st_tree():
    return resolve(f"{_ST}.DraftTree")(_TREE_P, _TREE_T)


def _st_batch():
    tree = resolve(f"{_ST}.DraftTree")
    batch = resolve("refseq.decoding.speculative.batch.TreeBatch")
    b = batch.from_trees([_st_tree(), tree.chain(1, np.array([2]))])
    return {"parents": np.array(b.parents), "tokens": np.array(b.tokens),
            "num_nodes": np.array(b.num_nodes)}


def _st_medusa():
    return {"buffers": resolve(f"{_SB}.medusa_buffers")([[0], [1], [0, 0]], 2),
            "candidates": np.arange(5)}


_ST_TREE = {"tree": [3, None, _TREE_P]}
_ST_NPAST = {"n_past": [-1, 1.5, "2", None]}
TABLE += [
    # (SECTION-TREE) rows go here; exclusions go to EXCLUDED with their reason
    row(f"{_ST}.DraftTree", lambda: {"parents": _TREE_P, "tokens": _TREE_T},
        arrays={"parents": ids(4, low=-1), "tokens": ids()},
        cases=[("parents", "not-topological", lambda kw: {**kw, "parents": np.array(
                   [-1, 0, 3, 1])}),
               ("parents", "root-not-minus-1", lambda kw: {**kw, "parents": np.array(
                   [0, 0, 0, 1])}),
               ("tokens", "tokens-length", lambda kw: {**kw, "tokens": _TREE_T[:3]}),
               ("virtual", "virtual-int", lambda kw: {**kw, "virtual": np.zeros(4, int)}),
               ("virtual", "virtual-not-duplicate", lambda kw: {
                   **kw, "virtual": np.array([0, 0, 1, 0], bool)}),
               ("parents", "empty", lambda kw: {"parents": np.zeros(0, int),
                                                "tokens": np.zeros(0, int)})]),
    row("refseq.decoding.speculative.batch.TreeBatch", _st_batch,
        arrays={"parents": ids(4, low=-2), "tokens": ids(low=-1), "num_nodes": ids(5, low=1)},
        cases=[("tokens", "tokens-shape", lambda kw: {**kw, "tokens": kw["tokens"][:, :3]}),
               ("parents", "padding-parent", lambda kw: {**kw, "parents": np.where(
                   kw["parents"] == -2, 0, kw["parents"])}),
               ("virtual", "virtual-shape", lambda kw: {**kw, "virtual": np.zeros(4, bool)})]),
    row(f"{_SB}.ancestor_mask", lambda: {"tree": _st_tree()}, keywords=_ST_TREE),
    row(f"{_SB}.attention_mask", lambda: {"tree": _st_tree(), "n_past": 2},
        keywords={**_ST_TREE, **_ST_NPAST}),
    row(f"{_SB}.position_ids", lambda: {"tree": _st_tree(), "n_past": 2},
        keywords={**_ST_TREE, **_ST_NPAST}),
    row(f"{_SB}.retrieve_paths", lambda: {"tree": _st_tree()}, keywords=_ST_TREE),
    row(f"{_ST}.dfs_permutation", lambda: {"tree": _st_tree()}, keywords=_ST_TREE),
    row(f"{_ST}.permute", lambda: {"tree": _st_tree(), "perm": np.array([0, 2, 1, 3])},
        arrays={"perm": ids(4)}, keywords=_ST_TREE,
        cases=[("perm", "perm-repeat", lambda kw: {**kw, "perm": np.array([0, 1, 1, 3])}),
               ("perm", "perm-child-first", lambda kw: {**kw, "perm": np.array([0, 3, 1, 2])}),
               ("perm", "perm-length", lambda kw: {**kw, "perm": np.array([0, 1, 2])})]),
    row(f"{_SB}.medusa_buffers", lambda: {"choices": [[0], [1], [0, 0]], "topk": 2},
        keywords={"topk": [0, 1.5, "2", None],
                  "choices": [[], "x", [[0, 1]], [[0], [0]], [[2]], [[-1]], [[0.5]], [3]]}),
    row(f"{_SB}.tree_from_medusa_buffers", _st_medusa, arrays={"candidates": ids()},
        keywords={"buffers": [3, {}, None]},
        cases=[("candidates", "candidates-short", lambda kw: {**kw, "candidates": np.arange(2)}),
               ("buffers", "buffers-not-a-tree", lambda kw: {**kw, "buffers": {
                   **kw["buffers"], "medusa_position_ids": np.array([0, 1, 1, 1])}})]),
    row(f"{_ST}.nonzero_blocks", lambda: {"mask": np.eye(5, dtype=bool), "block": 2},
        arrays={"mask": frozenset({"ndim", "float", "two"})},
        keywords={"block": [0, -1, 1.5, "2", None]}),
]

# --- refseq.decoding.speculative.verify and .exact (SECTION-VERIFY) ---
_SV = "refseq.decoding.speculative.verify"
_SX = "refseq.decoding.speculative.exact"
_SV_P, _SV_T = np.array([-1, 0, 0, 1]), np.array([2, 1, 0, 1])


def _sv_tree():
    return resolve("refseq.decoding.speculative.tree.DraftTree")(_SV_P, _SV_T)


def _sv_probs(n, V=3):
    return np.random.default_rng(0).dirichlet(np.ones(V), size=n)  # (n, V)


def _sv_stochastic():
    return {"tree": _sv_tree(), "target_probs": _sv_probs(4), "draft_probs": _sv_probs(4),
            "mode": "iid", "u_accept": np.full(4, 0.5), "u_final": 0.5}


def _sv_fn(pre):
    return np.array([0.5, 0.3, 0.2])


def _sv_emission():
    return {(0,): 0.5, (1, 2): 0.5}


def _sv_not_probs(name, rows=True):
    """A negative entry and a row that does not sum to 1 (NaN is covered by check_finite)."""
    def negative(kw):
        x = np.array(kw[name], dtype=np.float64)
        x.flat[0] = -0.1
        return {**kw, name: x}

    def unnormalised(kw):
        return {**kw, name: np.array(kw[name], dtype=np.float64) * 2}

    def nan(kw):
        x = np.array(kw[name], dtype=np.float64)
        x.flat[0] = np.nan
        return {**kw, name: x}

    return [(name, f"{name}-negative", negative), (name, f"{name}-unnormalised", unnormalised),
            (name, f"{name}-nan", nan)]


_SV_TREE = {"tree": [3, None, _SV_P]}
_SV_U = {"u_final": [-0.1, 1.0, np.nan, "0.5"]}
_SV_MODE = {"mode": ["nope", 3, "typical"]}
_SV_EMISSION = [("emission", "emission-list", lambda kw: {**kw, "emission": [((0,), 1.0)]}),
                ("emission", "emission-negative", lambda kw: {**kw, "emission": {(0,): -1.0}}),
                ("emission", "emission-key", lambda kw: {**kw, "emission": {0: 1.0}})]
TABLE += [
    # (SECTION-VERIFY) rows go here; exclusions go to EXCLUDED with their reason
    row("refseq.decoding.speculative.greedy.verify_greedy_tree",
        lambda: {"tree": _sv_tree(), "target_argmax": np.array([1, 1, 0, 2])},
        arrays={"target_argmax": ids()}, keywords=_SV_TREE,
        cases=[("target_argmax", "target_argmax-length", lambda kw: {
            **kw, "target_argmax": kw["target_argmax"][:-1]})]),
    row("refseq.decoding.speculative.greedy.verify_greedy_paths",
        lambda: {"retrieve": np.array([[0, 2, -1], [0, 1, 3]]), "retrieve_len": np.array([2, 3]),
                 "node_token": _SV_T, "node_argmax": np.array([1, 1, 0, 2])},
        arrays={"retrieve": ids(4, low=0, kinds=("ndim", "float", "high")),
                "retrieve_len": ids(4, low=1), "node_token": ids(), "node_argmax": ids()},
        cases=[("retrieve", "retrieve-negative-inside", lambda kw: {
            **kw, "retrieve": np.array([[0, -1, -1], [0, 1, 3]])}),
               ("node_argmax", "node_argmax-length", lambda kw: {
                   **kw, "node_argmax": kw["node_argmax"][:-1]}),
               ("retrieve", "retrieve-empty", lambda kw: {
                   **kw, "retrieve": np.zeros((0, 3), np.int64),
                   "retrieve_len": np.zeros(0, np.int64)})]),
    row("refseq.decoding.speculative.greedy.verify_greedy_chain",
        lambda: {"draft": np.array([1, 2]), "target_argmax": np.array([1, 0, 2])},
        arrays={"draft": ids(), "target_argmax": ids()},
        cases=[("target_argmax", "target_argmax-length", lambda kw: {
            **kw, "target_argmax": kw["target_argmax"][:-1]})]),
    row(f"{_SV}.residual", lambda: {"p": _sv_probs(1)[0], "q": _sv_probs(2)[1]},
        arrays={"p": F, "q": F}, cases=_sv_not_probs("p") + _sv_not_probs("q")),
    row(f"{_SV}.speculative_sample_chain",
        lambda: {"draft_tokens": np.array([1, 2]), "draft_probs": _sv_probs(2),
                 "target_probs": _sv_probs(3), "u_accept": np.array([0.2, 0.9]),
                 "u_final": 0.5},
        arrays={"draft_tokens": ids(3), "draft_probs": F, "target_probs": F, "u_accept": F},
        keywords=_SV_U,
        cases=_sv_not_probs("target_probs") + _sv_not_probs("draft_probs")
        + [("u_accept", "u_accept-one", lambda kw: {**kw, "u_accept": np.ones(2)})]),
    row(f"{_SV}.verify_tree_stochastic", _sv_stochastic, flags=("bonus",),
        arrays={"target_probs": F, "draft_probs": F, "u_accept": F},
        keywords={**_SV_TREE, **_SV_U, **_SV_MODE},
        cases=_sv_not_probs("target_probs") + _sv_not_probs("draft_probs")
        + [("u_accept", "u_accept-negative", lambda kw: {**kw, "u_accept": -kw["u_accept"]}),
           ("draft_probs", "draft_probs-none", lambda kw: {**kw, "draft_probs": None}),
           ("child_draft_probs", "child_draft_probs-wor", lambda kw: {
               **kw, "mode": "wor", "child_draft_probs": kw["draft_probs"]}),
           ("target_probs", "target_probs-token-out-of-vocab", lambda kw: {
               **kw, "target_probs": kw["target_probs"][:, :2] / kw["target_probs"][:, :2].sum(
                   1, keepdims=True), "draft_probs": kw["draft_probs"][:, :2] / kw[
                   "draft_probs"][:, :2].sum(1, keepdims=True)})]),
    row(f"{_SV}.verify_multidraft",
        lambda: {"root_probs_target": _sv_probs(1)[0], "draft_probs": _sv_probs(2)[1],
                 "candidates": np.array([0, 2]), "mode": "wor", "u_accept": np.array([0.3, 0.6]),
                 "u_final": 0.5},
        arrays={"root_probs_target": F, "draft_probs": F, "candidates": ids(3), "u_accept": F},
        keywords={**_SV_U, **_SV_MODE},
        cases=_sv_not_probs("root_probs_target") + [
            ("candidates", "candidates-empty", lambda kw: {
                **kw, "candidates": np.zeros(0, np.int64), "u_accept": np.zeros(0)})]),
    row(f"{_SV}.verify",
        lambda: {"tree": _sv_tree(), "target_logits": _f(4, 3), "draft_probs": _sv_probs(4),
                 "temperature": 0.8, "mode": "iid", "rng": 0},
        arrays={"target_logits": F, "draft_probs": F},
        keywords={**_SV_TREE, **_SV_MODE, "temperature": [-1.0, np.nan, "1"],
                  "top_k": [1.5, "2"], "top_p": [0.0, 1.5], "rng": ["x", -1]},
        cases=_sv_not_probs("draft_probs")[:2]),
    row(f"{_SV}.typical_acceptance",
        lambda: {"target_probs": _sv_probs(4), "tree": _sv_tree()},
        arrays={"target_probs": F},
        keywords={**_SV_TREE, "posterior_threshold": [0.0, -1.0, np.nan, "0.09"],
                  "posterior_alpha": [0.0, np.nan], "u_final": [1.0, -0.1, "0.5"]},
        cases=_sv_not_probs("target_probs")),
    row(f"{_SX}.step_emission_distribution",
        lambda: {k: v for k, v in _sv_stochastic().items() if not k.startswith("u_")},
        flags=("bonus",),
        arrays={"target_probs": F, "draft_probs": F},
        keywords={**_SV_TREE, "mode": ["nope", 3]},
        cases=_sv_not_probs("target_probs")),
    row(f"{_SX}.enumerate_sampled_trees",
        lambda: {"branching": (2, 1), "draft_fn": _sv_fn, "ctx": np.array([0, 1]), "mode": "wor"},
        flags=("virtual",), arrays={"ctx": ids()},
        keywords={"branching": [(), (0,), "2", (1.5,), (8, 8, 8)], "draft_fn": [3, None],
                  "mode": ["point", 3]},
        cases=[("ctx", "ctx-empty", lambda kw: {**kw, "ctx": np.zeros(0, np.int64)}),
               ("virtual", "virtual-wor", lambda kw: {**kw, "virtual": True}),
               ("draft_fn", "draft_fn-unnormalised", lambda kw: {
                   **kw, "draft_fn": lambda pre: np.ones(3)})]),
    row(f"{_SX}.mixture_emission",
        lambda: {"trees_with_probs": resolve(f"{_SX}.enumerate_sampled_trees")(
            (2,), _sv_fn, (0, 1), "iid"), "target_fn": _sv_fn, "draft_fn": _sv_fn,
            "ctx": np.array([0, 1]), "mode": "iid"},
        flags=("bonus",), arrays={"ctx": ids()},
        keywords={"target_fn": [3], "draft_fn": [3], "mode": ["nope", 3],
                  "trees_with_probs": [[], 3, [(1, 2, 3)]]}),
    row(f"{_SX}.lossless_error",
        lambda: {"emission": _sv_emission(), "target_fn": _sv_fn, "ctx": np.array([0, 1]),
                 "V": 3, "max_len": 2},
        arrays={"ctx": ids()},
        keywords={"target_fn": [3], "V": [0, 1.5, "3"], "max_len": [0, 1.5, 40]},
        cases=_SV_EMISSION),
    row(f"{_SX}.expected_emitted", lambda: {"emission": _sv_emission()}, cases=_SV_EMISSION),
]

# --- refseq.decoding.speculative.target, .kv and .engine (SECTION-ENGINE) ---
_SPEC = "refseq.decoding.speculative"


def _spec_target():
    from refseq.decoding.speculative.target import TinyTransformerTreeLM

    return TinyTransformerTreeLM(_tiny_params())


def _spec_generate():
    from refseq.decoding.speculative.drafters import RandomDrafter

    return {"target": _spec_target(), "drafter": RandomDrafter(7, 3, rng=0),
            "prompt": np.array([1, 2]), "max_new_tokens": 3}


def _spec_generate_batch():
    from refseq.decoding.speculative.drafters import RandomDrafter

    return {"target": _spec_batched_target(), "drafters": [RandomDrafter(7, 3, rng=0),
                                                            RandomDrafter(7, 3, rng=1)],
            "prompts": [np.array([1, 2]), np.array([3])], "max_new_tokens": 3,
            "temperature": 1.0, "rngs": [0, 1]}


def _spec_batched_target():
    from refseq.decoding.speculative.target import BatchedTreeLM

    return BatchedTreeLM(_tiny_params())


def _spec_prompts(first):
    return [first, np.array([1])]


TABLE += [
    # (SECTION-ENGINE) rows go here; exclusions go to EXCLUDED with their reason
    row(f"{_SPEC}.batched.speculative_generate_batch", _spec_generate_batch,
        keywords={"max_new_tokens": [-1, 1.5], "temperature": [-1.0, np.nan, "0"],
                  "top_k": [-1, 1.5], "top_p": [0.0, 1.5], "mode": ["greedy", 3],
                  "eos_id": [7, -1], "rngs": [3, [0], ["x", 0], [-1, 0]],
                  "max_steps": [0, 1.5], "target": [3, None], "drafters": [3, None, [], [3, 3]],
                  "backend": ["gpu", 3], "before_draft": [3, "f"],
                  "prompts": ["x", [], None, _spec_prompts(np.array([1.5])),
                              _spec_prompts(np.array([7])), _spec_prompts(np.array([-1])),
                              _spec_prompts(np.zeros((1, 1), np.int64)),
                              _spec_prompts(np.zeros(0, np.int64))]},
        cases=[("drafters", "drafters-repeated",
                lambda kw: {**kw, "drafters": [kw["drafters"][0]] * 2})]),
    row(f"{_SPEC}.batched.RowsTreeLM", lambda: {"targets": [_spec_target(), _spec_target()]},
        keywords={"targets": [3, None, [], [3]]},
        cases=[("targets", "targets-repeated",
                lambda kw: {**kw, "targets": [kw["targets"][0]] * 2})]),
    row(f"{_SPEC}.kv.commit_path",
        lambda: {"cache": _f(1, 2, 1, 6, 2), "n_past": 2, "path": np.array([0, 1])},
        arrays={"cache": ANY, "path": ids(kinds=("ndim", "float", "low"))},
        keywords={"n_past": [-1, 1.5, 7]},
        cases=[("path", "path-not-root", lambda kw: {**kw, "path": np.array([1, 2])}),
               ("path", "path-past-cache", lambda kw: {**kw, "path": np.array([0, 4])})]),
    row(f"{_SPEC}.target.TinyTransformerTreeLM", lambda: {"params": _tiny_params()},
        keywords={"params": [3, None]}),
    row(f"{_SPEC}.target.BatchedTreeLM", lambda: {"params": _tiny_params()},
        keywords={"params": [3, None]}),
    row(f"{_SPEC}.target.TabularTreeLM", lambda: {"lm": _markov()}, keywords={"lm": [3, None]}),
    row(f"{_SPEC}.engine.speculative_generate", _spec_generate,
        arrays={"prompt": ids(high=7)},
        keywords={"max_new_tokens": [-1, 1.5], "temperature": [-1.0, np.nan, "0"],
                  "top_k": [-1, 1.5], "top_p": [0.0, 1.5], "mode": ["greedy", 3],
                  "eos_id": [7, -1], "rng": [-1, "x"], "max_steps": [0, 1.5],
                  "target": [3, None], "drafter": [3, None], "verify": [3, "f"]}),
    row(f"{_SPEC}.engine.plain_greedy",
        lambda: {"target": _spec_target(), "prompt": np.array([1, 2]), "n": 3},
        arrays={"prompt": ids(high=7)},
        keywords={"n": [-1, 1.5], "eos_id": [7, -1], "target": [3, None]}),
    row(f"{_SPEC}.engine.plain_sample",
        lambda: {"target": _spec_target(), "prompt": np.array([1, 2]), "n": 3, "rng": 0},
        arrays={"prompt": ids(high=7)},
        keywords={"n": [-1, 1.5], "eos_id": [7], "target": [3], "rng": [-1, "x"],
                  "temperature": [0.0, -1.0], "top_k": [-1], "top_p": [0.0, 2.0]}),
    row(f"{_SPEC}.drafters.ChainDrafter", lambda: {"lm": _markov(), "k": 2},
        keywords={"lm": [3, None], "k": [-1, 1.5], "temperature": [-1.0, np.nan],
                  "rng": [-1, "x"]}),
    row(f"{_SPEC}.drafters.SampledTreeDrafter", lambda: {"lm": _markov(), "branching": (2, 1)},
        flags=("virtual_duplicates",),
        keywords={"lm": [3], "branching": [(), (0,), 3, (1.5,)], "mode": ["point", 3],
                  "temperature": [0.0, -1.0], "rng": [-1]},
        cases=[(("mode", "virtual_duplicates"), "virtual-wor", lambda kw: {
            **kw, "mode": "wor", "virtual_duplicates": True})]),
    row(f"{_SPEC}.drafters.RandomDrafter", lambda: {"vocab_size": 4, "max_nodes": 3},
        keywords={"vocab_size": [0, 1.5], "max_nodes": [0, 2.0], "rng": [-1]}),
    row(f"{_SPEC}.drafters.OracleDrafter", lambda: {"continuation": np.array([1, 2]), "k": 2},
        arrays={"continuation": ids(kinds=("ndim", "float", "low"))},
        keywords={"k": [-1, 1.5], "decoys": [-1, 1.5], "vocab_size": [0, 1.5]},
        cases=[(("decoys", "vocab_size"), "decoys-no-vocab", lambda kw: {**kw, "decoys": 2})]),
    row(f"{_SPEC}.drafters.AlwaysWrongDrafter",
        lambda: {"continuation": np.array([1, 2]), "vocab_size": 4},
        arrays={"continuation": ids(kinds=("ndim", "float", "low"))},
        keywords={"vocab_size": [1, 1.5], "width": [0, 4], "depth": [0], "rng": [-1]}),
    row(f"{_SPEC}.toy_result.toy_models", lambda: {"V": 3},
        keywords={"V": [0, 1.5], "scale": [np.nan, "1"], "noise": [-1.0, np.nan]}),
    row(f"{_SPEC}.toy_result.run_small_result",
        lambda: {"steps": 2, "episode": 2, "greedy_checks": 0, "verbose": False},
        flags=("verbose",),
        keywords={"steps": [0, 1.5], "episode": [0], "seed": [-1], "greedy_checks": [-1]}),
]

# --- refseq.tree_verify and its jit/cuda twins (SECTION-HOTPATH) ---
_TV_TOK = np.array([[1, 0, 2, 1, -1], [1, 1, 1, 1, 1]], np.int32)


def _tv_batch():
    return {"parents": np.array([[-1, 0, 0, 1, -2], [-1, 0, 1, 2, 3]], np.int32),
            "num_nodes": np.array([4, 5], np.int32)}


def _tv_stochastic():
    r = _rng()
    p = r.dirichlet(np.ones(3), (2, 5))
    return dict(_tv_batch(), tokens=_TV_TOK, target_probs=p, draft_probs=p[:, ::-1].copy(),
                mode=0, virtual=None, u_accept=r.random((2, 5)), u_final=r.random(2))


TABLE += [
    # (SECTION-HOTPATH) rows go here; exclusions go to EXCLUDED with their reason
    row("refseq.tree_verify.tree_masks", lambda: dict(_tv_batch(), n_past=np.array([0, 3])),
        arrays={"parents": ids(low=-2, kinds=("ndim", "float", "low")),
                "num_nodes": ids(high=6, low=1), "n_past": ids()},
        keywords={"backend": ["gpu", 3]},
        cases=[("parents", "parents-not-topological",
                lambda kw: {**kw, "parents": np.array([[-1, 2, 0, 1, -2], [-1, 0, 1, 1, 0]])})]),
    row("refseq.tree_verify.tree_verify_greedy",
        lambda: dict(_tv_batch(), tokens=_TV_TOK, target_argmax=np.ones((2, 5), np.int32)),
        arrays={"tokens": ids(low=-1, kinds=("ndim", "float", "low")),
                "target_argmax": ids(kinds=("ndim", "float")), "num_nodes": ids(high=6, low=1)},
        keywords={"backend": ["gpu", 3]},
        cases=[("tokens", "padding-token", lambda kw: {**kw, "tokens": _set(_TV_TOK, 4, 0)})]),
    row("refseq.tree_verify.tree_verify_greedy_paths",
        lambda: dict(retrieve=np.array([[[0, 1, 3], [0, 2, -1]], [[0, 1, 2], [-1, -1, -1]]]),
                     retrieve_len=np.array([[3, 2], [3, 0]]), node_token=_TV_TOK,
                     node_argmax=np.ones((2, 5), np.int32)),
        arrays={"retrieve": ids(high=5, low=-1, kinds=("ndim", "float", "low", "high")),
                "retrieve_len": ids(high=4, kinds=("ndim", "float", "low", "high")),
                "node_token": ids(low=-1, kinds=("ndim", "float", "low")),
                "node_argmax": ids(low=-1, kinds=("ndim", "float", "low"))},
        keywords={"backend": ["gpu", 3]}),
    row("refseq.tree_verify.tree_verify_stochastic", _tv_stochastic,
        arrays={"target_probs": F, "draft_probs": F, "u_accept": F - {"int32", "bool"},
                "u_final": F - {"int32", "bool"},
                "tokens": ids(low=-1, kinds=("ndim", "float", "low")),
                "num_nodes": ids(high=6, low=1)},
        keywords={"mode": [3, "greedy", 1.5], "backend": ["gpu", 3]},
        cases=[("u_accept", "u-one", lambda kw: {**kw, "u_accept": np.ones((2, 5))}),
               ("target_probs", "logits",
                lambda kw: {**kw, "target_probs": kw["target_probs"] * 2}),
               ("draft_probs", "missing", lambda kw: {**kw, "draft_probs": None}),
               ("virtual", "virtual-in-wor",
                lambda kw: {**kw, "mode": 1, "virtual": np.eye(5, dtype=bool)[[4, 4]] * 0
                            + np.array([[0, 0, 0, 1, 0], [0] * 5], bool)})]),
    row("refseq.tree_verify.kv_commit",
        lambda: dict(cache=_f(2, 1, 2, 2, 8, 3), n_past=np.array([0, 2]),
                     path=np.array([[0, 1, 3], [0, 2, -1]]), num_accepted=np.array([2, 1])),
        arrays={"cache": FREE, "n_past": ids(high=8), "num_accepted": ids(high=3)},
        keywords={"backend": ["gpu", 3]},
        cases=[("path", "path-decreasing",
                lambda kw: {**kw, "path": np.array([[0, 0, 3], [0, 2, -1]])}),
               ("cache", "cache-list", lambda kw: {**kw, "cache": kw["cache"].tolist()})]),
]

# --- refseq.papers.token_recycling (SECTION-TR) ---
# (SECTION-TR) rows and helpers go here (TABLE += [...]); exclusions in EXCLUDED_TR
_TR = "refseq.papers.token_recycling"
_TR_TEMPLATE = [(0,), (1,), (0, 0)]  # 3 drafts over k = 2 ranks: N = 4 nodes


def _tr_state(V=4):
    s = resolve(f"{_TR}.TokenRecyclingState")(V, 2)
    return s.set_matrix(np.array([[1, 2], [2, 3], [3, 0], [0, 1]] + [[0, 1]] * (V - 4)))


def _tr_buf(k=2):
    return resolve(f"{_TR}.template_buffers")(_TR_TEMPLATE, k)


def _tr_target():
    return resolve(f"{_TR}.toy.order2_target")(4)  # V = 4


def _tr_retrieve():
    return {"state": _tr_state(), "root": 1, "buf": _tr_buf()}


def _tr_update(batch=False):
    if batch:
        return {"state": _tr_state(), "tokens": np.array([[1, 2, 3, 2], [0, 1, 1, 3]]),
                "logits": _f(2, 4, 4)}
    return {"state": _tr_state(), "tokens": np.array([1, 2, 3, 2]), "logits": _f(4, 4)}


def _tr_verify():
    buf = _tr_buf()
    return {"tree": buf.tree(np.array([1, 2, 3, 3])), "logits": _f(4, 4), "buf": buf}


def _tr_generate():
    return {"target": _tr_target(), "prompt": np.array([1, 2]), "max_new_tokens": 3,
            "state": _tr_state(), "template": _TR_TEMPLATE}


def _tr_nonfinite(name="logits"):
    """NaN and +inf logits (-inf is a banned token, allowed)."""
    return [(name, f"{name}-{v}", lambda kw, v=v: {**kw, name: _set(kw[name], 0, v)})
            for v in (np.nan, np.inf)]


def _tr_other(name, make):
    return [(name, f"{name}-{label}", lambda kw, m=m: {**kw, name: m()}) for label, m in make]


_TR_STATE = {"state": [3, None, np.zeros((4, 2), np.int64)]}
_TR_BUF = {"buf": [3, None, _TR_TEMPLATE]}
_TR_ROOT = {"root": [-1, 4, 1.5, "1", None, True]}
_TR_BUF_K = _tr_other("buf", [("k-above-state", lambda: _tr_buf(3))])
_TR_STATE_V = _tr_other("state", [("vocab-mismatch", lambda: _tr_state(5))])
_TR_TEMPLATES = [[], "x", None, [3], [()], [(0,), (0,)], [(1,), (0,)], [(0, 0)], [(2,)],
                 [(-1,)], [(0.5,)]]
_TR_TOY = {"V": [0, 1.5, "3", None], "s1": [np.nan, np.inf, "1", None], "s2": [np.nan, "0.6"],
           "seed": [-1, 1.5, None]}
TABLE += [
    row(f"{_TR}.TokenRecyclingState", lambda: {"vocab_size": 4, "k": 2},
        keywords={"vocab_size": [0, -1, 1.5, "4", None, True], "k": [0, 5, 1.5, "2", None],
                  "dtype": [np.float32, np.bool_, "nope", None]},
        cases=[("dtype", "dtype-too-small", lambda kw: {"vocab_size": 300, "k": 2,
                                                          "dtype": np.int8})]),
    row(f"{_TR}.TokenRecyclingDrafter", lambda: {"state": _tr_state(), "template": _TR_TEMPLATE},
        flags=("cold_start",),
        keywords={**_TR_STATE, "template": _TR_TEMPLATES[:2] + _TR_TEMPLATES[3:],
                  "update_rule": ["middle", 3, None]}),
    row(f"{_TR}.candidate_tokens", lambda: {"logits": _f(3, 4), "k": 2},
        arrays={"logits": FREE}, keywords={"k": [0, 5, 1.5, "2", None]},
        cases=_tr_nonfinite() + [("logits", "logits-no-vocab", lambda kw: {
            **kw, "logits": np.zeros((3, 0))})]),
    row(f"{_TR}.update.winner_nodes", lambda: {"tokens": np.array([1, 2, 1, 0])},
        arrays={"tokens": ids()}, keywords={"rule": ["middle", 3, None]}),
    row(f"{_TR}.update_matrix", _tr_update, arrays={"tokens": ids(4), "logits": F},
        keywords={**_TR_STATE, "rule": ["middle", 3, None]},
        cases=_tr_nonfinite() + [(("tokens", "logits"), "tokens-length", lambda kw: {
            **kw, "tokens": kw["tokens"][:3]})]),
    row(f"{_TR}.update_matrix_batch", lambda: _tr_update(batch=True),
        arrays={"tokens": ids(4), "logits": F},
        keywords={**_TR_STATE, "rule": ["middle", 3, None]},
        cases=_tr_nonfinite() + [(("tokens", "logits"), "tokens-length", lambda kw: {
            **kw, "tokens": kw["tokens"][:, :3]})]),
    row(f"{_TR}.kernels.update_matrix_numba", _tr_update,
        arrays={"tokens": ids(4), "logits": F}, keywords=_TR_STATE,
        cases=_tr_nonfinite() + [(("tokens", "logits"), "tokens-length", lambda kw: {
            **kw, "tokens": kw["tokens"][:3]})]),
    row(f"{_TR}.retrieve_tokens", _tr_retrieve, keywords={**_TR_STATE, **_TR_ROOT, **_TR_BUF},
        cases=_TR_BUF_K),
    row(f"{_TR}.retrieve_tree", _tr_retrieve, keywords={**_TR_STATE, **_TR_ROOT, **_TR_BUF},
        cases=_TR_BUF_K),
    row(f"{_TR}.kernels.retrieve_tree_numba", _tr_retrieve,
        keywords={**_TR_STATE, **_TR_ROOT, **_TR_BUF}, cases=_TR_BUF_K),
    row(f"{_TR}.retrieve_tree_batch",
        lambda: {"state": _tr_state(), "roots": np.array([1, 3]), "buf": _tr_buf()},
        arrays={"roots": ids(4)}, keywords={**_TR_STATE, **_TR_BUF}, cases=_TR_BUF_K),
    row(f"{_TR}.verify_step", _tr_verify, arrays={"logits": FREE},
        keywords={"tree": [3, None, np.array([1, 2, 3, 3])], **_TR_BUF,
                  "verify": ["beam", 3, None], "backend": ["gpu", 3, None]},
        cases=_tr_nonfinite() + [
            ("logits", "logits-rows", lambda kw: {**kw, "logits": kw["logits"][:3]}),
            ("tree", "tree-other-template", lambda kw: {**kw, "tree": resolve(
                "refseq.decoding.speculative.tree.DraftTree").chain(1, np.array([2, 3, 0]))}),
            ("tree", "tree-other-size", lambda kw: {**kw, "tree": resolve(
                "refseq.decoding.speculative.tree.DraftTree").chain(1, np.array([2]))})]),
    row(f"{_TR}.seed_matrix_from_prompt",
        lambda: {"state": _tr_state(), "target": _tr_target(), "prompt": np.array([1, 2, 1])},
        arrays={"prompt": ids(4)},
        keywords={**_TR_STATE, "target": [3, None], "rule": ["middle", 3, None]},
        cases=_TR_STATE_V + [("prompt", "prompt-empty", lambda kw: {
            **kw, "prompt": np.zeros(0, np.int64)})]),
    row(f"{_TR}.token_recycling_generate", _tr_generate, arrays={"prompt": ids(4)},
        flags=("seed_from_prompt", "update_on_eos"),
        keywords={"target": [3, None], **_TR_STATE, "max_new_tokens": [-1, 1.5, "3", None],
                  "eos_id": [4, -1, 1.5], "temperature": [-1.0, np.nan, "0"],
                  "top_k": [-1, 1.5], "top_p": [0.0, 1.5, np.nan], "rng": [-1, "x"],
                  "update_rule": ["middle", 3], "verify": ["beam", 3], "backend": ["gpu", 3],
                  "update_scope": ["leaves", 3], "template": [[], "x", [(2,)], [(0, 0)]],
                  "buffers": [3, "x", _TR_TEMPLATE]},
        cases=_TR_STATE_V + _tr_other("buffers", [("k-above-state", lambda: _tr_buf(3))])
        + [("prompt", "prompt-empty", lambda kw: {**kw, "prompt": np.zeros(0, np.int64)})]),
    row(f"{_TR}.template_buffers", lambda: {"template": _TR_TEMPLATE, "k": 2},
        keywords={"template": _TR_TEMPLATES, "k": [0, 1.5, "2", None]}),
    row(f"{_TR}.template_chain", lambda: {"depth": 2},
        keywords={"depth": [0, -1, 1.5, "2", None, True]}),
    row(f"{_TR}.template_from_layer_counts", lambda: {"counts_per_depth": [2, 1], "k": 2},
        keywords={"counts_per_depth": [[], 3, None, "21", [0], [1.5], [2, 5]],
                  "k": [0, 1.5, None]}),
    row(f"{_TR}.toy.order2_logits", lambda: {"V": 3}, keywords=_TR_TOY),
    row(f"{_TR}.toy.order2_target", lambda: {"V": 3}, keywords=_TR_TOY),
    row(f"{_TR}.toy.demo_prompts", lambda: {"queries": 2, "length": 3, "V": 4},
        keywords={"queries": [0, 1.5, None], "length": [0, "3", None], "V": [0, 1.5, None]}),
]
EXCLUDED_TR: dict = {
    "Token Recycling records: RecyclingStats is the per-step record token_recycling_generate "
    "returns (it only appends to it); TemplateBuffers is the frozen record template_buffers "
    "builds and validates (every consumer's row checks its type and feeds it one built for a "
    "wider k)": [
        f"{_TR}.RecyclingStats", f"{_TR}.TemplateBuffers",
    ],
}
# (SECTION-TR) end

# --- refseq.papers.dyspec (SECTION-DYSPEC) ---
# (SECTION-DYSPEC) rows and helpers go here (TABLE += [...]); exclusions in EXCLUDED_DYSPEC
_DYSPEC = "refseq.papers.dyspec"
_DYSPEC_Q = np.array([0.5, 0.3, 0.2])
_DYSPEC_P, _DYSPEC_T = np.array([-1, 0, 0, 1]), np.array([2, 1, 0, 1])


def _DYSPEC_draft(V=3):
    from refseq.papers.dyspec import CallableDraft

    return CallableDraft(lambda s: _DYSPEC_Q if V == 3 else np.full(V, 1.0 / V), V)


class _DYSPEC_Duck:
    """A duck-typed DraftLM (no checks of its own) whose ``probs`` returns ``rows(R)``."""

    def __init__(self, rows=None, vocab_size=3):
        self.rows = rows or (lambda R: np.tile(_DYSPEC_Q, (R, 1)))
        if vocab_size is not None:
            self.vocab_size = vocab_size
        self.calls = 0

    def reset(self, context, root):
        pass

    def probs(self, prefixes):
        return self.rows(len(prefixes))

    def commit(self, accepted):
        pass


class _DYSPEC_StepLM:
    """A StepLM-shaped object without ``vocab_size`` (SECTION-DYSPEC)."""

    def start(self, prompts):
        return np.zeros((len(prompts), 3)), None

    def step(self, state, tokens):
        return np.zeros((len(tokens), 3)), state

    def reorder(self, state, index):
        return state


def _DYSPEC_tree():
    return resolve("refseq.decoding.speculative.tree.DraftTree")(_DYSPEC_P, _DYSPEC_T)


def _DYSPEC_builder(threshold=False):
    from refseq.papers.dyspec import KeyedSampler

    kw = {"draft": _DYSPEC_draft(), "context": np.array([0, 2]), "root": 1,
          "sampler": KeyedSampler(0)}
    return {**kw, "threshold": 0.1} if threshold else {**kw, "budget": 3}


_DYSPEC_BUILD_KW = {"draft": [3, None, object()], "root": [3, -1, 1.5, "1", None],
                    "sampler": [3, "x"]}
_DYSPEC_BUILD_CASES = [
    ("sampler", "sampler-out-of-vocab", lambda kw: {**kw, "sampler": lambda R, key: 7}),
    ("sampler", "sampler-float", lambda kw: {**kw, "sampler": lambda R, key: 0.5}),
    ("sampler", "sampler-zero-prob", lambda kw: {
        **kw, "draft": _DYSPEC_Duck(lambda R: np.tile([0.0, 0.5, 0.5], (R, 1))),
        "sampler": lambda R, key: 0}),
    ("draft", "draft-probs-shape", lambda kw: {
        **kw, "draft": _DYSPEC_Duck(lambda R: np.full((R, 2), 0.5))}),
    ("draft", "draft-probs-unnormalised", lambda kw: {
        **kw, "draft": _DYSPEC_Duck(lambda R: np.tile([0.5, 0.6, 0.1], (R, 1)))}),
    ("draft", "draft-probs-negative", lambda kw: {
        **kw, "draft": _DYSPEC_Duck(lambda R: np.tile([1.2, -0.1, -0.1], (R, 1)))}),
    ("draft", "draft-probs-nan", lambda kw: {
        **kw, "draft": _DYSPEC_Duck(lambda R: np.tile([np.nan, 0.5, 0.5], (R, 1)))}),
    ("draft", "draft-no-vocab_size", lambda kw: {**kw, "draft": _DYSPEC_Duck(vocab_size=None)}),
    ("draft", "draft-vocab_size-str", lambda kw: {**kw, "draft": _DYSPEC_Duck(vocab_size="3")}),
    ("context", "context-out-of-vocab-duck", lambda kw: {
        **kw, "draft": _DYSPEC_Duck(), "context": np.array([0, 5])}),
    ("context", "context-2d-duck", lambda kw: {
        **kw, "draft": _DYSPEC_Duck(), "context": np.zeros((2, 1), np.int64)}),
]


def _DYSPEC_generate():
    from refseq.decoding.speculative.target import TabularTreeLM
    from refseq.papers.dyspec import TabularDraft

    return {"target": TabularTreeLM(_markov()), "draft": TabularDraft(_markov()),
            "prompt": np.array([1, 2]), "max_new_tokens": 3, "budget": 2,
            "target_temperature": 1.0, "rng": 0}


def _DYSPEC_batch():
    from refseq.decoding.speculative.target import BatchedTreeLM

    return {"target": BatchedTreeLM(_tiny_params()), "drafts": [_DYSPEC_draft(7),
                                                                _DYSPEC_draft(7)],
            "prompts": [np.array([1, 2]), np.array([3])], "max_new_tokens": 3, "budget": 2,
            "target_temperature": 1.0, "rngs": [0, 1]}


def _DYSPEC_prompts(first):
    return [first, np.array([1])]


_DYSPEC_MAX_NODES = [
    ("max_nodes", "max_nodes-no-threshold", lambda kw: {**kw, "max_nodes": 2}),
    ("max_nodes", "max_nodes-negative", lambda kw: {**kw, "threshold": 0.1, "max_nodes": -1}),
    ("max_nodes", "max_nodes-float", lambda kw: {**kw, "threshold": 0.1, "max_nodes": 1.5})]
_DYSPEC_TEMPERATURE = {"temperature": [0.0, -1.0, np.nan, "0.6", None]}


def _DYSPEC_emitted():
    r = np.random.default_rng(0)
    return {"tree": _DYSPEC_tree(), "target_probs": r.dirichlet(np.ones(3), 4),
            "draft_probs": r.dirichlet(np.ones(3), 4), "mode": "wor"}


TABLE += [
    # the draft models
    row(f"{_DYSPEC}.CallableDraft", lambda: {"fn": lambda s: _DYSPEC_Q, "vocab_size": 3},
        keywords={"fn": [3, None, "x"], "vocab_size": [0, 1.5, "3", None, True]}),
    row(f"{_DYSPEC}.TabularDraft", lambda: {"lm": _markov(), "temperature": 0.6},
        keywords={"lm": [3, None], **_DYSPEC_TEMPERATURE},
        cases=[("lm", "lm-no-vocab_size", lambda kw: {**kw, "lm": _DYSPEC_StepLM()})]),
    row(f"{_DYSPEC}.TransformerDraft", lambda: {"params": _tiny_params(), "temperature": 0.6},
        keywords={"params": [3, None, _markov()], **_DYSPEC_TEMPERATURE}),
    # the samplers
    row(f"{_DYSPEC}.inverse_cdf", lambda: {"residual": _DYSPEC_Q, "u": 0.4},
        arrays={"residual": FREE}, finite=True,
        keywords={"u": [-0.1, 1.0, np.nan, "0.5", None]},
        cases=[("residual", "residual-negative", lambda kw: {
            **kw, "residual": np.array([1.2, -0.1, -0.1])}),
               ("residual", "residual-zero", lambda kw: {**kw, "residual": np.zeros(3)}),
               ("residual", "residual-empty", lambda kw: {**kw, "residual": np.zeros(0)}),
               ("residual", "residual-list-of-str", lambda kw: {**kw, "residual": ["a"]})]),
    row(f"{_DYSPEC}.InverseCdfSampler", lambda: {"rng": 0}, keywords={"rng": ["x", -1, 1.5]}),
    row(f"{_DYSPEC}.KeyedSampler", lambda: {"seed": 0},
        keywords={"seed": [-1, 1.5, "0", None, True]}),
    row(f"{_DYSPEC}.EnumeratingSampler", lambda: {"choices": (0, 1)},
        keywords={"choices": [3, None, "ab", [-1], [1.5], [True], np.array([[0]])]}),
    row(f"{_DYSPEC}.enumerate_outcomes",
        lambda: {"build": lambda s: resolve(f"{_DYSPEC}.build_tree_greedy")(
            _DYSPEC_draft(), [0], 1, 2, sampler=s)},
        keywords={"build": [3, None, "x"]}),
    # the tree builders (Algorithms 1 and 2)
    row(f"{_DYSPEC}.build_tree_greedy", _DYSPEC_builder, flags=("lazy",),
        arrays={"context": ids(3)},
        keywords={**_DYSPEC_BUILD_KW, "budget": [-1, 1.5, "2", None]},
        cases=_DYSPEC_BUILD_CASES),
    row(f"{_DYSPEC}.build_tree_threshold", lambda: _DYSPEC_builder(threshold=True),
        arrays={"context": ids(3)},
        keywords={**_DYSPEC_BUILD_KW, "threshold": [-0.1, 1.0, np.nan, "0.1", None],
                  "max_nodes": [-1, 1.5, "2"]},
        cases=_DYSPEC_BUILD_CASES),
    # generation
    row(f"{_DYSPEC}.DySpecDrafter", lambda: {"draft": _DYSPEC_draft(), "budget": 2},
        flags=("lazy",),
        keywords={"draft": [3, None], "budget": [-1, 1.5, "2", None],
                  "threshold": [-0.1, 1.0, np.nan, "0.1"], "sampler": [3, "x"],
                  "rng": ["x", -1]},
        cases=_DYSPEC_MAX_NODES + [("draft", "draft-no-vocab_size", lambda kw: {
            **kw, "draft": _DYSPEC_Duck(vocab_size=None)})]),
    row(f"{_DYSPEC}.dyspec_generate", _DYSPEC_generate, flags=("lazy",),
        arrays={"prompt": ids(4)},
        keywords={"target": [3, None], "draft": [3, None], "max_new_tokens": [-1, 1.5, "3"],
                  "budget": [-1, 1.5], "threshold": [-0.1, 1.0, np.nan],
                  "target_temperature": [-1.0, np.nan, "1"], "top_p": [0.0, 1.5],
                  "rng": ["x", -1], "sampler": [3], "eos_id": [4, -1, 1.5],
                  "max_steps": [0, 1.5]},
        cases=_DYSPEC_MAX_NODES + [
            ("draft", "draft-vocab-mismatch", lambda kw: {**kw, "draft": _DYSPEC_draft(3)}),
            ("prompt", "prompt-empty", lambda kw: {**kw, "prompt": np.zeros(0, np.int64)})]),
    row(f"{_DYSPEC}.dyspec_generate_batch", _DYSPEC_batch, flags=("lazy",),
        keywords={"target": [3, None, _markov()], "drafts": [3, None, [], "ab"],
                  "prompts": ["x", [], None,
                              _DYSPEC_prompts(np.array([1.5])), _DYSPEC_prompts(np.array([7])),
                              _DYSPEC_prompts(np.array([-1])),
                              _DYSPEC_prompts(np.zeros((1, 1), np.int64)),
                              _DYSPEC_prompts(np.zeros(0, np.int64))],
                  "max_new_tokens": [-1, 1.5, "3"], "budget": [-1, 1.5],
                  "threshold": [1.0, np.nan], "target_temperature": [-1.0, np.nan],
                  "top_p": [0.0, 1.5], "rngs": [3, [0], ["x", 0], [-1, 0]],
                  "eos_id": [7, -1], "backend": ["gpu", 3]},
        cases=_DYSPEC_MAX_NODES + [
            ("drafts", "drafts-not-drafts", lambda kw: {**kw, "drafts": [3, 3]}),
            ("drafts", "drafts-vocab-mismatch", lambda kw: {
                **kw, "drafts": [_DYSPEC_draft(3), _DYSPEC_draft(3)]}),
            ("drafts", "drafts-same-object", lambda kw: {
                **kw, "drafts": [kw["drafts"][0]] * 2})]),
    # analysis
    row(f"{_DYSPEC}.decision_objective", lambda: {"popped_values": np.array([1.0, 0.5, 0.25])},
        arrays={"popped_values": FREE}, finite=True,
        cases=[("popped_values", "popped_values-str", lambda kw: {
            **kw, "popped_values": ["a"]})]),
    row(f"{_DYSPEC}.estimated_accepted", lambda: {"node_value": np.array([1.0, 0.5, 0.3])},
        arrays={"node_value": FREE}, finite=True,
        cases=[("node_value", "node_value-empty", lambda kw: {**kw, "node_value": np.zeros(0)})]),
    row(f"{_DYSPEC}.exact_expected_emitted", _DYSPEC_emitted,
        arrays={"target_probs": F, "draft_probs": F}, finite=True,
        keywords={"tree": [3, None, _DYSPEC_P], "mode": ["nope", 3]},
        cases=[("target_probs", "target_probs-unnormalised", lambda kw: {
            **kw, "target_probs": kw["target_probs"] * 2}),
               ("draft_probs", "draft_probs-negative", lambda kw: {
                   **kw, "draft_probs": _set(kw["draft_probs"], 0, -0.1)})]),
    row(f"{_DYSPEC}.tested_children",
        lambda: {"tree": _DYSPEC_tree(), "path": np.array([0, 1, 3])},
        arrays={"path": ids(4)}, keywords={"tree": [3, None, _DYSPEC_P]},
        cases=[("path", "path-not-root", lambda kw: {**kw, "path": np.array([1, 3])}),
               ("path", "path-broken", lambda kw: {**kw, "path": np.array([0, 2, 3])}),
               ("path", "path-empty", lambda kw: {**kw, "path": np.zeros(0, np.int64)})]),
    row(f"{_DYSPEC}.acceptance_by_draft_prob",
        lambda: {"draft_prob": np.array([0.1, 0.5, 0.9, 0.3]),
                 "accepted": np.array([True, False, True, True]), "bins": 3},
        arrays={"draft_prob": F, "accepted": MASK}, finite=True,
        keywords={"bins": [0, -1, 1.5, "5", None]},
        cases=[("draft_prob", "draft_prob-above-1", lambda kw: {
            **kw, "draft_prob": np.array([0.1, 0.5, 1.5, 0.3])}),
               ("draft_prob", "draft_prob-negative", lambda kw: {
                   **kw, "draft_prob": np.array([-0.1, 0.5, 0.9, 0.3])})]),
    row(f"{_DYSPEC}.block_counts", lambda: {"tree": _DYSPEC_tree(), "block": 2},
        keywords={"tree": [3, None, _DYSPEC_P], "block": [0, -1, 1.5, "2", None]}),
]


EXCLUDED_DYSPEC: dict = {
    "DySpec's result records (dataclasses): DySpecTree is what build_tree_greedy/"
    "build_tree_threshold return, Slot the heap entry they build internally, DySpecStats the "
    "per-step record dyspec_generate/dyspec_generate_batch return; their rows feed the inputs": [
        f"{_DYSPEC}.DySpecTree", f"{_DYSPEC}.Slot", f"{_DYSPEC}.DySpecStats",
    ],
    "a typing.Protocol (the draft model's structural type), not a computation; its "
    "implementations CallableDraft, TabularDraft and TransformerDraft have rows": [
        f"{_DYSPEC}.DraftLM",
    ],
}
# (SECTION-DYSPEC) end

# --- refseq.papers.recursive_speculative_decoding (SECTION-RSD) ---
# (SECTION-RSD) rows and helpers go here (TABLE += [...]); exclusions in EXCLUDED_RSD
_RSD = "refseq.papers.recursive_speculative_decoding"
_RSD_Q = np.array([0.5, 0.3, 0.2])
_RSD_U3 = np.array([0.3, 0.7, 0.1])


class _RSD_StepLM:
    """A StepLM-shaped draft (start only) with logits ``rows(R)`` and an optional vocab_size."""

    def __init__(self, rows=None, vocab_size=4):
        self.rows = rows or (lambda R: np.zeros((R, 4)))
        if vocab_size is not None:
            self.vocab_size = vocab_size

    def start(self, prompts):
        return self.rows(len(prompts)), None


def _RSD_logp():  # finite: the int32 variant casts it (-inf, a zero-probability token, is valid)
    return np.log(np.array([[0.5, 0.3, 0.2], [0.1, 0.5, 0.4]]))


def _RSD_gumbel():
    return {"logp": _RSD_logp(), "k": 2, "g": _f(2, 3)}


def _RSD_shift():
    G = _f(2, 3)
    return {"G": G, "Z": G.max(-1), "T": np.array([0.5, -0.2])}


def _RSD_laws():
    return {"lm": _markov(), "prefixes": [np.array([0, 1]), np.array([2])], "temperature": 0.8,
            "top_p": 0.9}


def _RSD_builder(**kw):
    return {"draft": _markov(), "context": np.array([0, 1]), "root": 2, "rng": 0, **kw}


def _RSD_generate():
    from refseq.decoding.speculative.target import TabularTreeLM

    return {"target": TabularTreeLM(_markov()), "draft": _markov(), "prompt": np.array([1, 2]),
            "max_new_tokens": 3, "rng": 0}


def _RSD_generate_batch():
    from refseq.decoding.speculative.batched import RowsTreeLM
    from refseq.decoding.speculative.target import TabularTreeLM

    return {"target": RowsTreeLM([TabularTreeLM(_markov()), TabularTreeLM(_markov())]),
            "draft": _markov(), "prompts": [np.array([1, 2]), np.array([3])],
            "max_new_tokens": 3, "rngs": [0, 1]}


def _two_prompts(first):
    return [first, np.array([1])]


def _RSD_not_probs(name):
    """A negative entry, an unnormalised vector, an empty one and a list of strings."""
    return [(name, f"{name}-negative", lambda kw: {**kw, name: np.array([1.2, -0.1, -0.1])}),
            (name, f"{name}-unnormalised", lambda kw: {**kw, name: kw[name] * 2}),
            (name, f"{name}-empty", lambda kw: {**kw, name: np.zeros(0)}),
            (name, f"{name}-list-of-str", lambda kw: {**kw, name: ["a", "b", "c"]})]


def _RSD_u(name="u"):
    return [(name, f"{name}-one", lambda kw: {**kw, name: np.ones_like(kw[name])}),
            (name, f"{name}-negative", lambda kw: {**kw, name: -kw[name]})]


_RSD_K = {"k": [0, -1, 1.5, "2", None, True]}
_RSD_WARP = {"temperature": [0.0, -1.0, np.nan, "1", None], "top_p": [0.0, 1.5, np.nan, "1"]}
_RSD_DRAFT_CASES = [
    ("draft", "draft-no-vocab_size", lambda kw: {**kw, "draft": _RSD_StepLM(vocab_size=None)}),
    ("draft", "draft-vocab_size-str", lambda kw: {**kw, "draft": _RSD_StepLM(vocab_size="4")}),
    ("draft", "draft-logits-width", lambda kw: {
        **kw, "draft": _RSD_StepLM(lambda R: np.zeros((R, 3)))}),
    ("draft", "draft-logits-nan", lambda kw: {
        **kw, "draft": _RSD_StepLM(lambda R: np.full((R, 4), np.nan))}),
    ("draft", "draft-logits-str", lambda kw: {
        **kw, "draft": _RSD_StepLM(lambda R: [["a"] * 4] * R)}),
]
_RSD_BUILD_KW = {"draft": [3, None, object()], "root": [4, -1, 1.5, "1", None],
                 "rng": ["x", -1], **_RSD_WARP}
_RSD_BRANCHING = {"branching": [(), (0,), (-1,), (1.5,), 3, "2", None, (2, True)]}
_RSD_CONTEXT = [("context", "context-str", lambda kw: {**kw, "context": "ab"})]
_RSD_METHOD_KW = {"method": ["nope", 3, None], "beam_width": [0, 1.5, "2"],
                  "depth": [0, -1, 1.5], "K": [0, -1, 1.5, None]}

TABLE += [
    # samplers without replacement (gumbel.py)
    row(f"{_RSD}.gumbel_topk", _RSD_gumbel,
        arrays={"logp": frozenset({"ndim0", "shape", *FLOAT_DTYPES}), "g": F},
        keywords=_RSD_K,
        cases=[("logp", "logp-nan", lambda kw: {**kw, "logp": _set(kw["logp"], 0, np.nan)}),
               ("logp", "logp-posinf", lambda kw: {**kw, "logp": _set(kw["logp"], 0, np.inf)}),
               ("logp", "logp-empty", lambda kw: {**kw, "logp": np.zeros((2, 0)),
                                                  "g": np.zeros((2, 0))}),
               ("g", "g-nan", lambda kw: {**kw, "g": _set(kw["g"], 0, np.nan)}),
               ("g", "g-inf", lambda kw: {**kw, "g": _set(kw["g"], 0, -np.inf)}),
               ("rng", "rng-str", lambda kw: {"logp": kw["logp"], "k": 2, "rng": "x"})]),
    row(f"{_RSD}.exponential_race_topk", lambda: {"q": _RSD_Q, "k": 2, "u": _RSD_U3},
        arrays={"q": F, "u": F}, finite=True, keywords=_RSD_K,
        cases=_RSD_not_probs("q") + _RSD_u()),
    row(f"{_RSD}.sample_without_replacement",
        lambda: {"q": _RSD_Q, "k": 2, "u": np.array([0.3, 0.7])},
        arrays={"q": F, "u": F}, finite=True, keywords=_RSD_K,
        cases=_RSD_not_probs("q") + _RSD_u()
        + [("u", "u-length", lambda kw: {**kw, "u": _RSD_U3})]),
    row(f"{_RSD}.without_replacement_conditionals",
        lambda: {"q": _RSD_Q, "drawn": np.array([0])},
        arrays={"q": F, "drawn": ids(3)}, finite=True,
        cases=_RSD_not_probs("q")
        + [("drawn", "drawn-repeat", lambda kw: {**kw, "drawn": np.array([0, 0])}),
           ("drawn", "drawn-whole-support", lambda kw: {**kw, "drawn": np.array([0, 1, 2])}),
           ("drawn", "drawn-str", lambda kw: {**kw, "drawn": ["a"]})]),
    # truncated Gumbels (truncated_gumbel.py)
    row(f"{_RSD}.log1mexp", lambda: {"a": -_f(2, 3, low=0.0, high=2.0)},
        arrays={"a": ANY},
        cases=[("a", "a-positive", lambda kw: {**kw, "a": _set(kw["a"], 0, 0.5)}),
               ("a", "a-nan", lambda kw: {**kw, "a": _set(kw["a"], 0, np.nan)}),
               ("a", "a-str", lambda kw: {**kw, "a": "x"})]),
    row(f"{_RSD}.shift_gumbel_max", _RSD_shift,
        arrays={"G": frozenset({"ndim0", *FLOAT_DTYPES}), "Z": F, "T": F},
        cases=[("G", "G-exceeds-Z", lambda kw: {**kw, "Z": kw["Z"] - 1.0}),
               ("G", "G-nan", lambda kw: {**kw, "G": _set(kw["G"], 0, np.nan)}),
               ("G", "G-posinf", lambda kw: {**kw, "G": _set(kw["G"], 0, np.inf)}),
               ("Z", "Z-nan", lambda kw: {**kw, "Z": np.nan}),
               ("T", "T-inf", lambda kw: {**kw, "T": np.inf}),
               ("T", "T-str", lambda kw: {**kw, "T": "0.5"})]),
    # cost model (budget.py)
    row(f"{_RSD}.block_efficiency",
        lambda: {"emitted": np.array([2, 1, 3]), "target_calls": 3},
        arrays={"emitted": ids()},
        keywords={"target_calls": [0, -1, 1.5, "3", None, True]},
        cases=[("emitted", "emitted-str", lambda kw: {**kw, "emitted": ["a"]})]),
    row(f"{_RSD}.mbsu", lambda: {"block_eff": 2.0, "draft_calls_per_step": 3.0, "c": 0.1},
        keywords={"block_eff": [0.0, -1.0, np.nan, np.inf, "2", None],
                  "draft_calls_per_step": [-1.0, np.nan, "3", None],
                  "c": [-0.1, np.nan, np.inf, "0.1", None]}),
    row(f"{_RSD}.target_budget",
        lambda: {"tree": resolve("refseq.decoding.speculative.tree.DraftTree")(
            np.array([-1, 0, 0]), np.array([1, 2, 0]))},
        keywords={"tree": [3, None, np.array([-1, 0, 0])]},
        cases=[("tree", "tree-rsd-record", lambda kw: {
            **kw, "tree": resolve(f"{_RSD}.constant_branching_tree")(**_RSD_builder(
                branching=(2,)))})]),
    row(f"{_RSD}.configs_for_budget", lambda: {"B": 5, "max_width": 2},
        keywords={"B": [1, 0, -1, 1.5, "5", None, True], "max_width": [0, -1, 1.5, "2"]}),
    # draft trees (rsd_trees.py, baselines.py)
    row(f"{_RSD}.draft_laws", _RSD_laws,
        keywords={"lm": [3, None, object()], "prefixes": [3, "ab", None, [np.array([1.5])],
                                                        [np.array([-1])], [np.array([4])],
                                                        [np.zeros((1, 1), np.int64)]],
                  **_RSD_WARP},
        cases=[("lm", "lm-no-vocab_size", lambda kw: {**kw, "lm": _RSD_StepLM(vocab_size=None)}),
               ("lm", "lm-logits-width", lambda kw: {
                   **kw, "lm": _RSD_StepLM(lambda R: np.zeros((R, 3)))}),
               ("lm", "lm-logits-rows", lambda kw: {
                   **kw, "lm": _RSD_StepLM(lambda R: np.zeros((1, 4)))}),
               ("lm", "lm-logits-nan", lambda kw: {
                   **kw, "lm": _RSD_StepLM(lambda R: np.full((R, 4), np.nan))})]),
    row(f"{_RSD}.constant_branching_tree", lambda: _RSD_builder(branching=(2, 1)),
        arrays={"context": ids(4)},
        keywords={**_RSD_BUILD_KW, **_RSD_BRANCHING}, cases=_RSD_DRAFT_CASES + _RSD_CONTEXT),
    row(f"{_RSD}.iid_tree", lambda: _RSD_builder(branching=(2, 1)),
        arrays={"context": ids(4)},
        keywords={**_RSD_BUILD_KW, **_RSD_BRANCHING}, cases=_RSD_DRAFT_CASES + _RSD_CONTEXT),
    row(f"{_RSD}.stochastic_beam_tree", lambda: _RSD_builder(beam_width=2, depth=2),
        arrays={"context": ids(4)},
        keywords={**_RSD_BUILD_KW, "beam_width": [0, -1, 1.5, "2", None],
                  "depth": [0, -1, 1.5, "2", None]},
        cases=_RSD_DRAFT_CASES + _RSD_CONTEXT),
    row(f"{_RSD}.k_sequences_tree", lambda: _RSD_builder(K=2, L=2),
        arrays={"context": ids(4)},
        keywords={**_RSD_BUILD_KW, "K": [0, -1, 1.5, "2", None], "L": [0, -1, 1.5, "2", None]},
        cases=_RSD_DRAFT_CASES + _RSD_CONTEXT),
    row(f"{_RSD}.chain_tree", lambda: _RSD_builder(K=2),
        arrays={"context": ids(4)},
        keywords={**_RSD_BUILD_KW, "K": [0, -1, 1.5, "2", None]},
        cases=_RSD_DRAFT_CASES + _RSD_CONTEXT),
    # generation (generate.py)
    row(f"{_RSD}.generate.RSDDrafter", lambda: {"draft": _markov(), "method": "rsd-s", "rng": 0},
        keywords={"draft": [3, None], **_RSD_METHOD_KW, **_RSD_BRANCHING, **_RSD_WARP,
                  "rng": ["x", -1]},
        cases=[("draft", "draft-no-vocab_size", lambda kw: {
            **kw, "draft": _RSD_StepLM(vocab_size=None)})]),
    row(f"{_RSD}.rsd_generate", _RSD_generate, arrays={"prompt": ids(4)},
        keywords={"target": [3, None], "draft": [3, None], "max_new_tokens": [-1, 1.5, "3"],
                  **_RSD_METHOD_KW, "branching": [(), (0,), 3],
                  "target_temperature": [-1.0, np.nan, "1", None],
                  "draft_temperature": [0.0, -1.0, np.nan], "top_p": [0.0, 1.5],
                  "draft_top_p": [0.0, 1.5, np.nan], "rng": ["x", -1],
                  "eos_id": [4, -1, 1.5], "max_steps": [0, 1.5]},
        cases=[("draft", "draft-vocab-mismatch", lambda kw: {
            **kw, "draft": _RSD_StepLM(lambda R: np.zeros((R, 3)), vocab_size=3)}),
               ("draft", "draft-no-vocab_size", lambda kw: {
                   **kw, "draft": _RSD_StepLM(vocab_size=None)}),
               ("prompt", "prompt-empty", lambda kw: {
                   **kw, "prompt": np.zeros(0, np.int64)})]),
    row(f"{_RSD}.rsd_generate_batch", _RSD_generate_batch,
        keywords={"target": [3, None], "draft": [3, None], "max_new_tokens": [-1, 1.5, "3"],
                  **_RSD_METHOD_KW, "branching": [(), (0,), 3],
                  "target_temperature": [-1.0, np.nan, "1", None],
                  "draft_temperature": [0.0, -1.0, np.nan], "top_p": [0.0, 1.5],
                  "draft_top_p": [0.0, 1.5, np.nan], "rngs": [3, [0], ["x", 0], [-1, 0]],
                  "eos_id": [4, -1, 1.5], "backend": ["gpu", 3],
                  "prompts": ["x", [], None, _two_prompts(np.array([1.5])),
                              _two_prompts(np.array([4])), _two_prompts(np.array([-1])),
                              _two_prompts(np.zeros(0, np.int64))]},
        cases=[("draft", "draft-vocab-mismatch", lambda kw: {
            **kw, "draft": _RSD_StepLM(lambda R: np.zeros((R, 3)), vocab_size=3)})]),
]

EXCLUDED_RSD: dict = {
    "RSD's result records (dataclasses): RSDTree is what constant_branching_tree, "
    "stochastic_beam_tree, iid_tree, k_sequences_tree and chain_tree return, RSDStats the "
    "per-step record rsd_generate returns; their rows feed the inputs (target_budget's row feeds "
    "an RSDTree where a DraftTree is due)": [
        f"{_RSD}.rsd_trees.RSDTree", f"{_RSD}.generate.RSDStats",
    ],
}
# (SECTION-RSD) end

# --- refseq.papers.aded (SECTION-ADED) ---
_ADED = "refseq.papers.aded"
_ADED_P, _ADED_T = np.array([-1, 0, 0, 1]), np.array([3, 1, 2, 0])  # 2 root-to-leaf rows, depth 2


def _aded_matrix(V=4):
    """A tiny table over [0, V): the tri-grams of 0 1 2 3 1 2 0 (every context has successors)."""
    return resolve(f"{_ADED}.build_from_sequences")([np.array([0, 1, 2, 3, 1, 2, 0, 1])],
                                                    vocab_size=V)


def _aded_tree():
    return resolve("refseq.decoding.speculative.tree.DraftTree")(_ADED_P, _ADED_T)


def _aded_search():
    return {"matrix": _aded_matrix(), "root_pair": (0, 1), "iterations": 5, "sentence_length": 3,
            "top_sentences": 4, "rng": 0}


def _aded_generate(**extra):
    def build():
        from refseq.decoding.speculative.target import TabularTreeLM

        return {"target": TabularTreeLM(_markov()), "prompt": np.array([1, 2]),
                "max_new_tokens": 3, "matrix": _aded_matrix(), "iterations": 5, "mcts_rng": 0,
                **extra}
    return build


def _aded_generate_batch():
    from refseq.decoding.speculative.batched import RowsTreeLM
    from refseq.decoding.speculative.target import TabularTreeLM

    return {"target": RowsTreeLM([TabularTreeLM(_markov()), TabularTreeLM(_markov())]),
            "prompts": [np.array([1, 2]), np.array([3])], "max_new_tokens": 3,
            "matrix": _aded_matrix(), "iterations": 5, "mcts_rngs": [0, 1]}


def _aded_verify():
    return {"tree": _aded_tree(), "target_probs": _sv_probs(4, V=4), "u_rows": np.full((2, 2), 0.5),
            "u_final": 0.5}


def _aded_probs_cases():
    def negative(kw):
        p = np.array(kw["target_probs"])
        p[0, 0] = -0.1
        return {**kw, "target_probs": p}

    def zero_row(kw):
        p = np.array(kw["target_probs"])
        p[1] = 0.0
        return {**kw, "target_probs": p}

    def nan(kw):
        p = np.array(kw["target_probs"])
        p[0, 0] = np.nan
        return {**kw, "target_probs": p}

    def rows(kw):
        return {**kw, "target_probs": kw["target_probs"][:3]}

    return [("target_probs", "target_probs-negative", negative),
            ("target_probs", "target_probs-zero-row", zero_row),
            ("target_probs", "target_probs-nan", nan),
            (("tree", "target_probs"), "target_probs-rows", rows),
            (("tree", "target_probs"), "tree-token-out-of-vocab",
             lambda kw: {**kw, "target_probs": kw["target_probs"][:, :3]})]


_ADED_PAIR = {"root_pair": [(0,), 3, "ab", None, (0, 4), (-1, 0), (0.5, 1), (True, 1)],
              "matrix": [3, None, {}]}
_ADED_PATHS = {"paths": [3, None, "ab", [[]], [[-1]], [[0.5]], [3], [["a"]], [None],
                         [np.array(3)], [np.zeros((2, 2), np.int64)]]}
_ADED_SEARCH_KW = {**_ADED_PAIR, "iterations": [0, 1.5, "5", None],
                   "sentence_length": [1, 2.5], "top_sentences": [0, 1.5],
                   "c1": [0.0, -1.0, np.nan, np.inf, "32"], "c2": [0.0, -8.0, np.nan],
                   "rng": [-1, "x", 1.5], "return_rule": ["nope", 3, None]}
_ADED_GEN_KW = {"max_new_tokens": [-1, 1.5, "3"], "target": [3, None],
                "eos_id": [4, -1, 1.5], "rng": [-1, "x"], "top_p": [0.0, 1.5, np.nan],
                "temperature": [-1.0, np.nan, "1"], "matrix": [3, None],
                "fallback_token": [-1, 1.5, 4]}
_ADED_SEQS = [("sequences", "sequences-array", lambda kw: {**kw, "sequences": np.arange(5)}),
              ("sequences", "sequences-float", lambda kw: {**kw, "sequences": [np.arange(5.0)]}),
              ("sequences", "sequences-2d", lambda kw: {**kw, "sequences": [np.zeros((2, 3),
                                                                                     int)]}),
              ("sequences", "sequences-negative", lambda kw: {**kw, "sequences": [[0, -1, 2]]}),
              ("sequences", "sequences-none", lambda kw: {**kw, "sequences": [None]}),
              (("sequences", "vocab_size"), "sequences-out-of-vocab",
               lambda kw: {**kw, "sequences": [[0, 1, 4]]})]
TABLE += [
    row(f"{_ADED}.TrigramMatrix", lambda: {"vocab_size": 4},
        keywords={"vocab_size": [0, -1, 1.5, "4", True]}),
    row(f"{_ADED}.build_from_sequences",
        lambda: {"sequences": [np.array([0, 1, 2, 1, 0]), [1, 2, 3]], "top_n": 2, "vocab_size": 4},
        keywords={"top_n": [0, -1, 1.5, "2"], "vocab_size": [0, 1.5, "4"]}, cases=_ADED_SEQS),
    row(f"{_ADED}.adapt", lambda: {"matrix": _aded_matrix(), "seq": np.array([0, 1, 2, 3, 1])},
        arrays={"seq": ids(4)},
        keywords={"matrix": [3, None], "window": [2, 0, 3.5, "16", None],
                  "increment": [0.0, -0.04, np.nan, np.inf, "0.04"],
                  "cap": [0.0, -1.0, np.nan, "3"]}),
    row(f"{_ADED}.puct_score",
        lambda: {"child_visits": 2, "child_value_sum": 3.0, "prior": 0.5, "parent_visits": 4},
        keywords={"child_visits": [-1, 1.5, "2", None], "child_value_sum": [np.nan, np.inf, "3"],
                  "prior": [-0.1, np.nan, "0.5"], "parent_visits": [-1, 1.5, "4"],
                  "c1": [0.0, -1.0, np.nan], "c2": [0.0, -8.0, "8"]},
        cases=[(("child_visits", "parent_visits"), "child-visited-more-than-parent",
                lambda kw: {**kw, "child_visits": 5})]),
    row(f"{_ADED}.mcts_search", _aded_search, keywords=_ADED_SEARCH_KW),
    row(f"{_ADED}.mcts_draft", _aded_search, keywords=_ADED_SEARCH_KW),
    row(f"{_ADED}.draft_greedy_chain",
        lambda: {"matrix": _aded_matrix(), "root_pair": (0, 1), "length": 3},
        keywords={**_ADED_PAIR, "length": [-1, 1.5, "3", None]}),
    row(f"{_ADED}.draft_full_traversal",
        lambda: {"matrix": _aded_matrix(), "root_pair": (0, 1), "depth": 2, "max_nodes": 4},
        keywords={**_ADED_PAIR, "depth": [-1, 1.5, None], "max_nodes": [-1, 2.0, "4"]}),
    row(f"{_ADED}.cut_to_choices", lambda: {"paths": [[1, 2], [2], [1, 3, 3]], "choices": 3},
        keywords={**_ADED_PATHS, "choices": [-1, 1.5, "3", None], "rule": ["nope", 3, None]}),
    row(f"{_ADED}.paths_to_tree", lambda: {"root_token": 0, "paths": [[1, 2], [2]],
                                           "max_nodes": 4},
        keywords={**_ADED_PATHS, "root_token": [-1, 1.5, "0", None],
                  "max_nodes": [-1, 1.5, None], "fallback_token": [-1, 1.5, "1"]}),
    row(f"{_ADED}.ADEDDrafter", lambda: {"matrix": _aded_matrix()}, flags=("adaptive",),
        keywords={"matrix": [3, None], "method": ["nope", 3], "iterations": [0, 1.5],
                  "sentence_length": [1, "4"], "top_sentences": [0], "choices": [-1, 1.5],
                  "max_nodes": [-1, None], "c1": [0.0, np.nan], "c2": [-1.0],
                  "return_rule": ["nope"], "cut_rule": ["nope", None],
                  "fallback_token": [-1, 1.5, 4], "window": [2, 3.0], "increment": [0.0],
                  "cap": [-1.0, np.inf], "rng": [-1, "x"]}),
    row(f"{_ADED}.aded_generate", _aded_generate(), arrays={"prompt": ids(4)},
        flags=("adaptive",),
        keywords={**_ADED_GEN_KW, "method": ["nope", 3], "iterations": [0],
                  "acceptance": ["nope", 3], "mcts_rng": [-1, "x"], "cut_rule": ["nope"]},
        cases=[("prompt", "prompt-empty", lambda kw: {**kw, "prompt": np.zeros(0, np.int64)}),
               (("acceptance", "temperature"), "rest_nucleus-greedy",
                lambda kw: {**kw, "acceptance": "rest_nucleus"}),
               ("matrix", "matrix-out-of-vocab",
                lambda kw: {**kw, "matrix": resolve(f"{_ADED}.build_from_sequences")(
                    [np.array([0, 5, 6, 5])])})]),
    row(f"{_ADED}.aded_generate", _aded_generate(acceptance="rest_nucleus", temperature=1.0,
                                                 rng=0),
        id="aded_generate-rest_nucleus", arrays={"prompt": ids(4)}, flags=("adaptive",),
        keywords=_ADED_GEN_KW,
        cases=[("prompt", "prompt-empty", lambda kw: {**kw, "prompt": np.zeros(0, np.int64)}),
               ("matrix", "matrix-out-of-vocab",
                lambda kw: {**kw, "matrix": resolve(f"{_ADED}.build_from_sequences")(
                    [np.array([0, 5, 6, 5])])})]),
    row(f"{_ADED}.batch.aded_generate_batch", _aded_generate_batch, flags=("adaptive",),
        keywords={**{k: v for k, v in _ADED_GEN_KW.items() if k != "rng"},
                  "rngs": [3, [0], [-1, 0]],
                  "mcts_rngs": [3, [0], ["x", 0]], "method": ["nope", 3], "iterations": [0],
                  "backend": ["gpu", 3], "matrix": [3, None, []],
                  "prompts": ["x", [], None, _two_prompts(np.array([1.5])),
                              _two_prompts(np.array([4])), _two_prompts(np.zeros(0, np.int64))]},
        cases=[("matrix", "matrix-repeated",
                lambda kw: {**kw, "matrix": [kw["matrix"]] * 2}),
               ("matrix", "matrix-out-of-vocab",
                lambda kw: {**kw, "matrix": resolve(f"{_ADED}.build_from_sequences")(
                    [np.array([0, 5, 6, 5])])})]),
    row(f"{_ADED}.verify_rest_nucleus", _aded_verify,
        arrays={"target_probs": F, "u_rows": F},
        keywords={"tree": [3, None, _ADED_P], "u_final": [-0.1, 1.0, np.nan, "0.5", None]},
        cases=_aded_probs_cases()
        + [("u_rows", "u_rows-one", lambda kw: {**kw, "u_rows": np.ones((2, 2))}),
           ("u_rows", "u_rows-negative", lambda kw: {**kw, "u_rows": -kw["u_rows"]}),
           ("u_rows", "u_rows-nan", lambda kw: {**kw, "u_rows": _set(kw["u_rows"], 0, np.nan)}),
           ("u_rows", "u_rows-rows", lambda kw: {**kw, "u_rows": kw["u_rows"][:1]})]),
    row(f"{_ADED}.rest_nucleus_emission",
        lambda: {k: v for k, v in _aded_verify().items() if k in ("tree", "target_probs")},
        arrays={"target_probs": F},
        keywords={"tree": [3, None, _ADED_P], "max_outcomes": [0, -1, 1.5, "10", None, 1]},
        cases=_aded_probs_cases()),
]
EXCLUDED_ADED: dict = {
    "ADED's result records (dataclasses): MCTSNode and MCTSResult are built and returned by "
    "mcts_search (the search tree and its candidates), ADEDStats by aded_generate (the engine's "
    "SpecStats and the drafter's history); no library function takes one as input, so there is "
    "no argument to validate": [
        f"{_ADED}.MCTSNode", f"{_ADED}.MCTSResult", f"{_ADED}.ADEDStats",
    ],
}
# (SECTION-ADED) end

# --- refseq.kv_lookup and its jit/cuda twins (SECTION-KV) ---
# (SECTION-KV) rows and helpers go here (TABLE += [...]); exclusions in EXCLUDED_KV
# One row per public function and tier: the checks run before dispatch, so every tier must
# reject the same bad input with the same message.


def _kv_lookup_args(backend):
    def build():
        r = _rng()
        return {"h": r.standard_normal((2, 2, 3, 3)), "keys": r.standard_normal((2, 5, 3)),
                "values": r.standard_normal((2, 5, 2)), "topk": 2,
                "usage_mask": np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]], bool),
                "metric": "l2", "backend": backend}
    return build


def _kv_scatter_args(backend):
    def build():
        return {"d_fetched": _rng().standard_normal((2, 2, 3, 4, 2)),
                "idx": _rng().integers(0, 5, (2, 2, 4, 3)), "M": 5, "backend": backend}
    return build


def _kv_stats_args(backend):
    def build():
        kw = _kv_lookup_args(backend)()
        return {"h": kw["h"], "keys": kw["keys"], "usage_mask": kw["usage_mask"],
                "backend": backend}
    return build


def _kv_nan(name, value=np.nan):
    return (name, f"{name}-{value}", lambda kw: {**kw, name: _set(kw[name], 0, value)})


for _tier in ("numpy", "jit", "cuda"):
    _pre = "" if _tier == "numpy" else f"{_tier}."
    TABLE += [
        row("refseq.kv_lookup.kv_lookup", _kv_lookup_args(_tier), id=f"{_pre}kv_lookup",
            tier=_tier, arrays={"h": F, "keys": F, "values": FREE, "usage_mask": MASK},
            keywords={"topk": [0, 6, 1.5, True], "metric": ["l1", 3], "backend": ["gpu", 3]},
            cases=[_kv_nan("h"), _kv_nan("keys", np.inf),
                   ("usage_mask", "too-few-keys",
                    lambda kw: {**kw, "topk": 5}),  # codebook 0 keeps 4 keys
                   ("values", "values-M", lambda kw: {**kw, "values": kw["values"][:, :4]}),
                   ("keys", "keys-empty", lambda kw: {**kw, "keys": kw["keys"][:, :0]})]),
        row("refseq.kv_lookup.kv_scatter_add", _kv_scatter_args(_tier),
            id=f"{_pre}kv_scatter_add", tier=_tier,
            arrays={"d_fetched": FREE, "idx": ids(high=5)},
            keywords={"M": [0, 1.5, "5"], "backend": ["gpu", 3]},
            cases=[("idx", "idx-shape", lambda kw: {**kw, "idx": kw["idx"][:, :, :3]})]),
        row("refseq.kv_lookup.kv_assign_stats", _kv_stats_args(_tier),
            id=f"{_pre}kv_assign_stats", tier=_tier,
            arrays={"h": F, "keys": F, "usage_mask": MASK}, keywords={"backend": ["gpu", 3]},
            cases=[_kv_nan("h"), ("usage_mask", "no-key-left",
                                  lambda kw: {**kw, "usage_mask": np.zeros((2, 5), bool)})]),
    ]

EXCLUDED_KV: dict = {}
# (SECTION-KV) end

# --- refseq.papers.kv_bottleneck (SECTION-DKVB) ---
# (SECTION-DKVB) rows and helpers go here (TABLE += [...]); exclusions in EXCLUDED_DKVB
_DKVB = "refseq.papers.kv_bottleneck"
# shapes: B = 2, C = 2, N = 1, M = 4, d_k = 2, d_v = 3, k = 2


def _dkvb_cb(update_keys=True):
    cb = resolve(f"{_DKVB}.KVCodebooks")(2, 4, 2, 3, rng=0)
    cb.update_keys = update_keys
    return cb


def _dkvb_lookup():
    return {"h": _f(2, 2, 1, 2), "keys": _f(2, 4, 2), "topk": 2}


def _dkvb_fetch():
    return {"values": _f(2, 4, 3), "idx": np.array([[[[0, 1]], [[2, 3]]], [[[3, 0]], [[1, 1]]]])}


def _dkvb_model():
    m = resolve(f"{_DKVB}.KVBottleneckModel")(resolve(f"{_DKVB}.Identity")(),
                                              resolve(f"{_DKVB}.Chunker")(2), _dkvb_cb(False))
    return m


_DKVB_RNG = {"rng": [-1, "x"]}
_DKVB_CB = {"codebooks": [3, None]}
TABLE += [
    row(f"{_DKVB}.lookup", _dkvb_lookup, arrays={"h": F, "keys": FREE},
        keywords={"topk": [0, 5, 1.5, None], "temperature": [-1.0, np.nan, "0"],
                  "backend": ["gpu", 3, None]},
        cases=[("usage_mask", "usage_mask-too-few", lambda kw: {
            **kw, "usage_mask": np.eye(2, 4, dtype=bool)})]),
    row(f"{_DKVB}.lookup_fetch", lambda: {**_dkvb_lookup(), "values": _f(2, 4, 3)},
        arrays={"h": F, "keys": FREE, "values": FREE},
        keywords={"topk": [0, 5, 1.5], "temperature": [-1.0, np.nan], "backend": ["gpu", 3]}),
    row(f"{_DKVB}.fetch", _dkvb_fetch, arrays={"values": FREE, "idx": ids(4)}),
    row(f"{_DKVB}.fetch_backward",
        lambda: {"d_fetched": _f(2, 2, 2, 1, 3), "idx": _dkvb_fetch()["idx"], "M": 4},
        arrays={"d_fetched": FREE, "idx": ids(4)}, keywords={"M": [0, 1.5, None],
                                                            "backend": ["gpu", 3]}),
    row(f"{_DKVB}.gumbel_noise", lambda: {"shape": (2, 3), "rng": 0}, keywords=_DKVB_RNG),
    row(f"{_DKVB}.split_chunk", lambda: {"z": _f(2, 1, 4), "C": 2}, arrays={"z": FREE},
        keywords={"C": [0, 3, 1.5, None]}),
    row(f"{_DKVB}.merge_chunks", lambda: {"h": _f(2, 2, 1, 2)}, arrays={"h": FREE}),
    row(f"{_DKVB}.as_tokens", lambda: {"z": _f(2, 1, 4)}, arrays={"z": FREE}),
    row(f"{_DKVB}.Chunker", lambda: {"C": 2}, keywords={"C": [0, 1.5, None]}),
    row(f"{_DKVB}.RandomProjection", lambda: {"C": 2, "d_z": 3, "d_k": 2, "rng": 0},
        keywords={"C": [0, 1.5], "d_z": [0, None], "d_k": [-1, "2"], **_DKVB_RNG,
                  "dtype": ["int8", None]}),
    row(f"{_DKVB}.LearnedProjection", lambda: {"C": 2, "d_z": 3, "d_k": 2, "W": _f(3, 4)},
        arrays={"W": F}, keywords={"C": [0, 1.5], "d_z": [0, None], "d_k": [-1, "2"]}),
    row(f"{_DKVB}.PrecomputedEmbeddings", lambda: {"table": _f(4, 1, 3)},
        arrays={"table": FREE}),
    row(f"{_DKVB}.FrozenLinear", lambda: {"W": _f(3, 2), "b": _f(2)},
        arrays={"W": FREE, "b": F}),
    row(f"{_DKVB}.KVCodebooks", lambda: {"C": 2, "M": 4, "d_k": 2, "d_v": 3, "rng": 0},
        keywords={"C": [0, 1.5], "M": [0, None], "d_k": [-1, "2"], "d_v": [0, 2.0],
                  "dtype": ["int8", None], **_DKVB_RNG}),
    row(f"{_DKVB}.kmeans", lambda: {"h": _f(5, 2, 1, 2), "M": 3, "iters": 2, "rng": 0},
        arrays={"h": FREE}, keywords={"M": [0, 1.5, None], "iters": [-1, 1.5], **_DKVB_RNG},
        finite=True),
    row(f"{_DKVB}.laplace_smoothing", lambda: {"cluster_size": _f(2, 4, low=0, high=2)},
        arrays={"cluster_size": FREE}, keywords={"eps": [0.0, -1.0, np.nan, "1"]}),
    row(f"{_DKVB}.dead_threshold", lambda: {"batch_size": 8, "N": 1, "M": 4},
        keywords={"batch_size": [0, 1.5, None], "N": [0, "1"], "M": [0, None],
                  "factor": [-0.1, np.nan, "0.1"]}),
    row(f"{_DKVB}.ema_update", lambda: {"codebooks": _dkvb_cb(), "h": _f(2, 2, 1, 2)},
        arrays={"h": F}, flags=("faithful",),
        keywords={**_DKVB_CB, "decay": [1.0, -0.1, np.nan, "0.9"], "eps": [0.0, -1.0],
                  "threshold": [-1.0, np.nan], "backend": ["gpu", 3]}, finite=True,
        cases=[("codebooks", "codebooks-frozen", lambda kw: {**kw, "codebooks":
                                                              _dkvb_cb(False)})]),
    row(f"{_DKVB}.replace_dead_keys",
        lambda: {"codebooks": _dkvb_cb(), "h": _f(2, 2, 1, 2), "threshold": 0.5, "rng": 0},
        arrays={"h": F}, keywords={**_DKVB_CB, "threshold": [-1.0, np.nan, "1"], **_DKVB_RNG},
        finite=True),
    row(f"{_DKVB}.fit_keys",
        lambda: {"codebooks": _dkvb_cb(), "encoder": lambda x: x,
                 "splitter": lambda z: z.reshape(-1, 2, 1, 2), "loader": [_f(2, 4)],
                 "epochs": 1},
        keywords={"epochs": [-1, 1.5, None], "decay": [1.0, "0.9"], **_DKVB_RNG}),
    row(f"{_DKVB}.voting_decoder", lambda: {"fetched": _f(2, 2, 2, 1, 3)},
        arrays={"fetched": FREE}, flags=("training",),
        keywords={"dropout": [1.0, -0.1, np.nan]},
        cases=[("weights", "weights-length", lambda kw: {**kw, "weights": np.ones(3)})]),
    row(f"{_DKVB}.voting_decoder_backward",
        lambda: {"d_logits": _f(2, 3), "cache": resolve(f"{_DKVB}.voting_decoder")(
            _f(2, 2, 2, 1, 3))[1]}, arrays={"d_logits": F}),
    row(f"{_DKVB}.append_distance",
        lambda: {"fetched": _f(2, 2, 2, 1, 3), "dist": _f(2, 2, 1, 2)},
        arrays={"fetched": FREE, "dist": F}),
    row(f"{_DKVB}.append_distance_backward", lambda: {"d_out": _f(2, 2, 2, 1, 4)},
        arrays={"d_out": FREE}),
    row(f"{_DKVB}.VotingDecoder", lambda: {"weights": np.ones(2), "dropout": 0.1},
        arrays={"weights": ANY}, keywords={"dropout": [1.0, -0.1, "0"]}),
    row(f"{_DKVB}.LinearProbeDecoder", lambda: {"d_in": 6, "K": 3, "rng": 0}, flags=("bias",),
        keywords={"d_in": [0, 1.5, None], "K": [0, "3"], **_DKVB_RNG, "dtype": ["int8"]}),
    row(f"{_DKVB}.MLPDecoder", lambda: {"d_in": 6, "K": 3, "hidden": 4, "rng": 0},
        keywords={"d_in": [0, 1.5], "K": [0, None], "hidden": [0, "4"], **_DKVB_RNG}),
    row(f"{_DKVB}.MLPClassifier", lambda: {"sizes": (2, 4, 3), "rng": 0},
        keywords={"sizes": [(2,), 3, (2, 0), (2, 1.5)], **_DKVB_RNG, "dtype": ["int8"]}),
    row(f"{_DKVB}.KVBottleneckModel",
        lambda: {"encoder": resolve(f"{_DKVB}.Identity")(),
                 "splitter": resolve(f"{_DKVB}.Chunker")(2), "codebooks": _dkvb_cb()},
        flags=("use_distance", "train_decoder"),
        keywords={"encoder": [3], "splitter": [None], **_DKVB_CB, "decoder": [3, "voting"],
                  "topk": [0, 5, 1.5], "temperature": [-1.0, "0"], "ema": [3, [1]],
                  "backend": ["gpu", 3]}),
    row(f"{_DKVB}.train_values",
        lambda: {"model": _dkvb_model(), "stream": [(_f(2, 4), np.array([0, 2]))],
                 "optimizer": resolve("refseq.train.sgd.SGD")(0.1), "epochs": 1},
        keywords={"model": [3, None], "optimizer": [3, None], "epochs": [-1, 1.5],
                  "batch_size": [0, 1.5], "clip": [0.0, -1.0, "1"], **_DKVB_RNG},
        cases=[("update_keys", "model-keys-not-frozen", lambda kw: {
            **kw, "model": resolve(f"{_DKVB}.KVBottleneckModel")(
                resolve(f"{_DKVB}.Identity")(), resolve(f"{_DKVB}.Chunker")(2), _dkvb_cb())})]),
    row(f"{_DKVB}.class_incremental_stream",
        lambda: {"X": _f(4, 2), "y": np.array([0, 1, 2, 1]), "class_splits": [[0], [1, 2]]},
        arrays={"y": ids(kinds=("ndim", "float", "low"))},
        keywords={"class_splits": [[], 3, [[0], [0]], [[-1]]]},
        cases=[("X", "X-rows", lambda kw: {**kw, "X": kw["X"][:3]})]),
    row(f"{_DKVB}.accuracy", lambda: {"pred": np.array([0, 1]), "y": np.array([0, 2])},
        arrays={"pred": ids(kinds=("ndim", "float")), "y": ids(kinds=("ndim", "float"))},
        cases=[("classes", "classes-absent", lambda kw: {**kw, "classes": [5]})]),
    row(f"{_DKVB}.train_classifier",
        lambda: {"clf": resolve(f"{_DKVB}.MLPClassifier")((2, 3), 0),
                 "stream": [(_f(2, 2), np.array([0, 2]))], "steps": 1},
        keywords={"clf": [3, None], "steps": [-1, 1.5, None]}),
    row(f"{_DKVB}.toy.sample_task", lambda: {"task": 1, "n": 3, "rng": 0},
        keywords={"task": [-1, 4, 1.5], "n": [0, None], **_DKVB_RNG, "dtype": ["int8"]}),
    row(f"{_DKVB}.toy.sample_tasks", lambda: {"n": 3, "rng": 0},
        keywords={"n": [0, 1.5], **_DKVB_RNG}),
    row(f"{_DKVB}.toy.sample_key_init", lambda: {"n": 3, "rng": 0},
        keywords={"n": [0, "3"], **_DKVB_RNG, "dtype": ["int8"]}),
    row(f"{_DKVB}.toy.grid", lambda: {"points": 3}, keywords={"points": [1, 1.5, None]}),
]
EXCLUDED_DKVB: dict = {
    "encoder objects without constructor arguments: Identity checks its input x on every call "
    "(tests/papers/kv_bottleneck/test_splitters.py feeds it an int32 array); Encoder is a "
    "typing.Protocol": [
        f"{_DKVB}.Identity", f"{_DKVB}.Encoder",
    ],
}
# (SECTION-DKVB) end

# --- refseq.papers.recurrentgpt (SECTION-RGPT) ---
# (SECTION-RGPT) rows and helpers go here (TABLE += [...]); exclusions in EXCLUDED_RGPT
_RG = "refseq.papers.recurrentgpt"


def _rg_reply():
    m = importlib.import_module(_RG)
    return m.format_writer_output(m.WriterOutput("P one.", "R.", "M one.", ("a", "b", "c")))


def _rg_gen():
    return resolve(f"{_RG}.ScriptedGenerator")(lambda prompt, i: _rg_reply())


def _rg_embedder():
    return resolve(f"{_RG}.HashingEmbedder")(D=8)


def _rg_state():
    items = ["first item", "second item"]
    return resolve(f"{_RG}.RecurrentState")(0, "memory.", items, _rg_embedder().encode(items),
                                             "paragraph.", "a plan", ["a", "b", "c"])


def _rg_page():
    from types import SimpleNamespace

    return SimpleNamespace(short_memory="m", last_paragraph="p", plan="x")


def _rg_step():
    return {"state": _rg_state(), "generator": _rg_gen(), "embedder": _rg_embedder()}


_RG_TEXT = {"text": [3, None, b"a b"]}
_RG_STR = [3, None]
_RG_WRONG_WIDTH = [("embedder", "embedder-width",
                    lambda kw: {**kw, "embedder": resolve(f"{_RG}.HashingEmbedder")(D=5)})]
TABLE += [
    row(f"{_RG}.cosine_topk", lambda: {"query": _f(4), "index": _f(5, 4), "k": 2},
        arrays={"query": F, "index": F}, keywords={"k": [-1, 1.5, "2", None]}),
    row(f"{_RG}.cosine_topk_kv", lambda: {"query": _f(4), "index": _f(5, 4), "k": 2},
        arrays={"query": F, "index": F},
        keywords={"k": [-1, 1.5, "2", None], "backend": ["nope", 3]}),
    row(f"{_RG}.count_words", lambda: {"text": "a b."}, keywords=_RG_TEXT),
    row(f"{_RG}.count_sentences", lambda: {"text": "a b."}, keywords=_RG_TEXT),
    row(f"{_RG}.split_sentences", lambda: {"text": "a b."}, keywords=_RG_TEXT),
    row(f"{_RG}.truncate_words", lambda: {"text": "A b. C d.", "max_words": 2},
        keywords={**_RG_TEXT, "max_words": [-1, 1.5, "2", None]}),
    row(f"{_RG}.HashingEmbedder", lambda: {"D": 8},
        keywords={"D": [0, 1.5, "8"], "ngram": [(2, 1), (0, 1), 3, (1.0, 2)],
                  "seed": [-1, "0"]}),
    row(f"{_RG}.embed.check_texts", lambda: {"texts": ["a"]},
        keywords={"texts": ["a", [1], None]}),
    row(f"{_RG}.extract_section", lambda: {"text": "A: x", "start_marker": "A:"},
        keywords={"text": _RG_STR, "start_marker": [3, None, ":"], "end_marker": [3, ":"]}),
    row(f"{_RG}.parse_writer_output", lambda: {"text": _rg_reply()}, keywords=_RG_TEXT),
    row(f"{_RG}.parse_init_output", lambda: {"text": resolve(f"{_RG}.format_init_output")(
        resolve(f"{_RG}.InitOutput")("n", "o", ("p", "q", "r"), "s", ("a", "b", "c")))},
        keywords=_RG_TEXT),
    row(f"{_RG}.parse_plan_selection", lambda: {"text": "Selected Plan: a\nReason: b"},
        keywords=_RG_TEXT),
    row(f"{_RG}.parse_human_edit",
        lambda: {"text": "Extended Paragraph: a\nSelected Plan: b\nRevised Plan: c"},
        keywords=_RG_TEXT),
    row(f"{_RG}.parse_summary", lambda: {"text": "Summary: a"}, keywords=_RG_TEXT),
    row(f"{_RG}.format_writer_output", lambda: {"out": resolve(f"{_RG}.WriterOutput")(
        "p", "r", "m", ("a", "b", "c"))}, keywords={"out": [3, None, "p"]}),
    row(f"{_RG}.format_init_output", lambda: {"out": resolve(f"{_RG}.InitOutput")(
        "n", "o", ("p", "q", "r"), "s", ("a", "b", "c"))}, keywords={"out": [3, None]}),
    row(f"{_RG}.format_plan_selection", lambda: {"out": resolve(f"{_RG}.PlanSelection")(
        "a", "b")}, keywords={"out": [3, None]}),
    row(f"{_RG}.format_human_edit", lambda: {"out": resolve(f"{_RG}.HumanEdit")("a", "b", "c")},
        keywords={"out": [3, None]}),
    row(f"{_RG}.format_summary", lambda: {"summary": "s"}, keywords={"summary": _RG_STR}),
    row(f"{_RG}.call_with_retries",
        lambda: {"generator": _rg_gen(), "prompt": "p",
                 "parser": resolve(f"{_RG}.parse_writer_output")},
        keywords={"generator": [3, None], "prompt": _RG_STR, "parser": [3, None],
                  "max_retries": [0, 1.5, "3"], "seed": [-1, 1.5],
                  "temperature": [-1.0, np.nan, "0.5"]}),
    row(f"{_RG}.Limits", lambda: {},
        keywords={"memory_words": [0, 1.5, "500"], "memory_sentences": [(20, 10), 3, (1,)],
                  "paragraph_sentences": [0, None], "plan_words": [-1],
                  "extended_paragraph_sentences": [(1, 2, 3)]}),
    row(f"{_RG}.init_prompt", lambda: {"genre": "g", "topic": "t"},
        keywords={"genre": _RG_STR, "topic": _RG_STR, "chapters": [0, 1.5, "50"]}),
    row(f"{_RG}.writer_prompt", lambda: {"state": _rg_page(), "related": ["a"]},
        flags=("new_character",),
        keywords={"state": [3, None], "related": ["a", 3, [3]], "limits": [3, {}]}),
    row(f"{_RG}.plan_selection_prompt",
        lambda: {"prev_paragraph": "p", "memory": "m", "new_paragraph": "n", "plans": ["a"]},
        keywords={"prev_paragraph": _RG_STR, "memory": _RG_STR, "new_paragraph": _RG_STR,
                  "plans": ["a", [], [3], None]}),
    row(f"{_RG}.human_edit_prompt",
        lambda: {"prev_paragraph": "p", "memory": "m", "new_paragraph": "n", "plan": "x"},
        keywords={"prev_paragraph": _RG_STR, "memory": _RG_STR, "new_paragraph": _RG_STR,
                  "plan": _RG_STR, "language": _RG_STR, "limits": [3]}),
    row(f"{_RG}.summary_prompt", lambda: {"paragraph": "p"}, keywords={"paragraph": _RG_STR}),
    row(f"{_RG}.history_prompt", lambda: {"paragraphs": ["a"], "plan": "x"},
        keywords={"paragraphs": ["a", [3], None], "plan": _RG_STR, "limits": ["x"]}),
    row(f"{_RG}.prompt_word_bound",
        lambda: {"limits": resolve(f"{_RG}.Limits")(), "top_k": 2}, flags=("extended",),
        keywords={"limits": [3, None], "top_k": [-1, 1.5, "2"]}),
    row(f"{_RG}.RecurrentConfig", lambda: {},
        flags=("enforce_limits",),
        keywords={"top_k": [-1, 1.5], "lag": [2, True, "1"], "long_memory_item": ["nope", 3],
                  "new_character_prob": [-0.1, 1.5, np.nan, "0.1"], "max_retries": [0, 2.5],
                  "temperature": [-1.0, np.nan], "retrieval": ["nope", None],
                  "limits": [3, None]}),
    row(f"{_RG}.RecurrentState",
        lambda: {"step": 0, "short_memory": "m", "long_memory": ["a", "b"],
                 "long_memory_index": _f(2, 3), "last_paragraph": "p", "plan": "x",
                 "candidate_plans": ["a"]},
        arrays={"long_memory_index": FREE},
        keywords={"step": [-1, 1.5], "short_memory": _RG_STR, "long_memory": ["a", [3], None],
                  "last_paragraph": _RG_STR, "plan": _RG_STR, "candidate_plans": ["a", [3]],
                  "config": [3, {}], "rng_state": [3, {}]},
        cases=[(("long_memory", "long_memory_index"), "index-rows",
                lambda kw: {**kw, "long_memory": ["a"]})]),
    row(f"{_RG}.state.fresh_rng_state", lambda: {"seed": 0},
        keywords={"seed": [-1, 1.5, "0", None]}),
    row(f"{_RG}.TemplateWriter", lambda: {"seed": 0},
        keywords={"seed": [-1, "0"], "vocab": ["abc", [], ["a b"], [3]],
                  "paragraph_sentences": [0, 1.5], "memory_sentences": [0],
                  "plan_sentences": [0], "words_per_sentence": [(3, 1), (0, 2)]}),
    row(f"{_RG}.pseudo_vocab", lambda: {"n": 5}, keywords={"n": [0, 1.5, 10 ** 6],
                                                          "seed": [-1, "0"]}),
    row(f"{_RG}.keywords", lambda: {"text": "some words here"},
        keywords={"text": _RG_STR, "limit": [-1, 1.5]}),
    row(f"{_RG}.reply_kind", lambda: {"prompt": "Output Paragraph:"},
        keywords={"prompt": _RG_STR}),
    row(f"{_RG}.ScriptedGenerator", lambda: {"responses": ["a"]},
        keywords={"responses": [3, "abc", [3], None]}),
    row(f"{_RG}.WordTokenizer", lambda: {"words": ["a", "b"]},
        keywords={"words": ["abc", [], ["a b"], ["x:"], [3], None]}),
    row(f"{_RG}.StepLMGenerator",
        lambda: {"step_lm": _markov(), "tokenizer": resolve(f"{_RG}.WordTokenizer")(
            ["a", "b", "c", "d"])},
        keywords={"step_lm": [3, None], "tokenizer": [3, ["a"]], "max_tokens": [0, 1.5],
                  "context": [-1, "8"]},
        cases=[(("step_lm", "tokenizer"), "vocab-mismatch",
                lambda kw: {**kw, "tokenizer": resolve(f"{_RG}.WordTokenizer")(["a", "b"])})]),
    row(f"{_RG}.RandomPlan", lambda: {"seed": 0}, keywords={"seed": [-1, "0", 1.5]}),
    row(f"{_RG}.CallbackPolicy", lambda: {"fn": lambda s: "x"}, keywords={"fn": [3, None]}),
    row(f"{_RG}.SimulatedHuman", lambda: {"generator": _rg_gen()},
        keywords={"generator": [3, None], "language": [3, ""]}),
    row(f"{_RG}.FullHistoryWriter",
        lambda: {"generator": _rg_gen(), "paragraphs": ["a"], "plan": "x"},
        keywords={"generator": [3], "paragraphs": ["a", [3]], "plan": _RG_STR,
                  "limits": [3], "seed": [-1], "max_retries": [0]}),
    row(f"{_RG}.RollingWindowWriter",
        lambda: {"generator": _rg_gen(), "paragraphs": ["a"], "plan": "x", "k": 2},
        keywords={"generator": [3], "paragraphs": [[3]], "plan": _RG_STR,
                  "k": [0, 1.5, "3"]}),
    row(f"{_RG}.recurrent_step", _rg_step,
        keywords={"state": [3, None], "generator": [3, None], "embedder": [3, None]},
        cases=_RG_WRONG_WIDTH),
    row(f"{_RG}.retrieve", lambda: {"state": _rg_state(), "embedder": _rg_embedder()},
        keywords={"state": [3, None], "embedder": [3, None]}, cases=_RG_WRONG_WIDTH),
    row(f"{_RG}.initialise",
        lambda: {"generator": resolve(f"{_RG}.TemplateWriter")(0, paragraph_sentences=2),
                 "embedder": _rg_embedder(), "genre": "g", "topic": "t"},
        keywords={"generator": [3], "embedder": [3, None], "genre": _RG_STR,
                  "topic": _RG_STR, "policy": [3], "config": [3], "seed": [-1, 1.5],
                  "chapters": [0]}),
    row(f"{_RG}.run", lambda: {**_rg_step(), "n_steps": 1},
        keywords={"state": [3, None], "n_steps": [-1, 1.5, "1"], "generator": [3],
                  "embedder": [3], "policy": [3], "hooks": [3, [3]]},
        cases=_RG_WRONG_WIDTH),
    row(f"{_RG}.interactive_fiction_step", lambda: {"state": _rg_state(), "reader_choice": 1},
        keywords={"state": [3, None], "reader_choice": [3, -1, 1.5, "0", None]}),
]
EXCLUDED_RGPT: dict = {
    "RecurrentGPT's records (frozen dataclasses of text): WriterOutput, InitOutput, "
    "PlanSelection and HumanEdit are what the parsers return (their format_* rows feed a wrong "
    "record), StepRecord and BaselineRecord are returned by recurrent_step and the baselines' "
    "step; no function takes one as an input to validate": [
        f"{_RG}.WriterOutput", f"{_RG}.InitOutput", f"{_RG}.PlanSelection", f"{_RG}.HumanEdit",
        f"{_RG}.StepRecord", f"{_RG}.BaselineRecord",
    ],
    "RecurrentGPT's structural protocols (typing.Protocol) and its exception types": [
        f"{_RG}.TextGenerator", f"{_RG}.Embedder", f"{_RG}.ParseError",
        f"{_RG}.GenerationFailed",
    ],
    "FirstPlan takes no arguments (its choose() validates the state; "
    "tests/papers/recurrentgpt/test_loop.py); SentenceTransformerEmbedder needs the optional "
    "sentence-transformers package and a model download, never available to the tests": [
        f"{_RG}.FirstPlan", f"{_RG}.SentenceTransformerEmbedder",
    ],
}
# (SECTION-RGPT) end

# --- exclusions, with the reason (each name explicit: a new callable must be placed) ----------

# --- refseq.oracle: the checker of users' implementations ---------------------------------------


def _oracle_check():
    from refseq.scan import linear_scan
    return {"fn": linear_scan, "contract": "linear_scan", "dtypes": ("float64",),
            "max_examples": 0}


_ORACLE_KW = {"contract": ["nope", 3], "fn": [3], "adapter": ["nope", 3],
              "dtypes": [("int32",), ()], "max_examples": [-1, 1.5], "seed": [-1, "x"],
              "dims": [{"Q": 3}, 3]}
TABLE += [
    row("refseq.oracle.check", _oracle_check, flags=("raise_on_failure",),
        keywords={**_ORACLE_KW, "backward": [3]}),
    row("refseq.oracle.run_suite", _oracle_check, keywords=_ORACLE_KW),
    row("refseq.oracle.replay",
        lambda: {"contract": "linear_scan", "seed": 0, "dims": {"B": 1, "T": 3, "D": 2},
                 "dtype": "float32"},
        keywords={"contract": ["nope", 3], "seed": [-1, "x"], "dims": [3],
                  "dtype": ["int8", "nope"]}),
    row("refseq.oracle.get_contract", lambda: {"contract": "linear_scan"},
        keywords={"contract": ["nope", 3]}),
    row("refseq.oracle.get_adapter", lambda: {"adapter": "numpy"},
        keywords={"adapter": ["nope", 3]}),
    row("refseq.oracle.load_callable", lambda: {"spec": "refseq.scan:linear_scan"},
        keywords={"spec": [3, "nocolon"]}),
    row("refseq.oracle.make_test", lambda: {"fn": np.cumsum, "contract": "linear_scan"},
        keywords={"fn": [3], "contract": ["nope"]}),
    row("refseq.oracle.lossless.reference_sampler",
        lambda: {"parents": np.array([-1, 0, 0]), "tokens": np.array([1, 0, 2]),
                 "target_probs": np.full((3, 3), 1 / 3), "draft_probs": np.full((3, 3), 1 / 3),
                 "mode": "iid", "u_accept": np.array([0.0, 0.5, 0.5]), "u_final": 0.5},
        arrays={"target_probs": F, "draft_probs": F, "tokens": ids(3)},
        keywords={"mode": ["nope", 3], "u_final": [1.0, -0.5, np.nan]},
        cases=[("parents", "parents-not-topological",
                lambda kw: {**kw, "parents": np.array([-1, 2, 0])}),
               ("u_accept", "u_accept-one", lambda kw: {**kw, "u_accept": np.ones(3)})]),
    row("refseq.oracle.lossless.reference_sampler_rng",
        lambda: {"parents": np.array([-1, 0]), "tokens": np.array([1, 0]),
                 "target_probs": np.full((2, 2), 0.5), "draft_probs": None, "mode": "point",
                 "rng": 0},
        arrays={"target_probs": F}, keywords={"rng": ["x", -1], "mode": ["nope"]}),
]

_RECORD = ("record type (a dataclass or NamedTuple of arrays): built by the library's own init_*, "
           "forward and decoding functions (decoders return them as results) and validated where "
           "it is consumed (every consumer's row feeds it a wrong record)")
EXCLUDED = {
    _RECORD: [
        "refseq.scan.SoftmaxState", "refseq.scan.AssociativeOp", "refseq.nn.MLPParams",
        "refseq.train.TrainLog",
        "refseq.recurrence.CellSpec",
        "refseq.models.tiny_transformer.BlockParams", "refseq.models.tiny_transformer.Gradients",
        "refseq.models.tiny_transformer.LayersCache",
        "refseq.models.tiny_transformer.ModelCache", "refseq.models.tiny_transformer.TinyParams",
        "refseq.rnn.bidirectional.BidirectionalCache", "refseq.rnn.elman.ElmanCache",
        "refseq.rnn.lstm.LSTMParams", "refseq.rnn.lstm.LSTMCache", "refseq.rnn.stack.StackCache",
        "refseq.papers.aaren.AarenParams", "refseq.papers.aaren.AarenBlockParams",
        "refseq.papers.pv_rnn.PVRNNLayer", "refseq.papers.pv_rnn.PVRNNParams",
        "refseq.papers.pv_rnn.PVRNNCache", "refseq.papers.pv_rnn.VRNNParams",
        "refseq.papers.recoding.LayerCache", "refseq.papers.recoding.StepCache",
        "refseq.papers.rnn_review.JordanCache", "refseq.papers.rnn_review.RNNLMState",
        "refseq.decoding.GenOutput", "refseq.decoding.Hypothesis",
        "refseq.decoding.diverse_beam.DBSHypothesis", "refseq.decoding.diverse_beam.DBSResult",
        "refseq.decoding.exact.ExactMode", "refseq.decoding.peers.HFComparison",
        "refseq.decoding.speculative.greedy.VerifyResult",
        "refseq.decoding.peers.HFGenerateOutput", "refseq.decoding.peers.HFRow",
        "refseq.decoding.peers.HFState", "refseq.models.tiny_transformer.batched_lm.BatchedState",
        "refseq.papers.hyperfitting.Continuations", "refseq.papers.hyperfitting.HyperfitLog",
        "refseq.papers.hyperfitting.LogEntry", "refseq.papers.hyperfitting.HyperfitSplits",
        "refseq.papers.making_the_most.HSOResult", "refseq.papers.making_the_most.StreamState",
        "refseq.decoding.speculative.engine.SpecStats",
    ],
    "VJP of pool_forward: its cache argument is pool_forward's own output (the pool, carry, R, w "
    "and layer-norm caches it built from arguments its row validates), so a bad cache can only be "
    "forged; its gradients are checked (through recurrent_loss_and_grad) against finite "
    "differences in tests/papers/making_the_most/test_recurrent.py": [
        "refseq.papers.making_the_most.pool_backward",
    ],
    "a typing.Protocol (structural type for isinstance checks), not a computation": [
        "refseq.decoding.StepLM", "refseq.decoding.speculative.target.TreeLM",
        "refseq.decoding.speculative.engine.Drafter",
    ],
    "Numba device/intrinsic scalar functions: compiled into kernels, called only with scalars "
    "by validated kernels; not callable on arrays from Python": [
        "refseq.cuda.recurrence.scalar.exp", "refseq.cuda.recurrence.scalar.tanh",
        "refseq.cuda.recurrence.scalar.sigmoid", "refseq.jit.recurrence.scalar.exp",
        "refseq.jit.recurrence.scalar.tanh", "refseq.jit.recurrence.scalar.sigmoid",
        "refseq.jit.tile.tile_gemm",
    ],
    "kernel factories/launchers below the public functions: they take a dtype or device arrays "
    "that the public linear_scan/flashrnn_* rows (which call them) have already validated": [
        "refseq.cuda.recurrence.backward.build", "refseq.cuda.recurrence.forward.build",
        "refseq.cuda.recurrence.projection.build", "refseq.cuda.scan.launch_linear_scan",
        "refseq.cuda.recurrence.mirror.reduce_blocked", "refseq.jit.tile.lanes",
    ],
    "environment probes without array arguments (tests/cuda, tests/jit cover them)": [
        "refseq.cuda.simulating", "refseq.cuda.availability", "refseq.cuda.require_numba_cuda",
        "refseq.cuda.to_host", "refseq.jit.blas_threads.available",
        "refseq.jit.blas_threads.single_threaded_blas",
    ],
    "the oracle's records and adapter classes (built by check/get_adapter, whose rows feed them "
    "bad names), its catalog listings without arguments and the catalog's registration hooks "
    "(run once at import; tests/oracle covers them)": [
        "refseq.oracle.Adapter", "refseq.oracle.CaseResult", "refseq.oracle.Contract",
        "refseq.oracle.OracleFailure", "refseq.oracle.Report",
        "refseq.oracle.adapters.JaxAdapter", "refseq.oracle.adapters.NumpyAdapter",
        "refseq.oracle.adapters.TorchAdapter", "refseq.oracle.contract_table",
        "refseq.oracle.contracts", "refseq.oracle.properties",
        "refseq.oracle.nn_contracts.backward_contract", "refseq.oracle.nn_contracts.register_all",
        "refseq.oracle.nn_more.register_more",
    ],
    "paper metadata behind refseq papers / refseq demo (tests/test_cli.py)": [
        "refseq.papers.Paper", "refseq.papers.slugs", "refseq.papers.paper",
        "refseq.papers.demos", "refseq.papers.format_papers",
    ],
}
for _extra in (EXCLUDED_TR, EXCLUDED_DYSPEC, EXCLUDED_RSD, EXCLUDED_ADED, EXCLUDED_KV,
               EXCLUDED_DKVB, EXCLUDED_RGPT):
    for _reason, _names in _extra.items():
        EXCLUDED.setdefault(_reason, []).extend(_names)

# Public callables whose rows are not written yet (test_no_public_callable_is_pending fails
# while this is non-empty).
PENDING = ()



# ================================================================================================
# The tests
# ================================================================================================


def _param_names(r):
    """Every parameter name of the row's function (the accepted names of a shape mismatch)."""
    try:
        return tuple(inspect.signature(resolve(r.fn)).parameters)
    except (TypeError, ValueError):
        return ()


def _names(message: str, arg) -> bool:
    """Whether ``message`` names ``arg`` (or one of the names in a tuple) as a word."""
    names = arg if isinstance(arg, tuple) else (arg,)
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(a)}(?![A-Za-z0-9_])", message)
               for a in names)


def _one_of(arg):
    return f"one of {arg}" if isinstance(arg, tuple) else repr(arg)


def _unique_ids():
    """A name shared by two rows (``forward`` of two packages) gets its package as prefix."""
    counts = {}
    for r in TABLE:
        counts[r.name] = counts.get(r.name, 0) + 1
    for r in TABLE:
        if counts[r.name] > 1 and r.id is None:
            r.id = f"{r.fn.split('.')[-2]}.{r.name}"
    names = [r.name for r in TABLE]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


_unique_ids()


def _cuda_ok():
    try:
        from refseq.cuda import availability

        return availability()[0]
    except Exception:  # noqa: BLE001 - numba-cuda missing or broken: the cuda rows skip
        return False


def _label(v) -> str:
    """``repr(v)``, without a memory address: test ids must be the same in every process
    (pytest-xdist compares the workers' collections)."""
    text = repr(v)
    return f"<{type(v).__name__}>" if " at 0x" in text else text


def _cases():
    """``(id, row, argument named, build bad kwargs)`` for every bad input of every row."""
    out = []
    for r in TABLE:
        if not r.arrays:  # nothing to derive from the valid arguments: build when run
            valid = {}
        else:
            try:
                valid = r.build()
            except Exception as e:  # noqa: BLE001 - the control test reports it
                out.append((f"{r.name}-build", r, None, e))
                continue
        finite = r.checks_finite()
        for arg, spec in r.arrays.items():
            if arg not in valid or valid[arg] is None:
                raise AssertionError(f"{r.name}: array argument {arg} missing from the builder")
            if not isinstance(spec, Ids) and finite:
                spec = spec | {"nan", "inf"}
            for kind, bad in _mutations(spec, valid[arg]):
                # a shape mismatch is between arguments: naming either side is right
                named = _param_names(r) if kind == "shape" else arg
                out.append((f"{r.name}-{arg}-{kind}", r, named,
                            lambda kw, arg=arg, bad=bad: {**kw, arg: bad}))
        for flag in r.flags:
            for label in FLAG_BAD:
                out.append((f"{r.name}-{flag}-{label}", r, flag,
                            lambda kw, flag=flag, v=_FLAG_VALUES[label]: {**kw, flag: v}))
        for kw_name, values in r.keywords.items():
            for v in values:
                out.append((f"{r.name}-{kw_name}-{_label(v)}"[:90], r, kw_name,
                            lambda kw, k=kw_name, v=v: {**kw, k: v}))
        for arg, label, make in r.cases:
            out.append((f"{r.name}-{label}", r, arg, make))
    return out


CASES = _cases()


class Hang(BaseException):
    """A call that ran past HANG_S seconds (a BaseException: no ``except Exception`` eats it)."""


HANG_S = 10.0


def _torch_ok():
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def _skip_unavailable(r):
    """Skip a row whose tier is missing here (before its builder, which may need the tier)."""
    if r.tier == "cuda" and not _cuda_ok():
        pytest.skip("no CUDA GPU or simulator (set NUMBA_ENABLE_CUDASIM=1)")
    if r.tier == "torch" and not _torch_ok():
        pytest.skip("torch and transformers are not installed (pip install 'refseq[peers]')")


def _run(r, kwargs):
    _skip_unavailable(r)
    fn = resolve(r.fn)
    kwargs = dict(kwargs)
    args = kwargs.pop("*", ())  # positional arguments of a function with *args
    if not hasattr(signal, "setitimer"):  # pragma: no cover - Windows: no guard
        return fn(*args, **kwargs)

    def alarm(signum, frame):
        raise Hang(f"{r.name} still running after {HANG_S:g} s (an unbounded loop?)")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("r", TABLE, ids=[r.name for r in TABLE])
def test_control(r):
    """The row's valid arguments run (so each bad-input failure below is the bad input's)."""
    _skip_unavailable(r)
    error = None
    try:
        _run(r, r.build())
    except Exception as e:  # noqa: BLE001 - any error of a valid call is the failure
        error = e
    assert error is None, f"{r.name}: the valid call raised {type(error).__name__}: {error}"


# feeding inf to a kernel before its after-the-pass check is the point of some cases
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case):
    name, r, arg, make = case
    if arg is None:
        pytest.fail(f"{r.name}: the builder failed: {make!r}")
    _skip_unavailable(r)
    valid = r.build()
    bad = make(valid)
    problem = None
    try:
        out = _run(r, bad)
    except (TypeError, ValueError) as e:
        msg = str(e)
        if not _names(msg, arg):
            problem = f"{name}: {type(e).__name__} does not name {_one_of(arg)}: {msg[:300]}"
    except pytest.skip.Exception:
        raise
    except Hang as e:
        problem = f"{name}: hangs: {e}"
    except Exception as e:  # noqa: BLE001
        problem = (f"{name}: raised {type(e).__name__} (want TypeError/ValueError naming "
                   f"{_one_of(arg)}): {str(e)[:300]}")
    else:
        problem = f"{name}: no error; returned {type(out).__name__} (a silent result)"
    assert problem is None, problem


def test_every_public_callable_is_covered():
    """Each public callable is a row of TABLE or in EXCLUDED (with its reason); no row or
    exclusion names something that is not public any more."""
    surface = public_surface()
    by_id = {id(v): k for k, v in surface.items()}
    tabled = {id(resolve(r.fn)) for r in TABLE}
    excluded = {}
    for dotted in [n for names in EXCLUDED.values() for n in names] + list(PENDING):
        excluded[id(resolve(dotted))] = dotted
    missing = sorted(by_id[i] for i in by_id if i not in tabled and i not in excluded)
    assert not missing, (
        f"{len(missing)} public callables are neither in TABLE nor in EXCLUDED:\n  "
        + "\n  ".join(missing))
    # (a row may also cover a function outside the surface; an exclusion may not)
    stale = sorted(d for i, d in excluded.items() if i not in by_id)
    assert not stale, "exclusions that are not public callables: " + ", ".join(stale)
    both = sorted(excluded[i] for i in tabled & set(excluded))
    assert not both, "both a row and an exclusion: " + ", ".join(both)


def test_no_public_callable_is_pending():
    """PENDING lists public callables whose rows are not written yet: each is a gap."""
    assert not PENDING, (f"{len(PENDING)} public callables have no row yet:\n  "
                         + "\n  ".join(sorted(PENDING)))
