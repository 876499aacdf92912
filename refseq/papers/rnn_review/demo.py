"""``refseq demo rnn-review``: vanishing versus preserved gradients, the central argument of
Lipton et al., "A Critical Review of Recurrent Neural Networks for Sequence Learning" (arXiv
1506.00019, Sec. 3.2 and 4.1; docs/papers/rnn-review.md).

(a) Elman tanh RNN, H = 32, I = 8, ``W^{hx} ~ N(0, 0.1²)``, ``x(t) ~ N(0, 1)``, ``W^{hh} = ρ Q``
    with Q a random orthogonal matrix, ``h(0) = 0``: the exact ``||∂h(t)/∂h(0)||_2``
    (:func:`refseq.papers.rnn_review.analysis.elman_jacobian_chain`) for several ρ, next to the
    bound ``(ρ max|tanh'|)^t = ρ^t``.
(b) LSTM (forget gate, no peepholes) on the same inputs, input weights ``N(0, 0.1²)``, recurrent
    weights ``N(0, 0.1²/H)``, all biases 0 except the forget bias ``b_f``: the exact
    ``||∂s(t)/∂s(0)||_2`` (:func:`refseq.papers.rnn_review.analysis.lstm_state_jacobian`, every
    path).

Pass criteria: for ρ <= 1 the Elman norm at t = 50 is below 1e-2 and decreases over
the checkpoints; for ρ = 3 it exceeds 1e3; every Elman norm stays within the bound; the LSTM norm at
``b_f = 5`` is at least 1e4 times the one at ``b_f = 1`` and above 0.1, while the Elman ρ = 0.9
norm is below 1e-3.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import positive_int, seed
from refseq.papers.rnn_review.analysis import (
    elman_jacobian_chain,
    jacobian_bound,
    lstm_state_jacobian,
)
from refseq.rnn.lstm import BIASES, LSTMParams


def _orthogonal(rng, H):
    q, r = np.linalg.qr(rng.standard_normal((H, H)))
    return q * np.sign(np.diag(r))  # Haar-distributed


def run(H=32, I=8, T=50, seed=0, rhos=(0.5, 0.9, 1.0, 1.5, 3.0), forget_biases=(0.0, 1.0, 3.0, 5.0),
        checkpoints=(10, 25, 50)):
    """Run the demo; return the measured numbers as a dict (see :func:`format_table`).

    Keys: ``H, I, T, checkpoints, seconds``; ``elman`` (one dict per ρ: ``rho``, ``norms`` at the
    checkpoints, ``bound_ok``); ``lstm`` (one dict per ``b_f``: ``b_f``, ``norms``); ``checks``
    (name -> bool) and ``ok``. Each ``elman`` and ``lstm`` dict also holds ``curve``, the norm at
    every t = 1..T (T,), for :func:`plot`.
    """
    if not checkpoints or any(not 1 <= c <= T for c in checkpoints):
        raise ValueError(f"checkpoints must lie in [1, T] = [1, {T}], got {checkpoints}")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, I))  # (T, I) one sequence
    W_hx = 0.1 * rng.standard_normal((H, I))
    Q = _orthogonal(rng, H)
    idx = np.asarray(checkpoints) - 1
    elman = []
    for rho in rhos:
        norms = elman_jacobian_chain(x, W_hx, rho * Q, np.zeros(H))  # (T,)
        bound = jacobian_bound(rho * Q, "tanh", T)
        elman.append({"rho": rho, "norms": norms[idx], "last": norms[-1], "curve": norms,
                      "bound_ok": bool(np.all(norms <= bound * (1 + 1e-12)))})
    w = {k: 0.1 * rng.standard_normal((H, I)) for k in ("W_gx", "W_ix", "W_fx", "W_ox")}
    w |= {k: 0.1 / np.sqrt(H) * rng.standard_normal((H, H))
          for k in ("W_gh", "W_ih", "W_fh", "W_oh")}
    lstm = []
    for b_f in forget_biases:
        biases = {k: np.zeros(H) for k in BIASES} | {"b_f": np.full(H, float(b_f))}
        norms = lstm_state_jacobian(x, LSTMParams(**w, **biases), which="s")  # (T,)
        lstm.append({"b_f": b_f, "norms": norms[idx], "last": norms[-1], "curve": norms})
    by_rho = {r["rho"]: r for r in elman}
    by_bf = {r["b_f"]: r for r in lstm}
    checks = {"elman norms <= (rho max|tanh'|)^t": all(r["bound_ok"] for r in elman)}
    for r in elman:
        if r["rho"] <= 1:
            checks[f"rho = {r['rho']:g}: norm(T) < 1e-2 and decreasing"] = bool(
                r["last"] < 1e-2 and np.all(np.diff(r["norms"]) < 0))
    if 3.0 in by_rho:
        checks["rho = 3: norm(T) > 1e3"] = bool(by_rho[3.0]["last"] > 1e3)
    if 1.0 in by_bf and 5.0 in by_bf:
        checks["lstm b_f = 5 >= 1e4 x b_f = 1"] = bool(
            by_bf[5.0]["last"] >= 1e4 * by_bf[1.0]["last"])
        if 0.9 in by_rho:
            checks["lstm b_f = 5 > 0.1 while elman rho = 0.9 < 1e-3"] = bool(
                by_bf[5.0]["last"] > 0.1 and by_rho[0.9]["last"] < 1e-3)
    return {"H": H, "I": I, "T": T, "checkpoints": tuple(checkpoints), "elman": elman,
            "lstm": lstm, "checks": checks, "ok": all(checks.values()),
            "seconds": time.perf_counter() - start}


def format_table(result) -> str:
    """The demo's report: the two tables of norms, then the pass criteria."""
    cps = result["checkpoints"]
    head = "".join(f"{f't = {c}':>11}" for c in cps)
    lines = [f"Vanishing vs preserved gradients (H = {result['H']}, I = {result['I']}, "
             f"T = {result['T']}; exact Jacobian products, float64)", "",
             "Elman tanh, W_hh = rho * Q (Q orthogonal): ||dh(t)/dh(0)||_2",
             f"{'rho':>6}{head}{'bound(T)':>11}"]
    for r in result["elman"]:
        cells = "".join(f"{v:>11.2e}" for v in r["norms"])
        lines.append(f"{r['rho']:>6g}{cells}{r['rho'] ** result['T']:>11.2e}")
    lines += ["", "LSTM (forget gate, no peepholes): ||ds(t)/ds(0)||_2", f"{'b_f':>6}{head}"]
    for r in result["lstm"]:
        lines.append(f"{r['b_f']:>6g}" + "".join(f"{v:>11.2e}" for v in r["norms"]))
    lines += ["", "checks:"]
    lines += [f"  {'yes' if ok else 'NO ':>3}  {name}" for name, ok in result["checks"].items()]
    lines.append(f"({result['seconds']:.2f} s)")
    return "\n".join(lines)


