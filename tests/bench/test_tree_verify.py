"""``refseq bench tree_verify`` on a tiny case: every row present, every tier (and the
benchmark's own torch implementation) gives the NumPy tier's integer outputs, the generated trees
have the stated shape; speed is reported, never asserted."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.bench import tree_verify as bt

TINY = dict(bt.CASE, B=6, N=24, V=50, max_depth=4, seed=1)


def test_bench_tree_verify_rows_are_complete_and_agree():
    rows = bt.bench_tree_verify(TINY, repeats=1, log=lambda r: None)
    whats = [r["what"] for r in rows]
    tiers = ("numpy", "jit kernel", "jit", "cuda", "torch CPU")
    assert whats[2:] == [f"{v} {t}" for v in ("greedy", "stochastic iid") for t in tiers]
    assert whats[0].startswith("copy all of target+draft") and "rows the walks read" in whats[1]
    for r in rows:
        if r["outputs"].startswith("skipped"):
            assert np.isnan(r["ms"]) and r["what"].endswith(("cuda", "torch CPU"))
            continue
        assert r["ms"] > 0, r
        if r["what"].endswith("numpy"):
            assert r["outputs"].startswith("reference") and r["vs numpy"] == 1.0
        elif not r["what"].startswith("copy"):
            assert r["outputs"] == "same", r  # flagged trees included: none differ here
    stochastic = [r for r in rows if r["what"].startswith("stochastic")]
    assert all(r["vs copy"] > 0 for r in stochastic if np.isfinite(r["ms"]))
    table = bt.format_rows(rows)
    assert len(table.splitlines()) == len(rows) + 2 and "vs copy" in table


def test_no_numpy_skips_timing_the_numpy_tier():
    rows = bt.bench_tree_verify(TINY, repeats=1, numpy_reference=False, log=lambda r: None)
    numpy_rows = [r for r in rows if r["what"].endswith("numpy")]
    assert len(numpy_rows) == 2
    assert all(r["outputs"].startswith("skipped: --no-numpy") and np.isnan(r["ms"])
               for r in numpy_rows)
    assert all(r["outputs"] == "same" for r in rows if " jit" in r["what"])


def _walk_depth(parents, i):
    d = 0
    while parents[i] >= 0:
        i, d = parents[i], d + 1
    return d


def test_make_case_trees_and_probabilities():
    kw, argmax = bt.make_case(TINY)
    B, N, V = TINY["B"], TINY["N"], TINY["V"]
    par = kw["parents"]
    assert par.shape == (B, N) and (par[:, 0] == -1).all()
    assert (par[:, 1:] < np.arange(1, N)).all() and (par[:, 1:] >= 0).all()  # topological
    assert max(_walk_depth(par[b], i) for b in range(B) for i in range(N)) <= TINY["max_depth"]
    for p in (kw["target_probs"], kw["draft_probs"]):
        assert p.dtype == np.float32 and p.shape == (B, N, V) and (p > 0).all()
        np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    assert not np.array_equal(kw["target_probs"], kw["draft_probs"])
    for b in range(B):  # a child's token has positive draft mass at its parent
        assert (kw["draft_probs"][b, par[b, 1:], kw["tokens"][b, 1:]] > 0).all()
    assert (argmax == kw["target_probs"].argmax(-1)).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_implementations_equal_the_reference_walks(seed):
    torch = pytest.importorskip("torch")
    from refseq.tree_verify import reference as ref

    kw, argmax = bt.make_case(dict(TINY, seed=seed, V=7))
    B, N = kw["parents"].shape
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in kw.items() if k not in ("mode", "virtual")}
    gp, ga, gn = bt.torch_greedy(torch, t["parents"], t["tokens"], torch.from_numpy(argmax),
                                 t["num_nodes"], N)
    sp, sa, sn = bt.torch_stochastic(torch, t["parents"], t["tokens"], t["target_probs"],
                                     t["draft_probs"], t["u_accept"], t["u_final"],
                                     t["num_nodes"], N)
    flagged, _ = bt.boundary_and_rows(kw)
    for b in range(B):  # the per-tree walks of refseq.tree_verify.reference, one at a time
        path, nxt = ref.walk_greedy(kw["parents"][b], kw["tokens"][b], argmax[b], N)
        assert gp[b, :len(path)].tolist() == path and int(ga[b]) == len(path) - 1
        assert int(gn[b]) == nxt and (gp[b, len(path):] == -1).all()
        if flagged[b]:
            continue
        path, nxt = ref.walk_stochastic(kw["parents"][b], kw["tokens"][b],
                                        kw["target_probs"][b], kw["draft_probs"][b], 0,
                                        np.zeros(N, np.uint8), kw["u_accept"][b],
                                        kw["u_final"][b], N)
        assert sp[b, :len(path)].tolist() == path and int(sa[b]) == len(path) - 1
        assert int(sn[b]) == nxt


def test_agree_reports_a_difference_outside_flagged_trees():
    want = (np.array([[0, 1], [0, -1]]), np.array([1, 0]), np.array([5, 6]))
    got = (want[0], want[1], np.array([5, 7]))
    assert bt._agree(got, want, np.array([False, False])) == "DIFFERENT"
    assert bt._agree(got, want, np.array([False, True])) == "same (1 flagged trees differ)"
    assert bt._agree(want, want, np.array([False, False])) == "same"
