"""The oracle's tree-verification contracts (exact integer comparison) and its losslessness
check of users' speculative samplers (:mod:`refseq.oracle.lossless`): correct implementations
pass, and each classic bug fails the case that should catch it."""

from __future__ import annotations

import numpy as np
import pytest

import refseq.oracle as oracle
from refseq import tree_verify as tv
from refseq.oracle import lossless
from refseq.tree_verify import reference as ref

TREE_CONTRACTS = ["tree_masks", "tree_verify_greedy", "tree_verify_greedy_paths",
                  "tree_verify_stochastic", "kv_commit"]


def _my_greedy(parents, tokens, target_argmax, num_nodes, *, last=False):
    """A user's greedy verifier written from the rule (``last=True``: the bug of taking the
    last matching sibling instead of the first)."""
    B, N = parents.shape
    paths, nxt = [], []
    for b in range(B):
        node, path = 0, [0]
        while True:
            hits = [c for c in range(num_nodes[b]) if parents[b, c] == node
                    and tokens[b, c] == target_argmax[b, node]]
            if not hits:
                break
            node = hits[-1] if last else hits[0]
            path.append(node)
        paths.append(path)
        nxt.append(target_argmax[b, node])
    width = max(len(p) for p in paths)  # the contract pads to the deepest tree, not path
    depth = np.zeros((B, N), int)
    for b in range(B):
        for i in range(1, num_nodes[b]):
            depth[b, i] = depth[b, parents[b, i]] + 1
    width = int(depth.max()) + 1
    out = np.full((B, width), -1)
    for b, p in enumerate(paths):
        out[b, :len(p)] = p
    return out, np.array([len(p) - 1 for p in paths]), np.array(nxt)


@pytest.mark.parametrize("name", TREE_CONTRACTS)
def test_the_references_pass_their_own_exact_contracts(name):
    contract = oracle.get_contract(name)
    assert contract.kind == "exact" and "single node" in oracle.properties(contract)
    fn = contract.reference if name == "kv_commit" else getattr(tv, name)
    report = oracle.check(fn, name, max_examples=2)
    assert report.ok and all(c.err == 0 for c in report.cases)


def test_a_users_greedy_verifier_passes_and_the_last_sibling_bug_fails():
    assert oracle.check(_my_greedy, "tree_verify_greedy", max_examples=3).ok
    report = oracle.check(lambda *a: _my_greedy(*a, last=True), "tree_verify_greedy",
                          max_examples=3, raise_on_failure=False)
    assert not report.ok and "entries differ" in report.worst_failure().message


def test_a_torch_greedy_verifier_passes_through_the_adapter():
    torch = pytest.importorskip("torch")

    def torch_greedy(parents, tokens, target_argmax, num_nodes):
        assert isinstance(parents, torch.Tensor)
        out = _my_greedy(parents.numpy(), tokens.numpy(), target_argmax.numpy(),
                         num_nodes.numpy())
        return tuple(torch.from_numpy(np.asarray(x, np.int64)) for x in out)  # int64: allowed

    assert oracle.check(torch_greedy, "tree_verify_greedy", adapter="torch", max_examples=2).ok


def test_a_kv_commit_that_forgets_to_copy_fails():
    def lazy(cache, n_past, path, num_accepted):
        return n_past + num_accepted + 1, cache

    report = oracle.check(lazy, "kv_commit", max_examples=3, raise_on_failure=False)
    assert not report.ok and report.worst_failure().err > 0


def test_stochastic_verification_without_the_wor_renormalisation_fails_on_wor_batches():
    def no_renorm(parents, tokens, target, draft, mode, virtual, u_accept, u_final, num_nodes):
        return tv.tree_verify_stochastic(parents, tokens, target, draft, 0 if mode == 1 else mode,
                                         None, u_accept, u_final, num_nodes)  # wor walked as iid

    # with a small vocabulary a rejected sibling often leaves mass that renormalisation moves
    report = oracle.check(no_renorm, "tree_verify_stochastic", max_examples=6,
                          dims={"mode": "wor", "V": 5}, raise_on_failure=False)
    assert not report.ok and "entries differ" in report.worst_failure().message
    report = oracle.check(no_renorm, "tree_verify_stochastic", max_examples=2,
                          dims={"mode": "iid"})  # iid batches: the same function is right
    assert report.ok


# --- is a speculative sampler lossless? ---------------------------------------------------------


def _wor_as_iid(parents, tokens, P, Q, mode, u_accept, u_final):
    return lossless.reference_sampler(parents, tokens, P, Q, "iid" if mode == "wor" else mode,
                                      u_accept, u_final)


def _flipped(parents, tokens, P, Q, mode, u_accept, u_final):
    """Lossless, with the coupling ``1 - u``: its decisions switch away from the reference's."""
    u = np.concatenate([[u_accept[0]], np.nextafter(1.0 - u_accept[1:], 0.0)])
    return lossless.reference_sampler(parents, tokens, P, Q, mode, u, u_final)


