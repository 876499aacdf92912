"""The kernel modules of refseq.jit.scan called directly (below the twins' argument handling):
``linear.linear_kernel`` equals the affine recurrence written out, ``linear.linear_chunked``
agrees with it to a few ulps for any segment length, and ``softmax.softmax_groups_kernel``
equals ``softmax.softmax_kernel`` bit for bit for every head grouping (hypothesis over shapes)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.jit.scan import linear as L
from refseq.jit.scan import softmax as S


def _affine_loop(a, b, h0, reverse):
    """h_t = a_t h_{t-1} + b_t, time reversed when ``reverse`` (the hand-written recurrence)."""
    h, out = h0.copy(), np.empty_like(b)
    steps = range(b.shape[1] - 1, -1, -1) if reverse else range(b.shape[1])
    for t in steps:
        h = a[:, t] * h + b[:, t]
        out[:, t] = h
    return out


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 40), C=st.integers(1, 9), seg=st.integers(1, 12),
       reverse=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_kernels_equal_the_recurrence(B, T, C, seg, reverse, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.0, (B, T, C))
    b = rng.standard_normal((B, T, C))
    h0 = rng.standard_normal((B, C))
    want = _affine_loop(a, b, h0, reverse)
    out = np.empty_like(b)
    L.linear_kernel(a, b, h0, 1, max(1, C // 2), reverse, out)
    np.testing.assert_array_equal(out, want)  # the same expression in the same order
    out_c = np.empty_like(b)
    L.linear_chunked(a, 1, b, h0, seg, reverse, out_c)
    # reassociated across segments: a few float64 ulps of the running magnitude
    np.testing.assert_allclose(out_c, want, rtol=0, atol=64 * np.finfo(float).eps
                               * (1 + np.abs(want).max()))


@settings(max_examples=20, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 30), H=st.sampled_from([1, 2, 4, 6]),
       D=st.integers(1, 6), masked=st.booleans(), seed=st.integers(0, 2**16))
def test_grouped_softmax_kernel_equals_one_head_per_job(B, T, H, D, masked, seed):
    rng = np.random.default_rng(seed)
    s = 3 * rng.standard_normal((B, T, H))
    v = rng.standard_normal((B, T, H, D))
    valid = (rng.random((B, T)) > 0.3 if masked else np.ones((B, T), bool)).astype(np.uint8)
    m0, u0, w0 = np.full((B, H), -np.inf), np.zeros((B, H)), np.zeros((B, H, D))

    def run(kernel, n_jobs, *extra):
        o, fin, flag = np.empty_like(v), (np.empty((B, H)), np.empty((B, H)),
                                         np.empty((B, H, D))), np.zeros(n_jobs)
        kernel(s, v, valid, bool(masked), *extra, m0, u0, w0, o, *fin, flag)
        return o, fin, flag

    o1, f1, z1 = run(S.softmax_kernel, B * H)
    assert np.isfinite(z1).all() and (z1 == 0).all()  # finite inputs: a zero flag
    for hg in [g for g in range(1, H + 1) if H % g == 0]:
        o2, f2, z2 = run(S.softmax_groups_kernel, B * (H // hg), hg)
        np.testing.assert_array_equal(o2, o1)
        for x, y in zip(f2, f1):
            np.testing.assert_array_equal(x, y)
        assert (z2 == 0).all()
