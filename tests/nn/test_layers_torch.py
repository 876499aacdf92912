"""Peer cross-check: refseq.nn forward passes and backward passes against torch.nn.functional
and torch.autograd (float64, random cotangents)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq import nn
from refseq.testing.strategies import normal, seeds

torch = pytest.importorskip("torch")
F = torch.nn.functional
RTOL, ATOL = 1e-10, 1e-12  # float64 both sides; only the summation order differs


def assert_matches_torch(ours_fwd, ours_bwd, theirs, args, rng, wrt):
    """Run both sides on ``args`` and compare outputs and the gradients of ``args[i]``, i in wrt.

    ``theirs(*tensors) -> y``; the cotangent ``dy`` is random and shared.
    """
    y, cache = ours_fwd(*args)
    tensors = [
        None if a is None else torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(args)
    ]
    y_t = theirs(*tensors)
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="forward")
    dy = normal(rng, np.shape(y))
    grads = ours_bwd(dy, cache)
    grads_t = torch.autograd.grad(y_t, [tensors[i] for i in wrt], torch.tensor(dy))
    for i, g_t in zip(wrt, grads_t):
        np.testing.assert_allclose(
            grads[i], g_t.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"gradient of argument {i}"
        )


lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@given(seeds(), lead_shapes, st.integers(1, 5), st.integers(1, 5), st.booleans())
def test_linear(seed, lead, D_in, D_out, bias):
    rng = np.random.default_rng(seed)
    args = [
        normal(rng, (*lead, D_in)),
        normal(rng, (D_in, D_out)),
        normal(rng, (D_out,)) if bias else None,
    ]
    assert_matches_torch(
        nn.linear_forward,
        nn.linear_backward,
        lambda x, W, b: F.linear(x, W.T, b),
        args,
        rng,
        [0, 1, 2] if bias else [0, 1],
    )


@given(seeds(), lead_shapes, st.integers(1, 5), st.integers(1, 4))
def test_embedding(seed, lead, V, D):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, (*lead, 4))
    assert_matches_torch(
        lambda E: nn.embedding_forward(ids, E),
        lambda dy, c: nn.embedding_backward(dy, c),
        lambda E: F.embedding(torch.tensor(ids), E),
        [normal(rng, (V, D))],
        rng,
        [0],
    )


@given(seeds(), lead_shapes, st.integers(1, 6))
def test_layer_norm(seed, lead, D):
    rng = np.random.default_rng(seed)
    args = [normal(rng, (*lead, D), scale=2.0), normal(rng, (D,)), normal(rng, (D,))]
    assert_matches_torch(
        nn.layer_norm_forward,
        nn.layer_norm_backward,
        lambda x, g, b: F.layer_norm(x, (D,), g, b, eps=1e-5),
        args,
        rng,
        [0, 1, 2],
    )


@given(seeds(), lead_shapes, st.integers(1, 6))
def test_rms_norm(seed, lead, D):
    rng = np.random.default_rng(seed)
    args = [normal(rng, (*lead, D), scale=2.0), normal(rng, (D,))]
    assert_matches_torch(
        nn.rms_norm_forward,
        nn.rms_norm_backward,
        lambda x, g: F.rms_norm(x, (D,), g, eps=1e-6),
        args,
        rng,
        [0, 1],
    )


ACTS = {
    "gelu": (lambda x: nn.gelu_forward(x), nn.gelu_backward, lambda x: F.gelu(x)),
    "gelu_tanh": (
        lambda x: nn.gelu_forward(x, "tanh"),
        nn.gelu_backward,
        lambda x: F.gelu(x, approximate="tanh"),
    ),
    "silu": (nn.silu_forward, nn.silu_backward, F.silu),
    "tanh": (nn.tanh_forward, nn.tanh_backward, torch.tanh),
    "sigmoid": (nn.sigmoid_forward, nn.sigmoid_backward, torch.sigmoid),
    "relu": (nn.relu_forward, nn.relu_backward, F.relu),
    "softmax": (nn.softmax_forward, nn.softmax_backward, lambda x: F.softmax(x, -1)),
    "log_softmax": (
        nn.log_softmax_forward,
        nn.log_softmax_backward,
        lambda x: F.log_softmax(x, -1),
    ),
}


@pytest.mark.parametrize("name", sorted(ACTS))
@given(seed=seeds(), lead=lead_shapes)
def test_pointwise_and_softmax(name, seed, lead):
    rng = np.random.default_rng(seed)
    x = normal(rng, (*lead, 5), scale=3.0)
    x[..., 0] = 0.0  # the kink of ReLU: both sides use derivative 0 there
    ours_fwd, ours_bwd, theirs = ACTS[name]
    assert_matches_torch(ours_fwd, ours_bwd, theirs, [x], rng, [0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(
    seed=seeds(),
    N=st.integers(1, 8),
    V=st.integers(1, 6),
    smoothing=st.sampled_from([0.0, 0.1, 0.7]),
)
def test_cross_entropy(reduction, seed, N, V, smoothing):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, V, N)
    targets[rng.random(N) < 0.3] = -100
    targets[0] = rng.integers(0, V)  # at least one counted target

    def ours(logits):
        return nn.cross_entropy_forward(
            logits, targets, label_smoothing=smoothing, reduction=reduction
        )

    def theirs(logits):
        return F.cross_entropy(
            logits,
            torch.tensor(targets),
            ignore_index=-100,
            label_smoothing=smoothing,
            reduction=reduction,
        )

    assert_matches_torch(
        ours, nn.cross_entropy_backward, theirs, [normal(rng, (N, V), scale=2.0)], rng, [0]
    )


@given(
    seed=seeds(),
    B=st.integers(1, 2),
    T=st.integers(1, 7),
    K=st.integers(1, 4),
    C_in=st.integers(1, 3),
    C_out=st.integers(1, 3),
    depthwise=st.booleans(),
    bias=st.booleans(),
)
def test_conv1d_causal(seed, B, T, K, C_in, C_out, depthwise, bias):
    """torch: channels first, weight (C_out, C_in / groups, K), causal by left padding K - 1."""
    rng = np.random.default_rng(seed)
    C_out = C_in if depthwise else C_out
    W = normal(rng, (K, C_in) if depthwise else (K, C_in, C_out))
    args = [normal(rng, (B, T, C_in)), W, normal(rng, (C_out,)) if bias else None]

    def theirs(x, W, b):
        w = W.T[:, None, :] if depthwise else W.permute(2, 1, 0)  # (C_out, C_in/groups, K)
        x_pad = F.pad(x.transpose(1, 2), (K - 1, 0))  # (B, C_in, T + K - 1)
        return F.conv1d(x_pad, w, b, groups=C_in if depthwise else 1).transpose(1, 2)

    groups = "depthwise" if depthwise else "dense"
    assert_matches_torch(
        lambda x, W, b: nn.conv1d_forward(x, W, b, groups=groups),
        lambda dy, c: nn.conv1d_backward(dy, c)[:3],
        theirs,
        args,
        rng,
        [0, 1, 2] if bias else [0, 1],
    )


@given(seed=seeds(), lead=lead_shapes, p=st.sampled_from([0.0, 0.3, 0.8]))
def test_dropout_same_mask(seed, lead, p):
    """torch draws its own mask; the same mask is applied as torch's dropout does:
    x * mask / (1 - p)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((*lead, 6)) >= p
    m = torch.tensor(mask, dtype=torch.float64)
    assert_matches_torch(
        lambda x: nn.dropout_forward(x, p, mask=mask),
        nn.dropout_backward,
        lambda x: x * (m / (1 - p)),
        [normal(rng, (*lead, 6))],
        rng,
        [0],
    )


