"""Non-finite scores in ``masked_softmax`` and extreme magnitudes in the norms.

The norms are checked against an independent derivation in ``np.longdouble`` (the textbook
formula, whose squares do not overflow there), at magnitudes where the textbook formula in the
input's own dtype overflows (float32 ``1e30``, float64 ``1e300``) or underflows (``1e-30``).
"""

from __future__ import annotations

import numpy as np
import pytest

from refseq import nn
from refseq.nn.softmax_attention import masked_softmax

EXTREMES = [(np.float32, 1e30), (np.float32, 1e-30), (np.float32, 1e-38),
            (np.float64, 1e300), (np.float64, 1e-300), (np.float32, 1.0), (np.float64, 1.0)]


def _layer_norm_ld(x, eps):
    x = x.astype(np.longdouble)
    c = x - x.mean(axis=-1, keepdims=True)
    return c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + np.longdouble(eps))


def _rms_norm_ld(x, eps):
    x = x.astype(np.longdouble)
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + np.longdouble(eps))


def _tol(dtype, D):
    return 8 * D * np.finfo(dtype).eps  # a few roundings per reduction term, relative to |x_hat|


@pytest.mark.parametrize("dtype,scale", EXTREMES)
def test_layer_norm_at_extreme_magnitudes(dtype, scale):
    rng = np.random.default_rng(1)
    D = 7
    x = (rng.standard_normal((4, D)) * scale).astype(dtype)
    eps = dtype(1e-5)  # the value the forward adds, in x's dtype
    gamma, beta = rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype)
    y, (x_hat, r, _) = nn.layer_norm_forward(x, gamma, beta, float(eps))
    want = _layer_norm_ld(x, eps)
    assert y.dtype == dtype and np.isfinite(y).all()
    scale_ref = max(float(np.abs(want).max()), np.finfo(dtype).tiny)
    assert np.abs(x_hat - want).max() <= _tol(dtype, D) * scale_ref
    np.testing.assert_allclose(y, gamma * want.astype(dtype) + beta,
                               atol=4 * _tol(dtype, D) * (1 + scale_ref))
    # r is 1 / sqrt(var + eps), checked in longdouble
    xl = x.astype(np.longdouble)
    var = ((xl - xl.mean(-1, keepdims=True)) ** 2).mean(-1, keepdims=True)
    np.testing.assert_allclose(r.astype(np.longdouble), 1 / np.sqrt(var + np.longdouble(eps)),
                               rtol=_tol(dtype, D))


@pytest.mark.parametrize("dtype,scale", EXTREMES)
def test_rms_norm_at_extreme_magnitudes(dtype, scale):
    rng = np.random.default_rng(2)
    D = 6
    x = (rng.standard_normal((3, D)) * scale).astype(dtype)
    eps = dtype(1e-6)
    gamma = rng.standard_normal(D).astype(dtype)
    y, (x_hat, r, _) = nn.rms_norm_forward(x, gamma, float(eps))
    want = _rms_norm_ld(x, eps)
    assert y.dtype == dtype and np.isfinite(y).all()
    scale_ref = max(float(np.abs(want).max()), np.finfo(dtype).tiny)
    assert np.abs(x_hat - want).max() <= _tol(dtype, D) * scale_ref


def test_layer_norm_by_hand_float32_1e30():
    """x = (1e30, -1e30): mu = 0, var = 1e60 (overflows float32), x_hat = (1, -1) (eps
    negligible), so y = gamma * (1, -1) + beta."""
    x = np.array([[1e30, -1e30]], np.float32)
    g, b = np.array([2.0, 3.0], np.float32), np.array([0.5, -0.5], np.float32)
    y, _ = nn.layer_norm_forward(x, g, b)
    np.testing.assert_allclose(y, [[2.5, -3.5]], rtol=1e-6)
    z, _ = nn.rms_norm_forward(x, g)
    np.testing.assert_allclose(z, [[2.0, -3.0]], rtol=1e-6)


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e30), (np.float32, 1e-30),
                                         (np.float64, 1e300)])
def test_norm_backward_consistent_at_extreme_magnitudes(dtype, scale):
    """The VJP at ``x * scale`` equals the VJP at ``x`` divided by ``scale`` (the norm is scale
    invariant when eps is negligible: y(c x) = y(x), so dy/dx scales as 1/c). With eps dominant
    (1e-30) the layer is linear, dx = dy * gamma / sqrt(eps) minus the centring term."""
    rng = np.random.default_rng(3)
    D = 5
    x = rng.standard_normal((2, D))
    g = rng.standard_normal(D)
    dy = rng.standard_normal((2, D))
    xs = (x * scale).astype(dtype)
    dx, dg, _ = nn.layer_norm_backward(dy.astype(dtype),
                                       nn.layer_norm_forward(xs, g.astype(dtype),
                                                             np.zeros(D, dtype))[1])
    assert np.isfinite(dx).all()
    if scale > 1:
        dx1, dg1, _ = nn.layer_norm_backward(dy, nn.layer_norm_forward(
            xs.astype(np.float64) / scale, g, np.zeros(D), eps=0.0)[1])
        np.testing.assert_allclose(dx.astype(np.float64) * scale, dx1, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dg, dg1, rtol=1e-4, atol=1e-4)
    else:  # x_hat = (x - mu) / sqrt(eps): dx = (g dy - mean(g dy)) / sqrt(eps)
        gd = g * dy
        want = (gd - gd.mean(-1, keepdims=True)) / np.sqrt(np.float32(1e-5))
        np.testing.assert_allclose(dx, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_masked_softmax_nan_gives_nan_row():
    s = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]])
    p = masked_softmax(s)
    assert np.isnan(p[0]).all()
    np.testing.assert_allclose(p[1], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    # a NaN under the mask is not seen
    p = masked_softmax(s, np.array([True, False, True]))
    np.testing.assert_allclose(p[0], [1 / (1 + np.e), 0, np.e / (1 + np.e)])


def test_masked_softmax_nan_along_other_axis():
    s = np.array([[1.0, 2.0], [np.nan, 3.0]], np.float32)
    p = masked_softmax(s, axis=0)
    assert np.isnan(p[:, 0]).all() and np.isfinite(p[:, 1]).all()


def test_masked_softmax_posinf_is_the_limit():
    inf = np.inf
    s = np.array([[1.0, inf, 2.0], [inf, inf, 0.0], [-inf, 0.0, -inf], [-inf, -inf, -inf]])
    p = masked_softmax(s)
    np.testing.assert_array_equal(p, [[0, 1, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0, 0]])
    # the limit: a large finite score instead of inf gives the same to rounding
    big = masked_softmax(np.array([[1.0, 1e6, 2.0]]))
    np.testing.assert_allclose(big, p[:1])


@pytest.mark.parametrize("bad,err,match", [
    (dict(axis=2), ValueError, "axis"), (dict(axis=1.0), TypeError, "axis"),
    (dict(mask=np.ones(3, np.int8)), TypeError, "mask"),
    (dict(mask=np.ones(4, bool)), ValueError, "mask")])
def test_masked_softmax_rejects_bad_arguments(bad, err, match):
    with pytest.raises(err, match=match):
        masked_softmax(np.zeros((2, 3)), **bad)
