"""The derived tolerance (docs/design.md, "The tolerance rule").

The float64 reference is the oracle ``desired``. A result of dtype ``dtype`` passes elementwise
when

.. math:: |x - d| \\le f \\cdot \\max_j |r_j - d_j|
          \\cdot \\frac{\\epsilon_{dtype}}{\\epsilon_{f32}} + atol + \\epsilon_{dtype} |d|

where ``r`` is the reference itself run in float32 on the same (rounded) inputs, ``f`` is 2 for a
forward pass and 4 for a backward pass, and ``epsilon`` comes from ``np.finfo``. The first term is
the error that the problem's conditioning forces on any float32 implementation, measured rather
than guessed; for a float64 result it is scaled down by the ratio of machine epsilons. The
``atol + eps |d|`` guard covers exact results (where the reference error is zero) and entries near
zero. Non-finite entries must match in position and sign.

One run is a sample of the error, and on a tiny problem (one or two entries per leaf) it can be
far too small. Two kinds of further samples, both in float32 units, are offered; pass them in the
``reference`` list beside the float32 runs:

* :func:`perturbed_runs` (backward error of the arithmetic). Float32 cancellation of float32
  inputs is often exact, so the measured error drops far below what a reassociated but equally
  good implementation makes. A backward-stable float32 algorithm returns the exact result of
  inputs perturbed by a few units of ``eps_f32`` each, so the float64 reference on inputs
  perturbed by one ``eps_f32`` each is a result that such an algorithm could return.
* :func:`rounded_runs` (rounding of elementary functions). ``exp``, ``log``, ``tanh``, the
  logistic sigmoid and their kin are not correctly rounded by IEEE 754: every library (NumPy's,
  libm, a GPU's, a kernel's own) returns a faithful result, within one ulp, and the ulps differ.
  Where a function saturates, one ulp of its *output* is amplified: ``1 - tanh(x)^2`` of a
  ``tanh`` one ulp below 1 moves by ``2 eps``, a large relative error of a tiny quantity. No
  perturbation of the inputs reproduces that, and float32 cannot show it either (a saturated
  float32 ``tanh`` is exactly 1, so the float32 error of ``1 - tanh^2`` is capped by the value
  itself, ``eps_f32``-independent, and scaling it to float64 by the eps ratio underestimates the
  float64 error by orders of magnitude). The reference run in float64 with each elementary
  function's output multiplied by ``1 + eps_f32 u``, ``|u| <= 1``, is the result of an
  implementation whose functions are faithful in float32; its error is linear in the
  perturbation, so the eps-ratio scaling to a float64 result is valid for it.

A constant factor would do neither: it loosens every bound to fix the few cases whose samples
were unlucky, while these samples only grow where the problem allows a larger error.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np

FACTORS = {"forward": 2.0, "backward": 4.0}


def leaves(x) -> list[np.ndarray]:
    """Flatten an array or a (nested) tuple/list of arrays, skipping None, into a list."""
    if x is None:
        return []
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in leaves(item)]
    if isinstance(x, dict):
        return [leaf for key in x for leaf in leaves(x[key])]
    return [np.asarray(x)]


def tolerance(desired, reference=None, *, dtype, kind="forward", atol=0.0) -> np.ndarray:
    """Elementwise bound on ``|actual - desired|`` for a result of ``dtype`` (see module doc).

    ``reference`` is one float32 run of the reference, or a list of runs (its formulations, e.g.
    sequential and tree scans); the largest error among them sets the bound.
    """
    if kind not in FACTORS:
        raise ValueError(f"kind must be one of {sorted(FACTORS)}, got {kind!r}")
    d = np.asarray(desired, np.float64)
    eps = float(np.finfo(dtype).eps)
    ref_err = 0.0
    runs = [] if reference is None else reference if isinstance(reference, list) else [reference]
    for run in runs:
        r = np.asarray(run, np.float64)
        if r.shape != d.shape:
            raise ValueError(f"reference has shape {r.shape}, desired {d.shape}")
        both = np.isfinite(r) & np.isfinite(d)
        if both.any():
            ref_err = max(ref_err, float(np.max(np.abs(r[both] - d[both]))))
    ref_err *= eps / float(np.finfo(np.float32).eps)
    with np.errstate(invalid="ignore", over="ignore"):
        return FACTORS[kind] * ref_err + atol + eps * np.abs(d)


def _as_float64(x, change=lambda y: y):
    """``x`` with every floating-point array (also inside tuples, lists and dicts) cast to
    float64 and passed through ``change``; everything else unchanged."""
    if isinstance(x, dict):
        return {k: _as_float64(v, change) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        items = [_as_float64(item, change) for item in x]
        return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return change(x.astype(np.float64))
    return x


def perturbed_runs(fn, *args, samples=2, seed=0, **kwargs) -> list:
    """``samples`` runs of ``fn(*args, **kwargs)`` with every floating-point array among the
    positional arguments (also inside tuples, lists and dicts) multiplied by
    ``1 + eps_f32 * u``, ``u ~ U(-1, 1)`` per entry, in float64.

    Each run is what a backward-stable float32 implementation may return (module doc), so a list
    of them is a ``reference`` for :func:`assert_close` that does not depend on the luck of one
    rounding pattern. Non-float arguments and keywords pass through unchanged. Deterministic for a
    given ``seed``. Pass the inputs that the implementation under test receives (float32-cast
    inputs for a float32 result, the float64 inputs for a float64 one).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    rng = np.random.default_rng(seed)
    u32 = float(np.finfo(np.float32).eps)

    def perturb(x):
        return x * (1.0 + u32 * rng.uniform(-1.0, 1.0, x.shape))

    return [fn(*_as_float64(list(args), perturb), **kwargs) for _ in range(samples)]


