"""Batched speculative decoding (refseq.decoding.speculative.batched): every row equals the
single-row engine on that row with the same stream (an independent code path: per-row Python
verification vs the batched hot-path kernels), greedy rows equal plain greedy decoding, and the
batch's own rules (one mode per batch, the before-draft hook, bad arguments)."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.decoding.speculative.batched import RowsTreeLM, speculative_generate_batch
from refseq.decoding.speculative.drafters import (
    ChainDrafter,
    RandomDrafter,
    SampledTreeDrafter,
)
from refseq.decoding.speculative.engine import plain_greedy, speculative_generate
from refseq.decoding.speculative.target import (
    BatchedTreeLM,
    TabularTreeLM,
    TinyTransformerTreeLM,
)
from refseq.decoding.speculative.toy_result import toy_models
from refseq.models.tiny_transformer.params import TinyConfig, init_params

V = 8
PROMPTS = [np.array([1, 2, 3]), np.array([4]), np.array([7, 0, 5, 6, 2])]


@pytest.fixture(scope="module")
def lms():
    return toy_models(V=V, scale=3.0, noise=1.0)


def _drafter(kind, draft_lm, seed):
    rng = np.random.default_rng(seed)
    if kind == "chain-greedy":
        return ChainDrafter(draft_lm, 3), rng
    if kind == "chain-sampled":
        return ChainDrafter(draft_lm, 3, temperature=1.0, rng=rng), rng
    if kind == "random":
        return RandomDrafter(V, 6, rng=rng), rng
    if kind == "iid-virtual":
        return SampledTreeDrafter(draft_lm, (2, 2), mode="iid", virtual_duplicates=True,
                                  rng=rng), rng
    return SampledTreeDrafter(draft_lm, (3, 2), mode="wor", rng=rng), rng


@pytest.mark.parametrize("backend", ["numpy", "jit"])
@pytest.mark.parametrize("kind", ["chain-greedy", "chain-sampled", "random", "iid-virtual",
                                  "wor"])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_rows_equal_the_single_row_engine(lms, kind, temperature, backend):
    """Row b of the batch == speculative_generate on row b alone, with a generator of the same
    seed shared by the drafter and the verifier in both runs (tokens and per-step records)."""
    target_lm, draft_lm = lms
    made = [_drafter(kind, draft_lm, 10 + b) for b in range(len(PROMPTS))]
    target = RowsTreeLM([TabularTreeLM(target_lm) for _ in PROMPTS])
    outs, stats = speculative_generate_batch(
        target, [d for d, _ in made], PROMPTS, 12, temperature=temperature, eos_id=3,
        rngs=[r for _, r in made], backend=backend)
    for b, p in enumerate(PROMPTS):
        d, r = _drafter(kind, draft_lm, 10 + b)
        one, st = speculative_generate(TabularTreeLM(target_lm), d, p, 12,
                                       temperature=temperature, eos_id=3, rng=r)
        np.testing.assert_array_equal(outs[b], one)
        assert stats[b].num_accepted == st.num_accepted
        assert stats[b].emitted == st.emitted and stats[b].tree_size == st.tree_size


def test_greedy_rows_of_a_batched_transformer_equal_plain_greedy():
    """Through BatchedTreeLM's one forward per step (different prompt lengths and accepted
    lengths per row): each row equals plain greedy decoding of the same model."""
    cfg = TinyConfig(vocab_size=V, d_model=16, n_layers=2, n_heads=2, max_positions=64)
    params = init_params(cfg, seed=0)
    rngs = [np.random.default_rng(b) for b in range(3)]
    drafters = [RandomDrafter(V, 5, rng=r) for r in rngs]
    outs, stats = speculative_generate_batch(BatchedTreeLM(params), drafters, PROMPTS, 9,
                                             backend="jit")
    for b, p in enumerate(PROMPTS):
        np.testing.assert_array_equal(outs[b], plain_greedy(TinyTransformerTreeLM(params), p, 9))
        assert sum(stats[b].emitted) == 9


def test_rows_finish_independently_and_the_hook_sees_each_step(lms):
    """A row that emits EOS stops (kept) while the others go on; ``before_draft`` runs once per
    step before any draft, with every row's context and the active flags."""
    target_lm, draft_lm = lms
    calls = []

    def hook(contexts, roots, active):
        calls.append((len(contexts), list(active)))

    prompts = [np.array([1, 2]), np.array([5, 6])]
    want = [plain_greedy(TabularTreeLM(target_lm), p, 15) for p in prompts]
    eos = int(want[0][2])  # the third token of row 0
    outs, stats = speculative_generate_batch(
        RowsTreeLM([TabularTreeLM(target_lm) for _ in prompts]),
        [ChainDrafter(draft_lm, 2) for _ in prompts], prompts, 15, eos_id=eos,
        before_draft=hook)
    for b in range(2):
        w = list(want[b])
        w = w[: w.index(eos) + 1] if eos in w else w
        assert outs[b].tolist() == w
    assert len(calls) == max(s.steps for s in stats)
    assert all(n == 2 for n, _ in calls) and calls[0][1] == [True, True]
    finished = [b for b in range(2) if stats[b].steps < len(calls)]
    assert all(calls[-1][1][b] is False for b in finished)


