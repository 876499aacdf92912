"""refseq.jit.blas_threads: BLAS pinned to one thread inside the block, restored after."""

import numpy as np
import pytest

from refseq.jit import blas_threads


def _counts():
    return [get() for get, _ in blas_threads._openblas()]


def test_single_threaded_inside_and_restored_after():
    if not blas_threads.available():
        pytest.skip("no OpenBLAS with a settable thread count is loaded")
    before = _counts()
    with blas_threads.single_threaded_blas() as pinned:
        assert pinned
        assert _counts() == [1] * len(before)
    assert _counts() == before
    with pytest.raises(RuntimeError):  # restored on an exception too
        with blas_threads.single_threaded_blas():
            raise RuntimeError
    assert _counts() == before


def test_products_are_unchanged_by_pinning():
    """Pinning changes which threads run a BLAS call, not what it computes."""
    from refseq.jit.recurrence.projection import _blas_dot

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 48)), rng.standard_normal((48, 32))
    free = _blas_dot(a, b)
    with blas_threads.single_threaded_blas():
        pinned = _blas_dot(a, b)
    exact = a @ b
    np.testing.assert_allclose(pinned, exact, rtol=1e-12)
    np.testing.assert_allclose(free, exact, rtol=1e-12)
