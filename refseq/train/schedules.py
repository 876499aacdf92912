"""Learning-rate schedules: callables ``schedule(t) -> lr`` with ``t`` the number of updates
already applied (0 at the first update, as the training loop and the gradient-noise counter use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from refseq._checks import check_number


@dataclass(frozen=True)
class Constant:
    """``lr_t = lr`` for every ``t``."""

    lr: float

    def __post_init__(self):
        check_number(self.lr, "lr", low=0)

    def __call__(self, t: int) -> float:
        return float(self.lr)


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up then cosine decay to a floor (the nanoGPT / GPT-3 recipe).

    .. math::

        lr_t = \\begin{cases}
            lr \\cdot (t + 1) / W & t < W \\\\
            lr_{min} + \\tfrac12 (lr - lr_{min}) (1 + \\cos(\\pi p)),
              \\ p = \\frac{t - W}{\\max(1, S - W)} & W \\le t < S \\\\
            lr_{min} & t \\ge S
        \\end{cases}

    with ``W = warmup_steps`` and ``S = total_steps``. The warm-up's first value is ``lr / W``
    (never 0, so the first update moves the parameters); it reaches ``lr`` at ``t = W - 1`` and the
    cosine starts at ``lr`` at ``t = W``.
    """

    lr: float
    warmup_steps: int
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self):
        check_number(self.lr, "lr", low=0)
        check_number(self.min_lr, "min_lr", low=0)
        check_number(self.warmup_steps, "warmup_steps", integer=True, low=0)
        check_number(self.total_steps, "total_steps", integer=True, low=0)
        if self.warmup_steps < 0 or self.total_steps < self.warmup_steps:
            raise ValueError("need 0 <= warmup_steps <= total_steps, got "
                             f"{self.warmup_steps}, {self.total_steps}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got {self.min_lr}, {self.lr}")

    def __call__(self, t: int) -> float:
        t = check_number(t, "t", integer=True, low=0)
        if t < self.warmup_steps:
            return self.lr * (t + 1) / self.warmup_steps
        if t >= self.total_steps:
            return float(self.min_lr)
        p = (t - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * p))


def constant(lr: float) -> Constant:
    """Constant schedule (``Constant(lr)``)."""
    return Constant(lr)


def warmup_cosine(lr: float, warmup_steps: int, total_steps: int,
                  min_lr: float = 0.0) -> WarmupCosine:
    """Linear warm-up + cosine decay to ``min_lr`` (``WarmupCosine(...)``)."""
    return WarmupCosine(lr, warmup_steps, total_steps, min_lr)
