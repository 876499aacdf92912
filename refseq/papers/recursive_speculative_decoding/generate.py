"""RSD generation: the tree builders as a core ``Drafter`` and the generation loop.

One step (arXiv 2402.14160, Sec. 3; the loop of :func:`refseq.decoding.speculative.engine.
speculative_generate`): build the draft tree (RSD-C, RSD-S or a baseline), score it with one
target tree forward, verify (greedy walk at target temperature 0, otherwise recursive rejection
sampling in the builder's mode: ``"wor"`` for RSD, ``"iid"`` for the baselines), emit, commit the
accepted path. The draft model here has no cache (it re-reads each prefix, like the core's
drafters), so nothing needs compacting on the draft side; ``draft_calls`` counts the batched
draft forwards a cached implementation would make (one per level).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from refseq import _checks
from refseq.decoding.speculative.batched import (
    _batch_size,
    _row_rngs,
    speculative_generate_batch,
)
from refseq.decoding.speculative.engine import SpecStats, speculative_generate
from refseq.papers.recursive_speculative_decoding.baselines import (
    chain_tree,
    iid_tree,
    k_sequences_tree,
)
from refseq.papers.recursive_speculative_decoding.rsd_trees import (
    _branching,
    _lm,
    _vocab,
    _warp_args,
    constant_branching_tree,
    stochastic_beam_tree,
)

__all__ = ["METHODS", "RSDDrafter", "RSDStats", "rsd_generate", "rsd_generate_batch"]

METHODS = ("rsd-c", "rsd-s", "iid", "k-seq", "chain")


class RSDDrafter:
    """The core's ``Drafter`` protocol (``start``, ``draft``, ``observe``) over a tree builder.

    Parameters
    ----------
    draft : StepLM
        The draft model.
    method : {"rsd-c", "rsd-s", "iid", "k-seq", "chain"}
        RSD-C (``branching``), RSD-S (``beam_width`` W, ``depth`` L), the i.i.d. tree
        (``branching``), K sequences (``K`` of length ``depth``), a chain of ``K`` tokens.
    branching : tuple of int, default (2, 2, 1)
    beam_width, depth, K : int >= 1, defaults 4, 3, 4
    temperature : float > 0, top_p : float in (0, 1] — the draft's warping (applied before
        sampling; the verifier receives the warped law)
    rng : numpy.random.Generator, int seed or None

    Attributes
    ----------
    draft_calls : list of int
        Batched draft forwards of each ``draft`` call.
    last : RSDTree or None
        The most recent tree.
    """

    def __init__(self, draft, method="rsd-c", *, branching=(2, 2, 1), beam_width=4, depth=3,
                 K=4, temperature=1.0, top_p=1.0, rng=None):
        self.lm = _lm(draft)
        self.vocab_size = _vocab(draft)
        self.method = _checks.check_choice(method, "method", METHODS)
        self.branching = _branching(branching)
        self.beam_width = _checks.check_number(beam_width, "beam_width", integer=True, low=1)
        self.depth = _checks.check_number(depth, "depth", integer=True, low=1)
        self.K = _checks.check_number(K, "K", integer=True, low=1)
        self.temperature = _checks.check_number(temperature, "temperature", low=0,
                                                low_open=True)
        self.top_p = _checks.check_number(top_p, "top_p", low=0, high=1, low_open=True)
        self.rng = _checks.check_rng(rng)
        self.draft_calls, self.last = [], None

    def build(self, context, root):
        """The :class:`RSDTree` of this drafter's method after ``context, root``."""
        kw = {"temperature": self.temperature, "top_p": self.top_p, "rng": self.rng}
        m = self.method
        if m == "rsd-c":
            return constant_branching_tree(self.lm, context, root, self.branching, **kw)
        if m == "rsd-s":
            return stochastic_beam_tree(self.lm, context, root, self.beam_width, self.depth, **kw)
        if m == "iid":
            return iid_tree(self.lm, context, root, self.branching, **kw)
        if m == "k-seq":
            return k_sequences_tree(self.lm, context, root, self.K, self.depth, **kw)
        return chain_tree(self.lm, context, root, self.K, **kw)

    def start(self, prompt, target_prefill_outputs=None):
        self.draft_calls, self.last = [], None

    def draft(self, context, root):
        t = self.build(context, root)
        self.draft_calls.append(t.draft_calls)
        self.last = t
        return t.tree, t.draft_probs, t.mode

    def observe(self, tree, target_logits, target_hidden, result):
        pass  # no draft cache to compact (the draft re-reads its prefixes)


@dataclass
class RSDStats(SpecStats):
    """:class:`~refseq.decoding.speculative.engine.SpecStats` plus the draft cost per step.

    ``draft_calls`` per step; ``tree_size`` (from SpecStats) is the target budget of each call
    (drafts + 1).
    """

    draft_calls: list = field(default_factory=list)

    @property
    def block_efficiency(self) -> float:
        """Emitted tokens per target call (after EOS / length truncation)."""
        return float(np.sum(self.emitted) / self.steps) if self.steps else 0.0

    @property
    def draft_calls_per_step(self) -> float:
        return float(np.mean(self.draft_calls)) if self.steps else 0.0