ELEMENTARY = frozenset({
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "logaddexp", "logaddexp2",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh",
    "arcsinh", "arccosh", "arctanh", "power", "float_power", "cbrt",
    # scipy.special ufuncs a reference may import by name
    "expit", "log_expit", "logit", "erf", "erfc", "xlogy", "xlog1py",
})
"""Names of the ufuncs whose outputs :func:`rounded_runs` perturbs: the elementary functions
that IEEE 754 does not require to be correctly rounded (``sqrt`` and the arithmetic operators
are, so every implementation rounds them alike)."""


class _Rounded:
    """A ufunc whose floating-point outputs are multiplied by ``1 + eps * u``, ``u ~ U(-1, 1)``;
    its methods (``reduce``, ...) and attributes are the ufunc's own."""

    def __init__(self, ufunc, rng, eps, calls):
        self._ufunc, self._rng, self._eps, self._calls = ufunc, rng, eps, calls

    def __getattr__(self, name):
        return getattr(self._ufunc, name)

    def __call__(self, *args, **kwargs):
        y = self._ufunc(*args, **kwargs)
        self._calls[0] += 1
        out = kwargs.get("out")
        target = out[0] if isinstance(out, tuple) else out
        arr = np.asarray(y if target is None else target)
        if isinstance(y, tuple) or arr.dtype.kind != "f":
            return y
        factor = 1.0 + self._eps * self._rng.uniform(-1.0, 1.0, arr.shape)
        if target is not None:  # in place, and only where the ufunc wrote
            np.multiply(target, factor, out=target, where=kwargs.get("where", True),
                        casting="unsafe")
            return y
        res = (arr * factor).astype(arr.dtype, copy=False)
        return res if isinstance(y, np.ndarray) else res[()]


class _NumpyWithRounding:
    """Stands in for the ``numpy`` module: the elementary functions rounded, the rest NumPy's."""

    def __init__(self, rounded: dict):
        self.__dict__.update(rounded)

    def __getattr__(self, name):
        return getattr(np, name)


