"""DySpec's threshold variant: the same tree built layer by layer, one batched draft call per
layer (Xiong et al., arXiv 2410.11744, Sec. 4.3, Algorithm 2).

A slot is drawn iff its value is strictly greater than the threshold ``t``. Slot values only
decrease along the slot tree (children and next siblings of a slot are worth at most the slot),
so the slots above ``t`` form a subtree of the slot tree, and the tree built with threshold
``t`` equals the greedy tree (Algorithm 1) with budget ``#{slots with value > t}`` when both
draw the same token for the same slot (:class:`~refseq.papers.dyspec.samplers.KeyedSampler`).

The listing's loop test reads ``while v_i < t``; it must be ``v_i > t`` (with ``<`` the loop
would draw exactly the worthless slots). With a cap ``max_nodes`` on the number of draft nodes
the result depends on the order in which a layer's nodes are expanded; the order is fixed to
descending value, ties in creation order.
"""

from __future__ import annotations

from refseq import _checks
from refseq.papers.dyspec.heap import DySpecTree, _Growing, _sampler, _token

__all__ = ["build_tree_threshold"]


def build_tree_threshold(draft, context, root, threshold, *, max_nodes=None,
                         sampler=None) -> DySpecTree:
    """Algorithm 2: draw every slot whose value exceeds ``threshold``, one layer at a time.

    Parameters
    ----------
    draft : DraftLM
        Reset to ``(context, root)`` first; one ``probs`` call per layer (for the nodes of the
        layer whose value exceeds the threshold).
    context : (n,) int
        Committed tokens before the root.
    root : int
        The root token.
    threshold : float in [0, 1)
        A slot is drawn iff its value is ``> threshold``.
    max_nodes : int >= 0, optional
        Cap on the number of draft nodes; a layer's nodes are then expanded in descending value
        (ties: creation order) until the cap is reached.
    sampler : callable ``(residual (V,), key) -> token``, optional
        As in :func:`~refseq.papers.dyspec.heap.build_tree_greedy`.

    Returns
    -------
    DySpecTree
        ``popped_values`` in draw order (layer by layer, not sorted); ``leftover_values`` the
        values of the slots left undrawn at the nodes that were expanded or scored.
    """
    threshold = _checks.check_number(threshold, "threshold", low=0, high=1, high_open=True)
    max_nodes = _checks.check_number(max_nodes, "max_nodes", integer=True, low=0,
                                     allow_none=True)
    sampler = _sampler(sampler)
    g = _Growing(draft, context, root)

    def room() -> bool:
        return max_nodes is None or g.drafts < max_nodes

    frontier = [(0, 1.0)]  # (node, value of its first-child slot = val(node))
    while frontier:
        if not room():  # cut by max_nodes
            g.leftover += [v for _, v in frontier]
            break
        todo = [(u, v) for u, v in frontier if v > threshold]
        g.leftover += [v for u, v in frontier if v <= threshold]
        if not todo:
            break
        if max_nodes is not None:
            todo.sort(key=lambda uv: -uv[1])  # stable: ties keep creation order
        D = g.dist([u for u, _ in todo])  # one batched draft call per layer
        new = []
        for (u, v), row in zip(todo, D):
            R, j = row.copy(), 0
            while v > threshold and room():
                y = _token(sampler, R, (g.prefixes[u], j))
                c = g.add(u, y, v * R[y])
                g.popped.append(v)
                new.append((c, v * R[y]))
                v = v * (1.0 - R[y])
                R[y] = 0.0
                if not R.sum() > 0:  # support exhausted: no further sibling
                    v = 0.0
                    break
                R, j = R / R.sum(), j + 1
            if v > 0:
                g.leftover.append(v)
        frontier = new
    return g.result()
