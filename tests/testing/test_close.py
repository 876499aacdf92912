"""The comparison helper itself must be able to fail, and fail for the right reasons."""

import numpy as np
import pytest

from refseq.testing import assert_close, check_close, leaves, perturbed_runs, tolerance


def test_bound_follows_the_formula():
    d = np.array([1.0, -2.0, 0.0])
    r = np.array([1.0 + 1e-6, -2.0, 0.0])  # the reference's float32 error is 1e-6
    eps32, eps64 = np.finfo(np.float32).eps, np.finfo(np.float64).eps
    e = np.abs(r - d).max()  # 1e-6 up to the rounding of r
    np.testing.assert_allclose(
        tolerance(d, r, dtype=np.float32), 2 * e + eps32 * np.abs(d), rtol=1e-12
    )
    np.testing.assert_allclose(
        tolerance(d, r, dtype=np.float64, kind="backward"),
        4 * e * eps64 / eps32 + eps64 * np.abs(d),
        rtol=1e-12,
    )


def test_passes_within_and_fails_outside_the_bound():
    d = np.linspace(-1, 1, 11)
    r = d + 1e-6
    f32 = np.float32
    assert_close((d + 1.5e-6).astype(f32), d, r)  # inside 2 x 1e-6 (+ eps32 |d|)
    with pytest.raises(AssertionError, match="over the bound"):
        assert_close((d + 2.5e-6).astype(f32), d, r)
    with pytest.raises(AssertionError, match="over the bound"):  # float64 is held to eps64
        assert_close(d + 1.5e-6, d, r)
    with pytest.raises(AssertionError):
        assert_close(d + 1e-12, d)  # no reference: only eps |d|, and d has a zero entry


def test_non_finite_entries_must_match_in_position_and_sign():
    d = np.array([1.0, np.inf, -np.inf, np.nan])
    assert_close(d.copy(), d)
    for bad in (
        [1.0, -np.inf, -np.inf, np.nan],
        [1.0, np.inf, -np.inf, 0.0],
        [np.nan, np.inf, -np.inf, np.nan],
    ):
        with pytest.raises(AssertionError):
            assert_close(np.array(bad), d)


def test_structure_shape_and_discrete_leaves():
    ok, *_ = check_close((np.zeros(2), np.zeros(3)), (np.zeros(2),))
    assert not ok
    ok, *_ = check_close(np.zeros(2), np.zeros(3))
    assert not ok
    ok, *_ = check_close(np.array([1, 2]), np.array([1, 3]))
    assert not ok
    assert len(leaves((np.zeros(1), (np.zeros(2), None)))) == 2
    with pytest.raises(ValueError, match="kind must be"):
        tolerance(np.zeros(1), dtype=np.float32, kind="sideways")


def test_several_reference_runs_take_the_largest_error():
    d = np.zeros(4)
    lucky, reassociated = d + 1e-7, d + 1e-6  # two formulations of the reference in float32
    f32 = np.float32
    with pytest.raises(AssertionError):
        assert_close((d + 1.5e-6).astype(f32), d, lucky)
    assert_close((d + 1.5e-6).astype(f32), d, [lucky, reassociated])
    with pytest.raises(AssertionError):
        assert_close((d + 2.5e-6).astype(f32), d, [lucky, reassociated])
    ok, *_ = check_close((d.astype(f32), d.astype(f32)), (d, d), [(lucky, lucky), (d, d)])
    assert ok


def test_perturbed_runs_cover_a_luckily_exact_reference_and_still_catch_errors():
    """x = (1, -1, 1e-8): the left-to-right float32 sum is exact (1 - 1 cancels first), while
    (x0 + x2) + x1 loses x2 entirely, an error within the textbook summation bound
    gamma_2 * sum |x| ~ 4.8e-7. One float32 run cannot tell these apart; the backward-error
    samples can, and an error 100x larger than the bound still fails."""
    x64 = np.array([1.0, -1.0, 1e-8])
    x32 = x64.astype(np.float32)
    left_to_right = lambda x: np.array([(x[0] + x[1]) + x[2]])  # noqa: E731
    desired, ref32 = left_to_right(x64), left_to_right(x32)
    assert abs(ref32[0] - desired[0]) < 1e-15  # lucky: exact up to the rounding of 1e-8
    reassociated = np.array([(x32[0] + x32[2]) + x32[1]])
    assert reassociated[0] == 0.0
    with pytest.raises(AssertionError, match="over the bound"):
        assert_close(reassociated, desired, ref32)
    runs = [ref32] + perturbed_runs(left_to_right, x32, samples=4)
    assert_close(reassociated, desired, runs)
    with pytest.raises(AssertionError, match="over the bound"):
        assert_close(np.array([1e-5], np.float32), desired, runs)


def test_perturbed_runs_are_deterministic_and_touch_only_float_arrays():
    seen = []

    def fn(x, n, *, scale):
        seen.append((x.dtype, n, scale))
        return x * scale

    x = np.ones(5, np.float32)
    a = perturbed_runs(fn, x, 3, samples=2, seed=7, scale=2.0)
    b = perturbed_runs(fn, x, 3, samples=2, seed=7, scale=2.0)
    assert len(a) == 2 and all(r.dtype == np.float64 for r in a)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], a[1])
    assert np.abs(a[0] / 2.0 - 1.0).max() <= np.finfo(np.float32).eps
    assert seen[0][1:] == (3, 2.0)
    with pytest.raises(ValueError, match="samples"):
        perturbed_runs(fn, x, 3, samples=0, scale=1.0)
