"""``refseq demo pv-rnn``: the meta-prior's first-order effect at tiny scale (Ahmadi & Tani,
arXiv 1811.01339; docs/papers/pv-rnn.md).

Data: 8 one-dimensional sequences of length 48, each 6 segments of 8 steps, a segment being
``+0.8 sin(πk/8)`` with probability 0.7 or ``-0.8 sin(πk/8)`` with probability 0.3. Model: one
PV-RNN layer, D = 16, Z = 2, τ = 2, tanh output, Glorot-normal weights, zero biases,
A ~ N(0, 0.1²); full-batch Adam (lr 3e-3, ε_adam = 1e-4), fresh ε each epoch, β = w, OIST
normalisation. Expected between the smallest and the largest w: lower KL per latent unit per
step and higher reconstruction error per output unit per step for the larger w (the pass
criterion). The paper's σ-based claims are not asserted at this budget.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import nonnegative_float, positive_int, seed
from refseq.papers.pv_rnn.er import train_pvrnn
from refseq.papers.pv_rnn.params import init_pvrnn


def segment_sequences(n_seq=8, n_segments=6, seg_len=8, p_plus=0.7, amplitude=0.8, rng=None):
    """(S, T, 1) sequences of ``±amplitude sin(πk/seg_len)`` segments (+ with prob. p_plus)."""
    rng = np.random.default_rng(rng)
    base = amplitude * np.sin(np.pi * np.arange(seg_len) / seg_len)  # (seg_len,)
    signs = np.where(rng.random((n_seq, n_segments)) < p_plus, 1.0, -1.0)  # (S, n_segments)
    return (signs[:, :, None] * base).reshape(n_seq, n_segments * seg_len, 1)


def run(ws=(1e-3, 1e-2, 1e-1, 1.0), epochs=2000, seed=0, D=16, Z=2, tau=2.0, lr=3e-3):
    """Train one model per meta-prior w; returns a dict (see :func:`format_table`)."""
    data = segment_sequences(rng=seed)
    S, T, X = data.shape
    rows = []
    for w in ws:
        params = init_pvrnn([(D, Z)], X, S, T, seed + 1, tau=tau, A_init="normal", A_std=0.1)
        start = time.perf_counter()
        hist = train_pvrnn(params, data, epochs, None, lr=lr, w=w, beta=w, rng=seed + 2)
        tail = slice(max(epochs - 50, 0), epochs)  # mean of the last 50 epochs (fresh ε each)
        rows.append({"w": float(w), "kl": float(hist["kl"][tail, 0].mean()),
                     "rec": float(hist["rec"][tail].mean()),
                     "seconds": time.perf_counter() - start})
    ok = len(rows) >= 2 and rows[-1]["kl"] < rows[0]["kl"] and rows[-1]["rec"] > rows[0]["rec"]
    return {"epochs": epochs, "D": D, "Z": Z, "tau": tau, "S": S, "T": T, "rows": rows, "ok": ok}


def format_table(result) -> str:
    lines = [
        f"PV-RNN meta-prior sweep (1 layer, D = {result['D']}, Z = {result['Z']}, "
        f"tau = {result['tau']:g}, {result['S']} sequences x T = {result['T']}, "
        f"{result['epochs']} epochs, OIST normalisation, beta = w)",
        "mean over the last 50 epochs; KL per latent unit per step, reconstruction "
        "(1/2X)||x_hat - x||^2 per step",
        "",
        f"{'w':>8}  {'KL':>8}  {'reconstruction':>14}  {'seconds':>7}",
    ]
    for r in result["rows"]:
        lines.append(f"{r['w']:>8g}  {r['kl']:>8.4f}  {r['rec']:>14.5f}  {r['seconds']:>7.1f}")
    lines += ["", "larger w: lower KL and higher reconstruction error (smallest vs largest w): "
              + ("yes" if result["ok"] else "NO")]
    return "\n".join(lines)


def plot(result, path):
    """Write the sweep to ``path``: KL and reconstruction error against w (log x), two panels."""
    rows = result["rows"]
    ws = [r["w"] for r in rows]
    return plots.sweep(
        path, ws,
        [("KL per latent unit per step (nats)", [r["kl"] for r in rows]),
         ("reconstruction error (1/2X)||x̂ − x||² per step", [r["rec"] for r in rows])],
        xlabel="meta-prior w (= β), log scale",
        title=f"PV-RNN meta-prior sweep (1 layer, D = {result['D']}, Z = {result['Z']}, "
              f"τ = {result['tau']:g}; mean of the last 50 of {result['epochs']} epochs)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="refseq demo pv-rnn",
        description="The PV-RNN meta-prior's first-order effect on KL and reconstruction.")
    parser.add_argument("--ws", type=nonnegative_float, nargs="+", default=[1e-3, 1e-2, 1e-1, 1.0],
                        help="meta-prior values w (>= 0), smallest first")
    parser.add_argument("--epochs", type=positive_int, default=2000)
    parser.add_argument("--seed", type=seed, default=0)
    plots.add_plot_option(parser, "KL and reconstruction error against w")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    result = run(ws=tuple(args.ws), epochs=args.epochs, seed=args.seed)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
