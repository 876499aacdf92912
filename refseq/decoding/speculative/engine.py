"""The speculative decoding loop: draft, score the tree in one target call, verify, commit.

One step (docs/speculative.md, "Target, KV cache and the engine"; Leviathan et al., arXiv
2211.17192, Algorithm 1, generalised to trees as in SpecInfer, arXiv 2305.09781, Sec. 4):

1. ``tree, q, mode = drafter.draft(context, root)``; the tree's root token is ``root``.
2. ``logits, hidden = target.forward_tree(tree)`` (one target call).
3. Greedy (``temperature == 0``): :func:`verify_greedy_tree` on ``argmax(logits)`` (lowest index on
   ties). Sampling: ``p = warped_probs(logits)`` (temperature, top-k, top-p in that order, as in
   :func:`refseq.decoding.sampling.warp`), ``u_accept (N,)`` and ``u_final`` from ``rng``, then
   :func:`verify_tree_stochastic` in ``mode`` (the drafter's unless overridden).
4. Emit ``accepted_tokens`` then ``next_token``; cut after the first ``eos_id`` and at
   ``max_new_tokens``.
5. ``target.commit(path)``; ``drafter.observe(...)``; the next root is ``next_token``.

Ground truth: :func:`plain_greedy` and :func:`plain_sample` decode one token per call through
``target.prefill`` on the whole sequence (a plain causal forward: no tree mask, no compaction),
so "speculative greedy == plain greedy" compares two independent code paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from refseq import _checks
from refseq.decoding.sampling import sample, warp, warped_probs
from refseq.decoding.speculative.greedy import VerifyResult, verify_greedy_tree
from refseq.decoding.speculative.tree import DraftTree
from refseq.decoding.speculative.verify import verify_tree_stochastic

__all__ = ["Drafter", "SpecStats", "plain_greedy", "plain_sample", "speculative_generate"]

MODES = ("iid", "wor", "point")
_TARGET = ("prefill", "forward_tree", "commit")
_TARGET_WHAT = "a TreeLM (prefill, forward_tree and commit methods, e.g. TinyTransformerTreeLM)"


@runtime_checkable
class Drafter(Protocol):
    """Proposes a draft tree per step.

    - ``start(prompt (n,), target_prefill_outputs)``: once, with ``(logits_last, hidden_last)`` of
      ``target.prefill(prompt)``.
    - ``draft(context (n,), root) -> (tree, draft_probs (N, V) | None, mode)``: ``context`` is
      every committed token before the root; ``draft_probs[i]`` is the law the children of node
      ``i`` were drawn from (after the draft's own temperature), None for deterministic drafts;
      ``mode`` is "iid", "wor" or "point" (how the children were drawn).
    - ``observe(tree, target_logits (N, V), target_hidden (N, d), result)``: after verification
      (adaptive drafters update here, model drafters compact their own cache with
      ``result.path``).
    """

    def start(self, prompt: np.ndarray, target_prefill_outputs: tuple) -> None: ...

    def draft(self, context: np.ndarray, root: int) -> tuple: ...

    def observe(self, tree: DraftTree, target_logits: np.ndarray, target_hidden: np.ndarray,
                result: VerifyResult) -> None: ...


@dataclass
class SpecStats:
    """Per-step record of :func:`speculative_generate` (arrays of length ``steps``).

    ``tree_size`` nodes incl. the root; ``depth`` the tree's max depth; ``num_accepted`` m;
    ``emitted`` tokens kept after EOS / ``max_new_tokens`` truncation (``m + 1`` otherwise);
    ``target_calls`` cumulative ``forward_tree`` calls (the prefill is not counted).
    """

    tree_size: list = field(default_factory=list)
    depth: list = field(default_factory=list)
    num_accepted: list = field(default_factory=list)
    emitted: list = field(default_factory=list)
    target_calls: list = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.tree_size)

    @property
    def tokens_per_call(self) -> float:
        """Mean of ``m + 1`` over the steps: tokens one target call yields before truncation."""
        return float(np.mean(np.asarray(self.num_accepted) + 1)) if self.steps else 0.0


def _check_common(target, prompt, eos_id, name="prompt"):
    _checks.check_methods(target, "target", _TARGET, _TARGET_WHAT)
    V = int(target.vocab_size)
    prompt = _checks.int_array(prompt, name, ndim=1, low=0, high=V, form="(n,)")
    if prompt.size == 0:
        raise ValueError(f"{name} must hold at least one token (its last token is the first "
                         f"root)")
    eos_id = _checks.check_number(eos_id, "eos_id", integer=True, low=0, high=V - 1,
                                  allow_none=True)
    return V, prompt.astype(np.int64), eos_id


def _warp_kw(temperature, top_k, top_p, allow_zero):
    T = _checks.check_number(temperature, "temperature", low=0, low_open=not allow_zero)
    k = _checks.check_number(top_k, "top_k", integer=True, low=0)
    p = _checks.check_number(top_p, "top_p", low=0, high=1, low_open=True)
    return T, {"temperature": T if T > 0 else 1.0, "top_k": k, "top_p": p}


def _cut(tokens: list, eos_id, room: int) -> list:
    """Keep up to and including the first ``eos_id``, then at most ``room`` tokens."""
    if eos_id is not None and eos_id in tokens:
        tokens = tokens[: tokens.index(eos_id) + 1]
    return tokens[:room]


def speculative_generate(target, drafter, prompt, max_new_tokens, *, temperature=0.0, top_k=0,
                         top_p=1.0, mode="auto", eos_id=None, rng=None, max_steps=None,
                         verify=None):
    """Generate up to ``max_new_tokens`` tokens after ``prompt`` by speculative decoding.

    Parameters
    ----------
    target : TreeLM
        Scores the draft trees; its state is reset by ``prefill(prompt)``.
    drafter : Drafter
    prompt : (n,) int, n >= 1
        The last token is the first root (committed, not cached).
    max_new_tokens : int >= 0
    temperature, top_k, top_p : the target's warping; ``temperature == 0`` is greedy.
    mode : {"auto", "iid", "wor", "point"}
        Verification rule for sampling; "auto" takes the drafter's. "point" is valid for any tree
        built without the verifier's uniforms; "iid"/"wor" must match how the children were drawn
        (a mismatch biases the output silently, docs/speculative.md).
    eos_id : int, optional
        Generation stops after this token (it is kept).
    rng : numpy.random.Generator, int seed or None
        Source of the verification uniforms.
    max_steps : int, optional
        Stop after this many verification steps (for measuring tokens per target call).
    verify : callable, optional
        ``verify(tree, logits (N, V), draft_probs, rng) -> VerifyResult`` replaces step 3's rule
        (e.g. a lossy rule kept for comparison, such as ADED's released nucleus rule); emission,
        EOS, commit and ``observe`` are unchanged. The output then has that rule's law, not
        necessarily the target's.

    Returns
    -------
    tokens : ndarray (n_new,), int64
        ``n_new <= max_new_tokens``; equals :func:`plain_greedy` token for token when greedy and
        is distributed as :func:`plain_sample` otherwise.
    stats : SpecStats
    """
    V, prompt, eos_id = _check_common(target, prompt, eos_id)
    _checks.check_methods(drafter, "drafter", ("start", "draft", "observe"),
                          "a Drafter (start, draft and observe methods)")
    n_max = _checks.check_number(max_new_tokens, "max_new_tokens", integer=True, low=0)
    T, warp_kw = _warp_kw(temperature, top_k, top_p, allow_zero=True)
    mode = _checks.check_choice(mode, "mode", ("auto",) + MODES)
    rng = _checks.check_rng(rng)
    max_steps = _checks.check_number(max_steps, "max_steps", integer=True, low=1,
                                     allow_none=True)
    if verify is not None and not callable(verify):
        raise TypeError(f"verify must be callable or None, got {type(verify).__name__}")
    out, stats = [], SpecStats()
    if n_max == 0:
        return np.zeros(0, np.int64), stats
    drafter.start(prompt, target.prefill(prompt))
    context, root = list(prompt[:-1]), int(prompt[-1])
    while len(out) < n_max and (max_steps is None or stats.steps < max_steps):
        tree, q, d_mode = drafter.draft(np.array(context, np.int64), root)
        _checks.check_instance(tree, DraftTree, "drafter.draft()[0]", "DraftTree")
        if int(tree.tokens[0]) != root:
            raise ValueError(f"drafter.draft returned a tree whose root token {tree.tokens[0]} "
                             f"is not the root {root}")
        logits, hidden = target.forward_tree(tree)  # (N, V), (N, d)
        if verify is not None:
            res = verify(tree, logits, q, rng)
        elif T == 0:
            res = verify_greedy_tree(tree, np.argmax(logits, axis=-1))  # ties: lowest index
        else:
            use = d_mode if mode == "auto" else mode
            p = warped_probs(logits, **warp_kw)  # (N, V) float64
            u_accept, u_final = rng.random(tree.num_nodes), float(rng.random())
            res = verify_tree_stochastic(tree, p, q, use, u_accept, u_final)
        step = [int(t) for t in res.accepted_tokens] + [int(res.next_token)]
        kept = _cut(step, eos_id, n_max - len(out))
        out += kept
        target.commit(res.path)
        drafter.observe(tree, logits, hidden, res)
        stats.tree_size.append(tree.num_nodes)
        stats.depth.append(tree.max_depth)
        stats.num_accepted.append(int(res.num_accepted))
        stats.emitted.append(len(kept))
        stats.target_calls.append(stats.steps)
        if len(kept) < len(step) or (eos_id is not None and eos_id in kept):
            break
        context += [root] + step[:-1]
        root = step[-1]
    return np.array(out, np.int64), stats


def plain_greedy(target, prompt, n, *, eos_id=None):
    """``n`` greedy tokens, one ``target.prefill`` of the whole sequence per token (resets the
    target's state). Ties: lowest index. Stops after ``eos_id``. -> ``(n_new,)`` int64."""
    V, seq, eos_id = _check_common(target, prompt, eos_id)
    n = _checks.check_number(n, "n", integer=True, low=0)
    out = []
    while len(out) < n and (eos_id is None or eos_id not in out):
        logits, _ = target.prefill(np.concatenate([seq, np.array(out, np.int64)]))
        out.append(int(np.argmax(logits)))
    return np.array(out, np.int64)


def plain_sample(target, prompt, n, rng=None, *, temperature=1.0, top_k=0, top_p=1.0,
                 eos_id=None):
    """``n`` ancestral samples from the warped target, one ``target.prefill`` per token
    (inverse CDF of :func:`refseq.decoding.sampling.sample`, one uniform per token from
    ``rng``). Stops after ``eos_id``. -> ``(n_new,)`` int64."""
    V, seq, eos_id = _check_common(target, prompt, eos_id)
    n = _checks.check_number(n, "n", integer=True, low=0)
    _, warp_kw = _warp_kw(temperature, top_k, top_p, allow_zero=False)
    rng = _checks.check_rng(rng)
    out = []
    while len(out) < n and (eos_id is None or eos_id not in out):
        logits, _ = target.prefill(np.concatenate([seq, np.array(out, np.int64)]))
        z = warp(np.asarray(logits)[None], **warp_kw)  # (1, V)
        out.append(int(sample(z, u=rng.random(1))[0]))
    return np.array(out, np.int64)
