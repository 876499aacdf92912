"""Logit warpers and samplers (refseq/decoding/sampling.py).

Expected values come from second formulations written here: rank/set definitions of top-k and
top-p (no sorting or cumulative sums), ``q ** (1/T)`` for temperature, ``scipy.special.softmax``
for the warped distribution, ``scipy.stats.chisquare`` for draws, and Hugging Face's warpers as
peers (float32, kept sets compared exactly).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.special import softmax
from scipy.stats import chisquare

from refseq.decoding.sampling import (
    gumbel_argmax,
    gumbel_noise,
    sample,
    temperature,
    top_k_filter,
    top_p_filter,
    warp,
    warped_probs,
)
from refseq.testing.strategies import dtypes, seeds

NEG = -np.inf


def grid_logits(rng, rows, V, dtype, p_removed=0.2):
    """Logits on a 0.25 grid (ties likely, distinct values >= 0.25 apart), some -inf, every row
    with a finite entry."""
    z = rng.integers(-8, 9, (rows, V)) * 0.25
    z[rng.random((rows, V)) < p_removed] = NEG
    z[np.arange(rows), rng.integers(0, V, rows)] = rng.integers(-8, 9, rows) * 0.25
    return z.astype(dtype)


def tie_free_logits(rng, rows, V, dtype, scale=1.0):
    """Distinct logits per row, neighbours at least 0.4 * scale apart."""
    z = np.stack([rng.permutation(V) for _ in range(rows)]) + rng.uniform(-0.3, 0.3, (rows, V))
    return (z * scale).astype(dtype)


def kept(z):
    return np.isfinite(z)


# --- second formulations -----------------------------------------------------------------------

def top_k_reference(z, k, min_keep=1, ties="keep"):
    """Keep v iff fewer than k entries beat it: strictly larger ("keep"), or larger or equal
    with a lower index ("exact")."""
    rows, V = z.shape
    if k <= 0:
        return np.ones(z.shape, bool)
    k = min(max(k, min_keep), V)
    out = np.zeros(z.shape, bool)
    for r in range(rows):
        for v in range(V):
            beats = [u for u in range(V) if z[r, u] > z[r, v]
                     or (ties == "exact" and z[r, u] == z[r, v] and u < v)]
            out[r, v] = len(beats) < k
    return out


def exclusive_mass(q):
    """(V,) mass ranked strictly before each token (descending q, ties: lower index first),
    each an exactly rounded sum (math.fsum)."""
    V = len(q)
    return np.array([math.fsum(q[u] for u in range(V) if q[u] > q[v] or (q[u] == q[v] and u < v))
                     for v in range(V)])


def top_p_reference(z, p, min_keep=1):
    out = np.zeros(z.shape, bool)
    for r, row in enumerate(z):
        q = softmax(row.astype(np.float64))
        before = exclusive_mass(q)
        rank = np.array([np.sum((q > q[v]) | ((q == q[v]) & (np.arange(len(q)) < v)))
                         for v in range(len(q))])
        out[r] = (before < p) | (rank < min_keep)
    return out


# --- temperature -------------------------------------------------------------------------------

@given(seed=seeds(), V=st.integers(1, 12), dtype=dtypes(), T=st.floats(0.2, 5.0))
def test_temperature_is_power_of_probabilities(seed, V, dtype, T):
    z = grid_logits(np.random.default_rng(seed), 3, V, dtype)
    out = temperature(z, T)
    assert out.dtype == z.dtype
    assert np.array_equal(np.isneginf(out), np.isneginf(z))
    q = softmax(z.astype(np.float64), axis=1) ** (1 / T)  # softmax(z / T) = q^(1/T) / sum
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(warped_probs(z, temperature=T), q / q.sum(1, keepdims=True),
                               rtol=tol, atol=tol)


@given(seed=seeds(), V=st.integers(1, 12), dtype=dtypes())
def test_identities(seed, V, dtype):
    """Property 9: T = 1, k >= V, k <= 0, p = 1 and the default warp leave the values as they
    are."""
    z = grid_logits(np.random.default_rng(seed), 4, V, dtype)
    for out in (temperature(z, 1.0), top_k_filter(z, V), top_k_filter(z, V + 3, ties="exact"),
                top_k_filter(z, 0), top_k_filter(z, -2), top_p_filter(z, 1.0),
                top_p_filter(z, 1.0, mode="hf"), warp(z)):
        assert out.dtype == z.dtype and np.array_equal(out, z)


# --- top-k -------------------------------------------------------------------------------------

@given(seed=seeds(), V=st.integers(1, 10), dtype=dtypes(), k=st.integers(-1, 12),
       min_keep=st.integers(1, 4), ties=st.sampled_from(["keep", "exact"]))
def test_top_k_matches_rank_definition(seed, V, dtype, k, min_keep, ties):
    z = grid_logits(np.random.default_rng(seed), 4, V, dtype)
    out = top_k_filter(z, k, min_keep=min_keep, ties=ties)
    keep = top_k_reference(z, k, min_keep, ties)
    assert out.dtype == z.dtype
    np.testing.assert_array_equal(kept(out), keep & np.isfinite(z))
    np.testing.assert_array_equal(out[keep], z[keep])  # kept values untouched


def test_top_k_ties_by_hand():
    z = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]])
    assert np.flatnonzero(kept(top_k_filter(z, 2))).tolist() == [1, 2, 4]  # 3 > k kept
    assert np.flatnonzero(kept(top_k_filter(z, 2, ties="exact"))).tolist() == [1, 2]
    assert np.flatnonzero(kept(top_k_filter(z, 4))).tolist() == [1, 2, 3, 4]
    assert np.flatnonzero(kept(top_k_filter(z, 1, min_keep=3, ties="exact"))).tolist() == [1, 2, 4]
    z = np.array([[0.5, NEG, NEG, 0.0]])  # fewer finite entries than k: nothing removed
    assert np.array_equal(top_k_filter(z, 3), z)


@given(seed=seeds(), V=st.integers(1, 12), dtype=dtypes())
def test_top_k_one_is_argmax(seed, V, dtype):
    z = grid_logits(np.random.default_rng(seed), 5, V, dtype)
    out = top_k_filter(z, 1, ties="exact")
    assert np.array_equal(np.argwhere(kept(out))[:, 1], np.argmax(z, axis=1))
    z = tie_free_logits(np.random.default_rng(seed), 5, V, dtype)
    assert np.array_equal(np.argwhere(kept(top_k_filter(z, 1)))[:, 1], np.argmax(z, axis=1))


# --- top-p -------------------------------------------------------------------------------------

@given(seed=seeds(), V=st.integers(1, 9), dtype=dtypes(), p=st.floats(0.01, 0.999),
       min_keep=st.integers(1, 3))
def test_top_p_neutral_matches_definition(seed, V, dtype, p, min_keep):
    z = grid_logits(np.random.default_rng(seed), 3, V, dtype)
    for row in z:  # rule out draws where summation order could decide
        assume(np.all(np.abs(exclusive_mass(softmax(row.astype(np.float64))) - p) > 1e-12))
    out = top_p_filter(z, p, min_keep=min_keep)
    keep = top_p_reference(z, p, min_keep)
    np.testing.assert_array_equal(kept(out), keep & np.isfinite(z))
    np.testing.assert_array_equal(out[keep], z[keep])


@given(seed=seeds(), V=st.integers(2, 12), j=st.integers(0, 11), delta=st.sampled_from(
    [-1e-10, 1e-10, -1e-3, 1e-3, 0.3]), min_keep=st.integers(1, 3))
def test_top_p_neutral_and_hf_agree_off_the_boundary(seed, V, j, delta, min_keep):
    """Property 9 (float64, tie-free): p placed 1e-10 from a partial sum still agrees."""
    z = tie_free_logits(np.random.default_rng(seed), 1, V, np.float64)
    q = softmax(z[0])
    p = float(np.sort(exclusive_mass(q))[j % V] + delta)
    assume(0 < p < 1 and np.all(np.abs(exclusive_mass(q) - p) > 1e-12))
    a = top_p_filter(z, p, min_keep=min_keep)
    b = top_p_filter(z, p, min_keep=min_keep, mode="hf")
    np.testing.assert_array_equal(kept(a), kept(b))
    np.testing.assert_array_equal(kept(a), top_p_reference(z, p, min_keep))


@given(seed=seeds(), V=st.integers(1, 12), dtype=dtypes(), mode=st.sampled_from(["neutral", "hf"]))
def test_top_p_tiny_keeps_argmax(seed, V, dtype, mode):
    z = tie_free_logits(np.random.default_rng(seed), 4, V, dtype)
    out = top_p_filter(z, 1e-9, mode=mode)
    assert np.array_equal(np.argwhere(kept(out))[:, 1], np.argmax(z, axis=1))
    z = grid_logits(np.random.default_rng(seed), 4, V, dtype)  # ties: neutral keeps lower index
    assert np.array_equal(np.argwhere(kept(top_p_filter(z, 1e-9)))[:, 1], np.argmax(z, axis=1))


def test_top_p_by_hand():
    # q = (0.5, 0.25, 0.125, 0.125): before = (0, 0.5, 0.75, 0.875)
    z = np.log(np.array([[0.25, 0.5, 0.125, 0.125]]))
    assert np.flatnonzero(kept(top_p_filter(z, 0.5))).tolist() == [1]
    assert np.flatnonzero(kept(top_p_filter(z, 0.51))).tolist() == [0, 1]
    assert np.flatnonzero(kept(top_p_filter(z, 0.8))).tolist() == [0, 1, 2]  # tie: lower index
    assert np.flatnonzero(kept(top_p_filter(z, 0.5, min_keep=3))).tolist() == [0, 1, 2]


# --- warp and the warped distribution ----------------------------------------------------------

warps = st.fixed_dictionaries({
    "temperature": st.sampled_from([1.0, 0.5, 0.7, 1.3, 2.0]),
    "top_k": st.integers(0, 9),
    "top_p": st.sampled_from([1.0, 0.95, 0.8, 0.5, 0.2]),
    "order": st.permutations(["temperature", "top_k", "top_p"]).map(tuple),
    "top_k_ties": st.sampled_from(["keep", "exact"]),
    "top_p_mode": st.sampled_from(["neutral", "hf"]),
})


@given(seed=seeds(), V=st.integers(1, 8), dtype=dtypes(), kw=warps)
def test_warped_probs_is_softmax_over_kept(seed, V, dtype, kw):
    z = grid_logits(np.random.default_rng(seed), 3, V, dtype)
    out = warp(z, **kw)
    q = warped_probs(z, **kw)
    assert out.dtype == z.dtype and q.dtype == np.float64
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.array_equal(q == 0, ~kept(out))  # zero exactly on removed entries
    assert np.all(kept(out) <= kept(z))
    np.testing.assert_allclose(q, softmax(out.astype(np.float64), axis=1), rtol=1e-12, atol=0)


def test_warp_order_matters_by_hand():
    # q = (0.6, 0.3, 0.1); T = 0.25 gives q^4 ~ (0.94, 0.06, 0.0007): top-p 0.85 keeps 1 after
    # tempering, 2 before (masses before each rank: 0, 0.6, 0.9).
    z = np.log(np.array([[0.6, 0.3, 0.1]]))
    first = warp(z, temperature=0.25, top_p=0.85)
    last = warp(z, temperature=0.25, top_p=0.85, order=("top_p", "temperature"))
    assert kept(first).sum() == 1 and kept(last).sum() == 2


@given(seed=seeds(), V=st.integers(2, 50), dtype=dtypes(), gap=st.floats(0.1, 3.0),
       n_max=st.integers(1, 3))
def test_low_temperature_concentrates_on_argmax_set(seed, V, dtype, gap, n_max):
    """Property 10: T = 1e-3 puts > 1 - 1e-6 of the mass on the arg-max set (gap >= 0.1)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(-5, 5, (2, V))
    top = z.max(axis=1, keepdims=True) + gap
    idx = rng.permuted(np.tile(np.arange(V), (2, 1)), axis=1)[:, : min(n_max, V - 1)]
    np.put_along_axis(z, idx, top, axis=1)
    z = z.astype(dtype)
    q = warped_probs(z, temperature=1e-3)
    is_max = z == z.max(axis=1, keepdims=True)
    assert np.all(np.sum(q * is_max, axis=1) > 1 - 1e-6)


