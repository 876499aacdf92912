"""The oracle: run a contract's property suite against a user's implementation.

Every case draws float64 inputs, runs the float64 NumPy reference on them (``desired``) and the
reference again on the inputs rounded to float32 (plus the contract's backward-error and
rounding samples): the error the problem itself forces on float32 arithmetic. The user's result
passes when every entry is within 2x (forward) or 4x (backward) that error, scaled by the ratio
of machine epsilons for a float64 result (:mod:`refseq.testing._close`, the rule the kernel
harness and ``refseq audit`` use). Nothing is tuned per implementation.
"""

from __future__ import annotations

import inspect

import numpy as np

from refseq import _checks
from refseq.oracle.adapters import get_adapter
from refseq.oracle.catalog import get_contract, properties
from refseq.oracle.report import CaseResult, Report
from refseq.testing._close import check_close, leaves, perturbed_runs, rounded_runs, tolerance
from refseq.testing.harness import cast_inputs, check_exact, check_indices, indices_oracle

__all__ = ["DEFAULT_MAX_EXAMPLES", "check", "replay", "run_suite"]

DEFAULT_MAX_EXAMPLES = 5
"""Random cases per dtype (the fixed property cases come on top)."""


def _check_dtypes(dtypes, name="dtypes"):
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    try:
        out = tuple(np.dtype(d).name for d in dtypes)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of 'float32'/'float64', "
                        f"got {dtypes!r}") from None
    bad = [d for d in out if d not in ("float32", "float64")]
    if bad or not out:
        raise ValueError(f"{name} must be a non-empty subset of ('float32', 'float64'), got "
                         f"{dtypes!r}")
    return out


def draw_dims(contract, seed, fixed=None, property="random") -> dict:
    """The dims of a case: drawn from ``contract.dims`` by ``seed``, ``fixed`` overriding;
    "odd sizes" takes ``contract.odd_dims``, "length 1" sets T = 1, "carried state" T >= 2."""
    fixed = dict(fixed or {})
    if property == "odd sizes":
        return {**contract.odd_dims, **fixed}
    rng = np.random.default_rng([seed, 1])
    dims = {}
    for name, span in contract.dims.items():
        if isinstance(span[0], str):
            dims[name] = str(span[rng.integers(len(span))])
        else:
            dims[name] = int(rng.integers(span[0], span[1] + 1))
    dims.update(fixed)
    if "T" in dims and property == "length 1":
        dims["T"] = 1
    if "N" in dims and property == "single node":  # trees of the root alone
        dims["N"] = 1
    if "T" in dims and property == "carried state":
        dims["T"] = max(dims["T"], 2)
    return dims


def _inputs64(contract, seed, dims, property):
    args, kw = contract.make_inputs(np.random.default_rng(seed), dims, np.float64)
    if property == "large magnitudes":
        args, kw = contract.large(args, kw)
    if property == "reverse":
        kw = {**kw, "reverse": True}
    return args, kw


def replay(contract, *, seed, dims, dtype="float64", property="random"):
    """The inputs ``(args, kwargs)`` of one oracle case, in ``dtype``, as NumPy arrays.

    ``contract``, ``seed``, ``dims``, ``dtype`` and ``property`` are those printed in an
    :class:`~refseq.oracle.OracleFailure` message. For "carried state" these are the inputs of
    the single call that the two calls must equal; for "autograd" those of the forward. For
    the speculative-sampler contracts, ``args`` is ``(target_fn, draft_fn, ctx, trees)`` of the
    property (:func:`refseq.oracle.lossless.tree_cases`).
    """
    contract = get_contract(contract)
    (dtype,) = _check_dtypes((dtype,), "dtype")
    _check_seed(seed)
    if contract.kind == "lossless":  # the models and the trees of that property
        from refseq.oracle.lossless import MODES, tree_cases

        mode = str(property).split()[0]
        if mode not in MODES:
            raise ValueError(f"property must be one of {[m + ' trees' for m in MODES]} for "
                             f"{contract.name}, got {property!r}")
        return tree_cases(mode, seed), {}
    if not isinstance(dims, dict):
        raise TypeError(f"dims must be a dict of dimensions, got {type(dims).__name__}")
    args, kw = _inputs64(contract, seed, dict(dims), property)
    return cast_inputs(args, kw, dtype)


