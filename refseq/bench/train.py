"""``refseq bench train``: one Adam step of the tiny transformer, refseq against torch on CPU."""

from __future__ import annotations

import numpy as np

from refseq.bench import best_time

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


def main(args) -> int:
    print(f"refseq bench train: one Adam step of the tiny transformer, float32, best of "
          f"{args.repeats}\n", flush=True)
    print(format_train_rows(bench_train(args.repeats, log=lambda r: None)))
    return 0