# --- samplers ----------------------------------------------------------------------------------

M = 100_000
GRID = (np.arange(M) + 0.5) / M


@given(seed=seeds(), V=st.integers(1, 8), dtype=dtypes(), kw=warps)
def test_inverse_cdf_on_uniform_grid_is_exact(seed, V, dtype, kw):
    """Property 8: M grid points land M * q'_v (+-1) times on token v."""
    z = warp(grid_logits(np.random.default_rng(seed), 1, V, dtype), **kw)
    q = softmax(z[0].astype(np.float64))
    tok = sample(np.repeat(z, M, axis=0), u=GRID)
    assert tok.dtype == np.int64
    counts = np.bincount(tok, minlength=V)
    assert np.all(np.abs(counts - M * q) <= 1)
    assert np.all(counts[q == 0] == 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_sample_chi_square(seed):
    rng = np.random.default_rng(seed)
    z = np.array([[1.0, -0.5, NEG, 2.0, 0.3, -2.0, 1.5, 0.0]])
    kw = dict(temperature=0.8, top_k=6, top_p=0.97)
    q = softmax(warp(z, **kw)[0])
    N = 200_000
    counts = np.bincount(sample(np.repeat(warp(z, **kw), N, axis=0), rng=rng), minlength=8)
    assert np.all(counts[q == 0] == 0) and (q == 0).sum() >= 2
    assert chisquare(counts[q > 0], N * q[q > 0]).pvalue > 1e-4


def test_sample_top_end_returns_last_positive_token():
    """When rounding leaves the last cdf value below 1, u just below 1 must not fall through to
    a removed token at the end of the vocabulary."""
    rng = np.random.default_rng(0)
    for _ in range(1000):
        z = np.concatenate([rng.normal(size=5), [NEG, NEG]])[None]
        e = np.exp(z - z.max())
        if np.cumsum(e / e.sum())[-1] < 1:
            break
    else:
        pytest.fail("no row whose float64 cdf ends below 1 was found")
    u_top = np.nextafter(1.0, 0.0)
    assert sample(z, u=[u_top]).tolist() == [4]
    assert sample(z, u=[0.0]).tolist() == [0]
    z = np.array([[NEG, 0.0, NEG, 0.0, NEG]])
    assert sample(np.repeat(z, 3, 0), u=[0.0, 0.5, u_top]).tolist() == [1, 3, 3]


@given(seed=seeds(), V=st.integers(1, 8), dtype=dtypes(),
       u=st.lists(st.sampled_from([0.0, 1e-300, 0.5, 1 - 1e-16, float(np.nextafter(1.0, 0.0))])
                  | st.floats(0, 1, exclude_max=True), min_size=4, max_size=4))
def test_sample_never_returns_zero_probability(seed, V, dtype, u):
    """Tokens at -inf and tokens whose probability underflows to 0 (first and last column)."""
    grid = grid_logits(np.random.default_rng(seed), 4, V, np.float64, p_removed=0.5)
    ends = np.where(np.arange(4)[:, None] % 2 == 0, -800.0, NEG)  # (4, 1)
    z = np.concatenate([np.full((4, 1), -800.0), grid, ends], axis=1).astype(dtype)
    q = softmax(z.astype(np.float64), axis=1)
    tok = sample(z, u=np.array(u))
    assert np.all(q[np.arange(4), tok] > 0)
    assert np.all((tok > 0) & (tok <= V))


def test_sample_rng_seed_and_generator():
    z = np.log(np.array([[0.2, 0.3, 0.5]] * 50))
    a = sample(z, rng=7)
    assert np.array_equal(a, sample(z, rng=np.random.default_rng(7)))
    assert np.array_equal(a, sample(z, u=np.random.default_rng(7).random(50)))
    assert np.unique(a).size > 1


def test_gumbel_argmax_by_hand():
    z = np.array([[0.0, NEG, 1.0], [0.0, 0.0, NEG], [NEG, -1e300, NEG]])
    g = np.array([[0.0, 1e300, 0.0], [0.0, 0.0, 1e300], [1e300, 0.0, 1e300]])
    assert gumbel_argmax(z, g).tolist() == [2, 0, 1]  # -inf never wins; ties: lower index


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gumbel_argmax_is_softmax_distributed(dtype):
    rng = np.random.default_rng(3)
    z = np.array([[0.5, NEG, -1.0, 1.2, 0.0, NEG]], dtype=dtype)
    N = 200_000
    tok = gumbel_argmax(np.repeat(z, N, axis=0), gumbel_noise(rng, (N, 6)))
    counts = np.bincount(tok, minlength=6)
    q = softmax(z[0].astype(np.float64))
    assert np.all(counts[q == 0] == 0)
    assert chisquare(counts[q > 0], N * q[q > 0]).pvalue > 1e-4


def test_gumbel_noise_moments():
    g = gumbel_noise(0, 200_000)
    assert g.shape == (200_000,) and np.all(np.isfinite(g))
    assert abs(g.mean() - np.euler_gamma) < 0.01 and abs(g.var() - np.pi**2 / 6) < 0.03
    assert gumbel_noise(np.random.default_rng(1), (2, 3)).shape == (2, 3)


# --- inputs are not modified; dtypes -----------------------------------------------------------

def test_inputs_are_read_only_safe():
    z = grid_logits(np.random.default_rng(0), 3, 6, np.float32)
    z.setflags(write=False)  # any in-place write raises
    kw = dict(temperature=0.7, top_k=4, top_p=0.8)
    for out in (temperature(z, 0.5), top_k_filter(z, 2, ties="exact"), top_p_filter(z, 0.5),
                top_p_filter(z, 0.5, mode="hf"), warp(z, **kw)):
        assert out.dtype == np.float32
    u = np.full(3, 0.5)
    u.setflags(write=False)
    assert sample(z, u=u).dtype == np.int64
    assert gumbel_argmax(z, np.zeros((3, 6))).dtype == np.int64
    warped_probs(z, **kw)


# --- peers: Hugging Face warpers ---------------------------------------------------------------

@pytest.fixture(scope="module")
def hf():
    torch = pytest.importorskip("torch")
    lp = pytest.importorskip("transformers.generation.logits_process")

    def run(warpers, z):
        return lp.LogitsProcessorList(warpers)(None, torch.from_numpy(z)).numpy()

    return lp, run


@given(seed=seeds(), V=st.integers(1, 20), k=st.integers(1, 22), min_keep=st.integers(1, 3),
       T=st.sampled_from([1.0, 0.5, 1.7]))
def test_hf_temperature_and_top_k(hf, seed, V, k, min_keep, T):
    lp, run = hf
    z = grid_logits(np.random.default_rng(seed), 4, V, np.float32)  # ties and -inf included
    theirs = run([lp.TemperatureLogitsWarper(T),
                  lp.TopKLogitsWarper(k, min_tokens_to_keep=min_keep)], z)
    ours = warp(z, temperature=T, top_k=k, min_keep=min_keep)
    np.testing.assert_array_equal(ours, theirs)  # bitwise, -inf in the same places


@given(seed=seeds(), V=st.integers(1, 32), p=st.floats(0.02, 0.98), min_keep=st.integers(1, 3),
       T=st.sampled_from([1.0, 0.6, 1.5]), k=st.integers(0, 33))
def test_hf_top_p_away_from_boundary(hf, seed, V, p, min_keep, T, k):
    """Chain temperature -> top-k -> top-p. torch's CPU softmax uses its own exp (up to ~30
    float32 ulps from NumPy's), so draws with an ascending cumulative probability within 1e-5
    of 1 - p are skipped; bit-level boundary cases are in test_hf_top_p_at_float_boundary."""
    lp, run = hf
    z = tie_free_logits(np.random.default_rng(seed), 1, V, np.float32, scale=0.7)
    before_p = warp(z, temperature=T, top_k=k)
    zs = np.sort(before_p[0].astype(np.float64))
    cum = np.cumsum(softmax(zs))
    assume(np.all(np.abs(cum - (1 - p)) > 1e-5))
    warpers = [lp.TemperatureLogitsWarper(T)] + (
        [lp.TopKLogitsWarper(k, min_tokens_to_keep=min_keep)] if k > 0 else []) + [
        lp.TopPLogitsWarper(p, min_tokens_to_keep=min_keep)]
    theirs = run(warpers, z)
    ours = warp(z, temperature=T, top_k=k, top_p=p, top_p_mode="hf", min_keep=min_keep)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("V, p, neutral, hf_kept", [
    (3, 0.66666667, [0, 1, 2], [1, 2]),  # float32 rounding: 2/3 < p, yet f32(1 - p) = q_(1)
    (5, 0.60000001, [0, 1, 2, 3], [1, 2, 3, 4]),  # same, plus opposite tie direction
    (5, 0.4, [0, 1], [3, 4]),  # exact arithmetic agrees on the count; ties go opposite ways
    # p = float32(0.3): torch.cumsum accumulates float32 in float64 (a float32 running sum
    # would keep 4 here)
    (10, float(np.float32(0.3)), [0, 1, 2, 3], [7, 8, 9]),
])
def test_hf_top_p_at_float_boundary(hf, V, p, neutral, hf_kept):
    """Uniform logits have a softmax every implementation computes exactly (exp(0) = 1, one
    correctly rounded division), so these boundary cases are deterministic. The neutral rule
    and Hugging Face differ here; mode="hf" matches Hugging Face."""
    lp, run = hf
    z = np.zeros((1, V), np.float32)
    theirs = run([lp.TopPLogitsWarper(p)], z)
    assert np.flatnonzero(kept(theirs)).tolist() == hf_kept
    assert np.flatnonzero(kept(top_p_filter(z, p, mode="hf"))).tolist() == hf_kept
    assert np.flatnonzero(kept(top_p_filter(z, p))).tolist() == neutral


# --- bad inputs --------------------------------------------------------------------------------

Z = np.zeros((2, 3))
BAD = [
    # (call, error, words the message must contain)
    (lambda: temperature(np.zeros(3), 1.0), ValueError, ["logits", "(rows, V)"]),
    (lambda: temperature(np.zeros((2, 0)), 1.0), ValueError, ["logits", "(rows, V)"]),
    (lambda: top_k_filter(np.zeros((2, 3), int), 1), TypeError, ["logits", "float32"]),
    (lambda: top_p_filter(np.array([[0.0, np.nan]]), 0.5), ValueError, ["logits", "NaN"]),
    (lambda: warp(np.array([[0.0, np.inf]])), ValueError, ["logits", "+inf"]),
    (lambda: sample(np.array([[0.0, 1.0], [NEG, NEG]])), ValueError, ["logits", "row 1"]),
    (lambda: gumbel_argmax(np.array([[NEG, NEG]]), np.zeros((1, 2))), ValueError, ["row 0"]),
    (lambda: temperature(Z, 0.0), ValueError, ["T", "> 0"]),
    (lambda: temperature(Z, -1.0), ValueError, ["T"]),
    (lambda: temperature(Z, float("nan")), ValueError, ["T"]),
    (lambda: temperature(Z, float("inf")), ValueError, ["T"]),
    (lambda: temperature(Z, "1"), TypeError, ["T"]),
    (lambda: temperature(np.array([[1e30, 0.0]], np.float32), 1e-10), ValueError, ["overflow"]),
    (lambda: top_k_filter(Z, 1.5), TypeError, ["k"]),
    (lambda: top_k_filter(Z, True), TypeError, ["k"]),
    (lambda: top_k_filter(Z, 1, min_keep=0), ValueError, ["min_keep"]),
    (lambda: top_k_filter(Z, 1, ties="lower"), ValueError, ["ties", "exact"]),
    (lambda: top_p_filter(Z, 0.0), ValueError, ["p", "> 0"]),
    (lambda: top_p_filter(Z, 1.5), ValueError, ["p", "<= 1"]),
    (lambda: top_p_filter(Z, float("nan")), ValueError, ["p"]),
    (lambda: top_p_filter(Z, 0.5, mode="fairseq"), ValueError, ["mode", "hf"]),
    (lambda: top_p_filter(Z, 0.5, min_keep=1.0), TypeError, ["min_keep"]),
    (lambda: warp(Z, temperature=0.0), ValueError, ["temperature"]),
    (lambda: warp(Z, top_k=2.0), TypeError, ["top_k"]),
    (lambda: warp(Z, top_p=2.0), ValueError, ["top_p"]),
    (lambda: warp(Z, top_k_ties="x"), ValueError, ["top_k_ties"]),
    (lambda: warp(Z, top_p_mode="x"), ValueError, ["top_p_mode"]),
    (lambda: warp(Z, order=("temperature", "top_q")), ValueError, ["order", "top_q"]),
    (lambda: warp(Z, order=("top_k", "top_k")), ValueError, ["order", "repeat"]),
    (lambda: warp(Z, order="top_k"), TypeError, ["order"]),
    (lambda: warp(Z, top_k=2, order=("temperature",)), ValueError, ["order", "top_k"]),
    (lambda: warped_probs(Z, top_q=0.5), TypeError, ["top_q"]),
    (lambda: sample(Z, u=[0.5]), ValueError, ["u", "(rows,)"]),
    (lambda: sample(Z, u=[0.5, 1.0]), ValueError, ["u", "[0, 1)"]),
    (lambda: sample(Z, u=[0.5, float("nan")]), ValueError, ["u", "[0, 1)"]),
    (lambda: sample(Z, u=[0, 0]), TypeError, ["u", "float"]),
    (lambda: sample(Z, rng=1, u=[0.5, 0.5]), ValueError, ["u", "rng"]),
    (lambda: sample(Z, rng="seed"), TypeError, ["rng"]),
    (lambda: gumbel_argmax(Z, np.zeros((2, 2))), ValueError, ["g", "(rows, V)"]),
    (lambda: gumbel_argmax(Z, np.full((2, 3), np.inf)), ValueError, ["g", "finite"]),
    (lambda: gumbel_noise(0, (2, -1)), ValueError, ["shape"]),
    (lambda: gumbel_noise(0, [2, 3]), TypeError, ["shape"]),
    (lambda: gumbel_noise("x", 3), TypeError, ["rng"]),
]


@pytest.mark.parametrize("call, error, words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_inputs(call, error, words):
    with pytest.raises(error) as info:
        call()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