def test_dropout_torch_mask_recovered():
    """Recover torch's own mask from its output (x = 1) and apply it here."""
    torch.manual_seed(0)
    x = np.ones((4, 50))
    y_t = F.dropout(torch.tensor(x), p=0.4, training=True).numpy()
    y, _ = nn.dropout_forward(x, 0.4, mask=y_t != 0)
    np.testing.assert_allclose(y, y_t, rtol=1e-15)


@given(
    seed=seeds(),
    B=st.integers(1, 2),
    T=st.integers(1, 5),
    H=st.integers(1, 2),
    half=st.integers(1, 4),
)
def test_rope_matches_rotate_half(seed, B, T, H, half):
    """The HF/LLaMA formula ``x cos + rotate_half(x) sin`` written in torch, with autograd."""
    rng = np.random.default_rng(seed)
    Dh = 2 * half
    positions = rng.integers(0, 100, (B, T))
    inv_freq = 10000.0 ** (-torch.arange(0, Dh, 2, dtype=torch.float64) / Dh)
    angles = torch.tensor(positions, dtype=torch.float64)[..., None] * inv_freq  # (B, T, Dh/2)
    emb = torch.cat([angles, angles], -1)[:, :, None, :]  # (B, T, 1, Dh)

    def theirs(x):
        x1, x2 = x[..., :half], x[..., half:]
        return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()

    assert_matches_torch(
        lambda x: nn.rope_forward(x, positions),
        nn.rope_backward,
        theirs,
        [normal(rng, (B, T, H, Dh))],
        rng,
        [0],
    )
