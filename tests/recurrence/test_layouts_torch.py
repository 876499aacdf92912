"""Peer cross-check (docs/hot-paths/recurrence.md, "Properties (tests)", the torch row):
torch.nn.LSTM / GRU / RNN (tanh, relu) in float64, outputs and gradients, through the
``*_from_torch`` converters, ``project_inputs`` and the head-wise recurrence. Multi-layer and
bidirectional torch modules are run here as separate single-layer directions (the reverse
direction is the forward engine on time-reversed inputs).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.recurrence import (
    elman_from_torch,
    elman_to_torch,
    flashrnn_backward,
    flashrnn_forward,
    gru_from_torch,
    gru_to_torch,
    lstm_from_torch,
    lstm_to_torch,
    project_inputs,
)
from refseq.testing.strategies import seeds

torch = pytest.importorskip("torch")
RTOL, ATOL = 1e-10, 1e-12  # float64 on both sides

KINDS = {  # name: (torch module factory, cell, converter, gradient converter)
    "lstm": (lambda **k: torch.nn.LSTM(**k), "lstm", lstm_from_torch, lstm_to_torch),
    "gru": (lambda **k: torch.nn.GRU(**k), "gru", gru_from_torch, gru_to_torch),
    "rnn_tanh": (lambda **k: torch.nn.RNN(nonlinearity="tanh", **k), "elman", elman_from_torch,
                 elman_to_torch),
    "rnn_relu": (lambda **k: torch.nn.RNN(nonlinearity="relu", **k), "elman_relu",
                 elman_from_torch, elman_to_torch),
}
PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def run_ours(module, cell, convert, x, states0):
    """Forward of a stacked (bi)directional torch RNN with refseq; returns outputs and a tape.

    ``states0``: list over (layer, direction) of (S, B, H) initial states.
    """
    dirs = 2 if module.bidirectional else 1
    tape, inp = [], x
    last = []
    for layer in range(module.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            params = [getattr(module, p + sfx, None) for p in PARAMS]  # biases may be absent
            W, R, b = convert(*params)
            xin = inp[:, ::-1] if d else inp  # (B, T, I)
            s0 = states0[layer * dirs + d][:, :, None]  # (S, B, N=1, H)
            out, lst, cache = flashrnn_forward(project_inputs(xin, W), R, b, s0, cell=cell,
                                               return_cache=True)
            h = out[0, :, :, 0]  # (B, T, H)
            outs.append(h[:, ::-1] if d else h)
            last.append(lst[:, :, 0])  # (S, B, H)
            tape.append((layer, d, sfx, xin, W, R, b, cache))
        inp = np.concatenate(outs, axis=-1)  # (B, T, dirs*H)
    return inp, last, tape


def backprop_ours(module, cell, to_torch, tape, dy, d_last):
    """Reverse the tape: returns dx, per-(layer, direction) d_states0 and parameter grads."""
    dirs = 2 if module.bidirectional else 1
    H = module.hidden_size
    grads, ds0 = {}, [None] * len(tape)
    for layer in range(module.num_layers - 1, -1, -1):
        d_in = 0
        for d in range(dirs):
            idx = layer * dirs + d
            _, _, sfx, xin, W, R, b, cache = tape[idx]
            dh = dy[..., d * H:(d + 1) * H]
            dh = dh[:, ::-1] if d else dh  # (B, T, H) in processing order
            S = cache["states"].shape[0]
            d_all = np.zeros((S,) + dh.shape[:2] + (1, H))
            d_all[0, :, :, 0] = dh
            d_s0, dWx, dR, db = flashrnn_backward(d_all, d_last[idx][:, :, None], R, b, cache,
                                                  cell=cell)
            dW = np.einsum("btgnd,bti->gndi", dWx, xin)  # project_inputs' weight gradient
            dxin = np.einsum("btgnd,gndi->bti", dWx, W)
            d_in = d_in + (dxin[:, ::-1] if d else dxin)
            ds0[idx] = d_s0[:, :, 0]
            for p, g in zip(PARAMS, to_torch(dW, dR, db)):
                grads[p + sfx] = g
        dy = d_in
    return dy, ds0, grads


@given(st.sampled_from(sorted(KINDS)), seeds(), st.integers(1, 3), st.integers(1, 9),
       st.integers(1, 4), st.integers(1, 5), st.integers(1, 2), st.booleans(), st.booleans())
def test_matches_torch_outputs_and_gradients(kind, seed, B, T, I, H, layers, bidir, bias):
    make, cell, convert, to_torch = KINDS[kind]
    rng = np.random.default_rng(seed)
    module = make(input_size=I, hidden_size=H, num_layers=layers, bidirectional=bidir,
                  bias=bias, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)) * 0.7))
    dirs = 2 if bidir else 1
    S = 2 if kind == "lstm" else 1
    x = rng.standard_normal((B, T, I))
    init = rng.standard_normal((S, layers * dirs, B, H))  # h0 (and c0)

    # torch, with autograd
    xt = torch.tensor(x, requires_grad=True)
    init_t = [torch.tensor(s, requires_grad=True) for s in init]
    y_t, last_t = module(xt, tuple(init_t) if S == 2 else init_t[0])
    last_t = last_t if S == 2 else (last_t,)
    dy = rng.standard_normal(tuple(y_t.shape))
    d_last = rng.standard_normal((S, layers * dirs, B, H))
    loss = (y_t * torch.from_numpy(dy)).sum() + sum(
        (lt * torch.from_numpy(dl)).sum() for lt, dl in zip(last_t, d_last))
    loss.backward()

    # refseq
    states0 = [init[:, k] for k in range(layers * dirs)]
    y, last, tape = run_ours(module, cell, convert, x, states0)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    for s in range(S):
        np.testing.assert_allclose(np.stack([lst[s] for lst in last]),
                                   last_t[s].detach().numpy(), rtol=RTOL, atol=ATOL)
    dx, ds0, grads = backprop_ours(module, cell, to_torch, tape, dy,
                                   [d_last[:, k] for k in range(layers * dirs)])
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg="dx")
    for s in range(S):
        np.testing.assert_allclose(np.stack([g[s] for g in ds0]), init_t[s].grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=f"d_state0[{s}]")
    for name, p in module.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=name)
