"""``refseq demo making-the-most``: degenerate modes and conditional mode search at toy scale
(thesis arXiv 2408.16241, Part C; Yoshida, Goyal and Gimpel, arXiv 2311.08817;
docs/papers/making-the-most.md).

1. The contamination argument (asserted, exact). Population: ``n_sym**length`` strings of
   ``length`` symbols, uniform; noise: the empty output (immediate EOS) with probability 1;
   ``q = (1 - eps) pop + eps noise`` as an :class:`ExplicitLM`. :func:`exact_mode` must return the
   empty output, :func:`degeneracy_threshold` must equal ``(1/N) / (1/N + 1)``, and the
   length-``length`` conditional mode must be a population string. Then a peaked random
   population (Dirichlet(0.1) over the same strings): the mode is the population's arg-max just
   below ``eps*`` and the empty output just above it, and the length-conditional mode is the
   population's arg-max on both sides.
2. Length-conditional modes of a random Markov LM with EOS (reported): the unconditional exact
   mode, the exact mode for each length L, and whether ACBS with the exact length attribute
   (``num_beams`` beams, no pre-filter) finds it.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from refseq.cli import positive_int, seed
from refseq.decoding.exact import exact_length_conditional_modes, exact_mode
from refseq.models.toy_lm import random_markov_lm
from refseq.papers.making_the_most.conditional import conditional_beam_search, length_attribute
from refseq.papers.making_the_most.modes import (
    ExplicitLM,
    degeneracy_threshold,
    mixture,
    mixture_mode,
)


def _contamination(pop, eos, V, eps, length):
    """Exact mode and length-conditional mode of the mixture, through the decoders."""
    noise = {(eos,): 1.0}
    lm = ExplicitLM(mixture(pop, noise, eps), V, eos)
    mode = exact_mode(lm, [], length + 1, require_eos=True)
    cond = exact_mode(lm, [], length + 1, length=length)
    analytic, _ = mixture_mode(pop, noise, eps)
    return {"eps": eps, "mode": mode.tokens, "mode_p": float(np.exp(mode.logprob)),
            "analytic_mode": analytic, "cond": cond.tokens, "cond_p": float(np.exp(cond.logprob)),
            "expanded": mode.expanded}


def run(n_sym=6, length=4, eps=0.01, seed=0, V=8, lengths=(1, 2, 3, 4, 5, 6), num_beams=4,
        prompts=5):
    """Run the demo; return the numbers as a dict (see :func:`format_table`)."""
    eos = n_sym
    strings = [s + (eos,) for s in itertools.product(range(n_sym), repeat=length)]
    N = len(strings)
    uniform = {s: 1.0 / N for s in strings}
    uni = _contamination(uniform, eos, n_sym + 1, eps, length)
    uni["eps_star"] = degeneracy_threshold(uniform, {(eos,): 1.0})
    uni["eps_star_by_hand"] = (1 / N) / (1 / N + 1)
    uni["ok"] = (uni["mode"] == (eos,) and np.isclose(uni["mode_p"], eps)
                 and np.isclose(uni["eps_star"], uni["eps_star_by_hand"], rtol=1e-12)
                 and uni["cond"] in uniform and np.isclose(uni["cond_p"], (1 - eps) / N))

    rng = np.random.default_rng(seed)
    peaked = dict(zip(strings, rng.dirichlet(np.full(N, 0.1))))
    top = max(peaked, key=peaked.get)
    eps_star = degeneracy_threshold(peaked, {(eos,): 1.0})
    sides = [_contamination(peaked, eos, n_sym + 1, e, length)
             for e in (0.9 * eps_star, 1.1 * eps_star)]
    peak = {"eps_star": eps_star, "top": top, "top_p": float(peaked[top]), "sides": sides,
            "ok": (sides[0]["mode"] == top and sides[1]["mode"] == (eos,)
                   and all(s["cond"] == top and s["mode"] == s["analytic_mode"] for s in sides))}

    lm = random_markov_lm(V, 0.5, seed, eos_id=V - 1)
    rows = []
    for p in range(prompts):
        prompt = [p % (V - 1)]
        uncond = exact_mode(lm, [prompt[0]], max(lengths) + 1, require_eos=True)
        modes = exact_length_conditional_modes(lm, prompt, lengths)
        hits = 0
        for L in lengths:
            hyps = conditional_beam_search(lm, prompt, length_attribute(lm, L, prompt=prompt),
                                           num_beams=num_beams, k_pre=V, max_new_tokens=L + 1,
                                           eos_ids=V - 1)
            hits += bool(hyps) and tuple(hyps[0].tokens.tolist()) == modes[L].tokens
        rows.append({"prompt": prompt[0], "uncond_len": len(uncond.tokens) - 1,
                     "uncond_lp": uncond.logprob,
                     "modes": {L: (len(m.tokens) - 1, m.logprob) for L, m in modes.items()},
                     "acbs_hits": hits})
    return {"n_sym": n_sym, "length": length, "N": N, "uniform": uni, "peaked": peak,
            "markov": {"V": V, "lengths": tuple(lengths), "num_beams": num_beams, "rows": rows},
            "ok": bool(uni["ok"] and peak["ok"])}


def format_table(result) -> str:
    """The demo's report."""
    yes = {True: "yes", False: "NO"}
    u, pk, mk = result["uniform"], result["peaked"], result["markov"]
    lines = [
        f"1. Contamination (asserted). Population: uniform over {result['N']} strings of "
        f"{result['length']} symbols; noise: the empty output.",
        f"   eps = {u['eps']:g}: exact mode {list(u['mode'])} with q = {u['mode_p']:.4g} "
        f"(vs {(1 - u['eps']) / result['N']:.3g} per population string; "
        f"{u['expanded']} prefixes expanded)",
        f"   eps* = {u['eps_star']:.4g} (by hand (1/N)/(1/N + 1) = {u['eps_star_by_hand']:.4g}); "
        f"length-{result['length']} mode {list(u['cond'])}, q = {u['cond_p']:.3g}",
        f"   Peaked population (Dirichlet(0.1)): arg-max {list(pk['top'])}, p = {pk['top_p']:.4g},"
        f" eps* = {pk['eps_star']:.4g}",
    ]
    for s in pk["sides"]:
        lines.append(f"     eps = {s['eps']:.4g}: mode {list(s['mode'])} (q = {s['mode_p']:.4g}),"
                     f" length-{result['length']} mode {list(s['cond'])}")
    lines.append(f"   claim holds: {yes[result['ok']]}")
    lines += ["", f"2. Length-conditional modes of random_markov_lm(V = {mk['V']}, alpha = 0.5), "
              f"EOS = {mk['V'] - 1} (reported)",
              f"   {'prompt':>6}  {'mode len':>8}  {'log p':>7}  " +
              "  ".join(f"{'L=' + str(L) + ' log p':>10}" for L in mk["lengths"]) +
              f"  ACBS(B={mk['num_beams']}) exact"]
    for r in mk["rows"]:
        lines.append(f"   {r['prompt']:>6}  {r['uncond_len']:>8}  {r['uncond_lp']:>7.2f}  " +
                     "  ".join(f"{r['modes'][L][1]:>10.2f}" for L in mk["lengths"]) +
                     f"  {r['acbs_hits']}/{len(mk['lengths'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: print the report; exit status 1 if the asserted claim fails."""
    parser = argparse.ArgumentParser(
        prog="refseq demo making-the-most",
        description="Degenerate modes from contamination; exact length-conditional modes; ACBS.")
    parser.add_argument("--n-sym", type=positive_int, default=6)
    parser.add_argument("--length", type=positive_int, default=4)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--prompts", type=positive_int, default=5)
    args = parser.parse_args(argv)
    if not 0 < args.eps < 1:
        parser.error(f"argument --eps: must lie in (0, 1), got {args.eps}")
    result = run(n_sym=args.n_sym, length=args.length, eps=args.eps, seed=args.seed,
                 prompts=args.prompts)
    print(format_table(result))
    return 0 if result["ok"] else 1
