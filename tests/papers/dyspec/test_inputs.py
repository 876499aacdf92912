"""Bad inputs raise TypeError / ValueError naming the argument."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.decoding.speculative.target import BatchedTreeLM
from refseq.decoding.speculative.toy_result import toy_models
from refseq.models.tiny_transformer.params import TinyConfig, init_params
from refseq.papers.dyspec import analysis, samplers
from refseq.papers.dyspec.batch import dyspec_generate_batch
from refseq.papers.dyspec.draft import CallableDraft, TabularDraft, TransformerDraft
from refseq.papers.dyspec.generate import DySpecDrafter
from refseq.papers.dyspec.heap import build_tree_greedy
from refseq.papers.dyspec.threshold import build_tree_threshold

Q = np.array([0.5, 0.3, 0.2])


def _d():
    return CallableDraft(lambda s: Q, 3)


@pytest.mark.parametrize("kw,err,match", [
    (dict(budget=-1), ValueError, "budget"), (dict(budget=1.5), TypeError, "budget"),
    (dict(budget=2, lazy="yes"), TypeError, "lazy"), (dict(budget=2, sampler=3), TypeError,
                                                       "sampler"),
    (dict(budget=2, root=3), ValueError, "root"), (dict(budget=2, context=[0, 5]), ValueError,
                                                   "context"),
    (dict(budget=2, context=[0.5]), TypeError, "context"),
])
def test_greedy_builder_rejects(kw, err, match):
    args = dict(draft=_d(), context=[0], root=1) | kw
    with pytest.raises(err, match=match):
        build_tree_greedy(args.pop("draft"), args.pop("context"), args.pop("root"),
                          args.pop("budget"), **args)


@pytest.mark.parametrize("kw,err,match", [
    (dict(threshold=1.0), ValueError, "threshold"), (dict(threshold=-0.1), ValueError,
                                                     "threshold"),
    (dict(threshold=float("nan")), ValueError, "threshold"),
    (dict(threshold="0.1"), TypeError, "threshold"),
    (dict(threshold=0.1, max_nodes=-1), ValueError, "max_nodes"),
])
def test_threshold_builder_rejects(kw, err, match):
    t = kw.pop("threshold")
    with pytest.raises(err, match=match):
        build_tree_threshold(_d(), [0], 1, t, **kw)


def test_drafts_and_samplers_reject():
    with pytest.raises(TypeError, match="draft"):
        build_tree_greedy(object(), [0], 1, 2)
    with pytest.raises(ValueError, match="temperature"):
        TabularDraft(toy_models(V=3)[1], temperature=0.0)
    with pytest.raises(TypeError, match="lm"):
        TabularDraft(object())
    with pytest.raises(TypeError, match="fn"):
        CallableDraft(3, 3)
    bad = CallableDraft(lambda s: np.array([0.5, 0.6, 0.1]), 3)
    with pytest.raises(ValueError, match="sum"):
        build_tree_greedy(bad, [0], 1, 2)
    nan = CallableDraft(lambda s: np.array([np.nan, 0.5, 0.5]), 3)
    with pytest.raises(ValueError, match="probabilities"):
        build_tree_greedy(nan, [0], 1, 2)
    with pytest.raises(ValueError, match="zero residual"):
        build_tree_greedy(CallableDraft(lambda s: np.array([0.0, 0.5, 0.5]), 3), [0], 1, 2,
                          sampler=lambda R, key: 0)
    with pytest.raises(ValueError, match="sampler"):
        build_tree_greedy(_d(), [0], 1, 2, sampler=lambda R, key: 7)
    with pytest.raises(ValueError, match="zero residual"):
        samplers.EnumeratingSampler([2])(np.array([0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="residual"):
        samplers.InverseCdfSampler(0)(np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match="residual"):
        samplers.KeyedSampler(0)(np.array([[0.5, 0.5]]), ((), 0))
    with pytest.raises(TypeError, match="build"):
        samplers.enumerate_outcomes(3)
    with pytest.raises(ValueError, match="reset"):
        _d().probs([()])
    d = _d()
    d.reset([0], 1)
    with pytest.raises(TypeError, match="prefixes"):
        d.probs([[0]])
    with pytest.raises(ValueError, match="prefixes"):
        d.probs([(5,)])


def test_transformer_draft_rejects():
    cfg = TinyConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, max_positions=32)
    d = TransformerDraft(init_params(cfg, seed=0))
    with pytest.raises(ValueError, match="reset"):
        d.probs([()])
    d.reset(np.array([1, 2]), 3)
    with pytest.raises(ValueError, match="parent"):
        d.probs([(1, 2)])
    with pytest.raises(ValueError, match="root"):
        d.reset(np.array([1]), 8)


def test_generation_and_analysis_reject():
    with pytest.raises(ValueError, match="max_nodes"):
        DySpecDrafter(_d(), max_nodes=3)
    with pytest.raises(ValueError, match="threshold"):
        DySpecDrafter(_d(), threshold=2.0)
    with pytest.raises(TypeError, match="lazy"):
        DySpecDrafter(_d(), lazy=1)
    cfg = TinyConfig(vocab_size=8, d_model=8, n_layers=1, n_heads=2, max_positions=32)
    tgt = BatchedTreeLM(init_params(cfg, seed=0))
    with pytest.raises(TypeError, match="drafts"):
        dyspec_generate_batch(tgt, [_d()], [np.array([1]), np.array([2])], 3)
    d8 = CallableDraft(lambda s: np.full(8, 1 / 8), 8)
    with pytest.raises(TypeError, match="rngs"):
        dyspec_generate_batch(tgt, [d8], [np.array([1])], 3, rngs=[0, 1])
    with pytest.raises(ValueError, match=r"drafts\[0\]\.vocab_size = 3 differs"):
        dyspec_generate_batch(tgt, [_d()], [np.array([1])], 3)
    with pytest.raises(ValueError, match="distinct"):
        dyspec_generate_batch(tgt, [d8, d8], [np.array([1]), np.array([2])], 3)
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        dyspec_generate_batch(tgt, [d8, _d8()], [np.array([1]), np.array([8])], 0)
    with pytest.raises(ValueError, match="eos_id"):
        dyspec_generate_batch(tgt, [d8], [np.array([1])], 3, eos_id=8)
    with pytest.raises(TypeError, match="target"):
        dyspec_generate_batch(None, [d8], [np.array([1])], 3)
    with pytest.raises(ValueError, match="popped_values"):
        analysis.decision_objective(np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="node_value"):
        analysis.estimated_accepted(np.zeros(0))
    with pytest.raises(ValueError, match="draft_prob"):
        analysis.acceptance_by_draft_prob(np.array([1.5]), np.array([True]))
    with pytest.raises(TypeError, match="accepted"):
        analysis.acceptance_by_draft_prob(np.array([0.5]), np.array([1]))
    tree = build_tree_greedy(_d(), [0], 1, 3, sampler=samplers.KeyedSampler()).tree
    with pytest.raises(ValueError, match="path"):
        analysis.tested_children(tree, np.array([1, 2]))


def _d8():
    return CallableDraft(lambda s: np.full(8, 1 / 8), 8)


class _Duck:
    """A DraftLM without checks of its own: the builders must check what it gets and returns."""

    def __init__(self, row=Q, vocab_size=3):
        self.row = np.asarray(row)
        if vocab_size is not None:
            self.vocab_size = vocab_size
        self.calls = 0

    def reset(self, context, root):
        pass

    def probs(self, prefixes):
        return np.tile(self.row, (len(prefixes), 1))

    def commit(self, accepted):
        pass


@pytest.mark.parametrize("build", [
    lambda d, **kw: build_tree_greedy(d, kw.pop("context", [0]), 1, 3, **kw),
    lambda d, **kw: build_tree_threshold(d, kw.pop("context", [0]), 1, 0.1, **kw)])
def test_builders_check_a_duck_typed_draft(build):
    assert build(_Duck()).tree.num_nodes > 1
    assert build(_Duck(), context=[]).tree.num_nodes > 1
    for row in ([0.5, 0.6, 0.1], [1.2, -0.1, -0.1], [np.nan, 0.5, 0.5], [0.5, 0.5]):
        with pytest.raises(ValueError, match="draft.probs"):
            build(_Duck(row))
    with pytest.raises(TypeError, match="vocab_size"):
        build(_Duck(vocab_size=None))
    with pytest.raises(TypeError, match=r"draft\.vocab_size"):
        build(_Duck(vocab_size="3"))
    with pytest.raises(ValueError, match="context"):
        build(_Duck(), context=[0, 5])
    with pytest.raises(ValueError, match="context"):
        build(_Duck(), context=np.zeros((2, 1), np.int64))


def test_samplers_check_their_arguments():
    assert samplers.inverse_cdf(Q, 0.0) == 0 and samplers.inverse_cdf(Q, 0.9) == 2
    assert samplers.inverse_cdf(np.array([0.0, 2.0, 0.0]), 0.99) == 1  # unnormalised, zeros
    for u in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="u"):
            samplers.inverse_cdf(Q, u)
    with pytest.raises(TypeError, match="u"):
        samplers.inverse_cdf(Q, None)
    for bad, err in ((np.zeros(3), ValueError), (np.zeros(0), ValueError),
                     (np.array([1.2, -0.1, -0.1]), ValueError), (Q[:, None], ValueError),
                     (np.array([np.nan, 0.5, 0.5]), ValueError), (np.array([1, 2]), TypeError),
                     (Q.astype(np.float16), TypeError), (["a"], TypeError)):
        with pytest.raises(err, match="residual"):
            samplers.inverse_cdf(bad, 0.5)
    for choices in (3, None, "ab"):
        with pytest.raises(TypeError, match="choices"):
            samplers.EnumeratingSampler(choices)
    with pytest.raises(ValueError, match=r"choices\[1\]"):
        samplers.EnumeratingSampler([0, -1])
    assert samplers.EnumeratingSampler(np.array([1, 0])).choices == [1, 0]


def test_generate_checks_the_target_and_the_draft_vocabulary():
    from refseq.decoding.speculative.target import TabularTreeLM
    from refseq.papers.dyspec.generate import dyspec_generate

    lm = toy_models(V=3)[1]
    with pytest.raises(ValueError, match=r"draft\.vocab_size = 4 differs"):
        dyspec_generate(TabularTreeLM(lm), CallableDraft(lambda s: np.full(4, 0.25), 4),
                        np.array([1]), 2)
    with pytest.raises(TypeError, match="target"):
        dyspec_generate(lm, TabularDraft(lm), np.array([1]), 2)
    for T in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="target_temperature"):
            dyspec_generate(TabularTreeLM(lm), TabularDraft(lm), np.array([1]), 2,
                            target_temperature=T)
    with pytest.raises(TypeError, match=r"lm must have a vocab_size"):
        TabularDraft(type("StepLMWithoutV", (), {"start": print, "step": print,
                                                 "reorder": print})())
