"""Every compiled tier of the key-value lookup against the NumPy tier, and the GPU
decomposition's NumPy mirror.

float64: indices identical, distances within 1e-12. float32: indices identical except on the
queries whose reference ranking has a near-tie (k-th and (k+1)-th, or consecutive top-k
distances within 1e-5 relative: :func:`refseq.kv_lookup.reference.near_tie`, from the
reference's own values). The CPU tiers in fact agree bit for bit (same distances, same order);
the simulator runs the cuda kernels (tiny shapes), which must also equal their mirror.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.cuda import availability
from refseq.cuda.kv_lookup import mirror
from refseq.kv_lookup import kv_assign_stats, kv_lookup, kv_scatter_add
from refseq.kv_lookup.checks import check_lookup_args
from refseq.kv_lookup.reference import near_tie
from refseq.testing.profiles import cuda_settings
from refseq.testing.strategies import seeds

# the simulator busy-polls at every barrier: a short GIL switch interval makes it ~5x faster
pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

pytest.importorskip("numba")


@st.composite
def problems(draw, C=8, M=512, d_k=32, k=8, B=3, N=4):
    """Queries near keys or anywhere, duplicated keys now and then, a usage mask sometimes."""
    rng = np.random.default_rng(draw(seeds()))
    dims = [draw(st.integers(1, x)) for x in (B, C, N, M, d_k)]
    Bq, Cq, Nq, Mq, dq = dims
    kq = draw(st.integers(1, min(k, Mq)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    keys = rng.standard_normal((Cq, Mq, dq))
    if draw(st.booleans()) and Mq > 1:  # exact ties: duplicated keys
        keys[:, Mq // 2] = keys[:, 0]
    near = keys[np.arange(Cq)[None, :, None], rng.integers(0, Mq, (Bq, Cq, Nq))]
    h = np.where(rng.random((Bq, Cq, Nq, 1)) < 0.5, near + 0.1 * rng.standard_normal(near.shape),
                 rng.standard_normal(near.shape))
    mask = None
    if draw(st.booleans()):
        mask = rng.random((Cq, Mq)) < 0.7
        mask[:, :kq] = True
    values = rng.standard_normal((Cq, Mq, 2))
    return (h.astype(dtype), keys.astype(dtype), values.astype(dtype), kq, mask,
            draw(st.sampled_from(["l2", "cosine"])))


def assert_same_lookup(got, want, args):
    """Indices equal off the near-tie queries; distances within 1e-12 (float64) / the float32
    bound; fetched values those of the returned indices."""
    h, keys, values, k, mask, metric = args
    flagged = near_tie(h, keys, k, mask, metric)
    (gi, gd, gf), (wi, wd, wf) = got, want
    assert gi.dtype == np.int64 and gd.dtype == wd.dtype and gf.dtype == wf.dtype
    np.testing.assert_array_equal(gi[~flagged], wi[~flagged])
    rtol = 1e-12 if h.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(gd, wd, rtol=rtol, atol=rtol * max(1.0, float(np.abs(wd).max())))
    c = np.arange(keys.shape[0])[None, :, None, None]
    np.testing.assert_array_equal(gf, values[c, gi].transpose(0, 1, 3, 2, 4))


@given(problems())
def test_jit_lookup_equals_numpy(p):
    want = kv_lookup(*p[:5], metric=p[5])
    got = kv_lookup(*p[:5], metric=p[5], backend="jit")
    assert_same_lookup(got, want, p)
    for g, w in zip(got, want, strict=True):  # the CPU tiers agree bit for bit
        np.testing.assert_array_equal(g, w)


@given(problems(M=40))
def test_jit_scatter_and_stats_equal_numpy(p):
    h, keys, values, k, mask, metric = p
    idx, _, fetched = kv_lookup(h, keys, values, k, mask, metric=metric)
    g = np.random.default_rng(k).standard_normal(fetched.shape).astype(h.dtype)
    want = np.zeros(values.shape, h.dtype)
    c = np.broadcast_to(np.arange(keys.shape[0])[None, :, None, None], idx.shape)
    np.add.at(want, (c, idx), g.transpose(0, 1, 3, 2, 4))
    np.testing.assert_array_equal(kv_scatter_add(g, idx, keys.shape[1], backend="jit"), want)
    for a, b in zip(kv_assign_stats(h, keys, mask, backend="jit"), kv_assign_stats(h, keys, mask),
                    strict=True):
        np.testing.assert_array_equal(a, b)


@given(problems(M=40, d_k=9), st.sampled_from([1, 3, 32]), st.sampled_from([1, 5, 64]))
def test_mirror_equals_numpy(p, threads, shared):
    """The GPU decomposition (query tiles, key tiles of shared // d_k keys, running top-k)."""
    args = check_lookup_args(*p)
    if shared < args[0].shape[3]:
        shared = args[0].shape[3]
    got = mirror.kv_lookup(*args, threads=threads, shared=shared)
    assert_same_lookup(got, kv_lookup(*p[:5], metric=p[5]), p)


@pytest.fixture(scope="module")
def cuda_tier():
    ok, why = availability()
    if not ok:
        pytest.skip(why)
    import refseq.cuda.kv_lookup as ck
    return ck


@cuda_settings()
@given(problems(B=2, C=2, N=3, M=10, d_k=4, k=3))
def test_cuda_equals_numpy_and_mirror(cuda_tier, p):
    args = check_lookup_args(*p)
    threads, shared = 4, max(5, args[0].shape[3])
    got = cuda_tier.kv_lookup(*args, threads=threads, shared=shared)
    for g, w in zip(got, mirror.kv_lookup(*args, threads=threads, shared=shared), strict=True):
        if g.dtype.kind == "i":
            np.testing.assert_array_equal(g, w)  # the mirror predicts the kernel's indices
    assert_same_lookup(got, kv_lookup(*p[:5], metric=p[5]), p)
    h, keys, values, k, mask, _ = p
    idx = got[0]
    g = np.random.default_rng(1).standard_normal(got[2].shape).astype(h.dtype)
    np.testing.assert_array_equal(kv_scatter_add(g, idx, keys.shape[1], backend="cuda"),
                                  kv_scatter_add(g, idx, keys.shape[1]))
    flagged = near_tie(h, keys, 1, mask).any(axis=(0, 2))  # codebooks with a near-tie
    for a, b in zip(kv_assign_stats(h, keys, mask, backend="cuda"), kv_assign_stats(h, keys, mask),
                    strict=True):
        np.testing.assert_allclose(a[~flagged], b[~flagged], rtol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "jit", "cuda"])
