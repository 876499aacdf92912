"""Properties of the scan reference (refseq/scan/), before any kernel.

Every equivalence here is between independent formulations: the generic scans against each
other and against a plain loop, the softmax scan against scipy's softmax per prefix, the
backward passes against central finite differences with random cotangents.
"""

import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

from refseq import scan as S
from refseq.testing import assert_close
from refseq.testing.gradcheck import assert_directional, cotangent_loss
from refseq.testing.strategies import decays, dims, lengths, masks, normal, seeds

SCANS = list(S.SCANS.items())


def _chunked(chunk):
    return lambda op, elems, **kw: S.scan_chunked(op, elems, chunk=chunk, **kw)


# --- a non-commutative operator: 2x2 matrix products (catches swapped operands) -------------
def _matmul_combine(left, right):
    return (np.matmul(left[0], right[0]),)


MATMUL = S.AssociativeOp(
    "matmul", _matmul_combine, lambda like: (np.broadcast_to(np.eye(2), like[0].shape).copy(),)
)


def _loop_scan(op, xs, reverse, exclusive, initial):
    """The definition, written independently: a left fold over axis 0."""
    T = xs[0].shape[0]
    order = range(T - 1, -1, -1) if reverse else range(T)
    out = [np.empty_like(x) for x in xs]
    acc = initial if initial is not None else op.identity(tuple(x[0] for x in xs))
    for t in order:
        x_t = tuple(x[t] for x in xs)
        nxt = op.combine(acc, x_t)
        for o, val in zip(out, acc if exclusive else nxt):
            o[t] = val
        acc = nxt
    return out


@given(
    seed=seeds(),
    T=lengths(1, 40),
    reverse=st.booleans(),
    exclusive=st.booleans(),
    with_initial=st.booleans(),
    chunk=st.sampled_from([1, 2, 3, 7, 64]),
)
def test_generic_scans_agree_on_noncommutative_matmul(
    seed, T, reverse, exclusive, with_initial, chunk
):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, 3, 2, 2)) / np.sqrt(2)  # T elements of a batch of 3 matrices
    initial = (rng.standard_normal((3, 2, 2)),) if with_initial else None
    expected = _loop_scan(MATMUL, (X,), reverse, exclusive, initial)[0]
    for name, scan in SCANS + [("chunked", _chunked(chunk))]:
        (got,) = scan(MATMUL, (X,), axis=0, reverse=reverse, exclusive=exclusive, initial=initial)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=name)


@given(seed=seeds(), d=dims(T=(1, 40)), reverse=st.booleans(), exclusive=st.booleans())
def test_generic_scans_agree_on_affine_and_softmax(seed, d, reverse, exclusive):
    rng = np.random.default_rng(seed)
    B, T, H, D = d["B"], d["T"], d["H"], d["D"]
    affine = (decays(rng, (B, T, D)), normal(rng, (B, T, D)))
    leaves = S.softmax_leaf(
        normal(rng, (B, T, H), scale=3.0), normal(rng, (B, T, H, D)), masks(rng, (B, T))
    )
    for op, elems in ((S.AFFINE, affine), (S.SOFTMAX_TRIPLE, leaves)):
        want = S.scan_sequential(op, elems, axis=1, reverse=reverse, exclusive=exclusive)
        for name, scan in SCANS:
            got = scan(op, elems, axis=1, reverse=reverse, exclusive=exclusive)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=name)


@given(seed=seeds(), d=dims(T=(1, 40)), backend=st.sampled_from(["numpy", "jit"]))
def test_linear_scan_matches_generic_affine_scan_and_flip(seed, d, backend):
    rng = np.random.default_rng(seed)
    B, T, D = d["B"], d["T"], d["D"]
    a, b, h0 = decays(rng, (B, T, D)), normal(rng, (B, T, D)), normal(rng, (B, D))
    carry = (np.ones((B, D)), h0)
    _, want = S.scan_blelloch(S.AFFINE, (a, b), axis=1, initial=carry)
    np.testing.assert_allclose(
        S.linear_scan(a, b, h0, backend=backend), want, rtol=1e-12, atol=1e-12
    )
    # reverse == flip . scan . flip
    rev = S.linear_scan(a, b, h0, reverse=True, backend=backend)
    flipped = S.linear_scan(a[:, ::-1], b[:, ::-1], h0, backend=backend)[:, ::-1]
    np.testing.assert_array_equal(rev, flipped)