def _oracle(contract, reference, args64, kw, dtype, seed):
    """``desired`` and the float32-unit runs of the reference, as the harness's oracle."""
    args32, kw32 = cast_inputs(args64, kw, np.float32)
    args, kw_d = cast_inputs(args64, kw, dtype)
    runs = [reference(*args32, **kw32)]
    if contract.error_samples:
        runs += perturbed_runs(reference, *args, samples=contract.error_samples, seed=seed, **kw_d)
        runs += rounded_runs(reference, *args, modules=contract.modules,
                             samples=contract.error_samples, seed=seed, **kw_d)
    return reference(*args64, **kw), runs


def _worst(actual, desired, runs, kind):
    """``(ratio, err, bound, (output, index, actual, desired))`` at the worst finite entry."""
    best = (-1.0, np.nan, np.nan, None)
    per_run = [leaves(r) for r in runs]
    for i, (x, d) in enumerate(zip(leaves(actual), leaves(desired))):
        if x.dtype.kind != "f" or x.shape != d.shape or x.size == 0:
            continue
        xf, df = x.astype(np.float64), d.astype(np.float64)
        bound = tolerance(df, [r[i] for r in per_run], dtype=x.dtype, kind=kind)
        fin = np.isfinite(xf) & np.isfinite(df)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.where(fin, np.abs(xf - df), 0.0)
            ratio = np.where(fin, err / np.where(bound > 0, bound, np.inf), 0.0)
            ratio = np.where(fin & (bound == 0) & (err > 0), np.inf, ratio)
        bad = ~(np.isfinite(xf) == np.isfinite(df)) | (np.isnan(xf) != np.isnan(df))
        ratio = np.where(bad, np.inf, ratio)
        j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        if ratio[j] > best[0]:
            best = (float(ratio[j]), float(err[j]), float(bound[j]),
                    (i, tuple(int(t) for t in j), float(xf[j]), float(df[j])))
    return best


def _dtype_problem(actual, dtype):
    for i, x in enumerate(leaves(actual)):
        if x.dtype.kind == "f" and x.dtype != np.dtype(dtype):
            return f"output {i} has dtype {x.dtype}, the inputs {dtype}"
    return ""


def _cotangents(reference_out, contract, seed):
    rng = np.random.default_rng([seed, 2])
    outs = leaves(reference_out)[: contract.grad_outputs]
    return tuple(rng.standard_normal(np.shape(y)) for y in outs)


