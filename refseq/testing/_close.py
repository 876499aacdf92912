"""The derived tolerance (style.md #9).

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
luckily small: float32 cancellation of float32 inputs is often exact, so the measured error
drops far below what a reassociated but equally good implementation makes. :func:`perturbed_runs`
supplies more samples with a backward-error argument: a backward-stable float32 algorithm returns
the exact result of inputs perturbed by a few units of ``eps_f32`` each, so the float64 reference
on inputs perturbed by one ``eps_f32`` each is a result that such an algorithm could return. Pass
those runs in the ``reference`` list beside the float32 runs.
"""

from __future__ import annotations

import numpy as np

FACTORS = {"forward": 2.0, "backward": 4.0}


def leaves(x) -> list[np.ndarray]:
    """Flatten an array or a (nested) tuple/list of arrays, skipping None, into a list."""
    if x is None:
        return []
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in leaves(item)]
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


def perturbed_runs(fn, *args, samples=2, seed=0, **kwargs) -> list:
    """``samples`` runs of ``fn(*args, **kwargs)`` with every floating-point array argument (also
    inside tuples/lists) multiplied by ``1 + eps_f32 * u``, ``u ~ U(-1, 1)`` per entry, in float64.

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
        if isinstance(x, (tuple, list)):
            return type(x)(perturb(item) for item in x)
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            x = x.astype(np.float64)
            return x * (1.0 + u32 * rng.uniform(-1.0, 1.0, x.shape))
        return x

    return [fn(*perturb(list(args)), **kwargs) for _ in range(samples)]


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
