"""Training the tiny transformer on a Markov source with the shared loop."""

import numpy as np
import pytest

from refseq.models.tiny_transformer import TinyConfig, init_params, params_from_named
from refseq.models.toy_lm import random_markov_lm, sample_sequences
from refseq.testing.gradcheck import assert_directional
from refseq.train import Adam, train
from refseq.train.lm import lm_loss_and_grad, make_lm_objective, param_dict


def test_gradients_match_finite_differences_through_the_flat_dict():
    cfg = TinyConfig(vocab_size=7, d_model=4, n_layers=1, n_heads=2, max_positions=8)
    params = init_params(cfg, seed=1)
    named, loss_and_grad = make_lm_objective(params)
    batch = np.random.default_rng(0).integers(0, 7, (2, 6))
    _, grads = loss_and_grad(named, batch)
    assert set(grads) == set(named)
    rng = np.random.default_rng(1)  # one random direction per parameter, moved in place
    assert_directional(lambda: lm_loss_and_grad(named, batch, cfg)[0], named,
                       {name: grads[name] for name in sorted(named)[:6]}, rng=rng)


def test_training_on_a_markov_source_lowers_the_loss():
    V = 8
    source = random_markov_lm(V, alpha=0.1, seed=0)
    data = sample_sequences(source, 256, 17, seed=1)
    cfg = TinyConfig(vocab_size=V, d_model=16, n_layers=1, n_heads=2, max_positions=16)
    params = init_params(cfg, seed=0)
    named, loss_and_grad = make_lm_objective(params)
    rng = np.random.default_rng(2)
    lines = []
    log = train(named, loss_and_grad, lambda t: data[rng.integers(0, len(data), 16)],
                Adam(lr=1e-2), steps=150, clip=1.0, log_every=50, log=lines.append)
    first, last = np.mean(log.losses[:10]), np.mean(log.losses[-10:])
    assert last < 0.7 * first, (first, last)
    assert len(lines) == 3 and "loss" in lines[-1] and "tok/s" in lines[-1]
    trained = params_from_named(cfg, named)  # the loop updated the model's own arrays
    assert all(np.shares_memory(a, b) for a, b in zip(param_dict(trained).values(),
                                                        named.values()))


def test_bad_batch_is_rejected():
    cfg = TinyConfig(vocab_size=5, d_model=4, n_layers=1, n_heads=1, max_positions=8)
    named, loss_and_grad = make_lm_objective(init_params(cfg, seed=0))
    with pytest.raises(ValueError, match="batch must have shape"):
        loss_and_grad(named, np.zeros((3,), np.int64))
