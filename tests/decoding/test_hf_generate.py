"""refseq's decoders against Hugging Face ``generate`` on the same tiny random GPT-2 (no download):
greedy token for token, beam search with ``convention="hf"`` (sequences and
``sequences_scores``), sampling distributionally (chi-square against refseq's exact warped
distribution). Skipped without torch and transformers (the ``peers`` extra)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from refseq.decoding.beam import beam_search  # noqa: E402
from refseq.decoding.peers import HFStepLM, run_hf_generate  # noqa: E402
from refseq.decoding.sampling import warped_probs  # noqa: E402
from refseq.decoding.search import greedy  # noqa: E402
from refseq.models.tiny_transformer.hf import from_gpt2  # noqa: E402
from refseq.models.tiny_transformer.lm import TransformerLM  # noqa: E402

VERSION = transformers.__version__
PROMPT = np.array([3, 7, 2])


def _gpt2(seed, sharpen=8.0):
    """A seeded GPT-2 (1 layer, 2 heads, width 16, V = 32); weights scaled up so the next-token
    distributions are peaked and EOS is actually reached within 12 tokens."""
    transformers.utils.logging.set_verbosity_error()
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=32, n_positions=64,
                                  bos_token_id=0, eos_token_id=1)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(sharpen)
    return model


def _compare_beam_search(model, grid):
    lm = HFStepLM(model)
    finished = short = 0
    for alpha, early, eos in grid:
        hf = run_hf_generate(model, PROMPT, num_beams=4, do_sample=False, num_return_sequences=4,
                             length_penalty=alpha, early_stopping=early, eos_token_id=eos,
                             pad_token_id=0, max_new_tokens=12)
        ours = beam_search(lm, [PROMPT], num_beams=4, max_new_tokens=12, eos_ids=(eos,),
                           pad_id=0, length_penalty=alpha, early_stopping=early,
                           num_return_sequences=4, convention="hf",
                           compute_dtype=np.float32)[0]
        assert len(ours) == 4, (alpha, early, eos)
        for i, h in enumerate(ours):
            L = len(h.tokens)
            assert hf.sequences[i, :L].tolist() == h.tokens.tolist(), (alpha, early, eos, i)
            # HF fills the rest with `pad_token_id or eos`: a pad id of 0 is falsy, so EOS
            assert set(hf.sequences[i, L:].tolist()) <= {0, eos}
            assert abs(hf.sequences_scores[i] - h.score) <= 1e-4, (alpha, early, eos, i)
            finished += h.finished
            short += L < 12
    return finished, short


def test_beam_search_hf_convention_matches_generate():
    """Sequences equal and sequences_scores within 1e-4 (float32 arithmetic on both sides),
    for length penalties 0 and 2 and the three early-stopping modes; the seed is one whose
    searches reach EOS, so the admission and stopping paths are exercised."""
    grid = itertools.product([0.0, 2.0], [True, False, "never"], [1])
    finished, short = _compare_beam_search(_gpt2(1), grid)
    assert finished > 0 and short > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3], ids=lambda s: f"transformers-{VERSION}-seed{s}")
def test_beam_search_hf_convention_matches_generate_on_a_grid(seed):
    grid = itertools.product([0.0, 0.5, 1.0, 2.0], [True, False, "never"], [1, 5])
    finished, short = _compare_beam_search(_gpt2(seed), grid)
    assert finished > 0


def test_greedy_matches_generate_and_the_converted_tiny_transformer():
    model = _gpt2(3)
    hf = run_hf_generate(model, PROMPT, do_sample=False, max_new_tokens=10, eos_token_id=1,
                         pad_token_id=0)
    L = hf.sequences.shape[1]
    ours = greedy(HFStepLM(model), [PROMPT], 10, eos_id=1, pad_id=0, compute_dtype=np.float32)
    assert ours.tokens[0, :L].tolist() == hf.sequences[0].tolist()
    tiny = TransformerLM(from_gpt2(model, dtype="float64"))  # refseq's own model, same weights
    assert greedy(tiny, [PROMPT], 10, eos_id=1, pad_id=0).tokens[0, :L].tolist() == \
        hf.sequences[0].tolist()


@pytest.mark.parametrize("warp", [dict(top_k=0), dict(top_k=5, temperature=0.8),
                                  dict(top_k=0, top_p=0.8, temperature=1.3)])
def test_sampling_first_token_distribution_matches_generate(warp):
    """HF's multinomial draws cannot take explicit uniforms, so the comparison is distributional:
    N first tokens from ``generate(do_sample=True)`` against refseq's exact warped distribution,
    chi-square p > 1e-4 (a true distribution fails this with probability 1e-4)."""
    from scipy.stats import chisquare

    model = _gpt2(4, sharpen=2.0)
    torch.manual_seed(0)
    N = 4000
    hf = run_hf_generate(model, PROMPT, do_sample=True, max_new_tokens=1,
                         num_return_sequences=N, pad_token_id=0, **warp)
    counts = np.bincount(hf.sequences[:, 0], minlength=32)
    logits, _ = HFStepLM(model).start([PROMPT])
    q = warped_probs(logits.astype(np.float64), top_p_mode="hf", **warp)[0]
    assert (counts[q == 0] == 0).all()  # removed tokens are never drawn
    keep = q > 0
    assert chisquare(counts[keep], N * q[keep]).pvalue > 1e-4


def test_compare_with_hf_reports_agreement_and_catches_a_difference(monkeypatch):
    from refseq.decoding import beam as beam_module
    from refseq.decoding.peers import compare_with_hf

    model = _gpt2(1)
    g = compare_with_hf(model, PROMPT, max_new_tokens=8, eos_id=1)
    assert g.same_tokens and np.isnan(g.max_score_diff)
    b = compare_with_hf(model, PROMPT, max_new_tokens=8, num_beams=4, eos_id=1,
                        num_return_sequences=4)
    assert b.same_tokens and b.max_score_diff <= 1e-4 and len(b.refseq_tokens) == 4
    real = beam_module.beam_search
    monkeypatch.setattr(beam_module, "beam_search",
                        lambda *a, **k: [real(*a, **k)[0][::-1]])  # best last: a wrong order
    bad = compare_with_hf(model, PROMPT, max_new_tokens=8, num_beams=4, eos_id=1,
                          num_return_sequences=4)
    assert not bad.same_tokens
