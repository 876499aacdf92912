"""The training loop: it trains, reports progress in a fixed format and stops on NaN/inf."""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import pytest

from refseq.train import SGD, Adam, format_progress, train, warmup_cosine


def linear_regression(seed=0, n=64, d=5):
    rng = np.random.default_rng(seed)
    X, w_true = rng.standard_normal((n, d)), rng.standard_normal(d)
    y = X @ w_true

    def loss_and_grad(params, batch):
        r = X @ params["w"] - y  # (n,)
        return float(np.mean(r**2)), {"w": 2 * X.T @ r / n}

    return loss_and_grad, d


def test_loss_decreases_on_a_tiny_problem():
    loss_and_grad, d = linear_regression()
    params = {"w": np.zeros(d)}
    log = train(params, loss_and_grad, lambda t: None, Adam(0.05), steps=300, log=None)
    assert log.losses[-1] < 1e-3 * log.losses[0]
    assert log.losses.shape == log.grad_norms.shape == log.lrs.shape == (300,)


def test_nan_loss_stops_with_a_message_naming_the_step():
    loss_and_grad, d = linear_regression()

    def flaky(params, batch):
        loss, g = loss_and_grad(params, batch)
        return (float("nan") if batch == 3 else loss), g

    params = {"w": np.zeros(d)}
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 3 \(0-based; 3 updates"):
        train(params, flaky, lambda t: t, SGD(0.01), steps=10, log=None)
    with pytest.raises(FloatingPointError, match="loss became inf at step 0"):
        train(params, lambda p, b: (np.inf, {"w": np.zeros(d)}), lambda t: t, SGD(0.01),
              steps=2, log=None)
    with pytest.raises(FloatingPointError, match="gradient norm became nan at step 1"):
        train(params, lambda p, b: (1.0, {"w": np.full(d, np.nan if b else 0.0)}), lambda t: t,
              SGD(0.01), steps=2, log=None)


def test_diverging_lr_is_caught():
    loss_and_grad, d = linear_regression()
    with pytest.raises(FloatingPointError, match=r"loss became inf at step \d+"):
        with np.errstate(over="ignore", invalid="ignore"):
            train({"w": np.ones(d)}, loss_and_grad, lambda t: None, SGD(100.0), steps=2000,
                  log=None)


def test_progress_lines_and_format():
    loss_and_grad, d = linear_regression()
    lines = []
    batches = iter([np.zeros((4, 8), np.int64)] * 5)  # 32 "tokens" per batch
    train({"w": np.zeros(d)}, loss_and_grad, batches, SGD(0.01), steps=5, log_every=2,
          log=lines.append)
    assert [int(re.match(r"step +(\d+)/5", ln).group(1)) for ln in lines] == [2, 4, 5]
    sci = r"\d\.\d{2}e[+-]\d{2}"
    pattern = rf"step +\d+/\d+  loss \d+\.\d{{6}}  lr {sci}  \|g\| {sci}  tok/s \d+"
    for line in lines:
        assert re.fullmatch(pattern, line), line
    assert format_progress(7, 100, 0.5, 0.1, 2.0, 1234.4) == (
        "step   7/100  loss 0.500000  lr 1.00e-01  |g| 2.00e+00  tok/s 1234")


def test_schedule_sets_the_lr_and_batches_must_last():
    loss_and_grad, d = linear_regression()
    sched = warmup_cosine(0.1, 3, 10, 0.01)
    log = train({"w": np.zeros(d)}, loss_and_grad, lambda t: None, SGD(1.0), steps=10,
                schedule=sched, log=None)
    assert np.array_equal(log.lrs, [sched(t) for t in range(10)])
    with pytest.raises(ValueError, match="batches ran out at step 2 of 5"):
        train({"w": np.zeros(d)}, loss_and_grad, [None, None], SGD(0.1), steps=5, log=None)


class Params(NamedTuple):
    w: np.ndarray


def test_namedtuple_params_are_updated_in_place():
    loss_and_grad, d = linear_regression()
    p = Params(np.zeros(d))
    train(p, loss_and_grad, lambda t: None, SGD(0.1), steps=50, log=None)
    assert np.linalg.norm(p.w) > 0.1
