"""``refseq audit``: every registered hot path x every available tier, checked against float64.

One check draws inputs in float64, runs the NumPy reference on them (the oracle) and on their
float32 rounding (the reference's own float32 error, which sets the derived tolerance), then runs
the tier under test at the requested dtype and compares with :func:`refseq.testing.check_close`.
The kernel tests call :func:`run_check` too, so the audit and the test suite apply one rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from refseq.registry import REGISTRY, TIERS, HotPath, tier_available
from refseq.testing import check_close


@dataclass
class Check:
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


def _timed(fn, repeats):
    """Result of the first call and the best wall time of ``repeats`` calls (after it)."""
    out = fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return out, (best if repeats else np.nan)


def run_check(entry: HotPath, tier: str, dims: dict, dtype, seed: int = 0, repeats: int = 0):
    """Check ``entry`` on ``tier`` at ``dims``/``dtype`` against the float64 reference."""
    rng = np.random.default_rng(seed)
    args64, kw64 = entry.make_inputs(rng, dims, np.float64)
    args32, kw32 = cast_inputs(args64, kw64, np.float32)
    args, kw = cast_inputs(args64, kw64, dtype)
    desired = entry.call("numpy", *args64, **kw64)
    reference32 = entry.call("numpy", *args32, **kw32)
    actual, seconds = _timed(lambda: entry.call(tier, *args, **kw), repeats)
    numpy_seconds = seconds
    if tier != "numpy" and repeats:
        _, numpy_seconds = _timed(lambda: entry.call("numpy", *args, **kw), max(1, repeats // 3))
    ok, err, bound, ratio, msg = check_close(actual, desired, reference32, kind=entry.kind)
    return Check(
        entry.name,
        tier,
        dict(dims),
        np.dtype(dtype).name,
        ok,
        err,
        bound,
        ratio,
        seconds,
        numpy_seconds,
        msg,
    )


def audit(tiers=None, names=None, seed=0, repeats=3, log=None):
    """Run every (entry, tier, dims, dtype) check; returns ``(checks, skipped)``.

    ``skipped`` maps an unavailable tier to the reason. Under the CUDA simulator the cuda tier
    runs on the entries' tiny ``cudasim_dims`` and is not timed.
    """
    from refseq.cuda import simulating

    tiers = list(tiers or TIERS)
    checks, skipped = [], {}
    for tier in tiers:
        ok, why = tier_available(tier)
        if not ok:
            skipped[tier] = why
    for name in names or REGISTRY:
        entry = REGISTRY[name]
        for tier in tiers:
            if tier in skipped:
                continue
            sim = tier == "cuda" and simulating()
            for dims in entry.cudasim_dims if sim else entry.audit_dims:
                # numpy in float64 is the oracle itself; its float32 run shows the error that
                # the tolerance is derived from
                for dtype in (np.float32,) if tier == "numpy" else (np.float32, np.float64):
                    c = run_check(entry, tier, dims, dtype, seed, 0 if sim else repeats)
                    checks.append(c)
                    if log:
                        log(c)
    return checks, skipped


def _fmt_dims(d):
    return " ".join(f"{k}={v}" for k, v in d.items())


def format_table(checks, skipped=None) -> str:
    """A fixed-width table: one row per check, then a summary line."""
    head = (
        "hot path",
        "function",
        "tier",
        "shape",
        "dtype",
        "max |err|",
        "tol there",
        "worst err/tol",
        "",
        "time",
        "vs numpy",
    )
    rows = []
    for c in checks:
        t = "-" if not np.isfinite(c.seconds) else f"{c.seconds * 1e3:.2f} ms"
        sp = "-" if c.tier == "numpy" or not np.isfinite(c.speedup) else f"{c.speedup:.1f}x"
        rows.append(
            (
                REGISTRY[c.name].hot_path,
                c.name,
                c.tier,
                _fmt_dims(c.dims),
                c.dtype,
                f"{c.max_err:.2e}",
                f"{c.bound:.2e}",
                f"{c.ratio:.2f}",
                "ok" if c.ok else "FAIL",
                t,
                sp,
            )
        )
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    right = {5, 6, 7, 9, 10}

    def line(r):
        return "  ".join(
            str(x).rjust(w) if i in right else str(x).ljust(w)
            for i, (x, w) in enumerate(zip(r, widths))
        ).rstrip()

    out = [line(head), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    failed = [c for c in checks if not c.ok]
    for c in failed:
        out.append(f"FAIL {c.name} [{c.tier}, {_fmt_dims(c.dims)}, {c.dtype}]: {c.message}")
    for tier, why in (skipped or {}).items():
        out.append(f"skipped tier {tier}: {why}")
    out.append(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return "\n".join(out)
