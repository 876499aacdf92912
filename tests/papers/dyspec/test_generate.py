"""DySpec generation through the core engine: greedy equals plain greedy for any draft and
budget/threshold, degenerate limits, the draft model's cache against a fresh forward, batched
generation against per-row generation, and Hypothesis 1 on the toy model."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.decoding.interfaces import log_softmax
from refseq.decoding.speculative.engine import Drafter, plain_greedy
from refseq.decoding.speculative.target import (
    BatchedTreeLM,
    TabularTreeLM,
    TinyTransformerTreeLM,
)
from refseq.decoding.speculative.toy_result import toy_models
from refseq.decoding.speculative.verify import verify_tree_stochastic
from refseq.models.tiny_transformer import forward
from refseq.models.tiny_transformer.params import TinyConfig, init_params
from refseq.papers.dyspec import analysis, batch, generate
from refseq.papers.dyspec.draft import CallableDraft, TabularDraft, TransformerDraft
from refseq.papers.dyspec.heap import build_tree_greedy
from refseq.papers.dyspec.samplers import InverseCdfSampler

V = 8


@pytest.fixture(scope="module")
def toy():
    target_lm, draft_lm = toy_models(V=V, scale=3.0, noise=1.0)
    return TabularTreeLM(target_lm), target_lm, draft_lm


def _target_row(target_lm, seq):
    logits, _ = target_lm.start([np.array(seq, np.int64)])
    return np.exp(log_softmax(np.asarray(logits[0], np.float64)))


def _drafts(target_lm, draft_lm, prompt, n):
    greedy = plain_greedy(TabularTreeLM(target_lm), prompt, n)

    def perfect(seq):  # one-hot on the target's arg-max
        return np.eye(V)[int(np.argmax(_target_row(target_lm, seq)))]

    def adversarial(seq):  # no mass on the target's arg-max
        row = np.ones(V)
        row[int(np.argmax(_target_row(target_lm, seq)))] = 0.0
        return row / row.sum()

    return {"random": TabularDraft(draft_lm, 0.6), "perfect": CallableDraft(perfect, V),
            "adversarial": CallableDraft(adversarial, V)}, greedy


@pytest.mark.parametrize("kw", [dict(budget=0), dict(budget=1), dict(budget=6),
                                dict(budget=17, lazy=False), dict(threshold=0.05, max_nodes=12),
                                dict(threshold=0.2, max_nodes=30)])
def test_greedy_target_equals_plain_greedy(toy, kw):
    target, target_lm, draft_lm = toy
    prompt = np.array([3, 5])
    drafts, greedy = _drafts(target_lm, draft_lm, prompt, 40)
    for name, d in drafts.items():
        out, st = generate.dyspec_generate(target, d, prompt, 40, rng=1, **kw)
        np.testing.assert_array_equal(out, greedy, err_msg=name)
        if kw.get("budget") == 0 or name == "adversarial":
            assert st.tokens_per_call == 1.0  # budget 0 / always wrong: one token per step
        if name == "perfect" and kw.get("budget", 0) > 0:
            assert st.tokens_per_call > 1.5


def test_drafter_protocol_and_stats(toy):
    target, _, draft_lm = toy
    drafter = generate.DySpecDrafter(TabularDraft(draft_lm), budget=5, rng=0)
    assert isinstance(drafter, Drafter)
    tree, q, mode = drafter.draft(np.array([1]), 2)
    assert mode == "wor" and tree.num_nodes == 6  # Algorithm 3 = the core's "wor" rule
    np.testing.assert_allclose(q[0].sum(), 1.0)
    out, st = generate.dyspec_generate(target, TabularDraft(draft_lm), np.array([1, 2]), 30,
                                       budget=5, target_temperature=0.6, rng=3, eos_id=None)
    assert out.size == 30
    assert len(st.draft_calls) == st.spec.steps == len(st.decision_objective)
    assert all(s == 6 for s in st.spec.tree_size)
    assert all(1 <= c <= 6 for c in st.draft_calls)  # lazy: root + popped first-child slots
    assert len(st.tested_prob) == len(st.tested_accepted) >= st.spec.steps
    assert sum(st.tested_accepted) == sum(st.num_accepted)


def test_target_equal_to_draft_accepts_every_tested_child():
    """Property 8: with target == draft under the wor rule every tested child is accepted (the
    first child of each node on the path: P = Q gives ratio 1)."""
    fn = lambda seq: np.array([0.5, 0.3, 0.2, 0.0]) if seq[-1] % 2 else np.full(4, 0.25)  # noqa
    rng = np.random.default_rng(0)
    for k in range(30):
        res = build_tree_greedy(CallableDraft(fn, 4), [k % 4], (k + 1) % 4, 8,
                                sampler=InverseCdfSampler(k), lazy=False)
        p = np.stack([fn((0, (k + 1) % 4) + pre) for pre in res.prefixes])
        out = verify_tree_stochastic(res.tree, p, res.draft_probs, "wor",
                                     rng.random(res.tree.num_nodes), rng.random())
        nodes, acc = analysis.tested_children(res.tree, out.path)
        assert acc.all() and nodes.size == out.num_accepted
        assert res.tree.children(int(out.path[-1])).size == 0  # walked down to a leaf


def _tiny(seed, V=16):
    cfg = TinyConfig(vocab_size=V, d_model=16, n_layers=2, n_heads=2, max_positions=160)
    return init_params(cfg, seed=seed)


@pytest.mark.parametrize("lazy", [True, False])
def test_transformer_draft_cache_matches_a_fresh_forward(lazy):
    """After several compacted steps (draft = target at temperature 1, so deep paths are
    accepted; lazy leaves accepted unscored; bonus tokens), the draft's tree forward gives the
    rows of a plain forward on context + root + prefix."""
    tp = _tiny(0)
    d = TransformerDraft(tp, 1.0)
    out, st = generate.dyspec_generate(TinyTransformerTreeLM(tp), d, np.array([1, 2, 3]), 40,
                                       budget=6, target_temperature=1.0, rng=5, lazy=lazy)
    assert st.spec.steps >= 2 and st.tokens_per_call > 2.0
    ctx = [1, 2] + [3] + list(out[:-1])
    d.reset(np.array(ctx, np.int64), int(out[-1]))
    assert d.n_past == len(ctx)
    res = build_tree_greedy(d, np.array(ctx), int(out[-1]), 5, sampler=InverseCdfSampler(2),
                            lazy=False)
    for i, pre in enumerate(res.prefixes):
        logits, _, _ = forward(tp, tokens=np.array(ctx + [int(out[-1])] + list(pre)))
        z = log_softmax(np.asarray(logits[-1], np.float64))
        np.testing.assert_allclose(res.draft_probs[i], np.exp(z), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("kw", [dict(budget=5), dict(threshold=0.04, max_nodes=9)])
def test_batch_equals_rows_alone(temperature, kw):
    tp, dp = _tiny(0), _tiny(1)
    prompts = [np.array([1, 2, 3]), np.array([4, 5]), np.array([7, 8, 9, 10])]
    drafts = [TransformerDraft(dp) for _ in prompts]
    outs, sts = batch.dyspec_generate_batch(BatchedTreeLM(tp), drafts, prompts,
                                            10, rngs=[0, 1, 2], target_temperature=temperature,
                                            eos_id=3, **kw)
    for b, p in enumerate(prompts):
        one, st = generate.dyspec_generate(TinyTransformerTreeLM(tp), TransformerDraft(dp), p,
                                           10, rng=b, target_temperature=temperature,
                                           eos_id=3, **kw)
        np.testing.assert_array_equal(outs[b], one)
        assert sts[b].spec.num_accepted == st.spec.num_accepted
        assert sts[b].draft_calls == st.draft_calls


def test_hypothesis_1_on_the_toy_model():
    """Property 10: at target temperature 0 and draft temperature 0.6, a tested child's draft
    probability and its acceptance are positively rank-correlated, and the top bin (0.8-1.0)
    accepts more often than the bottom bin (0-0.2). Monotonicity is not asserted."""
    stats = pytest.importorskip("scipy.stats")
    target_lm, draft_lm = toy_models(V=32, scale=3.0, noise=1.0)
    target, rng = TabularTreeLM(target_lm), np.random.default_rng(0)
    probs, acc = [], []
    for _ in range(30):
        _, st = generate.dyspec_generate(target, TabularDraft(draft_lm, 0.6),
                                         rng.integers(0, 32, 2), 10**6, budget=20, rng=rng,
                                         max_steps=3)
        probs += st.tested_prob
        acc += st.tested_accepted
    rho = stats.spearmanr(probs, acc).statistic
    assert rho > 0.3
    table = analysis.acceptance_by_draft_prob(np.array(probs), np.array(acc), bins=5)
    assert table["rate"][-1] > table["rate"][0]