def _run_case(contract, adapter, fn, prop, dims, dtype, seed):
    """Check one case; returns a :class:`CaseResult` (never raises for a user's error)."""
    args64, kw = _inputs64(contract, seed, dims, prop)
    shapes = tuple(np.shape(a) for a in args64 if isinstance(a, np.ndarray))
    result = CaseResult(contract.name, prop, dict(dims), dtype, seed, False, shapes=shapes,
                        adapter=adapter.name)
    args, kw_d = cast_inputs(args64, kw, dtype)
    kind = contract.kind
    reference = contract.reference
    wrapped = adapter.wrap(fn)
    try:
        if prop == "autograd":
            # the cotangents join the positional arguments, so that the oracle's samples
            # perturb them too; the reference is the contract's vjp
            cts64 = _cotangents(reference(*args64, **kw), contract, seed)
            n_args, kind = len(args64), "backward"

            def reference(*a, **k):
                return tuple(contract.vjp(a[:n_args], k, a[n_args:]))

            args64 = tuple(args64) + cts64
            actual = adapter.vjp(fn, args, kw_d, contract.diff,
                                 tuple(c.astype(dtype) for c in cts64))
        elif prop == "carried state":
            k = max(1, dims["T"] // 3)
            result.message = f"two calls, on steps [0, {k}) and [{k}, {dims['T']}), vs one call"
            actual = contract.carry(wrapped, args, kw_d, k)
        else:
            actual = wrapped(*args, **kw_d)
    except Exception as e:  # the user's code failed: that is a finding, not a crash
        text = str(e) if len(str(e)) <= 300 else str(e)[:300] + " ..."
        result.message = f"the implementation raised {type(e).__name__}: {text}"
        return result
    if kind == "exact":
        return _exact_case(result, contract, actual, args64, kw, dtype)
    if kind == "indices":
        return _indices_case(result, contract, actual, args64, kw, dtype)
    desired, runs = _oracle(contract, reference, args64, kw, dtype, seed)
    ok, _, _, _, msg = check_close(actual, desired, runs, kind=kind)
    ratio, err, bound, worst = _worst(actual, desired, runs, kind)
    problem = _dtype_problem(actual, dtype)
    result.ok = bool(ok) and not problem
    result.err, result.bound, result.ratio, result.worst = err, bound, ratio, worst
    notes = [m for m in (result.message, problem, "" if ok else msg) if m]
    result.message = "; ".join(notes)
    return result


def _exact_case(result, contract, actual, args64, kw, dtype):
    """An ``"exact"`` contract: the reference on the same (dtype) inputs, value for value."""
    args, kw_d = cast_inputs(args64, kw, dtype)  # fresh: a function may write in place
    desired = contract.reference(*args, **kw_d)
    exempt = None if contract.boundary is None else contract.boundary(args, kw_d)
    ok, err, bound, ratio, msg = check_exact(actual, desired, exempt, strict_dtype=False)
    result.ok, result.err, result.bound, result.ratio = ok, err, bound, ratio
    result.message = "; ".join(m for m in (result.message, msg) if m)
    return result


def _indices_case(result, contract, actual, args64, kw, dtype):
    """An ``"indices"`` contract (the key-value lookup): integer outputs value for value on the
    same (dtype) inputs, floats within the forward rule, near-tie queries exempt."""
    o = indices_oracle(contract.reference, contract.boundary, args64, kw, dtype)
    ok, err, bound, ratio, msg = check_indices(actual, o.same, o.desired, o.runs32, o.exempt,
                                               strict_dtype=False)
    problem = _dtype_problem(actual, dtype)
    result.ok, result.err, result.bound, result.ratio = bool(ok) and not problem, err, bound, ratio
    result.message = "; ".join(m for m in (result.message, problem, msg) if m)
    return result


def _sampler_cases(fn, contract, adapter, seed, max_examples):
    """The cases of a ``"lossless"`` contract (:mod:`refseq.oracle.lossless`): one per mode;
    the statistical test takes ``4,000 * max(1, max_examples)`` steps."""
    from refseq.oracle.lossless import V, sampler_cases

    wrapped = adapter.wrap(fn)
    cases = []
    for prop, run in sampler_cases(contract.name, wrapped, seed, 4_000 * max(1, max_examples)):
        def case(prop=prop, run=run):
            result = CaseResult(contract.name, prop, {"V": V}, "float64", seed, False,
                                adapter=adapter.name)
            try:
                result.ok, result.err, result.bound, result.message = run()
            except Exception as e:  # the user's code failed: a finding, not a crash
                result.message = f"the implementation raised {type(e).__name__}: {e}"[:300]
                return result
            result.ratio = result.err / result.bound
            return result
        cases.append((prop, {"V": V}, "float64", seed, case))
    return cases


def _accepts(fn, keyword) -> bool:
    """Whether ``fn`` takes the keyword ``keyword`` (True when its signature is unknown)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == keyword or p.kind is p.VAR_KEYWORD for p in params)


def _check_seed(seed):
    _checks.check_number(seed, "seed", low=0, integer=True)


def run_suite(fn, contract, *, adapter="numpy", device=None, dtypes=("float32", "float64"),
              max_examples=DEFAULT_MAX_EXAMPLES, seed=0, dims=None, autograd=None):
    """The cases of :func:`check` as a list of ``(property, dims, dtype, seed, run)``, where
    ``run()`` returns the :class:`CaseResult`; the pytest plugin collects one item per case."""
    contract = get_contract(contract)
    adapter = get_adapter(adapter, device)
    dtypes = _check_dtypes(dtypes)
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    _checks.check_number(max_examples, "max_examples", low=0, integer=True)
    _check_seed(seed)
    autograd = None if autograd is None else _checks.check_flag(autograd, "autograd")
    if dims is not None and not isinstance(dims, dict):
        raise TypeError(f"dims must be a dict of fixed dimensions, got {type(dims).__name__}")
    unknown = sorted(set(dims or {}) - set(contract.dims))
    if unknown:
        raise ValueError(f"dims names {unknown} that {contract.name} does not have; its "
                         f"dimensions: {sorted(contract.dims)}")
    if contract.kind == "lossless":
        return _sampler_cases(fn, contract, adapter, seed, max_examples)
    props = ["random"] * max_examples + properties(contract)[1:3]
    props += ["large magnitudes"] if contract.large is not None else []
    props += ["carried state"] if contract.carry is not None else []
    props += ["reverse"] if contract.reverse and _accepts(fn, "reverse") else []
    use_grad = adapter.differentiable if autograd is None else autograd
    props += ["autograd"] if contract.vjp is not None and use_grad else []
    cases = []
    for dtype in dtypes:
        for n, prop in enumerate(props):
            case_seed = seed + n
            d = draw_dims(contract, case_seed, dims, prop)
            cases.append((prop, d, dtype, case_seed,
                          lambda p=prop, d=d, t=dtype, s=case_seed:
                          _run_case(contract, adapter, fn, p, d, t, s)))
    return cases


def check(fn, contract, *, adapter="numpy", device=None, dtypes=("float32", "float64"),
          max_examples=DEFAULT_MAX_EXAMPLES, seed=0, dims=None, backward=None, autograd=None,
          raise_on_failure=True) -> Report:
    """Check the user's ``fn`` against ``contract`` and return a :class:`Report`.

    Parameters
    ----------
    fn : the implementation, called with the contract's signature (``contracts()`` lists them;
        wrap a function with another argument order or layout, module :mod:`.adapters`).
    contract : a contract name (``"linear_scan"``) or a :class:`Contract`.
    adapter : "numpy" | "torch" | "jax": what ``fn`` takes and returns.
    device : the torch device ("cpu" default, "cuda").
    dtypes : the dtypes to check, from ("float32", "float64").
    max_examples : random cases per dtype; the property cases (length 1, odd sizes, large
        magnitudes, carried state, autograd, and reverse when ``fn`` takes ``reverse=``) come
        on top.
    seed : the first case's seed; the cases are deterministic.
    dims : fixed dimensions, e.g. ``{"cell": "lstm"}`` for an LSTM-only recurrence.
    backward : the user's explicit backward, checked against ``contract.backward_contract``.
    autograd : check the backward through the adapter's autograd (default: where it has one).
    raise_on_failure : raise :class:`OracleFailure` (an ``AssertionError``) with the reproducer
        of the worst failing case; with False, return the report anyway.
    """
    contract = get_contract(contract)
    raise_on_failure = _checks.check_flag(raise_on_failure, "raise_on_failure")
    if backward is not None and not callable(backward):
        raise TypeError(f"backward must be callable, got {type(backward).__name__}")
    report = Report(contract.name, get_adapter(adapter, device).name)
    for *_, run in run_suite(fn, contract, adapter=adapter, device=device, dtypes=dtypes,
                             max_examples=max_examples, seed=seed, dims=dims, autograd=autograd):
        report.cases.append(run())
    if backward is not None:
        if contract.backward_contract is None:
            raise ValueError(f"backward: contract {contract.name!r} has no backward contract")
        bdims = {k: v for k, v in (dims or {}).items()}
        sub = check(backward, contract.backward_contract, adapter=adapter, device=device,
                    dtypes=dtypes, max_examples=max_examples, seed=seed, dims=bdims or None,
                    raise_on_failure=False)
        report.cases += sub.cases
    if raise_on_failure:
        report.raise_if_failed()
    return report
