"""Losslessness of RSD (arXiv 2402.14160, Sec. 3): recursive rejection sampling on trees drawn
without replacement emits exactly the target's law.

- RSD-C: every without-replacement tree is enumerated with its probability
  (``refseq.decoding.speculative.exact``), the step law is integrated over the uniforms, and
  equation (E) of docs/speculative.md holds to 1e-12; the builder's trees are those trees, with
  the enumeration's probabilities (chi-square).
- RSD-S: the tree law has no closed form, so trees are sampled (Monte Carlo) and, per tree, the
  emitted tuple's law is exact (the acceptance uniforms integrated out). Each step is followed by
  target sampling up to 3 tokens; the mean over M trees of the 27-outcome law is compared with the
  target's exact law by Pearson's statistic ``M sum (est - p)^2 / p``. Integrating the uniforms
  only removes variance (law of total variance), so a chi-square(26) p-value is conservative.
- Negative controls: the same trees verified with the i.i.d. rule must fail.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chi2

from refseq.decoding.speculative.exact import (
    enumerate_sampled_trees,
    expected_emitted,
    lossless_error,
    mixture_emission,
    step_emission_distribution,
)
from refseq.decoding.speculative.tree import DraftTree
from refseq.decoding.speculative.verify import verify_tree_stochastic
from refseq.papers.recursive_speculative_decoding.gumbel import (
    sample_without_replacement,
    without_replacement_conditionals,
)
from refseq.papers.recursive_speculative_decoding.rsd_trees import (
    constant_branching_tree,
    stochastic_beam_tree,
)
from tests.papers.recursive_speculative_decoding.helpers import (
    CTX,
    node_paths,
    order2,
    tree_key,
)

EXACT = 1e-12


@pytest.mark.parametrize("branching", [(2, 1), (3, 2), (1, 1, 1)])
@pytest.mark.parametrize("seed", [0, 7])
def test_rsd_c_is_lossless_exactly(branching, seed):
    pf, qf, _, _ = order2(seed)
    trees = enumerate_sampled_trees(branching, qf, CTX, "wor")
    emission = mixture_emission(trees, pf, qf, CTX, "wor")
    assert lossless_error(emission, pf, CTX, V=3) < EXACT


def test_rsd_c_trees_checked_with_iid_rules_are_biased():
    pf, qf, _, _ = order2(4)
    trees = enumerate_sampled_trees((3, 2), qf, CTX, "wor")
    assert lossless_error(mixture_emission(trees, pf, qf, CTX, "iid"), pf, CTX, V=3) > 1e-3


@pytest.mark.parametrize("branching, n", [((2, 1), 1500), ((3, 2), 200)])
def test_the_builder_draws_the_enumerated_trees_with_their_probabilities(branching, n):
    pf, qf, _, qlm = order2(3)
    enum = {tree_key(t): (pr, pre) for t, pre, pr in enumerate_sampled_trees(branching, qf, CTX,
                                                                              "wor")}
    rng = np.random.default_rng(0)
    counts = Counter()
    for _ in range(n):
        t = constant_branching_tree(qlm, [CTX[0]], CTX[1], branching, rng=rng)
        key = tree_key(t.tree)
        assert key in enum  # same trees, same numbering (level order, siblings in draw order)
        counts[key] += 1
        for i, pre in enumerate(enum[key][1]):
            if t.tree.child_ptr[i + 1] > t.tree.child_ptr[i]:
                np.testing.assert_allclose(t.draft_probs[i], qf(CTX + pre), atol=1e-12)
    if branching == (2, 1):  # law: chi-square over the enumerated trees
        keys = [k for k in enum if enum[k][0] > 0]
        obs = np.array([counts[k] for k in keys])
        exp = n * np.array([enum[k][0] for k in keys])
        assert obs.sum() == n
        stat = float(np.sum((obs - exp) ** 2 / exp))
        assert chi2.sf(stat, len(keys) - 1) > 1e-4


SEQS = list(itertools.product(range(3), repeat=3))


def _continued(emission, pf):
    """Law of the first 3 tokens when the step's tuple is followed by target sampling."""
    out = np.zeros(len(SEQS))
    for e, m in emission.items():
        for s_i, s in enumerate(SEQS):
            if len(e) >= 3:
                out[s_i] += m * (e[:3] == s)
            elif s[:len(e)] == e:
                out[s_i] += m * np.prod([pf(CTX + s[:t])[s[t]] for t in range(len(e), 3)])
    return out


def _sbs_statistic(seed, M, W=3, L=3):
    pf, _, _, qlm = order2(seed)
    rng = np.random.default_rng(0)
    memo, acc = {}, {"wor": np.zeros(len(SEQS)), "iid": np.zeros(len(SEQS))}
    for _ in range(M):
        t = stochastic_beam_tree(qlm, [CTX[0]], CTX[1], W, L, rng=rng)
        key = tree_key(t.tree)
        if key not in memo:
            P = np.stack([pf(CTX + pre) for pre in node_paths(t.tree)])
            memo[key] = {m: _continued(step_emission_distribution(t.tree, P, t.draft_probs, m),
                                       pf) for m in acc}
        for m in acc:
            acc[m] += memo[key][m]
    exact = np.array([np.prod([pf(CTX + s[:t])[s[t]] for t in range(3)]) for s in SEQS])
    live = exact > 0
    out = {}
    for m, total in acc.items():
        est = total / M
        assert np.all(est[~live] < 1e-15)  # never a sequence the target cannot produce
        out[m] = float(M * np.sum((est[live] - exact[live]) ** 2 / exact[live]))
    return out, int(live.sum()) - 1