def test_one_verification_mode_per_batch(lms):
    target_lm, draft_lm = lms
    rngs = [np.random.default_rng(0), np.random.default_rng(1)]
    drafters = [SampledTreeDrafter(draft_lm, (2,), mode="iid", rng=rngs[0]),
                SampledTreeDrafter(draft_lm, (2,), mode="wor", rng=rngs[1])]
    target = RowsTreeLM([TabularTreeLM(target_lm) for _ in range(2)])
    with pytest.raises(ValueError, match="different verification modes"):
        speculative_generate_batch(target, drafters, PROMPTS[:2], 5, temperature=1.0,
                                   rngs=rngs)


def test_bad_arguments_are_named(lms):
    target_lm, draft_lm = lms
    target = RowsTreeLM([TabularTreeLM(target_lm) for _ in range(2)])
    d = ChainDrafter(draft_lm, 2)
    with pytest.raises(ValueError, match="distinct"):
        speculative_generate_batch(target, [d, d], PROMPTS[:2], 5)
    with pytest.raises(TypeError, match="drafters must be a list of B = 2"):
        speculative_generate_batch(target, [d], PROMPTS[:2], 5)
    with pytest.raises(TypeError, match="rngs must be a list of B = 2"):
        speculative_generate_batch(target, [d, ChainDrafter(draft_lm, 2)], PROMPTS[:2], 5,
                                   rngs=[0])
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        speculative_generate_batch(target, [d, ChainDrafter(draft_lm, 2)],
                                   [PROMPTS[0], np.array([V])], 5)
    with pytest.raises(TypeError, match="before_draft"):
        speculative_generate_batch(target, [d, ChainDrafter(draft_lm, 2)], PROMPTS[:2], 5,
                                   before_draft=3)
    with pytest.raises(ValueError, match="share one vocab_size"):
        RowsTreeLM([TabularTreeLM(target_lm), TabularTreeLM(toy_models(V=4)[0])])


def test_malformed_drafts_and_target_outputs_are_named(lms):
    """A drafter law or a target's logits of the wrong shape raise a ValueError naming the
    producer, not a NumPy broadcasting error."""
    target_lm, draft_lm = lms

    class BadLaw:
        def __init__(self):
            self.inner = ChainDrafter(draft_lm, 2, temperature=1.0, rng=0)

        def start(self, prompt, outs):
            pass

        def draft(self, context, root):
            tree, q, mode = self.inner.draft(context, root)
            return tree, q[:, :-1], mode  # V - 1 columns

        def observe(self, *a):
            pass

    target = RowsTreeLM([TabularTreeLM(target_lm) for _ in range(2)])
    with pytest.raises(ValueError, match=r"drafters\[1\]\.draft\(\)\[1\]"):
        speculative_generate_batch(target, [ChainDrafter(draft_lm, 2), BadLaw()], PROMPTS[:2],
                                   5, temperature=1.0)

    class ShortLogits(TabularTreeLM):
        def forward_tree(self, tree):
            logits, hidden = super().forward_tree(tree)
            return logits[:, :-1], hidden

    with pytest.raises(ValueError, match=r"targets\[1\]\.forward_tree"):
        bad = RowsTreeLM([TabularTreeLM(target_lm), ShortLogits(target_lm)])
        speculative_generate_batch(bad, [ChainDrafter(draft_lm, 2), ChainDrafter(draft_lm, 2)],
                                   PROMPTS[:2], 5)

    class Flat:  # a batched target whose logits lack the node axis
        vocab_size = V

        def prefill(self, prompts):
            return np.zeros((len(prompts), V)), np.zeros((len(prompts), 0))

        def forward_tree(self, trees):
            return np.zeros((len(trees), V)), np.zeros((len(trees), 0))

        def commit(self, paths):
            pass

    with pytest.raises(ValueError, match=r"target\.forward_tree\(trees\) must return logits"):
        speculative_generate_batch(Flat(), [ChainDrafter(draft_lm, 2), ChainDrafter(draft_lm, 2)],
                                   PROMPTS[:2], 5)
