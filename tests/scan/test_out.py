"""``out=`` on the public scans: the result is written into the caller's buffer on every tier,
and a wrong buffer is rejected with an error naming ``out``."""

import numpy as np
import pytest

from refseq import scan as S

BACKENDS = ["numpy", "jit"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_scan_writes_into_out(backend, reverse):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 1, (2, 9, 3)), rng.standard_normal((2, 9, 3))
    out = np.full_like(b, np.nan)
    assert S.linear_scan(a, b, reverse=reverse, backend=backend, out=out) is out
    np.testing.assert_array_equal(out, S.linear_scan(a, b, reverse=reverse))


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_scan_writes_into_out(backend):
    rng = np.random.default_rng(1)
    s, v = rng.standard_normal((2, 9, 2)), rng.standard_normal((2, 9, 2, 3))
    mask = rng.random((2, 9)) > 0.3
    o = np.full_like(v, np.nan)
    got, final = S.softmax_scan(s, v, mask, backend=backend, out=o)
    want, final_ref = S.softmax_scan(s, v, mask)
    assert got is o
    np.testing.assert_allclose(o, want, rtol=1e-13, atol=1e-15)


BAD_OUT = [
    ([[0.0]], TypeError, "out must be a numpy array"),
    (np.empty((2, 9, 3), np.float32), TypeError, "out must have dtype float64"),
    (np.empty((2, 9, 4)), ValueError, "out must have shape"),
    (np.empty((2, 3, 9)).transpose(0, 2, 1), ValueError, "out must be a writeable C-contiguous"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("out, exc, match", BAD_OUT)
def test_bad_out_is_rejected(backend, out, exc, match):
    b = np.ones((2, 9, 3))
    with pytest.raises(exc, match=match):
        S.linear_scan(0.5, b, backend=backend, out=out)
    with pytest.raises(exc, match=match.replace("(2, 9, 3)", "(2, 9, 3, 1)")):
        S.softmax_scan(b, b[..., None], backend=backend,
                       out=out if not isinstance(out, np.ndarray) else out[..., None])
