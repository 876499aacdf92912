"""Stochastic verification of a draft tree (i.i.d., without replacement, point) and Medusa's
lossy typical acceptance (guide: docs/speculative.md, "Verification and losslessness"); the
result record, the shared argument checks and greedy verification are
:mod:`refseq.decoding.speculative.greedy`.

Conventions. Node 0 is the root (committed, not cached); ``target_probs[i]`` is the target's
(warped) law of the token that follows node i, so child c is tested with its parent's row and
the bonus token uses the last accepted node's own row. ``draft_probs[i]`` is the law the children
of node i were drawn from. Siblings are tested in sibling order (increasing node index). Ties in
an arg-max go to the lowest index. Acceptance is the product form ``u * Q(y) < P(y)`` with
``u in [0, 1)``; the final draw is the smallest t with ``cumsum(P)[t] > u_final * cumsum(P)[-1]``
(left-to-right float64 sums), which never returns a zero-probability token.

=================  ==========================  ==========================================
paper symbol       code                        shape / meaning
=================  ==========================  ==========================================
``p_i``            ``target_probs[i]``         (N, V) target law after node i
``q_u``            ``draft_probs[u]``          (N, V) law the children of u were drawn from
``P_j, Q_j``       ``P``, ``Q`` in the walk    (V,) float64: residual target, proposal of
                                               the j-th sibling
``res(p, q)``      :func:`residual`            ``max(p - q, 0)`` normalised
``u_{c}``          ``u_accept[c]``             (N,) the uniform of child c's test
=================  ==========================  ==========================================

References
----------
Leviathan, Kalman, Matias (2023), Fast Inference from Transformers via Speculative Decoding,
arXiv:2211.17192, Algorithm 1 and Sec. 3.
Chen et al. (2023), Accelerating LLM Decoding with Speculative Sampling, arXiv:2302.01318,
Algorithm 2.
Miao et al. (2023), SpecInfer, arXiv:2305.09781, Sec. 4.2 (multi-step speculative sampling).
Chen et al. (2024), Sequoia, arXiv:2402.12374, Sec. 3 (sampling without replacement).
Cai et al. (2024), Medusa, arXiv:2401.10774, Sec. 2.3.1 (typical acceptance).
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.decoding.sampling import warped_probs
from refseq.decoding.speculative.greedy import (
    VerifyResult,
    _ids,
    _probs,
    _result,
    _tree,
    _uniform,
    _uniforms,
    _vec,
    _virtual,
    verify_greedy_tree,
)
from refseq.decoding.speculative.tree import DraftTree

__all__ = ["MODES", "residual", "speculative_sample_chain", "typical_acceptance", "verify",
           "verify_multidraft", "verify_tree_stochastic"]

MODES = ("iid", "wor", "point")


# --- stochastic ---------------------------------------------------------------------------------

def _residual(P, Q):
    d = np.maximum(P - Q, 0.0)  # (V,)
    s = d.sum()
    return d / s if s > 0 else P  # zero clipped mass only by rounding: stay on P


def residual(p, q) -> np.ndarray:
    """``res(p, q) = max(p - q, 0) / sum(max(p - q, 0))`` in float64 (Leviathan et al. 2023,
    Sec. 2.3), falling back to ``p`` itself when the clipped mass is ``<= 0``.

    After a rejection the clipped mass is positive in exact arithmetic; it can vanish only by
    rounding (``u * q(y) >= p(y)`` with ``p == q`` up to an ulp). Returning ``p`` keeps the
    output on the target distribution; dividing by zero would give NaN. ``p``, ``q``: ``(V,)``
    probabilities (float32 or float64, finite, >= 0). Returns a new ``(V,)`` float64 array.
    """
    p = _vec(p, "p")
    return _residual(p, _vec(q, "q", V=p.shape[0]))


def _draw(P, u) -> int:
    """Inverse CDF: the smallest t with ``cumsum(P)[t] > u * cumsum(P)[-1]``; P(t) > 0."""
    c = np.cumsum(P)  # (V,) left to right, float64
    t = int(np.searchsorted(c, u * c[-1], side="right"))
    return t if t < P.shape[0] else int(np.flatnonzero(P > 0)[-1])


def speculative_sample_chain(draft_tokens, draft_probs, target_probs, u_accept, u_final):
    """Leviathan/Chen speculative sampling of a chain of K drafts.

    Accept draft t iff ``u_accept[t] * q_t(y_t) < p_t(y_t)``; at the first rejection emit
    ``next ~ res(p_t, q_t)``; if all K are accepted emit the bonus ``next ~ p_K``.

    Parameters
    ----------
    draft_tokens : ndarray (K,), int
    draft_probs : ndarray (K, V)
        ``q_t``, the law draft t was drawn from.
    target_probs : ndarray (K+1, V)
        ``p_t`` follows the root and the first t drafts.
    u_accept : ndarray (K,), float in [0, 1)
    u_final : float in [0, 1)

    Returns
    -------
    (m, next_token) : (int, int)
    """
    y = _ids(draft_tokens, "draft_tokens", "(K,)")
    K = y.shape[0]
    p = _probs(target_probs, "target_probs", K + 1, "(K+1, V)")
    q = _probs(draft_probs, "draft_probs", K, "(K, V)", V=p.shape[1])
    if K and y.max() >= p.shape[1]:
        raise ValueError(f"draft_tokens must lie in [0, V = {p.shape[1]}), found {y.max()}")
    u = _uniforms(u_accept, "u_accept", K)
    uf = _uniform(u_final, "u_final")
    for t in range(K):
        if not u[t] * q[t, y[t]] < p[t, y[t]]:
            return t, _draw(_residual(p[t], q[t]), uf)
    return K, _draw(p[K], uf)


def _stochastic_args(tree, target_probs, draft_probs, mode, child_draft_probs, bonus):
    tree = _tree(tree)
    mode = _checks.check_choice(mode, "mode", MODES)
    bonus = _checks.check_flag(bonus, "bonus")
    N = tree.num_nodes
    internal = tree.child_ptr[1:] > tree.child_ptr[:-1]  # (N,) nodes with children
    need = ~_virtual(tree) & (internal | bonus | (np.arange(N) == 0))  # rows the walk may read
    p = _probs(target_probs, "target_probs", N, "(N, V)", need=need)
    V = p.shape[1]
    if tree.tokens.max() >= V:
        raise ValueError(f"tree tokens must lie in [0, V = {V}) with V the width of "
                         f"target_probs, found {tree.tokens.max()}")
    q = qc = None
    if child_draft_probs is not None:
        if mode != "iid":
            raise ValueError(f"child_draft_probs is only meaningful with mode='iid', got "
                             f"mode={mode!r}")
        qc = _probs(child_draft_probs, "child_draft_probs", N, "(N, V)", V=V,
                    need=np.arange(N) > 0)
    if mode != "point" and qc is None:
        if draft_probs is None:
            raise TypeError(f"draft_probs must be an (N, V) float array for mode={mode!r}, "
                            f"got None")
        q = _probs(draft_probs, "draft_probs", N, "(N, V)", V=V, need=internal)
    return tree, p, q, qc, mode, bonus


def verify_tree_stochastic(tree, target_probs, draft_probs, mode, u_accept, u_final,
                           bonus=True, child_draft_probs=None) -> VerifyResult:
    """Multi-step speculative sampling on a draft tree (recursive rejection sampling).

    At node u with children ``c_1..c_k`` (sibling order, tokens ``y_j``): ``P_1 = p_u``;
    accept ``c_j`` iff ``u_accept[c_j] * Q_j(y_j) < P_j(y_j)`` and continue at ``c_j``;
    otherwise ``P_{j+1} = res(P_j, Q_j)``. When every child is rejected emit ``next ~ P_{k+1}``;
    at an accepted leaf emit the bonus ``next ~ p_leaf``. The proposal law ``Q_j`` must be the
    law the j-th child was actually drawn from:

    - ``"iid"``: ``Q_j = q_u`` (``child_draft_probs[c_j]`` if given: SpecInfer with several
      draft models). Duplicate siblings stay separate; a ``virtual`` one is never tested but
      its residual update still happens at its place.
    - ``"wor"``: ``Q_j = q_u`` with ``y_1..y_{j-1}`` removed and renormalised, from the
      *original* draft row (sampling without replacement, Gumbel-top-k order). When the draft
      mass is used up no further sibling can exist and testing stops.
    - ``"point"``: ``Q_j = onehot(y_j)`` (deterministic candidates; exact for any tree built
      independently of the uniforms, but accepts less than the rule that matches the draft).

    Parameters
    ----------
    tree : DraftTree (N nodes)
    target_probs : ndarray (N, V), float32 or float64
        Row i: the (warped) target law after node i. Rows of virtual nodes (and of leaves with
        ``bonus=False``) are not read.
    draft_probs : ndarray (N, V) or None
        Row u: the law the children of u were drawn from (ignored for ``"point"``; may be None
        for ``"iid"`` with ``child_draft_probs``). Rows of leaves are not read.
    mode : {"iid", "wor", "point"}
    u_accept : ndarray (N,), float in [0, 1)
        ``u_accept[c]`` is child c's acceptance uniform (``u_accept[0]`` is unused).
    u_final : float in [0, 1)
        Uniform of the final inverse-CDF draw.
    bonus : bool, default True
        False: a step ending at an accepted leaf draws no token (``next_token == -1``; the
        step emits the m accepted tokens), for callers without target rows at the leaves.
    child_draft_probs : ndarray (N, V), optional (``"iid"`` only)

    Returns
    -------
    VerifyResult

    Notes
    -----
    With ``Q_j`` matching the draft, the emitted tuple followed by plain target sampling has the
    target's joint law (equation (E) of the guide; proved per mode by
    :mod:`refseq.decoding.speculative.exact`). A token with ``Q_j(y) = 0`` is accepted iff
    ``P_j(y) > 0`` (the product form with ``u * 0 = 0``).
    """
    tree, p, q, qc, mode, bonus = _stochastic_args(tree, target_probs, draft_probs, mode,
                                                   child_draft_probs, bonus)
    u = _uniforms(u_accept, "u_accept", tree.num_nodes)
    uf = _uniform(u_final, "u_final")
    virtual, V = _virtual(tree), p.shape[1]
    node, path = 0, [0]
    while True:
        P = p[node]  # (V,)
        kids = tree.child_idx[tree.child_ptr[node]:tree.child_ptr[node + 1]]
        left = q[node].copy() if mode == "wor" else None  # undrawn part of the original q_u
        nxt = -1
        for c in kids:
            y = tree.tokens[c]
            if mode == "point":
                Q = np.zeros(V)
                Q[y] = 1.0
            elif mode == "iid":
                Q = q[node] if qc is None else qc[c]
            else:
                mass = left.sum()
                if mass <= 0:
                    break  # every token of q_u drawn: no further sibling can exist
                Q = left / mass
            if not virtual[c] and u[c] * Q[y] < P[y]:
                nxt = int(c)
                break
            P = _residual(P, Q)
            if mode == "wor":
                left[y] = 0.0
        if nxt < 0:
            if kids.size == 0 and node != 0 and not bonus:
                return _result(tree, path, -1)
            return _result(tree, path, _draw(P, uf))
        node = nxt
        path.append(node)


def verify_multidraft(root_probs_target, draft_probs, candidates, mode, u_accept, u_final):
    """One-token multi-draft speculative sampling (SpecInfer/SpecTr, K flat candidates).

    The K candidates are children of one node whose target law is ``root_probs_target``; this
    is :func:`verify_tree_stochastic` on that star tree without a bonus token.

    Parameters
    ----------
    root_probs_target : ndarray (V,)
    draft_probs : ndarray (V,) or (K, V) or None
        ``(V,)``: the shared draft law (``"iid"``, ``"wor"``); ``(K, V)``: candidate j was drawn
        from row j (``"iid"`` only); None for ``"point"``.
    candidates : ndarray (K,), int, K >= 1
    mode : {"iid", "wor", "point"}
    u_accept : ndarray (K,), float in [0, 1)
    u_final : float in [0, 1)

    Returns
    -------
    (j, token) : (int, int)
        ``j`` the accepted candidate (``-1`` if all were rejected) and the emitted token, whose
        law is ``root_probs_target`` when the candidates were drawn as ``mode`` says.
    """
    mode = _checks.check_choice(mode, "mode", MODES)
    cand = _ids(candidates, "candidates", "(K,)")
    K = cand.shape[0]
    if K == 0:
        raise ValueError("candidates must hold at least one token (K >= 1)")
    p = _vec(root_probs_target, "root_probs_target")
    V = p.shape[0]
    if cand.max() >= V:
        raise ValueError(f"candidates must lie in [0, V = {V}), found {cand.max()}")
    tree = DraftTree(np.r_[-1, np.zeros(K, np.int64)], np.r_[0, cand])
    target = np.repeat(p[None], K + 1, axis=0)  # (K+1, V) leaf rows are not read (no bonus)
    draft = child = None
    if draft_probs is not None and np.ndim(draft_probs) == 2:
        if mode != "iid":
            raise ValueError(f"draft_probs (K, V) (one law per candidate) needs mode='iid', "
                             f"got mode={mode!r}")
        child = np.concatenate([np.full((1, V), 1.0 / V),
                                _probs(draft_probs, "draft_probs", K, "(K, V)", V=V)])
    elif draft_probs is not None:
        draft = np.repeat(_vec(draft_probs, "draft_probs", V=V)[None], K + 1, axis=0)
    u = np.r_[0.0, _uniforms(u_accept, "u_accept", K)]
    res = verify_tree_stochastic(tree, target, draft, mode, u, u_final, bonus=False,
                                 child_draft_probs=child)
    if res.num_accepted:
        return int(res.path[1]) - 1, int(res.accepted_tokens[0])
    return -1, res.next_token


def verify(tree, target_logits, draft_probs=None, *, temperature=1.0, top_k=0, top_p=1.0,
           mode="point", rng=None, child_draft_probs=None) -> VerifyResult:
    """Warp the target logits and verify: greedy when ``temperature == 0``, else stochastic.

    ``target_probs = warped_probs(target_logits, temperature=, top_k=, top_p=)``
    (:mod:`refseq.decoding.sampling`); the uniforms are ``u_accept = rng.random(N)`` then
    ``u_final = rng.random()``. With ``temperature == 0`` the result is
    :func:`verify_greedy_tree` on ``argmax(target_logits, -1)`` (``top_k``/``top_p`` keep the
    arg-max and are irrelevant). ``draft_probs`` must be the law the drafts were actually drawn
    from (after the draft's own temperature). ``target_logits``: ``(N, V)`` float32/float64;
    other arguments as in :func:`verify_tree_stochastic`.
    """
    tree = _tree(tree)
    mode = _checks.check_choice(mode, "mode", MODES)
    T = _checks.check_number(temperature, "temperature", low=0)
    rng = _checks.check_rng(rng)
    z = _checks.float_array(target_logits, "target_logits")
    _checks.check_shape(z, (tree.num_nodes,) + z.shape[1:2], "target_logits", "(N, V)")
    if T == 0:
        warped_probs(z, top_k=top_k, top_p=top_p)  # validates the logits and the keywords
        return verify_greedy_tree(tree, np.argmax(z, axis=1))
    probs = warped_probs(z, temperature=T, top_k=top_k, top_p=top_p)  # (N, V) float64
    u_accept = rng.random(tree.num_nodes)  # (N,)
    u_final = rng.random()
    return verify_tree_stochastic(tree, probs, draft_probs, mode, u_accept, u_final,
                                  child_draft_probs=child_draft_probs)


def typical_acceptance(target_probs, tree, posterior_threshold=0.09, posterior_alpha=0.3,
                       u_final=None) -> VerifyResult:
    """Medusa's typical acceptance (Cai et al. 2024, Sec. 2.3.1). **Lossy**: ``lossless=False``.

    Node c (not virtual) passes iff ``p_{pi(c)}(x_c) > min(eps, delta * exp(-H(p_{pi(c)})))``
    with ``H(p) = -sum p log(p + 1e-5)``, ``eps = posterior_threshold``,
    ``delta = posterior_alpha`` (the values ``medusa_generate`` passes; ``evaluate_posterior``'s
    own defaults are swapped). On each root-to-leaf path (leaves in index order) the accepted
    length is the number of leading passing nodes; the longest wins, ties by the largest sum of
    ``log p`` over the accepted tokens, then the first path. The next token comes from the last
    accepted node's row: its arg-max (lowest index), or an inverse-CDF draw when ``u_final`` is
    given. It does not emit the target's law; in the limit of one-hot rows it is greedy.

    Parameters
    ----------
    target_probs : ndarray (N, V)
    tree : DraftTree
    posterior_threshold, posterior_alpha : float > 0
    u_final : float in [0, 1), optional

    Returns
    -------
    VerifyResult
    """
    tree = _tree(tree)
    p = _probs(target_probs, "target_probs", tree.num_nodes, "(N, V)", need=~_virtual(tree))
    if tree.tokens.max() >= p.shape[1]:
        raise ValueError(f"tree tokens must lie in [0, V = {p.shape[1]}) with V the width of "
                         f"target_probs, found {tree.tokens.max()}")
    eps = _checks.check_number(posterior_threshold, "posterior_threshold", low=0, low_open=True)
    delta = _checks.check_number(posterior_alpha, "posterior_alpha", low=0, low_open=True)
    uf = None if u_final is None else _uniform(u_final, "u_final")
    H = -(p * np.log(p + 1e-5)).sum(axis=1)  # (N,)
    thr = np.minimum(eps, delta * np.exp(-H))  # (N,)
    par, tok, real = tree.parents, tree.tokens, ~_virtual(tree)
    best = (0, -np.inf, [0])  # (accepted length, log-likelihood, path)
    has_child = np.zeros(tree.num_nodes, bool)
    has_child[par[1:][real[1:]]] = True
    for leaf in np.flatnonzero(real & ~has_child):  # one path per leaf, in index order
        chain = [int(leaf)]
        while chain[-1] != 0:
            chain.append(int(par[chain[-1]]))
        chain = chain[::-1]  # root .. leaf
        k, ll = 0, 0.0
        while k + 1 < len(chain) and p[chain[k], tok[chain[k + 1]]] > thr[chain[k]]:
            ll += np.log(p[chain[k], tok[chain[k + 1]]])
            k += 1
        if k > best[0] or (k == best[0] and k > 0 and ll > best[1]):
            best = (k, ll, chain[:k + 1])
    last = best[2][-1]
    nxt = int(np.argmax(p[last])) if uf is None else _draw(p[last], uf)
    return _result(tree, best[2], nxt)
