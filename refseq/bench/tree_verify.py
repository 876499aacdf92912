"""``refseq bench tree_verify``: greedy and stochastic verification of a batch of draft trees
(:mod:`refseq.tree_verify`) per tier, beside a straightforward torch CPU implementation of the
same rules and a memory copy of the probabilities the stochastic walk reads.

Case: ``B`` trees of ``N`` nodes (depth <= 8, 1-4 children per expanded node, node ids in
creation order so ``parents[i] < i``), vocabulary ``V``, float32. Draft rows are a softmax of
random logits, target rows a softmax of a perturbed copy; every child's token is drawn from its
parent's draft row, so acceptance is neither certain nor impossible. Greedy uses the target's
arg-max. Stochastic mode is ``iid`` (Leviathan et al., arXiv 2211.17192; SpecInfer, arXiv
2305.09781, Sec. 4.2).

Rows per verifier: ``numpy`` (public function, argument checks included), ``jit kernel`` (the
Numba twin on validated arrays), ``jit`` (public function), ``cuda`` (public function, host
arrays, transfers included; skipped without a GPU), ``torch CPU`` (this module's loop over trees
and depth, vectorised over V, on validated tensors). Two copy rows: a 2-thread ``np.copyto`` of
all of ``target_probs`` and ``draft_probs`` (what a kernel reading every row once would move),
and of only the distinct rows the walks read. Each verifier row says whether its integer
outputs equal the NumPy tier's on every tree the boundary rule does not flag
(docs/hot-paths/tree-verify.md, "Tie and boundary rules"). Speed is reported, never asserted.
"""

from __future__ import annotations

import numpy as np

from refseq.bench import best_time, copy_bandwidth, format_table
from refseq.tree_verify import reference as ref

CASE = {"B": 64, "N": 64, "V": 32000, "max_depth": 8, "max_children": 4, "scale": 4.0,
        "noise": 1.0, "seed": 0}
IID = 0


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))  # (B, N, V)
    return e / e.sum(-1, keepdims=True)


def make_case(case=CASE):
    """Keyword arguments of ``tree_verify_stochastic`` (mode iid) and the greedy arg-max.

    Returns ``(kw, target_argmax)``; ``kw["target_probs"]`` and ``kw["draft_probs"]`` are
    (B, N, V) float32, the tree arrays (B, N) int32.
    """
    B, N, V = case["B"], case["N"], case["V"]
    rng = np.random.default_rng(case["seed"])
    logits = case["scale"] * rng.standard_normal((B, N, V), dtype=np.float32)
    draft = _softmax(logits)  # (B, N, V)
    logits += case["noise"] * rng.standard_normal((B, N, V), dtype=np.float32)
    target = _softmax(logits)  # (B, N, V)
    del logits
    parents = np.full((B, N), -1, np.int32)
    tokens = np.zeros((B, N), np.int32)
    for b in range(B):
        depth, open_ = [0], [0]  # nodes that may still receive children
        while len(depth) < N:
            u = open_.pop(rng.integers(len(open_))) if open_ else 0
            k = min(int(rng.integers(1, case["max_children"] + 1)), N - len(depth))
            q = draft[b, u].astype(np.float64)
            tokens[b, len(depth):len(depth) + k] = rng.choice(V, size=k, p=q / q.sum())
            for _ in range(k):
                parents[b, len(depth)] = u
                if depth[u] + 1 < case["max_depth"]:
                    open_.append(len(depth))
                depth.append(depth[u] + 1)
        tokens[b, 0] = 0
    kw = dict(parents=parents, tokens=tokens, target_probs=target, draft_probs=draft, mode=IID,
              virtual=None, u_accept=rng.random((B, N)), u_final=rng.random(B),
              num_nodes=np.full(B, N, np.int32))
    return kw, np.argmax(target, axis=2).astype(np.int32)


def boundary_and_rows(kw):
    """``(flagged (B,) bool, rows_read)``: trees whose reference walk has a decision margin
    below the dtype's tolerance (acceptance gap, CDF step, positive residual mass), and the
    number of distinct (B, N) rows of target and draft the walks read."""
    tol = ref.BOUNDARY_TOL[kw["target_probs"].dtype]
    B = kw["parents"].shape[0]
    flagged, rows = np.zeros(B, bool), 0
    virt = np.zeros(kw["parents"].shape, np.uint8)
    for b in range(B):
        path, _, trace = ref.margins(kw["parents"][b], kw["tokens"][b], kw["target_probs"][b],
                                     kw["draft_probs"][b], kw["mode"], virt[b],
                                     kw["u_accept"][b], kw["u_final"][b], kw["num_nodes"][b])
        flagged[b] = any(abs(m) < tol if kind != "mass" else 0 < m < tol for kind, m in trace)
        n, par = kw["num_nodes"][b], kw["parents"][b]
        expanded = [u for u in path if (par[1:n] == u).any()]  # the draft rows read
        rows += len(path) + len(expanded)
    return flagged, rows


