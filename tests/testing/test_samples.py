"""The error samples of refseq.testing: rounding samples of elementary functions
(``rounded_runs``) and backward-error samples (``perturbed_runs``) on structured arguments."""

import sys
import types

import numpy as np
import pytest
from scipy.special import expit

from refseq.testing import assert_close, perturbed_runs, rounded_runs
from refseq.testing._close import ELEMENTARY

EPS32, EPS64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)


def _module(name, source):
    """A throwaway module ``name`` built from ``source`` (a reference under test)."""
    module = types.ModuleType(name)
    exec(source, module.__dict__)
    sys.modules[name] = module
    return module


@pytest.fixture
def saturated():
    """``1 - tanh(x)^2``: at x = 12 the exact value is 1.5e-10, float32's ``tanh`` is exactly 1
    (so its result is 0) and one ulp of a float64 ``tanh`` moves the result by 2.2e-16."""
    module = _module("refseq_test_saturated", "import numpy as np\n"
                     "def f(x):\n    t = np.tanh(x)\n    return 1.0 - t * t\n")
    yield module
    del sys.modules["refseq_test_saturated"]


def test_a_saturated_function_needs_rounding_samples(saturated):
    """An implementation whose ``tanh`` is one ulp below NumPy's (faithful, as every libm is)
    fails the bound from the float32 run alone by a factor of hundreds; the rounding samples
    give a bound that passes it, and an error a hundred times larger still fails."""
    x64 = np.array([12.0])
    desired = saturated.f(x64)
    ref32 = saturated.f(x64.astype(np.float32))
    assert ref32[0] == 0.0 and 1e-10 < desired[0] < 2e-10
    t = np.nextafter(np.tanh(x64), 0.0)  # one ulp lower
    kernel = 1.0 - t * t
    assert abs(kernel[0] - desired[0]) == pytest.approx(EPS64, rel=1e-6)
    with pytest.raises(AssertionError, match="over the bound"):
        assert_close(kernel, desired, ref32)
    runs = [ref32] + rounded_runs(saturated.f, x64, samples=4)
    assert_close(kernel, desired, runs)
    with pytest.raises(AssertionError, match="over the bound"):
        assert_close(desired + 100 * (kernel - desired), desired, runs)


def test_input_perturbations_cannot_stand_in_for_them(saturated):
    """Moving x by one float32 ulp changes ``1 - tanh^2`` by a relative 2.8e-6 only, far below
    the one float64 ulp of ``tanh`` that an implementation may differ by."""
    x64 = np.array([12.0])
    desired = saturated.f(x64)
    t = np.nextafter(np.tanh(x64), 0.0)
    runs = [saturated.f(x64.astype(np.float32))] + perturbed_runs(saturated.f, x64, samples=8)
    with pytest.raises(AssertionError, match="over the bound"):
        assert_close(1.0 - t * t, desired, runs)


def test_rounding_is_scoped_restored_and_deterministic(saturated):
    x = np.array([0.3, 1.0, 12.0])
    a = rounded_runs(saturated.f, x, samples=3, seed=4)
    b = rounded_runs(saturated.f, x, samples=3, seed=4)
    assert len(a) == 3
    for p, q in zip(a, b, strict=True):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a[0], a[1])
    assert saturated.np is np  # the module's numpy is back
    exact = saturated.f(x)
    for run in a:  # every sample lies within what one float32 ulp of tanh allows
        assert np.all(np.abs(run - exact) <= 2.5 * EPS32 * np.tanh(x) ** 2)
    np.testing.assert_array_equal(saturated.f(x), exact)  # outside the call: NumPy again


def test_ufuncs_imported_by_name_out_and_methods_are_handled():
    module = _module("refseq_test_names", (
        "import numpy as np\nfrom scipy.special import expit\n"
        "def f(x):\n"
        "    out = np.zeros_like(x)\n"
        "    np.exp(x, out=out, where=x > 0)\n"  # only where x > 0: the rest stays 0
        "    return expit(x), out, np.logaddexp.reduce(x)\n"))
    try:
        x = np.array([-1.0, 0.5, 2.0])
        (s, e, r), = rounded_runs(module.f, x, samples=1)
        assert module.expit is expit
        assert e[0] == 0.0 and np.all(np.abs(e[1:] / np.exp(x[1:]) - 1) <= EPS32)
        assert np.all(np.abs(s / expit(x) - 1) <= EPS32) and not np.array_equal(s, expit(x))
        assert r == np.logaddexp.reduce(x)  # a ufunc method runs as NumPy's
    finally:
        del sys.modules["refseq_test_names"]


def test_no_elementary_function_means_no_samples():
    from refseq.scan import linear_scan

    assert rounded_runs(linear_scan, np.full((1, 3, 2), 0.5), np.ones((1, 3, 2))) == []
    assert {"exp", "log", "tanh", "expit", "logaddexp"} <= ELEMENTARY
    assert not {"sqrt", "add", "multiply", "maximum"} & ELEMENTARY  # correctly rounded / exact
    with pytest.raises(ValueError, match="samples"):
        rounded_runs(linear_scan, np.ones(1), np.ones((1, 2, 1)), samples=0)


def test_perturbed_runs_reach_into_dicts_and_named_tuples():
    from refseq.scan import SoftmaxState

    seen = []

    def fn(cache, state):
        seen.append((type(state), sorted(cache)))
        return cache["x"] + state.u

    cache = {"x": np.ones(4, np.float32), "n": 3}
    state = SoftmaxState(np.zeros(4), np.ones(4), np.zeros((4, 2)))
    (run,) = perturbed_runs(fn, cache, state, samples=1)
    assert seen == [(SoftmaxState, ["n", "x"])]
    assert run.dtype == np.float64 and 0 < np.abs(run - 2.0).max() <= 2 * EPS32
