"""Config fields and keywords of refseq.models are checked and named: a wrong kind is a
``TypeError``, a wrong value a ``ValueError``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.models import tiny_transformer as tt
from refseq.models import toy_lm
from refseq.models.tiny_transformer.lm import TransformerLM

CFG = tt.TinyConfig(11, 8, 1, 2, 16)
LM = toy_lm.random_markov_lm(4, 1.0, 0)


def config(**kw):
    return tt.TinyConfig(**(dict(vocab_size=11, d_model=8, n_layers=1, n_heads=2,
                                 max_positions=16) | kw))


CASES = [
    ("TinyConfig-d_model-float", config, dict(d_model=8.0), TypeError,
     "TinyConfig.d_model must be an integer"),
    ("TinyConfig-n_layers-zero", config, dict(n_layers=0), ValueError, "TinyConfig.n_layers"),
    ("TinyConfig-ln_eps", config, dict(ln_eps=-1.0), ValueError, "TinyConfig.ln_eps"),
    ("TinyConfig-ln_eps-nan", config, dict(ln_eps=math.nan), ValueError, "TinyConfig.ln_eps"),
    ("TinyConfig-rope_base", config, dict(rope_base=0.0), ValueError, "TinyConfig.rope_base"),
    ("TinyConfig-rope_base-str", config, dict(rope_base="1e4"), TypeError,
     "TinyConfig.rope_base"),
    ("TinyConfig-dtype", config, dict(dtype="int32"), TypeError, "TinyConfig.dtype"),
    ("TinyConfig-activation", config, dict(activation="relu"), ValueError,
     "TinyConfig.activation"),
    ("init_params-seed", lambda **k: tt.init_params(CFG, **k), dict(seed="0"), TypeError,
     "seed"),
    ("init_params-config", lambda **k: tt.init_params(**k), dict(config=None), TypeError,
     "config must be a TinyConfig"),
    ("TransformerLM-bos_id", lambda **k: TransformerLM(tt.init_params(CFG), **k),
     dict(bos_id=11), ValueError, "bos_id"),
    ("TransformerLM-bos_id-float", lambda **k: TransformerLM(tt.init_params(CFG), **k),
     dict(bos_id=1.0), TypeError, "bos_id"),
    ("random_markov_lm-alpha", lambda **k: toy_lm.random_markov_lm(4, seed=0, **k),
     dict(alpha=math.nan), ValueError, "alpha"),
    ("random_markov_lm-V", lambda **k: toy_lm.random_markov_lm(alpha=1.0, seed=0, **k),
     dict(V=2.5), TypeError, "V must be an integer"),
    ("random_markov_lm-seed", lambda **k: toy_lm.random_markov_lm(4, 1.0, **k),
     dict(seed=1.5), TypeError, "seed"),
    ("random_markov_lm-order", lambda **k: toy_lm.random_markov_lm(4, 1.0, 0, **k),
     dict(order=0), ValueError, "order"),
    ("TabularLM-order", lambda **k: toy_lm.TabularLM(table=LM.table, **k), dict(order=2.0),
     TypeError, "order"),
    ("TabularLM-table-int", lambda **k: toy_lm.TabularLM(2, **k),
     dict(table=np.zeros((4, 4), int)), TypeError, "table must have dtype"),
    ("TabularLM-pad_id", lambda **k: toy_lm.TabularLM(2, LM.table, **k), dict(pad_id=4),
     ValueError, "pad_id"),
    ("TabularLM-eos_id", lambda **k: toy_lm.TabularLM(2, LM.table, **k), dict(eos_id="1"),
     TypeError, "eos_id"),
    ("sample_sequences-n", lambda **k: toy_lm.sample_sequences(LM, T=3, seed=0, **k),
     dict(n=-1), ValueError, "n must be"),
    ("sample_sequences-T", lambda **k: toy_lm.sample_sequences(LM, 2, seed=0, **k),
     dict(T=3.0), TypeError, "T must be"),
    ("enumerate_sequences-max_len", lambda **k: toy_lm.enumerate_sequences(LM, [], **k),
     dict(max_len=2.0), TypeError, "max_len"),
]


@pytest.mark.parametrize("call,kw,err,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_keyword_is_named(call, kw, err, match):
    with pytest.raises(err, match=match):
        call(**kw)


def test_numpy_scalars_and_dtypes_are_accepted():
    cfg = config(d_model=np.int64(8), dtype=np.float32, ln_eps=np.float32(1e-5))
    assert cfg.d_model == 8 and type(cfg.d_model) is int and cfg.dtype == "float32"
    assert tt.init_params(cfg, seed=np.random.default_rng(0)).wte.dtype == np.float32


def test_forward_layers_lo_hi_must_be_ints():
    p = tt.init_params(CFG)
    with pytest.raises(TypeError, match="lo must be an integer"):
        tt.forward_layers(p, np.zeros((3, 8)), True, 1)
    with pytest.raises(TypeError, match="hi must be an integer"):
        tt.forward_layers(p, np.zeros((3, 8)), 0, 1.0)
