"""Training, prune-and-retrain and random-structure protocols (Darji, arXiv 2407.20601, Ch. 5;
thesis code ``experiments/pruning.py``, ``experiments/arbitrary_structure.py``).

Training (the thesis' loop): Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-8), mean cross-entropy,
global gradient-norm clipping at 5, a fresh shuffle per epoch. Batches are right-padded to their
own longest string. Masked weights get zero gradient, so Adam's moments for them stay exactly 0
and the weights never move.

Prune-and-retrain: for each group and percent, reload the base parameters, restore the base masks
(all True for :class:`PruneRNN`), compute magnitude masks with one pooled threshold, evaluate
(epoch 0), then retrain ``retrain_epochs`` epochs with a *fresh* Adam and the masks fixed.
"""

from __future__ import annotations

import numpy as np

from refseq import _checks
from refseq.papers.rnn_sparsity.graph_properties import graph_properties, structure_properties
from refseq.papers.rnn_sparsity.graphs import layer_index, orient_dag, thesis_graph
from refseq.papers.rnn_sparsity.models import ArbitraryStructureRNN, ReberClassifier
from refseq.papers.rnn_sparsity.pruning import GROUPS, apply_masks, magnitude_masks
from refseq.train import Adam, clip_grad_norm


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = np.arange(n) if rng is None else rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _take(data, idx):
    tokens, lengths, labels = data
    T = int(lengths[idx].max())
    return tokens[idx, :T], lengths[idx], labels[idx]  # trimmed to the batch's longest


def evaluate(model: ReberClassifier, data, batch_size: int = 512) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``data = (tokens, lengths, labels)``."""
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    tokens, lengths, labels = data
    total_loss, correct = 0.0, 0
    for idx in _batches(len(labels), batch_size, None):
        tok, L, y = _take(data, idx)
        logits = model.forward(tok, L)  # (b, 2)
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        total_loss -= float(logp[np.arange(len(y)), y].sum())
        correct += int((logits.argmax(axis=1) == y).sum())
    return total_loss / len(labels), correct / len(labels)


def train_epoch(model: ReberClassifier, data, optimizer, rng: np.random.Generator,
                batch_size: int = 32, clip: float | None = 5.0) -> tuple[float, float]:
    """One shuffled epoch; returns the mean training loss and accuracy seen during it."""
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    clip = _checks.check_number(clip, "clip", low=0, low_open=True, allow_inf=True,
                                allow_none=True)
    params = model.params()
    total_loss, correct, n = 0.0, 0, 0
    for idx in _batches(len(data[2]), batch_size, rng):
        tok, L, y = _take(data, idx)
        loss, grads, logits = model.loss_and_grad(tok, L, y)
        if clip is not None:
            grads, _ = clip_grad_norm(grads, clip)
        optimizer.step(params, grads)
        total_loss += loss * len(y)
        correct += int((logits.argmax(axis=1) == y).sum())
        n += len(y)
    return total_loss / n, correct / n


def train_classifier(model, train, test=None, epochs: int = 1, lr: float = 1e-3,
                     batch_size: int = 32, clip: float | None = 5.0,
                     rng: np.random.Generator | None = None) -> list[dict]:
    """Train with a fresh Adam; one row per epoch: ``epoch`` (1-based), ``train_loss``,
    ``train_acc`` and, with ``test``, ``test_loss``, ``test_acc``."""
    epochs = _checks.check_number(epochs, "epochs", integer=True, low=0)
    rng = np.random.default_rng(0) if rng is None else _checks.check_rng(rng)
    opt = Adam(lr=lr)
    rows = []
    for e in range(1, epochs + 1):
        tl, ta = train_epoch(model, train, opt, rng, batch_size, clip)
        row = {"epoch": e, "train_loss": tl, "train_acc": ta}
        if test is not None:
            row["test_loss"], row["test_acc"] = evaluate(model, test)
        rows.append(row)
    return rows


def load_params(model, params: dict[str, np.ndarray]) -> None:
    """Copy ``params`` into the model's arrays in place."""
    own = model.params()
    for k, v in params.items():
        own[k][...] = v


