"""The tree-verification hot path in the registry: what ``refseq audit``, the kernel harness and
the oracle run. Outputs are compared exactly (``kind="exact"``), except on trees that the
reference flags near a decision boundary; a twin that changes one integer fails the check."""

from __future__ import annotations

import numpy as np
import pytest

from refseq import tree_verify as tv
from refseq.registry import REGISTRY
from refseq.testing import trees
from refseq.testing.harness import TierDidNotRun, assert_tier_matches, check_exact, oracle
from refseq.tree_verify.reference import near_boundary

# the simulator busy-polls at every barrier: a short GIL switch interval makes it ~5x faster
pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

NAMES = ["tree_masks", "tree_verify_greedy", "tree_verify_greedy_paths", "kv_commit",
         "tree_verify_stochastic"]


def test_every_function_of_the_hot_path_is_registered_exact():
    assert {n for n, e in REGISTRY.items() if e.hot_path == "tree_verify"} == set(NAMES)
    assert all(REGISTRY[n].kind == "exact" for n in NAMES)
    assert REGISTRY["tree_verify_stochastic"].boundary is not None


@pytest.mark.parametrize("name", NAMES)
def test_generated_inputs_are_valid_calls(name):
    entry = REGISTRY[name]
    for dims in entry.audit_dims[-1:] + entry.cudasim_dims:
        args, kw = entry.make_inputs(np.random.default_rng(1), dims, np.float32)
        out = entry.result("numpy", *args, **kw)  # validates: raises on a malformed batch
        assert out is not None


def test_kv_capture_copies_the_compacted_cache():
    entry = REGISTRY["kv_commit"]
    args, _ = trees.kv_inputs(np.random.default_rng(0), {"B": 2, "N": 5, "V": 3}, np.float64)
    cache0 = args[0].copy()
    n_past, cache = entry.result("numpy", *args)
    path, m = args[2], args[3]
    for b in range(2):  # slot n_past + j holds what slot n_past + path[j] held (hand rule)
        for j in range(m[b] + 1):
            np.testing.assert_array_equal(cache[b, ..., args[1][b] + j, :],
                                          cache0[b, ..., args[1][b] + path[b, j], :])
    assert n_past.tolist() == (args[1] + m + 1).tolist()
    args[0][:] = 0  # a later call on the same buffer cannot change what was captured
    assert np.abs(cache).sum() > 0


def test_check_exact_counts_differences_and_honours_exemptions():
    want = (np.array([[0, 1], [0, 2]]), np.array([1, 1]))
    got = (np.array([[0, 1], [0, 3]]), np.array([1, 1]))
    ok, err, _, ratio, msg = check_exact(got, want)
    assert not ok and err == 1 and ratio == np.inf and "output 0 differs at (1, 1): 3 vs 2" in msg
    ok, err, *_, msg = check_exact(got, want, np.array([False, True]))
    assert ok and err == 0 and "1 tree(s) near a decision boundary exempt" in msg
    assert not check_exact((want[0],), want)[0]  # a missing output
    assert not check_exact((want[0].astype(np.int32), want[1]), want)[0]  # another dtype


def test_a_twin_that_changes_one_token_fails_the_harness(monkeypatch):
    import refseq.jit.tree_verify as jit_tv

    original = jit_tv.tree_verify_stochastic

    def broken(*args):
        path, num_acc, nxt = original(*args)
        return path, num_acc, nxt + 1  # every next token off by one
    monkeypatch.setattr(jit_tv, "tree_verify_stochastic", broken)
    with pytest.raises(AssertionError, match="entries differ"):
        assert_tier_matches(REGISTRY["tree_verify_stochastic"], "jit",
                            {"B": 3, "N": 6, "V": 5, "mode": "iid"}, np.float64, seed=0)


def test_a_dispatch_that_skips_the_twin_is_caught(monkeypatch):
    import refseq.tree_verify as public

    monkeypatch.setattr(public, "_dispatch", lambda name, backend, *a: pytest.fail("no"))
    monkeypatch.setattr(public, "check_backend", lambda b: "numpy")  # silently runs NumPy
    with pytest.raises(TierDidNotRun):
        assert_tier_matches(REGISTRY["tree_verify_greedy"], "jit", {"B": 2, "N": 4, "V": 3},
                            np.float32)


def test_the_oracle_flags_exactly_the_reference_boundary_trees():
    entry = REGISTRY["tree_verify_stochastic"]
    dims = {"B": 4, "N": 6, "V": 5, "mode": "wor"}
    args, _ = entry.make_inputs(np.random.default_rng(7), dims, np.float64)
    o = oracle(entry, dims, np.float64, seed=7)
    assert o.exact
    np.testing.assert_array_equal(o.exempt, near_boundary(*args[:4], 1, *args[5:]))
    # the reference on a uniform placed on a boundary is flagged: u * Q(y) == P(y)
    kw = trees.random_tree_batch(np.random.default_rng(0), 1, 2, 3, 2, np.float64)
    kw["parents"], kw["tokens"], kw["num_nodes"] = (np.array([[-1, 0]], np.int32),
                                                    np.array([[0, 1]], np.int32),
                                                    np.array([2], np.int32))
    kw["target_probs"][0, 0] = [0.5, 0.25, 0.25]
    kw["u_accept"][0, 1] = 0.25  # point mode: Q(y) = 1, so the gap u - P(y) is 0
    assert near_boundary(*(kw[k] for k in trees.STOCHASTIC_ARGS)).tolist() == [True]
    kw["u_accept"][0, 1] = 0.75
    assert near_boundary(*(kw[k] for k in trees.STOCHASTIC_ARGS)).tolist() == [False]
    assert tv.tree_verify_stochastic(**kw)[1].tolist() == [0]  # 0.75 > 0.25: rejected
