"""``refseq demo rnn-sparsity``: magnitude pruning and one-epoch recovery of a Reber classifier
(Darji, arXiv 2407.20601, Sec. 5.1, at small scale; docs/papers/rnn-sparsity.md).

1. Data: ``n_train`` / ``n_test`` Reber strings, half valid, half ``substitution`` negatives
   (one interior symbol replaced: same alphabet and lengths, only the grammar separates them);
   vocabulary ``reber7`` (7 symbols + padding); readout after each string's last symbol.
2. Model: embedding table (8, E = 16) -> one RNN_TANH layer (H = 32) -> linear 32 -> 2; Adam
   lr 1e-2, batch 32, gradient-norm clip 5, ``epochs`` epochs. This is the base model. The
   embedding is an 8-entry table (7 symbols + padding) of width 16, so the
   pruned pool is ``weight_ih (32, 16)`` + ``weight_hh (32, 32)`` = 1,536 weights. (An earlier
   version used width 8, 1,280 weights: pruning then collapsed to chance from p = 60-70 and
   retraining recovered less; see docs/papers/rnn-sparsity.md.)
3. For p = 10, 20, ..., 100: from the base parameters, prune ``both`` weight kinds with one
   global percentile threshold (removed iff ``|w| < thr``); test accuracy before retraining
   (epoch 0) and after ``retrain_epochs`` epoch(s) with the mask fixed and a fresh Adam at the
   base learning rate (the thesis code retrains with the base optimiser settings).

Expected: base >= 0.97; no retraining >= 0.97 up to p = 40, falling towards 0.5 at
p = 90-100; after one epoch >= 0.97 for p <= 80, >= 0.90 at 90, chance at 100.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import nonnegative_int, positive_int, seed
from refseq.papers.rnn_sparsity import (
    PruneRNN,
    ReberClassifier,
    prune_and_retrain,
    train_classifier,
)
from refseq.papers.rnn_sparsity.experiments import evaluate
from refseq.tasks.reber import encode, reber_dataset, vocab_size


def _data(n, rng):
    strings, labels = reber_dataset(n, rng, style="substitution")
    tokens, lengths = encode(strings, "reber7")
    return tokens, lengths, labels


def run(n_train=3000, n_test=1000, hidden=32, embed=16, epochs=6, lr=1e-2, batch_size=32,
        percents=tuple(range(10, 101, 10)), retrain_epochs=1, mode="RNN_TANH", seed=0):
    """Run the demo; returns ``base`` (test_acc, test_loss, train_acc), ``rows`` (one per percent:
    ``percent, sparsity, acc_pruned, acc_retrained``), ``prunable`` (size of the pooled
    ``weight_ih`` + ``weight_hh``), ``seconds`` and the settings."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    train, test = _data(n_train, rng), _data(n_test, rng)
    model = ReberClassifier(vocab_size("reber7"), embed, PruneRNN(embed, [hidden], mode, rng), rng)
    history = train_classifier(model, train, None, epochs, lr, batch_size, 5.0, rng)
    base_loss, base_acc = evaluate(model, test)
    base = {k: v.copy() for k, v in model.params().items()}
    prunable = sum(m.size for m in model.masks().values())  # G*H*(E + H) for one layer
    table = prune_and_retrain(model, base, train, test, percents, ("both",), retrain_epochs, lr,
                              batch_size, 5.0, "global", seed)
    rows = []
    for p in percents:
        r = {row["epoch"]: row for row in table if row["percent"] == p}
        rows.append({"percent": p, "sparsity": r[0]["sparsity"], "acc_pruned": r[0]["test_acc"],
                     "acc_retrained": r[retrain_epochs]["test_acc"]})
    return {"n_train": n_train, "n_test": n_test, "embed": embed, "hidden": hidden, "mode": mode,
            "epochs": epochs, "retrain_epochs": retrain_epochs, "seed": seed,
            "base": {"test_acc": base_acc, "test_loss": base_loss,
                     "train_acc": history[-1]["train_acc"] if history else float("nan")},
            "rows": rows, "prunable": prunable, "seconds": time.perf_counter() - start}


def format_table(result) -> str:
    """The demo's report: base accuracy, then one line per pruning percent."""
    b = result["base"]
    lines = [
        f"Reber classifier, embedding {result['embed']}, {result['mode']} H = {result['hidden']}, "
        f"{result['n_train']} train / {result['n_test']} test strings, {result['epochs']} epochs "
        f"(seed {result['seed']})",
        f"base test accuracy {b['test_acc']:.3f} (loss {b['test_loss']:.4f})",
        f"global magnitude pruning of weight_ih and weight_hh together ('both', "
        f"{result['prunable']} weights)",
        "",
        f"{'p %':>5}  {'removed':>7}  {'acc pruned':>10}  "
        f"{'acc after ' + str(result['retrain_epochs']) + ' ep':>14}",
    ]
    for r in result["rows"]:
        lines.append(f"{r['percent']:>5}  {r['sparsity']:>7.3f}  {r['acc_pruned']:>10.3f}  "
                     f"{r['acc_retrained']:>14.3f}")
    lines += ["", f"total {result['seconds']:.1f} s"]
    return "\n".join(lines)


def plot(result, path):
    """Write test accuracy against the share of weights removed to ``path`` (measured sparsity,
    in %), before and after retraining, with the base accuracy and chance as references."""
    removed = [100 * r["sparsity"] for r in result["rows"]]
    series = {"pruned, no retraining": [r["acc_pruned"] for r in result["rows"]]}
    n = result["retrain_epochs"]
    if n:
        series[f"pruned + {n} retraining epoch{'s' * (n != 1)} (mask fixed)"] = [
            r["acc_retrained"] for r in result["rows"]]
    return plots.accuracy_vs_pruning(
        path, removed, series,
        references=[(f"base model, unpruned ({result['base']['test_acc']:.3f})",
                     result["base"]["test_acc"]), ("chance (0.5)", 0.5)],
        xlabel=f"weights removed (% of the {result['prunable']:,} in weight_ih + weight_hh)",
        title=f"Magnitude pruning of a Reber-grammar classifier\n{result['mode']} H = "
              f"{result['hidden']}, embedding {result['embed']}, {result['n_test']} test strings, "
              f"seed {result['seed']}")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if the base model did not learn (< 0.9)."""
    parser = argparse.ArgumentParser(
        prog="refseq demo rnn-sparsity",
        description="Magnitude pruning and one-epoch recovery of a Reber-grammar classifier.")
    parser.add_argument("--n-train", type=positive_int, default=3000)
    parser.add_argument("--n-test", type=positive_int, default=1000)
    parser.add_argument("--embed", type=positive_int, default=16)
    parser.add_argument("--hidden", type=positive_int, default=32)
    parser.add_argument("--epochs", type=positive_int, default=6)
    parser.add_argument("--retrain-epochs", type=nonnegative_int, default=1)
    parser.add_argument("--mode", default="RNN_TANH",
                        choices=["RNN_TANH", "RNN_RELU", "GRU", "LSTM"])
    parser.add_argument("--seed", type=seed, default=0)
    plots.add_plot_option(parser, "test accuracy against the pruning level")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    result = run(n_train=args.n_train, n_test=args.n_test, embed=args.embed, hidden=args.hidden,
                 epochs=args.epochs, retrain_epochs=args.retrain_epochs, mode=args.mode,
                 seed=args.seed)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["base"]["test_acc"] >= 0.9 else 1
