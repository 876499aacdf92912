"""Flag-complete cases and their oracle for implementations of the RNN recurrence (needs
hypothesis).

The registry harness (:mod:`refseq.testing.harness`) checks ``flashrnn_forward`` and
``flashrnn_backward`` one at a time, on the registry's inputs and with default options. A
:class:`Case` adds what a registry entry cannot express: the options (forward clip, gradient cut
and clip, the sLSTM gate clamp), a carried initial state, an optional gradient on the last
state, and the backward run on the implementation's *own* forward cache, so that a forward error
the tolerance allows propagates as it would in use. Any module with the two functions can be
checked (a tier module, the NumPy mirror of a GPU decomposition, an object binding launch
keywords)::

    from refseq.testing.recurrence import make_case
    case = make_case(np.random.default_rng(0), "gru", B=2, T=9, N=3, D=5, gclip=0.5)
    case.check(my_module, np.float32)

The bound is the derived tolerance (docs/design.md, "The tolerance rule") with the largest error
among these samples of what a float32 implementation may return (:meth:`Case.check` lists them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from refseq.recurrence import CELLS
from refseq.recurrence import engine as F
from refseq.testing._close import assert_close, perturbed_runs, rounded_runs
from refseq.testing.harness import in_float32_units

__all__ = ["CELL_NAMES", "Case", "FusedMirror", "cases", "make_case"]

CELL_NAMES = tuple(CELLS)

PERTURBED_SAMPLES = 6
"""Backward-error samples per check (:func:`refseq.testing.perturbed_runs`)."""

ROUNDED_SAMPLES = 4
"""Elementary-function rounding samples per check (:func:`refseq.testing.rounded_runs`)."""


class FusedMirror:
    """The reference's cells with the recurrent sums in the GPU decomposition's order and with
    fused multiply-adds (BLAS and GPUs fuse them): a float32 formulation of the reference whose
    rounding differs from ``einsum``'s (:mod:`refseq.cuda.recurrence.mirror`, ``fma=True``)."""

    @staticmethod
    def flashrnn_forward(*args, **kw):
        from refseq.cuda.recurrence import mirror

        return mirror.flashrnn_forward(*args, fma=True, **kw)

    @staticmethod
    def flashrnn_backward(*args, **kw):
        from refseq.cuda.recurrence import mirror

        return mirror.backward_blocked(*args, fma=True, **kw)


@dataclass
class Case:
    """float64 inputs of one forward + backward call (cast per tested dtype) and the options.

    ``states0``/``d_last`` may be None; ``fclip``, ``cut``, ``gclip`` and ``clamp`` are
    ``forward_clipval``, ``gradient_recurrent_cut``, ``gradient_recurrent_clipval`` and
    ``clamp_gates_le_one`` (sLSTM only).
    """

    cell: str
    Wx: np.ndarray
    R: np.ndarray
    b: np.ndarray
    states0: np.ndarray | None
    d_all: np.ndarray
    d_last: np.ndarray | None
    fclip: float | None = None
    cut: bool = False
    gclip: float | None = None
    clamp: bool = False

    def cast(self, dtype):
        """``(Wx, R, b, states0, d_all, d_last)`` in ``dtype`` (None stays None)."""
        c = lambda x: None if x is None else x.astype(dtype)  # noqa: E731
        return c(self.Wx), c(self.R), c(self.b), c(self.states0), c(self.d_all), c(self.d_last)

    def fw_kw(self):
        kw = {"cell": self.cell, "forward_clipval": self.fclip, "return_cache": True}
        return kw | ({"clamp_gates_le_one": True} if self.clamp else {})

    def bw_kw(self):
        kw = {"cell": self.cell, "gradient_recurrent_cut": self.cut,
              "gradient_recurrent_clipval": self.gclip}
        return kw | ({"clamp_gates_le_one": True} if self.clamp else {})

    def run(self, module, dtype, backward=None):
        """``(forward outputs, backward outputs)`` of ``module`` on the ``dtype`` inputs
        (``backward``: another module's backward on this forward's cache). The forward outputs
        are ``(states_all, last_states, cache["states"], cache["gates"])``."""
        return self.run_on(module, *self.cast(dtype), backward=backward)

    def run_on(self, module, Wx, R, b, s0, d_all, d_last, backward=None):
        """:meth:`run` on explicit inputs."""
        states_all, last, cache = module.flashrnn_forward(Wx, R, b, s0, **self.fw_kw())
        grads = (backward or module).flashrnn_backward(d_all, d_last, R, b, cache, **self.bw_kw())
        return (states_all, last, cache["states"], cache["gates"]), grads

    def check(self, module, dtype):
        """Check ``module``'s forward and backward at ``dtype`` against the float64 reference.

        Exact checks first: every output has ``dtype``; ``last_states`` and the cached states
        repeat ``states_all`` and ``states0`` (:func:`check_aliases`). Then each result leaf
        must pass :func:`refseq.testing.assert_close` with the largest error among:

        * the reference itself in float32 and its fused, reassociated twin
          (:class:`FusedMirror`), since the kernels' sums are fused and reassociated;
        * for the backward also both run on the *module's* forward cache (the inputs its
          backward received: a state one ulp from the reference's moves a saturated
          ``1 - h**2`` by thousands of its own ulps);
        * for a float64 result, the float64 error of the twin, and of the backward on the
          module's cache, in float32 units (:func:`refseq.testing.harness.in_float32_units`;
          float64 BLAS differs from ``einsum`` by a few ulps even where float32 is exact);
        * backward-error samples (:func:`refseq.testing.perturbed_runs`) and elementary-function
          rounding samples (:func:`refseq.testing.rounded_runs`) of the reference on the
          tested dtype's inputs: a tiny problem's float32 run can be luckily exact, and a
          saturated ``tanh`` or sigmoid one ulp from NumPy's (the kernels have their own)
          makes a float64 error that no float32 run shows.

        ``last_states`` and ``cache["states"]`` repeat ``states_all`` (checked exactly), so the
        forward compares ``states_all`` and the gates: a final state of one or two entries is
        measured against the reference's error on the same quantity at every step.

        Returns ``(forward outputs, backward outputs)`` of ``module``.
        """
        desired, ref32 = self.run(F, np.float64), self.run(F, np.float32)
        fw, bw = self.run(module, dtype)
        for x in fw + bw:
            assert x.dtype == dtype, f"{self.cell}: {x.dtype} result for {np.dtype(dtype)} input"
        check_aliases(*fw, self.cast(dtype)[3])
        twin = FusedMirror()
        runs32 = [ref32, self.run(twin, np.float32)]
        bw32 = [r[1] for r in runs32]
        runs64, bw64 = [], []
        own_cache = [self.run(module, dtype, backward=F)[1],
                     self.run(module, dtype, backward=twin)[1]]
        if dtype == np.float32:
            bw32 += own_cache
        else:
            runs64 = [self.run(twin, np.float64)]
            bw64 = [runs64[0][1]] + own_cache
        reference = functools.partial(self.run_on, F)
        inputs = self.cast(dtype)
        samples = perturbed_runs(reference, *inputs, samples=PERTURBED_SAMPLES)
        samples += rounded_runs(reference, *inputs, modules=("refseq.recurrence",),
                                samples=ROUNDED_SAMPLES)
        runs32 += samples
        bw32 += [r[1] for r in samples]
        pick = lambda out: out[::3]  # noqa: E731  (states_all, gates)
        assert_close(pick(fw), pick(desired[0]),
                     [pick(r[0]) for r in runs32]
                     + [in_float32_units(pick(r[0]), pick(desired[0])) for r in runs64],
                     kind="forward", err_msg=f"{self.cell} forward")
        assert_close(bw, desired[1], bw32 + [in_float32_units(r, desired[1]) for r in bw64],
                     kind="backward", err_msg=f"{self.cell} backward")
        return fw, bw


