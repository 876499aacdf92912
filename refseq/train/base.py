"""The optimiser contract shared by :class:`~refseq.train.sgd.SGD` and :mod:`refseq.train.adam`.

``opt.step(params, grads)`` updates every array of ``params`` (a dict name -> ndarray; convert other
containers with :func:`refseq.train.params.as_param_dict`) **in place** and returns ``params``;
``grads`` has the same names and shapes and is never modified. Per-parameter state (momentum
buffers, Adam moments) is kept in ``opt.state[name]`` and created lazily on the first step that
sees ``name``. ``opt.lr`` is a plain attribute: a schedule (or the training loop) sets it before a
step. ``state_dict()`` / ``load_state_dict()`` copy the hyper-parameters, the step counter and the
per-name state, so a run can be resumed bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np

from refseq._checks import check_number, float_array
from refseq.train.params import check_same_structure


class Optimizer:
    """Base class: validation, in-place iteration in sorted-name order, state (de)serialisation."""

    hyper: tuple[str, ...] = ("lr",)

    def __init__(self, lr: float):
        self.lr = check_number(lr, "lr", low=0)  # 0 is allowed (a schedule's warm-up start)
        self.t = 0  # number of updates already applied
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def step(self, params: Mapping, grads: Mapping):
        """Apply one update to every parameter in place; return ``params``."""
        if not isinstance(params, Mapping) or not isinstance(grads, Mapping):
            raise TypeError("params and grads must be dicts name -> ndarray (see as_param_dict)")
        check_same_structure(params, grads)
        for name in sorted(params):
            p = params[name]
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                raise TypeError(f"params[{name!r}] must be a float ndarray, got "
                                f"{type(p).__name__} {getattr(p, 'dtype', '')}")
            g = float_array(grads[name], f"grads[{name!r}]", dtype=p.dtype)
            self._update(name, p, g, self.state.setdefault(name, {}))
        self.t += 1
        return params

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, st: dict) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Deep copy of hyper-parameters, ``t`` and per-name state."""
        return {"hyper": {k: copy.deepcopy(getattr(self, k)) for k in self.hyper},
                "t": self.t, "state": copy.deepcopy(self.state)}

    def load_state_dict(self, sd: dict) -> None:
        """Restore what :meth:`state_dict` returned (deep-copied, so the source stays unchanged)."""
        for k, v in sd["hyper"].items():
            setattr(self, k, copy.deepcopy(v))
        self.t = int(sd["t"])
        self.state = copy.deepcopy(sd["state"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyper)
        return f"{type(self).__name__}({args})"
