"""Graph and layer-structure statistics used to predict a sparse RNN's accuracy.

Darji, arXiv 2407.20601, Sec. 5.2.2 (the 23 features). All on the *undirected* graph, hop
distance ``d(i, j)`` from breadth-first search (``scipy.sparse.csgraph.shortest_path``,
unweighted). Definitions match networkx's defaults::

    diameter            = max_{i,j} d(i,j)
    density             = |E| / (n (n - 1))          (the thesis code's value; undirected density
                                                      is twice this)
    avg_shortest        = sum_{i != j} d(i,j) / (n (n - 1))
    eccentricity(v)     = max_j d(v, j)
    degree(v)           = deg(v) / (n - 1)            (networkx degree_centrality)
    closeness(v)        = (n - 1) / sum_j d(v, j)
    betweenness(v)      = sum_{s != v != t} σ_st(v)/σ_st · 2 / ((n-1)(n-2))   (unordered s, t)
    edge_betweenness(e) = sum_{s != t} σ_st(e)/σ_st · 2 / (n (n-1))           (unordered s, t)

Betweenness uses Brandes' algorithm (one BFS per source with path counts σ and dependency
accumulation). Each per-node/per-edge quantity is summarised by its mean, sample variance
(divisor n - 1, Python's ``statistics.variance``) and sample standard deviation.
"""

from __future__ import annotations

import numpy as np

from refseq.papers.rnn_sparsity.graphs import (
    _check_edges,
    _check_layered_edges,
    _check_layers,
    adjacency,
    is_connected,
)

FEATURES = (
    "layers", "nodes", "edges", "source_nodes", "sink_nodes", "diameter", "density",
    "average_shortest_path_length",
    *(f"{q}_{s}" for q in ("eccentricity", "degree", "closeness", "nodes_betweenness",
                           "edge_betweenness") for s in ("mean", "var", "std")),
)


def _summary(name: str, values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    var = float(v.var(ddof=1)) if v.size > 1 else float("nan")
    return {f"{name}_mean": float(v.mean()), f"{name}_var": var, f"{name}_std": float(np.sqrt(var))}


def brandes(n: int, edges) -> tuple[np.ndarray, dict[tuple[int, int], float]]:
    """Unnormalised betweenness of every node and every edge, summed over *ordered* pairs
    (s, t) (so each unordered pair counts twice), by Brandes' algorithm on the undirected graph.
    Returns ``(node (n,), edge {(u, v) with u < v: value})``."""
    n, e = _check_edges(n, edges, "edges")
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for u, v in e:
        nbrs[u].append(int(v))
        nbrs[v].append(int(u))
    node = np.zeros(n)
    edge = {(int(min(u, v)), int(max(u, v))): 0.0 for u, v in e}
    for s in range(n):
        order, preds = [], [[] for _ in range(n)]
        sigma = np.zeros(n)
        dist = np.full(n, -1)
        sigma[s], dist[s] = 1.0, 0
        queue = [s]
        for v in queue:  # BFS; the list grows while it is iterated
            order.append(v)
            for w in nbrs[v]:
                if dist[w] < 0:
                    dist[w] = dist[v] + 1
                    queue.append(w)
                if dist[w] == dist[v] + 1:
                    sigma[w] += sigma[v]
                    preds[w].append(v)
        delta = np.zeros(n)
        for w in reversed(order):  # dependency accumulation, farthest first
            for v in preds[w]:
                c = sigma[v] / sigma[w] * (1.0 + delta[w])
                edge[(min(v, w), max(v, w))] += c
                delta[v] += c
            if w != s:
                node[w] += delta[w]
    return node, edge


def graph_properties(n: int, undirected_edges) -> dict[str, float]:
    """The graph features of the thesis (keys: ``nodes, edges, diameter, density,
    average_shortest_path_length`` and ``{eccentricity, degree, closeness, nodes_betweenness,
    edge_betweenness}_{mean, var, std}``). The graph must be connected with n >= 3."""
    from scipy.sparse.csgraph import shortest_path

    n, e = _check_edges(n, undirected_edges, "undirected_edges")
    e = np.unique(np.sort(e, axis=1), axis=0)
    if n < 3 or not is_connected(n, e):
        raise ValueError(f"graph_properties needs a connected graph with n >= 3 (n = {n})")
    d = shortest_path(adjacency(n, e), directed=False, unweighted=True)  # (n, n) hop distances
    m = len(e)
    deg = np.bincount(e.ravel(), minlength=n)
    node_b, edge_b = brandes(n, e)
    out = {
        "nodes": float(n), "edges": float(m), "diameter": float(d.max()),
        "density": m / (n * (n - 1)),
        "average_shortest_path_length": float(d.sum() / (n * (n - 1))),
    }
    out |= _summary("eccentricity", d.max(axis=1))
    out |= _summary("degree", deg / (n - 1))
    out |= _summary("closeness", (n - 1) / d.sum(axis=1))
    out |= _summary("nodes_betweenness", node_b / ((n - 1) * (n - 2)))
    out |= _summary("edge_betweenness", np.fromiter(edge_b.values(), float) / (n * (n - 1)))
    return out


def structure_properties(layers: list[list[int]], directed_edges=None) -> dict[str, float]:
    """``layers`` (count), ``source_nodes`` (size of layer 0), ``sink_nodes``.

    Without ``directed_edges`` sinks are the vertices of the last layer (the thesis'
    ``last_layer``); with them, the vertices without an outgoing edge."""
    layers = _check_layers(layers)
    sinks = len(layers[-1])
    if directed_edges is not None:
        e = _check_layered_edges(layers, directed_edges)
        sinks = sum(len(layer) for layer in layers) - len(np.unique(e[:, 0]))
    return {"layers": float(len(layers)), "source_nodes": float(len(layers[0])),
            "sink_nodes": float(sinks)}
