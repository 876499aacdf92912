"""Kernel-versus-reference harness over the hot-path registry (:mod:`refseq.registry`).

One check (:func:`run_check`) takes a registry entry, a tier, a shape and a dtype, and

1. draws the inputs in float64 (``entry.make_inputs``) and runs the NumPy reference on them:
   the oracle ``desired`` (:func:`oracle`);
2. measures the error the problem forces on float32 arithmetic, in float32 units: the reference
   on the float32-rounded inputs, plus (``entry.error_samples`` of each) the backward-error
   samples of :func:`refseq.testing.perturbed_runs` and the elementary-function rounding
   samples of :func:`refseq.testing.rounded_runs`, both taken on the inputs the tier receives;
3. runs the public function on the tier while counting the calls of its compiled twin
   ``refseq.<tier>.<hot path>:<name>`` (:func:`counting_calls`), so a dispatch that silently runs
   the NumPy code fails the check instead of passing it trivially;
4. compares with :func:`refseq.testing.check_close` (factor 2 forward, 4 backward; the rule of
   docs/design.md, "The tolerance rule").

``refseq audit`` runs exactly this function (``refseq.audit.run_check`` is it), and so do the
kernel tests (tests/test_registry.py), so a number in the audit table and a test verdict
come from one rule. Hand-written checks that need more than a registry entry can express (flags,
launch shapes, another formulation of the reference) build the same bound from
:class:`Oracle` and :func:`in_float32_units`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from dataclasses import dataclass, field

import numpy as np

from refseq.testing._close import check_close, leaves, perturbed_runs, rounded_runs

__all__ = [
    "EPS_RATIO", "SAMPLES", "Check", "Oracle", "TierDidNotRun", "assert_tier_matches",
    "cast_inputs", "check_exact", "check_indices", "counting_calls", "in_float32_units",
    "indices_oracle", "oracle", "run_check",
]

EPS_RATIO = float(np.finfo(np.float32).eps / np.finfo(np.float64).eps)
"""``eps_f32 / eps_f64`` (2**29): converts a float64 error into float32 units."""

SAMPLES = None
"""Default of :func:`oracle`'s ``samples``: the entry's own ``error_samples``."""


class TierDidNotRun(AssertionError):
    """A call on a compiled tier returned without running that tier's implementation."""


@dataclass
class Check:
    """The outcome of one :func:`run_check`.

    ``max_err`` is the largest finite ``|actual - desired|``, ``bound`` the tolerance at that
    entry, ``ratio`` the largest ``|err| / bound`` over all entries (the audit's "worst err/tol";
    at most 1 when ``ok``). ``calls`` counts the calls of the tier's twin during the checked call
    (None on the numpy tier). Times are in seconds (NaN when not timed).
    """

    name: str
    tier: str
    dims: dict
    dtype: str
    ok: bool
    max_err: float
    bound: float
    ratio: float
    seconds: float
    numpy_seconds: float
    message: str = ""
    calls: int | None = None

    @property
    def speedup(self) -> float:
        return self.numpy_seconds / self.seconds if self.seconds > 0 else float("nan")


def cast_inputs(args, kwargs, dtype):
    """Cast every floating array among ``args``/``kwargs`` (in tuples and dicts) to ``dtype``."""

    def cast(x):
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            return x.astype(dtype)
        if isinstance(x, dict):
            return {k: cast(v) for k, v in x.items()}
        if isinstance(x, tuple):
            return type(x)(*(cast(y) for y in x)) if hasattr(x, "_fields") else tuple(map(cast, x))
        return x

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


