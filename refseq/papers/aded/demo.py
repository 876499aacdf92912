"""``refseq demo aded``: ADED's drafts on an order-2 toy target (arXiv 2407.12021, Sec. 4 at toy
scale: more tokens per target call with the adaptive tri-gram table; docs/papers/aded.md).

Target: ``logits[a, b, :] = A[b, :] + 0.6 B[a, b, :]`` (V = 64; A then B standard normal from
``default_rng(0)``), a ``TabularLM`` of order 3. Corpus: 300 sequences of 2 uniform tokens
followed by 64 tokens sampled at temperature 1 from the target (``default_rng(0)``), built
into a table with ``top_n = 12``. Three prompts of 8 tokens (``default_rng(50 + q)``), 128
greedy tokens each; every method starts from its own copy of the table and carries it across
the prompts, with one rollout generator ``default_rng(0)``. Released search defaults (150
iterations, sentence length 4, 24 sentences, choices 64, c1 = 32, c2 = 8).

Reported: MAT (tokens per target call, root plus accepted drafts) per prompt, its mean over
the prompts and a 95% interval over the pooled steps (normal approximation, steps treated as
independent), the mean tree size, and whether the output equals plain greedy decoding.
Asserted: every MAT of the three main rows > 1.5, mean(corpus + adaptation) > mean(corpus
only) + 0.3, every greedy output equals plain greedy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import positive_int
from refseq.decoding.interfaces import log_softmax
from refseq.decoding.speculative.engine import plain_greedy
from refseq.decoding.speculative.target import TabularTreeLM
from refseq.models.toy_lm import TabularLM
from refseq.papers.aded.generate import aded_generate
from refseq.papers.aded.trigram import TrigramMatrix

MIN_MAT, MIN_GAIN = 1.5, 0.3

# name -> (initial table "corpus" | "empty", aded_generate keywords, group)
METHODS = {
    "corpus only": ("corpus", dict(adaptive=False), "baseline"),
    "corpus + adaptation (ADED)": ("corpus", dict(), "ADED"),
    "adaptation only": ("empty", dict(), "ADED"),
    "ADED, choices = 24": ("corpus", dict(choices=24), "ADED"),
    "ADED, released return": ("corpus", dict(return_rule="released"), "ADED"),
    "greedy chain + adapt. (ablation)": ("corpus", dict(method="greedy"), "ablation"),
    "full traversal + adapt. (ablation)": ("corpus", dict(method="full"), "ablation"),
}
MAIN = ("corpus only", "corpus + adaptation (ADED)", "adaptation only")


def toy_target(V=64) -> TabularLM:
    """The order-3 ``TabularLM`` of the module docstring."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((V, V))  # (V, V) rows b
    B = rng.standard_normal((V, V, V))  # (V, V, V) rows (a, b)
    logits = A[None, :, :] + 0.6 * B  # (V, V, V)
    return TabularLM(3, log_softmax(logits.reshape(V * V, V)))


def toy_corpus(lm, n_seq=300, length=64, seed=0) -> list:
    """``n_seq`` sequences: 2 uniform tokens, then ``length`` samples at temperature 1."""
    V = lm.vocab_size
    P = np.exp(np.asarray(lm.table, np.float64))  # (V*V, V)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_seq):
        s = [int(t) for t in rng.integers(0, V, 2)]
        for _ in range(length):
            c = np.cumsum(P[s[-2] * V + s[-1]])
            s.append(int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), V - 1)))
        out.append(np.array(s, np.int64))
    return out


