"""Diverse beam search against its peers.

- Hugging Face group beam search (transformers 4.40-4.49; removed from the core in v5): runs in
  a subprocess with ``PYTHONPATH=$REFSEQ_HF4_PATH`` (recipe in docs/papers/diverse-beam-search.md),
  writes a seeded tiny GPT-2's weights and its outputs; refseq runs ``convention="hf"`` on the same
  weights through ``HFStepLM`` (transformers 5). Skipped without the variable.
- fairseq ``DiverseBeamSearch.step`` (no fairseq package here): a test-only NumPy port written from
  reading ``fairseq/search.py`` (``DiverseBeamSearch.step`` and ``BeamSearch.step``) against a loop
  of :func:`group_step` with the candidates penalty source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.diverse_beam import diverse_beam_search, group_step

CASES = [
    dict(prompt=[1, 2, 3], num_beams=4, num_beam_groups=2, diversity_penalty=0.7,
         num_return_sequences=4, max_new_tokens=10, eos_token_id=5, pad_token_id=0),
    dict(prompt=[7], num_beams=6, num_beam_groups=3, diversity_penalty=1.5,
         num_return_sequences=6, max_new_tokens=12, eos_token_id=28, pad_token_id=2,
         length_penalty=0.5),
    dict(prompt=[4, 9], num_beams=4, num_beam_groups=4, diversity_penalty=0.3,
         num_return_sequences=4, max_new_tokens=8, eos_token_id=20, pad_token_id=11,
         early_stopping=True),
    dict(prompt=[3], num_beams=4, num_beam_groups=2, diversity_penalty=0.7,
         num_return_sequences=2, max_new_tokens=10, eos_token_id=28, pad_token_id=28),
]


@pytest.fixture(scope="module")
def hf4(tmp_path_factory):
    path = os.environ.get("REFSEQ_HF4_PATH")
    if not path:
        pytest.skip("REFSEQ_HF4_PATH is not set (a directory with transformers 4.40-4.49, see "
                    "docs/papers/diverse-beam-search.md)")
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    tmp = tmp_path_factory.mktemp("hf4")
    (tmp / "cases.json").write_text(json.dumps(CASES))
    script = Path(__file__).with_name("hf4_group_beam.py")
    env = dict(os.environ, PYTHONPATH=path)
    subprocess.run([sys.executable, str(script), str(tmp / "out.npz"), str(tmp / "cases.json")],
                   check=True, env=env, capture_output=True, timeout=300)
    return np.load(tmp / "out.npz")


def _hf5_model(out):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=32, n_positions=64)
    model = GPT2LMHeadModel(cfg).eval()
    state = {k[2:]: torch.from_numpy(out[k]) for k in out.files if k.startswith("w/")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("lm_head" in k for k in missing)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("n", range(len(CASES)))
def test_hf_group_beam_search(hf4, n):
    from refseq.decoding.peers import HFStepLM

    assert str(hf4["version"]).startswith("4.")
    c = CASES[n]
    lm = HFStepLM(_hf5_model(hf4))
    (r,) = diverse_beam_search(
        lm, [np.array(c["prompt"])], num_beams=c["num_beams"], num_groups=c["num_beam_groups"],
        diversity_strength=c["diversity_penalty"], max_new_tokens=c["max_new_tokens"],
        eos_ids=[c["eos_token_id"]], pad_id=c["pad_token_id"],
        length_penalty=c.get("length_penalty", 1.0), early_stopping=c.get("early_stopping", False),
        num_return_sequences=c["num_return_sequences"], convention="hf",
        compute_dtype=np.float32)
    seqs, scores = hf4[f"seq/{n}"], hf4[f"score/{n}"]
    assert len(r.flat) == len(seqs)
    for h, row in zip(r.flat, seqs):  # HF pads after EOS
        L = len(h.tokens)
        assert row[:L].tolist() == h.tokens.tolist()
        assert (row[L:] == c["pad_token_id"]).all()
    np.testing.assert_allclose([h.score for h in r.flat], scores, atol=1e-4, rtol=0)


# ------------------------------------------------------------------ fairseq, ported
def _fairseq_beam_step(step, lprobs, scores):
    """BeamSearch.step: (bsz, beam, V) -> top min(2 beam, beam V - 1) by score (stable here)."""
    bsz, beam, V = lprobs.shape
    if step == 0:
        lprobs = lprobs[:, ::beam, :]  # only the first beam
    else:
        lprobs = lprobs + scores[:, :, step - 1][:, :, None]
    flat = lprobs.reshape(bsz, -1)
    k = min(2 * beam, flat.shape[1] - 1)
    idx = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(flat, idx, 1), idx % V, idx // V


def _fairseq_diverse_step(step, lprobs, scores, num_groups, strength):
    """DiverseBeamSearch.step: groups are the strided slices g::G; the diversity buffer counts
    every candidate token of the earlier groups; results interleaved (bsz, 2 B)."""
    bsz, beam, V = lprobs.shape
    neg = -strength  # fairseq stores the strength negated and adds
    buf = np.zeros((bsz, V))
    out = []
    for g in range(num_groups):
        lp_g = lprobs[:, g::num_groups, :]
        sc_g = scores[:, g::num_groups, :] if step > 0 else None
        if g > 0:
            lp_g = lp_g + neg * buf[:, None, :]
        s, i, b = _fairseq_beam_step(step, lp_g, sc_g)
        out.append((s, i, b * num_groups + g))
        for row in range(bsz):
            np.add.at(buf[row], i[row], 1.0)
    return tuple(np.stack([o[j] for o in out], axis=2).reshape(bsz, -1) for j in range(3))


@settings(deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 3), st.integers(1, 3), st.integers(0, 3),
       st.floats(0, 2))
def test_fairseq_diverse_step_equals_group_step_loop(seed, Bp, G, step, lam):
    rng = np.random.default_rng(seed)
    bsz, V, B = 2, 7, Bp * G
    lprobs = np.log(rng.dirichlet(np.ones(V), size=(bsz, B)))  # (bsz, B, V)
    scores = rng.normal(size=(bsz, B, max(step, 1))) - 3  # (bsz, B, step) running scores
    want = _fairseq_diverse_step(step, lprobs, scores, G, lam)
    for item in range(bsz):
        used, got = [], []
        for g in range(G):
            rows = np.arange(g, B, G)  # interleaved groups
            cum = scores[item, rows, step - 1] if step else np.zeros(Bp)
            pen = np.bincount(np.asarray(used, np.int64), minlength=V).astype(float)
            n_cand = min(2 * Bp, (V if step == 0 else Bp * V) - 1)
            s, b, v = group_step(cum, lprobs[item, rows], pen, lam if g else 0.0, n_cand,
                                 first_step=step == 0)
            got.append((s, v, rows[b]))
            used += v.tolist()  # penalty_source="candidates"
        for j in range(3):
            inter = np.stack([x[j] for x in got], axis=1).reshape(-1)  # k-major, then g
            np.testing.assert_allclose(inter, want[j][item], atol=1e-12, rtol=0)