def plot(result, path):
    """Write the norms at every t (log y) to ``path``: Elman for each ρ with its bound ρ^t,
    and the LSTM for each forget bias next to the Elman ρ = 0.9 curve (if swept)."""
    T = result["T"]
    elman, bounds = [], []
    for i, r in enumerate(result["elman"]):
        color = f"C{i % 10}"
        elman.append((f"ρ = {r['rho']:g}", r["curve"], {"color": color}))
        bounds.append(("bound ρ^t (dotted, same colour)" if i == 0 else None,
                       r["rho"] ** np.arange(1, T + 1), {"color": color, "ls": ":", "lw": 1}))
    lstm = [(f"b_f = {r['b_f']:g}", r["curve"], {"color": f"C{i % 10}"})
            for i, r in enumerate(result["lstm"])]
    ref = next((r for r in result["elman"] if r["rho"] == 0.9), None)
    if ref is not None:
        lstm.append(("Elman ρ = 0.9, for comparison", ref["curve"],
                     {"color": "gray", "ls": "--", "lw": 1}))
    return plots.norms_over_time(
        path,
        [("Elman tanh RNN, W_hh = ρ Q (Q orthogonal)\n||∂h(t)/∂h(0)||₂", elman, bounds),
         ("LSTM (forget gate, forget-gate bias b_f)\n||∂s(t)/∂s(0)||₂", lstm, [])],
        title=f"Vanishing vs preserved gradients (H = {result['H']}, I = {result['I']}, "
              f"T = {T}; exact Jacobian products)",
        ylabel="Jacobian spectral norm (dimensionless, log scale)")


def main(argv=None) -> int:
    """Command line: print the tables; exit status 1 if a pass criterion fails."""
    parser = argparse.ArgumentParser(
        prog="refseq demo rnn-review",
        description="Vanishing versus preserved gradients: Elman networks against the LSTM.")
    parser.add_argument("--H", type=positive_int, default=32)
    parser.add_argument("--I", type=positive_int, default=8)
    parser.add_argument("--T", type=positive_int, default=50)
    parser.add_argument("--seed", type=seed, default=0)
    plots.add_plot_option(parser, "the gradient norms at every t")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    checkpoints = tuple(c for c in (10, 25, 50) if c < args.T) + (args.T,)
    result = run(H=args.H, I=args.I, T=args.T, seed=args.seed,
                 checkpoints=tuple(sorted(set(checkpoints))))
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