def check_aliases(states_all, last, states, gates, states0):
    """``last == states_all[:, :, -1]`` (``states0`` when T = 0) and ``states`` = ``states0``
    followed by ``states_all``, exactly."""
    T = states_all.shape[2]
    np.testing.assert_array_equal(states[:, :, 1:], states_all)
    if states0 is not None:
        np.testing.assert_array_equal(states[:, :, 0], states0)
    else:
        assert not states[:, :, 0].any()
    np.testing.assert_array_equal(last, states[:, :, T])


def make_case(rng, cell, B, T, N, D, *, scale=1.0, carried=True, **flags):
    """A :class:`Case` with the official tests' initialisation: ``Wx, b ~ N(0, scale^2)``,
    ``R ~ N(0, 1) / sqrt(D)`` (not symmetric); ``carried`` starts from a state the reference
    reached on a random earlier chunk; ``d_last`` is present with probability 1/2; ``flags``
    are the :class:`Case` options."""
    spec = CELLS[cell]
    Wx = scale * rng.standard_normal((B, T, spec.num_gates_w, N, D))
    R = rng.standard_normal((spec.num_gates_r, N, D, D)) / np.sqrt(D)
    b = scale * rng.standard_normal((spec.num_gates_t, N, D))
    s0 = None
    if carried:
        pre = scale * rng.standard_normal((B, 3, spec.num_gates_w, N, D))
        s0 = F.flashrnn_forward(pre, R, b, cell=cell)[1]
    d_all = rng.standard_normal((spec.num_states, B, T, N, D))
    d_last = rng.standard_normal((spec.num_states, B, N, D)) if rng.random() < 0.5 else None
    return Case(cell, Wx, R, b, s0, d_all, d_last, **flags)


@st.composite
def cases(draw, B=(1, 3), T=(0, 24), N=(1, 4), D=(1, 8)):
    """Hypothesis strategy of :class:`Case`: any cell and options; T includes 0, 1 and lengths
    around 16; D includes odd widths; scales 0.1, 1 and 3 (saturating gates)."""
    cell = draw(st.sampled_from(CELL_NAMES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    B, N = draw(st.integers(*B)), draw(st.integers(*N))
    T = draw(st.one_of(st.sampled_from([t for t in (0, 1, 2, 7, 16, 17) if t <= T[1]]),
                       st.integers(*T)))
    D = draw(st.one_of(st.sampled_from([d for d in (1, 3, 5, 7) if d <= D[1]]),
                       st.integers(*D)))
    flags = {
        "fclip": draw(st.sampled_from([None, None, 0.5, np.inf])),
        "cut": draw(st.booleans()),
        "gclip": draw(st.sampled_from([None, None, 0.0, 0.3, np.inf])),
        "clamp": cell == "slstm" and draw(st.booleans()),
    }
    return make_case(rng, cell, B, T, N, D, scale=draw(st.sampled_from([0.1, 1.0, 3.0])),
                     carried=draw(st.booleans()), **flags)
