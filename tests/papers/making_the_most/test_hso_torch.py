"""Peer check of the HSO cache gradient: refseq's ``dNLL_i / dC`` equals torch autograd through
Hugging Face ``GPT2LMHeadModel`` with the same weights (float64, eval mode).

The cache enters HF as a ``DynamicCache`` built from leaf tensors with ``requires_grad``; the
next segment's summed NLL is back-propagated to them. Transformers 5.x takes the cache as
``cache=`` (``past_key_values=`` is deprecated, and a legacy tuple of ``(k, v)`` pairs is no
longer accepted in 5.25); the keyword is picked from the forward's signature. HF derives the
positions of the new tokens from the cache length, which matches refseq's absolute positions
here (the cache holds tokens ``0 .. S-1``).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from refseq.models.tiny_transformer import TinyConfig, forward, init_params  # noqa: E402
from refseq.models.tiny_transformer.hf import (  # noqa: E402
    gpt2_config_kwargs,
    to_gpt2_state_dict,
)
from refseq.papers.making_the_most.hso import segment_nll_and_grad  # noqa: E402

CFG = TinyConfig(vocab_size=11, d_model=12, n_layers=2, n_heads=3, max_positions=32)
fast = settings(deadline=None, max_examples=6)


def _hf_model(params):
    kw = gpt2_config_kwargs(params.config) | dict(bos_token_id=None, eos_token_id=None,
                                                  attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**kw)).double().eval()
    sd = {k: torch.from_numpy(v) for k, v in to_gpt2_state_dict(params).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.endswith(".attn.bias") for k in missing)
    return model


def _hf_segment_nll(model, k, v, seg, targets):
    """Summed NLL of ``targets`` after ``seg`` given per-layer keys/values (1, H, S, Dh)."""
    cache = transformers.DynamicCache(config=model.config)
    for l in range(len(k)):
        cache.update(k[l], v[l], l)
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(input_ids=torch.from_numpy(seg)[None], use_cache=True, **{key: cache})
    lp = torch.log_softmax(out.logits[0, :len(targets)], dim=-1)  # (s', V)
    return -lp[torch.arange(len(targets)), torch.from_numpy(targets)].sum()


def _case(seed, S, s):
    params = init_params(CFG, seed)
    tok = np.random.default_rng(seed).integers(0, CFG.vocab_size, S + s + 1)
    seg, targets, pos = tok[S:S + s], tok[S + 1:S + s + 1], np.arange(S, S + s)
    _, hidden, kv = forward(params, tokens=tok[:S])  # kv (L, 2, H, S, Dh)
    return params, seg, targets, pos, hidden, kv


@fast
@given(st.integers(0, 10**6), st.integers(1, 9), st.integers(1, 6))
def test_kv_cache_gradient_equals_torch_autograd(seed, S, s):
    params, seg, targets, pos, _, kv = _case(seed, S, s)
    nll, g, _ = segment_nll_and_grad(params, seg, targets, pos, kv, np.arange(S), "kv")
    model = _hf_model(params)
    k = [torch.tensor(kv[l, 0][None], requires_grad=True) for l in range(CFG.n_layers)]
    v = [torch.tensor(kv[l, 1][None], requires_grad=True) for l in range(CFG.n_layers)]
    loss = _hf_segment_nll(model, k, v, seg, targets)
    loss.backward()
    want = np.stack([np.stack([k[l].grad[0].numpy(), v[l].grad[0].numpy()])
                     for l in range(CFG.n_layers)])  # (L, 2, H, S, Dh)
    np.testing.assert_allclose(nll.sum(), loss.item(), rtol=1e-12)
    np.testing.assert_allclose(g, want, rtol=0, atol=1e-10)
    assert np.abs(want).max() > 1e-3  # a gradient that could be wrong


@fast
@given(st.integers(0, 10**6), st.integers(1, 9), st.integers(1, 6))
def test_hidden_cache_gradient_equals_torch_autograd(seed, S, s):
    """``target="hidden"``: HF's own ``ln_1`` and ``c_attn`` rebuild K, V from leaf hidden states
    ``h^(l-1)`` (1, S, D), so the gradient also checks :func:`kv_from_hidden_backward`."""
    params, seg, targets, pos, hidden, _ = _case(seed, S, s)
    h = np.stack(hidden[:-1])  # (L, S, D)
    _, g, _ = segment_nll_and_grad(params, seg, targets, pos, h, np.arange(S), "hidden")
    model = _hf_model(params)
    H, Dh, D = CFG.n_heads, CFG.d_head, CFG.d_model
    leaves = [torch.tensor(h[l][None], requires_grad=True) for l in range(CFG.n_layers)]
    k, v = [], []
    for l, blk in enumerate(model.transformer.h):
        qkv = blk.attn.c_attn(blk.ln_1(leaves[l]))  # (1, S, 3D): [q | k | v]
        k.append(qkv[..., D:2 * D].reshape(1, S, H, Dh).transpose(1, 2))  # (1, H, S, Dh)
        v.append(qkv[..., 2 * D:].reshape(1, S, H, Dh).transpose(1, 2))
    _hf_segment_nll(model, k, v, seg, targets).backward()
    want = np.stack([x.grad[0].numpy() for x in leaves])  # (L, S, D)
    np.testing.assert_allclose(g, want, rtol=0, atol=1e-10)
    assert np.abs(want).max() > 1e-3
