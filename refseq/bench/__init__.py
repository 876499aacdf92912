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
}


def best_time(fn, repeats=5):
    fn()  # warm-up (compilation, page faults)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def copy_bandwidth(nbytes, repeats=5):
    """Bytes read + written per second by ``np.copyto`` moving ``nbytes`` in total."""
    src = np.ones(max(1, nbytes // 8), np.float32)
    dst = np.empty_like(src)
    t = best_time(lambda: np.copyto(dst, src), repeats)
    return 2 * src.nbytes / t
