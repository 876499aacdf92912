"""``refseq bench recurrence``: the RNN-recurrence kernels side by side with the NumPy reference
and ``torch.nn.LSTM`` (CPU), measured in one run; speed is reported, never asserted.

Cases (FlashRNN's claim that removing per-step overhead gives large speed-ups, at CPU
scale), all LSTM, float32, one head
(``N = 1``, ``D = H``), input width ``I = H``:

* ``forward`` at (B=16, T=256, H=256) and (B=1, T=1024, H=64): jit = the kernels, BLAS input
  projection (:func:`refseq.jit.recurrence.project_inputs`) + :func:`refseq.jit.recurrence.\
flashrnn_forward` (no finiteness check of ``Wx``); user = the documented call path,
  :func:`refseq.recurrence.rnn_forward` with ``backend="jit"`` and default arguments (argument
  and finiteness checks included); torch = ``nn.LSTM`` forward under ``no_grad``; numpy = the
  reference's ``project_inputs`` + ``flashrnn_forward``. Goal: user within 1.5x (first shape)
  and 1.2x (second shape) of torch.
* ``forward+backward`` at the same shapes: jit adds the forward cache, ``flashrnn_backward`` and
  the input projection's gradients (two BLAS matmuls); user = ``rnn_forward(...,
  return_cache=True)`` + ``rnn_backward``; torch runs ``backward`` of a random cotangent on the
  outputs. Goal: user within 2x of torch.
* ``recurrence forward`` at (B=1, T=2048, N=1, D=8): jit vs the reference's recurrence alone.
  Goal: >= 10x.

Each row gives milliseconds per tier (best of ``repeats`` after a warm-up) and the ratios
``numpy / jit``, ``torch / jit``, ``user / jit`` (the cost of the checks and the public
wrappers) and ``torch / user`` (> 1: ours faster); torch runs with as many threads as Numba
(restored after), and its rows are skipped when torch is not importable. Numbers depend on the
machine and on its load: run it on an idle machine.
"""

from __future__ import annotations

import numpy as np

from refseq.bench import best_time

CASES = (
    {"what": "forward", "B": 16, "T": 256, "H": 256},
    {"what": "forward", "B": 1, "T": 1024, "H": 64, "goal": ("torch / user", 1 / 1.2)},
    {"what": "forward+backward", "B": 16, "T": 256, "H": 256},
    {"what": "forward+backward", "B": 1, "T": 1024, "H": 64},
    {"what": "recurrence forward", "B": 1, "T": 2048, "H": 8},
)
#: (metric, lower bound) per kind of case; a case's own ``"goal"`` overrides it
GOALS = {"forward": ("torch / user", 1 / 1.5), "forward+backward": ("torch / user", 0.5),
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
        tiers["user"] = lambda: F.rnn_forward(x, W, R, b, backend="jit")
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

        def user_fwbw():
            _, _, cache = F.rnn_forward(x, W, R, b, backend="jit", return_cache=True)
            return F.rnn_backward(g, None, x, W, R, b, cache, backend="jit")

        tiers["user"] = user_fwbw
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
    """Rows ``{"case", "shape", "threads", "jit ms", "user ms", "numpy ms", "torch ms",
    "numpy / jit", "torch / jit", "user / jit", "torch / user", "goal", "met"}`` for the LSTM
    cases of :data:`CASES` (float32; NaN where a tier does not apply)."""
    import numba

    rng = np.random.default_rng(0)
    rows = []
    torch = _torch()
    torch_threads = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(numba.get_num_threads())
        for case in cases:
            tiers = _lstm_tiers(case, rng, numpy_reference)
            times = {k: best_time(f, repeats if k != "numpy" else max(1, repeats // 2))
                     for k, f in tiers.items()}
            rows.append(_row(case, times, numba.get_num_threads()))
            log(rows[-1])
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
    return rows


def _row(case, times, threads):
    """One table row from ``{tier: seconds}``."""
    t = {k: times.get(k, np.nan) for k in ("jit", "user", "numpy", "torch")}
    metric, goal = case.get("goal") or GOALS[case["what"]]
    row = {
        "case": f"lstm {case['what']}",
        "shape": f"B={case['B']} T={case['T']} N=1 D={case['H']}",
        "threads": threads,
        **{f"{k} ms": v * 1e3 for k, v in t.items()},
        "numpy / jit": t["numpy"] / t["jit"],
        "torch / jit": t["torch"] / t["jit"],
        "user / jit": t["user"] / t["jit"],
        "torch / user": t["torch"] / t["user"],
        "goal": f"{metric} >= {goal:.3g}",
    }
    value = row[metric]
    row["met"] = "n/a" if np.isnan(value) else ("yes" if value >= goal else "no")
    return row


def format_rows(rows):
    """A Markdown table of :func:`bench_recurrence` rows."""
    cols = ["case", "shape", "jit ms", "user ms", "numpy ms", "torch ms", "numpy / jit",
            "torch / jit", "user / jit", "torch / user", "goal", "met"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(args) -> int:
    print("refseq bench recurrence: LSTM forward and forward+backward, float32, jit kernels and "
          "the documented call path (user = refseq.recurrence.rnn_forward/rnn_backward, "
          "backend='jit') vs the NumPy reference and torch.nn.LSTM (CPU) when installed\n",
          flush=True)
    rows = bench_recurrence(repeats=min(args.repeats, 5), numpy_reference=not args.no_numpy,
                            log=lambda r: None)
    print(format_rows(rows))
    return 0