def in_float32_units(run64, desired):
    """A float64 run of another formulation of the reference, as a "run" whose error against
    ``desired`` is its own error times :data:`EPS_RATIO`, leaf by leaf.

    For a float64 result the bound is ``f * err32 * eps_f64 / eps_f32``; a float64 formulation
    that differs from the oracle by a few float64 ulps (BLAS against ``einsum``, a tree against a
    loop) is itself a float64 implementation, so its error, unscaled, belongs in that bound. Put
    the converted run in the ``reference`` list. Non-finite entries are kept as they are.
    """
    out = []
    for r, d in zip(leaves(run64), leaves(desired), strict=True):
        r, d = np.asarray(r, np.float64), np.asarray(d, np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = d + EPS_RATIO * (r - d)
        out.append(np.where(np.isfinite(r) & np.isfinite(d), scaled, r))
    return tuple(out)


@dataclass
class Oracle:
    """The float64 oracle of one input and the reference's error samples.

    Attributes
    ----------
    desired : the float64 reference on the float64 inputs.
    runs32 : list of results whose error against ``desired`` is in float32 units: the
        reference on the float32-rounded inputs, backward-error samples and rounding samples.
    runs64 : list of float64 results of other formulations of the reference; they count for
        float64 results only (:func:`in_float32_units`).
    exact, exempt : ``"exact"`` entries: compare bit for bit, except the (B,) rows ``exempt``.
    same : ``"indices"`` entries: the reference on the very inputs the tier receives (its
        integer outputs are compared exactly, :func:`check_indices`); ``exempt`` is then a
        tuple of per-leaf boolean masks.
    """

    desired: object
    runs32: list = field(default_factory=list)
    runs64: list = field(default_factory=list)
    exact: bool = False
    exempt: np.ndarray | None = None
    same: object = None

    def reference(self, dtype) -> list:
        """The ``reference`` list for :func:`refseq.testing.check_close` of a ``dtype`` result."""
        runs = list(self.runs32)
        if np.dtype(dtype) == np.float64:
            runs += [in_float32_units(r, self.desired) for r in self.runs64]
        return runs

    def check(self, actual, *, kind="forward", atol=0.0):
        """``check_close(actual, desired, reference)`` with this oracle's runs; the dtype of the
        first floating leaf of ``actual`` selects the float64-only runs."""
        if self.exact:
            return check_exact(actual, self.desired, self.exempt)
        if self.same is not None:
            return check_indices(actual, self.same, self.desired, self.runs32, self.exempt)
        dtype = next((x.dtype for x in leaves(actual) if x.dtype.kind == "f"), np.float32)
        return check_close(actual, self.desired, self.reference(dtype), kind=kind, atol=atol)


def check_exact(actual, desired, exempt=None, *, strict_dtype=True):
    """Bit-for-bit comparison of every output, for the ``"exact"`` registry entries.

    ``exempt`` (B,) bool marks leading-axis rows (trees) allowed to differ (near a decision
    boundary). Returns ``(ok, err, 0.0, ratio, message)`` like
    :func:`refseq.testing.check_close`: ``err`` is the number of differing entries outside the
    exempt rows and ``ratio`` 0 or inf. With ``strict_dtype=False`` (the oracle, for users'
    functions) integer outputs of any width compare by value; floats must still be floats.
    """
    bad, first = 0, ""
    got, want = leaves(actual), leaves(desired)
    if len(got) != len(want):
        return False, np.inf, 0.0, np.inf, f"{len(got)} outputs, expected {len(want)}"
    for i, (x, d) in enumerate(zip(got, want)):
        same = x.dtype == d.dtype or (not strict_dtype and x.dtype.kind in "iub"
                                      and d.dtype.kind in "iub")
        if x.shape != d.shape or not same:
            return (False, np.inf, 0.0, np.inf, f"output {i} has shape {x.shape} dtype "
                    f"{x.dtype}, expected {d.shape} {d.dtype}")
        diff = ~((x == d) | (np.isnan(x) & np.isnan(d)) if x.dtype.kind == "f" else (x == d))
        if exempt is not None and diff.ndim and diff.shape[0] == exempt.shape[0]:
            diff[exempt] = False
        if diff.any() and not first:
            j = tuple(int(t) for t in np.argwhere(diff)[0])
            first = f"output {i} differs at {j}: {x[j]} vs {d[j]}"
        bad += int(diff.sum())
    flagged = 0 if exempt is None else int(np.sum(exempt))
    note = f" ({flagged} tree(s) near a decision boundary exempt)" if flagged else ""
    if bad:
        return False, float(bad), 0.0, np.inf, f"{bad} entries differ; {first}{note}"
    return True, 0.0, 0.0, 0.0, f"identical{note}" if note else ""


def check_indices(actual, same, desired, runs32, exempt=None, *, strict_dtype=True):
    """The ``"indices"`` comparison (the key-value lookup): integer leaves of ``actual`` equal
    those of ``same`` (the reference on the same inputs) value for value, floating leaves lie
    within :func:`refseq.testing.check_close`'s forward bound around ``desired`` (the float64
    reference) set by ``runs32``; entries where the per-leaf masks ``exempt`` are True (queries
    with a near-tie) are left out of both. Returns ``(ok, err, bound, ratio, message)`` like
    :func:`check_close`; ``err`` counts differing integers when those fail.
    """
    got, want, ref = leaves(actual), leaves(same), leaves(desired)
    if len(got) != len(ref):
        return False, np.inf, 0.0, np.inf, f"{len(got)} outputs, expected {len(ref)}"
    masks = [None] * len(ref) if exempt is None else [np.asarray(m, bool) for m in exempt]
    runs = [leaves(r) for r in runs32]
    fa, fd, fr, bad, first = [], [], [[] for _ in runs], 0, ""
    for i, (x, w, d) in enumerate(zip(got, want, ref)):
        integer = d.dtype.kind in "iub"
        same_kind = (x.dtype == w.dtype or (not strict_dtype and integer
                                            and x.dtype.kind in "iub")) if integer else (
            x.dtype.kind == "f")
        if x.shape != d.shape or not same_kind:
            return (False, np.inf, 0.0, np.inf, f"output {i} has shape {x.shape} dtype "
                    f"{x.dtype}, expected {d.shape} {d.dtype}")
        m = np.zeros(d.shape, bool) if masks[i] is None else masks[i]
        if integer:
            diff = (x != w) & ~m
            if diff.any() and not first:
                j = tuple(int(t) for t in np.argwhere(diff)[0])
                first = f"output {i} differs at {j}: {x[j]} vs {w[j]}"
            bad += int(diff.sum())
            continue
        fa.append(np.where(m, 0.0, x.astype(np.float64)).astype(x.dtype))
        fd.append(np.where(m, 0.0, d))
        for k, run in enumerate(runs):
            fr[k].append(np.where(m, 0.0, run[i]))
    flagged = sum(int(np.sum(m)) for m in masks if m is not None)
    note = f" ({flagged} output entries of near-tie queries exempt)" if flagged else ""
    if bad:
        return False, float(bad), 0.0, np.inf, f"{bad} integer entries differ; {first}{note}"
    ok, err, bound, ratio, msg = check_close(tuple(fa), tuple(fd), [tuple(r) for r in fr])
    return ok, err, bound, ratio, (msg + note).strip()


def indices_oracle(reference, boundary, args64, kw64, dtype) -> Oracle:
    """The :class:`Oracle` of an ``"indices"`` function ``reference`` (called like the
    tier) on float64 inputs ``args64``/``kw64`` for a ``dtype`` result: ``same`` on the inputs
    cast to ``dtype``, ``desired`` on the float64 ones, the float32 run, and as ``exempt`` the
    union of ``boundary`` on the ``dtype`` and the float32 inputs (either run may rank a
    near-tie otherwise)."""
    args32, kw32 = cast_inputs(args64, kw64, np.float32)
    args, kw = cast_inputs(args64, kw64, dtype)
    exempt = None
    if boundary is not None:
        exempt = tuple(a | b for a, b in zip(boundary(args, kw), boundary(args32, kw32)))
    return Oracle(reference(*args64, **kw64), [reference(*args32, **kw32)], exempt=exempt,
                  same=reference(*args, **kw))


def oracle(entry, dims, dtype, seed=0, *, samples=SAMPLES) -> Oracle:
    """The :class:`Oracle` of registry ``entry`` at ``dims`` for a ``dtype`` result.

    Inputs come from ``entry.make_inputs(np.random.default_rng(seed), dims, np.float64)``; the
    samples are taken on those inputs cast to ``dtype`` (what the tier receives), the float32
    run on them cast to float32. ``samples`` (default: ``entry.error_samples``) backward-error
    and as many rounding samples join the float32 run; with 0 the float32 run alone sets the
    bound.
    """
    rng = np.random.default_rng(seed)
    args64, kw64 = entry.make_inputs(rng, dims, np.float64)
    args32, kw32 = cast_inputs(args64, kw64, np.float32)
    args, kw = cast_inputs(args64, kw64, dtype)
    if entry.kind == "indices":  # integers exact on the tier's inputs, floats by the rule
        return indices_oracle(functools.partial(entry.result, "numpy"), entry.boundary, args64,
                              kw64, dtype)
    if entry.kind == "exact":  # the reference on the very inputs the tier receives
        exempt = None if entry.boundary is None else entry.boundary(args, kw)
        return Oracle(entry.result("numpy", *cast_inputs(args, kw, dtype)[0], **kw), exact=True,
                      exempt=exempt)
    reference = functools.partial(entry.call, "numpy")
    runs = [reference(*args32, **kw32)]
    samples = entry.error_samples if samples is None else samples
    if samples:
        runs += perturbed_runs(reference, *args, samples=samples, seed=seed, **kw)
        runs += rounded_runs(reference, *args, modules=(f"refseq.{entry.hot_path}",),
                             samples=samples, seed=seed, **kw)
    return Oracle(reference(*args64, **kw64), runs)


@contextlib.contextmanager
def counting_calls(hot_path: str, name: str, tier: str):
    """Count the calls of ``refseq.<tier>.<hot_path>:<name>`` inside the block.

    Yields a one-element list holding the count. The module attribute is wrapped for the
    duration and restored afterwards; it works because :func:`refseq.tiers.implementation` looks
    the twin up by name at call time. Not thread-safe (the module is patched).
    """
    module = importlib.import_module(f"refseq.{tier}.{hot_path}")
    original = getattr(module, name)
    calls = [0]

    @functools.wraps(original)
    def spy(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(module, name, spy)
    try:
        yield calls
    finally:
        setattr(module, name, original)


def _best_time(fn, repeats):
    """The best wall time of ``repeats`` calls of ``fn`` (NaN when ``repeats`` is 0)."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best if repeats else np.nan


def run_check(entry, tier: str, dims: dict, dtype, seed: int = 0, repeats: int = 0,
              *, reference: Oracle | None = None) -> Check:
    """Check ``entry`` on ``tier`` at ``dims``/``dtype`` against the float64 reference.

    Parameters
    ----------
    entry : :class:`refseq.registry.HotPath`.
    tier : "numpy" | "jit" | "cuda" (raises ``BackendUnavailable`` if it cannot run here).
    dims : the named dimensions ``entry.make_inputs`` takes.
    dtype : float32 or float64, the dtype the tier computes in.
    seed : seeds the inputs and the samples.
    repeats : time this many further calls, after the checked one (0: no timing).
    reference : an :class:`Oracle` from :func:`oracle` with the same arguments, to share one
        between tiers; computed when omitted.

    Returns
    -------
    :class:`Check`; ``ok`` is False when the result is outside the bound or, on a compiled tier,
    when the twin was never called (``message`` says which).
    """
    ref = reference if reference is not None else oracle(entry, dims, dtype, seed)
    args64, kw64 = entry.make_inputs(np.random.default_rng(seed), dims, np.float64)
    args, kw = cast_inputs(args64, kw64, dtype)
    calls = None
    if tier == "numpy":
        actual = entry.result(tier, *args, **kw)
    else:
        with counting_calls(entry.hot_path, entry.kernel, tier) as counter:
            actual = entry.result(tier, *args, **kw)
        calls = counter[0]
    seconds = _best_time(lambda: entry.call(tier, *args, **kw), repeats)
    numpy_seconds = seconds
    if tier != "numpy" and repeats:
        numpy_seconds = _best_time(lambda: entry.call("numpy", *args, **kw), max(1, repeats // 3))
    ok, err, bound, ratio, msg = ref.check(actual, kind=entry.kind)
    if calls == 0:
        ok = False
        msg = (f"the {tier} tier did not run: refseq.{tier}.{entry.hot_path}:{entry.kernel} was "
               f"never called" + (f"; {msg}" if msg else ""))
    return Check(entry.name, tier, dict(dims), np.dtype(dtype).name, ok, err, bound, ratio,
                 seconds, numpy_seconds, msg, calls)


def assert_tier_matches(entry, tier: str, dims: dict, dtype, seed: int = 0) -> Check:
    """:func:`run_check`, raising ``AssertionError`` (:class:`TierDidNotRun` when the twin was
    never called) with the check's message when it fails; returns the :class:`Check`."""
    c = run_check(entry, tier, dims, dtype, seed)
    where = f"{entry.name} [{tier}, {dims}, {c.dtype}, seed {seed}]"
    if c.calls == 0:
        raise TierDidNotRun(f"{where}: {c.message}")
    if not c.ok:
        raise AssertionError(f"{where}: {c.message}")
    return c
