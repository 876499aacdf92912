"""Random graphs, DAG orientation and longest-path layering for sparse-by-construction RNNs.

Darji, arXiv 2407.20601, Sec. 3.3 and 5.2 (after Stier et al.'s pypaddle, now
innvariant/deepstruct ``CachedLayeredGraph`` / ``build_layer_index``).

* :func:`barabasi_albert` and :func:`connected_watts_strogatz` re-implement the networkx 3.x
  algorithms with a NumPy generator (``use_networkx=True`` calls networkx instead, seeded from
  ``rng``; the two draw different graphs from the same seed but from the same distribution).
* :func:`orient_dag` turns ``{u, v}`` into ``min(u, v) -> max(u, v)``.
* :func:`layer_index`: ``layer(v) = 0`` without parents, else ``1 + max_{u -> v} layer(u)``.
* :func:`layer_connectivity`: the 0/1 matrices ``E_{j,k} (s_k, s_j)`` between layers.

Edges are returned as ``(E, 2) int64`` arrays, each undirected edge once with ``u < v``, sorted.
"""

from __future__ import annotations

import numpy as np


def _edges_array(pairs) -> np.ndarray:
    e = np.asarray(sorted({(min(u, v), max(u, v)) for u, v in pairs}), np.int64)
    return e.reshape(-1, 2)


