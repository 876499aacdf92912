"""``refseq audit``: every registered hot path x every available tier, checked against float64.

One check (:func:`refseq.testing.harness.run_check`, re-exported here as :func:`run_check`)
draws inputs in float64, runs the NumPy reference on them (the oracle) and measures the error
the problem forces on float32 arithmetic (the reference on the float32-rounded inputs, plus, for
entries with ``error_samples``, backward-error and elementary-function rounding samples), which
sets the derived tolerance; it
then runs the tier under test at the requested dtype, counting the calls of the tier's compiled
twin so that a dispatch that silently runs the NumPy code fails, and compares with
:func:`refseq.testing.check_close`. The kernel tests call the same function, so the audit and
the test suite apply one rule.
"""

from __future__ import annotations

import numpy as np

from refseq.registry import REGISTRY, TIERS, tier_available
from refseq.testing.harness import Check, cast_inputs, oracle, run_check

__all__ = ["Check", "audit", "cast_inputs", "format_table", "run_check"]


def audit(tiers=None, names=None, seed=0, repeats=3, log=None):
    """Run every (entry, tier, dims, dtype) check; returns ``(checks, skipped)``.

    ``skipped`` maps an unavailable tier to the reason. Under the CUDA simulator the cuda tier
    runs on the entries' tiny ``cudasim_dims`` and is not timed.
    """
    from refseq.cuda import simulating

    tiers = list(tiers or TIERS)
    checks, skipped, oracles = [], {}, {}
    for tier in tiers:
        ok, why = tier_available(tier)
        if not ok:
            skipped[tier] = why
    for name in names or REGISTRY:
        entry = REGISTRY[name]
        oracles.clear()  # kept per entry only: they hold several results of every shape
        for tier in tiers:
            if tier in skipped:
                continue
            sim = tier == "cuda" and simulating()
            for dims in entry.cudasim_dims if sim else entry.audit_dims:
                # numpy in float64 is the oracle itself; its float32 run shows the error that
                # the tolerance is derived from
                for dtype in (np.float32,) if tier == "numpy" else (np.float32, np.float64):
                    key = (name, tuple(sorted(dims.items())), np.dtype(dtype).name)
                    if key not in oracles:  # one oracle per input, shared by the tiers
                        oracles[key] = oracle(entry, dims, dtype, seed)
                    c = run_check(entry, tier, dims, dtype, seed, 0 if sim else repeats,
                                  reference=oracles[key])
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
                "exact" if REGISTRY[c.name].kind == "exact" else f"{c.bound:.2e}",
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
