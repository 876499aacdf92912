"""The kernel harness (refseq.testing.harness) must be able to fail, for the right reasons.

A tier that silently runs the NumPy code, a twin with a small error, and the bookkeeping that
decides which samples count for which result dtype.
"""

import numpy as np
import pytest

import refseq.recurrence as recurrence
import refseq.recurrence.engine as engine
import refseq.scan as scan
import refseq.scan.softmax as softmax
from refseq.registry import REGISTRY, tier_available
from refseq.testing.harness import (
    EPS_RATIO,
    Oracle,
    TierDidNotRun,
    assert_tier_matches,
    counting_calls,
    in_float32_units,
    oracle,
    run_check,
)

pytestmark = pytest.mark.skipif(not tier_available("jit")[0], reason="needs the jit tier")

SOFTMAX_DIMS = {"B": 2, "T": 7, "H": 2, "D": 3}
RNN_DIMS = {"cell": "gru", "B": 2, "T": 4, "N": 2, "D": 3}


def _ignoring_backend(fn):
    """``fn`` with its ``backend`` argument dropped: the mutant that runs NumPy on any tier."""

    def mutant(*args, backend="numpy", **kwargs):
        return fn(*args, **kwargs)

    return mutant


def test_a_tier_that_runs_numpy_fails(monkeypatch):
    """The results of a silently-NumPy tier are within the bound (they are the reference's);
    only the call count can tell, and it does."""
    monkeypatch.setattr(scan, "softmax_scan", _ignoring_backend(softmax.softmax_scan))
    entry = REGISTRY["softmax_scan"]
    for dtype in (np.float32, np.float64):
        c = run_check(entry, "jit", SOFTMAX_DIMS, dtype, seed=1)
        assert not c.ok and c.calls == 0
        assert "the jit tier did not run: refseq.jit.scan:softmax_scan" in c.message
        with pytest.raises(TierDidNotRun, match="did not run"):
            assert_tier_matches(entry, "jit", SOFTMAX_DIMS, dtype, seed=1)


def test_a_recurrence_tier_that_runs_numpy_fails(monkeypatch):
    monkeypatch.setattr(recurrence, "flashrnn_forward",
                        _ignoring_backend(engine.flashrnn_forward))
    with pytest.raises(TierDidNotRun, match="refseq.jit.recurrence:flashrnn_forward"):
        assert_tier_matches(REGISTRY["flashrnn_forward"], "jit", RNN_DIMS, np.float32)


def test_the_tier_that_runs_passes_and_is_counted():
    for name, dims in (("softmax_scan", SOFTMAX_DIMS), ("softmax_scan_backward", SOFTMAX_DIMS),
                       ("flashrnn_backward", RNN_DIMS)):
        c = assert_tier_matches(REGISTRY[name], "jit", dims, np.float32, seed=2)
        assert c.ok and c.calls >= 1 and 0.0 < c.ratio <= 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_twin_with_a_small_error_fails(monkeypatch, dtype):
    """Four float32 ulps on every output of the jit ``linear_scan`` (as a wrong rounding order
    would make) is outside the bound; the count shows the twin ran, so it is the values that
    fail."""
    import refseq.jit.scan as jit_scan

    real = jit_scan.linear_scan
    bump = 1.0 + 4 * float(np.finfo(dtype).eps)
    monkeypatch.setattr(jit_scan, "linear_scan",
                        lambda *a, **k: (real(*a, **k) * bump).astype(a[1].dtype))
    c = run_check(REGISTRY["linear_scan"], "jit", {"B": 2, "T": 3, "D": 4}, dtype, seed=3)
    assert c.calls == 1 and not c.ok and "over the bound" in c.message and c.ratio > 1


def test_counting_calls_counts_and_restores():
    import refseq.jit.scan as jit_scan

    real = jit_scan.linear_scan
    b = np.ones((1, 3, 2))
    with counting_calls("scan", "linear_scan", "jit") as calls:
        scan.linear_scan(0.5, b, backend="jit")
        scan.linear_scan(0.5, b)  # numpy: not counted
        scan.linear_scan(0.5, b, backend="jit")
    assert calls == [2] and jit_scan.linear_scan is real


def test_float64_formulations_count_for_float64_results_only():
    d = (np.array([1.0, 2.0]),)
    run32 = (np.array([1.0 + 1e-7, 2.0]),)
    run64 = (np.array([1.0, 2.0 + 1e-15]),)
    o = Oracle(d, [run32], [run64])
    assert len(o.reference(np.float32)) == 1 and len(o.reference(np.float64)) == 2
    (scaled,) = in_float32_units(run64, d)
    np.testing.assert_array_equal(scaled - d[0], EPS_RATIO * (run64[0] - d[0]))
    assert EPS_RATIO == 2.0**29
    inf = (np.array([np.inf, 1.0]),)
    assert np.isposinf(in_float32_units(inf, (np.array([np.inf, 1.0]),))[0][0])
    # a float64 result 3 ulps off passes only with the float64 formulation's 2 ulps in the bound
    ulp = float(np.spacing(2.0))
    assert run64[0][1] - 2.0 == 2 * ulp
    x = (np.array([1.0, 2.0 + 3 * ulp]),)
    assert o.check(x)[0]
    assert not Oracle(d, [run32]).check(x)[0]


def test_oracle_samples_are_deterministic_and_all_in_float32_units():
    entry = REGISTRY["flashrnn_forward"]
    a = oracle(entry, RNN_DIMS, np.float32, seed=5)
    b = oracle(entry, RNN_DIMS, np.float32, seed=5)
    assert len(a.runs32) == 5 and not a.runs64  # float32 run, 2 perturbed, 2 rounded
    for x, y in zip(a.runs32, b.runs32, strict=True):
        for p, q in zip(x, y, strict=True):
            np.testing.assert_array_equal(p, q)
    eps32 = float(np.finfo(np.float32).eps)
    for run in a.runs32:  # every sample is a float32-sized error, none is the oracle itself
        err = max(float(np.abs(r - d).max()) for r, d in zip(run, a.desired, strict=True))
        assert 0.0 < err < 1e3 * eps32
    # the scan entries keep the single float32 run unless samples are asked for; a linear scan
    # calls no elementary function: no rounding samples then, nothing pretended
    lin = oracle(REGISTRY["linear_scan"], {"B": 1, "T": 4, "D": 2}, np.float32)
    assert len(lin.runs32) == 1
    lin = oracle(REGISTRY["linear_scan"], {"B": 1, "T": 4, "D": 2}, np.float32, samples=2)
    assert len(lin.runs32) == 3
