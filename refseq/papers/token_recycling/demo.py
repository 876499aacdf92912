"""``refseq demo token-recycling``: mean accepted tokens (MAT) of Token Recycling on order-2 toy
targets (Luo et al., arXiv 2408.08696, Sec. 4: about 2.7 MAT with hot start and the "2.2.2"
tree on Spec-Bench; docs/papers/token-recycling.md).

Target: ``logits[a, b] = s1 A[b] + s2 B[a, b]`` with V = 64
(:mod:`refseq.papers.token_recycling.toy`), s1 = 1, s2 = 0.6.
Five prompts of 8 tokens (``default_rng(q).integers(64, size=8)``), 256 greedy tokens each,
k = 8, one matrix carried over the five queries in order (hot start), rule "last". Asserted:
every output equals plain greedy decoding and the mean MAT over the queries lies in
[2.0, 3.5]. Reported: the same run with a chain template, cold start, rule "first", reversed
query order, prompt seeding, the tree walk through the core engine, an update restricted to
the accepted path (an ablation, not the method), and the contrast targets
s2 = 0 (pure bigram: candidates are exactly reusable) and s1 = 0 (pure order-2: they are not).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import positive_int
from refseq.decoding.speculative.engine import plain_greedy, speculative_generate
from refseq.papers.token_recycling.drafter import TokenRecyclingDrafter
from refseq.papers.token_recycling.generate import token_recycling_generate
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.templates import TEMPLATE_2_2_2, template_chain
from refseq.papers.token_recycling.toy import demo_prompts, order2_target

MAT_RANGE = (2.0, 3.5)  # the asserted range of the main run's mean MAT

# name -> (s1, s2, options); options: template, cold, rule, order, seed, engine, scope
SETTINGS = {
    "TR chain (depth 6)": (1.0, 0.6, dict(template=template_chain(6))),
    "TR 2.2.2 cold start": (1.0, 0.6, dict(cold=True)),
    "TR 2.2.2 hot start": (1.0, 0.6, {}),
    "TR 2.2.2 rule first": (1.0, 0.6, dict(rule="first")),
    "TR 2.2.2 reversed order": (1.0, 0.6, dict(order="reversed")),
    "TR 2.2.2 prompt seeding": (1.0, 0.6, dict(seed=True)),
    "TR 2.2.2 walk (engine)": (1.0, 0.6, dict(engine=True)),
    "ablation: path-only update": (1.0, 0.6, dict(scope="path")),
    "s2 = 0 (bigram)": (1.0, 0.0, {}),
    "s1 = 0 (order-2)": (0.0, 1.0, {}),
}
MAIN = "TR 2.2.2 hot start"


def _run_setting(target, prompts, greedy, n, k, opts):
    """MAT and tokens per query of one setting; checks every output against plain greedy."""
    state = TokenRecyclingState(target.vocab_size, k)
    template = opts.get("template", TEMPLATE_2_2_2)
    order = list(range(len(prompts)))[:: -1 if opts.get("order") == "reversed" else 1]
    mats, exact = [0.0] * len(prompts), True
    drafter = TokenRecyclingDrafter(state, template, update_rule=opts.get("rule", "last"),
                                    cold_start=opts.get("cold", False))
    for q in order:
        if opts.get("engine"):
            out, st = speculative_generate(target, drafter, prompts[q], n)
            mats[q] = st.tokens_per_call
        else:
            if opts.get("cold"):
                state.reset()
            out, st = token_recycling_generate(target, prompts[q], n, state, template=template,
                                               update_rule=opts.get("rule", "last"),
                                               seed_from_prompt=opts.get("seed", False),
                                               update_scope=opts.get("scope", "tree"))
            mats[q] = st.mat
        exact &= bool(np.array_equal(out, greedy[q]))
    return mats, exact


def run(V=64, queries=5, prompt_len=8, n=256, k=8, settings=None):
    """Return ``{"setup", "rows": [{name, s1, s2, mat (queries,), mean, se, exact}], "ok"}``.

    ``settings``: names of :data:`SETTINGS` to run (default all; the main run is always
    included). ``ok``: every output equals plain greedy and the main run's mean MAT lies in
    :data:`MAT_RANGE`.
    """
    t0 = time.perf_counter()
    names = list(SETTINGS) if settings is None else [s for s in SETTINGS if s in settings]
    if MAIN not in names:
        names.append(MAIN)
    prompts = demo_prompts(queries, prompt_len, V)
    targets, greedy, rows = {}, {}, []
    for name in names:
        s1, s2, opts = SETTINGS[name]
        if (s1, s2) not in targets:
            targets[(s1, s2)] = order2_target(V, s1, s2)
            greedy[(s1, s2)] = [plain_greedy(targets[(s1, s2)], p, n) for p in prompts]
        mats, exact = _run_setting(targets[(s1, s2)], prompts, greedy[(s1, s2)], n, k, opts)
        m = np.asarray(mats)
        se = float(m.std(ddof=1) / np.sqrt(m.size)) if m.size > 1 else 0.0
        rows.append({"name": name, "s1": s1, "s2": s2, "mat": mats, "mean": float(m.mean()),
                     "se": se, "exact": exact})
    main_row = next(r for r in rows if r["name"] == MAIN)
    ok = all(r["exact"] for r in rows) and MAT_RANGE[0] <= main_row["mean"] <= MAT_RANGE[1]
    return {"setup": dict(V=V, queries=queries, prompt_len=prompt_len, n=n, k=k),
            "rows": rows, "ok": ok, "seconds": time.perf_counter() - t0}


def format_table(result) -> str:
    s = result["setup"]
    lines = [f"Token Recycling on order-2 toy targets: V = {s['V']}, {s['queries']} queries of "
             f"{s['prompt_len']} prompt tokens, {s['n']} greedy tokens each, k = {s['k']}",
             "MAT = mean accepted tokens per step (= tokens per target call); mean +- standard "
             "error over the queries", "",
             f"{'method':<27} {'s1':>4} {'s2':>4}  {'MAT per query':<30} {'mean MAT':>16}  "
             f"{'= greedy':>8}",
             f"{'plain decoding':<27} {'-':>4} {'-':>4}  {'-':<30} {1.0:>8.2f}{'':>8}  "
             f"{'yes':>8}"]
    for r in result["rows"]:
        per = " ".join(f"{m:.2f}" for m in r["mat"])
        lines.append(f"{r['name']:<27} {r['s1']:>4g} {r['s2']:>4g}  {per:<30} "
                     f"{r['mean']:>8.2f} +- {r['se']:.2f}  {'yes' if r['exact'] else 'NO':>8}")
    main_row = next(r for r in result["rows"] if r["name"] == MAIN)
    lo, hi = MAT_RANGE
    lines += ["", f"every output equals plain greedy: "
              f"{'yes' if all(r['exact'] for r in result['rows']) else 'NO'}",
              f"{MAIN} mean MAT {main_row['mean']:.2f} in [{lo}, {hi}]: "
              f"{'yes' if lo <= main_row['mean'] <= hi else 'NO'}",
              f"total {result['seconds']:.1f} s"]
    return "\n".join(lines)


def plot(result, path):
    """Bars: MAT (tokens per target call) per method, standard errors over the queries."""
    rows = result["rows"]
    labels = [r["name"] for r in rows]
    groups = ["contrast target" if (r["s1"], r["s2"]) != (1.0, 0.6) else
              ("Token Recycling (main)" if r["name"] == MAIN else "Token Recycling variant")
              for r in rows]
    s = result["setup"]
    return plots.bars(path, labels, [r["mean"] for r in rows], errors=[r["se"] for r in rows],
                      reference=("plain decoding", 1.0), groups=groups,
                      ylabel="mean accepted tokens per target call",
                      title=f"Token Recycling, order-2 toy target (V = {s['V']}, "
                            f"{s['queries']} x {s['n']} tokens)")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if the claim does not hold."""
    parser = argparse.ArgumentParser(
        prog="refseq demo token-recycling",
        description="Token Recycling's mean accepted tokens on order-2 toy targets (hot start, "
                    "template 2.2.2), with ablations and contrast targets.")
    parser.add_argument("--V", type=positive_int, default=64, help="vocabulary size")
    parser.add_argument("--queries", type=positive_int, default=5, help="number of prompts")
    parser.add_argument("--prompt-len", type=positive_int, default=8, help="prompt length")
    parser.add_argument("--n", type=positive_int, default=256, help="greedy tokens per query")
    parser.add_argument("--k", type=positive_int, default=8, help="candidates per token")
    plots.add_plot_option(parser, "the MAT bar chart")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    if args.k > args.V:
        parser.error(f"argument --k: must be <= --V = {args.V}, got {args.k}")
    result = run(V=args.V, queries=args.queries, prompt_len=args.prompt_len, n=args.n, k=args.k)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
