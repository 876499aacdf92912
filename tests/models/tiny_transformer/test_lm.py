"""The tiny transformer as a StepLM: cached incremental logits == full recomputation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.interfaces import StepLM
from refseq.models.tiny_transformer import TinyConfig, forward, init_params
from refseq.models.tiny_transformer.lm import TransformerLM
from refseq.testing.strategies import seeds

CFG = TinyConfig(vocab_size=11, d_model=8, n_layers=2, n_heads=2, max_positions=24)


def _full_next_logits(params, prefix):
    logits, _, _ = forward(params, tokens=np.asarray(prefix, np.int64), return_hidden=False)
    return logits[-1]


@given(seed=seeds(), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       n_steps=st.integers(1, 5))
def test_start_step_reorder_match_full_forwards(seed, lengths, n_steps):
    rng = np.random.default_rng(seed)
    params = init_params(CFG, seed=seed % 1000)
    lm = TransformerLM(params)
    assert isinstance(lm, StepLM)
    prefixes = [list(rng.integers(0, CFG.vocab_size, n)) for n in lengths]
    logits, state = lm.start([np.array(p) for p in prefixes])
    for _ in range(n_steps):
        for row, prefix in enumerate(prefixes):
            np.testing.assert_allclose(logits[row], _full_next_logits(params, prefix),
                                       rtol=1e-12, atol=1e-12)
        rows = rng.integers(0, len(prefixes), len(prefixes) + 1)  # repeat and drop rows
        state = lm.reorder(state, rows)
        prefixes = [list(prefixes[r]) for r in rows]
        tokens = rng.integers(0, CFG.vocab_size, len(prefixes))
        logits, state = lm.step(state, tokens)
        for prefix, tok in zip(prefixes, tokens):
            prefix.append(int(tok))


def test_bos_empty_prompts_and_bad_input():
    params = init_params(CFG, seed=0)
    with pytest.raises(ValueError, match="empty and no bos_id"):
        TransformerLM(params).start([np.array([], np.int64)])
    logits, _ = TransformerLM(params, bos_id=3).start([np.array([], np.int64)])
    np.testing.assert_allclose(logits[0], _full_next_logits(params, [3]), rtol=1e-12)
    lm = TransformerLM(params)
    _, state = lm.start([np.array([1, 2])])
    with pytest.raises(ValueError, match="tokens must have shape"):
        lm.step(state, np.array([1, 2]))
    with pytest.raises(ValueError, match="rows must be"):
        lm.reorder(state, np.array([1]))
    with pytest.raises(ValueError, match="bos_id must be"):
        TransformerLM(params, bos_id=99)
