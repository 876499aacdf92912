"""``refseq demo gradient-noise``: annealed gradient noise rescues a deep, badly initialised ReLU
network (Neelakantan et al., arXiv 1511.06807, Sec. 4.1, at small scale;
docs/papers/gradient-noise.md).

A 20-layer ReLU MLP (width 50, all weights ``N(0, 0.1^2)``) is trained on a 2-class teacher
problem (:mod:`refseq.papers.gradient_noise.mlp`) with SGD (lr 0.1, batch 64, global-norm
clipping at 10) for 2000 steps, once per seed, without noise (``eta = 0``) and with annealed
noise ``sigma_t^2 = eta / (1 + t)^0.55`` added after clipping. The table reports the final
training accuracy. Checks (exit status 1 if one fails):

- without noise every seed stays at the majority-class rate (within 1 / n);
- with ``eta = 0.03`` at least ``ceil(2/3 * seeds)`` seeds reach accuracy >= 0.85.

The ``eta = 0.01`` row (the paper's value, which needs far longer training) is informational.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from refseq import plots
from refseq.cli import nonnegative_float, positive_int, seed
from refseq.papers.gradient_noise.mlp import run as run_one

THRESHOLD = 0.85


def run(seeds=(0, 1, 2), eta: float = 0.03, info_etas=(0.01,), steps: int = 2000,
        lr: float = 0.1, batch: int = 64, clip_norm: float | None = 10.0, gamma: float = 0.55,
        n: int = 2000, depth: int = 20, width: int = 50, threshold: float = THRESHOLD) -> dict:
    """Run the experiment for every seed at ``eta = 0``, ``eta`` and each of ``info_etas``.

    Returns a dict: the settings (``seeds, eta, info_etas, steps, lr, batch, clip_norm, gamma,
    n, depth, width, threshold``), ``majority`` (the data's majority-class rate), ``rows`` (one
    per eta: ``eta``, ``role`` in {"baseline", "noise", "informational"}, ``accuracies`` in seed
    order, ``final_losses``), the checks ``baseline_at_majority``, ``noise_hits`` (seeds
    >= threshold), ``noise_needed`` (``ceil(2/3 * len(seeds))``), ``noise_ok``, ``ok``,
    ``seconds`` (total wall time), and ``curves`` (per row, per seed: the training loss of every
    step, (steps,), for :func:`plot`).
    """
    if not seeds:
        raise ValueError("need at least one seed")
    start = time.perf_counter()
    common = dict(steps=steps, lr=lr, batch=batch, clip_norm=clip_norm, gamma=gamma, n=n,
                  depth=depth, width=width)
    rows, curves, majority = [], [], None
    for e, role in [(0.0, "baseline"), (eta, "noise")] + [(e, "informational") for e in info_etas]:
        outs = [run_one(seed, e, **common) for seed in seeds]
        majority = outs[0]["majority"]
        rows.append({"eta": e, "role": role, "accuracies": [o["accuracy"] for o in outs],
                     "final_losses": [o["final_loss"] for o in outs]})
        curves.append([o["log"].losses for o in outs])
    base, noisy = rows[0], rows[1]
    at_majority = all(abs(a - majority) <= 1.0 / n for a in base["accuracies"])
    hits = sum(a >= threshold for a in noisy["accuracies"])
    needed = math.ceil(2 * len(seeds) / 3)
    return {"seeds": list(seeds), "eta": eta, "info_etas": list(info_etas), **common,
            "threshold": threshold, "majority": majority, "rows": rows,
            "baseline_at_majority": at_majority, "noise_hits": hits, "noise_needed": needed,
            "noise_ok": hits >= needed, "ok": at_majority and hits >= needed,
            "seconds": time.perf_counter() - start, "curves": curves}


def format_table(result) -> str:
    """Title, settings, one row per eta (final training accuracy per seed), the two checks."""
    yes = {True: "yes", False: "NO"}
    r = result
    clip = "none" if r["clip_norm"] is None else f"{r['clip_norm']:g}"
    lines = [
        f"Gradient noise on a {r['depth']}-layer ReLU MLP (width {r['width']}, weights N(0, 0.1^2))"
        " -- arXiv 1511.06807",
        f"teacher data n = {r['n']} (majority class {r['majority']:.4f}); SGD lr {r['lr']:g}, "
        f"batch {r['batch']}, {r['steps']} steps, clip {clip}, "
        f"sigma_t^2 = eta / (1 + t)^{r['gamma']:g} after clipping",
        "final training accuracy",
        "",
        f"{'eta':>6}  " + "  ".join(f"{'seed ' + str(s):>7}" for s in r["seeds"]) + "  role",
    ]
    for row in r["rows"]:
        lines.append(f"{row['eta']:>6g}  " + "  ".join(f"{a:>7.4f}" for a in row["accuracies"])
                     + f"  {row['role']}")
    lines += [
        "",
        f"no noise stays at the majority rate for every seed: {yes[r['baseline_at_majority']]}",
        f"eta = {r['eta']:g} reaches >= {r['threshold']:g} for {r['noise_hits']} of "
        f"{len(r['seeds'])} seeds (need {r['noise_needed']}): {yes[r['noise_ok']]}",
        f"total {r['seconds']:.1f} s",
    ]
    return "\n".join(lines)


def plot(result, path, smooth: int | None = None):
    """Write the training curves to ``path``: one panel per eta, one line per seed. Each line is
    the batch loss averaged over the ``smooth`` steps ending at each step (default steps / 40,
    at least 1, at most steps); the loss of the constant majority-class predictor is drawn as a
    reference."""
    r = result
    smooth = min(smooth or max(r["steps"] // 40, 1), r["steps"])
    kernel = np.ones(smooth) / smooth
    roles = {"baseline": "no noise", "noise": "annealed noise, checked",
             "informational": "annealed noise, informational"}
    panels = []
    for row, per_seed in zip(r["rows"], r["curves"]):
        lines = [(f"seed {s}", np.arange(smooth, len(loss) + 1),  # the window ending at each step
                  np.convolve(loss, kernel, mode="valid")) for s, loss in zip(r["seeds"], per_seed)]
        accs = row["accuracies"]
        if len(accs) > 1 and all(abs(a - r["majority"]) <= 1 / r["n"] for a in accs):
            final = f"final training accuracy\n{accs[0]:.3f} for every seed (the lines overlap)"
        else:
            final = (f"final training accuracy\n{', '.join(f'{a:.3f}' for a in accs)} "
                     f"(seed{'s' * (len(accs) > 1)} {', '.join(map(str, r['seeds']))})")
        panels.append((f"η = {row['eta']:g} ({roles[row['role']]})\n{final}", lines))
    m = r["majority"]
    entropy = -(m * np.log(m) + (1 - m) * np.log(1 - m)) if 0 < m < 1 else 0.0
    return plots.training_curves(
        path, panels, legend_loc="lower left",  # empty in the curves that drop
        reference=(f"majority-class loss ({entropy:.3f})", entropy),
        ylabel=f"training batch loss (cross-entropy, nats),\nmoving average over {smooth} steps",
        xlabel=f"SGD step (batch {r['batch']}, lr {r['lr']:g})",
        title=f"{r['depth']}-layer ReLU MLP (width {r['width']}, weights N(0, 0.1²)): training "
              f"without and with gradient noise σ_t² = η / (1 + t)^{r['gamma']:g}")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if a check fails."""
    parser = argparse.ArgumentParser(
        prog="refseq demo gradient-noise",
        description="Annealed gradient noise rescues a deep, badly initialised ReLU network.")
    parser.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eta", type=nonnegative_float, default=0.03,
                        help="noise scale of the checked row")
    parser.add_argument("--info-etas", type=nonnegative_float, nargs="*", default=[0.01],
                        help="extra, informational noise scales")
    parser.add_argument("--steps", type=positive_int, default=2000)
    parser.add_argument("--n", type=positive_int, default=2000, help="training set size")
    parser.add_argument("--depth", type=positive_int, default=20)
    parser.add_argument("--width", type=positive_int, default=50)
    plots.add_plot_option(parser, "the training curves")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    result = run(seeds=tuple(args.seeds), eta=args.eta, info_etas=tuple(args.info_etas),
                 steps=args.steps, n=args.n, depth=args.depth, width=args.width)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
