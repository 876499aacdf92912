"""The oracle catches real bugs: deliberately wrong PyTorch implementations fail with a message
naming the case, their correct twins pass, and torch.nn.LSTM / torch.nn.GRU behind a layout
wrapper pass the recurrence contract."""

from __future__ import annotations

import pytest

from refseq.oracle import OracleFailure, check

torch = pytest.importorskip("torch")

FAST = {"adapter": "torch", "max_examples": 1}


# --- linear scan ---------------------------------------------------------------------------------


def scan_loop(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


def scan_h0_one_step_late(a, b, h0):
    """Bug: the carried state enters at step 1 instead of step 0."""
    h, out = torch.zeros_like(h0), []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t] + (a[:, t] * h0 if t == 1 else 0)
        out.append(h)
    return torch.stack(out, dim=1)


def _parallel_scan(a, b, combine):
    """Hillis-Steele inclusive scan of the affine maps (a_t, b_t) along axis 1."""
    T = a.shape[1]
    shift = 1
    while shift < T:
        a_prev = torch.cat([torch.ones_like(a[:, :shift]), a[:, :-shift]], dim=1)
        b_prev = torch.cat([torch.zeros_like(b[:, :shift]), b[:, :-shift]], dim=1)
        a, b = combine(a_prev, b_prev, a, b)
        shift *= 2
    return a, b


def _compose(a1, b1, a2, b2):  # earlier (a1, b1) then later (a2, b2): x -> a2 (a1 x + b1) + b2
    return a1 * a2, a2 * b1 + b2


def _compose_wrong_order(a1, b1, a2, b2):  # bug: the later map applied first
    return a1 * a2, a1 * b2 + b1


def scan_parallel(a, b, h0):
    A, Bc = _parallel_scan(a, b, _compose)
    return A * h0[:, None] + Bc


def scan_parallel_wrong_order(a, b, h0):
    A, Bc = _parallel_scan(a, b, _compose_wrong_order)
    return A * h0[:, None] + Bc


def scan_float16_accumulator(a, b, h0):
    """Bug: the running state is kept in float16."""
    h, out = h0.to(torch.float16), []
    for t in range(a.shape[1]):
        h = a[:, t].to(torch.float16) * h + b[:, t].to(torch.float16)
        out.append(h.to(b.dtype))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("fn", [scan_loop, scan_parallel])
def test_correct_torch_scans_pass(fn):
    report = check(fn, "linear_scan", **FAST)
    assert report.ok and any(c.property == "autograd" for c in report.cases)


@pytest.mark.parametrize("fn, expected", [
    (scan_h0_one_step_late, "linear_scan: property"),
    (scan_parallel_wrong_order, "linear_scan: property"),
    (scan_float16_accumulator, "linear_scan: property"),
])
def test_wrong_torch_scans_fail_naming_the_case(fn, expected):
    with pytest.raises(OracleFailure) as info:
        check(fn, "linear_scan", **FAST)
    message = str(info.value)
    assert expected in message and "dtype" in message and "seed" in message
    assert "worst entry" in message and "replay(" in message


def test_float16_accumulation_fails_in_float32_and_at_large_magnitudes():
    report = check(scan_float16_accumulator, "linear_scan", raise_on_failure=False,
                   autograd=False, **FAST)
    failed = {(c.property, c.dtype) for c in report.failures}
    assert ("random", "float32") in failed and ("large magnitudes", "float32") in failed


# --- recurrence: the LSTM with R^T, and torch.nn.LSTM / GRU ------------------------------------


def lstm_forward(Wx, R, b, states0=None, *, cell="lstm", transpose_R=False):
    """flashrnn_forward for the LSTM in torch; ``transpose_R`` is the bug ``R^T`` for ``R``."""
    B, T, _, N, D = Wx.shape
    if states0 is None:
        states0 = torch.zeros((2, B, N, D), dtype=Wx.dtype)
    h, c = states0[0], states0[1]
    rule = "gnpd,bnp->bgnd" if transpose_R else "gndp,bnp->bgnd"
    hs, cs = [], []
    for t in range(T):
        pre = Wx[:, t] + torch.einsum(rule, R, h) + b
        i, f, z, o = (pre[:, 0].sigmoid(), pre[:, 1].sigmoid(), pre[:, 2].tanh(),
                      pre[:, 3].sigmoid())
        c = f * c + i * z
        h = o * c.tanh()
        hs.append(h)
        cs.append(c)
    states_all = torch.stack([torch.stack(hs, 1), torch.stack(cs, 1)])
    return states_all, states_all[:, :, -1]


def lstm_transposed_R(Wx, R, b, states0=None, *, cell="lstm"):
    return lstm_forward(Wx, R, b, states0, cell=cell, transpose_R=True)


LSTM_ONLY = {"dims": {"cell": "lstm"}, **FAST}


def test_correct_torch_lstm_passes():
    assert check(lstm_forward, "flashrnn_forward", **LSTM_ONLY).ok


def test_transposed_recurrent_matrix_fails():
    with pytest.raises(OracleFailure) as info:
        check(lstm_transposed_R, "flashrnn_forward", **LSTM_ONLY)
    assert "flashrnn_forward: property" in str(info.value) and "'cell': 'lstm'" in str(info.value)


