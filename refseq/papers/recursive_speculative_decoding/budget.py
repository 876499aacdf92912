"""Cost model and fixed-budget configurations (arXiv 2402.14160, Sec. 4, Exp. 1 and Exp. 2).

- block efficiency: emitted tokens per target call;
- memory-bound speed-up ``MBSU = block_eff / (1 + c * draft_calls_per_step)`` with
  ``c`` = draft size / target size (the cost model of SpecTr and RSD as reconstructed here: a
  memory-bound forward costs the model's size whatever the tree size, so verifying a larger
  tree is free by design, which is why fixed-budget comparisons are reported separately);
- target budget: the number of tree nodes one target call scores (drafts + root).
"""

from __future__ import annotations

import math

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.tree import DraftTree

__all__ = ["block_efficiency", "configs_for_budget", "mbsu", "target_budget"]


def block_efficiency(emitted, target_calls) -> float:
    """``sum(emitted) / target_calls``: tokens per target call. ``emitted``: (steps,) ints."""
    e = _checks.int_array(np.asarray(emitted), "emitted", ndim=1, low=0, form="(steps,)")
    n = _checks.check_number(target_calls, "target_calls", integer=True, low=1)
    return float(e.sum() / n)


def mbsu(block_eff, draft_calls_per_step, c) -> float:
    """Memory-bound speed-up ``block_eff / (1 + c * draft_calls_per_step)``.

    ``block_eff`` > 0 tokens per target call; ``draft_calls_per_step`` >= 0 draft forwards per
    target call (the tree depth for level-wise builders, K for a chain); ``c`` >= 0 the cost of
    a draft forward relative to a target forward.
    """
    b = _checks.check_number(block_eff, "block_eff", low=0, low_open=True)
    d = _checks.check_number(draft_calls_per_step, "draft_calls_per_step", low=0)
    c = _checks.check_number(c, "c", low=0)
    return b / (1.0 + c * d)


def target_budget(tree) -> int:
    """Tokens one target call scores: ``tree.num_nodes`` (drafts + the root)."""
    return _checks.check_instance(tree, DraftTree, "tree").num_nodes


def _drafts(branching) -> int:
    return sum(math.prod(branching[:d + 1]) for d in range(len(branching)))


def _nonincreasing(max_drafts, first_max):
    """Non-increasing branchings with at most ``max_drafts`` drafts, first entry <= first_max."""
    out = []

    def grow(prefix):
        for b in range(1, (prefix[-1] if prefix else first_max) + 1):
            cand = prefix + (b,)
            if _drafts(cand) > max_drafts:
                break
            out.append(cand)
            grow(cand)
    grow(())
    return out


def configs_for_budget(B, *, max_width=None) -> list:
    """Every configuration whose target budget (drafts + 1) is at most ``B``.

    RSD-C and i.i.d. trees with non-increasing branchings ``(b_1 >= b_2 >= ...)``, RSD-S
    ``(W, L)`` with ``W L + 1 <= B`` (its largest possible tree), chains of ``K <= B - 1``.
    Each entry is a dict ``{"method", "branching" | "beam_width", "depth" | "K", "drafts",
    "draft_calls", "budget"}``; ``drafts`` is the largest tree's size (RSD-S may draft fewer).

    Parameters
    ----------
    B : int >= 2 — the target budget (tokens per target call)
    max_width : int, optional — cap on ``b_1`` and W (default ``B - 1``)
    """
    B = _checks.check_number(B, "B", integer=True, low=2)
    wmax = _checks.check_number(max_width, "max_width", integer=True, low=1, allow_none=True)
    wmax = B - 1 if wmax is None else min(wmax, B - 1)
    out = []
    for br in _nonincreasing(B - 1, wmax):
        for method in ("rsd-c", "iid"):
            out.append({"method": method, "branching": br, "drafts": _drafts(br),
                        "draft_calls": len(br), "budget": _drafts(br) + 1})
    for W in range(1, wmax + 1):
        for L in range(1, (B - 1) // W + 1):
            out.append({"method": "rsd-s", "beam_width": W, "depth": L, "drafts": W * L,
                        "draft_calls": L, "budget": W * L + 1})
    for K in range(1, B):
        out.append({"method": "chain", "K": K, "drafts": K, "draft_calls": K, "budget": K + 1})
    return out
