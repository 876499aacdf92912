"""Random graphs, DAG layering and graph statistics (arXiv 2407.20601, Sec. 3.3 and 5.2; the
property table of docs/papers/rnn-sparsity.md, "Properties and their tests", names the test of
each)."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.rnn_sparsity.graph_properties import (
    FEATURES,
    graph_properties,
    structure_properties,
)
from refseq.papers.rnn_sparsity.graphs import (
    barabasi_albert,
    connected_watts_strogatz,
    expand_gate_mask,
    is_connected,
    layer_connectivity,
    layer_index,
    orient_dag,
    thesis_graph,
    watts_strogatz,
)
from refseq.testing.strategies import seeds


def _degrees(n, e):
    return np.bincount(np.asarray(e).ravel(), minlength=n)


@given(seeds(), st.integers(2, 40), st.data())
def test_barabasi_albert_edges_and_connected(seed, n, data):
    m = data.draw(st.integers(1, n - 1))
    e = barabasi_albert(n, m, np.random.default_rng(seed))
    assert len(e) == m * (n - m)
    assert (e[:, 0] < e[:, 1]).all() and len(np.unique(e, axis=0)) == len(e)
    assert is_connected(n, e)
    assert (_degrees(n, e)[m + 1:] >= m).all()  # every added node brings m edges


@given(seeds(), st.integers(4, 40), st.data())
def test_watts_strogatz_edges(seed, n, data):
    k = data.draw(st.integers(0, n - 1))
    p = data.draw(st.sampled_from([0.0, 0.3, 1.0]))
    rng = np.random.default_rng(seed)
    e = watts_strogatz(n, k, p, rng)
    assert len(e) == n * (k // 2)
    if p == 0.0:  # the ring lattice: every degree exactly 2 (k // 2)
        assert (_degrees(n, e) == 2 * (k // 2)).all()
    if p == 1.0:  # every node keeps its k // 2 own (rewired) edges
        assert (_degrees(n, e) >= k // 2).all()
    if k >= 2 and k // 2 < n // 2:
        try:
            ce = connected_watts_strogatz(n, k, p, 10, rng)
        except RuntimeError:
            return
        assert len(ce) == n * (k // 2) and is_connected(n, ce)


def test_barabasi_albert_attachment_probability():
    """Preferential attachment, exact small case: BA(4, 1). Node 2 joins 0 or 1 (degrees 1, 1:
    each 1/2); node 3 then picks an endpoint of the edge list [0, 1, t2, 2], so P(3 -> 2) = 1/4
    and P(3 -> t2) = 1/2. Bounds: 5 standard errors for N = 4000 draws."""
    rng = np.random.default_rng(0)
    N, to0, to2, to_t2 = 4000, 0, 0, 0
    for _ in range(N):
        e = {tuple(x) for x in barabasi_albert(4, 1, rng)}
        t2 = 0 if (0, 2) in e else 1
        to0 += t2 == 0
        to2 += (2, 3) in e
        to_t2 += (t2, 3) in e
    for p, count in ((0.5, to0), (0.25, to2), (0.5, to_t2)):
        assert abs(count / N - p) <= 5 * np.sqrt(p * (1 - p) / N)


@pytest.mark.parametrize("gen", ["ba", "ws"])
def test_generators_match_networkx_in_distribution(gen):
    """Our NumPy generators and networkx draw from the same distribution: the mean of the degree
    variance over N = 300 graphs (n = 20) agrees within 5 standard errors of the difference."""
    pytest.importorskip("networkx")
    N, n = 300, 20
    stats = {}
    for use_nx in (False, True):
        rng = np.random.default_rng(1 + use_nx)
        vals = []
        for _ in range(N):
            e = (barabasi_albert(n, 2, rng, use_networkx=use_nx) if gen == "ba"
                 else connected_watts_strogatz(n, 4, 0.5, 10, rng, use_networkx=use_nx))
            vals.append(_degrees(n, e).var())
        stats[use_nx] = np.asarray(vals)
    a, b = stats[False], stats[True]
    se = np.sqrt(a.var(ddof=1) / N + b.var(ddof=1) / N)
    assert abs(a.mean() - b.mean()) <= 5 * se


@given(seeds(), st.integers(2, 25), st.floats(0.05, 0.6))
def test_layering_properties(seed, n, density):
    rng = np.random.default_rng(seed)
    pairs = [(u, v) for u in range(n) for v in range(u + 1, n) if rng.random() < density]
    undirected = np.asarray(pairs, np.int64).reshape(-1, 2)
    dag = orient_dag(n, undirected[:, ::-1])  # orientation by id, whatever order given
    assert (dag[:, 0] < dag[:, 1]).all()
    layer_of, layers = layer_index(n, dag)
    # layers partition the vertices and are sorted by depth
    assert sorted(v for layer in layers for v in layer) == list(range(n))
    assert all(layer_of[v] == k for k, layer in enumerate(layers) for v in layer)
    for u, v in dag:
        assert layer_of[u] < layer_of[v]
    parents = {v: {int(u) for u, w in dag if w == v} for v in range(n)}
    for v in range(n):
        if parents[v]:
            assert any(layer_of[u] == layer_of[v] - 1 for u in parents[v])
        else:
            assert layer_of[v] == 0
    # order of edges never matters
    shuffled = dag[rng.permutation(len(dag))]
    lo2, layers2 = layer_index(n, shuffled)
    assert (lo2 == layer_of).all() and layers2 == layers
    # connectivity matrices: one per connected layer pair, ones = edges, every row of E_{k-1,k}
    conn = layer_connectivity(layers, dag)
    assert sum(int(E.sum()) for E in conn.values()) == len(dag)
    for k in range(1, len(layers)):
        E = conn[(k - 1, k)]
        assert E.shape == (len(layers[k]), len(layers[k - 1]))
        assert (E.sum(axis=1) >= 1).all()


def test_layer_index_known_order_and_cycle():
    # 0 -> 2, 1 -> 2, 2 -> 3, 0 -> 3, 1 -> 4: layers [[0, 1], [2, 4], [3]]
    layer_of, layers = layer_index(5, [(0, 2), (1, 2), (2, 3), (0, 3), (1, 4)])
    assert layers == [[0, 1], [2, 4], [3]] and list(layer_of) == [0, 0, 1, 2, 1]
    with pytest.raises(ValueError, match="cycle"):
        layer_index(3, [(0, 1), (1, 2), (2, 0)])


@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from([1, 3, 4]), seeds())
def test_expand_gate_mask_layouts(s_k, s_j, G, seed):
    E = np.random.default_rng(seed).random((s_k, s_j)) < 0.5
    tile = expand_gate_mask(E, G, "tile")
    rep = expand_gate_mask(E, G, "thesis_repeat")
    assert tile.shape == rep.shape == (G * s_k, s_j)
    for g in range(G):
        for a in range(s_k):
            assert (tile[g * s_k + a] == E[a]).all()  # gate block g, unit a
            assert (rep[a * G + g] == E[a]).all()
    if G == 1:
        assert (tile == rep).all()


def test_thesis_repeat_misaligns_gate_blocks():
    """The trap: with E = identity (unit a reads only input a), the thesis layout gives the
    candidate/update gates of unit 0 connections to inputs other than 0."""
    E = np.eye(3, dtype=bool)
    rep = expand_gate_mask(E, 4, "thesis_repeat")  # LSTM, s_k = 3
    tile = expand_gate_mask(E, 4, "tile")
    # rows of unit 0 in gate blocks i, f, g, o are 0, 3, 6, 9
    assert [tile[r].nonzero()[0].tolist() for r in (0, 3, 6, 9)] == [[0]] * 4
    assert [rep[r].nonzero()[0].tolist() for r in (0, 3, 6, 9)] == [[0], [0], [1], [2]]


def _nx_reference(n, e):
    import networkx as nx

    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from(map(tuple, e))
    ref = {"nodes": n, "edges": G.number_of_edges(), "diameter": nx.diameter(G),
           "density": G.number_of_edges() / (n * (n - 1)),
           "average_shortest_path_length": nx.average_shortest_path_length(G)}
    for key, fn in (("eccentricity", nx.eccentricity), ("degree", nx.degree_centrality),
                    ("closeness", nx.closeness_centrality),
                    ("nodes_betweenness", nx.betweenness_centrality),
                    ("edge_betweenness", nx.edge_betweenness_centrality)):
        v = list(fn(G).values())
        ref |= {f"{key}_mean": statistics.mean(v), f"{key}_var": statistics.variance(v),
                f"{key}_std": statistics.stdev(v)}
    return ref


@given(seeds(), st.sampled_from(["ba", "ws"]))
def test_graph_properties_match_networkx(seed, gen):
    pytest.importorskip("networkx")
    n, e = thesis_graph(gen, np.random.default_rng(seed))
    ours, ref = graph_properties(n, e), _nx_reference(n, e)
    assert set(ours) == set(ref)
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=1e-12, atol=1e-15, err_msg=k)


@given(st.integers(3, 30))
def test_graph_properties_closed_forms(n):
    path = [(i, i + 1) for i in range(n - 1)]
    p = graph_properties(n, path)
    assert p["diameter"] == n - 1 and p["edges"] == n - 1
    np.testing.assert_allclose(p["average_shortest_path_length"], (n + 1) / 3, rtol=1e-12)
    np.testing.assert_allclose(p["density"], (n - 1) / (n * (n - 1)), rtol=1e-12)
    star = [(0, j) for j in range(1, n)]
    from refseq.papers.rnn_sparsity.graph_properties import brandes

    node_b, _ = brandes(n, star)
    np.testing.assert_allclose(node_b[0] / ((n - 1) * (n - 2)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(node_b[1:], 0.0)


def test_structure_properties_and_features():
    layers = [[0, 1], [2, 4], [3]]
    assert structure_properties(layers) == {"layers": 3.0, "source_nodes": 2.0, "sink_nodes": 1.0}
    assert structure_properties(layers, [(0, 2), (1, 2), (2, 3), (0, 3), (1, 4)])["sink_nodes"] == 2
    assert len(FEATURES) == 23


def test_determinism():
    a = thesis_graph("ws", np.random.default_rng(5))
    b = thesis_graph("ws", np.random.default_rng(5))
    assert a[0] == b[0] and (a[1] == b[1]).all()


def test_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="1 <= m < n"):
        barabasi_albert(5, 5, rng)
    with pytest.raises(ValueError, match="k <= n"):
        watts_strogatz(5, 6, 0.1, rng)
    with pytest.raises(ValueError, match="p must"):
        watts_strogatz(5, 2, 1.5, rng)
    with pytest.raises(RuntimeError, match="connected"):
        connected_watts_strogatz(10, 0, 0.0, 2, rng)
    with pytest.raises(ValueError, match="self-loops"):
        orient_dag(3, [(1, 1)])
    with pytest.raises(ValueError, match="endpoints"):
        orient_dag(3, [(0, 3)])
    with pytest.raises(ValueError, match="connected"):
        graph_properties(4, [(0, 1), (2, 3)])
    with pytest.raises(ValueError, match="layout"):
        expand_gate_mask(np.eye(2), 3, "repeat")
    with pytest.raises(ValueError, match="generator"):
        thesis_graph("er", rng)


# --------------------------------------------------------------------------------------------
# Accuracy prediction from graph features (arXiv 2407.20601, Sec. 5.2.3) and the
# random-structure protocol


def test_prediction_helpers():
    from refseq.papers.rnn_sparsity.predict import (
        bayesian_ridge,
        fit_predict_r2,
        minmax_scale,
        pearson,
        train_test_split,
    )

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    X[:, 4] = 3.0  # a constant feature scales to 0
    S = minmax_scale(X)
    assert np.allclose(S[:, :4].min(0), 0) and np.allclose(S[:, :4].max(0), 1)
    assert (S[:, 4] == 0).all()
    x, y = rng.standard_normal(50), rng.standard_normal(50)
    np.testing.assert_allclose(pearson(x, y), np.corrcoef(x, y)[0, 1], rtol=1e-12)
    np.testing.assert_allclose(pearson(x, 2 * x + 1), 1.0, rtol=1e-12)
    tr, te = train_test_split(200, 0.1, 7)
    assert len(te) == 20 and sorted(np.r_[tr, te].tolist()) == list(range(200))
    w_true = np.array([1.0, -2.0, 0.5, 0.0, 0.0])
    yy = X @ w_true + 0.7 + 1e-3 * rng.standard_normal(200)
    w, c, alpha, lam = bayesian_ridge(X, yy)
    np.testing.assert_allclose(w[:4], w_true[:4], atol=1e-3)
    assert alpha > 1e5  # noise precision ~ 1 / (1e-3)^2
    assert fit_predict_r2(X, yy, "bayesian_ridge") > 0.999
    with pytest.raises(ValueError, match="regressor"):
        fit_predict_r2(X, yy, "svm")


def test_random_structure_experiment_rows():
    from refseq.papers.rnn_sparsity.experiments import random_structure_experiment
    from refseq.tasks.reber import encode, reber_dataset, vocab_size

    strings, labels = reber_dataset(40, np.random.default_rng(0))
    data = (*encode(strings), labels)
    rows = random_structure_experiment("ws", "GRU", 1, data, data, vocab_size("reber7"),
                                       epochs=1, batch_size=20)
    assert len(rows) == 1
    assert set(FEATURES) <= set(rows[0]) and 0.0 <= rows[0]["test_acc"] <= 1.0
