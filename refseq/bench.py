"""``refseq bench``: speed as ratios measured side by side in one run (never asserted in tests).

``bench scan`` times the jit kernels against the NumPy reference and against a memory copy of
the same number of bytes measured in the same process, which is the bandwidth ceiling a
memory-bound scan can reach. Times are the best of ``repeats`` runs after a warm-up call.
"""

from __future__ import annotations

import time

import numpy as np

SCAN_CASES = (
    {"B": 8, "T": 4096, "D": 256},  # many channels: bandwidth-bound
    {"B": 1, "T": 2**20, "D": 4},  # long sequence, few channels: latency-bound
)


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


def _row(name, case, nbytes, t, t_numpy, copy_bw):
    bw = nbytes / t
    return {
        "kernel": name,
        "shape": " ".join(f"{k}={v}" for k, v in case.items()),
        "ms": t * 1e3,
        "GB/s": bw / 1e9,
        "copy GB/s": copy_bw / 1e9,
        "of copy": bw / copy_bw,
        "vs numpy": (t_numpy / t) if t_numpy else float("nan"),
    }


def bench_scan(repeats=5, numpy_reference=True, cases=SCAN_CASES, log=print):
    """Rows for jit ``linear_scan`` and ``softmax_scan`` (float32) on ``cases``."""
    from refseq import scan as S
    from refseq.jit import scan as J

    rng = np.random.default_rng(0)
    rows = []
    for case in cases:
        B, T, D = case["B"], case["T"], case["D"]
        a = rng.uniform(0.5, 1.0, (B, T, D)).astype(np.float32)
        b = rng.standard_normal((B, T, D)).astype(np.float32)
        out = np.empty_like(b)
        nbytes = a.nbytes + b.nbytes + out.nbytes  # read a, b; write h
        copy_bw = copy_bandwidth(nbytes, repeats)
        t = best_time(lambda: J.linear_scan(a, b, out=out, check_finite=False), repeats)
        t_np = best_time(lambda: S._linear_scan_numpy(a, b), 1) if numpy_reference else None
        rows.append(_row("jit linear_scan", case, nbytes, t, t_np, copy_bw))
        log(rows[-1])
        # softmax scan at the same bytes per step: H heads of width D_h with H * D_h = D
        H = 4 if D >= 64 else 1
        s = (3 * rng.standard_normal((B, T, H))).astype(np.float32)
        v = rng.standard_normal((B, T, H, D // H)).astype(np.float32)
        nbytes = s.nbytes + 2 * v.nbytes  # read s, v; write o
        copy_bw = copy_bandwidth(nbytes, repeats)
        o = np.empty_like(v)
        t = best_time(lambda: J.softmax_scan(s, v, check_finite=False, out=o), repeats)
        t_np = best_time(lambda: S._softmax_scan_numpy(s, v), 1) if numpy_reference else None
        sm_case = {"B": B, "T": T, "H": H, "D": D // H}
        rows.append(_row("jit softmax_scan", sm_case, nbytes, t, t_np, copy_bw))
        log(rows[-1])
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
    head = ["kernel", "shape", "ms", "GB/s", "copy GB/s", "of copy", "vs numpy"]
    fmt = {
        "ms": "{:.2f}",
        "GB/s": "{:.1f}",
        "copy GB/s": "{:.1f}",
        "of copy": "{:.2f}x",
        "vs numpy": "{:.0f}x",
    }
    table = [
        [
            fmt.get(k, "{}").format(r[k])
            if not (isinstance(r[k], float) and np.isnan(r[k]))
            else "-"
            for k in head
        ]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *table)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(x.rjust(w) if i >= 2 else x.ljust(w) for i, (x, w) in enumerate(zip(row, widths)))
        for row in table
    ]
    return "\n".join(lines)


TRAIN_CASE = {"V": 128, "D": 64, "L": 2, "H": 4, "T": 64, "B": 16}


def bench_train(repeats=10, case=TRAIN_CASE, log=print):
    """One Adam training step of the tiny transformer (float32): refseq vs torch CPU.

    Both run the same objective (next-token cross-entropy, learned positions, causal mask) on
    the same batch from the same initial weights; the time is the best of ``repeats`` steps.
    The torch row is skipped, with the reason, when torch is not installed.
    """
    from refseq.models.tiny_transformer import TinyConfig, init_params
    from refseq.train import Adam
    from refseq.train.lm import make_lm_objective

    cfg = TinyConfig(vocab_size=case["V"], d_model=case["D"], n_layers=case["L"],
                     n_heads=case["H"], max_positions=case["T"], dtype="float32")
    named, loss_and_grad = make_lm_objective(init_params(cfg, seed=0))
    batch = np.random.default_rng(0).integers(0, case["V"], (case["B"], case["T"] + 1))
    opt = Adam(lr=1e-3)

    def refseq_step():
        _, grads = loss_and_grad(named, batch)
        opt.step(named, grads)

    shape = " ".join(f"{k}={v}" for k, v in case.items())
    rows = [{"kernel": "refseq train step (numpy)", "shape": shape,
             "ms": best_time(refseq_step, repeats) * 1e3}]
    log(rows[-1])
    try:
        import torch

        from refseq.peers.torch_tiny_transformer import torch_train_step
    except ImportError as exc:
        rows.append({"kernel": "torch train step", "shape": shape, "ms": float("nan"),
                     "note": f"skipped: {exc}"})
        return rows
    named0, _ = make_lm_objective(init_params(cfg, seed=0))
    step = torch_train_step(cfg, named0)
    rows.append({"kernel": f"torch train step (CPU, {torch.get_num_threads()} threads)",
                 "shape": shape, "ms": best_time(lambda: step(batch), repeats) * 1e3})
    log(rows[-1])
    return rows


def format_train_rows(rows) -> str:
    torch_ms = next((r["ms"] for r in rows if r["kernel"].startswith("torch")), float("nan"))
    lines = []
    for r in rows:
        ratio = r["ms"] / torch_ms if np.isfinite(torch_ms) and np.isfinite(r["ms"]) else None
        extra = f"  {ratio:.2f}x torch" if ratio is not None else ""
        note = f"  ({r['note']})" if "note" in r else ""
        lines.append(f"{r['kernel']:<36} {r['shape']:<32} {r['ms']:8.2f} ms{extra}{note}")
    return "\n".join(lines)
