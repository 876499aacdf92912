"""The model and phase 2 (refseq.papers.kv_bottleneck.model, .decoders): localisation of one SGD
step, decoder identities, finite-difference gradients (values, parametric decoders, distances),
dropout, value training and the class-incremental helpers (.continual)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.kv_bottleneck import continual, decoders
from refseq.papers.kv_bottleneck.codebooks import KVCodebooks
from refseq.papers.kv_bottleneck.decoders import (
    LinearProbeDecoder,
    MLPDecoder,
    VotingDecoder,
    append_distance,
    voting_decoder,
    voting_decoder_backward,
)
from refseq.papers.kv_bottleneck.encoders import Identity
from refseq.papers.kv_bottleneck.model import KVBottleneckModel, train_values
from refseq.papers.kv_bottleneck.splitters import Chunker
from refseq.train.adam import Adam
from refseq.train.sgd import SGD


def _model(seed=0, C=2, M=6, d_k=1, K=3, topk=1, decoder=None, **kw):
    r = np.random.default_rng(seed)
    cb = KVCodebooks(C, M, d_k, K, rng=r)
    cb.keys = np.sort(r.standard_normal((C, M, d_k)) * 3, axis=1)
    cb.freeze_keys()
    cb.init_values("randn", 1.0, r)
    return KVBottleneckModel(Identity(), Chunker(C), cb, decoder, topk, **kw), r


@given(st.integers(0, 2**31), st.integers(1, 2))
def test_one_sgd_step_is_local(seed, topk):
    model, r = _model(seed, topk=topk)
    cb = model.codebooks
    x, y = r.standard_normal((4, 2)) * 3, r.integers(0, 3, 4)
    before = cb.values.copy()
    loss, grads = model.loss_and_grads(x, y)
    idx, _, _ = model.select(model.heads(x))
    hit = np.zeros((2, 6), bool)
    hit[np.arange(2)[None, :, None, None], idx] = True
    assert (grads["values"][~hit] == 0).all()  # non-zero only at selected pairs
    SGD(0.3).step(model.params(), grads)
    np.testing.assert_array_equal(cb.values[~hit], before[~hit])  # bit-identical
    assert not np.array_equal(cb.values[hit], before[hit])
    # a held-out input whose pairs are disjoint from the batch's keeps its logits exactly
    for _ in range(50):
        x2 = r.standard_normal((1, 2)) * 3
        idx2, _, _ = model.select(model.heads(x2))
        if not hit[np.arange(2)[None, :, None, None], idx2].any():
            cb.values, saved = before, cb.values
            old = model.forward(x2)
            cb.values = saved
            np.testing.assert_array_equal(model.forward(x2), old)
            break


def test_voting_decoder_identities():
    r = np.random.default_rng(0)
    f = r.standard_normal((2, 1, 3, 1, 4))  # (B, C=1, k=3, N=1, d_v)
    np.testing.assert_allclose(voting_decoder(f)[0], f.sum(axis=(1, 2, 3)), rtol=1e-12)  # sums
    same = np.repeat(f, 5, axis=1)  # five identical codebooks
    np.testing.assert_allclose(voting_decoder(same)[0], voting_decoder(f)[0], rtol=1e-12)
    g = r.standard_normal((2, 4, 1, 3, 4))  # k = 1: the mean over codebooks and tokens
    np.testing.assert_allclose(voting_decoder(g)[0], g[:, :, 0].mean(axis=(1, 2)), rtol=1e-12)
    w = np.array([1.0, 0.5, 0.0])
    np.testing.assert_allclose(voting_decoder(f, w)[0],
                               f[:, 0, 0, 0] + 0.5 * f[:, 0, 1, 0], rtol=1e-12)


def test_dropout_drops_whole_votes():
    f = np.ones((3, 4, 2, 5, 2))
    logits, cache = voting_decoder(f, dropout=0.5, rng=1, training=True)
    keep = np.random.default_rng(1).random((3, 4, 5)) >= 0.5
    np.testing.assert_allclose(logits[:, 0], 2 * keep.mean(axis=(1, 2)) / 0.5)
    d = voting_decoder_backward(np.ones((3, 2)), cache)
    assert ((d[:, :, 0, :, 0] == 0) == ~keep).all()
    assert np.array_equal(voting_decoder(f, dropout=0.5, rng=1)[0], voting_decoder(f)[0])


def _fd(fn, arr, eps=1e-6, picks=8, seed=0):
    """Central differences of scalar ``fn()`` at ``picks`` random entries of ``arr``."""
    r = np.random.default_rng(seed)
    out = []
    for flat in r.choice(arr.size, size=min(picks, arr.size), replace=False):
        i = np.unravel_index(flat, arr.shape)
        old = arr[i]
        arr[i] = old + eps
        up = fn()
        arr[i] = old - eps
        down = fn()
        arr[i] = old
        out.append((i, (up - down) / (2 * eps)))
    return out


@pytest.mark.parametrize("kind", ["voting", "linear", "mlp", "distance"])
def test_gradients_against_finite_differences(kind):
    C, k, N, K = 2, 2, 1, 3
    dec = {"voting": None, "linear": LinearProbeDecoder(C * k * N * K, K, rng=1),
           "mlp": MLPDecoder(C * k * N * K, K, hidden=5, rng=1),
           "distance": LinearProbeDecoder(C * k * N * (K + 1), K, rng=1)}[kind]
    model, r = _model(3, C=C, K=K, topk=k, decoder=dec, train_decoder=kind != "voting",
                      use_distance=kind == "distance")
    x, y = r.standard_normal((5, 2)) * 3, r.integers(0, K, 5)
    _, grads = model.loss_and_grads(x, y, 0.1)
    params = model.params()
    for name, g in grads.items():
        for i, num in _fd(lambda: model.loss_and_grads(x, y, 0.1)[0], params[name]):
            assert num == pytest.approx(g[i], rel=1e-6, abs=1e-9), (name, i)


def test_voting_gradient_formula_by_hand():
    model, r = _model(4, C=2, K=3)
    x, y = r.standard_normal((3, 2)) * 3, np.array([0, 2, 1])
    _, grads = model.loss_and_grads(x, y, 0.1)
    idx, _, fetched = model.select(model.heads(x))
    logits = fetched.mean(axis=(1, 2, 3))  # k = N = 1
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = 0.9 * np.eye(3)[y] + 0.1 / 3
    want = np.zeros((2, 6, 3))
    for b in range(3):
        for c in range(2):
            want[c, idx[b, c, 0, 0]] += (p[b] - q[b]) / (3 * 2)
    np.testing.assert_allclose(grads["values"], want, rtol=1e-12, atol=1e-15)


def test_append_distance_layout():
    f = np.zeros((1, 2, 3, 1, 2))
    dist = np.arange(6.0).reshape(1, 2, 1, 3)
    out = append_distance(f, dist)
    assert out.shape == (1, 2, 3, 1, 3) and out[0, 1, 2, 0, -1] == dist[0, 1, 0, 2]
    d_f, d_dist = decoders.append_distance_backward(out)
    np.testing.assert_array_equal(d_dist, dist)


def test_train_values_reuses_the_selection_and_counts_usage():
    a, r = _model(5)
    b, _ = _model(5)
    X, y = r.standard_normal((6, 2)) * 3, r.integers(0, 3, 6)
    la = train_values(a, [(X, y)], Adam(1e-2), epochs=3, batch_size=6)  # full batch: reused
    opt = Adam(1e-2)
    b.codebooks.activate_counts()
    from refseq.train.clipping import clip_grad_norm

    for _ in range(3):
        loss, g = b.loss_and_grads(X, y)
        opt.step(b.params(), clip_grad_norm(g, 1.0)[0])
    np.testing.assert_array_equal(a.codebooks.values, b.codebooks.values)
    np.testing.assert_array_equal(a.codebooks.usage, b.codebooks.usage)
    assert len(la) == 1 and len(la[0]) == 3 and a.codebooks.usage.sum() == 3 * 6 * 2
    c, _ = _model(5)
    train_values(c, [(X, y)], SGD(0.1), epochs=2, batch_size=4, rng=0)  # mini-batches
    assert c.codebooks.usage.sum() == 2 * 6 * 2
    c.codebooks.update_keys = True
    with pytest.raises(ValueError, match="update_keys"):
        train_values(c, [(X, y)], SGD(0.1))
    with pytest.raises(ValueError, match="selection"):
        c.loss_and_grads(X, y, selection=(np.zeros((6, 2, 1, 1), np.int64), None))


def test_forward_in_evaluation_mode_masks_unused_pairs():
    model, r = _model(6)
    cb = model.codebooks
    cb.activate_counts()
    model.forward(np.array([[-9.0, -9.0]]))  # uses pair 0 of each codebook (keys sorted)
    cb.deactivate_counts()
    idx, _, _ = model.select(model.heads(r.standard_normal((8, 2)) * 5))
    assert (idx == 0).all()
    assert VotingDecoder().params == {}


def test_class_incremental_stream_and_accuracy():
    X = np.arange(12.0)[:, None]
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 0, 1])
    tasks = continual.class_incremental_stream(X, y, [[0, 1], [2, 3]])
    assert [t[1].tolist() for t in tasks] == [[0, 1, 0, 1, 0, 1], [2, 3, 2, 3]]
    assert tasks[1][0][:, 0].tolist() == [2.0, 3.0, 6.0, 7.0]
    with pytest.raises(ValueError, match="class_splits"):
        continual.class_incremental_stream(X, y, [[0, 1], [1, 2]])
    assert continual.accuracy(np.array([0, 1, 1]), np.array([0, 1, 0])) == pytest.approx(2 / 3)
    assert continual.accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]), [1]) == 1.0


def test_classifier_gradients_and_training():
    clf = continual.MLPClassifier((3, 4, 2), rng=0)
    r = np.random.default_rng(1)
    z, y = r.standard_normal((5, 3)), r.integers(0, 2, 5)
    from refseq.nn.softmax import cross_entropy_backward, cross_entropy_forward

    def loss():
        return float(cross_entropy_forward(clf.forward(z)[0], y)[0])

    logits, cache = clf.forward(z)
    _, ce = cross_entropy_forward(logits, y)
    grads = clf.backward(cross_entropy_backward(np.ones(()), ce)[0], cache)
    for name, g in grads.items():
        for i, num in _fd(loss, clf.params[name]):
            assert num == pytest.approx(g[i], rel=1e-6, abs=1e-9)
    losses = continual.train_classifier(clf, [(z, y)], 50, 1e-2)
    assert losses[0][-1] < losses[0][0]
