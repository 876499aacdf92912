"""The NumPy tier of the tree-verification hot path against independent derivations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.tree_verify import (
    kv_commit,
    tree_masks,
    tree_verify_greedy,
    tree_verify_greedy_paths,
    tree_verify_stochastic,
)
from tests.tree_verify.batches import batches, make_batch

SEEDS = st.integers(0, 2**32 - 1)


def _closure(parents, n, N):
    """Ancestor-or-self matrix by repeated boolean products of the parent adjacency."""
    A = np.eye(N, dtype=bool)
    for i in range(1, n):
        A[i, parents[i]] = True
    R = A.copy()
    for _ in range(N):
        R = R | (R.astype(int) @ A.astype(int) > 0)
    R[n:] = np.eye(N, dtype=bool)[n:]
    return R


@given(SEEDS, st.integers(1, 4), st.integers(1, 24))
def test_masks_equal_transitive_closure(seed, B, N):
    kw = make_batch(seed, B, N, 3, 2, np.float64)
    n_past = np.random.default_rng(seed).integers(0, 50, B)
    allow, pos = tree_masks(kw["parents"], kw["num_nodes"], n_past)
    for b in range(B):
        R = _closure(kw["parents"][b], kw["num_nodes"][b], N)
        np.testing.assert_array_equal(allow[b], R.astype(np.uint8))
        real = np.arange(N) < kw["num_nodes"][b]
        # depth = number of proper ancestors = row count - 1
        np.testing.assert_array_equal(pos[b][real], n_past[b] + R[real].sum(1) - 1)


@given(batches(max_N=32, max_V=16))
def test_stochastic_with_one_hot_targets_is_greedy(kw):
    """Greedy limit (spec Property 8): one-hot targets make every mode the greedy walk."""
    V = kw["target_probs"].shape[2]
    rng = np.random.default_rng(int(kw["u_final"][0] * 1e9))
    argmax = rng.integers(0, V, kw["parents"].shape).astype(np.int32)
    onehot = np.eye(V, dtype=kw["target_probs"].dtype)[argmax]  # (B, N, V)
    want = tree_verify_greedy(kw["parents"], kw["tokens"], np.where(kw["tokens"] >= 0, argmax, 0),
                              kw["num_nodes"])
    got = tree_verify_stochastic(kw["parents"], kw["tokens"], onehot, kw["draft_probs"],
                                 kw["mode"], kw["virtual"], kw["u_accept"], kw["u_final"],
                                 kw["num_nodes"])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def _retrieve(parents, n):
    """Root-to-leaf rows of one tree (an independent construction from parent links)."""
    leaves = [i for i in range(n) if not (parents[i + 1:n] == i).any()]
    rows = []
    for leaf in leaves:
        row = [leaf]
        while row[-1] != 0:
            row.append(int(parents[row[-1]]))
        rows.append(row[::-1])
    return rows


@given(batches(max_N=24, max_V=6))
def test_greedy_paths_emit_the_greedy_tokens(kw):
    """Path form and tree walk emit the same tokens (spec Property 4), padding included."""
    B, N = kw["parents"].shape
    salt = int(kw["u_final"][0] * 1e9)
    argmax = np.full((B, N), -1, np.int32)
    for b in range(B):  # a function of the token prefix, as a real target's arg-max is
        for i in range(kw["num_nodes"][b]):
            prefix, j = [], i
            while j >= 0:
                prefix.append(int(kw["tokens"][b, j]))
                j = kw["parents"][b, j]
            argmax[b, i] = hash((salt, *prefix)) % 4
    path, m, nxt = tree_verify_greedy(kw["parents"], kw["tokens"], argmax, kw["num_nodes"])
    rows = [_retrieve(kw["parents"][b], kw["num_nodes"][b]) for b in range(B)]
    P, W = max(map(len, rows)), max(len(r) for rs in rows for r in rs)
    ret, rlen = np.full((B, P, W), -1, np.int32), np.zeros((B, P), np.int32)
    for b, rs in enumerate(rows):
        for p, r in enumerate(rs):
            ret[b, p, :len(r)], rlen[b, p] = r, len(r)
    acc, best, last = tree_verify_greedy_paths(ret, rlen, kw["tokens"], argmax)
    for b in range(B):
        n, par, tok = kw["num_nodes"][b], kw["parents"][b], kw["tokens"][b]
        dup = len({(par[i], tok[i]) for i in range(1, n)}) < n - 1
        if dup:  # the walk takes the first duplicate, the path form the longest: never shorter
            assert acc[b].max() >= m[b]
            continue
        assert acc[b].max() == m[b]
        assert acc[b, best[b]] == m[b] and (acc[b, :best[b]] < m[b]).all()  # the first best
        assert last[b] == ret[b, best[b], m[b]]
        np.testing.assert_array_equal(kw["tokens"][b, ret[b, best[b], 1:m[b] + 1]],
                                      kw["tokens"][b, path[b, 1:m[b] + 1]])
        assert argmax[b, last[b]] == nxt[b]
        assert (acc[b, len(rows[b]):] == -1).all()


def test_stochastic_hand_case():
    """Root with children y=0 (iid from q = [0.8, 0.2]) and y=1; p = [0.4, 0.6].

    Child 1 (token 0): accept iff u * 0.8 < 0.4, i.e. u < 0.5. On rejection P = res(p, q) =
    [0, 1]; child 2 (token 1): accept iff u * 0.2 < 1, always. Bonus at node 2 from p_2.
    """
    par = np.array([[-1, 0, 0]])
    tok = np.array([[1, 0, 1]])
    p = np.array([[[0.4, 0.6], [1.0, 0.0], [0.25, 0.75]]])
    q = np.array([[[0.8, 0.2], [0.5, 0.5], [0.5, 0.5]]])
    for u1, want_path, want_next in [(0.49, [0, 1], 0), (0.5, [0, 2], 1)]:
        path, m, nxt = tree_verify_stochastic(par, tok, p, q, "iid", None,
                                              np.array([[0.0, u1, 0.99]]), np.array([0.3]), [3])
        assert path[0].tolist() == want_path and m[0] == 1 and nxt[0] == want_next
    # point mode: token 0 accepted iff u < p(0) = 0.4; then res(p, onehot(0)) = [0, 1]
    path, m, nxt = tree_verify_stochastic(par, tok, p, None, 2, None,
                                          np.array([[0.0, 0.4, 0.7]]), np.array([0.2]), [3])
    assert path[0].tolist() == [0, 2] and nxt[0] == 0  # cdf(p_2) = [0.25, 1] > 0.2 at 0
    # final draw from the residual: all rejected in wor (second child's Q = [0, 1] -> u < 0.6)
    par2, tok2 = np.array([[-1, 0]]), np.array([[1, 0]])
    path, m, nxt = tree_verify_stochastic(par2, tok2, p[:, :2], q[:, :2], "wor", None,
                                          np.array([[0.0, 0.5]]), np.array([0.999]), [2])
    assert m[0] == 0 and nxt[0] == 1  # P = [0, 1]: token 0 has zero mass, never drawn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kv_commit_equals_gather(dtype):
    rng = np.random.default_rng(0)
    cache = rng.standard_normal((3, 2, 2, 2, 12, 4)).astype(dtype)
    n_past = np.array([0, 3, 5])
    path = np.array([[0, 2, 5, -1], [0, 1, 2, 3], [0, -1, -1, -1]])
    m = np.array([2, 3, 0])
    want = cache.copy()
    for b in range(3):
        src = n_past[b] + path[b, :m[b] + 1]
        want[b, ..., n_past[b]:n_past[b] + m[b] + 1, :] = cache[b][..., src, :]
    new = kv_commit(cache, n_past, path, m)
    np.testing.assert_array_equal(new, n_past + m + 1)
    np.testing.assert_array_equal(cache, want)