def _seed_from(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def barabasi_albert(n: int, m: int, rng: np.random.Generator, *, use_networkx: bool = False
                    ) -> np.ndarray:
    """Barabási–Albert preferential attachment, networkx 3.x algorithm.

    Start from the star on nodes ``0..m`` (centre 0); each new node ``v = m+1..n-1`` links to
    ``m`` distinct targets drawn from the list of edge endpoints (so with probability
    proportional to degree). ``m (n - m)`` edges; connected.
    """
    if not (isinstance(n, (int, np.integer)) and isinstance(m, (int, np.integer))):
        raise TypeError(f"n and m must be integers, got {n!r}, {m!r}")
    if not 1 <= m < n:
        raise ValueError(f"Barabási–Albert needs 1 <= m < n, got m = {m}, n = {n}")
    if use_networkx:
        import networkx as nx

        return _edges_array(nx.barabasi_albert_graph(int(n), int(m), seed=_seed_from(rng)).edges)
    edges = [(0, j) for j in range(1, m + 1)]  # star graph on m + 1 nodes
    repeated = [0] * m + list(range(1, m + 1))  # every node once per incident edge
    for source in range(m + 1, n):
        targets: set[int] = set()
        while len(targets) < m:  # networkx's _random_subset
            targets.add(repeated[int(rng.integers(len(repeated)))])
        targets_list = sorted(targets)
        edges.extend((t, source) for t in targets_list)
        repeated.extend(targets_list)
        repeated.extend([source] * m)
    return _edges_array(edges)


def watts_strogatz(n: int, k: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Watts–Strogatz small world, networkx 3.x algorithm: the ring lattice where node u links to
    ``u + 1 .. u + k//2`` (mod n), then each lattice edge ``(u, u + j)`` is, with probability p,
    replaced by ``(u, w)`` with w uniform among nodes that are neither u nor its neighbours.
    ``n * (k // 2)`` edges (``k == n`` gives the complete graph)."""
    if not 0 <= k <= n:
        raise ValueError(f"Watts–Strogatz needs 0 <= k <= n, got k = {k}, n = {n}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if k == n:
        return _edges_array((u, v) for u in range(n) for v in range(u + 1, n))
    adj = [set() for _ in range(n)]
    for j in range(1, k // 2 + 1):
        for u in range(n):
            v = (u + j) % n
            adj[u].add(v)
            adj[v].add(u)
    for j in range(1, k // 2 + 1):
        for u in range(n):
            v = (u + j) % n
            if rng.random() < p:
                w = int(rng.integers(n))
                rewire = True
                while w == u or w in adj[u]:
                    w = int(rng.integers(n))
                    if len(adj[u]) >= n - 1:
                        rewire = False
                        break
                if rewire:
                    adj[u].discard(v)
                    adj[v].discard(u)
                    adj[u].add(w)
                    adj[w].add(u)
    return _edges_array((u, v) for u in range(n) for v in adj[u])


def is_connected(n: int, edges) -> bool:
    """True iff the undirected graph on ``n`` nodes is connected (``scipy.sparse.csgraph``)."""
    from scipy.sparse.csgraph import connected_components

    if n <= 1:
        return True
    n_comp, _ = connected_components(adjacency(n, edges), directed=False)
    return n_comp == 1


def connected_watts_strogatz(n: int, k: int, p: float, tries: int, rng: np.random.Generator, *,
                             use_networkx: bool = False) -> np.ndarray:
    """:func:`watts_strogatz` redrawn up to ``tries`` times until connected; raises
    ``RuntimeError`` when no draw is (networkx raises ``NetworkXError``)."""
    if tries < 1:
        raise ValueError(f"tries must be >= 1, got {tries}")
    if use_networkx:
        import networkx as nx

        g = nx.connected_watts_strogatz_graph(int(n), int(k), float(p), tries=int(tries),
                                              seed=_seed_from(rng))
        return _edges_array(g.edges)
    for _ in range(tries):
        edges = watts_strogatz(n, k, p, rng)
        if is_connected(n, edges):
            return edges
    raise RuntimeError(f"no connected Watts–Strogatz graph (n={n}, k={k}, p={p}) in {tries} tries")


def thesis_graph(generator: str, rng: np.random.Generator, *, use_networkx: bool = False
                 ) -> tuple[int, np.ndarray]:
    """The thesis' sampling: ``n ~ Uniform{10..50}``; ``"ba"``: BA(n, n // 10);
    ``"ws"``: connected WS(n, n // 5, p = 1, tries = 10). Returns ``(n, edges)``."""
    n = int(rng.integers(10, 51))
    if generator == "ba":
        return n, barabasi_albert(n, n // 10, rng, use_networkx=use_networkx)
    if generator == "ws":
        return n, connected_watts_strogatz(n, n // 5, 1.0, 10, rng, use_networkx=use_networkx)
    raise ValueError(f"generator must be 'ba' or 'ws', got {generator!r}")


def adjacency(n: int, edges, directed: bool = False):
    """Sparse 0/1 adjacency ``(n, n)`` (``scipy.sparse.csr_array``), symmetric unless directed."""
    from scipy.sparse import csr_array

    e = _check_edges(n, edges)
    rows, cols = (e[:, 0], e[:, 1]) if directed else (np.r_[e[:, 0], e[:, 1]],
                                                       np.r_[e[:, 1], e[:, 0]])
    a = csr_array((np.ones(rows.size), (rows, cols)), shape=(n, n))
    a.data[:] = 1.0  # duplicates collapse to one edge
    return a


def _check_edges(n: int, edges) -> np.ndarray:
    e = np.asarray(edges)
    if e.size == 0:
        return np.zeros((0, 2), np.int64)
    if e.dtype.kind not in "iu" or e.ndim != 2 or e.shape[1] != 2:
        raise ValueError(f"edges must be an integer array (E, 2), got {e.dtype} {e.shape}")
    if e.min() < 0 or e.max() >= n:
        raise ValueError(f"edge endpoints must lie in [0, {n}), got range [{e.min()}, {e.max()}]")
    if (e[:, 0] == e[:, 1]).any():
        raise ValueError("self-loops are not allowed")
    return e.astype(np.int64)


def orient_dag(n: int, undirected_edges) -> np.ndarray:
    """Orient every edge from the lower to the higher id: ``{u, v} -> (min, max)``; a DAG."""
    e = _check_edges(n, undirected_edges)
    return _edges_array(map(tuple, e))


def layer_index(n: int, directed_edges) -> tuple[np.ndarray, list[list[int]]]:
    """Longest-path layering of a DAG: ``(layer_of (n,) int64, layers)``.

    ``layer(v) = 0`` if v has no parent, else ``1 + max_{u -> v} layer(u)``. Vertices are visited
    in increasing id; a vertex's parents (in increasing id) are resolved first (memoised DFS), and
    each vertex is appended to its layer when its layer is first known. ``layers`` is sorted by
    depth. Depends only on the edge *set*, not on the order the edges are given in.
    Raises ``ValueError`` on a cycle.
    """
    e = _check_edges(n, directed_edges)
    parents: list[list[int]] = [[] for _ in range(n)]
    for u, v in sorted({(int(u), int(v)) for u, v in e}):
        parents[v].append(u)
    layer_of = np.full(n, -1, np.int64)
    layers: dict[int, list[int]] = {}
    on_stack = np.zeros(n, bool)

    def resolve(v: int) -> int:
        if layer_of[v] >= 0:
            return int(layer_of[v])
        if on_stack[v]:
            raise ValueError(f"directed_edges contain a cycle through vertex {v}")
        on_stack[v] = True
        depth = 1 + max((resolve(u) for u in parents[v]), default=-1)
        on_stack[v] = False
        layer_of[v] = depth
        layers.setdefault(depth, []).append(v)
        return depth

    for v in range(n):
        resolve(v)
    return layer_of, [layers[d] for d in sorted(layers)]


def layer_connectivity(layers: list[list[int]], directed_edges
                       ) -> dict[tuple[int, int], np.ndarray]:
    """``{(j, k): E_jk}`` for every pair of layers ``j < k`` joined by at least one edge, where
    ``E_jk[a, b] = 1`` iff there is an edge from ``layers[j][b]`` to ``layers[k][a]``
    (shape ``(s_k, s_j)``, int8). Edges within a layer or backwards raise ``ValueError``."""
    where = {v: (k, i) for k, layer in enumerate(layers) for i, v in enumerate(layer)}
    out: dict[tuple[int, int], np.ndarray] = {}
    for u, v in np.asarray(directed_edges, np.int64).reshape(-1, 2):
        (j, b), (k, a) = where[int(u)], where[int(v)]
        if j >= k:
            raise ValueError(f"edge {u} -> {v} does not go to a deeper layer ({j} -> {k})")
        E = out.setdefault((j, k), np.zeros((len(layers[k]), len(layers[j])), np.int8))
        E[a, b] = 1
    return dict(sorted(out.items()))


def expand_gate_mask(E, gates: int, layout: str = "tile") -> np.ndarray:
    """Per-unit mask ``E (s_k, s_j)`` -> weight mask ``(G * s_k, s_j)`` (bool).

    ``"tile"`` (correct): gate block g (rows ``g*s_k .. (g+1)*s_k - 1``) is a copy of E, matching
    the contiguous gate blocks of ``weight_ih``. ``"thesis_repeat"`` reproduces the thesis code's
    ``np.repeat(E, G, axis=0)``: row r gets unit ``r // G``'s connectivity, which misaligns the
    graph with the gate blocks for G > 1. Both coincide for G = 1.
    """
    E = np.asarray(E).astype(bool)
    if E.ndim != 2:
        raise ValueError(f"E must be a 2-D mask (s_k, s_j), got shape {E.shape}")
    if gates < 1:
        raise ValueError(f"gates must be >= 1, got {gates}")
    if layout == "tile":
        return np.tile(E, (gates, 1))  # (G*s_k, s_j)
    if layout == "thesis_repeat":
        return np.repeat(E, gates, axis=0)  # (G*s_k, s_j), the thesis' misaligned layout
    raise ValueError(f"layout must be 'tile' or 'thesis_repeat', got {layout!r}")
