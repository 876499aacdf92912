"""The oracle's contracts of the decoding hot paths, read by :mod:`refseq.oracle.catalog`: the
documentation of the tree-verification and key-value lookup entries of the registry, and the two
speculative-sampler contracts ("is my sampler lossless?", :mod:`refseq.oracle.lossless`)."""

from __future__ import annotations

import numpy as np

__all__ = ["KV_DOCS", "TREE_DOCS"]  # the functions are catalog internals

_TREE_BATCH = {"parents": "(B, N) int, -1 at the root, -2 at padding",
               "tokens": "(B, N) int, -1 at padding", "num_nodes": "(B,) int"}
_WALK = "(path (B, D_max+1) int -1 padded, num_accepted (B,), next_token (B,))"
_TREE_NOTE = ("integer outputs compared exactly (any integer dtype); docs/hot-paths/"
              "tree-verify.md gives the rules and the batch layout")


def kv_reference(cache, n_past, path, num_accepted):
    """The ``kv_commit`` contract's reference: ``(new_n_past, compacted cache)`` on a copy."""
    from refseq.tree_verify import kv_commit

    cache = np.array(cache)  # the contract returns the cache; the reference works on a copy
    return kv_commit(cache, n_past, path, num_accepted), cache


TREE_DOCS = {
    "tree_masks": dict(
        signature="tree_masks(parents, num_nodes, n_past) -> (allow, positions)",
        layouts={**_TREE_BATCH, "n_past": "(B,) int", "allow": "(B, N, N) 0/1",
                 "positions": "(B, N) int"},
        outputs="allow[b, i, j] = 1 iff j is i or an ancestor of i (padding rows: the diagonal "
                "only); positions = n_past + depth (n_past at padding)", notes=_TREE_NOTE),
    "tree_verify_greedy": dict(
        signature="tree_verify_greedy(parents, tokens, target_argmax, num_nodes) -> "
                  "(path, num_accepted, next_token)",
        layouts={**_TREE_BATCH, "target_argmax": "(B, N) int"},
        outputs=_WALK + ": from the root accept the first child (sibling order) whose token is "
                "the target's arg-max at its parent", notes=_TREE_NOTE),
    "tree_verify_greedy_paths": dict(
        signature="tree_verify_greedy_paths(retrieve, retrieve_len, node_token, node_argmax) -> "
                  "(accept_len, best_path, last_node)",
        layouts={"retrieve": "(B, P, D+1) int, -1 padded", "retrieve_len": "(B, P) int",
                 "node_token": "(B, N) int", "node_argmax": "(B, N) int"},
        outputs="Medusa's path form: accepted length per row (-1 on padding rows), the first "
                "longest row, its last accepted node", notes=_TREE_NOTE),
    "tree_verify_stochastic": dict(
        signature="tree_verify_stochastic(parents, tokens, target_probs, draft_probs, mode, "
                  "virtual, u_accept, u_final, num_nodes) -> (path, num_accepted, next_token)",
        layouts={**_TREE_BATCH, "target_probs": "(B, N, V)",
                 "draft_probs": "(B, N, V), or None in point mode",
                 "mode": "int: 0 iid, 1 wor, 2 point", "virtual": "(B, N) uint8 or None",
                 "u_accept": "(B, N) in [0, 1)", "u_final": "(B,) in [0, 1)"},
        outputs=_WALK + ": recursive rejection sampling with the given uniforms (accept iff "
                "u * Q(y) < P(y); final token by inverse CDF in float64)",
        notes=_TREE_NOTE + "; trees with a uniform within 1e-12 (float64) / 1e-5 (float32) of "
              "a decision boundary of the reference may differ"),
    "kv_commit": dict(
        signature="kv_commit(cache, n_past, path, num_accepted) -> (new_n_past, cache)",
        layouts={"cache": "(B, layers, 2, heads, S, dh)", "n_past": "(B,) int",
                 "path": "(B, D+1) int, -1 padded", "num_accepted": "(B,) int"},
        outputs="slots n_past + path[j] copied to n_past + j (increasing j), returned (in place "
                "or not) with n_past + num_accepted + 1", notes=_TREE_NOTE),
}