# --- the torch CPU implementation of the same rules --------------------------------------------

def torch_greedy(torch, parents, tokens, argmax, num_nodes, width):
    """Greedy walk per tree, children found by a vectorised comparison over the tree's nodes."""
    B = parents.shape[0]
    path = torch.full((B, width), -1, dtype=torch.int32)
    num_acc = torch.zeros(B, dtype=torch.int32)
    nxt = torch.zeros(B, dtype=torch.int32)
    for b in range(B):
        n = int(num_nodes[b])
        par, tok, am = parents[b, :n], tokens[b, :n], argmax[b]
        node, d = 0, 0
        path[b, 0] = 0
        while True:
            hit = torch.nonzero((par == node) & (tok == am[node]))  # (hits, 1), sibling order
            if hit.numel() == 0:
                break
            node, d = int(hit[0, 0]), d + 1
            path[b, d] = node
        num_acc[b], nxt[b] = d, am[node]
    return path, num_acc, nxt


def torch_stochastic(torch, parents, tokens, target, draft, u_accept, u_final, num_nodes, width):
    """Recursive rejection sampling (iid proposals) per tree and depth, in float64 over V."""
    B = parents.shape[0]
    path = torch.full((B, width), -1, dtype=torch.int32)
    num_acc = torch.zeros(B, dtype=torch.int32)
    nxt = torch.zeros(B, dtype=torch.int32)
    for b in range(B):
        n = int(num_nodes[b])
        par = parents[b, :n]
        node, d = 0, 0
        path[b, 0] = 0
        P = target[b, 0].double()  # (V,)
        while True:
            kids = torch.nonzero(par == node).flatten().tolist()  # sibling order
            Q = draft[b, node].double() if kids else None  # (V,)
            accepted = -1
            for c in kids:
                y = int(tokens[b, c])
                if float(u_accept[b, c]) * float(Q[y]) < float(P[y]):
                    accepted = c
                    break
                r = torch.clamp(P - Q, min=0.0)  # (V,)
                s = float(r.sum())
                if s > 0:
                    P = r / s
            if accepted < 0:
                break
            node, d = accepted, d + 1
            path[b, d] = node
            P = target[b, node].double()
        cdf = torch.cumsum(P, 0)  # (V,)
        pos = P > 0
        hit = torch.nonzero(pos & (cdf > float(u_final[b]) * float(cdf[-1])))
        num_acc[b] = d
        nxt[b] = int(hit[0, 0]) if hit.numel() else int(torch.nonzero(pos)[-1, 0])
    return path, num_acc, nxt


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# --- the benchmark -------------------------------------------------------------------------------

def _agree(got, want, flagged):
    """"same" when every unflagged tree's integer outputs equal the NumPy tier's."""
    got = [np.asarray(g) for g in got]
    ok = all(g.shape == w.shape and (g[~flagged] == w[~flagged]).all()
             for g, w in zip(got, want))
    diff = sum(int((g != w).reshape(len(flagged), -1).any(1)[flagged].sum())
               for g, w in zip(got[1:], want[1:]))  # flagged trees that differ
    return ("same" if ok else "DIFFERENT") + (f" ({diff} flagged trees differ)" if diff else "")


