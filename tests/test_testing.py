"""The comparison helper itself must be able to fail, and fail for the right reasons."""

import numpy as np
import pytest

from refseq.testing import assert_close, check_close, leaves, tolerance


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
