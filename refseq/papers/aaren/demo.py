"""``refseq demo aaren``: Aaren's constant-cost streaming at tiny scale (Feng et al., arXiv
2405.13956, Sec. 3: the paper's efficiency claim; docs/papers/aaren.md).

One head, random q (1, Dk), k (1, T, 1, Dk), v (1, T, 1, Dv). Tokens are streamed one at a time
through

(a) the Aaren cell: ``s_t = <q, k_t>/sqrt(Dk)``, then :func:`aaren_cell_step` — O(1) per token;
(b) single-query softmax attention over a growing (preallocated) KV cache,
    :func:`kv_single_query_step` — O(t) per token;

and the wall time of each token is recorded with ``time.perf_counter``. The table reports the
median over the ``window`` tokens ending at each checkpoint t. Both paths compute the same
numbers, so the demo also checks that their outputs agree to 1e-12, and that
:func:`aaren_scan` at T = ``scan_T`` equals the O(T^2) loop :func:`aaren_naive`.
Both streaming paths run with ``check_finite=False`` (inputs were checked once up front), so the
timings compare the algorithms, not the validation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import positive_int, seed
from refseq.nn.softmax_attention import kv_cache_init, kv_single_query_step
from refseq.papers.aaren.rnn import (
    aaren_cell_step,
    aaren_naive,
    aaren_scan,
    softmax_state_init,
)

TOLERANCE = 1e-12


def _median_us(per_token_s, end, window):
    return 1e6 * float(np.median(per_token_s[max(end - window, 0) : end]))


def run(T=16384, Dk=32, Dv=32, seed=0, checkpoints=(1024, 4096, 16384), window=256, scan_T=4096):
    """Run the demo; return the measured numbers as a dict (see :func:`format_table`).

    Keys: ``T, Dk, Dv, window``; ``rows`` (one dict per checkpoint: ``t``, ``aaren_us``,
    ``kv_us``, ``ratio``); ``stream_max_diff`` and ``stream_ok`` (a) vs (b); ``scan`` (``T``,
    ``method``, ``max_diff``, ``ok``, ``scan_s``, ``naive_s``, ``speedup``); ``per_token_s``
    (``{"aaren": (T,), "kv": (T,)}``, every token's wall time in seconds, for :func:`plot`).
    """
    if not checkpoints or any(not 1 <= c <= T for c in checkpoints):
        raise ValueError(f"checkpoints must lie in [1, T] = [1, {T}], got {checkpoints}")
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, Dk))  # (H, Dk), H = 1
    k = rng.standard_normal((1, T, 1, Dk))  # (B, T, H, Dk), B = 1
    v = rng.standard_normal((1, T, 1, Dv))  # (B, T, H, Dv)
    scale = 1.0 / np.sqrt(Dk)

    state = softmax_state_init(1, 1, Dv)
    cache = kv_cache_init(1, 1, Dk, Dv, capacity=T)
    o_aaren, o_kv = np.empty((T, Dv)), np.empty((T, Dv))
    t_aaren, t_kv = np.empty(T), np.empty(T)
    for t in range(T):  # (a) Aaren: the whole stream first, so (b) cannot evict its state
        start = time.perf_counter()
        s_t = scale * np.einsum("hd,bhd->bh", q, k[:, t])  # (B, H)
        state, o_t = aaren_cell_step(state, s_t, v[:, t], check_finite=False)  # (B, H, Dv)
        t_aaren[t] = time.perf_counter() - start
        o_aaren[t] = o_t[0, 0]
    for t in range(T):  # (b) single-query softmax over the KV cache of tokens 1..t
        start = time.perf_counter()
        o_t, cache = kv_single_query_step(q, k[:, t], v[:, t], cache, scale=scale,
                                          check_finite=False)  # (B, H, Dv)
        t_kv[t] = time.perf_counter() - start
        o_kv[t] = o_t[0, 0]

    rows = []
    for c in checkpoints:
        a_us, kv_us = _median_us(t_aaren, c, window), _median_us(t_kv, c, window)
        rows.append({"t": c, "aaren_us": a_us, "kv_us": kv_us, "ratio": kv_us / a_us})
    stream_max_diff = float(np.abs(o_aaren - o_kv).max())

    n = min(scan_T, T)
    start = time.perf_counter()
    o_scan, _ = aaren_scan(q, k[:, :n], v[:, :n], scale=scale, method="blelloch")
    scan_s = time.perf_counter() - start
    start = time.perf_counter()
    o_naive = aaren_naive(q, k[:, :n], v[:, :n], scale=scale)
    naive_s = time.perf_counter() - start
    scan_max_diff = float(np.abs(o_scan - o_naive).max())

    return {
        "T": T, "Dk": Dk, "Dv": Dv, "window": window, "rows": rows,
        "stream_max_diff": stream_max_diff, "stream_ok": stream_max_diff <= TOLERANCE,
        "scan": {"T": n, "method": "blelloch", "max_diff": scan_max_diff,
                 "ok": scan_max_diff <= TOLERANCE, "scan_s": scan_s, "naive_s": naive_s,
                 "speedup": naive_s / scan_s},
        "per_token_s": {"aaren": t_aaren, "kv": t_kv},
    }


def format_table(result) -> str:
    """The demo's report: per-token times at each checkpoint, then the two equality checks."""
    lines = [
        f"Aaren cell vs single-query softmax over a growing KV cache "
        f"(H = 1, Dk = {result['Dk']}, Dv = {result['Dv']}, T = {result['T']})",
        f"median wall time per token over the {result['window']} tokens ending at t",
        "",
        f"{'t':>7}  {'aaren us/token':>14}  {'kv-cache us/token':>17}  {'ratio':>6}",
    ]
    for r in result["rows"]:
        lines.append(f"{r['t']:>7}  {r['aaren_us']:>14.1f}  {r['kv_us']:>17.1f}  "
                     f"{r['ratio']:>5.1f}x")
    yes = {True: "yes", False: "NO"}
    sc = result["scan"]
    lines += [
        "",
        f"max |aaren - kv-cache| over all {result['T']} outputs: "
        f"{result['stream_max_diff']:.2e} (<= {TOLERANCE:g}: {yes[result['stream_ok']]})",
        f"aaren_scan ({sc['method']}) vs naive O(T^2) loop at T = {sc['T']}: max |diff| "
        f"{sc['max_diff']:.2e} (<= {TOLERANCE:g}: {yes[sc['ok']]}); "
        f"{sc['scan_s'] * 1e3:.1f} ms vs {sc['naive_s'] * 1e3:.1f} ms "
        f"({sc['speedup']:.1f}x faster)",
    ]
    return "\n".join(lines)


def plot(result, path, points: int = 40):
    """Write the per-token cost against t (log-log) to ``path``: the windowed medians of
    :func:`format_table` at ``points`` log-spaced t, from t = min(16, T) to T."""
    T, window = result["T"], result["window"]
    ts = np.unique(np.geomspace(min(16, T), T, points).round().astype(int))
    per_token = result["per_token_s"]
    series = {
        "Aaren cell, O(1) state": [_median_us(per_token["aaren"], t, window) for t in ts],
        "softmax over a growing KV cache": [_median_us(per_token["kv"], t, window) for t in ts],
    }
    return plots.cost_vs_length(
        path, ts, series, window=window,
        title=f"Streaming cost per token (H = 1, Dk = {result['Dk']}, Dv = {result['Dv']}, "
              f"T = {T})")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if an equality check fails."""
    parser = argparse.ArgumentParser(
        prog="refseq demo aaren",
        description="Aaren's constant-cost streaming against a growing KV cache, at tiny scale.")
    parser.add_argument("--T", type=positive_int, default=16384, help="tokens to stream")
    parser.add_argument("--Dk", type=positive_int, default=32)
    parser.add_argument("--Dv", type=positive_int, default=32)
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--checkpoints", type=positive_int, nargs="+", default=None,
                        help="tokens t at which to report, each in [1, T] "
                             "(default: 1024 4096 16384, those <= T, and T)")
    parser.add_argument("--scan-T", type=positive_int, default=4096,
                        help="length of the scan check")
    plots.add_plot_option(parser, "the per-token cost against t (log-log)")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    if args.checkpoints is None:
        args.checkpoints = sorted({c for c in (1024, 4096, 16384) if c < args.T} | {args.T})
    elif max(args.checkpoints) > args.T:
        parser.error(f"argument --checkpoints: each must lie in [1, T] = [1, {args.T}], "
                     f"got {max(args.checkpoints)}")
    result = run(T=args.T, Dk=args.Dk, Dv=args.Dv, seed=args.seed,
                 checkpoints=tuple(args.checkpoints), scan_T=args.scan_T)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["stream_ok"] and result["scan"]["ok"] else 1