def rsd_generate(target, draft, prompt, max_new_tokens, *, method="rsd-c", branching=(2, 2, 1),
                 beam_width=4, depth=3, K=4, target_temperature=1.0, draft_temperature=1.0,
                 top_p=1.0, draft_top_p=1.0, rng=None, eos_id=None, max_steps=None):
    """Generate with RSD (or a baseline) through the core engine.

    Parameters
    ----------
    target : TreeLM (e.g. ``TabularTreeLM``, ``TinyTransformerTreeLM``)
    draft : StepLM
    prompt : (n,) int; max_new_tokens : int >= 0
    method, branching, beam_width, depth, K : as in :class:`RSDDrafter`
    target_temperature : float >= 0
        0 is greedy verification (the output equals plain greedy decoding).
    draft_temperature : float > 0
    top_p : float in (0, 1]
        The target's top-p (the verified law); ``draft_top_p`` filters the draft before
        sampling.
    rng : numpy.random.Generator, int seed or None
        One generator for the draft noise and the verification uniforms (same seed, same
        output).
    eos_id : int, optional; max_steps : int, optional

    Returns
    -------
    tokens : ndarray (n_new,), int64
    stats : RSDStats
    """
    rng = _checks.check_rng(rng)
    drafter, T = _drafter(target, draft, method, branching, beam_width, depth, K,
                          target_temperature, draft_temperature, draft_top_p, rng)
    tokens, st = speculative_generate(target, drafter, prompt, max_new_tokens, temperature=T,
                                      top_p=top_p, eos_id=eos_id, rng=rng, max_steps=max_steps)
    stats = RSDStats(**vars(st), draft_calls=list(drafter.draft_calls))
    return tokens, stats


def _drafter(target, draft, method, branching, beam_width, depth, K, target_temperature,
             draft_temperature, draft_top_p, rng):
    """One row's checked :class:`RSDDrafter` and the target temperature."""
    _warp_args(draft_temperature, draft_top_p, prefix="draft_")  # named as rsd_generate's
    drafter = RSDDrafter(draft, method, branching=branching, beam_width=beam_width, depth=depth,
                         K=K, temperature=draft_temperature, top_p=draft_top_p, rng=rng)
    T = _checks.check_number(target_temperature, "target_temperature", low=0)
    Vt = getattr(target, "vocab_size", None)
    if isinstance(Vt, (int, np.integer)) and not isinstance(Vt, bool) and Vt != drafter.vocab_size:
        raise ValueError(f"draft.vocab_size ({drafter.vocab_size}) must equal target.vocab_size "
                         f"({Vt}): the verifier compares their laws token by token")
    return drafter, T


def rsd_generate_batch(target, draft, prompts, max_new_tokens, *, method="rsd-c",
                       branching=(2, 2, 1), beam_width=4, depth=3, K=4, target_temperature=1.0,
                       draft_temperature=1.0, top_p=1.0, draft_top_p=1.0, rngs=None,
                       eos_id=None, backend="numpy"):
    """RSD (or a baseline) on ``B`` rows at once: per-row trees, one batched target forward and
    one batched verification per step
    (:func:`~refseq.decoding.speculative.batched.speculative_generate_batch`).

    Row b with stream ``rngs[b]`` (its draft noise, then its verification uniforms) gives
    exactly what :func:`rsd_generate` gives on row b alone with the same seed, when the batched
    target's row b equals the single-row target (e.g.
    :class:`~refseq.decoding.speculative.batched.RowsTreeLM`).

    Parameters
    ----------
    target : batched TreeLM over B rows (``BatchedTreeLM``, ``RowsTreeLM``)
    draft : StepLM
        Shared by the rows (it keeps no cache: it re-reads each prefix).
    prompts : list of B (n_b,) int arrays; max_new_tokens : int >= 0
    method, branching, beam_width, depth, K, target_temperature, draft_temperature, top_p,
    draft_top_p, eos_id :
        As in :func:`rsd_generate`.
    rngs : list of B generators or int seeds, optional
    backend : "numpy" | "jit" | "cuda" — tier of the verification kernels.

    Returns
    -------
    tokens : list of B ndarrays (n_new_b,) int64
    stats : list of B RSDStats
    """
    rngs = _row_rngs(rngs, _batch_size(prompts))
    made = [_drafter(target, draft, method, branching, beam_width, depth, K,
                     target_temperature, draft_temperature, draft_top_p, r) for r in rngs]
    tokens, stats = speculative_generate_batch(
        target, [d for d, _ in made], prompts, max_new_tokens, temperature=made[0][1],
        top_p=top_p, eos_id=eos_id, rngs=rngs, backend=backend)
    return tokens, [RSDStats(**vars(st), draft_calls=list(d.draft_calls))
                    for st, (d, _) in zip(stats, made)]