def test_the_reference_sampler_is_exactly_lossless():
    report = oracle.check(lossless.reference_sampler, "speculative_sampler")
    assert [c.property for c in report.cases] == ["point trees", "iid trees", "wor trees"]
    assert all(c.err < 1e-14 and c.message.startswith("exact") for c in report.cases)


def test_exact_emission_matches_the_exact_calculator():
    """A second formulation: the core's analytic step law on the same trees."""
    from refseq.decoding.speculative.exact import mixture_emission

    target_fn, draft_fn, ctx, trees = lossless.tree_cases("iid", 3)
    got = {}
    for parents, tokens, pre, w in trees:
        e, constant = lossless.exact_emission(
            lossless.reference_sampler, parents, tokens, lossless._rows(target_fn, ctx, pre),
            lossless._rows(draft_fn, ctx, pre), "iid")
        assert constant
        for k, m in e.items():
            got[k] = got.get(k, 0.0) + w * m
    from refseq.decoding.speculative.tree import DraftTree

    want = mixture_emission([(DraftTree(p, t), pre, w) for p, t, pre, w in trees], target_fn,
                            draft_fn, ctx, "iid")
    keys = set(got) | set(want)
    assert max(abs(got.get(k, 0) - want.get(k, 0)) for k in keys) < 1e-13


def test_verifying_wor_trees_with_iid_rules_fails_exactly_on_wor_trees_only():
    report = oracle.check(_wor_as_iid, "speculative_sampler", raise_on_failure=False)
    verdict = {c.property: c.ok for c in report.cases}
    assert verdict == {"point trees": True, "iid trees": True, "wor trees": False}
    assert report.worst_failure().err > 1e-2 and report.worst_failure().message.startswith("exact")


def test_a_lossless_sampler_with_other_thresholds_falls_back_to_the_statistical_test():
    report = oracle.check(_flipped, "speculative_sampler", max_examples=1)
    assert all("statistical test" in c.message and "changes inside a box" in c.message
               for c in report.cases)


def test_the_statistical_test_fails_a_biased_sampler():
    """(The reference passes: tests/oracle/test_oracle.py runs every contract's reference.)"""

    def no_residual(parents, tokens, P, Q, mode, rng):
        """The bug of drawing the final token from the target row, not the residual."""
        e = lossless.reference_sampler(parents, tokens, P, Q, mode, rng.random(len(parents)),
                                       rng.random())
        node = 0
        for t in e[:-1]:  # walk down the emitted tokens to the last accepted node
            node = next(c for c in range(len(parents)) if parents[c] == node and tokens[c] == t)
        return np.append(e[:-1], rng.choice(len(P[node]), p=P[node]))

    report = oracle.check(no_residual, "speculative_sampler_rng", max_examples=1,
                          raise_on_failure=False)
    verdict = {c.property: c.ok for c in report.cases}
    assert verdict["iid trees"] is False and verdict["wor trees"] is False
    c = report.worst_failure()
    assert c.err > c.bound and "statistical test" in c.message


def test_a_sampler_that_raises_is_a_failed_case_and_replay_gives_the_trees():
    def broken(*args):
        raise RuntimeError("boom")

    report = oracle.check(broken, "speculative_sampler", raise_on_failure=False)
    assert not report.ok and "raised RuntimeError: boom" in report.cases[0].message
    (target_fn, draft_fn, ctx, trees), _ = oracle.replay("speculative_sampler", seed=0,
                                                         dims={"V": 3}, property="wor trees")
    assert abs(sum(w for *_, w in trees) - 1) < 1e-12 and len(ctx) == 2
    assert ref.residual(np.array([0.5, 0.5]), np.array([1.0, 0.0])).tolist() == [0.0, 1.0]


def test_kv_commit_contract_reference_returns_a_compacted_copy():
    from refseq.oracle.decoding_contracts import kv_reference

    cache = np.arange(2 * 1 * 2 * 1 * 5 * 1, dtype=np.float64).reshape(2, 1, 2, 1, 5, 1)
    before = cache.copy()
    n_past, path, m = np.array([0, 1]), np.array([[0, 2, 3], [0, 1, -1]]), np.array([2, 1])
    new_n_past, out = kv_reference(cache, n_past, path, m)
    np.testing.assert_array_equal(cache, before)  # the caller's cache is untouched
    assert new_n_past.tolist() == [3, 3]
    # by hand: row 0 slots 0, 2, 3 -> 0, 1, 2; row 1 (n_past 1) slots 1, 2 -> 1, 2
    np.testing.assert_array_equal(out[0][..., :3, :], before[0][..., [0, 2, 3], :])
    np.testing.assert_array_equal(out[1][..., 1:3, :], before[1][..., [1, 2], :])