def test_tie_rule_and_masks_on_every_tier(backend):
    """Hand-made ties (duplicated keys, a query halfway) and a mask, on each tier."""
    if backend == "cuda" and not availability()[0]:
        pytest.skip(availability()[1])
    keys = np.array([[[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]])
    h = np.array([[[[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]]])
    for dtype in (np.float32, np.float64):
        idx, dist, fetched = kv_lookup(h.astype(dtype), keys.astype(dtype), keys, 4,
                                       backend=backend)
        assert idx[0, 0].tolist() == [[1, 4, 0, 2], [0, 1, 2, 4], [0, 2, 1, 4]]
        mask = np.array([[1, 0, 1, 1, 1]], np.uint8)
        idx, _, _ = kv_lookup(h.astype(dtype), keys.astype(dtype), keys, 2, mask,
                              backend=backend)
        assert idx[0, 0].tolist() == [[4, 0], [0, 2], [0, 2]]


@pytest.mark.parametrize("backend, M", [("jit", 1), ("jit", 31), ("jit", 32), ("jit", 33),
                                        ("jit", 100), ("cuda", 33)])
def test_exact_ties_and_masks_equal_numpy_exactly(backend, M):
    """Keys and queries on a half-integer grid: every distance is exact in both dtypes, so many
    are exactly equal and the tie rule alone orders them; indices must equal the NumPy tier's
    everywhere (no near-tie exemption). M around the jit kernel's 32 key groups, k up to M (the
    simulated cuda kernel, whose tiles do not depend on M here, at one M)."""
    if backend == "cuda" and not availability()[0]:
        pytest.skip(availability()[1])
    rng = np.random.default_rng(M)
    keys = rng.integers(-2, 3, (2, M, 3)) / 2
    h = rng.integers(-2, 3, (2, 2, 5, 3)) / 2
    values = rng.standard_normal((2, M, 2))
    for dtype in (np.float32, np.float64):
        for k in sorted({1, min(M, 8), M}):
            for mask in (None, rng.random((2, M)) < 0.5):
                if mask is not None:
                    mask[:, :k] = True
                for metric in ("l2", "cosine"):
                    args = (h.astype(dtype), keys.astype(dtype), values.astype(dtype), k, mask)
                    want = kv_lookup(*args, metric=metric)
                    got = kv_lookup(*args, metric=metric, backend=backend)
                    for g, w in zip(got, want, strict=True):
                        np.testing.assert_array_equal(g, w)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the simulator's inf / inf
@pytest.mark.parametrize("backend", ["jit", "cuda", "mirror"])
def test_cosine_overflow_ranks_last_on_every_tier(backend):
    """Products that overflow make the cosine inf / inf: every tier ranks that key as an
    overflowed distance (+inf, after every finite one), never as NaN."""
    if backend == "cuda" and not availability()[0]:
        pytest.skip(availability()[1])
    h = np.array([[[[1e30, 1e30], [1.0, 0.0]]]], np.float32)
    keys = np.array([[[1e30, 1e30], [0.0, 1.0], [1.0, 0.0], [-1.0, -1.0]]], np.float32)
    values = np.arange(8, dtype=np.float32).reshape(1, 4, 2)
    args = check_lookup_args(h, keys, values, 4, None, "cosine")
    got = (mirror.kv_lookup(*args) if backend == "mirror"
           else kv_lookup(h, keys, values, 4, metric="cosine", backend=backend))
    idx, dist, _ = got
    assert idx[0, 0, 0, -1] == 0 and dist[0, 0, 0, -1] == np.inf
    assert not np.isnan(dist).any()
    for g, w in zip(got, kv_lookup(h, keys, values, 4, metric="cosine"), strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", ["jit", "cuda"])
def test_empty_batches(backend):
    if backend == "cuda" and not availability()[0]:
        pytest.skip(availability()[1])
    keys = np.ones((2, 3, 4))
    idx, dist, fetched = kv_lookup(np.zeros((0, 2, 1, 4)), keys, keys, 2, backend=backend)
    assert idx.shape == (0, 2, 1, 2) and fetched.shape == (0, 2, 2, 1, 4)
    counts, sums = kv_assign_stats(np.zeros((1, 2, 0, 4)), keys, backend=backend)
    assert (counts == 0).all() and sums.shape == (2, 3, 4)


def test_jit_kernel_module_is_what_the_jit_tier_runs(monkeypatch):
    """:mod:`refseq.jit.kv_lookup.kernels` by name: the public call runs ``lookup_kernel``."""
    import refseq.jit.kv_lookup as jt
    from refseq.jit.kv_lookup import kernels as JK

    calls = []
    real = JK.lookup_kernel
    monkeypatch.setattr(jt, "lookup_kernel", lambda *a: (calls.append(1), real(*a))[1])
    rng = np.random.default_rng(0)
    h, keys = rng.standard_normal((2, 1, 3, 5)), rng.standard_normal((1, 20, 5))
    for a, b in zip(kv_lookup(h, keys, keys, 2, backend="jit"), kv_lookup(h, keys, keys, 2),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert calls == [1] and JK.GROUPS >= 1 and JK.CHUNK >= 1


def test_cuda_kernel_module_builds_what_the_cuda_tier_launches(cuda_tier, monkeypatch):
    """:mod:`refseq.cuda.kv_lookup.kernels` by name: ``lookup_kernel(dtype, k, threads, shared)``
    is cached per configuration, and the tier's launches fetch their kernel there."""
    from refseq.cuda.kv_lookup import kernels as CK

    assert CK.lookup_kernel(np.dtype(np.float64), 2, 4, 5) is \
        CK.lookup_kernel(np.dtype(np.float64), 2, 4, 5)
    assert set(CK.column_kernels()) >= {"scatter"}
    fetched = []
    real = CK.lookup_kernel
    monkeypatch.setattr(cuda_tier, "lookup_kernel",
                        lambda *a: (fetched.append(a), real(*a))[1])
    rng = np.random.default_rng(0)
    h, keys = rng.standard_normal((2, 1, 2, 3)), rng.standard_normal((1, 6, 3))
    values = rng.standard_normal((1, 6, 2))
    got = kv_lookup(h, keys, values, 2, backend="cuda")
    for g, w in zip(got, kv_lookup(h, keys, values, 2), strict=True):
        np.testing.assert_array_equal(g, w)
    assert len(fetched) == 1 and fetched[0][1] == 2
