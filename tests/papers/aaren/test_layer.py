"""Properties of the Aaren reference (arXiv 2405.13956, Sec. 3.1-3.3), numbered as in
docs/papers/aaren.md, "How each property is tested" (the ``test_<n>_`` prefixes).

Inputs: q ~ N(0, 1) (H, Dk), k, v ~ N(0, 1), and ``scale = sigma / sqrt(Dk)`` so that scores
``s = scale <q, k>`` have standard deviation sigma in {0.1, 3, 30}. Float64 results are held to
|x - d| <= 1e-12 + 1e-12 |d| (docs/papers/aaren.md); float32 results to the derived tolerance
(docs/design.md, "The tolerance rule"), the reference's float32 error taken over its
formulations (``assert_close32``).

To feed chosen scores ``s`` (B, T, H) through the (q, k) interface, ``on_scores`` uses Dk = 1,
q = 1 and scale = 1, for which ``scale * <q, k_i> = s_i`` exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.nn.basic import linear
from refseq.papers.aaren.layer import (
    METHODS,
    AarenParams,
    SoftmaxState,
    aaren_cell_step,
    aaren_layer,
    aaren_layer_step,
    aaren_naive,
    aaren_recurrent,
    aaren_scan,
    aaren_scores,
    aaren_unstable_rolling,
    attend_one_query,
    init_aaren_params,
    lengths_to_mask,
    softmax_combine,
    softmax_state_init,
)
from refseq.scan import softmax_scan_backward
from refseq.scan.operators import softmax_identity, softmax_leaf
from refseq.testing import assert_close
from refseq.testing import strategies as S
from refseq.testing.gradcheck import assert_entrywise, cotangent_loss

SIGMAS = (0.1, 3.0, 30.0)


def assert_close64(actual, desired, err_msg=""):
    """The float64 tolerance of docs/papers/aaren.md, rtol = atol = 1e-12, through
    refseq.testing.assert_close."""
    desired = np.asarray(desired)
    assert np.asarray(actual).dtype == desired.dtype == np.float64
    assert_close(actual, desired, atol=1e-12 * (1 + np.abs(desired)), err_msg=err_msg)


def assert_close32(actual, desired, s32, v32, mask=None):
    """float32 against the float64 oracle ``desired`` (same rounded inputs).

    Bound: the derived tolerance (docs/design.md, "The tolerance rule"). The reference's own
    float32 error is measured over all its formulations (the fold and every scan method on the
    float32 scores ``s32``): the methods add the same terms in different orders, so a single run
    can be luckily exact where a reassociated one is a few ulps off. The largest of those errors
    sets the bound.
    """
    assert np.asarray(actual).dtype == np.float32
    runs = [aaren_recurrent(s32, v32, mask)[0]]
    runs += [on_scores(s32, v32, mask, method=m)[0] for m in METHODS]
    assert_close(actual, desired, reference=runs)


def assert_state_close64(actual, desired, exact_m=True):
    """States agree to rtol = atol = 1e-12; m exactly when both runs saw the same scores
    (a max has no rounding), which is not the case when the scores themselves were computed
    by differently blocked matrix products (``exact_m=False``)."""
    if exact_m:
        assert np.array_equal(actual.m, desired.m), "m is a max of the same scores: exact"
    else:
        assert_close64(actual.m, desired.m, "m")
    assert_close64(actual.u, desired.u, "u")
    assert_close64(actual.w, desired.w, "w")


@st.composite
def qkv(draw, dtype=np.float64, T=(1, 65), masked=None, sigmas=SIGMAS, dims=None):
    """A dict with q, k, v, mask (None or (B, T) bool), scale, rng, drawn as the module
    docstring says (the ranges of docs/papers/aaren.md, "How each property is tested")."""
    d = draw(dims if dims is not None else S.dims(T=T))
    Dk = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(S.seeds()))
    B, T, H, Dv = d["B"], d["T"], d["H"], d["D"]
    use_mask = draw(st.booleans()) if masked is None else masked
    return {
        "q": S.normal(rng, (H, Dk), dtype), "k": S.normal(rng, (B, T, H, Dk), dtype),
        "v": S.normal(rng, (B, T, H, Dv), dtype),
        "mask": S.masks(rng, (B, T)) if use_mask else None,
        "scale": draw(st.sampled_from(sigmas)) / np.sqrt(Dk), "rng": rng,
    }


def args(x):
    return x["q"], x["k"], x["v"], x["mask"], x["scale"]


def on_scores(s, v, mask=None, state=None, method="blelloch", **kw):
    """``aaren_scan`` with given scores: Dk = 1, q = 1, scale = 1 make ``s_i`` exact."""
    q = np.ones((s.shape[2], 1), s.dtype)  # (H, 1)
    return aaren_scan(q, s[..., None], v, mask, 1.0, state, method, **kw)


def random_state(rng, B, H, Dv, dtype=np.float64, sigma=3.0):
    """A state as a previous call would leave it: u >= 1 (the max token contributes e^0)."""
    m = S.normal(rng, (B, H), dtype, sigma)
    u = rng.uniform(1, 3, (B, H)).astype(dtype)
    return SoftmaxState(m, u, S.normal(rng, (B, H, Dv), dtype))


# 1. Four-way equivalence ---------------------------------------------------------------------


@given(x=qkv())
def test_1_four_way_equivalence(x):
    q, k, v, mask, scale = args(x)
    B, T, H, Dv = v.shape
    desired = aaren_naive(q, k, v, mask, scale)  # (B, T, H, Dv)
    for t in range(T):
        prefix_mask = None if mask is None else mask[:, : t + 1]
        one = attend_one_query(q, k[:, : t + 1], v[:, : t + 1], prefix_mask, scale)
        assert_close64(one, desired[:, t], f"attend_one_query on prefix 1..{t + 1}")
    o_rec, state_rec = aaren_recurrent(aaren_scores(q, k, scale), v, mask)
    assert_close64(o_rec, desired, "aaren_recurrent")
    for method in METHODS:
        o, state = aaren_scan(q, k, v, mask, scale, method=method)
        assert_close64(o, desired, f"aaren_scan method={method}")
        assert_state_close64(state, state_rec)


@given(x=qkv(dtype=np.float32), method=st.sampled_from(METHODS))
def test_1_float32_matches_the_float64_oracle_within_the_derived_tolerance(x, method):
    """See ``assert_close32``."""
    q, k, v, mask, scale = args(x)
    o32, _ = aaren_scan(q, k, v, mask, scale, method=method)
    desired = aaren_naive(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), mask,
                          scale)
    assert_close32(o32, desired, aaren_scores(q, k, scale), v, mask)


def test_1_cell_step_is_the_combine_with_a_leaf_bitwise():
    rng = np.random.default_rng(0)
    state = random_state(rng, 3, 2, 4)
    s_t, v_t = S.normal(rng, (3, 2), scale=3.0), S.normal(rng, (3, 2, 4))
    new, o_t = aaren_cell_step(state, s_t, v_t)
    combined = softmax_combine(state, softmax_leaf(s_t, v_t))
    for a, b in zip(new, combined):
        assert np.array_equal(a, b)
    assert np.array_equal(o_t, combined.w / combined.u[..., None])


# 2. Last output is many-to-one attention -----------------------------------------------------


@given(x=qkv())
def test_2_last_output_is_many_to_one_attention(x):
    q, k, v, mask, scale = args(x)
    B, T, H, Dv = v.shape
    s = aaren_scores(q, k, scale)
    state = softmax_state_init(B, H, Dv)
    for t in range(T):  # the many-to-one RNN: only the final output is read
        state, o_T = aaren_cell_step(state, s[:, t], v[:, t], None if mask is None else mask[:, t])
    desired = attend_one_query(q, k, v, mask, scale)
    assert_close64(o_T, desired)
    assert_close64(aaren_scan(q, k, v, mask, scale)[0][:, -1], desired)


# 3. Operator laws ----------------------------------------------------------------------------


def random_triples(rng, shape, Dv, p_identity=0.25):
    """Triples as sets of tokens produce them; a fraction are the identity (-inf, 0, 0)."""
    m = S.normal(rng, shape, scale=30.0)
    u = rng.uniform(1.0, 5.0, shape)
    w = S.normal(rng, shape + (Dv,), scale=3.0)
    empty = rng.random(shape) < p_identity
    m[empty], u[empty], w[empty] = -np.inf, 0.0, 0.0
    return SoftmaxState(m, u, w)


@given(seed=S.seeds(), n=st.integers(1, 50), Dv=st.integers(1, 8))
def test_3_operator_laws(seed, n, Dv):
    rng = np.random.default_rng(seed)
    x, y, z = (random_triples(rng, (n,), Dv) for _ in range(3))
    assert_state_close64(softmax_combine(softmax_combine(x, y), z),
                         softmax_combine(x, softmax_combine(y, z)))
    for a, b in zip(softmax_combine(x, y), softmax_combine(y, x)):  # commutative, bitwise
        assert np.array_equal(a, b)
    e = softmax_identity((n,), Dv, np.float64)
    for combined in (softmax_combine(e, x), softmax_combine(x, e)):  # identity, bitwise
        for a, b in zip(combined, x):
            assert np.array_equal(a, b)
    ee = softmax_combine(e, e)
    assert not any(np.isnan(a).any() for a in ee)
    for a, b in zip(ee, e):
        assert np.array_equal(a, b)


# 4. Shift invariance -------------------------------------------------------------------------


@given(x=qkv(), c=st.floats(-100, 100), method=st.sampled_from(METHODS))
def test_4_shift_invariance(x, c, method):
    s = aaren_scores(x["q"], x["k"], x["scale"])
    v, mask = x["v"], x["mask"]
    o, state = on_scores(s, v, mask, method=method)
    o_c, state_c = on_scores(s + c, v, mask, method=method)
    assert_close64(o_c, o)
    assert np.array_equal(state_c.m, state.m + c)  # rounding is monotone: max(fl(s+c)) = fl(m+c)
    assert_close64(state_c.u, state.u)
    assert_close64(state_c.w, state.w)


# 5. Large-score stability, and why m exists --------------------------------------------------


@given(seed=S.seeds(), d=S.dims(), method=st.sampled_from(METHODS))
def test_5_large_scores_float64_stay_finite_and_match_the_oracle(seed, d, method):
    rng = np.random.default_rng(seed)
    B, T, H, Dv = d["B"], d["T"], d["H"], d["D"]
    s = rng.uniform(-1e4, 1e4, (B, T, H))
    s[:, rng.integers(T)] = 1e4  # at least one score whose e^s overflows
    v = S.normal(rng, (B, T, H, Dv))
    o, _ = on_scores(s, v, method=method)
    assert np.isfinite(o).all()
    assert_close64(o, aaren_naive(np.ones((H, 1)), s[..., None], v, scale=1.0))
    assert_close64(aaren_recurrent(s, v)[0], o)
    assert not np.isfinite(aaren_unstable_rolling(s, v)).all()  # e^{1e4} = inf, inf/inf = NaN


@given(seed=S.seeds(), d=S.dims(), shift=st.sampled_from([-1e3, 1e3]),
       method=st.sampled_from(METHODS))
def test_5_large_scores_float32_stay_finite_and_match_the_oracle(seed, d, shift, method):
    rng = np.random.default_rng(seed)
    B, T, H, Dv = d["B"], d["T"], d["H"], d["D"]
    s = (rng.uniform(-80, 80, (B, T, H)) + shift).astype(np.float32)
    v = S.normal(rng, (B, T, H, Dv), np.float32)
    o, _ = on_scores(s, v, method=method)
    assert o.dtype == np.float32 and np.isfinite(o).all()
    desired = aaren_naive(np.ones((H, 1)), s[..., None].astype(np.float64), v.astype(np.float64),
                          scale=1.0)
    assert_close32(o, desired, s, v)
    # The textbook form: e^{s} overflows float32 above ~88 (shift +1e3: inf/inf = NaN) and
    # underflows to 0 below ~-104 (shift -1e3: 0/0 = NaN). The running max m avoids both.
    assert np.isnan(aaren_unstable_rolling(s, v)).all()


def test_5_all_scores_far_below_zero_underflow_the_textbook_form_only():
    """The m_0 = 0 trap: e^{s - 0} = 0 for every s < -745 gives 0/0 without the running max."""
    rng = np.random.default_rng(1)
    s = rng.uniform(-2000.0, -800.0, (2, 9, 3))
    v = S.normal(rng, (2, 9, 3, 4))
    assert np.isnan(aaren_unstable_rolling(s, v)).all()
    o, _ = on_scores(s, v)
    assert_close64(o, aaren_naive(np.ones((3, 1)), s[..., None], v, scale=1.0))


@given(seed=S.seeds(), d=S.dims(), sigma=st.sampled_from([0.1, 3.0]))
def test_5_textbook_form_agrees_on_benign_scores(seed, d, sigma):
    rng = np.random.default_rng(seed)
    s = S.normal(rng, (d["B"], d["T"], d["H"]), scale=sigma)
    v = S.normal(rng, (d["B"], d["T"], d["H"], d["D"]))
    assert_close64(aaren_unstable_rolling(s, v), aaren_recurrent(s, v)[0])


# 6. Masking ----------------------------------------------------------------------------------


@given(x=qkv(masked=True), method=st.sampled_from(METHODS))
def test_6_masked_tokens_equal_deleted_tokens(x, method):
    q, k, v, mask, scale = args(x)
    o, _ = aaren_scan(q, k, v, mask, scale, method=method)
    for b in range(v.shape[0]):
        kept = mask[b]
        o_deleted = aaren_naive(q, k[b : b + 1, kept], v[b : b + 1, kept], scale=scale)[0]
        last_valid = np.cumsum(kept) - 1  # index into the kept tokens of the current prefix
        seen = last_valid >= 0
        expected = np.zeros_like(o[b])  # 0 before the first valid token
        expected[seen] = o_deleted[last_valid[seen]]
        assert_close64(o[b], expected)


@given(x=qkv(masked=False), padding=st.sampled_from(["left", "right"]), data=st.data())
def test_6_padding_does_not_change_real_positions(x, padding, data):
    """Ragged rows padded left or right with junk tokens (huge scores) that the mask hides."""
    q, k, v, _, scale = args(x)
    B, T, H, Dv = v.shape
    rng = x["rng"]
    lengths = np.array(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    mask = lengths_to_mask(lengths, T, padding)
    k_pad = np.where(mask[..., None, None], k, 1e3 * S.normal(rng, k.shape))
    v_pad = np.where(mask[..., None, None], v, 1e3 * S.normal(rng, v.shape))
    o, state = aaren_scan(q, k_pad, v_pad, mask, scale)
    for b, n in enumerate(lengths):
        real = slice(T - n, T) if padding == "left" else slice(0, n)
        o_b, state_b = aaren_scan(q, k[b : b + 1, real], v[b : b + 1, real], scale=scale)
        assert_close64(o[b, real], o_b[0])
        assert_state_close64(SoftmaxState(*(a[b : b + 1] for a in state)), state_b)
        if padding == "left":  # the padding before the first real token outputs 0
            assert np.array_equal(o[b, : T - n], np.zeros_like(o[b, : T - n]))


@pytest.mark.parametrize("method", METHODS)
def test_6_all_masked_gives_zero_output_zero_u_and_no_nan(method):
    rng = np.random.default_rng(0)
    q, k, v = S.normal(rng, (2, 3)), S.normal(rng, (3, 9, 2, 3)), S.normal(rng, (3, 9, 2, 4))
    mask = np.zeros((3, 9), bool)
    for o, state in (aaren_scan(q, k, v, mask, method=method),
                     aaren_recurrent(aaren_scores(q, k), v, mask)):
        assert np.array_equal(o, np.zeros_like(o))
        assert np.array_equal(state.u, np.zeros_like(state.u))
        assert np.isneginf(state.m).all() and not np.isnan(state.w).any()
    assert np.array_equal(aaren_naive(q, k, v, mask), np.zeros_like(v))
    assert np.array_equal(attend_one_query(q, k, v, mask), np.zeros((3, 2, 4)))


# 7. Streaming and chunking -------------------------------------------------------------------


@given(x=qkv(T=(2, 65)), data=st.data())
def test_7_calls_with_carried_state_equal_one_call(x, data):
    q, k, v, mask, scale = args(x)
    T = v.shape[1]
    cuts = sorted(data.draw(st.sets(st.integers(1, T - 1), min_size=1, max_size=4)))
    o_full, state_full = aaren_scan(q, k, v, mask, scale, method="sequential")
    pieces, state = [], None
    for lo, hi in zip([0] + cuts, cuts + [T]):
        method = data.draw(st.sampled_from(METHODS))
        o, state = aaren_scan(q, k[:, lo:hi], v[:, lo:hi], None if mask is None else mask[:, lo:hi],
                              scale, state, method)
        pieces.append(o)
    assert_close64(np.concatenate(pieces, axis=1), o_full)
    assert_state_close64(state, state_full)
    s = aaren_scores(q, k, scale)
    o_rec, state_rec = aaren_recurrent(s[:, : cuts[0]], v[:, : cuts[0]],
                                       None if mask is None else mask[:, : cuts[0]])
    o_rec2, state_rec = aaren_recurrent(s[:, cuts[0] :], v[:, cuts[0] :],
                                        None if mask is None else mask[:, cuts[0] :], state_rec)
    assert_close64(np.concatenate([o_rec, o_rec2], axis=1), o_full)
    assert_state_close64(state_rec, state_full)


@given(x=qkv(), with_state=st.booleans())
def test_7_chunk_sizes_all_agree(x, with_state):
    q, k, v, mask, scale = args(x)
    B, T, H, Dv = v.shape
    state = random_state(x["rng"], B, H, Dv) if with_state else None
    o_seq, state_seq = aaren_scan(q, k, v, mask, scale, state, method="sequential")
    for chunk in (1, 2, 3, 7, 64):
        o, final = aaren_scan(q, k, v, mask, scale, state, method="chunked", chunk=chunk)
        assert_close64(o, o_seq, f"chunk={chunk}")
        assert_state_close64(final, state_seq)


# 8. Convex hull ------------------------------------------------------------------------------


@given(x=qkv(), dtype=S.dtypes(), method=st.sampled_from(METHODS))
def test_8_outputs_lie_in_the_convex_hull_of_the_prefix_values(x, dtype, method):
    q, k, v, mask, scale = args(x)
    q, k, v = q.astype(dtype), k.astype(dtype), v.astype(dtype)
    B, T, H, Dv = v.shape
    o, _ = aaren_scan(q, k, v, mask, scale, method=method)
    valid = np.ones((B, T), bool) if mask is None else mask
    lo = np.minimum.accumulate(np.where(valid[..., None, None], v, np.inf), axis=1)
    hi = np.maximum.accumulate(np.where(valid[..., None, None], v, -np.inf), axis=1)
    seen = np.cumsum(valid, axis=1) > 0  # (B, T): a valid token in the prefix
    atol = 8 * T * np.finfo(dtype).eps * np.abs(v).max()  # rounding of T rescale-and-add steps
    assert (o[seen] >= lo[seen] - atol).all() and (o[seen] <= hi[seen] + atol).all()
    if mask is None:
        assert np.array_equal(o[:, 0], v[:, 0])  # o_1 = v_1 exactly
        assert np.array_equal(aaren_recurrent(aaren_scores(q, k, scale), v)[0][:, 0], v[:, 0])


# 9. Permutation invariance of many-to-one ----------------------------------------------------


@given(x=qkv(), method=st.sampled_from(METHODS))
def test_9_last_output_is_permutation_invariant(x, method):
    q, k, v, mask, scale = args(x)
    perm = x["rng"].permutation(v.shape[1])
    o, _ = aaren_scan(q, k, v, mask, scale, method=method)
    o_perm, _ = aaren_scan(q, k[:, perm], v[:, perm], None if mask is None else mask[:, perm],
                           scale, method=method)
    assert_close64(o_perm[:, -1], o[:, -1])


# 11. Shapes, dtypes, T = 1, T = 0 ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", METHODS)
def test_11_dtypes_and_state_shapes(dtype, method):
    rng = np.random.default_rng(0)
    B, T, H, Dk, Dv = 2, 5, 3, 4, 6
    q, k, v = S.normal(rng, (H, Dk), dtype), S.normal(rng, (B, T, H, Dk), dtype), S.normal(
        rng, (B, T, H, Dv), dtype)
    o, state = aaren_scan(q, k, v, method=method)
    assert o.shape == (B, T, H, Dv) and o.dtype == dtype
    assert [a.shape for a in state] == [(B, H), (B, H), (B, H, Dv)]
    assert all(a.dtype == dtype for a in state)
    for out in (aaren_naive(q, k, v), aaren_recurrent(aaren_scores(q, k), v)[0],
                aaren_unstable_rolling(aaren_scores(q, k), v)):
        assert out.shape == (B, T, H, Dv) and out.dtype == dtype
    assert attend_one_query(q, k, v).dtype == dtype
    new, o_t = aaren_cell_step(softmax_state_init(B, H, Dv, dtype), aaren_scores(q, k)[:, 0],
                               v[:, 0])
    assert o_t.dtype == dtype and all(a.dtype == dtype for a in new)


@pytest.mark.parametrize("method", METHODS)
def test_11_empty_sequence_returns_empty_outputs_and_the_state_unchanged(method):
    rng = np.random.default_rng(0)
    B, H, Dk, Dv = 2, 3, 4, 5
    q, k, v = S.normal(rng, (H, Dk)), np.zeros((B, 0, H, Dk)), np.zeros((B, 0, H, Dv))
    state = random_state(rng, B, H, Dv)
    o, final = aaren_scan(q, k, v, state=state, method=method)
    assert o.shape == (B, 0, H, Dv)
    for a, b in zip(final, state):
        assert np.array_equal(a, b)
    o, final = aaren_scan(q, k, v, method=method)
    for a, b in zip(final, softmax_state_init(B, H, Dv)):
        assert np.array_equal(a, b)
    o, final = aaren_recurrent(np.zeros((B, 0, H)), v, state=state)
    assert o.shape == (B, 0, H, Dv) and all(np.array_equal(a, b) for a, b in zip(final, state))
    assert aaren_naive(q, k, v).shape == (B, 0, H, Dv)
    assert np.array_equal(attend_one_query(q, k, v), np.zeros((B, H, Dv)))


def test_11_lengths_to_mask():
    assert lengths_to_mask([0, 2, 3], 3).tolist() == [[False] * 3, [True, True, False], [True] * 3]
    assert lengths_to_mask([0, 2, 3], 3, "left").tolist() == [[False] * 3, [False, True, True],
                                                              [True] * 3]


def _bad_calls():
    rng = np.random.default_rng(0)
    q, k, v = S.normal(rng, (2, 3)), S.normal(rng, (1, 4, 2, 3)), S.normal(rng, (1, 4, 2, 5))
    k_nan = k.copy()
    k_nan[0, 1, 0, 2] = np.nan
    state = softmax_state_init(1, 2, 5)
    return [
        (lambda: aaren_scan(q[:1], k, v), ValueError, "q must have shape"),
        (lambda: aaren_scan(q, k[:, :3], v), ValueError, "must share"),
        (lambda: aaren_scan(q, k, v.astype(np.int64)), TypeError, "v must have dtype"),
        (lambda: aaren_scan(q, k.astype(np.float16), v), TypeError, "k must have dtype"),
        (lambda: aaren_scan(q, k_nan, v), ValueError, "k must be finite"),
        (lambda: aaren_scan(q, k, v, mask=np.ones((1, 3), bool)), ValueError, "mask must have"),
        (lambda: aaren_scan(q, k, v, scale=np.nan), ValueError, "scale must be finite"),
        (lambda: aaren_scan(q, k, v, scale="1"), TypeError, "scale must be a real number"),
        (lambda: aaren_scan(q, k, v, method="scan"), ValueError, "method must be one of"),
        (lambda: aaren_scan(q, k, v, chunk=4), ValueError, "chunk is used only"),
        (lambda: aaren_scan(q, k, v, method="chunked", chunk=0), ValueError, "chunk must be"),
        (lambda: aaren_scan(q, k, v, state=state._replace(w=state.w[..., :4])), ValueError,
         "state.w must have shape"),
        (lambda: aaren_cell_step(None, np.zeros((1, 2)), np.zeros((1, 2, 5))), TypeError,
         "state must be a tuple"),
        (lambda: aaren_cell_step(state, np.zeros((1, 3)), np.zeros((1, 2, 5))), ValueError,
         "s_t must have shape"),
        (lambda: aaren_cell_step(state._replace(u=-state.u - 1), np.zeros((1, 2)),
                                 np.zeros((1, 2, 5))), ValueError, "state.u must be >= 0"),
        (lambda: aaren_recurrent(np.zeros((1, 4, 3)), v), ValueError, "s must have shape"),
        (lambda: lengths_to_mask([1, 5], 4), ValueError, "lengths must lie in"),
        (lambda: lengths_to_mask([1.0], 4), TypeError, "lengths must be a 1-D integer"),
        (lambda: lengths_to_mask([1], 4, "middle"), ValueError, "padding must be"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls())))
def test_11_bad_input_raises_naming_the_argument(case):
    call, exc, match = _bad_calls()[case]
    with pytest.raises(exc, match=match):
        call()


# 12. Gradients: softmax_scan_backward drives the VJP of aaren_scan ---------------------------


def _aaren_scan_vjp(q, k, v, mask, scale, state, g):
    """Chain rule through ``s = scale <q, k>`` around ``refseq.scan.softmax_scan_backward``."""
    s = aaren_scores(q, k, scale)
    grad_s, grad_v, grad_state = softmax_scan_backward(s, v, g, mask, state)  # (B, T, H), ...
    grad_q = scale * np.einsum("bth,bthd->hd", grad_s, k)  # (H, Dk)
    grad_k = scale * np.einsum("bth,hd->bthd", grad_s, q)  # (B, T, H, Dk)
    return grad_q, grad_k, grad_v, grad_state


@given(x=qkv(dims=S.dims(B=(1, 2), T=(1, 9), H=(1, 2), D=(1, 3)), sigmas=(0.1, 3.0)),
       with_state=st.booleans(), method=st.sampled_from(METHODS))
def test_12_gradients_match_central_finite_differences(x, with_state, method):
    q, k, v, mask, scale = args(x)
    B, T, H, Dv = v.shape
    rng = x["rng"]
    state = random_state(rng, B, H, Dv) if with_state else None
    g = S.normal(rng, v.shape)  # a random cotangent, never ones: it exposes transpositions

    grad_q, grad_k, grad_v, grad_state = _aaren_scan_vjp(q, k, v, mask, scale, state, g)
    arrays, grads = dict(q=q, k=k, v=v), dict(q=grad_q, k=grad_k, v=grad_v)
    if with_state:
        for field, a, ga in zip(state._fields, state, grad_state):
            arrays[f"state.{field}"], grads[f"state.{field}"] = a, ga
    loss = cotangent_loss(lambda: aaren_scan(q, k, v, mask, scale, state, method)[0], g)
    assert_entrywise(loss, arrays, grads)


# Peer: PyTorch's causal scaled_dot_product_attention with the query broadcast ----------------


@given(x=qkv(masked=False))
def test_peer_torch_sdpa_with_broadcast_query_equals_many_to_many_aaren(x):
    torch = pytest.importorskip("torch")
    q, k, v, _, scale = args(x)
    B, T, H, Dv = v.shape
    qb = torch.from_numpy(q)[None, :, None, :].expand(B, H, T, q.shape[1])  # (B, H, T, Dk)
    K = torch.from_numpy(k).transpose(1, 2)  # (B, H, T, Dk)
    V = torch.from_numpy(v).transpose(1, 2)  # (B, H, T, Dv)
    o_torch = torch.nn.functional.scaled_dot_product_attention(qb, K, V, is_causal=True,
                                                               scale=float(scale))
    o, _ = aaren_scan(q, k, v, scale=scale)
    assert_close64(o, o_torch.transpose(1, 2).numpy())


# The layer (Sec. 3.3) ------------------------------------------------------------------------


def _random_layer(rng, D, H, Dk, Dv, head_merge="concat"):
    p = init_aaren_params(rng, D, H, Dk, Dv, head_merge=head_merge)
    return p._replace(b_k=S.normal(rng, p.b_k.shape), b_v=S.normal(rng, p.b_v.shape),
                      b_o=S.normal(rng, p.b_o.shape))


@given(x=qkv(), D=st.integers(1, 6), data=st.data())
def test_layer_is_projection_scan_merge_and_streams_token_by_token(x, D, data):
    _, k, v, mask, scale = args(x)
    B, T, H, Dv = v.shape
    Dk = k.shape[3]
    rng = x["rng"]
    p = _random_layer(rng, D, H, Dk, Dv)
    inp = S.normal(rng, (B, T, D))
    y, state = aaren_layer(p, inp, mask, scale=scale)
    K = linear(inp, p.W_k, p.b_k).reshape(B, T, H, Dk)
    V = linear(inp, p.W_v, p.b_v).reshape(B, T, H, Dv)
    o, _ = aaren_scan(p.q, K, V, mask, scale)
    assert_close64(y, linear(o.reshape(B, T, H * Dv), p.W_o, p.b_o))
    step_state, ys = None, []
    for t in range(T):
        y_t, step_state = aaren_layer_step(p, inp[:, t], step_state,
                                           None if mask is None else mask[:, t], scale)
        ys.append(y_t)
    assert_close64(np.stack(ys, axis=1), y)
    assert_state_close64(step_state, state, exact_m=False)  # x_t W and x W may round apart


@pytest.mark.parametrize("head_merge", ["mean", "sum"])
def test_layer_mean_and_sum_merges_are_concat_with_a_tiled_output_weight(head_merge):
    rng = np.random.default_rng(0)
    B, T, D, H, Dk, Dv = 2, 7, 5, 3, 4, 2
    p = _random_layer(rng, D, H, Dk, Dv, head_merge)
    tiled = np.concatenate([p.W_o] * H) / (H if head_merge == "mean" else 1)  # (H*Dv, D)
    x = S.normal(rng, (B, T, D))
    y, _ = aaren_layer(p, x, head_merge=head_merge)
    assert_close64(y, aaren_layer(p._replace(W_o=tiled), x)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_preserves_dtype_and_handles_empty_input(dtype):
    rng = np.random.default_rng(0)
    p = init_aaren_params(rng, 4, 2, 3, 5, bias=False)  # float64 parameters
    y, state = aaren_layer(p, np.zeros((2, 6, 4), dtype))
    assert y.shape == (2, 6, 4) and y.dtype == dtype and state.w.dtype == dtype
    y, state = aaren_layer(p, np.zeros((2, 0, 4), dtype))
    assert y.shape == (2, 0, 4) and np.isneginf(state.m).all()
    with pytest.raises(ValueError, match="params.W_o must have shape"):
        aaren_layer(p, np.zeros((2, 6, 4)), head_merge="mean")
    with pytest.raises(TypeError, match="params must be AarenParams"):
        aaren_layer(tuple(p), np.zeros((2, 6, 4)))
    assert isinstance(p, AarenParams)
