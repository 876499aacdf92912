"""``refseq bench kv_lookup``: top-k nearest keys of a batch of queries in 64 codebooks
(:mod:`refseq.kv_lookup`) per tier, beside faiss's exact ``IndexFlatL2`` (one index per codebook,
the ``peers`` extra) on the same float32 data.

Case: ``C = 64`` codebooks of ``M = 1024`` keys, ``d_k = 16``, ``Q = 4096`` queries per codebook
(``h`` (Q, C, 1, d_k): B = 4096 inputs of one token), keys and queries N(0, 1), ``d_v = 10``;
``k = 1`` and ``k = 8``. Rows: ``numpy`` (the public function: checks, distances by blocks of
queries, linear-time selection), ``jit kernel`` (the Numba twin on validated arrays), ``jit``
(public function, checks included: what a user's call costs), ``cuda`` (public function, host
arrays, transfers included; skipped without a GPU), ``faiss IndexFlatL2`` (64 ``search`` calls on
prebuilt indices; faiss computes the expanded form ``|h|^2 - 2 h.k + |k|^2`` with BLAS, so its
float32 ranking can differ near ties). ``indices`` compares each row's ``idx`` with the NumPy
tier's: "same", or how many queries differ and how many of those the reference flags as
near-ties (:func:`refseq.kv_lookup.reference.near_tie`). The NumPy row is one timed run (NumPy
compiles nothing), reused as the reference. ``--no-numpy`` skips the NumPy tier altogether: the
rows are then compared with the jit kernel's indices, without the near-tie count. Speed is
reported, never asserted.
"""

from __future__ import annotations

import time

import numpy as np

from refseq.bench import best_time, format_table

CASE = {"C": 64, "M": 1024, "d_k": 16, "Q": 4096, "d_v": 10, "topk": (1, 8), "seed": 0}


def make_case(case=CASE):
    """``(h (Q, C, 1, d_k), keys (C, M, d_k), values (C, M, d_v))`` float32."""
    rng = np.random.default_rng(case["seed"])
    C, M, d, Q = case["C"], case["M"], case["d_k"], case["Q"]
    h = rng.standard_normal((Q, C, 1, d), dtype=np.float32)
    keys = rng.standard_normal((C, M, d), dtype=np.float32)
    values = rng.standard_normal((C, M, case["d_v"]), dtype=np.float32)
    return h, keys, values


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _agree(idx, want, flagged):
    differ = (idx != want).any(axis=-1)  # (B, C, N)
    if not differ.any():
        return "same"
    if flagged is None:  # no NumPy reference: compared with the jit kernel
        return f"{int(differ.sum())} queries differ from the jit kernel"
    return (f"{int(differ.sum())} queries differ ({int((differ & flagged).sum())} of them "
            "near-ties of the reference)")


def bench_kv_lookup(case=CASE, repeats=5, numpy_reference=True, log=print):
    """Rows ``{"what", "ms", "vs numpy", "vs faiss", "indices"}`` (see the module docstring);
    ``numpy_reference=False`` skips the NumPy tier (indices then compared with the jit
    kernel's)."""
    import numba

    import refseq.jit.kv_lookup as J
    from refseq.cuda import availability, simulating
    from refseq.kv_lookup import kv_lookup
    from refseq.kv_lookup.checks import check_lookup_args
    from refseq.kv_lookup.reference import near_tie

    h, keys, values = make_case(case)
    C = keys.shape[0]
    faiss = _faiss()
    cuda_ok, why = availability()
    if cuda_ok and simulating():
        cuda_ok, why = False, "CUDA simulator only"
    if faiss is not None:
        faiss.omp_set_num_threads(numba.get_num_threads())
        index = [faiss.IndexFlatL2(keys.shape[2]) for _ in range(C)]
        for c in range(C):
            index[c].add(keys[c])
        queries = [np.ascontiguousarray(h[:, c, 0]) for c in range(C)]
    nan = float("nan")
    rows = []
    for k in case["topk"]:
        args = check_lookup_args(h, keys, values, k, None, "l2")
        times = {}
        if numpy_reference:  # one timed run, which is also the reference
            t0 = time.perf_counter()
            want = kv_lookup(h, keys, values, k)[0]
            times["numpy"] = time.perf_counter() - t0
            flagged = near_tie(h, keys, k)
            rows.append({"what": f"top-{k} numpy", "ms": times["numpy"] * 1e3,
                         "indices": f"reference; {int(flagged.sum())} of {flagged.size} "
                                    f"queries near-ties"})
        else:
            want, flagged = J.kv_lookup(*args)[0], None
            rows.append({"what": f"top-{k} numpy", "ms": nan,
                         "indices": "skipped: --no-numpy (rows below vs the jit kernel)"})
        log(rows[-1])

        def run_faiss(k=k):
            return np.stack([index[c].search(queries[c], k)[1] for c in range(C)], axis=1)

        fns = {"jit kernel": lambda args=args: J.kv_lookup(*args)[0],
               "jit": lambda k=k: kv_lookup(h, keys, values, k, backend="jit")[0],
               "cuda": lambda k=k: kv_lookup(h, keys, values, k, backend="cuda")[0],
               "faiss IndexFlatL2": run_faiss if faiss is not None else None}
        for tier, fn in fns.items():
            what = f"top-{k} {tier}"
            if (tier == "cuda" and not cuda_ok) or fn is None:
                reason = why if tier == "cuda" else "faiss is not installed"
                rows.append({"what": what, "ms": nan, "indices": f"skipped: {reason}"})
                log(rows[-1])
                continue
            times[tier] = best_time(fn, repeats)
            idx = fn().reshape(want.shape)
            rows.append({"what": what, "ms": times[tier] * 1e3,
                         "indices": _agree(idx, want, flagged)})
            log(rows[-1])
        for r in rows[-1 - len(fns):]:
            t = r["ms"] / 1e3
            r["vs numpy"] = times["numpy"] / t if "numpy" in times and t == t else nan
            r["vs faiss"] = times["faiss IndexFlatL2"] / t if "faiss IndexFlatL2" in times \
                and t == t else nan
    return rows


def format_rows(rows) -> str:
    return format_table(rows, ["what", "ms", "vs numpy", "vs faiss", "indices"],
                        {"ms": "{:.1f}", "vs numpy": "{:.1f}x", "vs faiss": "{:.2f}x"},
                        right=(1, 2, 3))


def main(args) -> int:
    c = CASE
    print(f"refseq bench kv_lookup: C={c['C']} codebooks x M={c['M']} keys, d_k={c['d_k']}, "
          f"{c['Q']} queries per codebook, float32, l2; best of {args.repeats} after a warm-up "
          "(numpy: one run). 'jit kernel' = Numba twin on validated arrays; 'numpy'/'jit'/'cuda' = "
          "public function, checks included; 'faiss IndexFlatL2' = one exact faiss index per "
          "codebook (expanded form, BLAS), same threads as numba; 'indices' = idx vs the NumPy "
          "tier\n", flush=True)
    print(format_rows(bench_kv_lookup(repeats=args.repeats, numpy_reference=not args.no_numpy,
                                      log=lambda r: None)))
    return 0
