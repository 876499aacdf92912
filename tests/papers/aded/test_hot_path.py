"""The tree-verification hot path on ADED's trees: batches of tries built by ``paths_to_tree``
from random MCTS outputs, verified by the batched kernels (numpy, jit, cuda tiers) and compared
with the per-tree walks of the speculative core (greedy and ``point`` mode)."""

from __future__ import annotations

import numpy as np
import pytest

from refseq import tree_verify as tv
from refseq.cuda import availability
from refseq.decoding.speculative.batch import TreeBatch
from refseq.decoding.speculative.greedy import verify_greedy_tree
from refseq.decoding.speculative.verify import verify_tree_stochastic
from refseq.papers.aded import TrigramMatrix, cut_to_choices, mcts_draft, paths_to_tree

# the simulator busy-polls at every barrier: a short GIL switch interval makes it ~5x faster
pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

V = 12


def _aded_trees(seed, B):
    rng = np.random.default_rng(seed)
    trees = []
    for b in range(B):
        W = rng.random((V, V, V)) * (rng.random((V, V, V)) < 0.25)
        m = TrigramMatrix.from_dense(W)
        pair = (int(rng.integers(V)), int(rng.integers(V)))
        paths = cut_to_choices(mcts_draft(m, pair, iterations=80, rng=seed + b), 64)
        trees.append(paths_to_tree(pair[1], paths, 64))
    return trees


def _argmax_following_the_tree(tree, rng):
    """Per node: a random child's token with probability 0.7 (long accepted paths), else a
    random token."""
    out = rng.integers(0, V, tree.num_nodes)
    for i in range(tree.num_nodes):
        ch = tree.children(i)
        if ch.size and rng.random() < 0.7:
            out[i] = tree.tokens[rng.choice(ch)]
    return out


def _pad(rows, n_max, fill):
    return np.stack([np.concatenate([r, np.full((n_max - len(r),) + r.shape[1:], fill)])
                     for r in rows])


BACKENDS = ["numpy", "jit", "cuda"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_kernels_equal_the_per_tree_walks_on_aded_trees(backend):
    if backend == "cuda" and not availability()[0]:
        pytest.skip(availability()[1])
    if backend == "jit":
        pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    trees = _aded_trees(1, 2 if backend == "cuda" else 3)  # the simulator is slow
    assert max(t.num_nodes for t in trees) > 20 and max(t.max_depth for t in trees) >= 3
    batch = TreeBatch.from_trees(trees)
    n_max = batch.n_max
    am = [_argmax_following_the_tree(t, rng) for t in trees]
    path, acc, nxt = tv.tree_verify_greedy(batch.parents, batch.tokens, _pad(am, n_max, 0),
                                           batch.num_nodes, backend=backend)
    for b, t in enumerate(trees):
        ref = verify_greedy_tree(t, am[b])
        assert acc[b] == ref.num_accepted and nxt[b] == ref.next_token
        assert path[b, :acc[b] + 1].tolist() == ref.path.tolist()
    probs = [rng.dirichlet(np.full(V, 0.3), t.num_nodes) for t in trees]
    u = [rng.random(t.num_nodes) for t in trees]
    uf = rng.random(len(trees))
    path, acc, nxt = tv.tree_verify_stochastic(
        batch.parents, batch.tokens, _pad(probs, n_max, 0.0), None, "point", None,
        _pad(u, n_max, 0.0), uf, batch.num_nodes, backend=backend)
    for b, t in enumerate(trees):
        ref = verify_tree_stochastic(t, probs[b], None, "point", u[b], float(uf[b]))
        assert acc[b] == ref.num_accepted and nxt[b] == ref.next_token
        assert path[b, :acc[b] + 1].tolist() == ref.path.tolist()
