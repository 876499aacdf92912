"""Number, dtype and flag keywords of the recoding reference are checked and named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.papers.recoding.lm import LSTMLanguageModel
from refseq.papers.recoding.recoder import RecodingLM
from refseq.papers.recoding.signals import anchor_loss, init_anchored_decoders, mc_dropout_entropy
from refseq.papers.recoding.step_size import FixedStep, LearnedStep, MLPStep
from refseq.papers.recoding.training import batchify, train_lm
from refseq.train import SGD

M = LSTMLanguageModel(5, 3, 4, rng=0)
DECS, ANCH = init_anchored_decoders(2, 4, 5, 1.0, 0)

CASES = [
    ("LM-vocab_size", lambda **k: LSTMLanguageModel(embedding_size=3, hidden_size=4, **k),
     dict(vocab_size=5.0), TypeError, "vocab_size must be an integer"),
    ("LM-dropout-nan", lambda **k: LSTMLanguageModel(5, 3, 4, **k), dict(dropout=math.nan),
     ValueError, "dropout"),
    ("LM-dtype", lambda **k: LSTMLanguageModel(5, 3, 4, **k), dict(dtype=np.int32), TypeError,
     "dtype"),
    ("LM-init_scale", lambda **k: LSTMLanguageModel(5, 3, 4, **k), dict(init_scale=-0.1),
     ValueError, "init_scale"),
    ("LM-rng", lambda **k: LSTMLanguageModel(5, 3, 4, **k), dict(rng="0"), TypeError, "rng"),
    ("Recoding-step", lambda **k: RecodingLM(M, "surprisal", **k), dict(step=-0.1), ValueError,
     "step"),
    ("Recoding-step-str", lambda **k: RecodingLM(M, "surprisal", **k), dict(step="0.1"),
     TypeError, "step"),
    ("Recoding-num_samples", lambda **k: RecodingLM(M, "mc_dropout", **k),
     dict(num_samples=0), ValueError, "num_samples"),
    ("Recoding-p_mc", lambda **k: RecodingLM(M, "mc_dropout", **k), dict(p_mc=math.nan),
     ValueError, "p_mc"),
    ("Recoding-nan_policy", lambda **k: RecodingLM(M, "surprisal", **k),
     dict(nan_policy="two"), ValueError, "nan_policy"),
    ("Recoding-prior_var", lambda **k: RecodingLM(
        M, "ensemble", decoders=DECS, anchors=ANCH, data_noise=1.0, n_data=10, **k),
     dict(prior_var=math.nan), ValueError, "prior_var"),
    ("mc_dropout-num_samples", lambda **k: mc_dropout_entropy(
        np.zeros((1, 4)), np.zeros((5, 4)), np.zeros(5), p_drop=0.2, **k),
     dict(num_samples=2.0), TypeError, "num_samples"),
    ("mc_dropout-masks", lambda **k: mc_dropout_entropy(
        np.zeros((1, 4)), np.zeros((5, 4)), np.zeros(5), 2, 0.2, **k),
     dict(masks=np.full((2, 1, 4), 0.5)), TypeError, "masks"),
    ("anchored-prior_var", lambda **k: init_anchored_decoders(2, 4, 5, **k),
     dict(prior_var=-1.0), ValueError, "prior_var"),
    ("anchored-dtype", lambda **k: init_anchored_decoders(2, 4, 5, 1.0, **k),
     dict(dtype=np.int64), TypeError, "dtype"),
    ("anchor_loss-N", lambda **k: anchor_loss(DECS, ANCH, 1.0, 1.0, **k), dict(N=0),
     ValueError, "N must be"),
    ("FixedStep-alpha", lambda **k: FixedStep(**k), dict(alpha="0.1"), TypeError, "alpha"),
    ("LearnedStep-theta_init", lambda **k: LearnedStep(**k), dict(theta_init=math.nan),
     ValueError, "theta_init"),
    ("MLPStep-layers", lambda **k: MLPStep(4, **k), dict(layers=(3, 0)), ValueError,
     r"layers\[1\]"),
    ("MLPStep-dtype", lambda **k: MLPStep(4, **k), dict(dtype=np.float16), TypeError, "dtype"),
    ("batchify-batch_size", lambda **k: batchify(np.arange(20), **k), dict(batch_size=2.0),
     TypeError, "batch_size"),
    ("train_lm-bptt_len", lambda **k: train_lm(M, np.arange(40) % 5, 1, SGD(0.1), **k),
     dict(bptt_len=0), ValueError, "bptt_len"),
    ("train_lm-clip", lambda **k: train_lm(M, np.arange(40) % 5, 1, SGD(0.1), **k),
     dict(clip=math.nan), ValueError, "clip"),
    ("train_lm-epochs", lambda **k: train_lm(M, np.arange(40) % 5, optimizer=SGD(0.1), **k),
     dict(epochs=1.0), TypeError, "epochs"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_keyword_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)