def prune_and_retrain(model, base_params, train, test, percents=range(10, 101, 10),
                      groups=("both", "i2h", "h2h"), retrain_epochs: int = 10, lr: float = 1e-3,
                      batch_size: int = 32, clip: float | None = 5.0, scope: str = "global",
                      seed: int = 0) -> list[dict]:
    """The thesis' pruning table: rows ``(mode, group, percent, epoch, sparsity, train_loss,
    train_acc, test_loss, test_acc)``; epoch 0 is the pruned model before retraining. The model is
    left holding the last setting's parameters; the base parameters are never modified."""
    retrain_epochs = _checks.check_number(retrain_epochs, "retrain_epochs", integer=True, low=0)
    seed = _checks.check_number(seed, "seed", integer=True, low=0)
    base_params = {k: np.array(v, copy=True) for k, v in base_params.items()}
    base_masks = {k: m.copy() for k, m in model.masks().items()}
    rows = []
    for group in groups:
        if group not in GROUPS:
            raise ValueError(f"group must be one of {tuple(GROUPS)}, got {group!r}")
        i2h, h2h = GROUPS[group]
        for p in percents:
            load_params(model, base_params)
            apply_masks(model, base_masks)
            masks = magnitude_masks(model, p, i2h, h2h, scope)
            apply_masks(model, {k: m & base_masks[k] for k, m in masks.items()})
            removed = 1 - sum(int(m.sum()) for m in model.masks().values()) / sum(
                m.size for m in model.masks().values())
            common = {"mode": model.rnn.mode, "group": group, "percent": p, "sparsity": removed}
            train_loss, train_acc = evaluate(model, train)
            test_loss, test_acc = evaluate(model, test)
            rows.append({**common, "epoch": 0, "train_loss": train_loss, "train_acc": train_acc,
                         "test_loss": test_loss, "test_acc": test_acc})
            history = train_classifier(model, train, test, retrain_epochs, lr, batch_size, clip,
                                       np.random.default_rng([seed, int(p)]))
            rows.extend({**common, **r} for r in history)
    load_params(model, base_params)
    apply_masks(model, base_masks)
    return rows


def epochs_to_regain(table, base_acc: float, tol: float) -> int | None:
    """First epoch ``e >= 1`` whose ``test_acc >= base_acc - tol`` in the rows of *one*
    (mode, group, percent) setting; None if never."""
    keys = {(r.get("mode"), r.get("group"), r.get("percent")) for r in table}
    if len(keys) > 1:
        raise ValueError(f"table must hold one (mode, group, percent) setting, got {len(keys)}")
    for r in sorted(table, key=lambda r: r["epoch"]):
        if r["epoch"] >= 1 and r["test_acc"] >= base_acc - tol:
            return int(r["epoch"])
    return None


def random_structure_experiment(generator: str, mode: str, n_graphs: int, train, test,
                                vocab_size: int, epochs: int = 15, batch_size: int = 128,
                                lr: float = 1e-3, clip: float | None = 5.0,
                                mask_layout: str = "tile", seed: int = 0) -> list[dict]:
    """One row per random graph: graph and structure properties (the 23 features),
    ``test_acc`` and ``test_loss`` after training an :class:`ArbitraryStructureRNN` classifier
    (embedding width ``|L_0|``). Thesis: ``n_graphs = 100``, ``epochs = 15``."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_graphs):
        n, edges = thesis_graph(generator, rng)
        dag = orient_dag(n, edges)
        _, layers = layer_index(n, dag)
        rnn = ArbitraryStructureRNN(len(layers[0]), layers, dag, mode, rng, mask_layout)
        model = ReberClassifier(vocab_size, len(layers[0]), rnn, rng)
        train_classifier(model, train, None, epochs, lr, batch_size, clip, rng)
        test_loss, test_acc = evaluate(model, test)
        rows.append({"graph": g, "generator": generator, "mode": mode,
                     **structure_properties(layers), **graph_properties(n, edges),
                     "test_loss": test_loss, "test_acc": test_acc})
    return rows