def _torch_rnn(kind, Wx, R, b, states0):
    """Run torch.nn.LSTM / torch.nn.GRU head by head on the contract's layout.

    The contract's ``Wx`` is already projected, so each head's module takes the gates as its
    input with ``weight_ih`` = identity; ``R[g, n]`` (out, in) are the rows of ``weight_hh``.
    Torch's LSTM gates (i, f, g, o) are ours (i, f, z, o); its GRU rows (r, z, n) take
    ``R = (g, r, z)`` as ``(R[1], R[2], R[0])`` and ``b = (g, r, z, n)`` as
    ``bias_ih = (b[1], b[2], b[3])``, ``bias_hh = (0, 0, b[0])``. Stepping one token at a time
    returns every step's states (torch returns only the last ``c``).
    """
    B, T, G, N, D = Wx.shape
    S = 2 if kind == "lstm" else 1
    if states0 is None:
        states0 = torch.zeros((S, B, N, D), dtype=Wx.dtype)
    steps = []
    for n in range(N):
        module = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(G * D, D, batch_first=True)
        module = module.to(Wx.dtype)
        with torch.no_grad():
            module.weight_ih_l0.copy_(torch.eye(G * D, dtype=Wx.dtype))
            if kind == "lstm":
                module.weight_hh_l0.copy_(R[:, n].reshape(4 * D, D))
                module.bias_ih_l0.copy_(b[:, n].reshape(-1))
                module.bias_hh_l0.zero_()
            else:
                module.weight_hh_l0.copy_(R[[1, 2, 0], n].reshape(3 * D, D))
                module.bias_ih_l0.copy_(b[[1, 2, 3], n].reshape(-1))
                module.bias_hh_l0.copy_(torch.cat([torch.zeros(2 * D, dtype=Wx.dtype), b[0, n]]))
            state = tuple(s[:, n][None] for s in states0)  # each (1, B, D)
            per_step = []
            for t in range(T):
                x = Wx[:, t:t + 1, :, n].reshape(B, 1, G * D)
                _, state = module(x, state if kind == "lstm" else state[0])
                state = state if kind == "lstm" else (state,)
                per_step.append(torch.stack([s[0] for s in state]))  # (S, B, D)
        steps.append(torch.stack(per_step, dim=2))  # (S, B, T, D)
    states_all = torch.stack(steps, dim=3)  # (S, B, T, N, D)
    return states_all, states_all[:, :, -1]


def torch_lstm(Wx, R, b, states0=None, *, cell="lstm"):
    return _torch_rnn("lstm", Wx, R, b, states0)


def torch_gru(Wx, R, b, states0=None, *, cell="gru"):
    return _torch_rnn("gru", Wx, R, b, states0)


@pytest.mark.parametrize("fn, cell", [(torch_lstm, "lstm"), (torch_gru, "gru")])
def test_torch_nn_rnns_pass_the_recurrence_contract(fn, cell):
    report = check(fn, "flashrnn_forward", dims={"cell": cell}, autograd=False, **FAST)
    assert report.ok and any(c.property == "carried state" for c in report.cases)


def test_torch_gru_is_not_an_lstm():
    with pytest.raises(OracleFailure):
        check(torch_gru, "flashrnn_forward", dims={"cell": "lstm"}, autograd=False, **FAST)


# --- a missing bias gradient -------------------------------------------------------------------


class _AffineNoBiasGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        return x @ W + b

    @staticmethod
    def backward(ctx, dy):
        x, W = ctx.saved_tensors
        dW = torch.einsum("...i,...j->ij", x, dy)
        return dy @ W.T, dW, None  # bug: no gradient for the bias


def linear_missing_bias_grad(x, W, b):
    return _AffineNoBiasGrad.apply(x, W, b)


def linear_plain(x, W, b):
    return x @ W + b


def test_plain_linear_passes():
    assert check(linear_plain, "linear", **FAST).ok


def test_missing_bias_gradient_fails_in_autograd_case():
    with pytest.raises(OracleFailure) as info:
        check(linear_missing_bias_grad, "linear", **FAST)
    message = str(info.value)
    assert "property 'autograd'" in message and "output 2" in message  # the bias gradient


# --- attention and torch's own layers -----------------------------------------------------------


def attention(q, k, v, mask, *, scaled=True):
    B, T, H, D = q.shape
    s = torch.einsum("bihd,bjhd->bhij", q, k) / (D ** 0.5 if scaled else 1.0)
    allowed = torch.tril(torch.ones(T, T, dtype=torch.bool)) & mask[:, None, None, :]
    p = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
    return torch.einsum("bhij,bjhd->bihd", p, v)


def attention_unscaled(q, k, v, mask):
    return attention(q, k, v, mask, scaled=False)


def test_attention_passes_and_a_missing_scale_fails():
    assert check(attention, "causal_softmax_attention", **FAST).ok
    with pytest.raises(OracleFailure, match="causal_softmax_attention: property"):
        check(attention_unscaled, "causal_softmax_attention", **FAST)


F = torch.nn.functional

# F.gelu and F.layer_norm are left out: torch's float32 GELU loses relative accuracy at small
# negative x (1 + erf cancels) and its float64 layer norm at D = 2 can exceed the bound by ~2x,
# both findings rather than regressions of the oracle.


@pytest.mark.parametrize("name, fn", [
    ("softmax", lambda x: torch.softmax(x, -1)),
    ("log_softmax", lambda x: torch.log_softmax(x, -1)),
    ("rms_norm", lambda x, g: F.rms_norm(x, x.shape[-1:], g, eps=1e-6)),
    ("linear", lambda x, W, b: F.linear(x, W.T, b)),
])
def test_torch_layers_pass_with_their_autograd(name, fn):
    report = check(fn, name, **FAST)
    assert report.ok and any(c.property == "autograd" for c in report.cases)
