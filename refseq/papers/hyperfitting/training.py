"""The hyperfitting loop (arXiv 2412.04318, Sec. 3; official ``src/training.py``).

Hyperfitting fine-tunes *all* parameters of a pretrained causal LM on a small set of ``N``
sequences of ``T`` tokens until the training loss is near zero:

.. math:: L(\\theta; b) = \\frac{1}{|b| (T - 1)} \\sum_{i \\in b} \\sum_{t=1}^{T-1}
          -\\log p_\\theta(s^{(i)}_t \\mid s^{(i)}_{<t})

(labels are the inputs, shifted inside the loss), with a constant learning rate (no warm-up,
no schedule), shuffled batches with ``drop_last``, and a validation before training plus one
whenever ``(updates + 1) % validate_every == 0`` (the official trigger: with 250 it fires after
update 249, 499, ...). Two settings exist:

===================  ======  ====  ========================  ======
setting              epochs  lr    optimiser                 source
===================  ======  ====  ========================  ======
default              20      1e-6  Adam, no weight decay     paper
``official_script``  30      5e-6  AdamW, weight decay 0.01  code
===================  ======  ====  ========================  ======

Toy models need a far larger lr (1e-6 moves nothing in a few hundred updates); the demo states
its value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from refseq import _checks
from refseq.models.tiny_transformer import TinyParams, map_parameters
from refseq.papers.hyperfitting.data import epoch_batches
from refseq.papers.hyperfitting.metrics import mean_ttr, validate
from refseq.papers.hyperfitting.protocol import continue_greedy
from refseq.train import Adam, AdamW, clip_grad_norm
from refseq.train.lm import lm_loss_and_grad, param_dict

__all__ = ["PRESETS", "OPTIMIZERS", "LogEntry", "HyperfitLog", "evaluate", "hyperfit"]

OPTIMIZERS = ("adam", "adamw")
PRESETS = {
    "paper": dict(epochs=20, lr=1e-6, optimizer="adam", weight_decay=0.0),
    "official_script": dict(epochs=30, lr=5e-6, optimizer="adamw", weight_decay=0.01),
}


@dataclass
class LogEntry:
    """One validation. ``update``: updates applied; ``epoch``: the official fractional epoch
    ``epoch + step / batches_per_epoch`` (``step`` the 0-based batch index within the epoch; 0
    before training); ``train_loss``: mean batch loss of the updates since the previous entry
    (None before training); ``val_loss``, ``val_entropy``, ``val_ttr`` and ``continuations``
    (:class:`~refseq.papers.hyperfitting.protocol.Continuations`) are None without ``val`` /
    ``gen_val``; ``extra``: what ``eval_fn`` returned."""

    update: int
    epoch: float
    train_loss: float | None
    val_loss: float | None = None
    val_entropy: float | None = None
    val_ttr: float | None = None
    continuations: object = None
    extra: dict = field(default_factory=dict)


@dataclass
class HyperfitLog:
    """``params``: the trained parameters (new arrays; the input is untouched);
    ``entries``: the validations in order; ``train_losses``: the loss of every update
    ``(updates,)``; ``settings``: the resolved hyper-parameters; ``seconds``: wall time."""

    params: TinyParams
    entries: list
    train_losses: np.ndarray
    settings: dict
    seconds: float = 0.0


def evaluate(params, val=None, gen_val=None, *, context_len: int = 32, total_len=None,
             ttr_window: int | None = 96, val_batch_size: int = 8, eos_id=None,
             exclude_pad: bool = True) -> dict:
    """The official ``validate_model`` on a TinyParams model: ``val_loss`` and ``val_entropy``
    over ``val`` (mean of batch means), greedy ``continuations`` of ``gen_val`` from
    ``context_len`` tokens up to ``total_len`` (default: the rows' length) and their
    ``val_ttr`` (:func:`~refseq.papers.hyperfitting.metrics.mean_ttr`). Missing sets give None."""
    _checks.check_instance(params, TinyParams, "params")
    ttr_window = _checks.check_number(ttr_window, "ttr_window", integer=True, low=1,
                                      allow_none=True)
    val_batch_size = _checks.check_number(val_batch_size, "val_batch_size", integer=True, low=1)
    out = dict(val_loss=None, val_entropy=None, val_ttr=None, continuations=None)
    if val is not None:
        out["val_loss"], out["val_entropy"] = validate(params, val, val_batch_size)
    if gen_val is not None:
        total = np.shape(gen_val)[1] if total_len is None else total_len
        cont = continue_greedy(params, gen_val, context_len, total, eos_id=eos_id)
        out["continuations"] = cont
        out["val_ttr"] = mean_ttr(cont.tokens, cont.lengths, ttr_window, exclude_pad)
    return out


def hyperfit(params: TinyParams, train, *, preset: str | None = None, epochs: int = 20,
             lr: float = 1e-6, batch_size: int = 8, optimizer: str = "adam",
             betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
             shuffle: bool = True, drop_last: bool = True, grad_clip: float | None = None,
             dropout: float = 0.0, validate_every: int = 250, val=None, gen_val=None,
             context_len: int = 32, ttr_window: int | None = 96, val_batch_size: int = 8,
             eval_fn=None, seed=0) -> HyperfitLog:
    """Hyperfit a tiny transformer on ``train (N, T)`` (module docstring).

    Parameters
    ----------
    params : TinyParams — not modified; the result holds new arrays.
    train : (N, T) int, T >= 2.
    preset : None, "paper" or "official_script" — overrides ``epochs``, ``lr``, ``optimizer``
        and ``weight_decay`` with the table's row.
    epochs, lr, batch_size, betas, eps, weight_decay : the optimiser's settings.
    optimizer : "adam" (coupled L2, ``torch.optim.Adam``) or "adamw" (decoupled,
        ``torch.optim.AdamW``).
    shuffle, drop_last : DataLoader semantics; ``shuffle=False`` keeps the dataset order.
    grad_clip : global-norm clipping threshold or None (the paper and the code clip nothing).
    dropout : must be 0.0 — the tiny transformer has no dropout (hyperfitting needs none: the
        official ImageGPT script switches it off).
    validate_every : validation trigger ``(updates + 1) % validate_every == 0``.
    val, gen_val : (n, T) int or None — validation rows and generation prompts (see
        :func:`evaluate`; the continuation runs to ``gen_val``'s length).
    context_len, ttr_window, val_batch_size : passed to :func:`evaluate`.
    eval_fn : optional callable ``params -> dict``, stored in each entry's ``extra``.
    seed : int or Generator — the shuffling order (the only randomness).

    Returns
    -------
    HyperfitLog.
    """
    _checks.check_instance(params, TinyParams, "params")
    if preset is not None:
        overrides = PRESETS[_checks.check_choice(preset, "preset", tuple(PRESETS))]
        epochs, lr = overrides["epochs"], overrides["lr"]
        optimizer, weight_decay = overrides["optimizer"], overrides["weight_decay"]
    cfg = params.config
    train = _checks.int_array(train, "train", low=0, high=cfg.vocab_size, ndim=2, form="(N, T)")
    if train.shape[0] == 0 or train.shape[1] < 2:
        raise ValueError(f"train must have shape (N, T) with N >= 1, T >= 2, got {train.shape}")
    epochs = _checks.check_number(epochs, "epochs", integer=True, low=0)
    batch_size = _checks.check_number(batch_size, "batch_size", integer=True, low=1)
    validate_every = _checks.check_number(validate_every, "validate_every", integer=True, low=1)
    _checks.check_choice(optimizer, "optimizer", OPTIMIZERS)
    shuffle = _checks.check_flag(shuffle, "shuffle")
    drop_last = _checks.check_flag(drop_last, "drop_last")
    grad_clip = _checks.check_number(grad_clip, "grad_clip", low=0, low_open=True,
                                     allow_none=True)
    if _checks.check_number(dropout, "dropout", low=0, high=1, high_open=True) != 0.0:
        raise ValueError(f"dropout must be 0.0: the tiny transformer has no dropout, got "
                         f"{dropout}")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be a callable params -> dict or None, got "
                        f"{type(eval_fn).__name__}")
    if drop_last and len(train) < batch_size:
        raise ValueError(f"train has {len(train)} rows < batch_size = {batch_size}: with "
                         f"drop_last there would be no update")
    opt = (Adam if optimizer == "adam" else AdamW)(lr, betas, eps, weight_decay)
    rng = _checks.check_rng(seed, "seed")
    settings = dict(preset=preset, epochs=epochs, lr=opt.lr, batch_size=batch_size,
                    optimizer=optimizer, betas=opt.betas, eps=opt.eps,
                    weight_decay=opt.weight_decay, shuffle=shuffle, drop_last=drop_last,
                    grad_clip=grad_clip, validate_every=validate_every)

    params = map_parameters(np.copy, params)  # the caller's arrays stay untouched
    named = param_dict(params)  # name -> the same arrays, updated in place by opt.step

    def log_entry(update, epoch, train_loss):
        ev = evaluate(params, val, gen_val, context_len=context_len, ttr_window=ttr_window,
                      val_batch_size=val_batch_size)
        extra = dict(eval_fn(params)) if eval_fn is not None else {}
        return LogEntry(update, epoch, train_loss, ev["val_loss"], ev["val_entropy"],
                        ev["val_ttr"], ev["continuations"], extra)

    start = time.perf_counter()
    entries = [log_entry(0, 0.0, None)]  # before training
    losses, since = [], []
    updates = 0
    for epoch in range(epochs):
        batches = epoch_batches(len(train), batch_size, shuffle, drop_last, rng)
        for step, idx in enumerate(batches):
            loss, grads = lm_loss_and_grad(named, train[idx], cfg)  # mean over |b| (T - 1)
            if not np.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at update {updates}; lower lr")
            if grad_clip is not None:
                grads, _ = clip_grad_norm(grads, grad_clip)
            opt.step(named, grads)
            updates += 1
            losses.append(loss)
            since.append(loss)
            if (updates + 1) % validate_every == 0:  # the official trigger
                entries.append(log_entry(updates, epoch + step / len(batches),
                                         float(np.mean(since))))
                since = []
    return HyperfitLog(params, entries, np.array(losses), settings,
                       time.perf_counter() - start)
