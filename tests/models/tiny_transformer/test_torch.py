"""Peer check: a PyTorch reimplementation of the tiny transformer with copied weights gives the
same logits, hidden states, KV cache and gradients (parameters, input embeddings, cached K/V)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.models import tiny_transformer as tt
from refseq.testing.strategies import seeds

torch = pytest.importorskip("torch")
F = torch.nn.functional
from refseq.peers.torch_tiny_transformer import torch_forward  # noqa: E402


@given(seed=seeds(), tied=st.booleans(), rope=st.booleans(), gelu=st.sampled_from(
    ["gelu", "gelu_tanh"]), B=st.integers(1, 2), T=st.integers(1, 6), S=st.integers(0, 3))
def test_logits_and_gradients_match_torch(seed, tied, rope, gelu, B, T, S):
    cfg = tt.TinyConfig(11, 8, 2, 2, 16, tied_head=tied, rope=rope, activation=gelu)
    rng = np.random.default_rng(seed)
    p = tt.init_params(cfg, seed)
    p = tt.map_parameters(lambda a: a + 0.3 * rng.standard_normal(a.shape), p)
    x = rng.standard_normal((B, T, cfg.d_model))
    pos = rng.integers(0, cfg.max_positions, size=(B, T))
    mask = rng.random((B, T, S + T)) < 0.7
    mask[..., S] = True  # torch's softmax gives NaN on rows with no allowed key
    past = rng.standard_normal((B, 2, 2, 2, S, 4)) if S else None

    logits, hidden, kv, cache = tt.forward(p, embeds=x, positions=pos, allow_mask=mask,
                                           past_kv=past, return_cache=True)
    dl = rng.standard_normal(logits.shape)
    dkv = rng.standard_normal(kv.shape)
    g = tt.backward(p, cache, dl, d_new_kv=dkv)

    P = {n: torch.tensor(a, requires_grad=True) for n, a in tt.named_parameters(p)}
    xt = torch.tensor(x, requires_grad=True)
    pt = torch.tensor(past, requires_grad=True) if S else None
    lt, ht, kvt = torch_forward(cfg, P, xt, torch.from_numpy(pos), torch.from_numpy(mask), pt)
    ((lt * torch.from_numpy(dl)).sum() + (kvt * torch.from_numpy(dkv)).sum()).backward()

    close = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(logits, lt.detach().numpy(), **close)
    np.testing.assert_allclose(kv, kvt.detach().numpy(), **close)
    for a, b in zip(hidden, ht):
        np.testing.assert_allclose(a, b.detach().numpy(), **close)
    for n, a in tt.named_parameters(g.params):  # wte is unused (embeds given) unless tied
        want = np.zeros_like(a) if P[n].grad is None else P[n].grad.numpy()
        np.testing.assert_allclose(a, want, err_msg=n, **close)
    np.testing.assert_allclose(g.embeds, xt.grad.numpy(), **close)
    if S:
        np.testing.assert_allclose(g.past_kv, pt.grad.numpy(), **close)


def test_token_path_matches_torch_embedding():
    cfg = tt.TinyConfig(11, 8, 2, 2, 16, tied_head=True)
    p = tt.init_params(cfg, 5)
    tokens = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    logits, _, _, cache = tt.forward(p, tokens, return_cache=True)
    dl = np.random.default_rng(0).standard_normal(logits.shape)
    g = tt.backward(p, cache, dl)
    P = {n: torch.tensor(a, requires_grad=True) for n, a in tt.named_parameters(p)}
    tok = torch.from_numpy(tokens)
    x = F.embedding(tok, P["wte"])
    pos = torch.arange(5).expand(2, 5)
    lt, _, _ = torch_forward(cfg, P, x, pos, torch.ones(2, 5, 5, dtype=torch.bool).tril(), None)
    (lt * torch.from_numpy(dl)).sum().backward()
    np.testing.assert_allclose(logits, lt.detach().numpy(), rtol=1e-10, atol=1e-10)
    for n, a in tt.named_parameters(g.params):  # wte collects lookup and tied-head gradients
        np.testing.assert_allclose(a, P[n].grad.numpy(), err_msg=n, rtol=1e-10, atol=1e-10)
