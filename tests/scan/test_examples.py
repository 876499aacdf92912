"""Explicit examples of the scan hot path beside the hypothesis properties of test_scan.py.

Each pins one thing a random draw may or may not reach: the backward of decays broadcast over
the state axes (one decay per step, one per head over a matrix state), and the defaults and mask
forms of the generic scans, the leaves and the NumPy mirrors of the GPU decompositions.
"""

import numpy as np
import pytest

from refseq import scan as S
from refseq.cuda.scan import mirror

# --- linear_scan_backward with decays broadcast over state axes ------------------------------

# (a shape, b shape): one decay per (batch, step) over a vector state, and the Mamba-2 layout,
# one decay per (batch, step, head) over an (N, P) matrix state.
BROADCAST = {
    "per_step": ((2, 7, 1), (2, 7, 3)),
    "mamba2": ((2, 6, 2, 1, 1), (2, 6, 2, 3, 4)),
}


def _central_difference(f, x, dx, step=1e-6):
    return (f(x + step * dx) - f(x - step * dx)) / (2 * step)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("backend", ["numpy", "jit"])
@pytest.mark.parametrize("layout", sorted(BROADCAST))
def test_backward_sums_the_decay_gradient_over_broadcast_state_axes(layout, backend, reverse):
    """``grad_a`` keeps ``a``'s shape and equals the gradient of the decays materialised at
    ``b``'s shape, summed over the state axes they were broadcast along (every entry of the
    state shares one decay); ``grad_b`` and ``grad_h0`` equal the full-shape ones. Checked
    against central differences too, so a sum replaced by a mean, a missing axis or a gradient
    taken from one state entry fails."""
    a_shape, b_shape = BROADCAST[layout]
    rng = np.random.default_rng(sorted(BROADCAST).index(layout))
    a = rng.uniform(0.5, 1.0, a_shape)
    b, g = rng.standard_normal(b_shape), rng.standard_normal(b_shape)
    h0 = rng.standard_normal(b_shape[:1] + b_shape[2:])
    h = S.linear_scan(a, b, h0, reverse=reverse)
    ga, gb, gh0 = S.linear_scan_backward(a, h, g, h0, reverse=reverse, backend=backend)
    assert ga.shape == a_shape and gb.shape == b_shape and gh0.shape == h0.shape

    a_full = np.ascontiguousarray(np.broadcast_to(a, b_shape))
    ga_full, gb_full, gh0_full = S.linear_scan_backward(a_full, h, g, h0, reverse=reverse)
    state_axes = tuple(i for i in range(2, len(b_shape)) if a_shape[i] == 1)
    np.testing.assert_allclose(ga, ga_full.sum(axis=state_axes, keepdims=True), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(gb, gb_full, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gh0, gh0_full, rtol=1e-12, atol=1e-12)

    def loss(a_):
        return np.sum(g * S.linear_scan(a_, b, h0, reverse=reverse))

    da = rng.standard_normal(a_shape)
    np.testing.assert_allclose(np.sum(ga * da), _central_difference(loss, a, da), rtol=1e-6,
                               atol=1e-8)


# --- defaults and mask forms -------------------------------------------------------------------


def _affine_loop(a, b, axis):
    """``h_t = a_t h_{t-1} + b_t`` along ``axis``, from zero: the AFFINE fold written out."""
    a, b = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    h, out = np.zeros_like(b[0]), np.empty_like(b)
    for t in range(b.shape[0]):
        h = a[t] * h + b[t]
        out[t] = h
    return np.moveaxis(out, 0, axis)


@pytest.mark.parametrize("name", sorted(S.SCANS))
def test_generic_scans_default_to_time_axis_one(name):
    """Without ``axis`` every generic scan (``scan_chunked`` included) scans axis 1, time; the
    shapes differ on axes 0, 1 and 2 so any other axis gives other numbers."""
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.5, 1.0, (2, 5, 3)), rng.standard_normal((2, 5, 3))
    _, h = S.SCANS[name](S.AFFINE, (a, b))
    np.testing.assert_allclose(h, _affine_loop(a, b, axis=1), rtol=1e-12, atol=1e-12)
    assert not np.allclose(_affine_loop(a, b, axis=0)[:, :3], h[:, :3])  # the example can tell


def test_mirrors_default_to_forward_time():
    """The linear mirrors of the GPU decompositions scan forward unless ``reverse`` is given."""
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0.5, 1.0, (2, 9, 3)), rng.standard_normal((2, 9, 3))
    h0 = rng.standard_normal((2, 3))
    forward, backward = S.linear_scan(a, b, h0), S.linear_scan(a, b, h0, reverse=True)
    assert not np.allclose(forward, backward)
    np.testing.assert_array_equal(mirror.linear_scan_sequential(a, b, h0), forward)
    blocked = mirror.linear_scan_blocked(a, b, h0, threads=2, per_thread=2)
    np.testing.assert_allclose(blocked, forward, rtol=1e-12, atol=1e-12)


def test_softmax_leaf_accepts_a_full_shape_mask():
    """A mask of ``s``'s full shape (B, T, H) masks single (token, head) entries: exactly those
    become the identity ``(-inf, 0, 0)``, every other entry is the leaf ``(s, 1, v)``; a (B, T)
    mask masks whole tokens across heads."""
    rng = np.random.default_rng(3)
    s, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3, 5))
    mask = rng.random((2, 4, 3)) < 0.5
    mask[0, 0] = [True, False, True]  # heads of one token differ
    m, u, w = S.softmax_leaf(s, v, mask)
    np.testing.assert_array_equal(m, np.where(mask, s, -np.inf))
    np.testing.assert_array_equal(u, mask.astype(float))
    np.testing.assert_array_equal(w, np.where(mask[..., None], v, 0.0))
    tokens = mask[..., 0]  # (B, T)
    m2, u2, w2 = S.softmax_leaf(s, v, tokens)
    np.testing.assert_array_equal(m2, np.where(tokens[..., None], s, -np.inf))
    np.testing.assert_array_equal(u2, np.broadcast_to(tokens[..., None], s.shape).astype(float))
    np.testing.assert_array_equal(w2, np.where(tokens[..., None, None], v, 0.0))
