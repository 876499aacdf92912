"""RSD's draft trees: constant branching (RSD-C) and Stochastic Beam Search (RSD-S).

Jeon et al., *Recursive Speculative Decoding*, arXiv 2402.14160, Sec. 3 (RSD-C and RSD-S; the
"Algorithm" boxes of the paper). Both builders draw the siblings of every node without
replacement in Gumbel-top-k order and append them in that order, so the shared verifier
(:func:`~refseq.decoding.speculative.verify.verify_tree_stochastic` with ``mode="wor"``, recursive
rejection sampling) tests them in sampling order. Each level costs one batched draft call on all
frontier nodes (``draft_calls`` = depth).

The draft model ``lm`` is a ``StepLM`` (only ``start(prefixes) -> (logits (R, V), state)`` is
used); its law at a node is ``softmax(warp(logits, temperature, top_p))`` *before* sampling
(filters applied after sampling would look at token identities and bias RSD-S).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refseq import _checks
from refseq.decoding.interfaces import log_softmax
from refseq.decoding.sampling import gumbel_noise, warped_probs
from refseq.decoding.speculative.tree import DraftTree
from refseq.papers.recursive_speculative_decoding.gumbel import _topk
from refseq.papers.recursive_speculative_decoding.truncated_gumbel import _shift

__all__ = ["RSDTree", "constant_branching_tree", "draft_laws", "stochastic_beam_tree"]


@dataclass(frozen=True)
class RSDTree:
    """A drafted tree with what the verifier and the cost model need.

    ``tree`` (N nodes, node 0 the root, siblings in sampling order); ``draft_probs (N, V)``
    float64, row i the law node i's children were drawn from (zeros at leaves);
    ``perturbed (N,)`` the value that ordered node i among its siblings (RSD-C: ``log q + g``;
    RSD-S: the truncated Gumbel ``G``; i.i.d. builders: ``nan``), 0 at the root;
    ``logp (N,)`` ``phi``, the draft log-probability of ``path(i)``; ``draft_calls`` the number
    of batched draft forwards used; ``mode`` the verification rule that matches the draw.
    """

    tree: DraftTree
    draft_probs: np.ndarray
    perturbed: np.ndarray
    logp: np.ndarray
    draft_calls: int
    mode: str

    @property
    def num_drafts(self) -> int:
        """Drafted tokens ``N - 1`` (the target budget of one call is ``N``)."""
        return self.tree.num_nodes - 1


def draft_laws(lm, prefixes, temperature=1.0, top_p=1.0) -> np.ndarray:
    """The draft's warped law after each prefix, in one batched call -> ``(R, V)`` float64.

    ``softmax(warp(logits, temperature=, top_p=))`` (:mod:`refseq.decoding.sampling`), exactly 0
    on tokens removed by top-p. ``lm``: a ``StepLM`` (``start`` and ``vocab_size``);
    ``prefixes``: non-empty list of ``(n,)`` int arrays with tokens in ``[0, V)``;
    ``temperature`` > 0; ``top_p`` in (0, 1].
    """
    lm = _lm(lm, "lm")
    V = _vocab(lm, "lm")
    if isinstance(prefixes, (str, bytes, np.ndarray)) or not isinstance(prefixes, (list, tuple)):
        raise TypeError(f"prefixes must be a non-empty list of (n,) int arrays, got "
                        f"{type(prefixes).__name__}")
    if not prefixes:
        raise ValueError("prefixes must hold at least one prefix, got an empty list")
    rows = []
    for i, pre in enumerate(prefixes):
        a = np.asarray(pre)
        rows.append(_checks.int_array(a if a.size else a.astype(np.int64), f"prefixes[{i}]",
                                      ndim=1, low=0, high=V, form="(n,)"))
    T, p = _warp_args(temperature, top_p)
    return _laws(lm, rows, T, p, V, "lm")


def _laws(lm, prefixes, temperature, top_p, V, name="draft") -> np.ndarray:
    """:func:`draft_laws` on checked arguments; checks the draft's logits ``(R, V)``."""
    logits, _ = lm.start([np.asarray(p, np.int64) for p in prefixes])
    z = np.asarray(logits)
    if z.dtype.kind not in "fiu":
        raise TypeError(f"{name}.start must return real logits (R, V), got dtype {z.dtype}")
    if z.shape != (len(prefixes), V):
        raise ValueError(f"{name}.start must return logits of shape (R, V) = "
                         f"({len(prefixes)}, {V}) ({name}.vocab_size = {V}), got {z.shape}")
    z64 = z.astype(np.float64)
    if np.isnan(z64).any() or np.isposinf(z64).any() or not np.isfinite(z64).any(axis=1).all():
        raise ValueError(f"{name}.start returned logits with NaN, +inf or a row without a finite "
                         f"entry (-inf marks an impossible token)")
    if top_p == 1.0:  # the common case, without the warpers' checks (equal up to rounding)
        return np.exp(log_softmax(z64 / temperature))  # (R, V)
    return warped_probs(z if z.dtype in (np.float32, np.float64) else z64,
                        temperature=temperature, top_p=top_p)


