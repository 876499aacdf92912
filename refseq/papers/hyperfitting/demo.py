"""``refseq demo hyperfitting``: the hyperfitting phenomenon on a tiny NumPy transformer
(arXiv 2412.04318 at toy scale; docs/papers/hyperfitting.md, "Demo").

A tiny transformer (2 blocks, d = 64, V = 64, 64 positions) is pretrained briefly on sequences
from a random bigram source (``random_markov_lm(V, alpha=0.3)``), stopping while it is still
under-trained. It is then hyperfitted on 16 sequences of 64 tokens (Adam, lr 3e-3 -- the paper's
1e-6 moves a toy model nowhere --, batch 8, 100 epochs, 200 updates) and evaluated on 32
held-out sequences: 8-token contexts, 56 greedy tokens, TTR over the last 32. Checks (exit
status 1 if one fails), the robust consequences of over-fitting:

- final training loss < 0.05;
- mean validation entropy at least 50% below the pretrained model's;
- validation loss above the pretrained model's.

Reported, not checked (the paper's claims; the toy is not calibrated for them): greedy TTR of
the pretrained vs the hyperfitted model, top-p sampling's TTR, the training-data 8-gram overlap
of the continuations with and without the citation blocker, and the top-1 agreement of two
models hyperfitted in different shuffling orders.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import positive_float, positive_int, seed
from refseq.models.tiny_transformer import TinyConfig, init_params, params_from_named
from refseq.models.toy_lm import random_markov_lm, sample_sequences
from refseq.papers.hyperfitting.citation import CitationBlocker, NgramIndex, training_overlap
from refseq.papers.hyperfitting.data import make_hyperfit_splits
from refseq.papers.hyperfitting.metrics import (
    mean_ttr,
    rank_stats,
    teacher_forced_logits,
    top1_agreement,
    validate,
)
from refseq.papers.hyperfitting.protocol import continue_greedy, continue_sample
from refseq.papers.hyperfitting.training import hyperfit
from refseq.train import Adam, train
from refseq.train.lm import make_lm_objective


def _overlap8(cont, contexts, index):
    """Mean 8-gram overlap over rows (n-grams may start in the context)."""
    return float(np.mean([training_overlap(c, {8: index}, ctx)["overlap"][8]
                          for c, ctx in zip(cont.tokens, contexts)]))


def run(seed: int = 0, vocab: int = 64, alpha: float = 0.3, seq_len: int = 64, d_model: int = 64,
        n_layers: int = 2, n_heads: int = 4, pretrain_steps: int = 150, pretrain_lr: float = 3e-3,
        pretrain_batch: int = 8, n_corpus: int = 2000, n_train: int = 16, n_val: int = 32,
        context_len: int = 8, ttr_window: int = 32, epochs: int = 100, lr: float = 3e-3,
        batch_size: int = 8, validate_every: int = 25, blocker_n: int = 5,
        top_p: float = 0.95) -> dict:
    """Run the experiment of the module docstring.

    Returns a dict: the settings; ``pretrained`` and ``hyperfitted`` (each ``train_loss``,
    ``val_loss``, ``val_entropy``, ``ttr``); ``sampled_ttr`` (pretrained model, top-p);
    ``blocked_ttr``; ``overlap8`` {"pretrained", "hyperfitted", "blocked"}; ``blocked_events``;
    ``agreement`` (top-1 agreement of the two hyperfitted models on the validation positions);
    ``same_top1_as_pretrained``; ``top1_prob``; ``curve`` (per validation: ``update``,
    ``train_loss``, ``val_loss``, ``val_entropy``, ``val_ttr``); the checks ``loss_ok``,
    ``entropy_ok``, ``val_loss_ok``, ``ok``; ``seconds``.
    """
    start = time.perf_counter()
    src = random_markov_lm(vocab, alpha, seed=seed)
    corpus = sample_sequences(src, n_corpus, seq_len, seed=seed + 1)  # pretraining data
    docs = list(sample_sequences(src, 2 * (n_train + n_val), seq_len, seed=seed + 2))
    docs = [d[: seq_len // 2] if i % 2 else d for i, d in enumerate(docs)]  # odd ones too short
    splits = make_hyperfit_splits(docs, n_train, n_val, n_val, seq_len)
    cfg = TinyConfig(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                     max_positions=seq_len)
    named, loss_and_grad = make_lm_objective(init_params(cfg, seed=seed))
    rng = np.random.default_rng(seed + 3)
    train(named, loss_and_grad, lambda t: corpus[rng.integers(0, n_corpus, pretrain_batch)],
          Adam(pretrain_lr), steps=pretrain_steps, log=None)
    base = params_from_named(cfg, named)

    def summary(params, blocker=None):
        vl, ve = validate(params, splits.val, batch_size)
        cont = continue_greedy(params, splits.gen_val, context_len, seq_len, blocker=blocker)
        return {"train_loss": validate(params, splits.train, batch_size)[0], "val_loss": vl,
                "val_entropy": ve, "ttr": mean_ttr(cont.tokens, cont.lengths, ttr_window),
                "cont": cont}

    log = hyperfit(base, splits.train, epochs=epochs, lr=lr, batch_size=batch_size,
                   validate_every=validate_every, val=splits.val, gen_val=splits.gen_val,
                   context_len=context_len, ttr_window=ttr_window, val_batch_size=batch_size,
                   eval_fn=lambda p: {"train_loss": validate(p, splits.train, batch_size)[0]},
                   seed=seed)
    other = hyperfit(base, splits.train, epochs=epochs, lr=lr, batch_size=batch_size,
                     validate_every=10**9, seed=seed + 1)  # another shuffling order
    pre, hyp = summary(base), summary(log.params)
    index5, index8 = NgramIndex(splits.train, blocker_n), NgramIndex(splits.train, 8)
    blocker = CitationBlocker(index5)
    blocked = summary(log.params, blocker)
    contexts = splits.gen_val[:, :context_len]
    sampled = continue_sample(base, splits.gen_val, context_len, seq_len, top_p=top_p,
                              rng=seed + 4)
    lg_hyp = np.concatenate(teacher_forced_logits(log.params, splits.val))  # (n_val, T, V)
    lg_other = np.concatenate(teacher_forced_logits(other.params, splits.val))
    lg_base = np.concatenate(teacher_forced_logits(base, splits.val))
    ranks = rank_stats(lg_hyp[:, :-1], lg_base[:, :-1], splits.val[:, 1:])
    keys = ("train_loss", "val_loss", "val_entropy", "ttr")
    out = {
        "seed": seed, "vocab": vocab, "alpha": alpha, "seq_len": seq_len, "d_model": d_model,
        "n_layers": n_layers, "pretrain_steps": pretrain_steps, "pretrain_lr": pretrain_lr,
        "n_train": n_train, "n_val": n_val, "context_len": context_len,
        "ttr_window": ttr_window, "epochs": epochs, "lr": lr, "batch_size": batch_size,
        "updates": len(log.train_losses), "blocker_n": blocker_n, "top_p": top_p,
        "pretrained": {k: pre[k] for k in keys}, "hyperfitted": {k: hyp[k] for k in keys},
        "blocked_ttr": blocked["ttr"], "blocked_events": len(blocker.events),
        "sampled_ttr": mean_ttr(sampled.tokens, sampled.lengths, ttr_window),
        "overlap8": {"pretrained": _overlap8(pre["cont"], contexts, index8),
                     "hyperfitted": _overlap8(hyp["cont"], contexts, index8),
                     "blocked": _overlap8(blocked["cont"], contexts, index8)},
        "agreement": top1_agreement(lg_hyp[:, :-1], lg_other[:, :-1]),
        "same_top1_as_pretrained": ranks["same_top1"], "top1_prob": ranks["top1_prob"],
        "top1_is_target": ranks["top1_is_target"],
        "curve": [{"update": e.update, "train_loss": e.extra["train_loss"],
                   "val_loss": e.val_loss, "val_entropy": e.val_entropy, "val_ttr": e.val_ttr}
                  for e in log.entries],
    }
    p, h = out["pretrained"], out["hyperfitted"]
    out["loss_ok"] = h["train_loss"] < 0.05
    out["entropy_ok"] = h["val_entropy"] <= 0.5 * p["val_entropy"]
    out["val_loss_ok"] = h["val_loss"] > p["val_loss"]
    out["ok"] = out["loss_ok"] and out["entropy_ok"] and out["val_loss_ok"]
    out["seconds"] = time.perf_counter() - start
    return out


def format_table(result) -> str:
    """Title, settings, the before/after table, the reported numbers, the three checks."""
    r, yes = result, {True: "yes", False: "NO"}
    p, h = r["pretrained"], r["hyperfitted"]
    lines = [
        "Hyperfitting a tiny pretrained transformer -- arXiv 2412.04318",
        f"model: {r['n_layers']} blocks, d = {r['d_model']}, V = {r['vocab']}; pretrained "
        f"{r['pretrain_steps']} Adam steps (lr {r['pretrain_lr']:g}) on a random bigram source "
        f"(Dirichlet alpha = {r['alpha']:g})",
        f"hyperfit: {r['n_train']} sequences x {r['seq_len']} tokens, Adam lr {r['lr']:g} "
        f"(paper: 1e-6), batch {r['batch_size']}, {r['epochs']} epochs = {r['updates']} updates",
        f"evaluation: {r['n_val']} held-out sequences, context {r['context_len']}, "
        f"{r['seq_len'] - r['context_len']} greedy tokens, TTR over the last {r['ttr_window']}",
        "",
        f"{'model':<12} {'train loss':>10} {'val loss':>9} {'val entropy':>11} {'greedy TTR':>10}",
    ]
    for name, m in (("pretrained", p), ("hyperfitted", h)):
        lines.append(f"{name:<12} {m['train_loss']:>10.4f} {m['val_loss']:>9.4f} "
                     f"{m['val_entropy']:>11.4f} {m['ttr']:>10.4f}")
    o = r["overlap8"]
    lines += [
        "",
        "reported (the paper's claims, not checked):",
        f"  greedy TTR pretrained -> hyperfitted: {p['ttr']:.4f} -> {h['ttr']:.4f}; "
        f"pretrained top-p {r['top_p']:g} sampling: {r['sampled_ttr']:.4f}",
        f"  training 8-gram overlap of the continuations: pretrained {o['pretrained']:.4f}, "
        f"hyperfitted {o['hyperfitted']:.4f}, hyperfitted + citation blocker "
        f"(n = {r['blocker_n']}) {o['blocked']:.4f} (TTR {r['blocked_ttr']:.4f}, "
        f"{r['blocked_events']} all-blocked steps)",
        f"  top-1 agreement of two hyperfitted models (different shuffling): "
        f"{r['agreement']:.4f}",
        f"  hyperfitted vs pretrained on validation positions: same top-1 "
        f"{r['same_top1_as_pretrained']:.4f}, mean top-1 probability {r['top1_prob']:.4f}, "
        f"top-1 = target {r['top1_is_target']:.4f}",
        "",
        f"final training loss < 0.05: {yes[r['loss_ok']]}",
        f"validation entropy drops by >= 50%: {yes[r['entropy_ok']]} "
        f"({p['val_entropy']:.4f} -> {h['val_entropy']:.4f})",
        f"validation loss increases: {yes[r['val_loss_ok']]} "
        f"({p['val_loss']:.4f} -> {h['val_loss']:.4f})",
        f"total {r['seconds']:.1f} s",
    ]
    return "\n".join(lines)


def plot(result, path):
    """The hyperfitting run's validations: training loss (whole training set), validation loss,
    validation entropy and greedy TTR against the number of updates."""
    c = result["curve"]
    x = [e["update"] for e in c]
    panels = [("training loss (nats)", [e["train_loss"] for e in c]),
              ("validation loss (nats)", [e["val_loss"] for e in c]),
              ("validation entropy (nats)", [e["val_entropy"] for e in c]),
              (f"greedy TTR (last {result['ttr_window']} tokens)", [e["val_ttr"] for e in c])]
    return plots.sweep(path, x, panels, xlabel="updates (Adam, lr "
                       f"{result['lr']:g}, batch {result['batch_size']})",
                       title=f"Hyperfitting a tiny transformer on {result['n_train']} "
                             "sequences: validations during training")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if a check fails."""
    parser = argparse.ArgumentParser(
        prog="refseq demo hyperfitting",
        description="Hyperfit a tiny pretrained transformer: near-zero training loss, "
                    "collapsed entropy, higher validation loss; TTR and overlap reported.")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--pretrain-steps", type=positive_int, default=150)
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--lr", type=positive_float, default=3e-3, help="hyperfitting lr")
    parser.add_argument("--n-train", type=positive_int, default=16)
    plots.add_plot_option(parser, "the validation curves")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    result = run(seed=args.seed, pretrain_steps=args.pretrain_steps, epochs=args.epochs,
                 lr=args.lr, n_train=args.n_train)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
