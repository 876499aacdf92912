"""Optimisers, clipping, schedules and the parameter helper.

Hand-computed examples: the expected numbers are worked out from the update formulas by hand
(written as literals and elementary arithmetic here), independently of the code. Peer checks run
the same random problems through torch.optim (float64) for several steps.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.testing.strategies import seeds
from refseq.train import (
    SGD,
    Adam,
    AdamW,
    clip_grad_norm,
    clip_grad_value,
    constant,
    global_norm,
    warmup_cosine,
)
from refseq.train.base import Optimizer
from refseq.train.params import as_param_dict


def run_steps(opt, p0, grads_seq):
    params = {"p": np.array(p0, dtype=np.float64)}
    out = []
    for g in grads_seq:
        opt.step(params, {"p": np.array(g, dtype=np.float64)})
        out.append(params["p"].copy())
    return out


# --- hand-computed steps -----------------------------------------------------------------------

def test_sgd_plain_by_hand():
    assert run_steps(SGD(0.1), 1.0, [0.5, -1.0]) == [0.95, 0.95 + 0.1]


def test_sgd_momentum_by_hand():
    # buf0 = g0 = 1 -> p = 1 - 0.1 = 0.9; buf1 = 0.9*1 + 2 = 2.9 -> p = 0.9 - 0.29 = 0.61;
    # buf2 = 0.9*2.9 + 0 = 2.61 -> p = 0.61 - 0.261 = 0.349
    out = run_steps(SGD(0.1, momentum=0.9), 1.0, [1.0, 2.0, 0.0])
    np.testing.assert_allclose(out, [0.9, 0.61, 0.349], rtol=1e-15)


def test_sgd_nesterov_by_hand():
    # buf0 = 1, u0 = 1 + 0.9*1 = 1.9 -> p = 0.81; buf1 = 2.9, u1 = 2 + 0.9*2.9 = 4.61 -> 0.349
    out = run_steps(SGD(0.1, momentum=0.9, nesterov=True), 1.0, [1.0, 2.0])
    np.testing.assert_allclose(out, [0.81, 0.349], rtol=1e-15)


def test_sgd_weight_decay_and_dampening_by_hand():
    # d = 1 + 0.1*2 = 1.2 -> p = 2 - 0.12 = 1.88
    out = run_steps(SGD(0.1, weight_decay=0.1), 2.0, [1.0])
    np.testing.assert_allclose(out, [1.88], rtol=1e-15)
    # dampening 0.5: buf0 = 1 (no dampening on the first step) -> 0.9;
    # buf1 = 0.9*1 + 0.5*2 = 1.9 -> 0.9 - 0.19 = 0.71
    out = run_steps(SGD(0.1, momentum=0.9, dampening=0.5), 1.0, [1.0, 2.0])
    np.testing.assert_allclose(out, [0.9, 0.71], rtol=1e-15)


def test_adam_by_hand():
    # step 1, g = 2: m = 0.2, v = 0.004, m_hat = 0.2/0.1 = 2, v_hat = 0.004/0.001 = 4
    p1 = 1.0 - 0.1 * 2.0 / (2.0 + 1e-8)
    # step 2, g = -1: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996,
    # 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
    p2 = p1 - 0.1 * (0.08 / 0.19) / (math.sqrt(0.004996 / 0.001999) + 1e-8)
    out = run_steps(Adam(0.1), 1.0, [2.0, -1.0])
    np.testing.assert_allclose(out, [p1, p2], rtol=1e-14)


def test_adam_coupled_and_adamw_decoupled_decay_by_hand():
    # Adam, weight_decay 0.5: g' = 2 + 0.5*1 = 2.5, first step moves lr * 2.5/(2.5 + eps)
    np.testing.assert_allclose(run_steps(Adam(0.1, weight_decay=0.5), 1.0, [2.0]),
                               [1.0 - 0.1 * 2.5 / (2.5 + 1e-8)], rtol=1e-15)
    # AdamW: p <- 1 * (1 - 0.1*0.5) = 0.95, then the plain Adam step 0.1 * 2/(2 + eps)
    np.testing.assert_allclose(run_steps(AdamW(0.1, weight_decay=0.5), 1.0, [2.0]),
                               [0.95 - 0.1 * 2.0 / (2.0 + 1e-8)], rtol=1e-15)
    assert AdamW().weight_decay == 0.01 and Adam().weight_decay == 0.0  # torch defaults


def test_clip_grad_norm_by_hand():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}  # global norm 5
    clipped, total = clip_grad_norm(g, 1.0)
    assert total == 5.0
    np.testing.assert_allclose(clipped["a"], [3.0 / (5.0 + 1e-6), 0.0], rtol=1e-15)
    np.testing.assert_allclose(clipped["b"], [4.0 / (5.0 + 1e-6)], rtol=1e-15)
    assert g["a"][0] == 3.0  # inputs untouched
    same, _ = clip_grad_norm(g, 10.0)
    assert same["a"] is g["a"] and same["b"] is g["b"]  # nothing to scale: no copy
    np.testing.assert_array_equal(clip_grad_value(g, 3.5)["b"], [3.5])


def test_schedules_by_hand():
    s = warmup_cosine(1.0, warmup_steps=2, total_steps=6, min_lr=0.1)
    expected = [0.5, 1.0, 1.0, 0.1 + 0.45 * (1 + math.cos(math.pi / 4)), 0.55,
                0.1 + 0.45 * (1 + math.cos(3 * math.pi / 4)), 0.1, 0.1]
    np.testing.assert_allclose([s(t) for t in range(8)], expected, rtol=1e-15)
    assert constant(0.3)(0) == constant(0.3)(10**6) == 0.3
    with pytest.raises(ValueError):
        warmup_cosine(1.0, 5, 3)


# --- peers ---------------------------------------------------------------------------------------

def _problem(seed, steps=5):
    rng = np.random.default_rng(seed)
    shapes = {"W": (3, 4), "b": (4,), "s": ()}
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s) * 3 for k, s in shapes.items()} for _ in range(steps)]
    return params, grads


def _torch_run(torch_opt_cls, params, grads, **kw):
    torch = pytest.importorskip("torch")
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    opt = torch_opt_cls(list(tp.values()), **kw)
    for g in grads:
        for k, p in tp.items():
            p.grad = torch.tensor(g[k], dtype=torch.float64)
        opt.step()
    return {k: p.detach().numpy() for k, p in tp.items()}


def _ours(opt, params, grads):
    params = {k: v.copy() for k, v in params.items()}
    for g in grads:
        opt.step(params, g)
    return params


@given(seed=seeds(), momentum=st.sampled_from([0.0, 0.9]), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 0.01]), lr=st.floats(1e-3, 0.5))
def test_sgd_matches_torch(seed, momentum, nesterov, wd, lr):
    torch = pytest.importorskip("torch")
    nesterov = nesterov and momentum > 0
    params, grads = _problem(seed)
    want = _torch_run(torch.optim.SGD, params, grads, lr=lr, momentum=momentum,
                      nesterov=nesterov, weight_decay=wd)
    got = _ours(SGD(lr, momentum=momentum, nesterov=nesterov, weight_decay=wd), params, grads)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-13, atol=1e-14)


@given(seed=seeds(), decoupled=st.booleans(), wd=st.sampled_from([0.0, 0.1]),
       lr=st.floats(1e-3, 0.1), b1=st.sampled_from([0.0, 0.9]), b2=st.sampled_from([0.5, 0.999]))
def test_adam_and_adamw_match_torch(seed, decoupled, wd, lr, b1, b2):
    torch = pytest.importorskip("torch")
    params, grads = _problem(seed)
    cls, ours = (torch.optim.AdamW, AdamW) if decoupled else (torch.optim.Adam, Adam)
    want = _torch_run(cls, params, grads, lr=lr, betas=(b1, b2), eps=1e-8, weight_decay=wd)
    got = _ours(ours(lr, betas=(b1, b2), eps=1e-8, weight_decay=wd), params, grads)
    for k in params:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-14)


@given(seed=seeds(), max_norm=st.floats(0.01, 100.0))
def test_clip_grad_norm_matches_torch(seed, max_norm):
    torch = pytest.importorskip("torch")
    _, grads = _problem(seed, steps=1)
    g = grads[0]
    tp = [torch.zeros(v.shape, dtype=torch.float64, requires_grad=True) for v in g.values()]
    for p, v in zip(tp, g.values()):
        p.grad = torch.tensor(v, dtype=torch.float64)
    total_t = torch.nn.utils.clip_grad_norm_(tp, max_norm)
    clipped, total = clip_grad_norm(g, max_norm)
    np.testing.assert_allclose(total, float(total_t), rtol=1e-14)
    for k, p in zip(g, tp):
        np.testing.assert_allclose(clipped[k], p.grad.numpy(), rtol=1e-14, atol=1e-300)


# --- structure ---------------------------------------------------------------------------------

class Layer(NamedTuple):
    W: np.ndarray
    b: np.ndarray | None


def test_as_param_dict_is_a_view_so_updates_reach_the_container():
    layer = Layer(np.ones((2, 2)), None)
    model = {"enc": layer, "head": [np.zeros(3)]}
    d = as_param_dict(model)
    assert sorted(d) == ["enc.W", "head.0"]
    SGD(0.5).step(d, {"enc.W": np.ones((2, 2)), "head.0": np.ones(3)})
    np.testing.assert_array_equal(layer.W, 0.5)
    np.testing.assert_array_equal(model["head"][0], -0.5)
    with pytest.raises(TypeError, match="must be an ndarray"):
        as_param_dict({"x": 1.0})


def test_mismatched_grads_are_rejected_by_name():
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        SGD(0.1).step({"a": np.zeros(1), "b": np.zeros(1)}, {"a": np.zeros(1)})
    with pytest.raises(ValueError, match="grads\\['a'\\] has shape"):
        SGD(0.1).step({"a": np.zeros(1)}, {"a": np.zeros(2)})


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.9), lambda: AdamW(0.01)])
def test_state_dict_resumes_bit_for_bit(make):
    params, grads = _problem(3, steps=6)
    a = make()
    pa = _ours(a, params, grads[:3])
    sd = a.state_dict()
    pb = {k: v.copy() for k, v in pa.items()}
    _ours_inplace = lambda opt, p, gs: [opt.step(p, g) for g in gs]  # noqa: E731
    _ours_inplace(a, pa, grads[3:])
    b = make()
    b.load_state_dict(sd)
    _ours_inplace(b, pb, grads[3:])
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])


def test_float32_params_stay_float32():
    p = {"w": np.ones(3, np.float32)}
    for opt in (SGD(0.1, momentum=0.9), Adam(0.1), AdamW(0.1)):
        opt.step(p, {"w": np.ones(3, np.float64)})
        assert p["w"].dtype == np.float32


def test_global_norm_of_empty_and_scalar():
    assert global_norm({}) == 0.0
    assert global_norm({"s": np.array(-3.0), "v": np.array([4.0])}) == 5.0


def test_every_optimiser_is_an_optimizer_and_keeps_the_parameter_structure():
    before = {"w": np.ones((2, 3)), "b": np.zeros(3)}
    for opt in (SGD(0.1), Adam(0.1), AdamW(0.1)):
        assert isinstance(opt, Optimizer)
        params = as_param_dict({k: v.copy() for k, v in before.items()})
        grads = {k: np.ones_like(v) for k, v in params.items()}
        new = opt.step(params, grads)  # in place, returns params
        assert new is params and all(new[k].shape == before[k].shape for k in before)
        assert all((new[k] < before[k]).all() for k in before)  # descent on +1 gradients
