"""check_finite on every tier: the compiled tiers check *after* their pass (refseq.scan.checks).

The jit and cuda twins test only the final state of a linear scan (plus, for the softmax scan, a
flag the kernel accumulates over every score and every skipped value) and fall back to the
reference's exact check when that evidence is not finite. These tests place NaN and +-inf at the
first, a middle and the last step, in every input, with zero decays and broadcast decays, in both
directions, on the sequential and the chunked kernels, and require the *same* error as the
reference; finite inputs that overflow must still return their (infinite) result.
"""

import numpy as np
import pytest

import refseq.jit.scan as J
from refseq import scan as S
from refseq.scan.checks import check_linear_scan_args, recheck_linear_scan

BAD = [np.nan, np.inf, -np.inf]
T = 40


@pytest.fixture(params=["sequential", "chunked"])
def kernel(request, monkeypatch):
    if request.param == "chunked":
        monkeypatch.setattr(J, "CHUNK_MIN_T", 16)
        monkeypatch.setattr(J, "SEGMENT_MIN", 4)
        monkeypatch.setattr(J, "CHUNK_SOFTMAX", True)
    return request.param


def _message(fn, *args, **kwargs):
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def _linear_inputs(a_shape, a_value=None):
    rng = np.random.default_rng(0)
    b = rng.standard_normal((2, T, 3))
    a = rng.uniform(0.5, 1.0, a_shape) if a_value is None else np.full(a_shape, a_value)
    return a, b, rng.standard_normal((2, 3))


