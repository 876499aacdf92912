"""ReduceOnPlateau: hand-computed rate sequences, torch's ReduceLROnPlateau as a peer, resume,
and bad inputs.

The hand-computed cases spell out the rule of the module docstring step by step; the peer check
feeds the same metric sequences (ties, near-threshold values, NaN) to torch (float64) and
requires the same rate after every step, bit for bit (the arithmetic is the same).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.train.plateau import ReduceOnPlateau
from refseq.train.sgd import SGD


def rates(metrics, **kw):
    s = ReduceOnPlateau(lr=kw.pop("lr", 1.0), **kw)
    return [s.step(m) for m in metrics]


def test_patience_by_hand():
    # 5 best; 4 best; 4 bad 1; 4 bad 2 > 1 -> 0.5; 4 bad 1; 3 best; 3 bad 1; 3 bad 2 -> 0.25
    assert rates([5, 4, 4, 4, 4, 3, 3, 3], factor=0.5, patience=1, threshold=0.0) == [
        1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]


def test_relative_threshold_by_hand():
    # best 1.0; improvement needs < 1.0 * (1 - 1e-4) = 0.9999: 0.99995 and 0.99992 are bad
    # (patience 0 -> reduce at each), 0.99989 is better
    assert rates([1.0, 0.99995, 0.99992, 0.99989], factor=0.1, patience=0) == [
        1.0, 0.1, 0.1 * 0.1, 0.1 * 0.1]


def test_cooldown_min_lr_and_eps_by_hand():
    # constant metric, patience 0, cooldown 2: reduce, two ignored steps, reduce (floored at
    # min_lr 0.3), two ignored, then 0.3 -> max(0.15, 0.3) = 0.3: no change
    assert rates([1.0] * 8, factor=0.5, patience=0, cooldown=2, min_lr=0.3) == [
        1, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3]
    # 1e-9 -> 5e-10 is a change below eps = 1e-8: skipped
    assert rates([1.0, 1.0, 1.0], lr=1e-9, factor=0.5, patience=0) == [1e-9] * 3


def test_max_mode_absolute_threshold_and_nan_by_hand():
    # best 1; 1.4 not > 1.5 -> 0.5; 1.6 > 1.5 best; 2.0 not > 2.1 -> 0.25
    assert rates([1, 1.4, 1.6, 2.0], mode="max", threshold_mode="abs", threshold=0.5,
                 factor=0.5, patience=0) == [1, 0.5, 0.5, 0.25]
    assert rates([1.0, math.nan], factor=0.5, patience=0) == [1, 0.5]  # NaN is never better


def test_official_recoding_setting_never_improves():
    # tenacious-toucan: threshold=100 (rel): best * (1 - 100) = -inf at first, then < 0, so
    # no perplexity is ever "better": the rate falls by 4x every patience + 1 evaluations
    assert rates([5, 4, 3, 2, 1, 0.5], factor=0.25, patience=2, threshold=100) == [
        1, 1, 0.25, 0.25, 0.25, 0.0625]


def test_drives_an_optimizer_and_respects_outside_changes():
    opt = SGD(20.0)
    s = ReduceOnPlateau(opt, factor=0.25, patience=0)
    s.step(3.0)
    assert s.step(3.0) == opt.lr == 5.0
    opt.lr = 8.0  # changed elsewhere: the next reduction starts from it
    assert s.step(3.0) == opt.lr == 2.0


@given(ms=st.lists(st.sampled_from([1.0, 2.0, 2.5, 3.0, math.nan]), min_size=2, max_size=20),
       cut=st.integers(0, 20), patience=st.integers(0, 2), cooldown=st.integers(0, 2))
def test_state_dict_resume_equals_uninterrupted(ms, cut, patience, cooldown):
    kw = dict(factor=0.5, patience=patience, cooldown=cooldown, min_lr=0.01)
    full = rates(ms, **kw)
    a = ReduceOnPlateau(lr=1.0, **kw)
    first = [a.step(m) for m in ms[:cut]]
    b = ReduceOnPlateau(SGD(123.0), factor=0.9)
    b.load_state_dict(a.state_dict())
    assert b.optimizer.lr == a.lr
    assert first + [b.step(m) for m in ms[cut:]] == full


@given(metrics=st.lists(st.one_of(st.sampled_from([0.0, 1.0, 1.00005, 0.99995, 2.0, -1.0,
                                                   math.nan]),
                                  st.integers(-3, 3).map(float)), min_size=1, max_size=30),
       mode=st.sampled_from(["min", "max"]), threshold_mode=st.sampled_from(["rel", "abs"]),
       factor=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]), patience=st.integers(0, 3),
       cooldown=st.integers(0, 3), threshold=st.sampled_from([0.0, 1e-4, 0.1, 0.5, 100.0]),
       min_lr=st.sampled_from([0.0, 1e-3, 0.3]), lr=st.sampled_from([20.0, 1.0, 1e-7]))
def test_matches_torch_reduce_lr_on_plateau(metrics, mode, threshold_mode, factor, patience,
                                            cooldown, threshold, min_lr, lr):
    torch = pytest.importorskip("torch")
    kw = dict(mode=mode, factor=factor, patience=patience, threshold=threshold,
              threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr)
    topt = torch.optim.SGD([torch.zeros(1, dtype=torch.float64, requires_grad=True)], lr=lr)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    ours = ReduceOnPlateau(SGD(lr), **kw)
    for m in metrics:
        ts.step(m)
        assert ours.step(m) == topt.param_groups[0]["lr"]
        assert ours.best == ts.best or (math.isnan(ours.best) and math.isnan(ts.best))
        assert ours.num_bad_epochs == ts.num_bad_epochs
        assert ours.cooldown_counter == ts.cooldown_counter


@pytest.mark.parametrize("kw, match", [
    (dict(mode="avg"), "mode"), (dict(threshold_mode="pct"), "threshold_mode"),
    (dict(factor=1.0), "factor"), (dict(factor=-0.1), "factor"),
    (dict(patience=-1), "patience"),
    (dict(cooldown=-1), "cooldown"), (dict(threshold=-1e-4), "threshold"),
    (dict(min_lr=math.nan), "min_lr"), (dict(eps=-1.0), "eps"),
    (dict(lr=math.inf), "lr"),
])
def test_bad_inputs(kw, match):
    kw = {"lr": 1.0} | kw
    with pytest.raises(ValueError, match=match):
        ReduceOnPlateau(**kw)


def test_exactly_one_of_optimizer_and_lr():
    with pytest.raises(ValueError, match="exactly one"):
        ReduceOnPlateau()
    with pytest.raises(ValueError, match="exactly one"):
        ReduceOnPlateau(SGD(1.0), lr=1.0)
    with pytest.raises(TypeError):
        ReduceOnPlateau(lr=1.0).step(np.zeros(2))  # the metric must be a scalar
