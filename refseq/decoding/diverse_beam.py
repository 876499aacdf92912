"""Diverse beam search (DBS; Vijayakumar et al., arXiv 1610.02424, Sec. 4, Algorithm 1).

The ``B`` beams of an item are split into ``G`` groups of ``B' = B / G``. Each group runs beam
search (:mod:`refseq.decoding.beam`'s rules: candidates ranked by score then flat index, EOS
admitted to the group's n-best list only at rank ``< B'``, the best ``B'`` non-EOS candidates run
on), but group ``g`` ranks its one-token extensions by the *augmented* step score

.. math:: \\theta(v \\mid y_b) - \\lambda_g P^g_t(b, v)

(the paper's eq. 3 with ``Delta = -P``), where the penalty ``P`` (:mod:`refseq.decoding.diversity`)
compares the candidate with what the earlier groups ``1..g-1`` produced at this step. Group 1 is
never penalised: it is plain beam search of width ``B'``. Groups act one after another within a
step, steps one after another in time ("doubly greedy").

Options (the peers disagree; every choice is explicit):

- ``schedule``: ``"lockstep"`` (Algorithm 1, HF, fairseq: all groups act at every step) or
  ``"staggered"`` (official Lua code: group g starts at global step g and, at global step t,
  decides its position ``tau = t - g + 1`` against the earlier groups' *current* tables);
- ``penalty_source``: ``"kept"`` (the B' beams each earlier group kept) or ``"candidates"``
  (fairseq: all its ``n_cand`` candidates, EOS and discarded ones included; lockstep only);
- ``accumulate_penalty``: rank by ``A(parent) + step`` (the running score carries past penalties;
  every peer) or by ``Theta(parent) + step`` (the penalty acts at the current step only);
- ``final_rank``: the n-best lists rank by the augmented sum ``A`` or the raw log-prob ``Theta``.

Conventions: ``"neutral"``; ``"hf"`` (transformers 4.4x ``_group_beam_search``: beams 1.. of
every group start at ``-1e9``, ``max(2, 1 + n_eos) B'`` candidates, a group is done when its
list is full and the best *candidate* cannot beat it, a done group contributes ``pad_id`` B' times
to later groups' Hamming counts, returned sequences are the best ``num_return_sequences`` over all
groups); ``"fairseq"`` (``DiverseBeamSearch`` + ``SequenceGenerator``: interleaved groups,
``penalty_source="candidates"``, ``min(2B', B'V - 1)`` candidates, pad banned, only EOS at the last
step, one finished list of capacity B shared by the groups and filled first-come in interleaved
order, the item stops once it is full); ``"lua"`` (ashwinkalyan/dbs: staggered; the top B'
candidates *including* EOS take the group's slots, an EOS one is finished and its slot dies;
no early stop). Deviations from the peers: docs/papers/diverse-beam-search.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from refseq import _checks
from refseq.decoding._diverse_beam_checks import CONVENTIONS, _check_args
from refseq.decoding.beam import HF_NEG, _n_candidates, beam_step
from refseq.decoding.interfaces import as_prompts, log_softmax
from refseq.decoding.nbest import Hypothesis, NBestList, normalize

__all__ = ["CONVENTIONS", "DBSHypothesis", "DBSResult", "diverse_beam_search", "group_step"]



@dataclass(frozen=True, eq=False)
class DBSHypothesis(Hypothesis):
    """A :class:`~refseq.decoding.nbest.Hypothesis` of one group. ``score`` is the normalised
    ranking score (of ``aug_score`` or of ``sum_logprob``, by ``final_rank``); ``sum_logprob`` and
    ``token_logprobs`` are raw (unpenalised) log-probs; ``aug_score`` is the sum of the augmented
    step scores ``theta - lambda_g P``; ``token_penalties`` (L,) the penalty ``P`` applied at each
    step (unscaled: ``aug_score = sum_logprob - lambda_g * token_penalties.sum()``); ``group`` is
    0-based."""

    aug_score: float
    token_penalties: np.ndarray
    group: int

    def __repr__(self) -> str:
        return (f"DBSHypothesis(group={self.group}, tokens={self.tokens.tolist()}, "
                f"score={self.score:.6g}, aug_score={self.aug_score:.6g}, "
                f"sum_logprob={self.sum_logprob:.6g}, finished={self.finished})")


class DBSResult(NamedTuple):
    """One item's output: ``groups[g]`` best first; ``flat`` the union, group-major (group 0
    first; fairseq: interleaved, rank k of group g at ``k G + g``) or, with
    ``num_return_sequences=n``, the best n of the union by score."""

    groups: list
    flat: list


class _GroupNBest(NBestList):
    """:class:`NBestList` holding :class:`DBSHypothesis` (same insertion and eviction rule)."""

    def offer(self, hyp: DBSHypothesis) -> bool:
        if len(self._entries) >= self.capacity and not hyp.score > self.worst_score:
            return False
        self._entries.append((hyp.score, self._count, hyp))
        self._count += 1
        if len(self._entries) > self.capacity:  # drop the worst; among ties, the latest
            self._entries.remove(min(self._entries, key=lambda e: (e[0], -e[1])))
        return True


class _Beams(NamedTuple):
    """The running beams of one (item, group): tokens, per-token raw log-probs and penalties
    (B', t); augmented and raw running sums (B',)."""

    tokens: np.ndarray
    lps: np.ndarray
    pens: np.ndarray
    aug: np.ndarray
    raw: np.ndarray


def group_step(cum, logprobs, penalty, lam: float, n_cand: int, first_step: bool = False):
    """One beam-search step of one group on augmented scores ``cum + logprobs - lam * penalty``.

    Parameters
    ----------
    cum : (B',) float — the running ranking scores of the group's beams.
    logprobs : (B', V) float — processed log-probs. penalty : (B', V) or (V,) float — ``P``.
    lam : float >= 0. n_cand : int in [1, B' V].
    first_step : only row 0 is expanded (the others are copies of the same prompt).

    Returns
    -------
    cand_scores (n_cand,), cand_beam (n_cand,) int64, cand_token (n_cand,) int64: the best
    extensions by augmented score, ties to the lower flat index ``b V + v``
    (:func:`refseq.decoding.beam.beam_step`). Since the group objective is a sum of per-candidate
    terms, its best set of ``k`` distinct extensions is the top ``k`` of this list.
    """
    lp = _checks.float_array(logprobs, "logprobs")
    if lp.ndim != 2:
        raise ValueError(f"logprobs must have shape (B', V), got {lp.shape}")
    cum = _checks.float_array(cum, "cum", dtype=lp.dtype)
    _checks.check_shape(cum, lp.shape[:1], "cum", "(B',)")
    if np.isnan(cum).any() or (cum == np.inf).any():
        raise ValueError("cum must not hold NaN or +inf (-inf marks a dead beam)")
    pen = _checks.float_array(penalty, "penalty")
    if pen.shape not in (lp.shape, lp.shape[1:]):
        raise ValueError(f"penalty must have shape (B', V) = {lp.shape} or (V,), got {pen.shape}")
    _checks.check_finite(pen, "penalty", hint="")
    lam = _checks.check_number(lam, "lam", low=0)
    if _checks.check_flag(first_step, "first_step"):
        cum = np.where(np.arange(len(cum)) == 0, cum, -np.inf).astype(lp.dtype)
    step = lp - lp.dtype.type(lam) * pen.astype(lp.dtype)  # (B', V)
    s, b, v = beam_step(cum[None], step[None], n_cand)  # each (1, n_cand)
    return s[0], b[0], v[0]


def diverse_beam_search(model, prompts, *, num_beams: int, num_groups: int,
                        diversity_strength, diversity="hamming", max_new_tokens: int,
                        eos_ids: Sequence[int] = (), pad_id: int | None = None,
                        min_new_tokens: int = 0, suppress_ids: Sequence[int] = (),
                        length_penalty: float = 0.0, length_norm: str = "power",
                        early_stopping: bool | str = False, schedule: str | None = None,
                        penalty_source: str | None = None, accumulate_penalty: bool | None = None,
                        final_rank: str | None = None, num_return_sequences: int | None = None,
                        logprob_processor=None, convention: str = "neutral",
                        compute_dtype=np.float64, **diversity_kwargs) -> list[DBSResult]:
    """Diverse beam search over a ``StepLM`` for a batch of prompts (module docstring).

    Parameters
    ----------
    model : StepLM. prompts : list of 1-d int arrays.
    num_beams : B. num_groups : G, a divisor of B (``B' = B // G`` beams per group).
    diversity_strength : lambda >= 0, or (G,) per-group ``lambda_g`` (``lambda_1`` is unused).
    diversity : "hamming" | "cumulative" | "ngram" | "embedding" | "embedding_ngram", or a
        callable ``f(group_prefixes (B', t-1), prev_sequences (M, t), V, **diversity_kwargs)
        -> (B', V) or (V,)`` (:mod:`refseq.decoding.diversity`).
    max_new_tokens, eos_ids, pad_id, min_new_tokens, length_penalty, length_norm,
    early_stopping, logprob_processor, compute_dtype : as in
        :func:`refseq.decoding.beam.beam_search` (``length_penalty`` defaults to the paper's 0).
    suppress_ids : token ids whose log-prob is ``-inf`` at every step (the Lua code's UNK rule).
    schedule, penalty_source, accumulate_penalty, final_rank : the options of the module
        docstring; None takes the convention's value; "hf", "fairseq" and "lua" fix them.
    num_return_sequences : None (``flat`` holds every group's list) or n <= B (the best n).
    convention : "neutral" | "hf" | "fairseq" | "lua".
    **diversity_kwargs : passed to the diversity function (``gamma``, ``scope``, ``n``, ``emb``,
        ``clip_negative``).

    Returns
    -------
    One :class:`DBSResult` per prompt.
    """
    a = _check_args(model, num_beams, num_groups, diversity_strength, diversity, max_new_tokens,
                    eos_ids, pad_id, min_new_tokens, suppress_ids, length_penalty, length_norm,
                    early_stopping, schedule, penalty_source, accumulate_penalty, final_rank,
                    num_return_sequences, logprob_processor, convention, compute_dtype)
    prompts = as_prompts(prompts)
    if not prompts:
        raise ValueError("prompts must hold at least one prompt")
    for i, p in enumerate(prompts):
        _checks.int_array(p, f"prompts[{i}]", high=a["V"])
    return _Search(model, prompts, a, diversity_kwargs).run()


class _Search:
    """The search of one call: per group a model state over the (item, beam) rows still searching
    in that group; per (item, group) the running :class:`_Beams`, the n-best list and the latest
    table of kept tokens that later groups read."""

    def __init__(self, model, prompts, a, kw):
        self.model, self.a, self.kw = model, a, kw
        n, G, Bp, V = len(prompts), a["G"], a["Bp"], a["V"]
        self.eos = np.zeros(V, bool)
        self.eos[list(a["eos"])] = True
        self.nbest = [[_GroupNBest(Bp, a["alpha"], a["norm"]) for _ in range(G)] for _ in range(n)]
        self.pool = [[] for _ in range(n)]  # fairseq: one finished list per item, capacity B
        self.table = [[np.zeros((Bp, 0), np.int64)] * G for _ in range(n)]
        self.cands = [[None] * G for _ in range(n)]  # candidate sequences of this step
        logits, state = model.start(prompts)  # (n, V)
        rows = np.repeat(np.arange(n), Bp)  # every item's prefill copied to its B' rows
        init = np.full(Bp, HF_NEG if a["conv"] == "hf" else -np.inf, a["dt"])
        init[0] = 0
        empty_i, empty_f = np.zeros((Bp, 0), np.int64), np.zeros((Bp, 0), a["dt"])
        self.states = [model.reorder(state, rows) for _ in range(G)]
        self.logits = [np.asarray(logits)[rows] for _ in range(G)]  # (n B', V) each
        self.beams = [{i: _Beams(empty_i, empty_f, np.zeros((Bp, 0)), init, init)
                       for i in range(n)} for _ in range(G)]  # items still searching, in order

    # ------------------------------------------------------------------ one group, one step
    def _logprobs(self, g, tau):
        a = self.a
        z = _checks.float_array(self.logits[g], "model logits", dtype=a["dt"])
        lp = log_softmax(z, dtype=a["dt"])  # (R, V)
        if a["pad"] is not None and a["conv"] != "hf":
            lp[:, a["pad"]] = -np.inf
        lp[:, list(a["suppress"])] = -np.inf
        if tau <= a["min_new"]:
            lp[:, self.eos] = -np.inf
        if a["conv"] == "fairseq" and tau == a["T"]:
            lp[:, ~self.eos] = -np.inf  # fairseq: only EOS at the last step
        if a["proc"] is not None:
            gen = np.concatenate([b.tokens for b in self.beams[g].values()])  # (R, tau - 1)
            lp = _checks.float_array(a["proc"](gen.copy(), lp), "logprob_processor output",
                                     dtype=a["dt"])
            _checks.check_shape(lp, (len(gen), a["V"]), "logprob_processor output", "(rows, V)")
        return lp

    def _previous(self, i, g, tau):
        """The sequences (M, tau) the earlier groups contribute to group g's step tau."""
        a, out = self.a, []
        for h in range(g):
            seqs = self.table[i][h] if a["source"] == "kept" else self.cands[i][h]
            if seqs is None:
                continue
            if seqs.shape[1] < tau and a["conv"] == "hf":  # group h finished earlier
                fill = np.full((len(seqs), tau - seqs.shape[1]), a["pad"] or 0, np.int64)
                seqs = np.concatenate([seqs, fill], axis=1)  # a done HF group emits pad
            if seqs.shape[1] >= tau:  # a group that stopped earlier contributes nothing
                out.append(seqs[:, :tau])
        return np.concatenate(out) if out else np.zeros((0, tau), np.int64)  # (M, tau)

    def _penalty(self, i, g, tau, prefixes):
        a = self.a
        prev = self._previous(i, g, tau)
        if g == 0 or len(prev) == 0:
            return np.zeros((a["Bp"], a["V"]))
        P = _checks.float_array(a["fn"](prefixes.copy(), prev, a["V"], **self.kw),
                                "diversity output").astype(np.float64)
        if P.shape not in ((a["V"],), (a["Bp"], a["V"])):
            raise ValueError(f"diversity output must have shape (B', V) = ({a['Bp']}, {a['V']})"
                             f" or (V,), got {P.shape}")
        _checks.check_finite(P, "diversity output", hint="")
        return np.broadcast_to(P, (a["Bp"], a["V"]))  # (B', V)

    def _act(self, g, tau, i, lp, pending):
        """Group g of item i takes its step tau; returns (beams or None, parents, tokens)."""
        a, bm, Bp, conv, T = self.a, self.beams[g][i], self.a["Bp"], self.a["conv"], self.a["T"]
        P = self._penalty(i, g, tau, bm.tokens)  # (B', V)
        lam = a["lam"][g] if g else 0.0
        first = tau == 1 and conv != "hf"
        n_cand = (min(Bp, Bp * a["V"]) if conv == "lua" else
                  _n_candidates(conv, Bp, a["V"], len(a["eos"]), 2, first))
        cum = bm.aug if a["accumulate"] else bm.raw
        _, pb, pv = group_step(cum, lp, P, lam, n_cand, first)  # (n_cand,) each
        step = lp - lp.dtype.type(lam) * P.astype(lp.dtype)  # (B', V) augmented step scores
        aug, raw = bm.aug[pb] + step[pb, pv], bm.raw[pb] + lp[pb, pv]  # (n_cand,)
        rank = aug if a["final_rank"] == "augmented" else raw
        seqs = np.concatenate([bm.tokens[pb], pv[:, None]], axis=1)  # (n_cand, tau)
        self.cands[i][g] = seqs

        def hyp(j, finished):
            pens = np.append(bm.pens[pb[j]], P[pb[j], pv[j]])
            return DBSHypothesis(seqs[j], normalize(rank[j], tau, a["alpha"], a["norm"]),
                                 float(raw[j]), np.append(bm.lps[pb[j]], lp[pb[j], pv[j]]), tau,
                                 finished, float(aug[j]), pens, g)

        eos = self.eos[pv]
        for j in np.flatnonzero(eos[:Bp] & (raw[:Bp] > -np.inf)):  # admission: rank < B' only
            if conv == "fairseq":
                pending.append((j, g, hyp(j, True)))
            else:
                self.nbest[i][g].offer(hyp(j, True))
        if conv == "lua":  # the top B' take the slots; an EOS one is finished and its slot dies
            keep = np.arange(min(Bp, len(pv)))
            alive = ~eos[keep]
        else:  # the best B' non-EOS candidates run on
            keep = np.flatnonzero(~eos)[:Bp]
            alive = np.ones(len(keep), bool)
        alive &= raw[keep] > -np.inf
        if len(keep) == 0:
            return None, None, None
        if len(keep) < Bp:  # too few candidates: dead copies fill the rows
            alive = np.concatenate([alive, np.zeros(Bp - len(keep), bool)])
            keep = np.concatenate([keep, np.full(Bp - len(keep), keep[-1])])
        live = keep[alive]
        self.table[i][g] = seqs[keep]
        best = rank[live].max() if len(live) else -np.inf
        if conv == "hf":  # HF: the best candidate, EOS ones included
            best = rank.max()
        done = len(live) == 0 or (conv in ("neutral", "hf") and self.nbest[i][g].is_done(
            best, tau, T, a["early"]))
        if tau == T and conv != "fairseq" and not (conv == "hf" and done):
            for j in live:  # cut at the length limit: the running beams join unfinished
                self.nbest[i][g].offer(hyp(j, False))
        if done or tau == T:
            return None, None, None
        rows, toks = pb[keep], pv[keep]
        new = _Beams(seqs[keep],
                     np.concatenate([bm.lps[rows], lp[rows, toks][:, None]], axis=1),
                     np.concatenate([bm.pens[rows], P[rows, toks][:, None]], axis=1),
                     np.where(alive, aug[keep], -np.inf), np.where(alive, raw[keep], -np.inf))
        return new, rows, toks

    # ------------------------------------------------------------------ the loop
    def run(self) -> list[DBSResult]:
        a, G = self.a, self.a["G"]
        lockstep = a["schedule"] == "lockstep"
        for t in range(1, a["T"] + (1 if lockstep else G)):
            moved, pending = [], [[] for _ in self.pool]
            for g in range(G):
                tau = t if lockstep else t - g
                if not 1 <= tau <= a["T"] or not self.beams[g]:
                    continue
                lp = self._logprobs(g, tau)  # (R, V)
                nxt, parents, tokens = {}, [], []
                for pos, i in enumerate(self.beams[g]):
                    new, pb, pv = self._act(g, tau, i, lp[pos * a["Bp"]:(pos + 1) * a["Bp"]],
                                            pending[i])
                    if new is not None:
                        nxt[i] = new
                        parents.append(pos * a["Bp"] + pb)
                        tokens.append(pv)
                self.beams[g] = nxt
                moved.append((g, list(nxt), parents, tokens))
            for i, adm in enumerate(pending):  # fairseq: first come, in interleaved order
                for _, _, h in sorted(adm, key=lambda x: (x[0], x[1])):
                    if len(self.pool[i]) < a["B"]:
                        self.pool[i].append(h)
                if a["conv"] == "fairseq" and len(self.pool[i]) >= a["B"]:
                    for beams in self.beams:
                        beams.pop(i, None)
            for g, items, parents, tokens in moved:
                keep = [k for k, i in enumerate(items) if i in self.beams[g]]
                if not keep:
                    continue
                rows = np.concatenate([parents[k] for k in keep])
                self.states[g] = self.model.reorder(self.states[g], rows)
                self.logits[g], self.states[g] = self.model.step(
                    self.states[g], np.concatenate([tokens[k] for k in keep]))
            if not any(self.beams):
                break
        return [self._result(i) for i in range(len(self.pool))]

    def _result(self, i) -> DBSResult:
        a, G = self.a, self.a["G"]
        if a["conv"] == "fairseq":
            groups = [sorted((h for h in self.pool[i] if h.group == g), key=lambda h: -h.score)
                      for g in range(G)]
            flat = [grp[k] for k in range(a["B"]) for grp in groups if k < len(grp)]
        else:
            groups = [self.nbest[i][g].hypotheses() for g in range(G)]
            flat = [h for grp in groups for h in grp]
        if a["n_ret"] is not None:
            flat = sorted(flat, key=lambda h: -h.score)[:a["n_ret"]]
        return DBSResult(groups, flat)

