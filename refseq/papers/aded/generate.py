"""ADED generation (arXiv 2407.12021, Sec. 3 and the released ``aded_model.py`` loop): the
:class:`~refseq.papers.aded.drafter.ADEDDrafter` driven by the shared engine
:func:`~refseq.decoding.speculative.engine.speculative_generate`.

``acceptance="exact"``: greedy verification at ``temperature == 0`` (the output equals greedy
decoding token for token), ``point``-mode stochastic verification otherwise (the drafts are
deterministic given the rollout rng, so the output has the target's sampling law).
``acceptance="rest_nucleus"``: the released sampling rule
(:func:`~refseq.papers.aded.rest_nucleus.verify_rest_nucleus`), which is *not*
distribution-preserving; kept for comparisons.

Accepted length per step follows the MAT convention (root plus accepted drafts, ``m + 1``), so
``stats.mat`` is the mean number of tokens per target call.
"""

from __future__ import annotations

from dataclasses import dataclass

from refseq import _checks
from refseq.decoding.sampling import warped_probs
from refseq.decoding.speculative.engine import SpecStats, speculative_generate
from refseq.papers.aded.drafter import ADEDDrafter
from refseq.papers.aded.rest_nucleus import verify_rest_nucleus

__all__ = ["ACCEPTANCE", "ADEDStats", "aded_generate"]

ACCEPTANCE = ("exact", "rest_nucleus")


@dataclass
class ADEDStats:
    """``spec``: the engine's per-step record; ``drafter``: the drafter's ``history`` for this
    call (tree size, candidates, search statistics, table size after the update)."""

    spec: SpecStats
    drafter: list

    @property
    def accepted_length(self) -> list:
        """Per step ``m + 1`` (MAT convention)."""
        return [m + 1 for m in self.spec.num_accepted]

    @property
    def mat(self) -> float:
        """Mean accepted tokens per target call (``SpecStats.tokens_per_call``)."""
        return self.spec.tokens_per_call


def aded_generate(target, prompt, max_new_tokens, matrix, *, adaptive=True, method="mcts",
                  iterations=150, sentence_length=4, top_sentences=24, choices=64, max_nodes=64,
                  c1=32.0, c2=8.0, return_rule="path", cut_rule="released", temperature=0.0,
                  top_p=1.0, acceptance="exact", rng=None, mcts_rng=0, eos_id=None,
                  fallback_token=None):
    """Generate with ADED; returns ``(tokens (n_new,) int64, ADEDStats)``.

    Parameters
    ----------
    target : TreeLM
    prompt : (n,) int, n >= 1
    max_new_tokens : int >= 0
    matrix : TrigramMatrix
        Carried state: adapted in place when ``adaptive`` (pass a copy to keep it).
    adaptive, method, iterations, sentence_length, top_sentences, choices, max_nodes, c1, c2,
    return_rule, cut_rule, fallback_token :
        As in :class:`~refseq.papers.aded.drafter.ADEDDrafter`.
    temperature, top_p :
        The target's warping; ``temperature == 0`` is greedy.
    acceptance : {"exact", "rest_nucleus"}
        ``rest_nucleus`` needs ``temperature > 0`` and is lossy.
    rng : numpy.random.Generator or int seed
        Verification uniforms (sampling only).
    mcts_rng : numpy.random.Generator or int seed
        Rollout randomness (the released code draws from ``thread_rng``).
    eos_id : int, optional
    """
    acceptance = _checks.check_choice(acceptance, "acceptance", ACCEPTANCE)
    mcts_rng = _checks.check_rng(mcts_rng, "mcts_rng")
    drafter = ADEDDrafter(matrix, adaptive=adaptive, method=method, iterations=iterations,
                          sentence_length=sentence_length, top_sentences=top_sentences,
                          choices=choices, max_nodes=max_nodes, c1=c1, c2=c2,
                          return_rule=return_rule, cut_rule=cut_rule,
                          fallback_token=fallback_token, rng=mcts_rng)
    T = _checks.check_number(temperature, "temperature", low=0)
    if acceptance == "exact":
        tokens, spec = speculative_generate(target, drafter, prompt, max_new_tokens,
                                            temperature=T, top_p=top_p, mode="point",
                                            eos_id=eos_id, rng=rng)
        return tokens, ADEDStats(spec, drafter.history)
    if T == 0:
        raise ValueError("acceptance='rest_nucleus' needs temperature > 0 (at temperature 0 "
                         "use acceptance='exact', which is greedy)")
    top_p = _checks.check_number(top_p, "top_p", low=0, high=1, low_open=True)

    def rest_nucleus(tree, logits, draft_probs, rng):  # the released rule, lossy
        p = warped_probs(logits, temperature=T, top_p=top_p)  # (N, V) float64
        P = max(tree.num_leaves, 1)
        return verify_rest_nucleus(tree, p, rng.random((P, tree.max_depth)), rng.random())

    tokens, spec = speculative_generate(target, drafter, prompt, max_new_tokens, temperature=T,
                                        top_p=top_p, eos_id=eos_id, rng=rng, verify=rest_nucleus)
    return tokens, ADEDStats(spec, drafter.history)
