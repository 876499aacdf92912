"""``refseq demo recursive-speculative-decoding``: RSD against i.i.d. trees and chains at toy scale
(Jeon et al., arXiv 2402.14160, Sec. 4, Exp. 1 at a fixed draft length; the fixed-budget picture
of Exp. 2 reported; docs/papers/recursive-speculative-decoding.md).

Target: the core's order-2 toy model ``softmax(1.5 G[a, b])`` (V = 32, ``G`` standard normal,
seed 0); draft: the same logits plus N(0, 1) noise (seed 1), draft temperature 1
(:func:`refseq.decoding.speculative.toy_result.toy_models`). Per configuration and target
temperature: ``steps`` verification steps in episodes of ``episode`` steps, each starting from the
context (3, 7); reported: tokens emitted per target call (``m + 1``) with a 95% interval
(1.96 standard errors). Asserted: RSD-C (2,2,1) beats the i.i.d. (2,2,1) tree by more than
``MIN_GAIN`` at target temperature 1, and every method's greedy run equals plain greedy decoding.
Reported (not asserted): a chain of ``budget_chain`` drafts and the memory-bound speed-up
``block_eff / (1 + c * draft_calls)`` of it and of RSD-S.
"""

from __future__ import annotations

import argparse

import numpy as np

from refseq import plots
from refseq.cli import nonnegative_int, positive_float, positive_int, seed
from refseq.decoding.speculative.engine import plain_greedy
from refseq.decoding.speculative.target import TabularTreeLM
from refseq.decoding.speculative.toy_result import toy_models
from refseq.papers.recursive_speculative_decoding.budget import mbsu
from refseq.papers.recursive_speculative_decoding.generate import rsd_generate

MIN_GAIN = 0.05  # RSD-C (2,2,1) minus i.i.d. (2,2,1) at target temperature 1 (se ~ 0.03)
PROMPT = (3, 7)

# (label, method, keywords, group): the fixed-draft-length comparison (arXiv 2402.14160, Exp. 1)
CONFIGS = (
    ("chain K=4", "chain", {"K": 4}, "baseline"),
    ("iid (2,2,1)", "iid", {"branching": (2, 2, 1)}, "baseline"),
    ("RSD-C (2,2,1)", "rsd-c", {"branching": (2, 2, 1)}, "RSD"),
    ("iid (4,1,1)", "iid", {"branching": (4, 1, 1)}, "baseline"),
    ("RSD-C (4,1,1)", "rsd-c", {"branching": (4, 1, 1)}, "RSD"),
    ("RSD-S W=4 L=3", "rsd-s", {"beam_width": 4, "depth": 3}, "RSD"),
)


def _measure(target, draft, method, kw, T, steps, episode, rng):
    emitted, drafts, calls = [], [], []
    while len(emitted) < steps:
        n = min(episode, steps - len(emitted))
        _, st = rsd_generate(target, draft, np.array(PROMPT), 100 * n, method=method,
                             target_temperature=T, rng=rng, max_steps=n, **kw)
        emitted += [m + 1 for m in st.num_accepted]
        drafts += [s - 1 for s in st.tree_size]
        calls += st.draft_calls
    e = np.asarray(emitted, np.float64)
    return {"mean": float(e.mean()), "ci": float(1.96 * e.std(ddof=1) / np.sqrt(e.size)),
            "drafts": float(np.mean(drafts)), "draft_calls": float(np.mean(calls))}


def run(steps=3000, episode=100, temperatures=(1.0, 0.5), seed=0, greedy_tokens=20,
        budget_chain=12, c=0.05):
    """Return ``{"setup", "rows": [{label, method, group, T, mean, ci, drafts, draft_calls}],
    "greedy": {method: bool}, "budget": {...}, "gain": float, "ok": bool}``.

    ``ok``: RSD-C (2,2,1) exceeds i.i.d. (2,2,1) by more than :data:`MIN_GAIN` at target
    temperature 1 (the first temperature if 1 is not run) and all greedy runs equal
    :func:`plain_greedy`.
    """
    target_lm, draft = toy_models()
    target = TabularTreeLM(target_lm)
    rng = np.random.default_rng(seed)
    rows = []
    for T in temperatures:
        for label, method, kw, group in CONFIGS:
            r = _measure(target, draft, method, kw, T, steps, episode, rng)
            rows.append({"label": label, "method": method, "group": group, "T": T, **r})
    greedy = {}
    ref = plain_greedy(target, np.array(PROMPT), greedy_tokens) if greedy_tokens else None
    for label, method, kw, _ in CONFIGS:
        if greedy_tokens:
            out, _ = rsd_generate(target, draft, np.array(PROMPT), greedy_tokens, method=method,
                                  target_temperature=0.0, rng=rng, **kw)
            greedy[label] = bool(np.array_equal(out, ref))
    T0 = 1.0 if 1.0 in temperatures else temperatures[0]
    at = {r["label"]: r for r in rows if r["T"] == T0}
    gain = at["RSD-C (2,2,1)"]["mean"] - at["iid (2,2,1)"]["mean"]
    budget = None
    if budget_chain:
        ch = _measure(target, draft, "chain", {"K": budget_chain}, T0, steps, episode, rng)
        rs = at["RSD-S W=4 L=3"]
        budget = {"K": budget_chain, "c": c, "T": T0, "chain": ch, "rsd_s": rs,
                  "mbsu_chain": mbsu(ch["mean"], ch["draft_calls"], c),
                  "mbsu_rsd_s": mbsu(rs["mean"], rs["draft_calls"], c)}
    ok = gain > MIN_GAIN and all(greedy.values())
    return {"setup": {"steps": steps, "episode": episode, "seed": seed, "T0": T0},
            "rows": rows, "greedy": greedy, "budget": budget, "gain": gain, "ok": ok}


