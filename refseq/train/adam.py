"""Adam (Kingma & Ba, arXiv 1412.6980, Algorithm 1) and AdamW (Loshchilov & Hutter, arXiv
1711.05101, Algorithm 2), with bias correction, in PyTorch's formulation.

With step count ``s = t + 1`` (1 at the first update):

.. math::

    g &\\leftarrow g + \\lambda \\theta               && \\text{(Adam only: coupled L2 decay)} \\\\
    \\theta &\\leftarrow \\theta (1 - \\text{lr}\\,\\lambda)  && \\text{(AdamW only)} \\\\
    m &= \\beta_1 m + (1 - \\beta_1) g, \\qquad v = \\beta_2 v + (1 - \\beta_2) g^2 \\\\
    \\theta &\\leftarrow \\theta - \\frac{\\text{lr}}{1 - \\beta_1^s}
        \\frac{m}{\\sqrt{v} / \\sqrt{1 - \\beta_2^s} + \\epsilon}

``epsilon`` is added after the bias-corrected square root (``torch.optim.Adam``; the paper's
``sqrt(v_hat) + eps`` is the same thing). ``m`` and ``v`` start at zero and are kept per name.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_number
from refseq.train.base import Optimizer


def check_betas(betas, name: str = "betas") -> tuple[float, float]:
    """``betas`` as a pair of floats in [0, 1), or raise naming ``name``."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{name} must be a pair (beta1, beta2) of numbers in [0, 1), got "
                        f"{betas!r} ({type(betas).__name__})")
    return tuple(check_number(b, f"{name}[{i}]", low=0, high=1, high_open=True)
                 for i, b in enumerate(betas))


class Adam(Optimizer):
    """``Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)``; ``weight_decay`` is
    coupled L2 (added to the gradient), as in ``torch.optim.Adam``. Use :class:`AdamW` for
    decoupled decay."""

    hyper = ("lr", "betas", "eps", "weight_decay")
    decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr)
        self.betas = check_betas(betas)
        self.eps = check_number(eps, "eps", low=0, low_open=True)
        self.weight_decay = check_number(weight_decay, "weight_decay", low=0)

    def _update(self, name, p, g, st):
        b1, b2 = self.betas
        if "m" not in st:
            st["m"], st["v"], st["step"] = np.zeros_like(p), np.zeros_like(p), 0
        st["step"] += 1
        s = st["step"]
        if self.weight_decay:
            if self.decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m, v = st["m"], st["v"]
        m *= b1
        m += (1.0 - b1) * g  # first moment
        v *= b2
        v += (1.0 - b2) * (g * g)  # second moment
        step_size = self.lr / (1.0 - b1**s)
        denom = np.sqrt(v) / np.sqrt(1.0 - b2**s) + self.eps
        p -= step_size * (m / denom)


class AdamW(Adam):
    """``AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)``: Adam with decoupled
    weight decay ``theta <- theta (1 - lr * weight_decay)`` applied before the moment update, as in
    ``torch.optim.AdamW`` (whose default ``weight_decay`` is 0.01)."""

    decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(lr, betas, eps, weight_decay)
