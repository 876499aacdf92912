"""The key-value lookup in the registry (kind ``"indices"``): what ``refseq audit``, the kernel
harness and the oracle run. Integer outputs exact, floats by the forward rule, queries with a
near-tie exempt; a twin that moves one index or breaks a tie the other way fails the check."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.registry import REGISTRY
from refseq.testing.harness import assert_tier_matches, check_indices, oracle

# the simulator busy-polls at every barrier: a short GIL switch interval makes it ~5x faster
pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

NAMES = ["kv_lookup", "kv_scatter_add", "kv_assign_stats"]
DIMS = {"B": 3, "C": 2, "N": 4, "M": 20, "D": 3, "k": 3, "metric": "l2"}


def test_every_function_of_the_hot_path_is_registered():
    assert {n for n, e in REGISTRY.items() if e.hot_path == "kv_lookup"} == set(NAMES)
    assert all(REGISTRY[n].kind == "indices" for n in NAMES)


def test_check_indices_counts_integers_and_honours_exemptions():
    want = (np.array([[0, 1], [2, 3]]), np.array([[0.5, 1.0], [2.0, 3.0]]))
    got = (np.array([[0, 1], [3, 2]]), np.array([[0.5, 1.0], [9.0, 9.0]]))
    ok, err, *_, msg = check_indices(got, want, want, [want])
    assert not ok and err == 2 and "output 0 differs at (1, 0)" in msg
    exempt = (np.array([[False, False], [True, True]]),) * 2
    ok, *_, msg = check_indices(got, want, want, [want], exempt)
    assert ok and "4 output entries of near-tie queries exempt" in msg
    bad = (want[0], want[1] + np.array([[0.0, 1e-3], [0.0, 0.0]]))
    assert not check_indices(bad, want, want, [want], exempt)[0]  # a float off the bound


@pytest.mark.parametrize("tier", ["numpy", "jit"])
def test_registered_entries_pass_on_cpu_tiers(tier):
    for name in NAMES:
        for dtype in (np.float32, np.float64):
            assert assert_tier_matches(REGISTRY[name], tier, DIMS if name != "kv_scatter_add"
                                       else {**DIMS, "V": 3}, dtype, seed=2).ok


def test_a_twin_that_breaks_ties_the_other_way_fails(monkeypatch):
    import refseq.jit.kv_lookup as jt

    original = jt.kv_lookup

    def swapped(*args):
        idx, dist, fetched = original(*args)
        return idx[..., ::-1].copy(), dist, fetched  # last slot first
    monkeypatch.setattr(jt, "kv_lookup", swapped)
    with pytest.raises(AssertionError, match="integer entries differ"):
        assert_tier_matches(REGISTRY["kv_lookup"], "jit", DIMS, np.float64, seed=0)


def test_a_scatter_twin_that_drops_a_contribution_fails(monkeypatch):
    import refseq.jit.kv_lookup as jt

    original = jt.kv_scatter_add
    monkeypatch.setattr(jt, "kv_scatter_add", lambda d, i, M: original(d[:, :, 1:], i[..., 1:], M))
    with pytest.raises(AssertionError):
        assert_tier_matches(REGISTRY["kv_scatter_add"], "jit", {**DIMS, "V": 3}, np.float32)


def test_the_oracle_exempts_exactly_the_near_tie_queries():
    """The exempt masks are the union of the reference's near-ties on the tier's (float64)
    and on the float32 inputs, broadcast over each output's slots and columns."""
    from refseq.kv_lookup.reference import near_tie

    entry = REGISTRY["kv_lookup"]
    o = oracle(entry, DIMS, np.float64, seed=4)
    assert o.same is not None and len(o.exempt) == 3

    def flags(dtype):
        h, keys, _, k, mask = entry.make_inputs(np.random.default_rng(4), DIMS, dtype)[0]
        return near_tie(h, keys, k, mask, "l2")

    want = flags(np.float64) | flags(np.float32)
    for r in range(DIMS["k"]):
        np.testing.assert_array_equal(o.exempt[0][..., r], want)
        np.testing.assert_array_equal(o.exempt[2][:, :, r, :, 0], want)


def test_registry_inputs_keep_k_usable_keys_and_the_boundary_covers_every_output():
    from refseq.testing import lookups

    dims = {"B": 3, "C": 4, "N": 2, "M": 6, "D": 3, "k": 5, "metric": "cosine"}
    for seed in range(5):
        (h, keys, values, k, mask), kw = lookups.lookup_inputs(np.random.default_rng(seed), dims,
                                                              np.float32)
        assert k == 5 and (mask.sum(axis=1) >= k).all() and kw == {"metric": "cosine"}
        exempt = lookups.lookup_boundary((h, keys, values, k, mask), kw)
        from refseq.kv_lookup import kv_lookup

        out = kv_lookup(h, keys, values, k, mask, metric="cosine")
        assert [e.shape for e in exempt] == [o.shape for o in out]
