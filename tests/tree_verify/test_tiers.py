"""Every compiled tier of the tree-verification hot path against the NumPy tier.

Integer outputs must be identical, except on trees where a uniform lies within 1e-12 (float64)
/ 1e-5 (float32) of a decision boundary of the reference walk (tests/tree_verify/batches.py,
``near_boundary``), where either outcome is accepted. The cuda kernels run under the Numba CUDA
simulator here (tiny shapes) and must also equal their NumPy mirror.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from refseq import tree_verify as tv
from refseq.cuda import availability
from refseq.cuda.tree_verify import mirror
from refseq.testing.profiles import cuda_settings
from refseq.tree_verify.checks import check_stochastic_args
from tests.tree_verify.batches import assert_same_walks, batches, near_boundary

# the simulator busy-polls at every barrier: a short GIL switch interval makes it ~5x faster
pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

jit = pytest.importorskip("numba")


def _run(kw, backend):
    return tv.tree_verify_stochastic(**kw, backend=backend)


def _greedy_inputs(kw):
    rng = np.random.default_rng(int(kw["u_final"][0] * 1e9))
    argmax = np.where(kw["tokens"] >= 0, rng.integers(0, 4, kw["tokens"].shape), -1)
    return kw["parents"], kw["tokens"], argmax.astype(np.int32), kw["num_nodes"]


@given(batches())
def test_jit_stochastic_equals_numpy(kw):
    want = _run(kw, "numpy")
    assert_same_walks(_run(kw, "jit"), want, near_boundary(kw))


@given(batches())
def test_mirror_equals_numpy(kw):
    """The GPU decomposition (blocked sums, tiled CDF) decides like the reference."""
    args = check_stochastic_args(*(kw[k] for k in ("parents", "tokens", "target_probs",
                                                   "draft_probs", "mode", "virtual", "u_accept",
                                                   "u_final", "num_nodes")))
    got = mirror.tree_verify_stochastic(*args[:-1], int(args[-1].max()) + 1, threads=8)
    assert_same_walks(got, _run(kw, "numpy"), near_boundary(kw))


@given(batches(max_N=32, max_V=8))
def test_jit_greedy_masks_paths_equal_numpy(kw):
    args = _greedy_inputs(kw)
    for g, w in zip(tv.tree_verify_greedy(*args, backend="jit"), tv.tree_verify_greedy(*args),
                    strict=True):
        np.testing.assert_array_equal(g, w)
    n_past = np.arange(kw["parents"].shape[0]) * 7
    for g, w in zip(tv.tree_masks(kw["parents"], kw["num_nodes"], n_past, backend="jit"),
                    tv.tree_masks(kw["parents"], kw["num_nodes"], n_past), strict=True):
        np.testing.assert_array_equal(g, w)


def _paths_case():
    tok = np.array([[3, 1, 2, 1, 0, -1], [3, 0, 0, 0, 0, 0]])
    am = np.array([[1, 0, 5, 0, 2, -1], [0, 0, 0, 0, 0, 0]])
    ret = np.array([[[0, 1, 3], [0, 2, -1], [0, 1, 4]], [[0, 1, 2], [0, 3, 4], [-1, -1, -1]]])
    rlen = np.array([[3, 2, 3], [3, 3, 0]])
    return ret, rlen, tok, am


def _kv_case(dtype):
    rng = np.random.default_rng(1)
    cache = rng.standard_normal((2, 2, 2, 3, 10, 5)).astype(dtype)
    return cache, np.array([1, 4]), np.array([[0, 3, 4], [0, 1, -1]]), np.array([2, 1])


@pytest.mark.parametrize("backend", ["jit", "cuda"])
def test_paths_and_kv_equal_numpy(backend):
    if backend == "cuda" and not availability()[0]:
        pytest.skip(availability()[1])
    case = _paths_case()
    for g, w in zip(tv.tree_verify_greedy_paths(*case, backend=backend),
                    tv.tree_verify_greedy_paths(*case), strict=True):
        np.testing.assert_array_equal(g, w)
    for dtype in (np.float32, np.float64):
        c1, n_past, path, m = _kv_case(dtype)
        c2 = c1.copy()
        np.testing.assert_array_equal(tv.kv_commit(c1, n_past, path, m, backend=backend),
                                      tv.kv_commit(c2, n_past, path, m))
        np.testing.assert_array_equal(c1, c2)


@pytest.fixture(scope="module")
def cuda_tier():
    ok, why = availability()
    if not ok:
        pytest.skip(why)
    import refseq.cuda.tree_verify as ct
    return ct


@cuda_settings()
@given(batches(max_B=2, max_N=8, max_V=12))
def test_cuda_equals_numpy_and_mirror(cuda_tier, kw):
    args = check_stochastic_args(*(kw[k] for k in ("parents", "tokens", "target_probs",
                                                   "draft_probs", "mode", "virtual", "u_accept",
                                                   "u_final", "num_nodes")))
    width = int(args[-1].max()) + 1
    got = cuda_tier.tree_verify_stochastic(*args[:-1], width, threads=4)
    for g, w in zip(got, mirror.tree_verify_stochastic(*args[:-1], width, threads=4),
                    strict=True):
        np.testing.assert_array_equal(g, w)  # the mirror predicts the kernel exactly
    assert_same_walks(got, _run(kw, "numpy"), near_boundary(kw))
    g_args = _greedy_inputs(kw)
    for g, w in zip(tv.tree_verify_greedy(*g_args, backend="cuda"), tv.tree_verify_greedy(*g_args),
                    strict=True):
        np.testing.assert_array_equal(g, w)
    n_past = np.arange(kw["parents"].shape[0]) + 2
    for g, w in zip(tv.tree_masks(kw["parents"], kw["num_nodes"], n_past, backend="cuda"),
                    tv.tree_masks(kw["parents"], kw["num_nodes"], n_past), strict=True):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("backend", ["numpy", "jit", "cuda"])
def test_strict_acceptance_with_u_zero(backend):
    """u = 0 and P(y) = 0: ``0 * Q < 0`` is false, so the child is rejected (``<=`` accepts)."""
    if backend == "cuda" and not availability()[0]:
        pytest.skip(availability()[1])
    p = np.array([[[0.0, 1.0], [0.5, 0.5]]])
    for mode in (0, 1, 2):
        path, m, nxt = tv.tree_verify_stochastic([[-1, 0]], [[1, 0]], p, p, mode, None,
                                                 np.zeros((1, 2)), np.array([0.0]), [2],
                                                 backend=backend)
        assert m[0] == 0 and nxt[0] == 1


@given(batches(max_B=3, max_N=16, max_V=8))
def test_jit_kernel_module_functions_are_what_the_jit_tier_runs(kw):
    """:mod:`refseq.jit.tree_verify.kernels` by name: each public jit call runs its kernel
    (spied) and returns the NumPy tier's outputs."""
    import refseq.jit.tree_verify as jt
    from refseq.jit.tree_verify import kernels as JK

    calls = []
    names = ("greedy_kernel", "masks_kernel", "stochastic_kernel")
    with pytest.MonkeyPatch.context() as mp:
        for name in names:
            real = getattr(JK, name)
            mp.setattr(jt, name, lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a))[1])
        assert_same_walks(_run(kw, "jit"), _run(kw, "numpy"), near_boundary(kw))
        args = _greedy_inputs(kw)
        for g, w in zip(tv.tree_verify_greedy(*args, backend="jit"), tv.tree_verify_greedy(*args),
                        strict=True):
            np.testing.assert_array_equal(g, w)
        n_past = np.zeros(kw["parents"].shape[0], np.int32)
        for g, w in zip(tv.tree_masks(kw["parents"], kw["num_nodes"], n_past, backend="jit"),
                        tv.tree_masks(kw["parents"], kw["num_nodes"], n_past), strict=True):
            np.testing.assert_array_equal(g, w)
    assert calls == ["stochastic_kernel", "greedy_kernel", "masks_kernel"]


@cuda_settings()
@given(batches(max_B=2, max_N=6, max_V=6))
def test_cuda_kernel_module_builds_what_the_cuda_tier_launches(cuda_tier, kw):
    """:mod:`refseq.cuda.tree_verify.kernels` by name: ``kernel_table(threads)`` is cached per
    block size, holds the five kernels, and the tier's launches fetch them there."""
    from refseq.cuda.tree_verify import kernels as CK

    table = CK.kernel_table(4)
    assert set(table) == {"masks", "greedy", "paths", "stochastic", "kv"}
    assert CK.kernel_table(4) is table
    fetched = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cuda_tier, "kernel_table",
                   lambda threads: (fetched.append(threads), CK.kernel_table(threads))[1])
        args = _greedy_inputs(kw)
        for g, w in zip(tv.tree_verify_greedy(*args, backend="cuda"), tv.tree_verify_greedy(*args),
                        strict=True):
            np.testing.assert_array_equal(g, w)
    assert len(fetched) == 1