def run(V=64, n_seq=300, seq_len=64, prompts=3, n_tokens=128, iterations=150,
        methods=tuple(METHODS)) -> dict:
    """Return ``{"setup", "rows": [{name, group, mat (per prompt), mean, ci, tree, greedy,
    seconds}], "ok"}``."""
    lm = toy_target(V)
    target = TabularTreeLM(lm)
    corpus = TrigramMatrix.build(toy_corpus(lm, n_seq, seq_len), 12)
    qs = [np.random.default_rng(50 + q).integers(0, V, 8) for q in range(prompts)]
    truth = [plain_greedy(target, p, n_tokens) for p in qs]
    rows = []
    for name in methods:
        start, kw, group = METHODS[name]
        matrix = corpus.copy() if start == "corpus" else TrigramMatrix()
        g = np.random.default_rng(0)
        mats, steps, trees, equal = [], [], [], True
        t0 = time.perf_counter()
        for p, ref in zip(qs, truth):
            out, st = aded_generate(target, p, n_tokens, matrix, iterations=iterations,
                                    mcts_rng=g, **kw)
            equal &= bool(np.array_equal(out, ref))
            mats.append(st.mat)
            steps += st.accepted_length
            trees += st.spec.tree_size
        e = np.asarray(steps, np.float64)
        rows.append({"name": name, "group": group, "mat": mats, "mean": float(np.mean(mats)),
                     "ci": float(1.96 * e.std(ddof=1) / np.sqrt(e.size)) if e.size > 1 else 0.0,
                     "tree": float(np.mean(trees)), "greedy": equal,
                     "seconds": time.perf_counter() - t0})
    by = {r["name"]: r for r in rows}
    ok = all(r["greedy"] for r in rows)
    if all(m in by for m in MAIN):
        ok &= all(m > MIN_MAT for n in MAIN for m in by[n]["mat"])
        ok &= by[MAIN[1]]["mean"] > by[MAIN[0]]["mean"] + MIN_GAIN
    setup = dict(V=V, n_seq=n_seq, seq_len=seq_len, prompts=prompts, n_tokens=n_tokens,
                 iterations=iterations, contexts=corpus.num_contexts,
                 entries=corpus.num_entries)
    return {"setup": setup, "rows": rows, "ok": bool(ok)}


def format_table(result) -> str:
    s = result["setup"]
    lines = [f"ADED on an order-2 toy target (V = {s['V']}): corpus of {s['n_seq']} x "
             f"{s['seq_len'] + 2} tokens -> {s['contexts']} contexts, {s['entries']} entries; "
             f"{s['prompts']} prompts x {s['n_tokens']} greedy tokens; MCTS "
             f"{s['iterations']} iterations", "",
             f"{'method':<34} {'MAT per prompt':<20} {'mean':>5} {'95% CI':>7} {'tree':>5} "
             f"{'= greedy':>8} {'s':>5}"]
    for r in result["rows"]:
        per = ", ".join(f"{m:.2f}" for m in r["mat"])
        lines.append(f"{r['name']:<34} {per:<20} {r['mean']:>5.2f} {r['ci']:>7.2f} "
                     f"{r['tree']:>5.1f} {'yes' if r['greedy'] else 'NO':>8} "
                     f"{r['seconds']:>5.1f}")
    lines += ["", f"every main MAT > {MIN_MAT}, corpus + adaptation beats corpus only by > "
              f"{MIN_GAIN}, every output equals plain greedy: {'yes' if result['ok'] else 'NO'}"]
    return "\n".join(lines)


def plot(result, path):
    rows = result["rows"]
    return plots.bars(path, [r["name"] for r in rows], [r["mean"] for r in rows],
                      errors=[r["ci"] for r in rows], groups=[r["group"] for r in rows],
                      reference=("plain decoding", 1.0),
                      title="ADED on an order-2 toy target (V = 64, greedy)",
                      ylabel="tokens per target call (MAT)")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if the claim does not hold."""
    parser = argparse.ArgumentParser(
        prog="refseq demo aded",
        description="ADED (tri-gram table, adaptation, MCTS drafts) on an order-2 toy target.")
    parser.add_argument("--V", type=positive_int, default=64, help="vocabulary size")
    parser.add_argument("--sequences", type=positive_int, default=300, help="corpus sequences")
    parser.add_argument("--length", type=positive_int, default=64, help="sampled tokens each")
    parser.add_argument("--prompts", type=positive_int, default=3, help="number of prompts")
    parser.add_argument("--tokens", type=positive_int, default=128, help="new tokens per prompt")
    parser.add_argument("--iterations", type=positive_int, default=150, help="MCTS iterations")
    plots.add_plot_option(parser, "the bar chart of tokens per target call")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    result = run(V=args.V, n_seq=args.sequences, seq_len=args.length, prompts=args.prompts,
                 n_tokens=args.tokens, iterations=args.iterations)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