def bench_tree_verify(case=CASE, repeats=5, numpy_reference=True, log=print):
    """Rows ``{"what", "ms", "vs numpy", "vs copy", "outputs"}`` (see the module docstring);
    ``numpy_reference=False`` skips timing the NumPy tier (its outputs, the reference, are still
    computed once).

    The numpy rows' ``outputs`` give the number of trees flagged near a decision boundary and
    the mean accepted length; the other rows "same" or "DIFFERENT" against them, or
    "skipped: <reason>" (then ``ms`` is NaN).
    """
    import refseq.jit.tree_verify as J
    from refseq.cuda import availability, simulating
    from refseq.tree_verify import tree_verify_greedy, tree_verify_stochastic
    from refseq.tree_verify.checks import check_stochastic_args

    kw, argmax = make_case(case)
    flagged, rows_read = boundary_and_rows(kw)
    (parents, tokens, target, draft, mode, virt, u_acc, u_fin, num_nodes,
     depth) = check_stochastic_args(**kw)
    width = int(depth.max()) + 1
    tree = (kw["parents"], kw["tokens"])
    nan = float("nan")
    rows = []
    copy_ms = {}

    def add(what, t, t_np=None, outputs="", copy=None):
        rows.append({"what": what, "ms": t * 1e3 if t is not None else nan,
                     "vs numpy": t_np / t if t_np and t else nan,
                     "vs copy": copy / t if copy and t else nan, "outputs": outputs})
        log(rows[-1])

    # copies first: their times are the denominators of the stochastic rows
    row_bytes = case["V"] * target.itemsize
    for label, nbytes in (("all of target+draft", target.nbytes + draft.nbytes),
                          (f"the {rows_read} rows the walks read", rows_read * row_bytes)):
        t = 2 * nbytes / copy_bandwidth(2 * nbytes, repeats)  # read nbytes, write nbytes
        copy_ms[label] = t
        add(f"copy {label}: {nbytes / 1e6:.1f} MB, 2-thread np.copyto", t)
    t_copy = copy_ms["all of target+draft"]

    greedy_args = (*tree, argmax, kw["num_nodes"])
    want_g = tree_verify_greedy(*greedy_args)
    want_s = tree_verify_stochastic(**kw)
    torch = _torch()
    if torch is not None:  # zero-copy views of the validated arrays
        tg = [torch.from_numpy(x) for x in (parents, tokens, argmax, num_nodes)]
        ts = [torch.from_numpy(x) for x in (parents, tokens, target, draft, u_acc, u_fin,
                                            num_nodes)]
    tests = {
        "greedy": (want_g, None, {
            "numpy": lambda: tree_verify_greedy(*greedy_args),
            "jit kernel": lambda: J.tree_verify_greedy(parents, tokens, argmax, num_nodes, width),
            "jit": lambda: tree_verify_greedy(*greedy_args, backend="jit"),
            "cuda": lambda: tree_verify_greedy(*greedy_args, backend="cuda"),
            "torch CPU": None if torch is None else lambda: torch_greedy(torch, *tg, width),
        }),
        "stochastic iid": (want_s, t_copy, {
            "numpy": lambda: tree_verify_stochastic(**kw),
            "jit kernel": lambda: J.tree_verify_stochastic(parents, tokens, target, draft, mode,
                                                           virt, u_acc, u_fin, num_nodes, width),
            "jit": lambda: tree_verify_stochastic(**kw, backend="jit"),
            "cuda": lambda: tree_verify_stochastic(**kw, backend="cuda"),
            "torch CPU": None if torch is None else lambda: torch_stochastic(torch, *ts, width),
        }),
    }
    cuda_ok, why = availability()
    if cuda_ok and simulating():
        cuda_ok, why = False, "CUDA simulator only"
    threads = None
    if torch is not None:
        import numba

        threads = torch.get_num_threads()
        torch.set_num_threads(numba.get_num_threads())
    try:
        for verifier, (want, copy, fns) in tests.items():
            t_np = None
            for tier, fn in fns.items():
                what = f"{verifier} {tier}"
                if tier == "cuda" and not cuda_ok:
                    add(what, None, outputs=f"skipped: {why}")
                    continue
                if fn is None:
                    add(what, None, outputs="skipped: torch is not installed")
                    continue
                if tier == "numpy" and not numpy_reference:
                    add(what, None, outputs="skipped: --no-numpy (the reference outputs are "
                                            "still computed once)")
                    continue
                t = best_time(fn, 1 if tier == "numpy" else repeats)
                if tier == "numpy":
                    t_np, note = t, (f"reference; {int(flagged.sum())} of {len(flagged)} trees "
                                     f"flagged, mean accepted {want[1].mean():.2f}")
                else:
                    note = _agree(fn(), want, flagged)
                add(what, t, t_np, note, copy)
    finally:
        if threads is not None:
            torch.set_num_threads(threads)
    return rows


def format_rows(rows) -> str:
    return format_table(rows, ["what", "ms", "vs numpy", "vs copy", "outputs"],
                        {"ms": "{:.2f}", "vs numpy": "{:.1f}x", "vs copy": "{:.2f}x"},
                        right=(1, 2, 3))


def main(args) -> int:
    c = CASE
    print(f"refseq bench tree_verify: B={c['B']} trees of N={c['N']} nodes (depth <= "
          f"{c['max_depth']}, 1-{c['max_children']} children), V={c['V']}, float32; best of "
          f"{args.repeats} (numpy: 1) after a warm-up. 'jit kernel' = Numba twin on validated "
          "arrays; 'numpy'/'jit'/'cuda' = public function, checks included (the tree "
          "arrays, then the probability rows the walks read); 'torch CPU' = a per-tree, "
          "per-depth torch loop of the same rule on validated tensors; 'vs copy' = copy of all "
          "target+draft bytes / row time; 'outputs' "
          "= integer outputs vs the NumPy tier on trees not flagged near a decision boundary\n",
          flush=True)
    print(format_rows(bench_tree_verify(repeats=args.repeats, numpy_reference=not args.no_numpy,
                                        log=lambda r: None)))
    return 0
