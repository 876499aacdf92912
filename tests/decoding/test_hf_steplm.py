"""Peer adapter: a Hugging Face causal LM as a StepLM, and ``generate`` with NumPy outputs.

The expected logits are HF's own full-sequence forward on each row's whole token sequence (no
cache), and the expected tokens and scores are ``generate``'s.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.interfaces import StepLM
from refseq.testing.strategies import seeds

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from refseq.decoding.peers import HFState, HFStepLM, run_hf_generate  # noqa: E402

V = 32


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: torch's intra-op threads only add synchronisation (10x slower on a busy
    2-core machine). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gpt2(seed, double=True, n_positions=64):
    """A random tiny GPT-2 in eval mode, weights redrawn at O(1) scale (peaked logits)."""
    torch.manual_seed(seed % 2**31)
    m = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=V,
                                   n_positions=n_positions, bos_token_id=None,
                                   eos_token_id=None)).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim == 2:
                fan_in = 1 if "wte" in name or "wpe" in name else p.shape[0]
                p.copy_(torch.randn(p.shape) / fan_in ** 0.5)
    return m.double() if double else m


def full_next_logits(m, prefix):
    with torch.no_grad():
        return m(torch.tensor([list(prefix)])).logits[0, -1].numpy()  # (V,)


@pytest.fixture(scope="module")
def model():
    return gpt2(0)


@given(seed=seeds(), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       n_steps=st.integers(1, 4))
def test_start_step_reorder_match_full_forwards(model, seed, lengths, n_steps):
    rng = np.random.default_rng(seed)
    lm = HFStepLM(model)
    assert isinstance(lm, StepLM) and lm.vocab_size == V
    prefixes = [list(rng.integers(0, V, n)) for n in lengths]  # different prompt lengths
    logits, state = lm.start([np.array(p) for p in prefixes])
    for _ in range(n_steps):
        assert logits.dtype == np.float64 and logits.shape == (len(prefixes), V)
        for row, prefix in enumerate(prefixes):
            np.testing.assert_allclose(logits[row], full_next_logits(model, prefix),
                                       rtol=1e-12, atol=1e-12)
        rows = rng.integers(0, len(prefixes), len(prefixes) + 1)  # repeat and drop rows
        state = lm.reorder(state, rows)
        prefixes = [list(prefixes[r]) for r in rows]
        tokens = rng.integers(0, V, len(prefixes))
        logits, state = lm.step(state, tokens)
        for prefix, tok in zip(prefixes, tokens):
            prefix.append(int(tok))


def test_explicit_repeat_and_drop(model):
    lm = HFStepLM(model)
    prompts = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6])]
    _, state = lm.start(prompts)
    state = lm.reorder(state, np.array([2, 2, 0]))  # row 1 dropped, row 2 twice
    logits, _ = lm.step(state, np.array([7, 8, 9]))
    for row, seq in enumerate([[5, 6, 7], [5, 6, 8], [1, 2, 3, 9]]):
        np.testing.assert_allclose(logits[row], full_next_logits(model, seq), rtol=1e-12,
                                   atol=1e-12)


def test_a_state_is_never_mutated(model):
    lm = HFStepLM(model)
    _, state = lm.start([np.array([3, 1, 4]), np.array([1, 5, 9])])
    snapshot = [[(k.clone(), v.clone()) for k, v in r.kv] for r in state.rows]
    first, _ = lm.step(state, np.array([2, 6]))
    lm.step(state, np.array([5, 3]))  # a different continuation of the same state
    lm.step(lm.reorder(state, np.array([1, 1])), np.array([0, 0]))
    again, _ = lm.step(state, np.array([2, 6]))
    np.testing.assert_array_equal(first, again)
    assert [r.length for r in state.rows] == [3, 3]
    for row, snap in zip(state.rows, snapshot):
        for (k, v), (k0, v0) in zip(row.kv, snap):
            assert torch.equal(k, k0) and torch.equal(v, v0)


@given(seed=seeds(), P=st.integers(1, 6))
def test_greedy_on_hfsteplm_equals_generate_bitwise_float32(seed, P):
    # Same forward calls as generate (prompt, then one token at a time with a cache), so the
    # float32 logits are bitwise equal to generate's scores (greedy without processors = raw
    # logits) and the argmax tokens agree without any tie margin.
    m = gpt2(seed, double=False)
    prompt = np.random.default_rng(seed).integers(0, V, P)
    lm = HFStepLM(m)
    logits, state = lm.start([prompt])
    tokens, steps = [], []
    for _ in range(8):
        assert logits.dtype == np.float32
        steps.append(logits[0])
        tokens.append(int(np.argmax(logits[0])))
        logits, state = lm.step(state, np.array(tokens[-1:]))
    out = run_hf_generate(m, prompt, do_sample=False, max_new_tokens=8)
    assert out.sequences.dtype == np.int64 and out.sequences.shape == (1, 8)
    assert out.sequences_scores is None and out.scores.shape == (8, 1, V)
    assert out.sequences[0].tolist() == tokens
    np.testing.assert_array_equal(out.scores[:, 0], np.stack(steps))


def test_run_hf_generate_beam_outputs(model):
    out = run_hf_generate(model, np.array([1, 2, 3]), do_sample=False, num_beams=3,
                          num_return_sequences=2, max_new_tokens=5, length_penalty=0.0)
    assert out.sequences.shape == (2, 5) and out.sequences_scores.shape == (2,)
    assert out.scores.shape == (5, 3, V)  # per step, one row per beam
    # length_penalty=0: the score is the sum of the chosen tokens' log-probs, recomputed here
    # in float64 from HF's full forward passes. generate casts the logits to float32 before its
    # log_softmax, so each term carries float32 rounding of the order eps32 * (|z| + |log Z|).
    for seq, score in zip(out.sequences, out.sequences_scores):
        prefix, total, scale = [1, 2, 3], 0.0, 0.0
        for t in seq:
            z = full_next_logits(model, prefix)
            log_z = np.log(np.exp(z - z.max()).sum()) + z.max()
            total += z[t] - log_z
            scale += np.abs(z).max() + abs(log_z)
            prefix.append(int(t))
        assert abs(score - total) <= 8 * np.finfo(np.float32).eps * scale


def test_compute_dtype_casts_the_returned_logits():
    m = gpt2(1, double=False)
    lg32, _ = HFStepLM(m).start([np.array([1, 2])])
    lg64, _ = HFStepLM(m, compute_dtype=np.float64).start([np.array([1, 2])])
    assert lg32.dtype == np.float32 and lg64.dtype == np.float64
    np.testing.assert_array_equal(lg64, lg32.astype(np.float64))


def test_bad_input_raises(model):
    lm = HFStepLM(model)
    _, state = lm.start([np.array([1, 2])])
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        lm.start([np.array([1]), np.array([], np.int64)])
    with pytest.raises(ValueError, match="prompts"):
        lm.start([np.array([V])])
    with pytest.raises(ValueError, match="tokens"):
        lm.step(state, np.array([1, 2]))
    with pytest.raises(ValueError, match="tokens"):
        lm.step(state, np.array([V]))
    with pytest.raises(TypeError, match="tokens"):
        lm.step(state, np.array([1.0]))
    with pytest.raises(TypeError, match="state"):
        lm.step((), np.array([1]))
    with pytest.raises(ValueError, match="rows"):
        lm.reorder(state, np.array([1]))
    with pytest.raises(ValueError, match="eval"):
        HFStepLM(gpt2(0).train())
    with pytest.raises(TypeError, match="hf_model"):
        HFStepLM(object())
    with pytest.raises(ValueError, match="generate_kwargs"):
        run_hf_generate(model, np.array([1]), output_scores=False)
    short = HFStepLM(gpt2(0, n_positions=3))
    _, st3 = short.start([np.array([1, 2, 3])])
    with pytest.raises(ValueError, match="max_position_embeddings"):
        short.step(st3, np.array([1]))
    empty = short.reorder(st3, np.array([], np.int64))
    assert isinstance(empty, HFState)
    assert short.step(empty, np.array([], np.int64))[0].shape == (0, V)


def test_import_needs_neither_torch_nor_transformers():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
            "import refseq.decoding.peers as p\n"
            "try:\n    p.HFStepLM(None)\nexcept ImportError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "pip install torch transformers" in r.stdout
