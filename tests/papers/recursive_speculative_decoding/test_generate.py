"""Generation (generate.py) and the cost model (budget.py): greedy equals plain greedy for every
method, draft == target accepts everything, reproducibility, stats, fixed-budget enumeration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.decoding.speculative.engine import Drafter, plain_greedy
from refseq.decoding.speculative.target import TabularTreeLM, TinyTransformerTreeLM
from refseq.decoding.speculative.toy_result import toy_models
from refseq.decoding.speculative.tree import DraftTree
from refseq.models.tiny_transformer import TinyConfig, TransformerLM, init_params
from refseq.papers.recursive_speculative_decoding import budget, generate
from refseq.papers.recursive_speculative_decoding.budget import (
    block_efficiency,
    configs_for_budget,
    mbsu,
    target_budget,
)
from refseq.papers.recursive_speculative_decoding.generate import (
    METHODS,
    RSDDrafter,
    RSDStats,
    rsd_generate,
)

TARGET_LM, DRAFT = toy_models()
TARGET = TabularTreeLM(TARGET_LM)
SHAPES = {"rsd-c": {"branching": (2, 2, 1)}, "rsd-s": {"beam_width": 4, "depth": 3},
          "iid": {"branching": (3, 1)}, "k-seq": {"K": 3, "depth": 2}, "chain": {"K": 4}}


@pytest.mark.parametrize("method", METHODS)
def test_greedy_target_equals_plain_greedy(method):
    for seed, prompt in enumerate(([3, 7], [1, 2, 30], [5])):
        out, st = rsd_generate(TARGET, DRAFT, np.array(prompt), 25, method=method,
                               target_temperature=0.0, rng=seed, **SHAPES[method])
        assert out.tolist() == plain_greedy(TARGET, np.array(prompt), 25).tolist()
        assert st.steps < 25  # some drafts were accepted


def test_greedy_with_tiny_transformers_as_target_and_draft():
    cfg = TinyConfig(vocab_size=6, d_model=12, n_layers=2, n_heads=2, max_positions=64)
    target = TinyTransformerTreeLM(init_params(cfg, 0))
    draft = TransformerLM(init_params(cfg, 1))
    for method in ("rsd-c", "rsd-s"):
        out, _ = rsd_generate(target, draft, np.array([3, 5]), 12, method=method,
                              target_temperature=0.0, rng=0, **SHAPES[method])
        assert out.tolist() == plain_greedy(target, np.array([3, 5]), 12).tolist()


@pytest.mark.parametrize("method, kw, emitted", [
    ("rsd-c", {"branching": (2, 2, 1)}, 4), ("rsd-s", {"beam_width": 3, "depth": 3}, 4),
    ("chain", {"K": 5}, 6), ("k-seq", {"K": 2, "depth": 2}, 3)])
def test_draft_equal_to_target_accepts_the_first_child_everywhere(method, kw, emitted):
    _, st = rsd_generate(TARGET, TARGET_LM, np.array([3, 7]), 10_000, method=method, rng=1,
                         max_steps=30, **kw)
    assert st.steps == 30 and set(st.emitted) == {emitted}  # depth + 1 (chain: K + 1)


def test_same_seed_same_output_and_stats():
    a = rsd_generate(TARGET, DRAFT, np.array([3, 7]), 60, method="rsd-s", rng=11)
    b = rsd_generate(TARGET, DRAFT, np.array([3, 7]), 60, method="rsd-s", rng=11)
    c = rsd_generate(TARGET, DRAFT, np.array([3, 7]), 60, method="rsd-s", rng=12)
    assert a[0].tolist() == b[0].tolist() and a[1].num_accepted == b[1].num_accepted
    assert a[0].tolist() != c[0].tolist()


def test_stats_and_eos():
    out, st = rsd_generate(TARGET, DRAFT, np.array([3, 7]), 40, method="rsd-c", rng=0)
    assert isinstance(st, RSDStats) and out.size == 40 == sum(st.emitted)
    assert set(st.draft_calls) == {3} and st.draft_calls_per_step == 3.0
    assert set(st.tree_size) == {11}  # (2, 2, 1): 2 + 4 + 4 drafts + the root
    assert st.block_efficiency == pytest.approx(40 / st.steps)
    eos = int(out[5])
    out2, st2 = rsd_generate(TARGET, DRAFT, np.array([3, 7]), 40, method="rsd-c", rng=0,
                             eos_id=eos)
    assert out2.tolist() == out[: out.tolist().index(eos) + 1].tolist()


def test_drafter_protocol_and_modes():
    for method, mode in (("rsd-c", "wor"), ("rsd-s", "wor"), ("iid", "iid"), ("chain", "iid")):
        d = RSDDrafter(DRAFT, method, rng=0)
        assert isinstance(d, Drafter)
        d.start(np.array([3, 7]))
        tree, q, m = d.draft(np.array([3]), 7)
        assert isinstance(tree, DraftTree) and m == mode and q.shape == (tree.num_nodes, 32)
        assert d.draft_calls == [d.last.draft_calls] and d.observe(tree, None, None, None) is None


def test_cost_model_by_hand():
    assert block_efficiency([3, 2, 1, 4], 4) == 2.5
    assert mbsu(3.03, 12, 0.05) == pytest.approx(3.03 / 1.6)
    assert mbsu(2.81, 3, 0.05) == pytest.approx(2.81 / 1.15)
    assert target_budget(DraftTree.chain(1, np.array([2, 3]))) == 3


def test_configs_for_budget():
    cfgs = configs_for_budget(13)
    assert all(c["budget"] <= 13 for c in cfgs)
    rsdc = {c["branching"] for c in cfgs if c["method"] == "rsd-c"}
    assert {(2, 2, 1), (4, 1, 1), (12,), (3, 3), (1,) * 12} <= rsdc
    assert (2, 3) not in rsdc  # non-increasing only
    for br in rsdc:
        assert sum(math.prod(br[:d + 1]) for d in range(len(br))) <= 12
    assert rsdc == {c["branching"] for c in cfgs if c["method"] == "iid"}
    sbs = {(c["beam_width"], c["depth"]) for c in cfgs if c["method"] == "rsd-s"}
    assert (4, 3) in sbs and (4, 4) not in sbs and (12, 1) in sbs
    assert sorted(c["K"] for c in cfgs if c["method"] == "chain") == list(range(1, 13))
    assert {c["branching"][0] for c in configs_for_budget(13, max_width=2)
            if c["method"] == "rsd-c"} == {1, 2}


class _NoVocab:
    """A draft with a start method but no vocab_size."""

    def start(self, prompts):
        return np.zeros((len(prompts), 32)), None


@pytest.mark.parametrize("call, exc, match", [
    (lambda: rsd_generate(TARGET, DRAFT, [3, 7], 5, method="beam"), ValueError, "method"),
    (lambda: rsd_generate(TARGET, DRAFT, [3, 7], 5, target_temperature=-1), ValueError,
     "target_temperature"),
    (lambda: rsd_generate(TARGET, DRAFT, [3, 7], 5, draft_temperature=0), ValueError,
     "draft_temperature"),
    (lambda: rsd_generate(TARGET, DRAFT, [3, 7], 5, draft_top_p=1.5), ValueError,
     "draft_top_p"),
    (lambda: rsd_generate(TARGET, toy_models(V=8)[1], [3, 7], 5), ValueError,
     "draft.vocab_size"),
    (lambda: rsd_generate(TARGET, DRAFT, [3, 40], 5), ValueError, "prompt"),
    (lambda: rsd_generate(TARGET, DRAFT, [3, 7], -1), ValueError, "max_new_tokens"),
    (lambda: rsd_generate(object(), DRAFT, [3, 7], 5), TypeError, "target"),
    (lambda: RSDDrafter(None), TypeError, "draft"),
    (lambda: RSDDrafter(_NoVocab()), TypeError, "draft.vocab_size"),
    (lambda: RSDDrafter(DRAFT, depth=0), ValueError, "depth"),
    (lambda: block_efficiency([1.5], 1), TypeError, "emitted"),
    (lambda: block_efficiency([1], 0), ValueError, "target_calls"),
    (lambda: mbsu(0, 1, 0.1), ValueError, "block_eff"),
    (lambda: mbsu(1, 1, -0.1), ValueError, "c must"),
    (lambda: target_budget("tree"), TypeError, "tree"),
    (lambda: configs_for_budget(1), ValueError, "B must"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_exports():
    assert generate.METHODS == ("rsd-c", "rsd-s", "iid", "k-seq", "chain")
    assert "configs_for_budget" in budget.__all__


@pytest.mark.parametrize("backend", ["numpy", "jit"])
@pytest.mark.parametrize("method", METHODS)
def test_batched_generation_equals_rows_alone_with_their_seeds(method, backend):
    """Item 10 of the method's contract: batched generation equals per-row generation with
    per-row seeds (exact per-row targets, so only the batching can differ)."""
    from refseq.decoding.speculative.batched import RowsTreeLM
    from refseq.papers.recursive_speculative_decoding import rsd_generate_batch

    prompts = [np.array([3, 7]), np.array([1, 2, 30]), np.array([5])]
    target = RowsTreeLM([TabularTreeLM(TARGET_LM) for _ in prompts])
    outs, stats = rsd_generate_batch(target, DRAFT, prompts, 14, method=method, rngs=[4, 5, 6],
                                     eos_id=9, backend=backend, **SHAPES[method])
    for b, p in enumerate(prompts):
        one, st = rsd_generate(TARGET, DRAFT, p, 14, method=method, rng=4 + b, eos_id=9,
                               **SHAPES[method])
        np.testing.assert_array_equal(outs[b], one)
        assert stats[b].num_accepted == st.num_accepted
        assert stats[b].draft_calls == st.draft_calls