_KV_NOTE = ("indices compared exactly except on queries whose reference ranking has a near-tie "
            "(consecutive sorted distances within 1e-12 (float64) / 1e-5 (float32) relative); "
            "floats by the forward rule; docs/hot-paths/kv-lookup.md")
KV_DOCS = {
    "kv_lookup": dict(
        signature="kv_lookup(h, keys, values, topk, usage_mask, *, metric) -> "
                  "(idx, dist, fetched)",
        layouts={"h": "(B, C, N, d_k)", "keys": "(C, M, d_k)", "values": "(C, M, d_v)",
                 "topk": "int in [1, M]", "usage_mask": "(C, M) bool or None",
                 "metric": "'l2' or 'cosine'", "idx": "(B, C, N, k) int",
                 "fetched": "(B, C, k, N, d_v)"},
        outputs="the k nearest keys of each query in its codebook by increasing distance "
                "(sum (h - key)^2, or 1 - cos), ties to the lower index, masked keys never; "
                "their distances and values", notes=_KV_NOTE),
    "kv_scatter_add": dict(
        signature="kv_scatter_add(d_fetched, idx, M) -> d_values",
        layouts={"d_fetched": "(B, C, k, N, d_v)", "idx": "(B, C, N, k) int in [0, M)",
                 "d_values": "(C, M, d_v)"},
        outputs="d_values[c, j] = the sum of d_fetched[b, c, r, n] over idx[b, c, n, r] = j "
                "(the backward of the value fetch)"),
    "kv_assign_stats": dict(
        signature="kv_assign_stats(h, keys, usage_mask) -> (counts, sums)",
        layouts={"h": "(B, C, N, d_k)", "keys": "(C, M, d_k)",
                 "usage_mask": "(C, M) bool or None", "counts": "(C, M) int",
                 "sums": "(C, M, d_k)"},
        outputs="for each key, the number and the sum of the queries whose nearest (l2) key "
                "it is", notes=_KV_NOTE),
}


def _sampler_inputs(rng, dims, dtype):
    """One tree of the "point trees" property: (parents, tokens, target_probs, None, "point",
    u_accept, u_final), for :func:`refseq.oracle.replay`."""
    from refseq.oracle.lossless import _rows, tree_cases

    target_fn, _, ctx, trees = tree_cases("point", int(rng.integers(2**31)))
    parents, tokens, prefixes, _ = trees[0]
    u = rng.random(len(parents) + 1)
    return (parents, tokens, _rows(target_fn, ctx, prefixes), None, "point", u[:-1], u[-1]), {}


def register_samplers(register_contract, Contract):
    """Register the two speculative-sampler contracts (:mod:`refseq.oracle.lossless`)."""
    from refseq.oracle import lossless

    layouts = {"parents": "(N,) int, -1 at the root", "tokens": "(N,) int",
               "target_probs": "(N, V)", "draft_probs": "(N, V), None in point mode",
               "mode": "'point', 'iid' or 'wor'"}
    for name, signature in lossless.SAMPLER_CONTRACTS.items():
        explicit = name == "speculative_sampler"
        extra = ({"u_accept": "(N,) in [0, 1)", "u_final": "float in [0, 1)"} if explicit
                 else {"rng": "numpy.random.Generator"})
        register_contract(Contract(
            name=name, signature=signature, layouts={**layouts, **extra},
            outputs="the emitted tokens of one verification step (accepted path, then one more)",
            reference=lossless.reference_sampler if explicit else lossless.reference_sampler_rng,
            make_inputs=_sampler_inputs, dims={"V": (lossless.V, lossless.V)},
            odd_dims={"V": lossless.V}, kind="lossless",
            notes="lossless: exact integration over the uniforms" if explicit else
                  "lossless: statistical test, bound from the sample size"))

