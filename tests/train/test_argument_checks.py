"""Hyper-parameters of the optimisers, schedules, clipping, noise and loop are checked: a wrong
kind (str, bool, None, a bare number where a pair is due) is a ``TypeError`` and a wrong value
(NaN, out of range) a ``ValueError``; both name the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refseq.train import adam, clipping, gradient_noise, loop, plateau, schedules, sgd

nan, inf = math.nan, math.inf

CASES = [
    # (id, call, kwargs, error, name in the message)
    ("SGD-lr-str", lambda **k: sgd.SGD(**k), dict(lr="0.1"), TypeError, "lr"),
    ("SGD-lr-neg", lambda **k: sgd.SGD(**k), dict(lr=-0.1), ValueError, "lr"),
    ("SGD-lr-nan", lambda **k: sgd.SGD(**k), dict(lr=nan), ValueError, "lr"),
    ("SGD-lr-bool", lambda **k: sgd.SGD(**k), dict(lr=True), TypeError, "lr"),
    ("SGD-momentum", lambda **k: sgd.SGD(0.1, **k), dict(momentum=nan), ValueError, "momentum"),
    ("SGD-wd-nan", lambda **k: sgd.SGD(0.1, **k), dict(weight_decay=nan), ValueError,
     "weight_decay"),
    ("SGD-wd-inf", lambda **k: sgd.SGD(0.1, **k), dict(weight_decay=inf), ValueError,
     "weight_decay"),
    ("SGD-dampening", lambda **k: sgd.SGD(0.1, **k), dict(dampening="0"), TypeError,
     "dampening"),
    ("SGD-dampening-range", lambda **k: sgd.SGD(0.1, **k), dict(dampening=2.0), ValueError,
     "dampening"),
    ("Adam-betas-scalar", lambda **k: adam.Adam(**k), dict(betas=0.9), TypeError, "betas"),
    ("Adam-betas-triple", lambda **k: adam.Adam(**k), dict(betas=(0.9, 0.9, 0.9)), TypeError,
     "betas"),
    ("Adam-betas-nan", lambda **k: adam.Adam(**k), dict(betas=(0.9, nan)), ValueError,
     r"betas\[1\]"),
    ("Adam-betas-one", lambda **k: adam.Adam(**k), dict(betas=(1.0, 0.9)), ValueError,
     r"betas\[0\]"),
    ("Adam-eps-zero", lambda **k: adam.Adam(**k), dict(eps=0.0), ValueError, "eps"),
    ("Adam-eps-neg", lambda **k: adam.Adam(**k), dict(eps=-1.0), ValueError, "eps"),
    ("Adam-wd-nan", lambda **k: adam.AdamW(**k), dict(weight_decay=nan), ValueError,
     "weight_decay"),
    ("Adam-lr-none", lambda **k: adam.Adam(**k), dict(lr=None), TypeError, "lr"),
    ("clip_grad_norm-str", lambda **k: clipping.clip_grad_norm({"w": np.ones(2)}, **k),
     dict(max_norm="1"), TypeError, "max_norm"),
    ("clip_grad_norm-nan", lambda **k: clipping.clip_grad_norm({"w": np.ones(2)}, **k),
     dict(max_norm=nan), ValueError, "max_norm"),
    ("clip_grad_value-neg", lambda **k: clipping.clip_grad_value({"w": np.ones(2)}, **k),
     dict(clip_value=-1.0), ValueError, "clip_value"),
    ("noise_std-gamma-nan", lambda **k: gradient_noise.noise_std(0, 0.1, **k),
     dict(gamma=nan), ValueError, "gamma"),
    ("noise_std-eta-str", lambda **k: gradient_noise.noise_std(0, **k), dict(eta="0.1"),
     TypeError, "eta"),
    ("GradientNoise-gamma", lambda **k: gradient_noise.GradientNoise(0.1, rng=0, **k),
     dict(gamma=nan), ValueError, "gamma"),
    ("GradientNoise-t0", lambda **k: gradient_noise.GradientNoise(0.1, rng=0, **k),
     dict(t0=1.5), TypeError, "t0"),
    ("GradientNoise-draw_dtype", lambda **k: gradient_noise.GradientNoise(0.1, rng=0, **k),
     dict(draw_dtype=np.int32), TypeError, "draw_dtype"),
    ("add_gradient_noise-t", lambda **k: gradient_noise.add_gradient_noise(
        {"w": np.ones(2)}, eta=0.1, rng=np.random.default_rng(0), **k), dict(t=-1),
     ValueError, "t must"),
    ("NoisyOptimizer-clip_norm", lambda **k: gradient_noise.NoisyOptimizer(
        sgd.SGD(0.1), 0.1, rng=0, **k), dict(clip_norm=-1.0), ValueError, "clip_norm"),
    ("NoisyOptimizer-base", lambda **k: gradient_noise.NoisyOptimizer(rng=0, eta=0.1, **k),
     dict(base=0.1), TypeError, "base"),
    ("Constant-lr", lambda **k: schedules.constant(**k), dict(lr=nan), ValueError, "lr"),
    ("warmup_cosine-steps", lambda **k: schedules.warmup_cosine(0.1, 2, **k),
     dict(total_steps=10.5), TypeError, "total_steps"),
    ("warmup_cosine-lr", lambda **k: schedules.warmup_cosine(total_steps=5, warmup_steps=1,
                                                             **k), dict(lr="1"), TypeError, "lr"),
    ("ReduceOnPlateau-factor", lambda **k: plateau.ReduceOnPlateau(lr=1.0, **k),
     dict(factor=nan), ValueError, "factor"),
    ("ReduceOnPlateau-patience", lambda **k: plateau.ReduceOnPlateau(lr=1.0, **k),
     dict(patience=1.5), TypeError, "patience"),
    ("ReduceOnPlateau-lr", lambda **k: plateau.ReduceOnPlateau(**k), dict(lr="1"), TypeError,
     "lr"),
    ("train-steps", lambda **k: loop.train({"w": np.ones(2)}, None, [], sgd.SGD(0.1), **k),
     dict(steps=2.0), TypeError, "steps"),
    ("train-clip", lambda **k: loop.train({"w": np.ones(2)}, None, [], sgd.SGD(0.1), steps=1,
                                          **k), dict(clip=-1.0), ValueError, "clip"),
    ("train-log_every", lambda **k: loop.train({"w": np.ones(2)}, None, [], sgd.SGD(0.1),
                                               steps=1, **k), dict(log_every=0), ValueError,
     "log_every"),
]


@pytest.mark.parametrize("call,kw,err,name", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_hyper_parameter_is_named(call, kw, err, name):
    with pytest.raises(err, match=name):
        call(**kw)


def test_schedule_step_rejects_non_int_t():
    with pytest.raises(TypeError, match="t must be an integer"):
        schedules.warmup_cosine(0.1, 2, 5)(1.5)


def test_plateau_metric_must_be_a_number():
    sched = plateau.ReduceOnPlateau(lr=1.0)
    with pytest.raises(TypeError, match="metric"):
        sched.step("0.5")
    assert sched.step(np.array(0.5)) == 1.0  # a 0-d array (a loss) is fine


def test_optimiser_rejects_int_grads():
    opt = sgd.SGD(0.1)
    with pytest.raises(TypeError, match=r"grads\['w'\]"):
        opt.step({"w": np.ones(2)}, {"w": np.ones(2, np.int64)})


def test_infinite_clip_means_no_clipping():
    g = {"w": np.array([3.0, 4.0])}
    clipped, total = clipping.clip_grad_norm(g, math.inf)
    assert total == 5.0 and clipped["w"] is g["w"]
