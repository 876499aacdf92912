"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay.

Same update as ``torch.optim.SGD`` (PyTorch 2.x ``_single_tensor_sgd``), written per parameter:

.. math::

    d_t &= g_t + \\lambda \\theta_t                      && \\text{(weight\\_decay } \\lambda) \\\\
    b_t &= d_t \\ (t = 0), \\quad b_t = \\mu b_{t-1} + (1 - \\tau) d_t  && \\text{(momentum } \\mu,
    \\text{ dampening } \\tau) \\\\
    u_t &= d_t + \\mu b_t \\ \\text{(nesterov)}, \\quad u_t = b_t \\ \\text{(otherwise)},
    \\quad u_t = d_t \\ (\\mu = 0) \\\\
    \\theta_{t+1} &= \\theta_t - \\text{lr} \\, u_t

The first momentum step copies ``d_0`` into the buffer (no dampening), as PyTorch does.
"""

from __future__ import annotations

import numpy as np

from refseq._checks import check_flag, check_number
from refseq.train.base import Optimizer


class SGD(Optimizer):
    """``SGD(lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0)``.

    Parameters
    ----------
    lr : float
        Learning rate (``opt.lr`` may be changed between steps, e.g. by a schedule).
    momentum : float
        Heavy-ball coefficient ``mu`` in [0, 1); 0 disables the buffer.
    nesterov : bool
        Nesterov momentum (requires ``momentum > 0`` and ``dampening == 0``, as in PyTorch).
    weight_decay : float
        L2 coefficient ``lambda`` added to the gradient (coupled decay).
    dampening : float
        ``tau``: scales the gradient's contribution to the buffer after the first step.
    """

    hyper = ("lr", "momentum", "nesterov", "weight_decay", "dampening")

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0):
        nesterov = check_flag(nesterov, "nesterov")
        super().__init__(lr)
        momentum = check_number(momentum, "momentum", low=0, high=1, high_open=True)
        weight_decay = check_number(weight_decay, "weight_decay", low=0)
        dampening = check_number(dampening, "dampening", low=0, high=1)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening == 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay, self.dampening = float(weight_decay), float(dampening)

    def _update(self, name, p, g, st):
        d = g + self.weight_decay * p if self.weight_decay else g
        if self.momentum:
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = np.array(d, dtype=p.dtype, copy=True)
            else:
                buf = st["momentum_buffer"]
                buf *= self.momentum
                buf += (1.0 - self.dampening) * d
            buf = st["momentum_buffer"]
            d = d + self.momentum * buf if self.nesterov else buf
        p -= self.lr * d