def _in_modules(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@contextlib.contextmanager
def _elementary_rounding(modules, rng, eps):
    """Within the block, the modules named by ``modules`` (and their submodules) see ``numpy``'s
    elementary functions, and any elementary ufunc they imported by name, rounded (``_Rounded``).
    Yields a one-element list counting the calls. Not thread-safe: the modules are patched."""
    calls = [0]
    made = {}

    def rounded(ufunc):
        if ufunc not in made:
            made[ufunc] = _Rounded(ufunc, rng, eps, calls)
        return made[ufunc]

    proxy = _NumpyWithRounding({
        name: rounded(getattr(np, name)) for name in sorted(ELEMENTARY)
        if isinstance(getattr(np, name, None), np.ufunc)
    })
    patched = []
    for name, module in list(sys.modules.items()):
        if module is None or not _in_modules(name, modules):
            continue
        for key, value in list(vars(module).items()):
            if value is np:
                new = proxy
            elif isinstance(value, np.ufunc) and value.__name__ in ELEMENTARY:
                new = rounded(value)
            else:
                continue
            patched.append((module, key, value))
            setattr(module, key, new)
    try:
        yield calls
    finally:
        for module, key, value in reversed(patched):
            setattr(module, key, value)


def _package_of(fn) -> str:
    """The package that holds ``fn``'s module (``refseq.scan`` for ``refseq.scan.linear``)."""
    while hasattr(fn, "func"):  # functools.partial
        fn = fn.func
    module = getattr(fn, "__module__", None) or ""
    if not module:
        raise ValueError(f"cannot tell which modules {fn!r} runs; pass modules=")
    return module.rsplit(".", 1)[0] if "." in module else module


def rounded_runs(fn, *args, modules=None, samples=2, seed=0, **kwargs) -> list:
    """``samples`` float64 runs of ``fn(*args, **kwargs)`` in which the output of every
    elementary function (:data:`ELEMENTARY`: ``exp``, ``tanh``, ``expit``, ...) is multiplied by
    ``1 + eps_f32 * u``, ``u ~ U(-1, 1)`` per entry and call.

    Each run is what an implementation whose elementary functions are faithfully rounded in
    float32 may return (module doc: the one kind of error that input perturbations cannot
    model): a faithful result lies within one ulp, about ``eps |y|``, of the exact ``y``. Like
    :func:`perturbed_runs` the sample is uniform over that interval, not its worst case, so the
    bound follows the typical error; take several samples. Use it beside
    :func:`perturbed_runs`, with the same inputs.

    Parameters
    ----------
    fn : callable — the float64 reference (pure NumPy/SciPy).
    *args, **kwargs : its arguments; floating-point arrays (also inside tuples, lists and dicts)
        are cast to float64, the rest passes unchanged.
    modules : sequence of str, optional — the modules (with their submodules) whose ``numpy``
        and by-name ufunc imports are rounded during the call; default: the package of ``fn``'s
        module (``("refseq.scan",)`` for :func:`refseq.scan.linear_scan`). Code outside them
        runs unchanged.
    samples : int — number of runs; seed : int — makes them deterministic.

    Returns
    -------
    list of results, empty when ``fn`` called no elementary function (every run would equal the
    unperturbed float64 reference, which adds nothing to a bound).

    Notes
    -----
    The modules' globals are replaced for the duration of each call and restored afterwards, so
    do not run the same modules from another thread meanwhile.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    modules = (_package_of(fn),) if modules is None else tuple(modules)
    rng = np.random.default_rng(seed)
    eps = float(np.finfo(np.float32).eps)
    args64, kwargs64 = _as_float64(list(args)), _as_float64(kwargs)
    runs = []
    for _ in range(samples):
        with _elementary_rounding(modules, rng, eps) as calls:
            runs.append(fn(*args64, **kwargs64))
        if not calls[0]:
            return []
    return runs


def check_close(actual, desired, reference=None, *, kind="forward", atol=0.0):
    """Compare pytrees leaf by leaf; return ``(ok, max_abs_err, bound_there, worst_ratio, msg)``.

    ``ok`` is False on any non-finite mismatch or bound violation; ``max_abs_err`` is over finite
    entries, ``bound_there`` the bound at that entry, ``worst_ratio`` the largest
    ``|err| / bound`` over all entries (at most 1 when ``ok``).
    """
    xs, ds = leaves(actual), leaves(desired)
    if reference is None:
        rs = [None] * len(ds)
    elif isinstance(reference, list):  # several formulations: per leaf, a list of runs
        per_run = [leaves(run) for run in reference]
        rs = [list(group) for group in zip(*per_run)] if per_run else [None] * len(ds)
    else:
        rs = leaves(reference)
    if len(xs) != len(ds) or len(rs) != len(ds):
        msg = f"structure differs: {len(xs)} leaves vs {len(ds)} desired"
        return False, np.inf, 0.0, np.inf, msg
    ok, max_err, bound_there, worst_ratio, msgs = True, 0.0, 0.0, 0.0, []
    for i, (x, d, r) in enumerate(zip(xs, ds, rs)):
        if x.shape != d.shape:
            return False, np.inf, 0.0, np.inf, f"leaf {i}: shape {x.shape} != desired {d.shape}"
        if x.dtype.kind != "f":
            if not np.array_equal(x, d):
                ok = False
                msgs.append(f"leaf {i}: discrete values differ")
            continue
        xf, df = x.astype(np.float64), d.astype(np.float64)
        for test, what in ((np.isnan, "NaN"), (np.isposinf, "+inf"), (np.isneginf, "-inf")):
            if not np.array_equal(test(xf), test(df)):
                ok = False
                msgs.append(f"leaf {i}: {what} positions differ")
        fin = np.isfinite(xf) & np.isfinite(df)
        if not fin.any():
            continue
        bound = tolerance(df, r, dtype=x.dtype, kind=kind, atol=atol)
        with np.errstate(invalid="ignore"):  # inf - inf at matching non-finite entries
            err = np.where(fin, np.abs(xf - df), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(fin, err / np.where(bound > 0, bound, np.inf), 0.0)
            ratio = np.where(fin & (bound == 0) & (err > 0), np.inf, ratio)
        j = tuple(int(k) for k in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
        k = tuple(
            int(q) for q in np.unravel_index(int(np.argmax(np.where(fin, err, -1.0))), err.shape)
        )
        if err[k] > max_err:
            max_err, bound_there = float(err[k]), float(bound[k])
        worst_ratio = max(worst_ratio, float(ratio[j]))
        bad = int(np.count_nonzero(ratio > 1))
        if bad:
            ok = False
            msgs.append(
                f"leaf {i}: {bad}/{ratio.size} entries over the bound; worst at {j}: "
                f"actual {xf[j]:.9g}, desired {df[j]:.9g}, "
                f"|err| {err[j]:.3g} > bound {bound[j]:.3g}"
            )
    return ok, max_err, bound_there, worst_ratio, "; ".join(msgs)


def assert_close(actual, desired, reference=None, *, kind="forward", atol=0.0, err_msg=""):
    """Assert ``actual`` matches the float64 oracle ``desired`` under the derived tolerance.

    Parameters
    ----------
    actual : array or (nested) tuple of arrays — the result under test (float32 or float64).
    desired : same structure — the float64 reference output.
    reference : same structure, optional — the reference run in float32 on the same inputs; it
        measures the error the problem forces on float32 arithmetic. A *list* of such runs
        (the reference's formulations: sequential, tree, chunked, ...) takes the largest error,
        which is the robust estimate when the code under test reassociates the computation.
        Without it only the ``atol + eps |desired|`` guard applies.
    kind : "forward" (factor 2) or "backward" (factor 4).
    atol : absolute floor, for documented approximations only (e.g. an exp-based tanh).

    Raises
    ------
    AssertionError naming the worst entry.
    """
    ok, err, _, _, msg = check_close(actual, desired, reference, kind=kind, atol=atol)
    if not ok:
        raise AssertionError(f"{err_msg + ': ' if err_msg else ''}{msg} (max |err| {err:.3g})")