@given(seed=seeds(), T=lengths(1, 50), backend=st.sampled_from(["numpy", "jit"]))
def test_linear_scan_with_unit_decay_is_cumsum(seed, T, backend):
    rng = np.random.default_rng(seed)
    b = rng.integers(-8, 8, (2, T, 3)).astype(np.float64)  # integers: every sum is exact
    np.testing.assert_array_equal(
        S.linear_scan(np.ones(1), b, backend=backend), np.cumsum(b, axis=1)
    )


@given(
    seed=seeds(), d=dims(T=(2, 40)), cut=st.floats(0, 1), backend=st.sampled_from(["numpy", "jit"])
)
def test_two_calls_with_carried_state_equal_one_call(seed, d, cut, backend):
    rng = np.random.default_rng(seed)
    B, T, H, D = d["B"], d["T"], d["H"], d["D"]
    k = int(cut * T)
    a, b, h0 = decays(rng, (B, T, H, D)), normal(rng, (B, T, H, D)), normal(rng, (B, H, D))
    full = S.linear_scan(a, b, h0, backend=backend)
    first = S.linear_scan(a[:, :k], b[:, :k], h0, backend=backend)
    h_k = first[:, -1] if k else h0
    second = S.linear_scan(a[:, k:], b[:, k:], h_k, backend=backend)
    np.testing.assert_array_equal(np.concatenate([first, second], axis=1), full)

    s, v, mask = normal(rng, (B, T, H), scale=3.0), normal(rng, (B, T, H, D)), masks(rng, (B, T))
    o, state = S.softmax_scan(s, v, mask, backend=backend)
    o1, st1 = S.softmax_scan(s[:, :k], v[:, :k], mask[:, :k], backend=backend)
    o2, st2 = S.softmax_scan(s[:, k:], v[:, k:], mask[:, k:], st1, backend=backend)
    np.testing.assert_allclose(np.concatenate([o1, o2], axis=1), o, rtol=1e-13, atol=1e-14)
    for x, y in zip(st2, state):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-14)


def _softmax_attention_oracle(s, v, mask):
    """Prefix softmax by scipy, one prefix at a time (no running max, no scan)."""
    B, T, H, D = v.shape
    o = np.zeros_like(v)
    for b in range(B):
        for t in range(T):
            keep = np.flatnonzero(mask[b, : t + 1])
            if keep.size:
                p = scipy.special.softmax(s[b, keep], axis=0)  # (n, H)
                o[b, t] = np.einsum("nh,nhd->hd", p, v[b, keep])
    return o


