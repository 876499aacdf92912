"""``refseq bench scan``: the jit scans against the NumPy reference and against a memory copy
of the same number of bytes measured in the same process, which is the bandwidth ceiling a
memory-bound scan can reach; the cuda rows when a GPU (not the simulator) is present.
"""

from __future__ import annotations

import time

import numpy as np

from refseq.bench import best_time, copy_bandwidth, format_table

SCAN_CASES = (
    {"B": 8, "T": 4096, "D": 256},  # many channels: bandwidth-bound
    {"B": 1, "T": 2**20, "D": 4},  # long sequence, few channels: latency-bound
)


def _row(name, case, nbytes, t, t_numpy, copy_bw, t_kernel=None):
    bw = nbytes / t
    return {
        "kernel": name,
        "shape": " ".join(f"{k}={v}" for k, v in case.items()),
        "ms": t * 1e3,
        "GB/s": bw / 1e9,
        "copy GB/s": copy_bw / 1e9,
        "of copy": bw / copy_bw,
        "of kernel": (t_kernel / t) if t_kernel else float("nan"),
        "vs numpy": (t_numpy / t) if t_numpy else float("nan"),
    }


def _rows(label, case, nbytes, copy_bw, t_numpy, kernel, user, user_out):
    """The kernel row and the two user-path rows of one function on one case."""
    t_kernel = kernel()
    rows = [_row(f"{label} kernel", case, nbytes, t_kernel, t_numpy, copy_bw)]
    for suffix, t in (("", user()), (" out=", user_out())):
        rows.append(_row(f"{label} user{suffix}", case, nbytes, t, t_numpy, copy_bw, t_kernel))
    return rows


def bench_scan(repeats=5, numpy_reference=True, cases=SCAN_CASES, log=print):
    """Rows for jit ``linear_scan`` and ``softmax_scan`` (float32) on ``cases``.

    Per function three rows: ``kernel`` — the jit twin into a reused buffer without the finite
    check (``refseq.jit.scan.linear_scan(a, b, out=out, check_finite=False)``); ``user`` — the
    public function with its defaults, output allocated (``linear_scan(a, b, backend="jit")``);
    ``user out=`` — the same into a reused buffer. ``of kernel`` = kernel time / row time; ``vs
    numpy`` = the NumPy reference's time (public function, defaults) / row time.
    """
    from refseq.jit import scan as J
    from refseq.scan import linear_scan, softmax_scan

    rng = np.random.default_rng(0)
    rows = []
    for case in cases:
        B, T, D = case["B"], case["T"], case["D"]
        a = rng.uniform(0.5, 1.0, (B, T, D)).astype(np.float32)
        b = rng.standard_normal((B, T, D)).astype(np.float32)
        out = np.empty_like(b)
        nbytes = a.nbytes + b.nbytes + out.nbytes  # read a, b; write h
        copy_bw = copy_bandwidth(nbytes, repeats)
        t_np = best_time(lambda: linear_scan(a, b), 1) if numpy_reference else None
        rows += _rows(
            "jit linear_scan", case, nbytes, copy_bw, t_np,
            lambda: best_time(lambda: J.linear_scan(a, b, out=out, check_finite=False), repeats),
            lambda: best_time(lambda: linear_scan(a, b, backend="jit"), repeats),
            lambda: best_time(lambda: linear_scan(a, b, backend="jit", out=out), repeats),
        )
        # softmax scan at the same bytes per step: H heads of width D_h with H * D_h = D
        H = 4 if D >= 64 else 1
        s = (3 * rng.standard_normal((B, T, H))).astype(np.float32)
        v = rng.standard_normal((B, T, H, D // H)).astype(np.float32)
        nbytes = s.nbytes + 2 * v.nbytes  # read s, v; write o
        copy_bw = copy_bandwidth(nbytes, repeats)
        o = np.empty_like(v)
        t_np = best_time(lambda: softmax_scan(s, v), 1) if numpy_reference else None
        rows += _rows(
            "jit softmax_scan", {"B": B, "T": T, "H": H, "D": D // H}, nbytes, copy_bw, t_np,
            lambda: best_time(lambda: J.softmax_scan(s, v, check_finite=False, out=o), repeats),
            lambda: best_time(lambda: softmax_scan(s, v, backend="jit"), repeats),
            lambda: best_time(lambda: softmax_scan(s, v, backend="jit", out=o), repeats),
        )
        for r in rows[-6:]:
            log(r)
    return rows


def bench_scan_cuda(repeats=20, cases=SCAN_CASES, log=print):
    """Rows for the cuda ``linear_scan`` kernels on device-resident float32 data.

    Times :func:`refseq.cuda.scan.launch_linear_scan` (kernels only, no transfers, synchronised)
    against a device-to-device copy moving the same bytes, measured in the same run.
    """
    from refseq.cuda import scan as CU
    from refseq.cuda._device import cuda

    rng = np.random.default_rng(0)
    rows = []

    def sync_time(fn):
        fn()
        cuda.synchronize()
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    for case in cases:
        B, T, D = case["B"], case["T"], case["D"]
        d_a = cuda.to_device(rng.uniform(0.5, 1.0, (B, T, D)).astype(np.float32))
        d_b = cuda.to_device(rng.standard_normal((B, T, D)).astype(np.float32))
        d_cmap = cuda.to_device(np.arange(D, dtype=np.int64))
        d_h0 = cuda.to_device(np.zeros((B, D), np.float32))
        nbytes = 3 * B * T * D * 4  # read a, b; write h
        src = cuda.to_device(np.ones(max(1, nbytes // 8), np.float32))
        dst = cuda.device_array_like(src)
        copy_bw = 2 * src.size * 4 / sync_time(lambda: dst.copy_to_device(src))
        for method in ("sequential", "parallel"):
            t = sync_time(lambda m=method: CU.launch_linear_scan(
                d_a, 1, 1, d_cmap, d_b, d_h0, False, m))
            rows.append(_row(f"cuda linear_scan[{method}]", case, nbytes, t, None, copy_bw))
            log(rows[-1])
    return rows


def format_rows(rows) -> str:
    fmt = {"ms": "{:.2f}", "GB/s": "{:.1f}", "copy GB/s": "{:.1f}", "of copy": "{:.2f}x",
           "of kernel": "{:.2f}x", "vs numpy": "{:.0f}x"}
    return format_table(rows, ["kernel", "shape", "ms", "GB/s", "copy GB/s", "of copy",
                               "of kernel", "vs numpy"], fmt, right=range(2, 8))


def main(args) -> int:
    print(
        "refseq bench scan: float32, best of "
        f"{args.repeats}; 'of copy' = effective bandwidth / bandwidth of a "
        "2-thread np.copyto of the same bytes, measured in this run; 'kernel' = jit twin "
        "into a reused buffer, no finite check; 'user' = public function, defaults (checked, "
        "output allocated); 'of kernel' = kernel time / row time; 'vs numpy' = NumPy "
        "reference time / row time\n",
        flush=True,
    )
    rows = bench_scan(args.repeats, numpy_reference=not args.no_numpy, log=lambda r: None)
    print(format_rows(rows))
    from refseq.cuda import availability, simulating

    ok, why = availability()
    if ok and not simulating():
        print("\ncuda (device arrays; 'of copy' = vs a device-to-device copy):")
        print(format_rows(bench_scan_cuda(log=lambda r: None)))
    else:
        print(f"\ncuda: not benchmarked ({why if not ok else 'simulator only'})")
    return 0
