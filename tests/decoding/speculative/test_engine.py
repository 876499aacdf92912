"""The engine: greedy losslessness for every drafter (property 3), end-to-end sampling against the
exact target law (property 14), shapes (property 15) and the small-scale result.

Ground truths are independent of the tree machinery: :func:`plain_greedy` runs one plain causal
``prefill`` per token, and the exact law of a ``TabularLM`` is a product of table entries.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from refseq.decoding.interfaces import log_softmax
from refseq.decoding.speculative.drafters import (
    AlwaysWrongDrafter,
    ChainDrafter,
    OracleDrafter,
    RandomDrafter,
    SampledTreeDrafter,
)
from refseq.decoding.speculative.engine import plain_greedy, plain_sample, speculative_generate
from refseq.decoding.speculative.target import TabularTreeLM, TinyTransformerTreeLM
from refseq.decoding.speculative.toy_result import run_small_result
from refseq.models.tiny_transformer import TinyConfig, TransformerLM, init_params
from refseq.models.toy_lm import TabularLM, random_markov_lm

V = 6
CFG = TinyConfig(vocab_size=V, d_model=12, n_layers=2, n_heads=2, max_positions=128)
TARGET_PARAMS = init_params(CFG, 0)
DRAFT_LM = TransformerLM(init_params(CFG, 1))
TARGET_AS_DRAFT = TransformerLM(TARGET_PARAMS)
KINDS = ("chain", "chain_self", "random", "oracle", "oracle_decoys", "wrong", "tree_iid",
         "tree_wor", "tree_virtual")


def _drafter(kind, ref, k, seed):
    return {
        "chain": lambda: ChainDrafter(DRAFT_LM, k),
        "chain_self": lambda: ChainDrafter(TARGET_AS_DRAFT, k),
        "random": lambda: RandomDrafter(V, 2 * k + 1, rng=seed),
        "oracle": lambda: OracleDrafter(ref, k),
        "oracle_decoys": lambda: OracleDrafter(ref, k, vocab_size=V, decoys=2),
        "wrong": lambda: AlwaysWrongDrafter(ref, V, width=min(k + 1, V - 1), depth=2, rng=seed),
        "tree_iid": lambda: SampledTreeDrafter(DRAFT_LM, (3, 1), rng=seed),
        "tree_wor": lambda: SampledTreeDrafter(DRAFT_LM, (2, 2), mode="wor", rng=seed),
        "tree_virtual": lambda: SampledTreeDrafter(DRAFT_LM, (3, 2), virtual_duplicates=True,
                                                   rng=seed),
    }[kind]()


@settings(deadline=None)
@given(kind=st.sampled_from(KINDS), k=st.integers(0, 4), n=st.integers(0, 14),
       eos=st.one_of(st.none(), st.integers(0, V - 1)), seed=st.integers(0, 1000),
       prompt_len=st.integers(1, 5))
def test_greedy_equals_plain_greedy(kind, k, n, eos, seed, prompt_len):
    target = TinyTransformerTreeLM(TARGET_PARAMS)
    prompt = np.random.default_rng(seed).integers(0, V, prompt_len)
    ref = plain_greedy(target, prompt, n, eos_id=eos)
    full = plain_greedy(target, prompt, n + 8)  # what oracle/adversary know (past the cut)
    out, stats = speculative_generate(target, _drafter(kind, full, k, seed), prompt, n,
                                      eos_id=eos)
    np.testing.assert_array_equal(out, ref)
    assert sum(stats.emitted) == len(ref)
    assert all(a <= d for a, d in zip(stats.num_accepted, stats.depth))
    if kind == "wrong":
        assert set(stats.num_accepted) <= {0}


def test_eos_and_max_new_tokens_cut_inside_a_step():
    target = TinyTransformerTreeLM(TARGET_PARAMS)
    prompt = np.array([1, 2, 3])
    ref = plain_greedy(target, prompt, 30)
    eos = int(ref[5])  # appears at position <= 5; the oracle step of 6 tokens crosses it
    out, _ = speculative_generate(target, OracleDrafter(ref, 5), prompt, 30, eos_id=eos)
    cut = list(ref).index(eos) + 1
    np.testing.assert_array_equal(out, ref[:cut])
    out, stats = speculative_generate(target, OracleDrafter(ref, 5), prompt, 8)
    np.testing.assert_array_equal(out, ref[:8])
    assert stats.emitted == [6, 2] and stats.num_accepted == [5, 5]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_oracle_chain_emits_k_plus_one_per_step(k):
    target = TinyTransformerTreeLM(TARGET_PARAMS)
    prompt = np.array([4, 0])
    ref = plain_greedy(target, prompt, 6 * (k + 1) + 3)
    out, stats = speculative_generate(target, OracleDrafter(ref, k), prompt, 6 * (k + 1))
    np.testing.assert_array_equal(out, ref[: 6 * (k + 1)])
    assert stats.emitted == [k + 1] * 6 and stats.num_accepted == [k] * 6
    assert stats.target_calls == list(range(1, 7))
    assert stats.tree_size == [k + 1] * 6 and stats.tokens_per_call == k + 1


def test_always_wrong_emits_one_token_per_step():
    target = TinyTransformerTreeLM(TARGET_PARAMS)
    prompt = np.array([2])
    ref = plain_greedy(target, prompt, 12)
    out, stats = speculative_generate(target, AlwaysWrongDrafter(ref, V, width=V - 1, depth=3),
                                      prompt, 10)
    np.testing.assert_array_equal(out, ref[:10])
    assert stats.emitted == [1] * 10 and stats.tree_size == [1 + 3 * (V - 1)] * 10


# --- property 14: end-to-end sampling against the exact law --------------------------------------
VS = 4


def _tabular_pair():
    target = random_markov_lm(VS, 0.8, seed=3)  # bigram (VS, VS)
    noise = np.random.default_rng(4).standard_normal((VS, VS))
    draft = TabularLM(2, log_softmax(target.table + noise))
    return target, draft


def _warped(table, temperature=1.0, top_k=0):
    z = table / temperature
    if top_k:
        kth = np.sort(z, axis=1)[:, -top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    return np.exp(log_softmax(z))  # (VS, VS) rows = previous token


def _chi2_pvalue(samples, P, prompt_last):
    grams = list(itertools.product(range(VS), repeat=3))
    exact = np.array([P[prompt_last, a] * P[a, b] * P[b, c] for a, b, c in grams])
    counts = {g: 0 for g in grams}
    for s in samples:
        counts[tuple(s)] += 1
    obs = np.array([counts[g] for g in grams], float)
    keep = exact > 0
    assert obs[~keep].sum() == 0  # never a zero-probability 3-gram
    n = obs.sum()
    return chisquare(obs[keep], n * exact[keep] / exact[keep].sum()).pvalue


CONFIGS_14 = {
    "chain_iid": lambda d, r: ChainDrafter(d, 2, temperature=1.0, rng=r),
    "tree_iid": lambda d, r: SampledTreeDrafter(d, (3, 1), rng=r),
    "tree_iid_virtual": lambda d, r: SampledTreeDrafter(d, (3, 2), virtual_duplicates=True, rng=r),
    "tree_wor": lambda d, r: SampledTreeDrafter(d, (2, 2), mode="wor", rng=r),
    "rsd_like_wor": lambda d, r: SampledTreeDrafter(d, (3, 2, 1), mode="wor", rng=r),
}


def _run_mc(make, runs, seed, mode="auto", temperature=1.0, top_k=0):
    target_lm, draft = _tabular_pair()
    target = TabularTreeLM(target_lm)
    rng = np.random.default_rng(seed)
    drafter = make(draft, rng)
    prompt = np.array([1])
    samples = []
    for _ in range(runs):
        out, _ = speculative_generate(target, drafter, prompt, 3, temperature=temperature,
                                      top_k=top_k, mode=mode, rng=rng)
        samples.append(out)
    P = _warped(target_lm.table, temperature, top_k)
    return _chi2_pvalue(samples, P, 1)


@pytest.mark.parametrize("name", ["chain_iid", "tree_iid_virtual", "tree_wor"])
def test_sampling_matches_the_target_law(name):
    assert _run_mc(CONFIGS_14[name], 1200, seed=11) > 1e-4


def test_point_verification_of_sampled_trees_and_warping_match_the_target_law():
    assert _run_mc(CONFIGS_14["tree_wor"], 1200, seed=12, mode="point") > 1e-4
    assert _run_mc(CONFIGS_14["tree_iid"], 1200, seed=13, temperature=0.7, top_k=3) > 1e-4


@pytest.mark.slow
def test_wrong_mode_is_detected():
    # negative control: wor trees verified with the iid rule are biased (spec property 7)
    p = _run_mc(lambda d, r: SampledTreeDrafter(d, (3, 3), mode="wor", rng=r), 4000, seed=14,
                mode="iid")
    assert p < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS_14))
def test_sampling_matches_the_target_law_40000_runs(name):
    assert _run_mc(CONFIGS_14[name], 40000, seed=21) > 1e-4


def test_plain_sample_matches_the_target_law():
    target_lm, _ = _tabular_pair()
    target = TabularTreeLM(target_lm)
    rng = np.random.default_rng(5)
    samples = [plain_sample(target, np.array([1]), 3, rng) for _ in range(1200)]
    assert _chi2_pvalue(samples, _warped(target_lm.table), 1) > 1e-4


# --- property 15 and bad calls ---------------------------------------------------------------
def test_shapes_dtypes_and_empty_generation():
    target = TinyTransformerTreeLM(init_params(TinyConfig(vocab_size=V, d_model=8, n_layers=1,
                                                          n_heads=2, max_positions=64,
                                                          dtype="float32"), 0))
    prompt = np.array([1, 2], np.int32)
    out, stats = speculative_generate(target, RandomDrafter(V, 6, rng=0), prompt, 7,
                                      temperature=1.0, rng=0, mode="point")
    assert out.dtype == np.int64 and out.shape == (7,) and out.min() >= 0 and out.max() < V
    assert all(a <= d for a, d in zip(stats.num_accepted, stats.depth))
    out, stats = speculative_generate(target, RandomDrafter(V, 6), prompt, 0)
    assert out.shape == (0,) and stats.steps == 0


def test_bad_arguments():
    target = TinyTransformerTreeLM(TARGET_PARAMS)
    d = RandomDrafter(V, 3, rng=0)
    for kw, word in (({"temperature": -1.0}, "temperature"), ({"mode": "greedy"}, "mode"),
                     ({"eos_id": V}, "eos_id"), ({"top_p": 0.0}, "top_p")):
        with pytest.raises(ValueError, match=word):
            speculative_generate(target, d, np.array([1]), 3, **kw)
    with pytest.raises(ValueError, match="prompt"):
        speculative_generate(target, d, np.zeros(0, np.int64), 3)
    with pytest.raises(TypeError, match="drafter"):
        speculative_generate(target, object(), np.array([1]), 3)


# --- the small-scale result ----------------------------------------------------------------
def test_small_result_reduced():
    table = run_small_result(steps=300, greedy_checks=2, verbose=False)
    assert all(mean > 2.0 for mean, _ in table.values())


@pytest.mark.slow
def test_small_result_full():
    table = run_small_result(steps=3000, verbose=False)
    assert all(mean > 2.0 for mean, _ in table.values())
    assert table["tree (2,2,1) wor"][0] > table["tree (2,2,1) iid"][0] + 0.05


def test_a_custom_verification_rule_replaces_step_3():
    """``verify=`` gets the tree, the target logits, the drafter's law and the engine's rng, and
    its result is emitted and committed: a rule that rejects every draft and takes the arg-max
    at the root gives plain greedy, one token per step, 0 accepted each time."""
    from refseq.decoding.speculative.greedy import VerifyResult

    target = TinyTransformerTreeLM(TARGET_PARAMS)
    prompt = np.array([1, 4, 2])
    seen = []

    def reject_all(tree, logits, draft_probs, rng):
        seen.append((tree.num_nodes, logits.shape, draft_probs is not None, rng))
        return VerifyResult(np.array([0], np.int32), np.zeros(0, np.int32),
                            int(np.argmax(logits[0])), 0)

    gen = np.random.default_rng(3)
    out, stats = speculative_generate(target, SampledTreeDrafter(DRAFT_LM, (2, 2), rng=1),
                                      prompt, 7, temperature=0.5, rng=gen, verify=reject_all)
    np.testing.assert_array_equal(out, plain_greedy(target, prompt, 7))
    assert stats.num_accepted == [0] * 7 and stats.emitted == [1] * 7
    assert all(n == 7 and shape == (7, V) and has_q and r is gen for n, shape, has_q, r in seen)
    with pytest.raises(TypeError, match="verify must be callable"):
        speculative_generate(target, ChainDrafter(DRAFT_LM, 2), prompt, 3, verify=3)
