"""The tiny transformer rebuilt in PyTorch from its description (docs/models/tiny_transformer.md).

``torch_forward`` is a functional forward over a ``{name: tensor}`` parameter dict named as
:func:`refseq.models.tiny_transformer.named_parameters`; autograd gives its gradients. The peer
test compares logits, hidden states, caches and every gradient with the NumPy reference, and
``refseq bench train`` times a training step of both.
"""

from __future__ import annotations

import math

import numpy as np
import torch

F = torch.nn.functional


def torch_forward(cfg, P, x, pos, mask, past):
    """Independent forward in torch: P {name: tensor}, x (B, T, D), pos (B, T) long,
    mask (B, T, S+T) bool, past (B, L, 2, H, S, Dh) or None."""
    B, T, D = x.shape
    H, Dh = cfg.n_heads, cfg.d_head
    h = x if cfg.rope else x + P["wpe"][pos]
    hidden, kvs = [h], []

    def rope(z):  # (B, H, T, Dh), rotate-half pairing (GPT-NeoX / HF LLaMA)
        theta = cfg.rope_base ** (-torch.arange(0, Dh, 2, dtype=torch.float64) / Dh)
        a = pos.to(torch.float64)[:, None, :, None] * theta  # (B, 1, T, Dh/2)
        cos, sin = torch.cat([a.cos(), a.cos()], -1), torch.cat([a.sin(), a.sin()], -1)
        z1, z2 = z[..., : Dh // 2], z[..., Dh // 2:]
        return z * cos + torch.cat([-z2, z1], -1) * sin

    for l in range(cfg.n_layers):
        b = f"blocks.{l}."
        a = F.layer_norm(h, (D,), P[b + "ln1_gamma"], P[b + "ln1_beta"], cfg.ln_eps)
        qkv = a @ P[b + "attn.W_qkv"] + P[b + "attn.b_qkv"]
        q, k, v = (t.reshape(B, T, H, Dh).transpose(1, 2) for t in qkv.split(D, -1))
        if cfg.rope:
            q, k = rope(q), rope(k)
        if past is not None:
            k = torch.cat([past[:, l, 0], k], dim=2)
            v = torch.cat([past[:, l, 1], v], dim=2)
        kvs.append(torch.stack([k, v], 1))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)
        s = s.masked_fill(~mask[:, None], float("-inf"))
        o = torch.softmax(s, -1) @ v  # (B, H, T, Dh)
        o = o.transpose(1, 2).reshape(B, T, D)
        h = h + o @ P[b + "attn.W_o"] + P[b + "attn.b_o"]
        m = F.layer_norm(h, (D,), P[b + "ln2_gamma"], P[b + "ln2_beta"], cfg.ln_eps)
        u = F.gelu(m @ P[b + "mlp.W_in"] + P[b + "mlp.b_in"],
                   approximate="tanh" if cfg.activation == "gelu_tanh" else "none")
        h = h + u @ P[b + "mlp.W_out"] + P[b + "mlp.b_out"]
        hidden.append(h)
    n = F.layer_norm(h, (D,), P["lnf_gamma"], P["lnf_beta"], cfg.ln_eps)
    logits = n @ (P["wte"].T if cfg.tied_head else P["W_head"])
    return logits, hidden, torch.stack(kvs, 1)


def torch_train_step(cfg, named, lr=1e-3):
    """A closure ``step(tokens (B, T + 1)) -> loss`` training a torch copy of ``named`` with Adam.

    Same objective as :func:`refseq.train.lm.lm_loss_and_grad`: mean next-token cross-entropy
    with the learned positions ``0..T-1`` and a causal mask.
    """
    P = {n: torch.tensor(np.array(a), requires_grad=True) for n, a in named.items()}
    opt = torch.optim.Adam(P.values(), lr=lr)

    def step(tokens):
        tok = torch.from_numpy(np.asarray(tokens))
        inputs, targets = tok[:, :-1], tok[:, 1:]
        B, T = inputs.shape
        x = F.embedding(inputs, P["wte"])
        pos = torch.arange(T).expand(B, T)
        mask = torch.ones(B, T, T, dtype=torch.bool).tril()
        logits, _, _ = torch_forward(cfg, P, x, pos, mask, None)
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step