def _lm(lm, name="draft"):
    return _checks.check_methods(lm, name, ("start",),
                                 "a StepLM draft model (start method, e.g. TabularLM)")


def _vocab(lm, name="draft") -> int:
    return _checks.check_number(getattr(lm, "vocab_size", None), f"{name}.vocab_size",
                                integer=True, low=1)


def _context(context, root, V):
    if isinstance(context, (str, bytes)):
        raise TypeError(f"context must be an (n,) int array of token ids, got {context!r:.40}")
    c = np.asarray(context)
    c = _checks.int_array(c if c.size else c.astype(np.int64), "context", ndim=1, low=0,
                          high=V, form="(n,)")
    root = _checks.check_number(root, "root", integer=True, low=0, high=V - 1)
    return [int(t) for t in c], root


def _warp_args(temperature, top_p, prefix=""):
    T = _checks.check_number(temperature, f"{prefix}temperature", low=0, low_open=True)
    p = _checks.check_number(top_p, f"{prefix}top_p", low=0, high=1, low_open=True)
    return T, p


def _assemble(parents, tokens, laws, perturbed, logp, calls, mode, V) -> RSDTree:
    q = np.zeros((len(tokens), V))
    for u, row in laws.items():
        q[u] = row
    tree = DraftTree(np.array(parents, np.int64), np.array(tokens, np.int64))
    return RSDTree(tree, q, np.array(perturbed, np.float64), np.array(logp, np.float64),
                   calls, mode)


def constant_branching_tree(draft, context, root, branching, *, temperature=1.0, top_p=1.0,
                            rng=None) -> RSDTree:
    """RSD-C: every node of depth ``l - 1`` gets ``branching[l-1]`` children without replacement.

    Level by level (arXiv 2402.14160, Sec. 3, RSD-C): one batched draft call on the frontier,
    then per frontier node ``ys = gumbel_topk(log q_u, b_l)``, appended in descending perturbed
    value (their sampling order); fewer children where ``q_u`` has fewer than ``b_l`` positive
    entries. Nodes are numbered level by level. ``sum_l prod_{j<=l} b_j`` drafts when the
    supports are large; ``len(branching)`` draft calls.

    Parameters
    ----------
    draft : StepLM
    context : (n,) int — committed tokens before the root; root : int
    branching : tuple of int >= 1 — ``(b_1, ..., b_L)``
    temperature : float > 0, top_p : float in (0, 1] — the draft's warping
    rng : numpy.random.Generator, int seed or None — source of the Gumbel noise

    Returns
    -------
    RSDTree (mode ``"wor"``)
    """
    return _levelwise(draft, context, root, branching, "wor", temperature, top_p, rng)


def _branching(branching, name="branching"):
    if not isinstance(branching, (tuple, list)) or not branching:
        raise TypeError(f"{name} must be a non-empty tuple of ints >= 1, got {branching!r}")
    return tuple(_checks.check_number(b, f"{name} entries", integer=True, low=1)
                 for b in branching)


