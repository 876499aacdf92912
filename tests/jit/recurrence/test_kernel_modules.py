"""The jit recurrence's kernel modules by name: each decomposition of
:mod:`refseq.jit.recurrence.forward` (``_fwd_units``, ``_fwd_heads``, ``_fwd_serial``) and of
:mod:`refseq.jit.recurrence.backward` (``_bwd_heads``, ``_bwd_serial``) is the one the public
call runs under its plan, and the result passes the reference's derived tolerance
(:meth:`refseq.testing.recurrence.Case.check`)."""

from __future__ import annotations

import numpy as np
import pytest

import refseq.jit.recurrence as J
import refseq.jit.recurrence.backward as KB
import refseq.jit.recurrence.forward as KF
from refseq.testing.recurrence import CELL_NAMES, make_case

KERNELS = ((KF, "_fwd_units"), (KF, "_fwd_heads"), (KF, "_fwd_serial"), (KB, "_bwd_heads"),
           (KB, "_bwd_serial"))


@pytest.mark.parametrize("mode, expected", [
    ("units", ["_fwd_units", "_bwd_serial"]),  # the backward has no units plan: gemm
    ("heads", ["_fwd_heads", "_bwd_heads"]),
    ("gemm", ["_fwd_serial", "_bwd_serial"]),
])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_each_kernel_function_runs_its_plan_and_matches_the_reference(mode, expected, cell,
                                                                      monkeypatch):
    calls = []
    for module, name in KERNELS:
        real = getattr(module, name)
        monkeypatch.setattr(J, name, lambda *a, _r=real, _n=name: (calls.append(_n), _r(*a))[1])
    real_plan = J.plan
    monkeypatch.setattr(J, "UNITS_MIN_MACS", 0)
    monkeypatch.setattr(J, "plan", lambda B, N, D, G_r, modes=("units", "heads", "gemm"):
                        real_plan(B, N, D, G_r, threads=4,
                                  modes=tuple(m for m in modes if m in (mode, "gemm"))))
    case = make_case(np.random.default_rng(CELL_NAMES.index(cell)), cell, B=4, T=7, N=2, D=5)
    case.check(J, np.float64)
    # the check runs the forward again (its aliasing checks); only these kernels ever run
    assert calls[:2] == expected and set(calls) == set(expected)
