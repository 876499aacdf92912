"""Reduce the learning rate when a monitored metric stops improving.

Same rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (PyTorch 2.x), for one learning
rate. After each evaluation ``step(metric)``:

.. code-block:: text

    better(a, best) =  a < best * (1 - threshold)   mode "min", threshold_mode "rel"
                       a < best - threshold         mode "min", threshold_mode "abs"
                       a > best * (1 + threshold)   mode "max", threshold_mode "rel"
                       a > best + threshold         mode "max", threshold_mode "abs"
    if better(metric, best):  best = metric; num_bad = 0      else: num_bad += 1
    if cooldown_counter > 0:  cooldown_counter -= 1; num_bad = 0   (bad epochs ignored)
    if num_bad > patience:    new = max(lr * factor, min_lr)
                              lr = new if lr - new > eps        (tiny changes are skipped)
                              cooldown_counter = cooldown; num_bad = 0

``best`` starts at ``+inf`` (``-inf`` for "max"), so the first finite metric always improves.
A NaN metric is never better (it counts as a bad epoch), as in torch. The learning rate read
before a reduction is the optimiser's current ``lr``, so changes made elsewhere are respected.

Used by :func:`refseq.papers.recoding.training.train_lm` (as in the official
recoding trainer: SGD lr 20 divided by 4 on validation plateaus, ``factor=0.25``).
"""

from __future__ import annotations

import math

import numpy as np

from refseq._checks import check_choice, check_number

MODES = ("min", "max")
THRESHOLD_MODES = ("rel", "abs")


class ReduceOnPlateau:
    """``ReduceOnPlateau(optimizer=None, *, lr=None, mode="min", factor=0.1, patience=10,
    threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8)``.

    Parameters
    ----------
    optimizer : object with a float attribute ``lr`` (any :mod:`refseq.train` optimiser), or
        None. When given, :meth:`step` writes the new rate to ``optimizer.lr``.
    lr : initial rate when no optimiser is given (otherwise it is ``optimizer.lr``).
    mode : "min" (the metric should fall, e.g. validation perplexity) or "max".
    factor : ``new_lr = lr * factor``, in [0, 1).
    patience : number of bad evaluations tolerated before a reduction (int >= 0); the
        reduction happens at the ``patience + 1``-th consecutive bad one.
    threshold, threshold_mode : what counts as an improvement (see the module docstring).
    cooldown : evaluations after a reduction during which bad ones are not counted.
    min_lr : floor of the rate. eps : reductions smaller than this are skipped.

    Attributes
    ----------
    lr, best, num_bad_epochs, cooldown_counter, last_epoch (number of :meth:`step` calls).

    Raises
    ------
    ValueError
        For an unknown mode, ``factor`` outside [0, 1), negative ``patience``/``cooldown``/
        ``threshold``/``min_lr``/``eps``, a non-int ``patience``/``cooldown``, or an invalid
        initial rate.
    """

    hyper = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr",
             "eps")

    def __init__(self, optimizer=None, *, lr=None, mode="min", factor=0.1, patience=10,
                 threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        check_choice(mode, "mode", MODES)
        check_choice(threshold_mode, "threshold_mode", THRESHOLD_MODES)
        factor = check_number(factor, "factor", low=0, high=1, high_open=True)
        patience = check_number(patience, "patience", integer=True, low=0)
        cooldown = check_number(cooldown, "cooldown", integer=True, low=0)
        threshold = check_number(threshold, "threshold", low=0)
        min_lr, eps = check_number(min_lr, "min_lr", low=0), check_number(eps, "eps", low=0)
        if (optimizer is None) == (lr is None):
            raise ValueError("pass exactly one of optimizer and lr")
        if optimizer is not None and not hasattr(optimizer, "lr"):
            raise TypeError(f"optimizer must have an lr attribute (a refseq.train optimiser), "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        start = check_number(optimizer.lr if optimizer is not None else lr,
                             "optimizer.lr" if optimizer is not None else "lr", low=0)
        self._lr = start
        self.mode, self.factor, self.patience = mode, float(factor), patience
        self.threshold, self.threshold_mode = float(threshold), threshold_mode
        self.cooldown, self.min_lr, self.eps = cooldown, float(min_lr), float(eps)
        self.last_epoch = 0
        self.reset()

    def reset(self) -> None:
        """Forget the best value and the counters (torch's ``_reset``); the rate is kept."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.lr) if self.optimizer is not None else self._lr

    def _set_lr(self, value: float) -> None:
        self._lr = value
        if self.optimizer is not None:
            self.optimizer.lr = value

    def is_better(self, a: float, best: float) -> bool:
        """Whether ``a`` improves on ``best`` under ``mode`` and ``threshold_mode``."""
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                        else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel"
                    else best + self.threshold)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metric) -> float:
        """Record one evaluation of the monitored metric; returns the (possibly reduced) rate."""
        if isinstance(metric, (str, bytes, bool, np.bool_)) or metric is None:
            raise TypeError(f"metric must be a real number (NaN counts as no improvement), got "
                            f"{metric!r} ({type(metric).__name__})")
        current = float(metric)  # a 0-d array is fine; a larger one raises TypeError
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = self.lr
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self._set_lr(new)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.lr

    def state_dict(self) -> dict:
        """Hyper-parameters, counters, ``best`` and the current rate (resume bit for bit)."""
        return {"hyper": {k: getattr(self, k) for k in self.hyper}, "lr": self.lr,
                "best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter, "last_epoch": self.last_epoch}

    def load_state_dict(self, sd: dict) -> None:
        """Restore what :meth:`state_dict` returned (also sets ``optimizer.lr``)."""
        for k, v in sd["hyper"].items():
            setattr(self, k, v)
        self._set_lr(float(sd["lr"]))
        self.best, self.num_bad_epochs = float(sd["best"]), int(sd["num_bad_epochs"])
        self.cooldown_counter, self.last_epoch = int(sd["cooldown_counter"]), int(sd["last_epoch"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyper)
        return f"{type(self).__name__}(lr={self.lr!r}, {args})"


def reduce_on_plateau(optimizer=None, **kwargs) -> ReduceOnPlateau:
    """``ReduceOnPlateau(optimizer, **kwargs)``."""
    return ReduceOnPlateau(optimizer, **kwargs)
