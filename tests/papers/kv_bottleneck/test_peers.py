"""Peers of the Discrete Key-Value Bottleneck.

- The official code's lookup, EMA update and voting decoder as NumPy ports (own code,
  :mod:`.official_port`), always run.
- torch (the ``peers`` extra; skipped without it): ``F.normalize`` for the random projection,
  ``nn.Linear`` plus the official reshape for the learned projection, and autograd of
  ``gather`` + voting + ``F.cross_entropy(label_smoothing=0.1)`` for the value gradient.
- The official package itself, ``key_value_bottleneck`` (ftraeuble/discrete_key_value_bottleneck;
  needs torch and einops; skipped when it is not importable): its ``KeyValueBottleneck`` with our
  buffers loaded, compared on fetched values, indices and one EMA update.
"""

from __future__ import annotations

import numpy as np
import pytest

from refseq.papers.kv_bottleneck import KVCodebooks, ema_update, lookup_fetch, voting_decoder
from tests.papers.kv_bottleneck import official_port as port


def _problem(seed, B=3, C=2, N=2, M=7, d_k=3, d_v=4):
    r = np.random.default_rng(seed)
    return (r.standard_normal((B, C, N, d_k)), r.standard_normal((C, M, d_k)),
            r.standard_normal((C, M, d_v)))


@pytest.mark.parametrize("seed", range(5))
def test_port_lookup_and_voting(seed):
    h, keys, values = _problem(seed)
    idx, dist, fetched = lookup_fetch(h, keys, values, 3)
    f_off, i_off = port.forward_values(h, keys, values, 3)
    np.testing.assert_array_equal(idx.transpose(0, 1, 3, 2), i_off)  # general position
    np.testing.assert_array_equal(fetched, f_off)
    s = port.scores(port.flatten(h), keys)  # (C, B N, M) negative expanded distances
    B, C, N, k = idx.shape
    off = np.take_along_axis(s, idx.transpose(1, 0, 2, 3).reshape(C, B * N, k), -1)
    np.testing.assert_allclose(-off, dist.transpose(1, 0, 2, 3).reshape(C, B * N, k),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(voting_decoder(fetched)[0], port.voting(fetched, np.ones(3)),
                               rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_port_ema_update(seed):
    h, keys, _ = _problem(seed, B=8, M=5)
    cb = KVCodebooks(2, 5, 3, 1)
    cb.keys, cb.keys_avg = keys.copy(), keys.copy()
    ref = (keys.copy(), keys.copy(), np.zeros((2, 5)))
    for t in range(3):
        ht = h + 0.1 * t
        ema_update(cb, ht, 0.9, 1e-5)
        ref = port.ema_step(ht, *ref, 0.9, 1e-5)
    for a, b in zip((cb.keys, cb.keys_avg, cb.cluster_size), ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_port_masking_differs_as_documented():
    """Official masking overwrites unused pairs with the global minimum score: an unused pair
    ties with the farthest used pair and, at a lower index, wins the tie. refseq never returns
    an unused pair."""
    keys = np.array([[[5.0], [0.0], [1.0]]])  # (C=1, M=3, 1); pair 0 never used
    values = np.eye(3)[None]
    h = np.array([[[[5.0]]]])  # distances 0, 25, 16
    counter = np.array([[0, 1, 1]])
    _, i_off = port.forward_values(h, keys, values, 2, counter)
    assert i_off[0, 0, :, 0].tolist() == [2, 0]  # the masked pair ties with pair 1 and wins
    idx, dist, _ = lookup_fetch(h, keys, values, 2, usage_mask=counter > 0)
    assert idx[0, 0, 0].tolist() == [2, 1] and dist[0, 0, 0].tolist() == [16.0, 25.0]


def _torch():
    return pytest.importorskip("torch")


def test_torch_random_projection_and_learned_reshape():
    torch = _torch()
    import torch.nn.functional as F

    from refseq.papers.kv_bottleneck import LearnedProjection, RandomProjection

    rp = RandomProjection(4, 6, 3, rng=0)
    raw = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 6, 3)))
    np.testing.assert_allclose(rp.P, F.normalize(raw, dim=1, p=2).numpy(), rtol=1e-12)
    lin = torch.nn.Linear(6, 4 * 3, bias=False).double()
    lp = LearnedProjection(4, 6, 3, W=lin.weight.detach().numpy().T.copy())
    z = np.random.default_rng(1).standard_normal((2, 5, 6))
    y = lin(torch.from_numpy(z))  # (b, n, dim_keys * num_books)
    # "b n (dim_keys num_books) -> b num_books n dim_keys" written with view/permute
    want = y.view(2, 5, 3, 4).permute(0, 3, 1, 2).detach().numpy()
    np.testing.assert_allclose(lp(z), want, rtol=1e-12)


def test_torch_value_gradient():
    torch = _torch()
    import torch.nn.functional as F

    from refseq.papers.kv_bottleneck import Chunker, Identity, KVBottleneckModel

    cb = KVCodebooks(2, 5, 1, 3, rng=0)
    cb.freeze_keys()
    cb.init_values("randn", 1.0, rng=1)
    model = KVBottleneckModel(Identity(), Chunker(2), cb, topk=2)
    r = np.random.default_rng(2)
    x, y = r.standard_normal((4, 2)), r.integers(0, 3, 4)
    loss, grads = model.loss_and_grads(x, y, 0.1)
    idx, _, _ = model.select(model.heads(x))  # (B, C, N, k)
    V = torch.from_numpy(cb.values.copy()).requires_grad_(True)
    fetched = torch.stack([V[c][torch.from_numpy(idx[:, c])] for c in range(2)], 1)
    logits = fetched.sum(3).mean(dim=(1, 2))  # (B, C, N, k, d_v): sum slots, mean C, N
    t_loss = F.cross_entropy(logits, torch.from_numpy(y), label_smoothing=0.1)
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(grads["values"], V.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_official_package_itself():
    _torch()
    core = pytest.importorskip("key_value_bottleneck.core")
    import torch

    torch.manual_seed(0)
    C, M, d_k, d_v, topk = 3, 16, 2, 4, 2
    off = core.KeyValueBottleneck(C, M, d_k, d_v, topk=topk, return_values_only=False)
    ours = KVCodebooks(C, M, d_k, d_v, dtype=np.float32)
    ours.keys = off.keys.numpy().copy()
    ours.keys_avg = off.keys_avg.numpy().copy()
    ours.values = off.values.detach().numpy().copy()
    h = np.random.default_rng(3).standard_normal((5, C, 2, d_k)).astype(np.float32)
    # one EMA update through the official forward (keys updating: top-1)
    off(torch.from_numpy(h))
    ema_update(ours, h, 0.95, 1e-5)
    np.testing.assert_allclose(ours.cluster_size, off.cluster_size.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.keys_avg, off.keys_avg.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.keys, off.keys.numpy(), rtol=1e-4, atol=1e-5)
    # frozen keys, top-k lookup: same indices and values away from ties
    off.freeze_keys()
    off.disable_update_keys()
    ours.keys = off.keys.numpy().copy()
    q = np.random.default_rng(4).standard_normal((6, C, 3, d_k)).astype(np.float32)
    values, _, ind, dists, _ = off(torch.from_numpy(q))
    idx, dist, fetched = lookup_fetch(q, ours.keys, ours.values, topk)
    np.testing.assert_array_equal(idx.transpose(0, 1, 3, 2), ind[..., 0].numpy())
    np.testing.assert_allclose(fetched, values.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(dist.transpose(0, 1, 3, 2), -dists[..., 0].numpy(), rtol=1e-4,
                               atol=1e-5)