LINEAR_CASES = [  # (argument, a's shape, value of a or None, index of the bad entry)
    ("b", (2, T, 3), None, (1, 0, 2)),
    ("b", (2, T, 3), None, (0, T // 2, 1)),
    ("b", (2, T, 3), None, (1, T - 1, 0)),
    ("b", (2, T, 3), 0.0, (0, T // 2, 1)),  # a = 0 forgets the past, but not NaN: 0 * inf = NaN
    ("b", (2, T, 3), 0.0, (1, T - 1, 2)),
    ("a", (2, T, 3), None, (0, 0, 0)),
    ("a", (2, T, 3), None, (1, T // 2, 2)),
    ("a", (2, T, 3), None, (0, T - 1, 1)),
    ("a", (1, T, 1), None, (0, T // 3, 0)),  # one decay shared by every chain
    ("a", (3,), None, (2,)),
    ("a", (2, 1, 3), 0.0, (1, 0, 1)),
    ("h0", (2, T, 3), None, (1, 2)),
    ("h0", (2, T, 3), 0.0, (0, 0)),  # a = 0 at the first step: 0 * inf = NaN
]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("name, a_shape, a_value, index", LINEAR_CASES)
def test_linear_scan_rejects_like_the_reference(kernel, name, a_shape, a_value, index, bad,
                                                reverse):
    a, b, h0 = _linear_inputs(a_shape, a_value)
    x = {"a": a, "b": b, "h0": h0}[name]
    x[index] = bad
    want = _message(S.linear_scan, a, b, h0, reverse=reverse)
    assert want.startswith(f"{name} must be finite") and "check_finite=False" in want
    assert _message(S.linear_scan, a, b, h0, reverse=reverse, backend="jit") == want
    with np.errstate(all="ignore"):
        got = S.linear_scan(a, b, h0, reverse=reverse, backend="jit", check_finite=False)
    assert not np.isfinite(got).all()  # the escape hatch propagates


@pytest.mark.parametrize("backend", ["numpy", "jit"])
def test_linear_overflow_of_finite_inputs_is_returned(kernel, backend):
    """Growth past the float range is not an input error: the result holds inf, no exception."""
    b = np.full((1, T, 2), 1e30, np.float32)
    with np.errstate(over="ignore"):
        h = S.linear_scan(np.float32(1e3), b, backend=backend)
    assert np.isinf(h[:, -1]).all() and np.isfinite(h[:, 0]).all()


def _softmax_inputs(mask_row=None, dtype=np.float64):
    rng = np.random.default_rng(1)
    s = (3 * rng.standard_normal((2, T, 2))).astype(dtype)
    s[:, 1] = 60.0  # a large early max: later tokens weigh e^{s - m} ~ 0 (0 * inf = NaN)
    v = rng.standard_normal((2, T, 2, 3)).astype(dtype)
    mask = np.ones((2, T), bool)
    if mask_row is not None:
        mask[:, mask_row] = False
    return s, v, mask


SOFTMAX_CASES = [  # (argument, index of the bad entry, masked-out time step or None)
    ("s", (0, 0, 1), None),
    ("s", (1, T // 2, 0), None),  # -inf here would weigh e^{-inf} = 0 silently
    ("s", (0, T - 1, 1), None),
    ("s", (1, 7, 1), 7),  # a masked score is never read by the fold
    ("v", (0, 0, 1, 2), None),
    ("v", (1, T // 2, 0, 0), None),
    ("v", (0, T - 1, 1, 1), None),
    ("v", (1, 9, 0, 1), 9),  # a masked value is never read by the fold
    ("v", (0, T - 1, 0, 0), T - 1),
]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("name, index, masked", SOFTMAX_CASES)
def test_softmax_scan_rejects_like_the_reference(kernel, name, index, masked, bad):
    s, v, mask = _softmax_inputs(masked)
    {"s": s, "v": v}[name][index] = bad
    want = _message(S.softmax_scan, s, v, mask)
    assert want.startswith(f"{name} must be finite")
    assert _message(S.softmax_scan, s, v, mask, backend="jit") == want
    S.softmax_scan(s, v, mask, backend="jit", check_finite=False)  # no error


@pytest.mark.parametrize("field", ["u", "w"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_softmax_scan_rejects_a_bad_carried_state(kernel, field, bad):
    s, v, mask = _softmax_inputs()
    state = S.SoftmaxState(np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2, 3)))
    getattr(state, field)[1, 0, ...] = bad
    want = _message(S.softmax_scan, s, v, mask, state)
    assert want.startswith(f"state.{field} must be finite")
    assert _message(S.softmax_scan, s, v, mask, state, backend="jit") == want


def test_softmax_overflow_of_finite_values_is_returned(kernel):
    s = np.zeros((1, T, 1), np.float32)
    v = np.full((1, T, 1, 2), 3e38, np.float32)  # w = sum of v overflows; o = w / u too
    o, final = S.softmax_scan(s, v, backend="jit")
    assert np.isinf(final.w).all() and np.isfinite(o[:, 0]).all()


# --- backward passes: the same contract, checked before any tier runs -------------------------
@pytest.mark.parametrize("backend", ["numpy", "jit"])
@pytest.mark.parametrize("name", ["a", "h", "grad_h", "h0"])
def test_linear_scan_backward_checks_finite(backend, name):
    a, b, h0 = _linear_inputs((2, T, 3))
    args = {"a": a, "h": S.linear_scan(a, b, h0), "grad_h": np.ones((2, T, 3)), "h0": h0}
    args[name][(1, 3, 2) if args[name].ndim == 3 else (1, 2)] = np.nan
    with pytest.raises(ValueError, match=rf"^{name} must be finite.*\(1, .*check_finite=False"):
        S.linear_scan_backward(**args, backend=backend)
    with np.errstate(all="ignore"):
        grads = S.linear_scan_backward(**args, backend=backend, check_finite=False)
    assert not all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("backend", ["numpy", "jit"])
def test_linear_scan_backward_names_h_not_b(backend):
    a = np.ones((2, T, 3))
    with pytest.raises(TypeError, match="^h must have dtype"):
        S.linear_scan_backward(a, np.ones((2, T, 3), np.int64), a, backend=backend)
    with pytest.raises(ValueError, match="^a must broadcast to h's shape"):
        S.linear_scan_backward(np.ones((2, T, 4)), a, a, backend=backend)
    with pytest.raises(ValueError, match="^h must have at least 2"):
        S.linear_scan_backward(np.ones(3), np.ones(3), np.ones(3), backend=backend)


@pytest.mark.parametrize("backend", ["numpy", "jit"])
@pytest.mark.parametrize("name", ["s", "v", "grad_o", "state.u", "state.w"])
def test_softmax_scan_backward_checks_finite(backend, name):
    s, v, mask = _softmax_inputs()
    g = np.ones_like(v)
    state = S.SoftmaxState(np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2, 3)))
    x = {"s": s, "v": v, "grad_o": g, "state.u": state.u, "state.w": state.w}[name]
    x[(1,) * x.ndim] = np.inf
    with pytest.raises(ValueError, match=rf"^{name} must be finite"):
        S.softmax_scan_backward(s, v, g, mask, state, backend=backend)
    with np.errstate(all="ignore"):
        S.softmax_scan_backward(s, v, g, mask, state, backend=backend, check_finite=False)


def test_recheck_reraises_the_full_checks_message_only_for_non_finite_evidence():
    """:mod:`refseq.scan.checks` by name: the after-the-pass recheck is silent for a finite final
    state and otherwise raises exactly what the full check raises (first bad index named)."""
    a, b, h0 = np.full((1, 3, 2), 0.5), np.ones((1, 3, 2)), np.zeros((1, 2))
    recheck_linear_scan(a, b, h0, np.ones((1, 2)))  # finite evidence: no full check, no error
    b[0, 1, 1] = np.nan
    with pytest.raises(ValueError) as want:
        check_linear_scan_args(a, b, h0, check_finite=True)
    with pytest.raises(ValueError) as got:
        recheck_linear_scan(a, b, h0, np.array([[1.0, np.nan]]))
    assert str(got.value) == str(want.value) and "(0, 1, 1)" in str(got.value)
