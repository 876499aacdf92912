"""DySpec generation: a :class:`~refseq.decoding.speculative.engine.Drafter` that builds a dynamic
tree every step, run through the core engine (Xiong et al., arXiv 2410.11744, Sec. 4 and 5).

One step: build the tree (greedy heap, Algorithm 1, or threshold, Algorithm 2) from the draft
model; one target forward over the tree; verify (Algorithm 3: recursive rejection sampling with
the *original* draft rows, children tested in creation order = draw order, without-replacement
renormalisation: the core's ``mode="wor"``; greedy target: :func:`verify_greedy_tree`); emit the
accepted tokens and the next token; compact the target cache and the draft cache to the accepted
path. The next token becomes the next root; the draft model catches up on it at the next build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refseq import _checks
from refseq.decoding.speculative.engine import (
    _TARGET,
    _TARGET_WHAT,
    SpecStats,
    speculative_generate,
)
from refseq.papers.dyspec.analysis import decision_objective, estimated_accepted, tested_children
from refseq.papers.dyspec.draft import _vocab_size
from refseq.papers.dyspec.heap import _draft, build_tree_greedy
from refseq.papers.dyspec.samplers import InverseCdfSampler
from refseq.papers.dyspec.threshold import build_tree_threshold

__all__ = ["DySpecDrafter", "DySpecStats", "dyspec_generate"]


@dataclass
class DySpecStats:
    """Per-step record of DySpec generation.

    ``spec`` the engine's :class:`SpecStats` (tree size incl. the root, depth, accepted tokens
    ``m``, emitted, target calls); per step: ``draft_calls``, ``decision_objective`` (Eq. 11),
    ``estimated_accepted`` (Eq. 6 under Hypothesis 1); over all steps: ``tested_prob`` and
    ``tested_accepted``, the original draft probability of every tested child and whether it was
    accepted (Figure 2).
    """

    spec: SpecStats = field(default_factory=SpecStats)
    draft_calls: list = field(default_factory=list)
    decision_objective: list = field(default_factory=list)
    estimated_accepted: list = field(default_factory=list)
    tested_prob: list = field(default_factory=list)
    tested_accepted: list = field(default_factory=list)

    @property
    def tokens_per_call(self) -> float:
        """Mean tokens emitted per target call (``m + 1``), before truncation."""
        return self.spec.tokens_per_call

    @property
    def num_accepted(self) -> list:
        """Realised accepted tokens per step."""
        return self.spec.num_accepted


class DySpecDrafter:
    """Drafter protocol (``start``/``draft``/``observe``) around DySpec's tree builders.

    Parameters
    ----------
    draft : DraftLM
    budget : int >= 0, default 64
        Draft nodes per step for Algorithm 1 (the root not counted).
    threshold : float in [0, 1), optional
        Use Algorithm 2 with this threshold instead (``budget`` is then ignored).
    max_nodes : int, optional
        Algorithm 2's cap on the draft nodes.
    lazy : bool, default True
        Algorithm 1's lazy draft evaluation.
    sampler : callable, optional
        Token sampler; default :class:`InverseCdfSampler` on ``rng``.
    rng : numpy.random.Generator, int seed or None
    """

    def __init__(self, draft, *, budget=64, threshold=None, max_nodes=None, lazy=True,
                 sampler=None, rng=None):
        self.dm = _draft(draft)
        self.budget = _checks.check_number(budget, "budget", integer=True, low=0)
        self.threshold = _checks.check_number(threshold, "threshold", low=0, high=1,
                                              high_open=True, allow_none=True)
        self.max_nodes = _checks.check_number(max_nodes, "max_nodes", integer=True, low=0,
                                              allow_none=True)
        if self.max_nodes is not None and self.threshold is None:
            raise ValueError("max_nodes needs a threshold (it caps Algorithm 2)")
        self.lazy = _checks.check_flag(lazy, "lazy")
        self.sampler = InverseCdfSampler(rng) if sampler is None else sampler
        if not callable(self.sampler):
            raise TypeError("sampler must be a callable (residual, key) -> token")
        self.stats = DySpecStats()
        self.last = None

    def start(self, prompt, target_prefill_outputs=None):
        self.stats, self.last = DySpecStats(), None

    def draft(self, context, root):
        if self.threshold is None:
            t = build_tree_greedy(self.dm, context, root, self.budget, sampler=self.sampler,
                                  lazy=self.lazy)
        else:
            t = build_tree_threshold(self.dm, context, root, self.threshold,
                                     max_nodes=self.max_nodes, sampler=self.sampler)
        self.last = t
        self.stats.draft_calls.append(t.draft_calls)
        self.stats.decision_objective.append(decision_objective(t.popped_values))
        self.stats.estimated_accepted.append(estimated_accepted(t.node_value))
        return t.tree, t.draft_probs, "wor"

    def observe(self, tree, target_logits, target_hidden, result):
        t = self.last
        self.dm.commit(t.prefixes[int(result.path[-1])])  # compact the draft cache
        nodes, acc = tested_children(tree, result.path)
        self.stats.tested_prob += [float(t.draft_probs[tree.parents[c], tree.tokens[c]])
                                   for c in nodes]
        self.stats.tested_accepted += acc.tolist()


def _same_vocab(target, draft, name: str = "draft") -> int:
    """Check ``target`` (a TreeLM) and ``draft`` (a DraftLM over the same vocabulary) -> V."""
    _checks.check_methods(target, "target", _TARGET, _TARGET_WHAT)
    V = _vocab_size(target, "target")
    _draft(draft, name)
    if int(draft.vocab_size) != V:
        raise ValueError(f"{name}.vocab_size = {draft.vocab_size} differs from the target's "
                         f"vocab_size = {V} (the draft and the target share one vocabulary)")
    return V


def dyspec_generate(target, draft, prompt, max_new_tokens, *, budget=64, threshold=None,
                    max_nodes=None, lazy=True, target_temperature=0.0, top_p=1.0, rng=None,
                    sampler=None, eos_id=None, max_steps=None):
    """Generate with DySpec through the core engine's ``speculative_generate``.

    Parameters
    ----------
    target : TreeLM
    draft : DraftLM
        Over the target's vocabulary; its temperature is the draft temperature (the paper:
        0.6).
    prompt : (n,) int
    max_new_tokens : int >= 0
    budget, threshold, max_nodes, lazy, sampler :
        As in :class:`DySpecDrafter`.
    target_temperature : float >= 0, default 0
        0 is greedy (the output equals plain greedy decoding for any draft).
    top_p : float in (0, 1]
    rng : numpy.random.Generator, int seed or None
        One stream for the draft tokens (unless ``sampler`` is given) and the verification
        uniforms.
    eos_id, max_steps :
        As in ``speculative_generate``.

    Returns
    -------
    tokens : ndarray (n_new,) int64
    stats : DySpecStats
    """
    _same_vocab(target, draft)
    target_temperature = _checks.check_number(target_temperature, "target_temperature", low=0)
    rng = _checks.check_rng(rng)
    drafter = DySpecDrafter(draft, budget=budget, threshold=threshold, max_nodes=max_nodes,
                            lazy=lazy, sampler=InverseCdfSampler(rng) if sampler is None
                            else sampler)
    tokens, spec = speculative_generate(target, drafter, prompt, max_new_tokens,
                                        temperature=target_temperature, top_p=top_p,
                                        mode="wor", eos_id=eos_id, rng=rng, max_steps=max_steps)
    drafter.stats.spec = spec
    return tokens, drafter.stats

