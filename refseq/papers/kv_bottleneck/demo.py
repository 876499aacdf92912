"""``refseq demo kv-bottleneck``: the class-incremental 2-D toy of Figure 2 (Träuble et al., arXiv
2207.11240, Sec. 3.3; docs/papers/kv-bottleneck.md).

Data (:mod:`refseq.papers.kv_bottleneck.toy`): 8 classes, 4 tasks of 2 classes, 100 training
examples per task, seen in task order with no replay. Keys: 1000 EMA updates (decay 0.95, batch
100, no dead-key replacement) on unlabelled ``U([0, 1]^2)`` points, then frozen; values
``0.001 N(0, 1)``, the voting decoder, Adam (lr 1e-3, one optimiser for the stream), 1000 full-batch
steps per task, plain cross-entropy. Models: (a) one codebook of 400 pairs on the raw 2-D input
(chunk splitter), (b) 20 codebooks of 20 pairs behind a random projection to ``d_k = 2``.
Baselines on the same input: an MLP 2-32-8 (ReLU, Adam 1e-3) and a linear probe (Adam 1e-2), a
fresh optimiser per task. Evaluation after the last task on 1000 fresh examples per task (all 8
classes), with unused pairs masked (the official evaluation mode; (a) is also reported
unmasked). Asserted, on every seed: each bottleneck >= 0.9, MLP and linear probe <= 0.4.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import nonnegative_int, positive_int, seed
from refseq.papers.kv_bottleneck import toy
from refseq.papers.kv_bottleneck.codebooks import KVCodebooks
from refseq.papers.kv_bottleneck.continual import MLPClassifier, accuracy, train_classifier
from refseq.papers.kv_bottleneck.ema import ema_update
from refseq.papers.kv_bottleneck.encoders import Identity
from refseq.papers.kv_bottleneck.model import KVBottleneckModel, train_values
from refseq.papers.kv_bottleneck.splitters import Chunker, RandomProjection
from refseq.tiers import TIERS
from refseq.train.adam import Adam

BOTTLENECK_MIN, BASELINE_MAX = 0.9, 0.4
# name -> (kind, options); kind "kv": (C, M, splitter, mask at evaluation); "clf": (sizes, lr)
METHODS = {
    "KV (a) C=1 M=400 chunk, no mask": ("kv", (1, 400, "chunk", False)),
    "KV (a) C=1 M=400 chunk": ("kv", (1, 400, "chunk", True)),
    "KV (b) C=20 M=20 rand. proj.": ("kv", (20, 20, "random", True)),
    "MLP 2-32-8": ("clf", ((2, 32, 8), 1e-3)),
    "linear probe": ("clf", ((2, 8), 1e-2)),
}
FIGURE = ("MLP 2-32-8", "linear probe", "KV (a) C=1 M=400 chunk", "KV (b) C=20 M=20 rand. proj.")


def _bottleneck(rng, C, M, splitter, init_updates, init_batch, backend="numpy"):
    split = Chunker(1) if splitter == "chunk" else RandomProjection(C, 2, 2, rng)
    cb = KVCodebooks(C, M, 2, 8, rng=rng)
    model = KVBottleneckModel(Identity(), split, cb, backend=backend)
    for _ in range(init_updates):  # phase 1: keys from unlabelled uniform points
        ema_update(cb, model.heads(toy.sample_key_init(init_batch, rng)), 0.95, 1e-5,
                   backend=backend)
    cb.freeze_keys()
    cb.init_values("randn", 0.001, rng)
    cb.reset_usage()
    return model


def _trained(name, seed_, n_train, init_updates, init_batch, steps, backend):
    """Train one method on one seed: ``(model, stream, rng)``, ``rng`` ready for the test draw."""
    kind, opts = METHODS[name]
    rng = np.random.default_rng(seed_)
    if kind == "kv":
        C, M, splitter, _ = opts
        model = _bottleneck(rng, C, M, splitter, init_updates, init_batch, backend)
    else:
        sizes, lr = opts
        model = MLPClassifier(sizes, rng)
    stream = toy.sample_tasks(n_train, rng)
    if kind == "kv":
        train_values(model, stream, Adam(1e-3), epochs=steps, batch_size=n_train, clip=None,
                     label_smoothing=0.0)
    else:
        train_classifier(model, stream, steps, lr)
    return model, stream, rng


def run_one(name, seed_, *, n_train=100, n_eval=1000, init_updates=1000, init_batch=100,
            steps=1000, grid_points=0, cache=None, backend="numpy"):
    """One method on one seed: ``{"acc", "task_acc" (4,), "unused", "grid", "train"}``.

    ``cache``: a dict shared across calls, so that the masked and the unmasked evaluation of
    one bottleneck reuse one trained model and one test set. ``backend``: tier of the
    key-value lookup hot path (the result is the same on every tier).
    """
    kind, opts = METHODS[name]
    key = (kind, opts[:3] if kind == "kv" else opts, seed_)
    cache = {} if cache is None else cache
    if key not in cache:
        model, stream, rng = _trained(name, seed_, n_train, init_updates, init_batch, steps,
                                      backend)
        test = toy.sample_tasks(n_eval, rng)
        cache[key] = (model, stream, np.concatenate([x for x, _ in test]),
                      np.concatenate([t for _, t in test]))
    model, stream, X, y = cache[key]
    if kind == "kv":
        model.codebooks.deactivate_counts()  # evaluation mode: stop counting, mask unused
        model.codebooks.mask_unused = opts[3]
    pred = model.predict(X)
    task_acc = [accuracy(pred, y, toy.TASKS[t][0]) for t in range(len(toy.TASKS))]
    out = {"acc": accuracy(pred, y), "task_acc": task_acc, "train": stream, "grid": None,
           "unused": model.codebooks.fraction_unused() if kind == "kv" else None}
    if grid_points:
        _, xy = toy.grid(grid_points)
        out["grid"] = model.predict(xy).reshape(grid_points, grid_points)
    return out


def run(seeds=(0, 1, 2), n_train=100, n_eval=1000, init_updates=1000, steps=1000,
        grid_points=100, methods=None, backend="numpy"):
    """Every method of :data:`METHODS` (or ``methods``) on every seed.

    Returns ``{"setup", "rows": [{name, kind, acc (seeds,), task_acc (seeds, 4), unused}],
    "grids": {name: (P, P) predictions of the first seed}, "train", "ok", "seconds"}``; ``ok``:
    every bottleneck row >= :data:`BOTTLENECK_MIN` and every baseline <= :data:`BASELINE_MAX`
    on every seed.
    """
    t0 = time.perf_counter()
    names = list(METHODS) if methods is None else [m for m in METHODS if m in methods]
    common = dict(n_train=n_train, n_eval=n_eval, init_updates=init_updates, steps=steps)
    rows, grids, train, cache = [], {}, None, {}
    for name in names:
        outs = [run_one(name, s, grid_points=grid_points if i == 0 else 0, cache=cache,
                        backend=backend, **common) for i, s in enumerate(seeds)]
        rows.append({"name": name, "kind": METHODS[name][0],
                     "acc": [o["acc"] for o in outs], "task_acc": [o["task_acc"] for o in outs],
                     "unused": [o["unused"] for o in outs]})
        if outs and outs[0]["grid"] is not None:
            grids[name], train = outs[0]["grid"], outs[0]["train"]
    ok = all(min(r["acc"]) >= BOTTLENECK_MIN if r["kind"] == "kv" else
             max(r["acc"]) <= BASELINE_MAX for r in rows)
    return {"setup": dict(seeds=list(seeds), grid_points=grid_points, **common), "rows": rows,
            "grids": grids, "train": train, "ok": ok, "seconds": time.perf_counter() - t0}


def format_table(result) -> str:
    s = result["setup"]
    lines = [f"Class-incremental 2-D toy (Figure 2): 4 tasks x 2 classes, {s['n_train']} "
             f"training examples per task, {s['steps']} steps per task, keys from "
             f"{s['init_updates']} EMA updates",
             f"accuracy over all 8 classes after the last task ({s['n_eval']} test examples per "
             f"task); per-task accuracy: mean over seeds", "",
             f"{'method':<32} " + " ".join(f"{'seed ' + str(x):>7}" for x in s["seeds"])
             + f"  {'tasks 1..4 (mean)':<23} {'unused':>6}"]
    for r in result["rows"]:
        per_task = np.mean(np.asarray(r["task_acc"]), axis=0) if r["acc"] else []
        unused = "-" if r["kind"] != "kv" else f"{np.mean(r['unused']):.2f}"
        lines.append(f"{r['name']:<32} " + " ".join(f"{a:>7.3f}" for a in r["acc"]) + "  "
                     + f"{' '.join(f'{a:.2f}' for a in per_task):<23} {unused:>6}")
    holds = [("bottleneck", "kv", f">= {BOTTLENECK_MIN}", lambda a: a >= BOTTLENECK_MIN),
             ("MLP and linear probe", "clf", f"<= {BASELINE_MAX}", lambda a: a <= BASELINE_MAX)]
    lines.append("")
    for what, kind, text, test in holds:
        accs = [a for r in result["rows"] if r["kind"] == kind for a in r["acc"]]
        if accs:
            lines.append(f"{what} accuracy {text} on every seed: "
                         f"{'yes' if all(test(a) for a in accs) else 'NO'}")
    lines.append(f"total {result['seconds']:.1f} s")
    return "\n".join(lines)


def plot(result, path):
    """Decision regions after the last task (first seed), training points of all tasks."""
    names = [n for n in FIGURE if n in result["grids"]]
    X = np.concatenate([x for x, _ in result["train"]])
    y = np.concatenate([t for _, t in result["train"]])
    xs, _ = toy.grid(result["setup"]["grid_points"])
    return plots.decision_regions(
        path, xs, {n: result["grids"][n] for n in names}, points=(X, y), n_classes=8,
        title=f"2-D class-incremental toy, after task 4 (seed {result['setup']['seeds'][0]})")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if the claim does not hold."""
    parser = argparse.ArgumentParser(
        prog="refseq demo kv-bottleneck",
        description="Discrete key-value bottleneck vs an MLP and a linear probe on the "
                    "class-incremental 2-D toy of Figure 2.")
    parser.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2], help="seeds")
    parser.add_argument("--n-train", type=positive_int, default=100,
                        help="training examples per task")
    parser.add_argument("--n-eval", type=positive_int, default=1000,
                        help="test examples per task")
    parser.add_argument("--init-updates", type=nonnegative_int, default=1000,
                        help="EMA updates of the keys (batch 100)")
    parser.add_argument("--steps", type=nonnegative_int, default=1000,
                        help="full-batch training steps per task")
    parser.add_argument("--grid", type=positive_int, default=100,
                        help="grid points per side of the decision-region figure")
    parser.add_argument("--backend", choices=TIERS, default="numpy",
                        help="tier of the key-value lookup hot path")
    plots.add_plot_option(parser, "the decision regions after the last task")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    if args.grid < 2:
        parser.error(f"argument --grid: must be >= 2, got {args.grid}")
    result = run(seeds=tuple(args.seeds), n_train=args.n_train, n_eval=args.n_eval,
                 init_updates=args.init_updates, steps=args.steps,
                 grid_points=args.grid if args.plot is not None else 0, backend=args.backend)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
