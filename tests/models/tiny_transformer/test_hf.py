"""Peer check: Hugging Face GPT-2 weights <-> the tiny transformer.

Random tiny ``GPT2LMHeadModel``s (no download) with weights redrawn at O(1) scale (HF's
``std=0.02`` init gives near-flat logits that hide mistakes); the expected logits are HF's own
forward pass, and the expected greedy tokens are ``generate``'s.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refseq.models import tiny_transformer as tt
from refseq.models.tiny_transformer.hf import (
    config_from_gpt2,
    from_gpt2,
    from_gpt2_state_dict,
    gpt2_config_kwargs,
    gpt2_names,
    to_gpt2_state_dict,
)
from refseq.models.tiny_transformer.lm import TransformerLM
from refseq.testing.strategies import seeds

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

SMALL = dict(n_layer=2, n_head=2, n_embd=16, vocab_size=32, n_positions=64)
NO_SPECIAL = dict(bos_token_id=None, eos_token_id=None, pad_token_id=None)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: torch's intra-op threads only add synchronisation (10x slower on a busy
    2-core machine). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gpt2(seed, tied=True, activation="gelu_new", n_inner=None, eps=1e-5, double=True):
    """A random GPT-2 in eval mode; every weight redrawn: embeddings N(0, 1), Conv1D/Linear
    weights N(0, 1/fan_in), LayerNorm gains 1 + N(0, 0.2^2), biases N(0, 0.2^2)."""
    torch.manual_seed(seed % 2**31)
    cfg = GPT2Config(**SMALL, **NO_SPECIAL, n_inner=n_inner, activation_function=activation,
                     layer_norm_epsilon=eps, tie_word_embeddings=tied)
    m = GPT2LMHeadModel(cfg).eval()
    g = torch.Generator().manual_seed(seed % 2**31)
    with torch.no_grad():
        for name, p in m.named_parameters():  # a tied lm_head is listed once, as wte
            z = torch.randn(p.shape, generator=g)
            if name.endswith(("wte.weight", "wpe.weight")):
                p.copy_(z)
            elif name.startswith("lm_head"):
                p.copy_(z / p.shape[1] ** 0.5)  # nn.Linear (out, in)
            elif p.ndim == 2:
                p.copy_(z / p.shape[0] ** 0.5)  # Conv1D (in, out)
            elif ".ln_" in name:
                p.copy_((1 + 0.2 * z) if name.endswith("weight") else 0.2 * z)
            else:
                p.copy_(0.2 * z)
    return m.double() if double else m


def hf_logits(m, tokens):
    with torch.no_grad():
        return m(torch.from_numpy(np.asarray(tokens, np.int64))).logits.numpy()


@given(seed=seeds(), tied=st.booleans(),
       activation=st.sampled_from(["gelu_new", "gelu_pytorch_tanh", "gelu"]),
       n_inner=st.sampled_from([None, 24]), eps=st.sampled_from([1e-5, 1e-3]),
       B=st.integers(1, 3), T=st.integers(1, 12))
def test_converted_params_give_hf_logits_float64(seed, tied, activation, n_inner, eps, B, T):
    m = gpt2(seed, tied, activation, n_inner, eps)
    p = from_gpt2(m)
    assert p.config.tied_head == tied and p.config.d_hidden == (n_inner or 64)
    tokens = np.random.default_rng(seed).integers(0, 32, (B, T))
    ref = hf_logits(m, tokens)  # (B, T, V)
    logits, _, _ = tt.forward(p, tokens, return_hidden=False)
    assert np.abs(ref).max() > 1  # O(1) logits: a wrong weight cannot hide under 1e-12
    np.testing.assert_allclose(logits, ref, rtol=1e-12, atol=1e-12)


@given(seed=seeds(), tied=st.booleans(), T=st.integers(1, 12))
def test_converted_params_float32_error_within_hf_float32_error(seed, tied, T):
    # Oracle: HF's forward in float64 on the same (float32-representable) weights. refseq in
    # float32 passes if its error is at most 2x HF's own float32 error (the forward-pass factor
    # of the style guide) plus an eps32 * (1 + |ref|) guard for entries where HF happens to be
    # exact; both implementations do the same O(D) float32 reductions in a different order.
    m32 = gpt2(seed, tied, double=False)
    ref = hf_logits(copy.deepcopy(m32).double(), np.arange(T)[None] % 32)[0]
    hf32 = hf_logits(m32, np.arange(T)[None] % 32)[0]
    p32 = from_gpt2(m32, dtype="float32")
    assert p32.wte.dtype == np.float32
    ours, _, _ = tt.forward(p32, np.arange(T) % 32, return_hidden=False)
    assert ours.dtype == np.float32
    eps = np.finfo(np.float32).eps
    hf_err = np.abs(hf32 - ref).max()
    assert hf_err > 0  # float32 really was float32
    assert np.all(np.abs(ours - ref) <= 2 * hf_err + eps * (1 + np.abs(ref)))


def test_untied_head_is_the_transposed_lm_head():
    m = gpt2(3, tied=False)
    p = from_gpt2(m)
    W = m.lm_head.weight.detach().numpy()  # (V, D) nn.Linear
    assert not p.config.tied_head and p.W_head.shape == (16, 32)
    np.testing.assert_array_equal(p.W_head, W.T)
    assert not np.array_equal(W, m.transformer.wte.weight.detach().numpy())


def _perturbed_init(cfg, seed):
    rng = np.random.default_rng(seed)
    p = tt.init_params(cfg, seed)  # non-trivial LN gains and biases too
    return tt.map_parameters(lambda a: (a + 0.2 * rng.standard_normal(a.shape)).astype(a.dtype), p)


def _load_into_hf(p):
    m = GPT2LMHeadModel(GPT2Config(**gpt2_config_kwargs(p.config), **NO_SPECIAL)).eval()
    m = m.double() if p.config.dtype == "float64" else m
    res = m.load_state_dict({k: torch.from_numpy(v) for k, v in to_gpt2_state_dict(p).items()},
                            strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    return m


@given(seed=seeds(), tied=st.booleans(), activation=st.sampled_from(["gelu", "gelu_tanh"]),
       dtype=st.sampled_from(["float32", "float64"]))
def test_round_trip_tiny_hf_tiny_is_exact(seed, tied, activation, dtype):
    cfg = tt.TinyConfig(32, 16, 2, 2, 64, d_hidden=40, tied_head=tied, activation=activation,
                        dtype=dtype, ln_eps=1e-4)
    p = _perturbed_init(cfg, seed)
    m = _load_into_hf(p)
    assert config_from_gpt2(m.config, dtype) == cfg
    back = from_gpt2(m, dtype)
    assert back.config == cfg
    got = dict(tt.named_parameters(back))
    for name, a in tt.named_parameters(p):
        assert got[name].dtype == a.dtype
        np.testing.assert_array_equal(got[name], a, err_msg=name)


@given(seed=seeds(), tied=st.booleans(), activation=st.sampled_from(["gelu", "gelu_tanh"]),
       T=st.integers(1, 12))
def test_init_params_loaded_into_hf_give_refseq_logits(seed, tied, activation, T):
    cfg = tt.TinyConfig(32, 16, 2, 2, 64, tied_head=tied, activation=activation)
    p = _perturbed_init(cfg, seed)
    m = _load_into_hf(p)
    tokens = np.random.default_rng(seed).integers(0, 32, (2, T))
    ours, _, _ = tt.forward(p, tokens, return_hidden=False)
    np.testing.assert_allclose(hf_logits(m, tokens), ours, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("tied", [True, False])
def test_round_trip_hf_tiny_hf_is_exact(dtype, tied):
    m = gpt2(5, tied, double=False)  # float32 weights are exact in float64 too
    sd = to_gpt2_state_dict(from_gpt2(m, dtype))
    want = m.state_dict()
    assert set(sd) == set(want)
    for k, v in want.items():
        assert sd[k].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(sd[k], v.double().numpy(), err_msg=k)


@given(seed=seeds(), dtype=st.sampled_from(["float32", "float64"]),
       P=st.integers(1, 6), tied=st.booleans())
def test_greedy_loop_on_converted_params_equals_hf_generate(seed, dtype, P, tied):
    m = gpt2(seed, tied, double=dtype == "float64")
    lm = TransformerLM(from_gpt2(m, dtype))
    prompt = np.random.default_rng(seed).integers(0, 32, P)
    margin = 1e-9 if dtype == "float64" else 1e-4  # reject near-ties (tie rule: argmax)
    logits, state = lm.start([prompt])
    ours = []
    for _ in range(10):  # a hand-written argmax loop, independent of refseq's decoders
        top2 = np.sort(logits[0])[-2:]
        assume(top2[1] - top2[0] > margin)
        ours.append(int(np.argmax(logits[0])))
        logits, state = lm.step(state, np.array(ours[-1:]))
    with torch.no_grad():
        out = m.generate(torch.from_numpy(prompt)[None], attention_mask=torch.ones(1, P,
                         dtype=torch.long), do_sample=False, max_new_tokens=10)
    assert out[0, P:].tolist() == ours


# ---------------------------------------------------------------- config mapping and errors
def test_config_from_gpt2_maps_every_field():
    hf = GPT2Config(n_layer=3, n_head=4, n_embd=8, vocab_size=11, n_positions=7, n_inner=5,
                    layer_norm_epsilon=1e-3, tie_word_embeddings=False,
                    activation_function="gelu", **NO_SPECIAL)
    want = tt.TinyConfig(11, 8, 3, 4, 7, d_hidden=5, tied_head=False, activation="gelu",
                         ln_eps=1e-3, dtype="float32")
    assert config_from_gpt2(hf, "float32") == want
    assert config_from_gpt2(GPT2Config(**SMALL)).activation == "gelu_tanh"  # GPT-2's gelu_new
    assert config_from_gpt2(GPT2Config(**gpt2_config_kwargs(want)), "float32") == want


@pytest.mark.parametrize("option, value", [
    ("activation_function", "relu"), ("activation_function", "gelu_fast"),
    ("scale_attn_weights", False), ("scale_attn_by_inverse_layer_idx", True),
    ("reorder_and_upcast_attn", True), ("add_cross_attention", True)])
def test_unsupported_config_options_raise_naming_the_option(option, value):
    with pytest.raises(ValueError, match=option):
        config_from_gpt2(GPT2Config(**SMALL, **{option: value}))


def test_other_configs_raise():
    with pytest.raises(ValueError, match="model_type"):
        config_from_gpt2(transformers.LlamaConfig())
    with pytest.raises(TypeError, match="dtype"):
        config_from_gpt2(GPT2Config(**SMALL), dtype="int32")
    rope = tt.TinyConfig(32, 16, 2, 2, 64, rope=True)
    with pytest.raises(ValueError, match="rope"):
        to_gpt2_state_dict(tt.init_params(rope))
    with pytest.raises(TypeError, match="hf_model"):
        from_gpt2(object())


@pytest.fixture(scope="module")
def model_and_config():
    m = gpt2(7, tied=True, double=False)
    return m, config_from_gpt2(m.config)


def test_missing_unexpected_and_misshapen_keys_raise(model_and_config):
    m, cfg = model_and_config
    sd = dict(m.state_dict())
    key = "transformer.h.1.mlp.c_fc.bias"
    with pytest.raises(ValueError, match=f"missing .*{key}"):
        from_gpt2_state_dict({k: v for k, v in sd.items() if k != key}, cfg)
    with pytest.raises(ValueError, match="unexpected .*transformer.h.2.ln_1.weight"):
        from_gpt2_state_dict({**sd, "transformer.h.2.ln_1.weight": sd[key]}, cfg)
    w = "transformer.h.0.attn.c_attn.weight"  # a "fix" by transposing the Conv1D weight
    with pytest.raises(ValueError, match=rf"{w}.*\(16, 48\).*\(48, 16\)"):
        from_gpt2_state_dict({**sd, w: sd[w].T}, cfg)
    with pytest.raises(ValueError, match="missing .*lm_head.weight"):  # untied needs the head
        from_gpt2_state_dict({k: v for k, v in sd.items() if k != "lm_head.weight"},
                             tt.TinyConfig(**{**cfg.__dict__, "tied_head": False}))
    with pytest.raises(TypeError, match="floating"):
        from_gpt2_state_dict({**sd, key: sd[key].long()}, cfg)
    with pytest.raises(TypeError, match="mapping"):
        from_gpt2_state_dict(list(sd.items()), cfg)


def test_tied_config_rejects_a_different_head(model_and_config):
    m, cfg = model_and_config
    sd = dict(m.state_dict())
    with pytest.raises(ValueError, match="lm_head.weight"):
        from_gpt2_state_dict({**sd, "lm_head.weight": sd["lm_head.weight"] + 1}, cfg)


def test_accepted_forms_give_the_same_params(model_and_config):
    m, cfg = model_and_config
    base = dict(tt.named_parameters(from_gpt2_state_dict(m.state_dict(), cfg)))
    sd = dict(m.state_dict())
    buffers = {"transformer.h.0.attn.bias": torch.ones(1, 1, 64, 64, dtype=torch.bool),
               "transformer.h.1.attn.masked_bias": torch.tensor(-1e4)}  # old checkpoints
    no_head = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    bare = dict(m.transformer.state_dict())  # GPT2Model: no "transformer." prefix, no head
    for variant in ({**sd, **buffers}, no_head, bare, {k: v.numpy() for k, v in sd.items()}):
        got = dict(tt.named_parameters(from_gpt2_state_dict(variant, cfg)))
        for name, a in base.items():
            np.testing.assert_array_equal(got[name], a, err_msg=name)
    assert set(gpt2_names(cfg, prefix="")) == set(base)


def test_converted_arrays_never_alias_the_sources(model_and_config):
    m, _ = model_and_config
    p = from_gpt2(m, "float32")  # same dtype: a careless converter would return views
    src = m.transformer.wte.weight.detach().numpy()
    assert not np.shares_memory(p.wte, src)
    sd = to_gpt2_state_dict(p)
    for name, a in tt.named_parameters(p):
        assert not any(np.shares_memory(a, v) for v in sd.values()), name
