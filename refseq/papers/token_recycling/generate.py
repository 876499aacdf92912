"""The Token Recycling generation loop (Luo et al., arXiv 2408.08696, Sec. 3; official
``evaluation/inference_recycling.py::recycling_forward``).

One call decodes one query with a caller-owned :class:`TokenRecyclingState`, so the matrix
carries over between queries (hot start, Sec. 3.1) unless the caller resets it::

    n_past <- prefill(prompt[:-1]); root <- prompt[-1]          (prefill logits unused)
    loop:
        tree   <- retrieve_tree(M, root)                      (Sec. 3.2, D gathers)
        z      <- target.forward_tree(tree)                   (one call: static tree mask,
                                                                positions n_past + depth)
        verify greedily (Sec. 3.3): path rewards (official) or the tree walk
        emit the accepted drafts, then argmax z at the last accepted node (the next root)
        commit the KV of the root and the accepted drafts
        stop after EOS (unless update_on_eos) ...
        M[tok(i)] <- argtopk(z_i, k) for every node i         (after verification)
        ... or when the budget is spent

``L = 1 + m`` per step (root plus m accepted drafts) is the paper's "accepted tokens"; its mean
over steps is MAT (mean accepted tokens), which equals tokens emitted per target call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from refseq import _checks
from refseq.decoding.sampling import warped_probs
from refseq.decoding.speculative.tree import DraftTree
from refseq.decoding.speculative.verify import verify_tree_stochastic
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.retrieval import retrieve_tree
from refseq.papers.token_recycling.templates import (
    TEMPLATE_2_2_2,
    TemplateBuffers,
    template_buffers,
)
from refseq.papers.token_recycling.update import RULES, _logits, update_matrix
from refseq.tiers import check_backend
from refseq.tree_verify import tree_verify_greedy, tree_verify_greedy_paths

__all__ = ["VERIFY", "RecyclingStats", "seed_matrix_from_prompt", "token_recycling_generate",
           "verify_step"]

VERIFY = ("paths", "walk")


_TARGET = ("prefill", "forward_tree", "commit")


@functools.lru_cache(maxsize=4)
def _default_buffers(k: int):
    """The buffers of "2.2.2" for matrix width k (static: computed once per k)."""
    return template_buffers(TEMPLATE_2_2_2, k)


def _check_target(target, prompt, eos_id):
    _checks.check_methods(target, "target", _TARGET, "a TreeLM (prefill, forward_tree and "
                          "commit methods, e.g. TinyTransformerTreeLM)")
    V = int(target.vocab_size)
    prompt = _checks.int_array(prompt, "prompt", ndim=1, low=0, high=V, form="(n,)")
    if prompt.size == 0:
        raise ValueError("prompt must hold at least one token (its last token is the first root)")
    eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    return V, prompt.astype(np.int64), eos_id


def _check_state(state, V):
    _checks.check_instance(state, TokenRecyclingState, "state")
    if state.vocab_size != V:
        raise ValueError(f"state.vocab_size = {state.vocab_size} must equal the target's "
                         f"vocab_size = {V}")
    return state


def _check_buffers(buf, name, k):
    _checks.check_instance(buf, TemplateBuffers, name, "TemplateBuffers (from template_buffers)")
    if buf.k > k:
        raise ValueError(f"{name} were built for k = {buf.k} > state.k = {k}")
    return buf


def _cut(tokens: list, eos_id, room: int) -> list:
    """Keep up to and including the first ``eos_id``, then at most ``room`` tokens."""
    if eos_id is not None and eos_id in tokens:
        tokens = tokens[: tokens.index(eos_id) + 1]
    return tokens[:room]


@dataclass
class RecyclingStats:
    """Per-step record of :func:`token_recycling_generate` (lists of length ``steps``).

    ``accept_len`` L = 1 + m (the paper's accepted tokens, root included); ``emitted`` tokens
    kept after EOS / budget truncation; ``rows_written`` distinct matrix rows updated (0 on a
    step that stopped at EOS before the update).
    """

    accept_len: list = field(default_factory=list)
    emitted: list = field(default_factory=list)
    rows_written: list = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.accept_len)

    @property
    def target_calls(self) -> int:
        """Tree forward passes (one per step; the prefill is not counted)."""
        return self.steps

    @property
    def mat(self) -> float:
        """Mean accepted tokens: mean of L over the steps (0.0 with no step)."""
        return float(np.mean(self.accept_len)) if self.steps else 0.0


def verify_step(tree, logits, buf, verify: str = "paths", backend: str = "numpy"):
    """Greedy verification of one Token Recycling tree (Sec. 3.3).

    ``verify="paths"``: the official path rewards; path p scores the number of leading matches
    ``tokens[retrieve[p, t]] == argmax z[retrieve[p, t-1]]``, the first best path wins (padding
    never matches). ``"walk"``: from the root take the first child (node order) that matches.
    Both emit a prefix of the greedy continuation; with duplicate siblings the path form can go
    deeper. Runs on the tree-verification hot path :mod:`refseq.tree_verify` (``backend``).

    Parameters
    ----------
    tree : DraftTree
        The template's tree (``buf.tree(tokens)`` or :func:`retrieve_tree`).
    logits : ndarray (N, V), float32 or float64 (no NaN or +inf)
        The target's logits at every node.
    buf : TemplateBuffers
        The buffers of the template ``tree`` was built from.

    Returns ``(path (m+1,) int64 node ids, next_token int)``.
    """
    _checks.check_instance(tree, DraftTree, "tree")
    _checks.check_instance(buf, TemplateBuffers, "buf", "TemplateBuffers (from template_buffers)")
    if tree.num_nodes != buf.num_nodes or not np.array_equal(tree.parents, buf.parents):
        raise ValueError(f"tree must have the template's parents (buf.tree(tokens)); got a tree "
                         f"of {tree.num_nodes} nodes for a template of {buf.num_nodes}")
    z = _logits(logits, "logits", 2, "(N, V)")
    _checks.check_shape(z, (tree.num_nodes, z.shape[1]), "logits", "(N, V)")
    verify = _checks.check_choice(verify, "verify", VERIFY)
    backend = check_backend(backend)
    am = np.argmax(z, axis=-1).astype(np.int64)  # (N,) ties: lowest index
    if verify == "paths":
        acc, best, last = tree_verify_greedy_paths(
            buf.retrieve[None], buf.retrieve_len[None], tree.tokens[None], am[None],
            backend=backend)
        b = int(best[0])
        return buf.retrieve[b, : int(acc[0, b]) + 1].astype(np.int64), int(am[int(last[0])])
    path, m, nxt = tree_verify_greedy(tree.parents[None], tree.tokens[None], am[None],
                                      np.array([tree.num_nodes]), backend=backend)
    return path[0, : int(m[0]) + 1].astype(np.int64), int(nxt[0])


def seed_matrix_from_prompt(state, target, prompt, rule: str = "last") -> int:
    """Prefill ``target`` on ``prompt`` and write ``M[prompt[i]] = argtopk(z_i, k)`` for every
    prompt position (smpanaro/token-recycling's cold-start seeding; not in the paper).

    The logits of every prompt position come from one chain-tree forward after a one-token
    prefill (the :class:`~refseq.decoding.speculative.target.TreeLM` protocol returns only the
    last prefill logits); the committed state is the same as ``target.prefill(prompt)``.
    Returns the number of rows written.
    """
    V, prompt, _ = _check_target(target, prompt, None)
    _check_state(state, V)
    rule = _checks.check_choice(rule, "rule", RULES)
    first, _ = target.prefill(prompt[:1])
    if prompt.size == 1:
        return update_matrix(state, prompt, np.asarray(first)[None], rule)
    logits, _ = target.forward_tree(DraftTree.chain(int(prompt[0]), prompt[1:]))  # (n, V)
    target.commit(np.arange(prompt.size - 1))  # cache prompt[:-1]; prompt[-1] is the root
    return update_matrix(state, prompt, logits, rule)


def token_recycling_generate(target, prompt, max_new_tokens, state, *, template=None,
                             eos_id=None, temperature=0.0, top_k=0, top_p=1.0, rng=None,
                             update_rule="last", seed_from_prompt=False, update_on_eos=False,
                             verify="paths", backend="numpy", buffers=None,
                             update_scope="tree"):
    """Decode up to ``max_new_tokens`` tokens after ``prompt`` with Token Recycling.

    Parameters
    ----------
    target : TreeLM
        ``prefill`` / ``forward_tree`` / ``commit`` (e.g. ``TinyTransformerTreeLM``,
        ``TabularTreeLM``); its state is reset by the prefill.
    prompt : (n,) int, n >= 1
        The last token is the first root.
    max_new_tokens : int >= 0
    state : TokenRecyclingState
        The adjacency matrix, updated in place (hot start: pass the same state to the next
        query; cold start: ``state.reset()`` first).
    template : list of rank tuples, default :data:`TEMPLATE_2_2_2`
    eos_id : int, optional
        Generation stops after this token (it is kept).
    temperature, top_k, top_p : sampling extension (not in the paper)
        ``temperature == 0`` is greedy (the paper). Otherwise the deterministic tree is verified
        with ``mode="point"`` on the warped target law (exact for any fixed tree) and the
        matrix still records the top-k of the *unwarped* logits.
    rng : Generator, int or None
        Verification uniforms (sampling only).
    update_rule : {"last", "first"}
        Duplicate-row rule of :func:`~refseq.papers.token_recycling.update.update_matrix`.
    seed_from_prompt : bool
        Seed ``M`` from every prompt position before the first draft (see
        :func:`seed_matrix_from_prompt`; an extension).
    update_on_eos : bool
        Also update the matrix on the step that emits EOS (the official loop does not).
    verify : {"paths", "walk"}
        Greedy rule of :func:`verify_step` (``"paths"``: the official code).
    backend : {"numpy", "jit", "cuda"}
        Tier of the greedy verification kernel.
    buffers : TemplateBuffers, optional
        Precomputed ``template_buffers(template, state.k)`` (overrides ``template``).
    update_scope : {"tree", "path"}
        ``"tree"`` (the paper): every node's candidates, rejected nodes included. ``"path"``:
        only the root and the accepted drafts (an ablation, not the method).

    Returns
    -------
    tokens : ndarray (n_new,), int64
        Greedy: equal to ``plain_greedy(target, prompt, max_new_tokens)`` token for token.
    stats : RecyclingStats
    """
    V, prompt, eos_id = _check_target(target, prompt, eos_id)
    _check_state(state, V)
    n_max = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=0)
    T = _checks.check_number(temperature, "temperature", low=0)
    warp_kw = {"temperature": T if T > 0 else 1.0,
               "top_k": _checks.check_number(top_k, "top_k", integer=True, low=0),
               "top_p": _checks.check_number(top_p, "top_p", low=0, high=1, low_open=True)}
    rng = _checks.check_rng(rng)
    rule = _checks.check_choice(update_rule, "update_rule", RULES)
    seed = _checks.check_flag(seed_from_prompt, "seed_from_prompt")
    on_eos = _checks.check_flag(update_on_eos, "update_on_eos")
    verify = _checks.check_choice(verify, "verify", VERIFY)
    scope = _checks.check_choice(update_scope, "update_scope", ("tree", "path"))
    backend = check_backend(backend)
    if buffers is None:
        buffers = _default_buffers(state.k) if template is None else template_buffers(template,
                                                                                        state.k)
    else:
        _check_buffers(buffers, "buffers", state.k)
    out, stats = [], RecyclingStats()
    if n_max == 0:
        return np.zeros(0, np.int64), stats
    if seed:
        seed_matrix_from_prompt(state, target, prompt, rule)
    else:
        target.prefill(prompt)  # caches prompt[:-1]; its logits are not used (official)
    root = int(prompt[-1])
    while len(out) < n_max:
        tree = retrieve_tree(state, root, buffers)
        logits, _ = target.forward_tree(tree)  # (N, V)
        if T == 0:
            path, nxt = verify_step(tree, logits, buffers, verify, backend)
        else:
            p = warped_probs(logits, **warp_kw)  # (N, V) float64
            u_accept, u_final = rng.random(tree.num_nodes), float(rng.random())
            res = verify_tree_stochastic(tree, p, None, "point", u_accept, u_final)
            path, nxt = res.path.astype(np.int64), int(res.next_token)
        step = [int(t) for t in tree.tokens[path[1:]]] + [nxt]
        kept = _cut(step, eos_id, n_max - len(out))
        out += kept
        target.commit(path)
        stats.accept_len.append(len(step))
        stats.emitted.append(len(kept))
        eos = eos_id is not None and eos_id in kept
        stats.rows_written.append(0)
        if eos and not on_eos:
            break
        nodes = np.arange(tree.num_nodes) if scope == "tree" else path  # "tree": all nodes
        stats.rows_written[-1] = update_matrix(state, tree.tokens[nodes], logits[nodes], rule)
        if eos or len(kept) < len(step):
            break
        root = nxt
    return np.array(out, np.int64), stats
