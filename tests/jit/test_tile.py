"""refseq.jit.tile: the register-tile product writes exactly its tile, with the error of a dot
product, and the same bits whatever the offsets, and the jit activations are correctly rounded."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit

from refseq.jit.recurrence import scalar
from refseq.jit.tile import TILE_ROWS, TILE_VECTORS, lanes, tile_gemm

SENTINEL = -7.25


@numba.njit
def _one_tile(A, a_off, lda, H, h_off, ldh, C, c_off, ldc, K):
    tile_gemm(A, a_off, lda, H, h_off, ldh, C, c_off, ldc, K)


def _layout(rng, dtype, K, pad):
    """Flat operands with the tile's block at an offset inside a larger padded matrix."""
    MB, NC = TILE_ROWS, TILE_VECTORS * lanes(np.dtype(dtype))
    lda, ldh, ldc = NC + pad, K + pad, NC + pad
    A = rng.standard_normal(pad + K * lda).astype(dtype)
    H = rng.standard_normal(pad + MB * ldh).astype(dtype)
    C = np.full(pad + MB * ldc, SENTINEL, dtype)
    a_blk = A[pad:].reshape(K, lda)[:, :NC]
    h_blk = H[pad:].reshape(MB, ldh)[:, :K]
    return (A, pad, lda, H, pad, ldh, C, pad, ldc, K), a_blk, h_blk, (MB, NC)


@given(K=st.integers(0, 70), pad=st.integers(0, 5), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_tile_is_a_dot_product_within_its_error_bound(K, pad, seed, dtype):
    """``|C - H A| <= gamma_K (|H| |A|)`` (Higham, Thm 3.5; ``gamma_K = K u / (1 - K u)``),
    against the float64 product of the same operands; nothing outside the tile is written."""
    rng = np.random.default_rng(seed)
    args, a_blk, h_blk, (MB, NC) = _layout(rng, dtype, K, pad)
    _one_tile(*args)
    C, ldc = args[6], args[8]
    got = C[pad:].reshape(MB, ldc)
    exact = h_blk.astype(np.float64) @ a_blk.astype(np.float64)
    u = float(np.finfo(dtype).eps) / 2
    gamma = K * u / (1 - K * u)
    bound = gamma * (np.abs(h_blk).astype(np.float64) @ np.abs(a_blk).astype(np.float64))
    assert np.all(np.abs(got[:, :NC] - exact) <= bound)
    assert np.all(got[:, NC:] == SENTINEL) and np.all(C[:pad] == SENTINEL)


def test_tile_bits_do_not_depend_on_where_the_operands_sit():
    """The same block at other offsets and leading dimensions gives the same bits (the sum order
    is the k order only), and K = 0 writes zeros."""
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        args, a_blk, h_blk, (MB, NC) = _layout(rng, dtype, 37, 0)
        _one_tile(*args)
        base = args[6].reshape(MB, args[8]).copy()
        args2, _, _, _ = _layout(rng, dtype, 37, 3)
        A2, H2, C2 = args2[0], args2[3], args2[6]
        A2[3:].reshape(37, args2[2])[:, :NC] = a_blk
        H2[3:].reshape(MB, args2[5])[:, :37] = h_blk
        _one_tile(*args2)
        assert np.array_equal(C2[3:].reshape(MB, args2[8])[:, :NC], base)
        args0, _, _, _ = _layout(rng, dtype, 0, 0)
        _one_tile(*args0)
        assert np.all(args0[6] == 0)


def test_tile_rejects_mixed_dtypes():
    a = np.zeros(64, np.float32)
    with pytest.raises(numba.core.errors.TypingError):
        _one_tile(a, 0, 16, a.astype(np.float64), 0, 1, a, 0, 16, 1)


@numba.njit
def _apply(which, x):
    out = np.empty_like(x)
    for i in range(x.size):
        if which == 0:
            out[i] = scalar.sigmoid(x[i])
        elif which == 1:
            out[i] = scalar.tanh(x[i])
        else:
            out[i] = scalar.exp(x[i])
    return out


def test_float32_activations_are_correctly_rounded():
    """The float32 sigmoid, tanh and exp of the jit kernels equal the float64 functions of NumPy
    and SciPy rounded once to float32 (about 1e-16 relative, so a double-rounding mismatch has
    probability ~1e-9 per point), on a dense grid over the whole float32 range that matters,
    near 0, in the subnormal tails, and at the specials."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-110.0, 110.0, 400_001), np.linspace(-0.05, 0.05, 40_001),
                        rng.standard_normal(200_000) * 4.0,
                        [0.0, -0.0, 1e-30, -1e-30, 88.7, 89.0, -87.5, -103.9, -104.0, 1e30,
                         -1e30, np.inf, -np.inf, np.nan]]).astype(np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):  # exp: float64 values beyond float32's range -> inf
        exact = {0: expit(x64), 1: np.tanh(x64), 2: np.exp(x64)}
        exact = {which: want.astype(np.float32) for which, want in exact.items()}
    for which, want in exact.items():
        got = _apply(which, x)
        same = (got == want) & (np.signbit(got) == np.signbit(want))
        same |= np.isnan(got) & np.isnan(want)
        assert same.all(), (which, x[~same][:5], got[~same][:5], want[~same][:5])
