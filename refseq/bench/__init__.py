"""``refseq bench``: speed as ratios measured side by side in one run (never asserted in tests).

Each benchmark is a module of this package with ``main(args) -> int``, listed in
:data:`BENCHMARKS` with its one-line description; ``refseq bench NAME`` runs it. Times are the
best of ``repeats`` runs after a warm-up call (:func:`best_time`).
"""

from __future__ import annotations

import time

import numpy as np

# name -> (module, one-line description); `refseq bench` with an unknown name lists these.
BENCHMARKS = {
    "scan": ("refseq.bench.scan", "jit (and cuda) scans vs the NumPy reference and a copy"),
    "recurrence": ("refseq.bench.recurrence", "LSTM forward/backward: jit vs NumPy, torch.nn.LSTM"),
    "train": ("refseq.bench.train", "one Adam step of the tiny transformer vs torch"),
    "decoding": ("refseq.bench.decoding",
                 "beam search and diverse beam search per token vs Hugging Face generate"),
    "tree_verify": ("refseq.bench.tree_verify",
                    "greedy/stochastic tree verification: jit (and cuda) vs NumPy, torch, a copy"),
    "kv_lookup": ("refseq.bench.kv_lookup",
                  "top-1/top-8 nearest keys in 64 codebooks: jit (and cuda) vs NumPy, faiss"),
}


def format_table(rows, head, fmt, right) -> str:
    """A plain-text table of ``rows`` (dicts) in the columns ``head``: each value formatted by
    ``fmt[column]`` (``str`` where absent, ``-`` for NaN), the columns whose index is in
    ``right`` right-aligned, a dashed rule under the header."""
    table = [["-" if isinstance(r[k], float) and np.isnan(r[k]) else fmt.get(k, "{}").format(r[k])
              for k in head] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *table)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(x.rjust(w) if i in right else x.ljust(w)
                        for i, (x, w) in enumerate(zip(row, widths))).rstrip() for row in table]
    return "\n".join(lines)


def best_time(fn, repeats=5):
    fn()  # warm-up (compilation, page faults)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def copy_bandwidth(nbytes, repeats=5, threads=2):
    """Bytes read + written per second by a ``threads``-thread ``np.copyto`` moving ``nbytes``.

    The buffer is split into ``threads`` contiguous halves (thirds, ...) copied concurrently
    (``np.copyto`` releases the GIL), so the baseline uses as many cores as the kernels do;
    ``threads=1`` is a plain ``np.copyto``.
    """
    from concurrent.futures import ThreadPoolExecutor

    src = np.ones(max(threads, nbytes // 8), np.float32)
    dst = np.empty_like(src)
    if threads == 1:
        t = best_time(lambda: np.copyto(dst, src), repeats)
        return 2 * src.nbytes / t
    cuts = np.linspace(0, src.size, threads + 1).astype(int)
    parts = [slice(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:])]
    with ThreadPoolExecutor(threads) as pool:
        t = best_time(lambda: list(pool.map(lambda s: np.copyto(dst[s], src[s]), parts)),
                      repeats)
    return 2 * src.nbytes / t