def format_table(result) -> str:
    s = result["setup"]
    lines = [f"RSD vs i.i.d. trees and chains: toy order-2 target (V=32) and noisy draft, "
             f"{s['steps']} steps per row (episodes of {s['episode']} from {PROMPT}), "
             f"seed {s['seed']}", "",
             f"{'method':<15} {'T':>4} {'drafts':>6} {'draft calls':>11} "
             f"{'tokens / target call':>22}"]
    for r in result["rows"]:
        lines.append(f"{r['label']:<15} {r['T']:>4g} {r['drafts']:>6.1f} {r['draft_calls']:>11g}"
                     f" {r['mean']:>13.3f} +- {r['ci']:.3f}")
    b = result["budget"]
    if b is not None:
        lines += ["", f"fixed budget (reported, not asserted), T = {b['T']:g}, c = draft/target "
                      f"cost = {b['c']:g}:",
                  f"  chain K={b['K']}: {b['chain']['mean']:.3f} tokens/call, "
                  f"{b['chain']['draft_calls']:g} draft calls, MBSU {b['mbsu_chain']:.2f}",
                  f"  RSD-S W=4 L=3: {b['rsd_s']['mean']:.3f} tokens/call, "
                  f"{b['rsd_s']['draft_calls']:g} draft calls, MBSU {b['mbsu_rsd_s']:.2f}"]
    g = result["greedy"]
    lines += ["", f"RSD-C (2,2,1) - iid (2,2,1) at T = {s['T0']:g}: {result['gain']:+.3f} "
                  f"(asserted > {MIN_GAIN})",
              f"greedy (T = 0) equals plain greedy for every method: "
              f"{'yes' if g and all(g.values()) else ('not run' if not g else 'NO')}",
              f"claim holds: {'yes' if result['ok'] else 'NO'}"]
    return "\n".join(lines)


def plot(result, path):
    """Bars of tokens per target call per method and temperature (95% intervals)."""
    rows = result["rows"]
    return plots.bars(path, [f"{r['label']} T={r['T']:g}" for r in rows],
                      [r["mean"] for r in rows], errors=[r["ci"] for r in rows],
                      groups=[r["group"] for r in rows],
                      reference=("plain decoding", 1.0),
                      title="Recursive speculative decoding on a toy model: tokens per target "
                            "call", ylabel="tokens per target call")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if the claim does not hold."""
    parser = argparse.ArgumentParser(
        prog="refseq demo recursive-speculative-decoding",
        description="RSD-C and RSD-S against i.i.d. trees and chains: tokens per target call "
                    "on a toy order-2 model.")
    parser.add_argument("--steps", type=positive_int, default=3000,
                        help="verification steps per configuration")
    parser.add_argument("--episode", type=positive_int, default=100, help="steps per episode")
    parser.add_argument("--temperatures", type=positive_float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--greedy-tokens", type=nonnegative_int, default=20,
                        help="tokens of the greedy checks (0: skip them)")
    parser.add_argument("--budget-chain", type=nonnegative_int, default=12,
                        help="drafts of the fixed-budget chain (0: skip it)")
    parser.add_argument("--c", type=positive_float, default=0.05, help="draft/target cost")
    plots.add_plot_option(parser, "the bar chart of tokens per target call")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    result = run(steps=args.steps, episode=args.episode, temperatures=tuple(args.temperatures),
                 seed=args.seed, greedy_tokens=args.greedy_tokens,
                 budget_chain=args.budget_chain, c=args.c)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