def _levelwise(draft, context, root, branching, mode, temperature, top_p, rng) -> RSDTree:
    """Shared by RSD-C (``"wor"``, Gumbel-top-k) and the i.i.d. baselines (``"iid"``)."""
    lm = _lm(draft)
    V = _vocab(lm)
    ctx, root = _context(context, root, V)
    branching = _branching(branching)
    T, p = _warp_args(temperature, top_p)
    rng = _checks.check_rng(rng)
    parents, tokens, prefix, pert, logp = [-1], [root], [[root]], [0.0], [0.0]
    laws, frontier = {}, [0]
    for b in branching:
        Q = _laws(lm, [ctx + prefix[u] for u in frontier], T, p, V)  # (F, V) one call
        with np.errstate(divide="ignore"):
            logQ = np.log(Q)
        if mode == "wor":
            ys, vals = _topk(logQ + gumbel_noise(rng, Q.shape), b)  # gumbel_topk: (F, b) each
        else:
            c = np.cumsum(Q, axis=1)  # (F, V) inverse CDF, never a zero-probability token
            u = rng.random((len(frontier), b))
            ys = np.minimum((c[:, None, :] <= u[:, :, None] * c[:, None, -1:]).sum(-1),
                            (V - 1 - np.argmax(Q[:, ::-1] > 0, axis=1))[:, None])
            vals = np.full(ys.shape, np.nan)
        new = []
        for f, u in enumerate(frontier):
            laws[u] = Q[f]
            for y, val in zip(ys[f], vals[f]):
                if y < 0:
                    break  # support of q_u exhausted
                parents.append(u)
                tokens.append(int(y))
                prefix.append(prefix[u] + [int(y)])
                pert.append(float(val))
                logp.append(logp[u] + float(logQ[f, y]))
                new.append(len(tokens) - 1)
        frontier = new
    return _assemble(parents, tokens, laws, pert, logp, len(branching), mode, V)


def stochastic_beam_tree(draft, context, root, beam_width, depth, *, temperature=1.0, top_p=1.0,
                         rng=None) -> RSDTree:
    """RSD-S: the union of the beams of Stochastic Beam Search over the draft, levels 1..L.

    Kool et al. (arXiv 1903.06059, Algorithm 2) as used by RSD-S (arXiv 2402.14160, Sec. 3).
    The root has ``phi = 0``, ``G = 0``. At each level one batched draft call gives ``q_s`` for
    every beam s; for each token y with ``q_s(y) > 0``: ``phi = phi(s) + log q_s(y)``, raw
    ``G' = phi + g_y``, and ``G = shift_gumbel_max(G', max G', G(s))``. The W candidates with the
    largest ``G`` over all beams (ties: lower beam, then lower token) become the next beams and
    are appended in descending ``G``, so the children of every parent appear in their
    Gumbel-top-k (sampling) order. Beams are ranked by ``G``, never by ``phi``.

    Parameters
    ----------
    draft : StepLM
    context : (n,) int; root : int
    beam_width : int >= 1 — W; depth : int >= 1 — L
    temperature, top_p, rng : as in :func:`constant_branching_tree`

    Returns
    -------
    RSDTree (mode ``"wor"``): at most ``W L`` drafts, depth at most L, L draft calls; level l
    has ``min(W, #candidates with q > 0)`` nodes.
    """
    lm = _lm(draft)
    V = _vocab(lm)
    ctx, root = _context(context, root, V)
    W = _checks.check_number(beam_width, "beam_width", integer=True, low=1)
    L = _checks.check_number(depth, "depth", integer=True, low=1)
    T, p = _warp_args(temperature, top_p)
    rng = _checks.check_rng(rng)
    parents, tokens, prefix, G, phi = [-1], [root], [[root]], [0.0], [0.0]
    laws, beams = {}, [0]
    for _ in range(L):
        Q = _laws(lm, [ctx + prefix[s] for s in beams], T, p, V)  # (W', V) one call
        with np.errstate(divide="ignore"):
            phi_c = np.array([phi[s] for s in beams])[:, None] + np.log(Q)  # (W', V)
        raw = phi_c + gumbel_noise(rng, Q.shape)  # (W', V), -inf where q = 0
        Gc = _shift(raw, raw.max(axis=1)[:, None], np.array([G[s] for s in beams])[:, None])
        beam_idx, tok = np.nonzero(Q > 0)  # candidates, beam-major then token order
        keep = np.lexsort((tok, beam_idx, -Gc[beam_idx, tok]))[:W]  # descending G, ties
        new = []
        for f, s in enumerate(beams):
            laws[s] = Q[f]
        for c in keep:
            f, y = int(beam_idx[c]), int(tok[c])
            parents.append(beams[f])
            tokens.append(y)
            prefix.append(prefix[beams[f]] + [y])
            G.append(float(Gc[f, y]))
            phi.append(float(phi_c[f, y]))
            new.append(len(tokens) - 1)
        beams = new
    return _assemble(parents, tokens, laws, G, phi, L, "wor", V)
