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

from refseq import _checks

LAYOUTS = ("tile", "thesis_repeat")


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
    use_networkx = _checks.check_flag(use_networkx, "use_networkx")
    n = _checks.check_number(n, "n", integer=True)
    m = _checks.check_number(m, "m", integer=True)
    rng = _checks.check_rng(rng)
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
    n = _checks.check_number(n, "n", integer=True, low=0)
    k = _checks.check_number(k, "k", integer=True)
    if not 0 <= k <= n:
        raise ValueError(f"Watts–Strogatz needs 0 <= k <= n, got k = {k}, n = {n}")
    p = _checks.check_number(p, "p", low=0, high=1)
    rng = _checks.check_rng(rng)
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

    n, e = _check_edges(n, edges, "edges")
    if n <= 1:
        return True
    n_comp, _ = connected_components(adjacency(n, e), directed=False)
    return n_comp == 1


def connected_watts_strogatz(n: int, k: int, p: float, tries: int, rng: np.random.Generator, *,
                             use_networkx: bool = False) -> np.ndarray:
    """:func:`watts_strogatz` redrawn up to ``tries`` times until connected; raises
    ``RuntimeError`` when no draw is (networkx raises ``NetworkXError``)."""
    use_networkx = _checks.check_flag(use_networkx, "use_networkx")
    tries = _checks.check_number(tries, "tries", integer=True, low=1)
    rng = _checks.check_rng(rng)
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
    use_networkx = _checks.check_flag(use_networkx, "use_networkx")
    _checks.check_choice(generator, "generator", ("ba", "ws"))
    rng = _checks.check_rng(rng)
    n = int(rng.integers(10, 51))
    if generator == "ba":
        return n, barabasi_albert(n, n // 10, rng, use_networkx=use_networkx)
    if generator == "ws":
        return n, connected_watts_strogatz(n, n // 5, 1.0, 10, rng, use_networkx=use_networkx)
    raise ValueError(f"generator must be 'ba' or 'ws', got {generator!r}")


def adjacency(n: int, edges, directed: bool = False):
    """Sparse 0/1 adjacency ``(n, n)`` (``scipy.sparse.csr_array``), symmetric unless directed."""
    from scipy.sparse import csr_array

    directed = _checks.check_flag(directed, "directed")
    n, e = _check_edges(n, edges, "edges")
    rows, cols = (e[:, 0], e[:, 1]) if directed else (np.r_[e[:, 0], e[:, 1]],
                                                       np.r_[e[:, 1], e[:, 0]])
    a = csr_array((np.ones(rows.size), (rows, cols)), shape=(n, n))
    a.data[:] = 1.0  # duplicates collapse to one edge
    return a


def _check_edges(n: int, edges, name: str) -> tuple[int, np.ndarray]:
    """``(n, edges (E, 2) int64)`` with every endpoint in ``[0, n)`` and no self-loop; messages
    name ``n`` and the edge argument ``name``. An empty edge list is allowed."""
    n = _checks.check_number(n, "n", integer=True, low=0)
    if np.size(edges) == 0:
        return n, np.zeros((0, 2), np.int64)
    e = _checks.int_array(edges, name, ndim=2, form="(E, 2)")
    _checks.check_shape(e, (len(e), 2), name, "(E, 2)")
    if e.min() < 0 or e.max() >= n:
        raise ValueError(f"{name} endpoints must lie in [0, n) = [0, {n}), got range "
                         f"[{e.min()}, {e.max()}]")
    if (e[:, 0] == e[:, 1]).any():
        raise ValueError(f"{name}: self-loops are not allowed")
    return n, e.astype(np.int64)


def orient_dag(n: int, undirected_edges) -> np.ndarray:
    """Orient every edge from the lower to the higher id: ``{u, v} -> (min, max)``; a DAG."""
    _, e = _check_edges(n, undirected_edges, "undirected_edges")
    return _edges_array(map(tuple, e))


def layer_index(n: int, directed_edges) -> tuple[np.ndarray, list[list[int]]]:
    """Longest-path layering of a DAG: ``(layer_of (n,) int64, layers)``.

    ``layer(v) = 0`` if v has no parent, else ``1 + max_{u -> v} layer(u)``. Vertices are visited
    in increasing id; a vertex's parents (in increasing id) are resolved first (memoised DFS), and
    each vertex is appended to its layer when its layer is first known. ``layers`` is sorted by
    depth. Depends only on the edge *set*, not on the order the edges are given in.
    Raises ``ValueError`` on a cycle.
    """
    n, e = _check_edges(n, directed_edges, "directed_edges")
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


def _check_layers(layers, name: str = "layers") -> list[list[int]]:
    """``layers`` as a non-empty list of non-empty lists of distinct non-negative vertex ids."""
    if not isinstance(layers, (list, tuple)) or not all(
            isinstance(layer, (list, tuple, np.ndarray)) for layer in layers):
        raise TypeError(f"{name} must be a list of vertex lists, got {type(layers).__name__}")
    if not layers or not all(len(layer) for layer in layers):
        raise ValueError(f"{name} must be a non-empty list of non-empty vertex lists, "
                         f"got {layers!r}")
    out = [[_checks.check_number(v, f"{name}[{k}][{i}]", integer=True, low=0)
            for i, v in enumerate(layer)] for k, layer in enumerate(layers)]
    flat = [v for layer in out for v in layer]
    if len(set(flat)) != len(flat):
        raise ValueError(f"{name} must hold every vertex once, got {out}")
    return out


def _check_layered_edges(layers: list[list[int]], directed_edges, name: str = "directed_edges"
                         ) -> np.ndarray:
    """``directed_edges (E, 2)`` int64 whose endpoints are all vertices of ``layers``."""
    e = np.asarray(directed_edges)
    if e.size == 0:
        return np.zeros((0, 2), np.int64)
    e = _checks.int_array(e, name, ndim=2, form="(E, 2)")
    _checks.check_shape(e, (len(e), 2), name, "(E, 2)")
    unknown = np.setdiff1d(e, [v for layer in layers for v in layer])
    if unknown.size:
        raise ValueError(f"{name} endpoints must be vertices of layers; {unknown.tolist()} "
                         "are in no layer")
    return e.astype(np.int64)


def layer_connectivity(layers: list[list[int]], directed_edges
                       ) -> dict[tuple[int, int], np.ndarray]:
    """``{(j, k): E_jk}`` for every pair of layers ``j < k`` joined by at least one edge, where
    ``E_jk[a, b] = 1`` iff there is an edge from ``layers[j][b]`` to ``layers[k][a]``
    (shape ``(s_k, s_j)``, int8). Edges within a layer or backwards raise ``ValueError``."""
    layers = _check_layers(layers)
    e = _check_layered_edges(layers, directed_edges)
    where = {v: (k, i) for k, layer in enumerate(layers) for i, v in enumerate(layer)}
    out: dict[tuple[int, int], np.ndarray] = {}
    for u, v in e:
        (j, b), (k, a) = where[int(u)], where[int(v)]
        if j >= k:
            raise ValueError(f"directed_edges: edge {u} -> {v} does not go to a deeper layer "
                             f"({j} -> {k})")
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
    gates = _checks.check_number(gates, "gates", integer=True, low=1)
    _checks.check_choice(layout, "layout", LAYOUTS)
    E = np.asarray(E)
    if E.dtype.kind not in "biuf":
        raise TypeError(f"E must be a 0/1 or boolean mask (s_k, s_j), got dtype {E.dtype}")
    if E.ndim != 2:
        raise ValueError(f"E must be a 2-D mask (s_k, s_j), got shape {E.shape}")
    if E.size and not np.isin(E, (0, 1)).all():
        raise ValueError("E must be a 0/1 or boolean mask (s_k, s_j); it holds other values")
    E = E.astype(bool)
    if layout == "tile":
        return np.tile(E, (gates, 1))  # (G*s_k, s_j)
    return np.repeat(E, gates, axis=0)  # (G*s_k, s_j), the thesis' misaligned layout
