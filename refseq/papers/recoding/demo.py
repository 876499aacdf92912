"""``refseq demo recoding``: surprisal recoding's first-order mechanism at tiny scale (Ulmer,
arXiv 2101.00674; docs/papers/recoding.md).

A 1-layer LSTM LM (E = H = 32) is trained without recoding on a stream of Reber-grammar strings
(vocabulary B T P S X V E, strings concatenated) by truncated BPTT (bptt_len 20, Adam lr 3e-3).
At test time surprisal recoding with gold targets and ``FixedStep(α)`` is added for each α.
Reported per α: the fraction of steps at which δ recomputed at the recoded top state is below
δ before recoding (the first-order guarantee: ≥ 99% expected at α = 0.01, falling as α grows;
the pass criterion), and the test perplexity next to the baseline's (no sign is expected).
"""

from __future__ import annotations

import argparse
import inspect
import time

import numpy as np

from refseq.cli import positive_float, positive_int, seed
from refseq.papers.recoding.lm import LSTMLanguageModel
from refseq.papers.recoding.recoder import RecodingLM
from refseq.papers.recoding.training import perplexity, recoding_diagnostics, train_lm
from refseq.train.adam import Adam

SYMBOLS = "BTPSXVE"
# Reber automaton (as refseq.tasks.reber): state -> [(symbol, next state)], 5 = accept (emit E)
_REBER = {0: [("T", 1), ("P", 2)], 1: [("S", 1), ("X", 3)], 2: [("T", 2), ("V", 4)],
          3: [("X", 2), ("S", 5)], 4: [("P", 3), ("V", 5)]}


def reber_string(rng) -> str:
    """One valid Reber string, e.g. ``BTSSXXTVVE`` (each branch with probability 1/2)."""
    s, state = ["B"], 0
    while state != 5:
        sym, state = _REBER[state][rng.integers(2)]
        s.append(sym)
    return "".join(s + ["E"])


def reber_stream(n_tokens: int, rng) -> np.ndarray:
    """Concatenated Reber strings as token ids (``SYMBOLS`` order), cut to ``n_tokens``."""
    out: list[int] = []
    while len(out) < n_tokens:
        out.extend(SYMBOLS.index(c) for c in reber_string(rng))
    return np.array(out[:n_tokens])


def run(n_train=20000, n_test=4000, epochs=10, hidden=32, alphas=(0.01, 0.1, 1.0, 10.0, 100.0),
        seed=0,
        batch_size=32, bptt_len=20, lr=3e-3):
    """Train the baseline, then evaluate recoding at each α; returns a dict (format_table)."""
    rng = np.random.default_rng(seed)
    train_stream, test_stream = reber_stream(n_train, rng), reber_stream(n_test, rng)
    model = LSTMLanguageModel(len(SYMBOLS), hidden, hidden, 1, dropout=0.0, rng=rng)
    start = time.perf_counter()
    history = train_lm(model, train_stream, epochs, Adam(lr=lr), bptt_len=bptt_len,
                       batch_size=batch_size, clip=0.25, rng=rng)
    train_s = time.perf_counter() - start
    test = test_stream[: (len(test_stream) // 8) * 8].reshape(8, -1)  # 8 contiguous rows
    base_ppl = perplexity(model, test)
    rows = []
    for a in alphas:
        rec = RecodingLM(model, "surprisal", step=float(a))
        diag = recoding_diagnostics(rec, test)
        before, after = diag["delta_before"], diag["delta_after"]
        rows.append({"alpha": float(a), "frac_lower": float(np.mean(after < before)),
                     "mean_delta_before": float(before.mean()),
                     "mean_delta_after": float(after.mean()), "ppl": perplexity(rec, test)})
    ok = bool(rows) and rows[0]["frac_lower"] >= 0.99 if alphas and alphas[0] <= 0.01 else True
    return {"n_train": n_train, "n_test": int(test.size), "epochs": epochs, "hidden": hidden,
            "train_loss": history, "train_s": train_s, "baseline_ppl": base_ppl, "rows": rows,
            "ok": ok}


def format_table(result) -> str:
    lines = [
        f"Surprisal recoding on Reber-grammar streams (1-layer LSTM LM, E = H = "
        f"{result['hidden']}, {result['n_train']} training tokens, {result['epochs']} epochs, "
        f"{result['train_s']:.1f} s)",
        "training loss per epoch: " + ", ".join(f"{v:.4f}" for v in result["train_loss"]),
        f"baseline test perplexity ({result['n_test']} tokens): {result['baseline_ppl']:.4f}",
        "",
        f"{'alpha':>6}  {'frac delta_after < before':>25}  {'mean delta before':>17}  "
        f"{'after':>7}  {'test ppl':>8}",
    ]
    for r in result["rows"]:
        lines.append(f"{r['alpha']:>6g}  {r['frac_lower']:>25.4f}  "
                     f"{r['mean_delta_before']:>17.4f}  {r['mean_delta_after']:>7.4f}  "
                     f"{r['ppl']:>8.4f}")
    lines += ["", "first-order guarantee (>= 99% of steps lower at alpha = 0.01): "
              + ("yes" if result["ok"] else "NO")]
    return "\n".join(lines)


_RUN_BATCH_SIZE = inspect.signature(run).parameters["batch_size"].default  # for the checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="refseq demo recoding",
        description="Surprisal recoding's first-order mechanism on a small LSTM language model.")
    parser.add_argument("--n-train", type=positive_int, default=20000)
    parser.add_argument("--n-test", type=positive_int, default=4000)
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--hidden", type=positive_int, default=32)
    parser.add_argument("--alphas", type=positive_float, nargs="+",
                        default=[0.01, 0.1, 1.0, 10.0, 100.0], help="recoding step sizes (> 0)")
    parser.add_argument("--seed", type=seed, default=0)
    args = parser.parse_args(argv)
    batch_size = _RUN_BATCH_SIZE
    if args.n_train < 2 * batch_size:  # batchify: >= 2 tokens in each of the batch's rows
        parser.error(f"argument --n-train: must be at least 2 x batch size = {2 * batch_size}, "
                     f"got {args.n_train}")
    if args.n_test < 16:  # the test stream is cut into 8 rows of >= 2 tokens
        parser.error(f"argument --n-test: must be at least 16 (8 rows of >= 2 tokens), "
                     f"got {args.n_test}")
    result = run(n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
                 hidden=args.hidden, alphas=tuple(args.alphas), seed=args.seed)
    print(format_table(result))
    return 0 if result["ok"] else 1