def test_rsd_s_is_lossless_monte_carlo_and_iid_rules_are_not():
    stat, dof = _sbs_statistic(seed=4, M=1200)
    assert chi2.sf(stat["wor"], dof) > 1e-4
    assert chi2.sf(stat["iid"], dof) < 1e-4  # negative control on the same trees


@pytest.mark.slow
def test_rsd_s_is_lossless_plain_monte_carlo_200k_steps():
    """The literal check: 200 000 sampled steps (tree, uniforms) continued to 3 tokens."""
    pf, _, _, qlm = order2(4)
    rng = np.random.default_rng(1)
    counts = {"wor": Counter(), "iid": Counter()}
    n = 200_000
    for _ in range(n):
        t = stochastic_beam_tree(qlm, [CTX[0]], CTX[1], 3, 3, rng=rng)
        P = np.stack([pf(CTX + pre) for pre in node_paths(t.tree)])
        u, uf = rng.random(t.tree.num_nodes), rng.random()
        for mode, c in counts.items():
            r = verify_tree_stochastic(t.tree, P, t.draft_probs, mode, u, uf)
            s = tuple(int(x) for x in r.accepted_tokens) + (int(r.next_token),)
            while len(s) < 3:
                s += (int(rng.choice(3, p=pf(CTX + s))),)
            c[s[:3]] += 1
    exact = np.array([np.prod([pf(CTX + s[:t])[s[t]] for t in range(3)]) for s in SEQS])
    live = exact > 0
    for mode, c in counts.items():
        obs = np.array([c[s] for s in SEQS])
        assert obs[~live].sum() == 0
        stat = float(np.sum((obs[live] - n * exact[live]) ** 2 / (n * exact[live])))
        p = chi2.sf(stat, int(live.sum()) - 1)
        assert (p > 1e-4) if mode == "wor" else (p < 1e-4)


def test_a_rejected_token_is_never_emitted_at_its_node():
    rng = np.random.default_rng(0)
    all_rejected = 0
    for _ in range(1500):
        V = int(rng.integers(2, 7))
        p, q = rng.dirichlet(np.ones(V), 2)
        p[rng.random(V) < 0.3] = 0.0
        p = p / p.sum() if p.sum() else np.eye(V)[0]
        k = int(rng.integers(1, V + 1))
        ys = sample_without_replacement(q, k, rng.random(k))
        ys = ys[ys >= 0]
        tree = DraftTree(np.r_[-1, np.zeros(ys.size, np.int64)], np.r_[0, ys])
        P = np.repeat(p[None], ys.size + 1, 0)
        Q = np.repeat(q[None], ys.size + 1, 0)
        r = verify_tree_stochastic(tree, P, Q, "wor", rng.random(ys.size + 1), rng.random())
        if r.num_accepted == 0:
            all_rejected += 1
            assert r.next_token not in ys.tolist()
    assert all_rejected > 150  # the property was exercised


def _star_acceptance(p, q, k, mode):
    pf, qf = (lambda pre: p), (lambda pre: q)
    trees = enumerate_sampled_trees((k,), qf, (0,), mode)
    return expected_emitted(mixture_emission(trees, pf, qf, (0,), mode)) - 1.0


def test_without_replacement_never_accepts_less_than_iid_for_the_same_k():
    rng = np.random.default_rng(5)
    gaps = []
    for _ in range(40):
        V, k = int(rng.integers(2, 5)), int(rng.integers(1, 4))
        p, q = rng.dirichlet(np.ones(V) * 0.7, 2)
        iid = _star_acceptance(p, q, k, "iid")
        # second formulation (SpecInfer): 1 - prod_j (1 - sum min(P_j, q)), P_j the residuals
        P, rej = p.copy(), 1.0
        for _ in range(k):
            rej *= 1.0 - np.minimum(P, q).sum()
            d = np.maximum(P - q, 0)
            P = d / d.sum() if d.sum() > 0 else P
        assert iid == pytest.approx(1.0 - rej, abs=1e-12)
        gaps.append(_star_acceptance(p, q, k, "wor") - iid)
    assert min(gaps) >= -EXACT and max(gaps) > 0.01


def test_wor_acceptance_by_hand():
    # p = (0.5, 0.5, 0), q = (0.8, 0.1, 0.1), k = 2; res(p, q) = (0, 1, 0) whatever was drawn.
    # Draw 0 first (0.8): accept 0.5/0.8; else q_2 = (0, 0.5, 0.5): sibling 1 (0.5) accepted
    # w.p. 1, sibling 2 rejected. Draw 1 first (0.1): accepted (p/q > 1). Draw 2 first (0.1):
    # rejected; q_2 = (8/9, 1/9, 0): sibling 0 rejected (residual 0), sibling 1 accepted.
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.8, 0.1, 0.1])
    want = 0.8 * (0.5 / 0.8 + 0.375 * 0.5) + 0.1 + 0.1 * (1 / 9)
    assert _star_acceptance(p, q, 2, "wor") == pytest.approx(want, abs=1e-14)
    np.testing.assert_allclose(without_replacement_conditionals(q, [2]), [8 / 9, 1 / 9, 0])
