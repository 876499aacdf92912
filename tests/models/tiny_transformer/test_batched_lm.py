"""The batched StepLM equals the row-by-row one: left padding, positions and masks change
nothing but rounding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.beam import beam_search
from refseq.models.tiny_transformer import TinyConfig, init_params
from refseq.models.tiny_transformer.batched_lm import BatchedTransformerLM
from refseq.models.tiny_transformer.lm import TransformerLM


def _params(rope=False, dtype="float64"):
    cfg = TinyConfig(vocab_size=11, d_model=8, n_layers=2, n_heads=2, max_positions=40,
                     rope=rope, dtype=dtype)
    return init_params(cfg, seed=3)


@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), rope=st.booleans(),
       seed=st.integers(0, 1000))
def test_logits_equal_the_row_by_row_model_through_steps_and_reorders(lengths, rope, seed):
    rng = np.random.default_rng(seed)
    params = _params(rope)
    prompts = [rng.integers(0, 11, n) for n in lengths]
    a, b = TransformerLM(params), BatchedTransformerLM(params)
    la, sa = a.start(prompts)
    lb, sb = b.start(prompts)
    np.testing.assert_allclose(lb, la, rtol=1e-12, atol=1e-12)
    for _ in range(3):
        rows = rng.integers(0, len(la), len(la) + 1)  # repeats and drops rows
        tok = rng.integers(0, 11, len(rows))
        la, sa = a.step(a.reorder(sa, rows), tok)
        lb, sb = b.step(b.reorder(sb, rows), tok)
        np.testing.assert_allclose(lb, la, rtol=1e-12, atol=1e-12)


def test_a_state_is_not_mutated_by_a_later_step():
    lm = BatchedTransformerLM(_params())
    _, s = lm.start([np.array([1, 2]), np.array([3])])
    l1, _ = lm.step(s, np.array([4, 5]))
    l2, _ = lm.step(s, np.array([4, 5]))
    assert np.array_equal(l1, l2)


def test_beam_search_gives_the_same_hypotheses_on_both_models():
    params = _params(dtype="float64")
    prompts = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6])]
    kw = dict(num_beams=3, max_new_tokens=6, eos_ids=(0,), num_return_sequences=3)
    ha = beam_search(TransformerLM(params), prompts, **kw)
    hb = beam_search(BatchedTransformerLM(params), prompts, **kw)
    for x, y in zip(ha, hb):
        assert [h.tokens.tolist() for h in x] == [h.tokens.tolist() for h in y]
        np.testing.assert_allclose([h.score for h in x], [h.score for h in y], rtol=1e-12)


def test_bos_and_errors():
    params = _params()
    lm = BatchedTransformerLM(params, bos_id=0)
    la, _ = lm.start([np.array([], np.int64), np.array([2])])
    lb, _ = TransformerLM(params, bos_id=0).start([np.array([], np.int64), np.array([2])])
    np.testing.assert_allclose(la, lb, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="empty"):
        BatchedTransformerLM(params).start([np.array([], np.int64)])
    with pytest.raises(ValueError, match="prompts"):
        BatchedTransformerLM(params).start([])
    _, s = BatchedTransformerLM(params).start([np.array([1])])
    with pytest.raises(ValueError, match="tokens"):
        BatchedTransformerLM(params).step(s, np.array([1, 2]))
    with pytest.raises(ValueError, match="rows"):
        BatchedTransformerLM(params).reorder(s, np.array([1]))
    with pytest.raises(ValueError, match="bos_id"):
        BatchedTransformerLM(params, bos_id=11)