@given(seed=seeds(), d=dims(T=(1, 30)), scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_softmax_scan_equals_direct_softmax_attention(seed, d, scale):
    rng = np.random.default_rng(seed)
    B, T, H, D = d["B"], d["T"], d["H"], d["D"]
    s, v, mask = normal(rng, (B, T, H), scale=scale), normal(rng, (B, T, H, D)), masks(rng, (B, T))
    o, (m, u, w) = S.softmax_scan(s, v, mask)
    np.testing.assert_allclose(o, _softmax_attention_oracle(s, v, mask), rtol=1e-12, atol=1e-13)
    # the final state is (max, sum e^{s-m}, sum e^{s-m} v) over the valid tokens
    for b in range(B):
        keep = np.flatnonzero(mask[b])
        if keep.size:
            np.testing.assert_array_equal(m[b], s[b, keep].max(axis=0))
            np.testing.assert_allclose(u[b], np.exp(s[b, keep] - m[b]).sum(0), rtol=1e-13)


def test_fully_masked_prefix_gives_zero_output_and_empty_state():
    rng = np.random.default_rng(0)
    s, v = normal(rng, (2, 6, 2)), normal(rng, (2, 6, 2, 3))
    mask = np.ones((2, 6), bool)
    mask[0, :4] = False  # the first four tokens of row 0 are padding
    mask[1] = False  # row 1 is all padding
    for backend in ("numpy", "jit"):
        o, (m, u, w) = S.softmax_scan(s, v, mask, backend=backend)
        assert not np.isnan(o).any()
        np.testing.assert_array_equal(o[0, :4], 0.0)
        np.testing.assert_array_equal(o[1], 0.0)
        np.testing.assert_array_equal(o[0, 4], v[0, 4])  # first valid token: o = v exactly
        assert np.isneginf(m[1]).all() and (u[1] == 0).all() and (w[1] == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_scores_stay_finite_where_the_textbook_form_overflows(dtype):
    """float64: scores in [-1e4, 1e4]; float32: [-80, 80] shifted by +1e3
    (docs/papers/aaren.md, property 5).

    Bound, derived: o is a convex combination of the v_i. Its error is the rounding of each
    exponent argument s_i - m (at most eps |s_i - m|, so a relative weight error of that size;
    exact for float32 here by Sterbenz' lemma since all scores lie within a factor 2), plus one
    rounding per exp, multiply and add along the T-term sums: |err| <= (2 R + 4 T) eps max|v|
    with R the range of the exponent arguments.
    """
    rng = np.random.default_rng(1)
    T = 17
    if dtype == np.float64:
        s, R = rng.uniform(-1e4, 1e4, (2, T, 2)), 2e4
    else:
        s, R = (rng.uniform(-80, 80, (2, T, 2)) + 1e3).astype(np.float32), 0.0
    v = normal(rng, (2, T, 2, 3), dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        textbook = S.softmax_scan_textbook(s, v)
    assert not np.isfinite(textbook).all()  # documents why the running max m exists
    oracle = _softmax_attention_oracle(
        s.astype(np.float64), v.astype(np.float64), np.ones((2, T), bool)
    )
    bound = (2 * R + 4 * T) * np.finfo(dtype).eps * np.abs(v).max()
    for backend in ("numpy", "jit"):
        o, _ = S.softmax_scan(s, v, backend=backend)
        assert np.isfinite(o).all()
        assert_close(o, oracle, atol=bound)


@given(seed=seeds(), d=dims(T=(1, 20)))
def test_textbook_form_agrees_on_benign_scores(seed, d):
    rng = np.random.default_rng(seed)
    B, T, H, D = d["B"], d["T"], d["H"], d["D"]
    s, v, mask = normal(rng, (B, T, H)), normal(rng, (B, T, H, D)), masks(rng, (B, T), 1.0)
    np.testing.assert_allclose(
        S.softmax_scan_textbook(s, v, mask), S.softmax_scan(s, v, mask)[0], rtol=1e-12, atol=1e-13
    )


# --- gradients: central finite differences in float64 with random cotangents ----------------
A_SHAPES = {
    "full": lambda B, T, D: (B, T, D),
    "per_channel": lambda B, T, D: (D,),
    "per_step": lambda B, T, D: (B, T, 1),
    "scalar": lambda B, T, D: (),
}


@given(
    seed=seeds(),
    d=dims(T=(1, 20)),
    a_kind=st.sampled_from(sorted(A_SHAPES)),
    reverse=st.booleans(),
    backend=st.sampled_from(["numpy", "jit"]),
)
def test_linear_scan_backward_matches_finite_differences(seed, d, a_kind, reverse, backend):
    rng = np.random.default_rng(seed)
    B, T, D = d["B"], d["T"], d["D"]
    a = decays(rng, A_SHAPES[a_kind](B, T, D))
    b, h0, g = normal(rng, (B, T, D)), normal(rng, (B, D)), normal(rng, (B, T, D))
    h = S.linear_scan(a, b, h0, reverse=reverse)
    ga, gb, gh0 = S.linear_scan_backward(a, h, g, h0, reverse=reverse, backend=backend)
    assert ga.shape == a.shape and gb.shape == b.shape and gh0.shape == h0.shape

    loss = cotangent_loss(lambda: S.linear_scan(a, b, h0, reverse=reverse), g)
    assert_directional(loss, {"a": a, "b": b, "h0": h0}, {"a": ga, "b": gb, "h0": gh0}, rng=rng)


@given(
    seed=seeds(),
    d=dims(T=(1, 16), D=(1, 4)),
    use_mask=st.booleans(),
    use_state=st.booleans(),
    backend=st.sampled_from(["numpy", "jit"]),
)
def test_softmax_scan_backward_matches_finite_differences(seed, d, use_mask, use_state, backend):
    rng = np.random.default_rng(seed)
    B, T, H, D = d["B"], d["T"], d["H"], d["D"]
    s, v, g = (
        normal(rng, (B, T, H), scale=2.0),
        normal(rng, (B, T, H, D)),
        normal(rng, (B, T, H, D)),
    )
    mask = masks(rng, (B, T)) if use_mask else None
    state = None
    if use_state:
        state = S.SoftmaxState(
            normal(rng, (B, H)), rng.uniform(0.5, 2, (B, H)), normal(rng, (B, H, D))
        )
    gs, gv, gstate = S.softmax_scan_backward(s, v, g, mask, state, backend=backend)

    arrays, grads = {"s": s, "v": v}, {"s": gs, "v": gv}
    if use_state:
        for i, field in enumerate(S.SoftmaxState._fields):  # the state's arrays, moved in place
            arrays[f"state.{field}"], grads[f"state.{field}"] = state[i], gstate[i]
    else:
        assert gstate is None
    loss = cotangent_loss(lambda: S.softmax_scan(s, v, mask, state)[0], g)
    assert_directional(loss, arrays, grads, rng=rng)
    if use_mask:  # masked tokens receive no gradient
        assert (gs[~mask] == 0).all() and (gv[~mask] == 0).all()


# --- shapes, dtypes, empty sequences, bad input ----------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "jit"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_and_empty_sequences(backend, dtype):
    b = np.zeros((2, 0, 3, 4), dtype)
    h = S.linear_scan(np.ones((1, 1, 3, 1), dtype), b, backend=backend)
    assert h.shape == b.shape and h.dtype == dtype
    s, v = np.zeros((2, 0, 3), dtype), np.zeros((2, 0, 3, 4), dtype)
    state = S.softmax_identity((2, 3), 4, dtype)
    o, st2 = S.softmax_scan(s, v, state=state, backend=backend)
    assert o.shape == v.shape and o.dtype == dtype
    for x, y in zip(st2, state):
        np.testing.assert_array_equal(x, y)
    rng = np.random.default_rng(0)
    b = rng.standard_normal((2, 5, 3)).astype(dtype)
    assert S.linear_scan(0.5, b, backend=backend).dtype == dtype
    o, st3 = S.softmax_scan(b, b[..., None], backend=backend)
    assert o.dtype == dtype and all(x.dtype == dtype for x in st3)


BAD_LINEAR = [
    (dict(a=np.ones((2, 5, 4)), b=np.ones((2, 5, 3))), ValueError, "a must broadcast"),
    (dict(a=np.ones(3), b=np.ones((2, 5, 3), np.int64)), TypeError, "b must have dtype"),
    (dict(a=np.ones(3, np.float16), b=np.ones((2, 5, 3))), TypeError, "a must have dtype"),
    (dict(a=np.ones(3), b=np.ones(3)), ValueError, "b must have at least 2"),
    (dict(a=np.ones(3), b=np.ones((2, 5, 3)), h0=np.ones((2, 4))), ValueError, r"h0 must have"),
    (dict(a=np.ones(3), b=np.full((2, 5, 3), np.nan)), ValueError, "b must be finite"),
    (dict(a=np.ones(3), b=np.ones((2, 5, 3)), backend="torch"), ValueError, "backend must be"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_LINEAR)
def test_linear_scan_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        S.linear_scan(**kwargs)


def test_softmax_scan_rejects_bad_input():
    s, v = np.zeros((2, 5, 3)), np.zeros((2, 5, 3, 4))
    with pytest.raises(ValueError, match="s must have shape"):
        S.softmax_scan(np.zeros((2, 5)), v)
    with pytest.raises(ValueError, match=r"v must have shape \(B, T, H, D\)"):
        S.softmax_scan(s, np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="mask must have shape"):
        S.softmax_scan(s, v, mask=np.ones((2, 4), bool))
    with pytest.raises(TypeError, match="mask must be a boolean"):
        S.softmax_scan(s, v, mask=np.full((2, 5), 0.5))
    with pytest.raises(TypeError, match="state must be a tuple"):
        S.softmax_scan(s, v, state=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"state.w must have shape"):
        S.softmax_scan(s, v, state=(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3, 5))))
    with pytest.raises(ValueError, match="s must be finite"):
        S.softmax_scan(np.full((2, 5, 3), np.inf), v)
    with pytest.raises(ValueError, match="grad_o must have shape"):
        S.softmax_scan_backward(s, v, np.zeros((2, 5, 3, 3)))
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        S.scan_chunked(S.AFFINE, (np.ones((2, 3)), np.ones((2, 3))), chunk=0)


def test_inconsistent_carried_state_is_rejected():
    """m = -inf means 'no token yet'; mass in u or w there would be dropped silently."""
    s, v = np.zeros((1, 3, 2)), np.zeros((1, 3, 2, 4))
    m = np.array([[-np.inf, 0.0]])
    with pytest.raises(ValueError, match="must be 0 where state.m is -inf"):
        S.softmax_scan(s, v, state=(m, np.array([[1.0, 1.0]]), np.zeros((1, 2, 4))))
    with pytest.raises(ValueError, match="state.u must be >= 0"):
        S.softmax_scan(s, v, state=(np.zeros((1, 2)), -np.ones((1, 2)), np.zeros((1, 2, 4))))
    S.softmax_scan(s, v, state=(m, np.array([[0.0, 1.0]]), np.zeros((1, 2, 4))))  # consistent
