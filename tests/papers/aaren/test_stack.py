"""The Aaren block and stack (arXiv 2405.13956, Sec. 3.3) and their streaming step; properties
10 and 11 of docs/papers/aaren.md, "How each property is tested", at the level of the stack."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.aaren.layer import softmax_state_init
from refseq.papers.aaren.stack import (
    AarenBlockParams,
    aaren_block,
    aaren_stack,
    aaren_stack_step,
    init_aaren_stack_params,
)
from refseq.testing import assert_close
from refseq.testing import strategies as S


def _randomise(rng, params_list):
    """Random (not unit/zero) LayerNorm parameters and biases, so every term is exercised."""
    out = []
    for p in params_list:
        a = p.aaren
        a = a._replace(b_k=S.normal(rng, a.b_k.shape), b_v=S.normal(rng, a.b_v.shape),
                       b_o=S.normal(rng, a.b_o.shape))
        out.append(p._replace(
            ln_1_gamma=1 + 0.3 * S.normal(rng, p.ln_1_gamma.shape),
            ln_1_beta=0.3 * S.normal(rng, p.ln_1_beta.shape), aaren=a,
            ln_2_gamma=1 + 0.3 * S.normal(rng, p.ln_2_gamma.shape),
            ln_2_beta=0.3 * S.normal(rng, p.ln_2_beta.shape),
            b_1=0.3 * S.normal(rng, p.b_1.shape), b_2=0.3 * S.normal(rng, p.b_2.shape)))
    return out


@st.composite
def stacks(draw, T=(1, 33)):
    """(params_list, x (B, T, D), mask or None, rng) with L in [1, 3] and small widths."""
    rng = np.random.default_rng(draw(S.seeds()))
    B, T = draw(st.integers(1, 3)), draw(S.lengths(*T))
    L, D, H = draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 3))
    Dk, Dv, F = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 12))
    params = _randomise(rng, init_aaren_stack_params(rng, L, D, H, Dk, Dv, F))
    mask = S.masks(rng, (B, T)) if draw(st.booleans()) else None
    return params, S.normal(rng, (B, T, D)), mask, rng


def assert_close_1e10(actual, desired):
    """docs/papers/aaren.md, property 10: float64 to 1e-10 (relative and absolute), array by
    array."""
    for a, d in zip(actual, desired) if isinstance(desired, tuple) else [(actual, desired)]:
        assert_close(a, d, atol=1e-10 * (1 + np.abs(d)))


@given(stack=stacks())
def test_10_streaming_step_equals_the_whole_sequence(stack):
    params, x, mask, _ = stack
    y, states = aaren_stack(params, x, mask)
    step_states, ys = None, []
    for t in range(x.shape[1]):
        y_t, step_states = aaren_stack_step(params, x[:, t], step_states,
                                            None if mask is None else mask[:, t])
        ys.append(y_t)
    assert_close_1e10(np.stack(ys, axis=1), y)
    for a, b in zip(step_states, states):
        assert_close_1e10(tuple(a), tuple(b))


@given(stack=stacks(T=(2, 33)), data=st.data())
def test_10_outputs_up_to_k_ignore_tokens_after_k(stack, data):
    """Causality: perturbing tokens k+1..T leaves outputs 1..k bitwise unchanged."""
    params, x, mask, rng = stack
    T = x.shape[1]
    k = data.draw(st.integers(1, T - 1))
    x2 = x.copy()
    x2[:, k:] += 10 * S.normal(rng, x2[:, k:].shape)
    y, _ = aaren_stack(params, x, mask)
    y2, _ = aaren_stack(params, x2, mask)
    assert np.array_equal(y[:, :k], y2[:, :k])
    assert not np.allclose(y[:, k:], y2[:, k:])


@given(stack=stacks(T=(2, 33)), data=st.data())
def test_two_calls_with_carried_states_equal_one_call(stack, data):
    params, x, mask, _ = stack
    cut = data.draw(st.integers(1, x.shape[1] - 1))
    y, states = aaren_stack(params, x, mask)
    y1, s1 = aaren_stack(params, x[:, :cut], None if mask is None else mask[:, :cut])
    y2, s2 = aaren_stack(params, x[:, cut:], None if mask is None else mask[:, cut:], s1)
    assert_close_1e10(np.concatenate([y1, y2], axis=1), y)
    for a, b in zip(s2, states):
        assert_close_1e10(tuple(a), tuple(b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_11_dtypes_state_shapes_and_empty_input(dtype):
    rng = np.random.default_rng(0)
    B, T, L, D, H, Dk, Dv = 2, 5, 3, 6, 2, 3, 4
    params = init_aaren_stack_params(rng, L, D, H, Dk, Dv)  # float64 parameters
    x = S.normal(rng, (B, T, D), dtype)
    y, states = aaren_stack(params, x)
    assert y.shape == (B, T, D) and y.dtype == dtype and len(states) == L
    for s in states:
        assert [a.shape for a in s] == [(B, H), (B, H), (B, H, Dv)]
        assert all(a.dtype == dtype for a in s)
    y_t, states = aaren_stack_step(params, x[:, 0], states)
    assert y_t.shape == (B, D) and y_t.dtype == dtype
    y, empty_states = aaren_stack(params, x[:, :0])
    assert y.shape == (B, 0, D)
    for s in empty_states:
        assert all(np.array_equal(a, b) for a, b in zip(s, softmax_state_init(B, H, Dv, dtype)))
    y, same = aaren_stack(params, x[:, :0], states=states)
    for s, s0 in zip(same, states):
        assert all(np.array_equal(a, b) for a, b in zip(s, s0))


def test_bad_input_raises():
    rng = np.random.default_rng(0)
    params = init_aaren_stack_params(rng, 2, 4, 2, 3, 3)
    x = np.zeros((1, 3, 4))
    with pytest.raises(TypeError, match="params_list must be a non-empty list"):
        aaren_stack([], x)
    with pytest.raises(ValueError, match="states must be a list of 2"):
        aaren_stack(params, x, states=[None])
    with pytest.raises(TypeError, match="block params must be AarenBlockParams"):
        aaren_block(tuple(params[0]), x)
    with pytest.raises(ValueError, match="x must have shape"):
        aaren_stack(params, np.zeros((3, 4)))
    assert isinstance(params[0], AarenBlockParams)


# Peer: the same block composed from PyTorch's own layers ----------------------------------


def _torch_stack(torch, params, x, dtype):
    """x + W_o concat_h SDPA(q_h broadcast, K_h, V_h, causal), then + FFN(LN(x)), in torch."""
    F = torch.nn.functional

    def t(a):
        return torch.from_numpy(np.asarray(a, dtype))

    B, T, D = x.shape
    h = t(x)
    for p in params:
        a = p.aaren
        H, Dk = a.q.shape
        Dv = a.W_v.shape[1] // H
        n = F.layer_norm(h, (D,), t(p.ln_1_gamma), t(p.ln_1_beta))
        K = (n @ t(a.W_k) + t(a.b_k)).reshape(B, T, H, Dk).transpose(1, 2)  # (B, H, T, Dk)
        V = (n @ t(a.W_v) + t(a.b_v)).reshape(B, T, H, Dv).transpose(1, 2)  # (B, H, T, Dv)
        qb = t(a.q)[None, :, None, :].expand(B, H, T, Dk)  # (B, H, T, Dk)
        o = F.scaled_dot_product_attention(qb, K, V, is_causal=True)  # scale 1/sqrt(Dk)
        h = h + o.transpose(1, 2).reshape(B, T, H * Dv) @ t(a.W_o) + t(a.b_o)  # (B, T, D)
        n = F.layer_norm(h, (D,), t(p.ln_2_gamma), t(p.ln_2_beta))
        h = h + F.gelu(n @ t(p.W_1) + t(p.b_1), approximate="none") @ t(p.W_2) + t(p.b_2)
    return h.numpy()


@given(stack=stacks(T=(1, 17)))
def test_peer_torch_block_built_from_torch_layers(stack):
    torch = pytest.importorskip("torch")
    params, x, _, _ = stack
    desired = _torch_stack(torch, params, x, np.float64)
    y, _ = aaren_stack(params, x)
    assert_close(y, desired, atol=1e-12 * (1 + np.abs(desired)))
