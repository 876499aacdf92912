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
from refseq.papers.rnn_sparsity.graphs import LAYOUTS, layer_index, orient_dag, thesis_graph
from refseq.papers.rnn_sparsity.masked import MODES
from refseq.papers.rnn_sparsity.models import ArbitraryStructureRNN, ReberClassifier
from refseq.papers.rnn_sparsity.pruning import GROUPS, apply_masks, magnitude_masks
from refseq.train import Adam, clip_grad_norm


def _check_data(data, name: str, vocab: int, vocab_name: str):
    """``data = (tokens (B, T), lengths (B,), labels (B,))`` with tokens in ``[0, vocab)``,
    lengths in ``[1, T]`` and labels in ``{0, 1}``; messages name ``name``."""
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise TypeError(f"{name} must be a triple (tokens, lengths, labels), got "
                        f"{type(data).__name__}" + (f" of length {len(data)}"
                                                     if isinstance(data, (tuple, list)) else ""))
    tokens = _checks.int_array(data[0], f"{name}[0] (tokens)", low=0, ndim=2, form="(B, T)")
    if tokens.size and tokens.max() >= vocab:
        raise ValueError(f"{name}[0] (tokens) must lie in [0, {vocab}) ({vocab_name}), "
                         f"found {tokens.max()}")
    B, T = tokens.shape
    lengths = _checks.int_array(data[1], f"{name}[1] (lengths)", low=1, high=T + 1, ndim=1,
                                form="(B,)")
    labels = _checks.int_array(data[2], f"{name}[2] (labels)", low=0, high=2, ndim=1,
                               form="(B,)")
    for part, arr in ((f"{name}[1] (lengths)", lengths), (f"{name}[2] (labels)", labels)):
        _checks.check_shape(arr, (B,), part, "(B,) with B = len(tokens)")
    if B == 0:
        raise ValueError(f"{name} must hold at least one sequence")
    return tokens, lengths, labels


def _check_classifier(model, name: str = "model") -> ReberClassifier:
    return _checks.check_instance(model, ReberClassifier, name)


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
    data = _check_data(data, "data", len(_check_classifier(model).embedding),
                       "the model's vocabulary size")
    labels = data[2]
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
    vocab = len(_check_classifier(model).embedding)
    train = _check_data(train, "train", vocab, "the model's vocabulary size")
    test = None if test is None else _check_data(test, "test", vocab,
                                                 "the model's vocabulary size")
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


def _check_base_params(model, base_params) -> dict[str, np.ndarray]:
    """A copy of ``base_params``, which must hold every parameter of ``model`` in its shape."""
    _checks.check_instance(base_params, dict, "base_params", "dict of arrays (model.params())")
    own = model.params()
    if base_params.keys() != own.keys():
        raise ValueError(f"base_params must have the keys of model.params(); missing "
                         f"{sorted(own.keys() - base_params.keys())}, unexpected "
                         f"{sorted(base_params.keys() - own.keys())}")
    out = {}
    for k, v in base_params.items():
        out[k] = _checks.float_array(v, f"base_params[{k!r}]").copy()
        _checks.check_shape(out[k], own[k].shape, f"base_params[{k!r}]", f"of model {k}")
    return out


def prune_and_retrain(model, base_params, train, test, percents=range(10, 101, 10),
                      groups=("both", "i2h", "h2h"), retrain_epochs: int = 10, lr: float = 1e-3,
                      batch_size: int = 32, clip: float | None = 5.0, scope: str = "global",
                      seed: int = 0) -> list[dict]:
    """The thesis' pruning table: rows ``(mode, group, percent, epoch, sparsity, train_loss,
    train_acc, test_loss, test_acc)``; epoch 0 is the pruned model before retraining. The model is
    left holding the last setting's parameters; the base parameters are never modified."""
    retrain_epochs = _checks.check_number(retrain_epochs, "retrain_epochs", integer=True, low=0)
    seed = _checks.check_number(seed, "seed", integer=True, low=0)
    vocab = len(_check_classifier(model).embedding)
    train = _check_data(train, "train", vocab, "the model's vocabulary size")
    test = _check_data(test, "test", vocab, "the model's vocabulary size")
    if not hasattr(percents, "__iter__") or isinstance(percents, str):
        raise TypeError(f"percents must be a sequence of numbers, got {type(percents).__name__}")
    percents = [_checks.check_number(p, f"percents[{i}]", low=0, high=100)
                for i, p in enumerate(percents)]
    if not isinstance(groups, (tuple, list)):
        raise TypeError(f"groups must be a tuple of group names {tuple(GROUPS)}, got "
                        f"{type(groups).__name__}")
    for i, group in enumerate(groups):
        _checks.check_choice(group, f"groups[{i}]", tuple(GROUPS))
    base_params = _check_base_params(model, base_params)
    base_masks = {k: m.copy() for k, m in model.masks().items()}
    rows = []
    for group in groups:
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
    base_acc = _checks.check_number(base_acc, "base_acc", low=0, high=1)
    tol = _checks.check_number(tol, "tol", low=0)
    if not isinstance(table, (list, tuple)) or not all(isinstance(r, dict) for r in table):
        raise TypeError(f"table must be a list of row dicts, got {type(table).__name__}")
    for i, r in enumerate(table):
        if "epoch" not in r or "test_acc" not in r:
            raise ValueError(f"table[{i}] must have the keys 'epoch' and 'test_acc', "
                             f"got {sorted(r)}")
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
    _checks.check_choice(generator, "generator", ("ba", "ws"))
    _checks.check_choice(mode, "mode", tuple(MODES))
    _checks.check_choice(mask_layout, "mask_layout", LAYOUTS)
    n_graphs = _checks.check_number(n_graphs, "n_graphs", integer=True, low=1)
    vocab_size = _checks.check_number(vocab_size, "vocab_size", integer=True, low=1)
    epochs = _checks.check_number(epochs, "epochs", integer=True, low=0)
    train = _check_data(train, "train", vocab_size, "vocab_size")
    test = _check_data(test, "test", vocab_size, "vocab_size")
    rng = np.random.default_rng(_checks.check_number(seed, "seed", integer=True, low=0))
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
