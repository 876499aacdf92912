"""``refseq demo diverse-beam-search``: DBS against beam search at tiny scale (Vijayakumar et al.,
arXiv 1610.02424, Sec. 6: more diverse n-best lists at a small cost in log-probability;
docs/papers/diverse-beam-search.md).

For each seed s: a bigram model ``random_markov_lm(V, alpha, seed=s)`` (no EOS), start token
``s % V``, ``T`` new tokens. Beam search (B beams, no length normalisation) against DBS (B beams
in G = B groups of one, Hamming, lockstep, accumulated penalty) at each lambda. Reported per
method: mean distinct-2 of the B outputs (distinct bigrams / bigrams over the list), the share of
prompts on which DBS's distinct-2 beats beam search's, the mean raw log-probability of the
returned sequences and the mean of each list's best one.
"""

from __future__ import annotations

import argparse

import numpy as np

from refseq.cli import positive_float, positive_int
from refseq.decoding.beam import beam_search
from refseq.decoding.diverse_beam import diverse_beam_search
from refseq.models.toy_lm import random_markov_lm

MIN_GAIN, MIN_WINS = 0.08, 0.85  # the claim checked: distinct-2 gain and share of prompts won


def _distinct2(seqs):
    from refseq.metrics.diversity import distinct_n  # shared with the hyperfitting paper

    return distinct_n(seqs, 2)


def run(seeds=200, V=30, alpha=0.1, T=10, B=8, lambdas=(0.5, 1.0, 2.0)):
    """Return ``{"setup": {...}, "rows": [{method, lam, distinct2, wins, mean_logprob,
    best_logprob}], "ok": bool}``; ``ok`` when every DBS row gains >= ``MIN_GAIN`` distinct-2
    over beam search and wins on >= ``MIN_WINS`` of the prompts."""
    stats = {("beam", None): []} | {("dbs", lam): [] for lam in lambdas}
    for s in range(seeds):
        lm = random_markov_lm(V, alpha, s)
        prompt = [np.array([s % V])]
        hyps = {("beam", None): beam_search(lm, prompt, num_beams=B, max_new_tokens=T,
                                            length_penalty=0.0, num_return_sequences=B)[0]}
        for lam in lambdas:
            hyps[("dbs", lam)] = diverse_beam_search(
                lm, prompt, num_beams=B, num_groups=B, diversity_strength=lam,
                max_new_tokens=T)[0].flat
        for key, hs in hyps.items():
            lps = [h.sum_logprob for h in hs]
            stats[key].append((_distinct2([h.tokens for h in hs]), np.mean(lps), max(lps)))
    base = np.array(stats[("beam", None)])  # (seeds, 3)
    rows = []
    for (method, lam), st in stats.items():
        st = np.array(st)
        rows.append({"method": method, "lam": lam, "distinct2": st[:, 0].mean(),
                     "wins": None if lam is None else float(np.mean(st[:, 0] > base[:, 0])),
                     "mean_logprob": st[:, 1].mean(), "best_logprob": st[:, 2].mean()})
    ok = all(r["distinct2"] - rows[0]["distinct2"] >= MIN_GAIN and r["wins"] >= MIN_WINS
             for r in rows[1:])
    return {"setup": dict(seeds=seeds, V=V, alpha=alpha, T=T, B=B), "rows": rows, "ok": ok}


def format_table(result) -> str:
    s = result["setup"]
    lines = [f"Diverse beam search vs beam search: random_markov_lm(V={s['V']}, "
             f"alpha={s['alpha']}), {s['seeds']} prompts, T = {s['T']}, B = {s['B']} "
             f"(DBS: G = {s['B']}, Hamming, lockstep)", "",
             f"{'method':<14}  {'distinct-2':>10}  {'wins':>6}  {'mean logp':>9}  "
             f"{'best logp':>9}"]
    for r in result["rows"]:
        name = "beam search" if r["lam"] is None else f"DBS lam={r['lam']:g}"
        wins = "-" if r["wins"] is None else f"{100 * r['wins']:.0f}%"
        lines.append(f"{name:<14}  {r['distinct2']:>10.3f}  {wins:>6}  "
                     f"{r['mean_logprob']:>9.2f}  {r['best_logprob']:>9.2f}")
    lines += ["", f"DBS gains >= {MIN_GAIN} distinct-2 and wins on >= {100 * MIN_WINS:.0f}% of "
              f"prompts at every lambda: {'yes' if result['ok'] else 'NO'}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if the claim does not hold."""
    parser = argparse.ArgumentParser(
        prog="refseq demo diverse-beam-search",
        description="Diverse beam search against beam search on random bigram models.")
    parser.add_argument("--seeds", type=positive_int, default=200, help="number of prompts")
    parser.add_argument("--V", type=positive_int, default=30, help="vocabulary size")
    parser.add_argument("--alpha", type=positive_float, default=0.1, help="Dirichlet alpha")
    parser.add_argument("--T", type=positive_int, default=10, help="new tokens")
    parser.add_argument("--B", type=positive_int, default=8, help="beams (DBS: groups of one)")
    parser.add_argument("--lambdas", type=positive_float, nargs="+", default=[0.5, 1.0, 2.0])
    args = parser.parse_args(argv)
    result = run(seeds=args.seeds, V=args.V, alpha=args.alpha, T=args.T, B=args.B,
                 lambdas=tuple(args.lambdas))
    print(format_table(result))
    return 0 if result["ok"] else 1
