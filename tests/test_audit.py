"""``refseq audit``: its numbers are the real ones.

The "worst err/tol" column is the largest ``|actual - desired| / bound`` over every entry of
every leaf of a result; "max |err|" and "tol there" are the largest error and the bound at that
entry. Each is recomputed here from :func:`refseq.testing.tolerance` independently of
:func:`refseq.testing.check_close`.
"""

import numpy as np
import pytest

from refseq.audit import audit, format_table, run_check
from refseq.registry import REGISTRY
from refseq.testing import check_close, tolerance


def test_worst_ratio_is_the_largest_over_entries_and_leaves():
    """Three leaves; the worst ratio sits in the middle leaf and not at its largest error (a
    large entry has a large ``eps |d|`` guard), so a ratio taken from the first or the last leaf,
    or at the largest error, or never updated, is wrong."""
    d = (np.array([1.0, 2.0]), np.array([1e3, 1e-3, 5.0]), np.array([0.5]))
    r = tuple(x + 1e-7 for x in d)  # the reference's float32 error: 1e-7 everywhere
    err = (np.array([1e-7, 0.0]), np.array([1e-5, 1.5e-7, 0.0]), np.array([5e-8]))
    actual = tuple((x + e).astype(np.float32).astype(np.float64) for x, e in zip(d, err))
    bounds = [tolerance(x, y, dtype=np.float32) for x, y in zip(d, r)]
    ratios = [np.abs(a - x) / b for a, x, b in zip(actual, d, bounds)]
    want = max(float(q.max()) for q in ratios)
    assert want == pytest.approx(float(ratios[1].max())) and want > 0.3
    errs = np.concatenate([np.abs(a - x) for a, x in zip(actual, d)])
    k = int(np.argmax(errs))
    ok, max_err, bound_there, ratio, _ = check_close(
        tuple(a.astype(np.float32) for a in actual), d, r)
    assert ratio == pytest.approx(want, rel=1e-12)
    assert max_err == pytest.approx(float(errs[k]), rel=1e-12)
    assert bound_there == pytest.approx(float(np.concatenate(bounds)[k]), rel=1e-12)
    assert ok == (want <= 1.0)


def test_run_check_reports_the_real_ratio():
    """On the numpy tier the tested float32 result is the reference's own float32 run, one of
    the samples that set the bound, so its worst ratio is above 0 and at most 1/2 (factor 2);
    recomputed leaf by leaf from the oracle's runs it must be the reported one."""
    from refseq.testing import leaves
    from refseq.testing.harness import oracle

    entry = REGISTRY["softmax_scan"]
    dims = {"B": 2, "T": 9, "H": 2, "D": 3}
    ref = oracle(entry, dims, np.float32, seed=4)
    c = run_check(entry, "numpy", dims, np.float32, seed=4, reference=ref)
    actual = leaves(ref.runs32[0])
    worst = 0.0
    for i, d in enumerate(leaves(ref.desired)):
        b = tolerance(d, [leaves(run)[i] for run in ref.runs32], dtype=np.float32)
        fin = np.isfinite(d)
        worst = max(worst, float((np.abs(actual[i][fin] - d[fin]) / b[fin]).max()))
    assert c.ok and c.calls is None
    assert 0.0 < c.ratio <= 0.5
    assert c.ratio == pytest.approx(worst, rel=1e-12)


def test_table_prints_each_checks_ratio():
    checks, skipped = audit(tiers=["numpy"], names=["linear_scan"], repeats=0)
    table = format_table(checks, skipped)
    rows = table.splitlines()[2 : 2 + len(checks)]
    assert len(checks) == 2 and all(c.ok for c in checks)
    for c, row in zip(checks, rows, strict=True):
        assert 0.0 < c.ratio <= 0.5
        assert f"{c.ratio:.2f}" in row.split() and f"{c.max_err:.2e}" in row.split()
    assert table.splitlines()[-1] == "2 passed, 0 failed"
