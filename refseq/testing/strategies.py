"""Hypothesis strategies shared by refseq's tests and offered to users (needs hypothesis).

Shapes always allow T = 1 and lengths that are not multiples of a block or chunk size (powers of
two and powers of two plus one are drawn on purpose). Arrays are built from a drawn seed with
``np.random.default_rng`` (hypothesis reseeds the global ``numpy.random`` per example) and are
well scaled: no subnormals, magnitudes set by the caller.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

FLOAT_DTYPES = (np.float32, np.float64)


def seeds():
    """Seeds for ``np.random.default_rng``."""
    return st.integers(0, 2**32 - 1)


def dtypes():
    return st.sampled_from(FLOAT_DTYPES)


def lengths(min_T=1, max_T=65):
    """Sequence lengths in [min_T, max_T], favouring 1, powers of two and powers of two + 1."""
    special = sorted(
        {n for k in range(8) for n in (1 << k, (1 << k) + 1, (1 << k) - 1) if min_T <= n <= max_T}
        | {min_T, max_T}
    )
    return st.one_of(st.sampled_from(special), st.integers(min_T, max_T))


def dims(B=(1, 3), T=(1, 65), H=(1, 3), D=(1, 8)):
    """A dict with keys B, T, H, D drawn from the given inclusive ranges."""
    return st.fixed_dictionaries(
        {
            "B": st.integers(*B),
            "T": lengths(*T),
            "H": st.integers(*H),
            "D": st.integers(*D),
        }
    )


def cudasim_dims():
    """Tiny shapes for the CUDA simulator (it interprets every thread in Python)."""
    return dims(B=(1, 2), T=(1, 19), H=(1, 2), D=(1, 3))


def registry_dims(entry, simulated=False, **fixed):
    """Dimensions for a registry entry (:class:`refseq.registry.HotPath`), drawn from its
    ``test_dims`` (``cudasim_test_dims`` when ``simulated``).

    An integer range ``(low, high)`` is drawn inclusively (``T`` through :func:`lengths`), a
    tuple of strings by choice; ``fixed`` pins names (``cell="gru"``).
    """
    ranges = entry.cudasim_test_dims if simulated else entry.test_dims
    if ranges is None:
        raise ValueError(f"registry entry {entry.name!r} has no test_dims")
    drawn = {}
    for name, spec in ranges.items():
        if name in fixed:
            drawn[name] = st.just(fixed[name])
        elif all(isinstance(x, str) for x in spec):
            drawn[name] = st.sampled_from(spec)
        elif name == "T":
            drawn[name] = lengths(*spec)
        else:
            drawn[name] = st.integers(*spec)
    return st.fixed_dictionaries(drawn)


def normal(rng, shape, dtype=np.float64, scale=1.0):
    """Standard normal values times ``scale``, in ``dtype``."""
    return (scale * rng.standard_normal(shape)).astype(dtype)


def decays(rng, shape, dtype=np.float64, low=0.5, high=1.0):
    """Decays in [low, high): the stable regime of a linear recurrence."""
    return rng.uniform(low, high, shape).astype(dtype)


def masks(rng, shape, p_valid=0.8):
    """Boolean masks (True = valid) with independent positions."""
    return rng.random(shape) < p_valid


def ragged_lengths(rng, B, T):
    """``B`` sequence lengths in ``[0, T]`` with at least one full sequence (length ``T``)."""
    L = rng.integers(0, T + 1, B)
    L[rng.integers(B)] = T
    return L


LSTM_SWITCHES = [
    dict(forget_gate=fg, peepholes=pp, output_activation=oa)
    for fg in (True, False)
    for pp in (False, True)
    for oa in ("tanh", "identity")
]
"""The eight switch settings of the review's LSTM (``refseq.rnn.lstm``): forget gate on/off,
peepholes off/on, output activation tanh/identity; use with ``pytest.mark.parametrize`` or
:func:`lstm_switches`."""


def lstm_switches():
    """One of :data:`LSTM_SWITCHES`."""
    return st.sampled_from(LSTM_SWITCHES)


def switch_id(sw):
    """A readable pytest id for one entry of :data:`LSTM_SWITCHES`."""
    return "-".join(str(v) for v in sw.values())
