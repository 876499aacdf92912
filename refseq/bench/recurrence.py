"""``refseq bench recurrence``: the RNN-recurrence kernels side by side with the NumPy reference
and ``torch.nn.LSTM`` (CPU), measured in one run; speed is reported, never asserted.

Cases (FlashRNN's claim that removing per-step overhead gives large speed-ups, at CPU
scale), all LSTM, float32, one head
(``N = 1``, ``D = H``), input width ``I = H``:

* ``forward`` at (B=16, T=256, H=256) and (B=1, T=1024, H=64): jit = BLAS input projection
  (:func:`refseq.jit.recurrence.project_inputs`) + :func:`refseq.jit.recurrence.flashrnn_forward`;
  torch = ``nn.LSTM`` forward under ``no_grad``; numpy = the reference's ``project_inputs`` +
  ``flashrnn_forward``. Goal: jit within 1.5x of torch.
* ``forward+backward`` at the same shapes: jit adds the forward cache, ``flashrnn_backward`` and
  the input projection's gradients (two BLAS matmuls); torch runs ``backward`` of a random
  cotangent on the outputs. Goal: within 2x of torch.
* ``recurrence forward`` at (B=1, T=2048, N=1, D=8): jit vs the reference's recurrence alone.
  Goal: >= 10x.

Each row gives milliseconds per tier (best of ``repeats`` after a warm-up) and the ratios
``numpy / jit`` and ``torch / jit`` (> 1: jit faster); torch rows are skipped when torch is not
importable. Numbers depend on the machine and on its load: run it on an idle machine.
"""

from __future__ import annotations

import numpy as np

from refseq.bench import best_time

CASES = (
    {"what": "forward", "B": 16, "T": 256, "H": 256},
    {"what": "forward", "B": 1, "T": 1024, "H": 64},
    {"what": "forward+backward", "B": 16, "T": 256, "H": 256},
    {"what": "forward+backward", "B": 1, "T": 1024, "H": 64},
    {"what": "recurrence forward", "B": 1, "T": 2048, "H": 8},
)
GOALS = {"forward": ("torch / jit", 1 / 1.5), "forward+backward": ("torch / jit", 0.5),
         "recurrence forward": ("numpy / jit", 10.0)}


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _lstm_tiers(case, rng, numpy_reference):
    """``{tier: callable}`` for one case (float32)."""
    from refseq import recurrence as F
    from refseq.jit import recurrence as J

    B, T, H = case["B"], case["T"], case["H"]
    x = rng.standard_normal((B, T, H)).astype(np.float32)
    W = (rng.standard_normal((4, 1, H, H)) / np.sqrt(H)).astype(np.float32)
    R = (rng.standard_normal((4, 1, H, H)) / np.sqrt(H)).astype(np.float32)
    b = rng.standard_normal((4, 1, H)).astype(np.float32)
    what = case["what"]
    tiers = {}
    if what == "recurrence forward":
        Wx = J.project_inputs(x, W)
        tiers["jit"] = lambda: J.flashrnn_forward(Wx, R, b, check_finite=False)
        if numpy_reference:
            tiers["numpy"] = lambda: F.flashrnn_forward(Wx, R, b, check_finite=False)
        return tiers
    if what == "forward":
        tiers["jit"] = lambda: J.flashrnn_forward(J.project_inputs(x, W), R, b,
                                                  check_finite=False)
        if numpy_reference:
            tiers["numpy"] = lambda: F.flashrnn_forward(F.project_inputs(x, W), R, b,
                                                        check_finite=False)
    else:
        g = rng.standard_normal((2, B, T, 1, H)).astype(np.float32)
        g[1] = 0  # a loss on h only, like torch's output

        def jit_fwbw():
            Wx = J.project_inputs(x, W)
            _, _, cache = J.flashrnn_forward(Wx, R, b, return_cache=True, check_finite=False)
            _, dWx, dR, db = J.flashrnn_backward(g, None, R, b, cache)
            dx, dW = J.project_inputs_backward(dWx, x, W)
            return dx, dW, dR, db

        tiers["jit"] = jit_fwbw
        if numpy_reference:
            def numpy_fwbw():
                Wx = F.project_inputs(x, W)
                _, _, cache = F.flashrnn_forward(Wx, R, b, return_cache=True)
                _, dWx, dR, db = F.flashrnn_backward(g, None, R, b, cache)
                return np.einsum("btgnd,gndi->bti", dWx, W), dR, db

            tiers["numpy"] = numpy_fwbw
    torch = _torch()
    if torch is not None:
        lstm = torch.nn.LSTM(H, H, batch_first=True)
        xt = torch.from_numpy(x)
        if what == "forward":
            def torch_fw():
                with torch.no_grad():
                    return lstm(xt)

            tiers["torch"] = torch_fw
        else:
            xg = xt.clone().requires_grad_(True)
            gt = torch.from_numpy(g[0, :, :, 0].copy())

            def torch_fwbw():
                lstm.zero_grad()
                y, _ = lstm(xg)
                y.backward(gt)

            tiers["torch"] = torch_fwbw
    return tiers


def bench_recurrence(repeats=5, numpy_reference=True, cases=CASES, log=print):
    """Rows ``{"case", "shape", "jit ms", "numpy ms", "torch ms", "numpy / jit",
    "torch / jit", "goal", "met"}`` for the LSTM cases of :data:`CASES` (float32)."""
    import numba

    rng = np.random.default_rng(0)
    rows = []
    for case in cases:
        tiers = _lstm_tiers(case, rng, numpy_reference)
        times = {k: best_time(f, repeats if k != "numpy" else max(1, repeats // 2))
                 for k, f in tiers.items()}
        t_jit = times["jit"]
        metric, goal = GOALS[case["what"]]
        row = {
            "case": f"lstm {case['what']}",
            "shape": f"B={case['B']} T={case['T']} N=1 D={case['H']}",
            "threads": numba.get_num_threads(),
            "jit ms": t_jit * 1e3,
            "numpy ms": times.get("numpy", np.nan) * 1e3,
            "torch ms": times.get("torch", np.nan) * 1e3,
            "numpy / jit": times.get("numpy", np.nan) / t_jit,
            "torch / jit": times.get("torch", np.nan) / t_jit,
            "goal": f"{metric} >= {goal:.3g}",
        }
        value = row[metric]
        row["met"] = "n/a" if np.isnan(value) else ("yes" if value >= goal else "no")
        rows.append(row)
        log(row)
    return rows


def format_rows(rows):
    """A Markdown table of :func:`bench_recurrence` rows."""
    cols = ["case", "shape", "jit ms", "numpy ms", "torch ms", "numpy / jit", "torch / jit",
            "goal", "met"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args) -> int:
    print("refseq bench recurrence: LSTM forward and forward+backward, float32, jit vs the "
          "NumPy reference and torch.nn.LSTM (CPU) when installed\n", flush=True)
    rows = bench_recurrence(repeats=min(args.repeats, 5), numpy_reference=not args.no_numpy,
                            log=lambda r: None)
    print(format_rows(rows))
    return 0
