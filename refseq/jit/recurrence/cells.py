"""Each cell's pointwise step, forward and backward, written once for both compiled tiers.

The NumPy reference writes the cells over arrays (:mod:`refseq.recurrence.cells`); the kernels
need them per scalar, per hidden unit. Those scalar functions are here, once, and both the jit
kernels (:mod:`refseq.jit.recurrence.forward`, :mod:`~refseq.jit.recurrence.backward`) and the
cuda kernels (:mod:`refseq.cuda.recurrence.forward`, :mod:`~refseq.cuda.recurrence.backward`)
call them, dispatching on the one cell-id table :data:`CELL_IDS`.

The tiers differ only in their activations: the jit tier's float32 ``exp``, ``tanh`` and
sigmoid are LLVM-IR intrinsics (:mod:`refseq.jit.recurrence.scalar`) that do not compile for a
GPU, the cuda tier uses the device libm (:mod:`refseq.cuda.recurrence.scalar`). So the cell
functions are built by :func:`build` from an *activation set*: a module with attributes ``exp``,
``tanh`` and ``sigmoid`` that Numba can call on the target. They are plain ``numba.njit``
functions; a CUDA kernel that calls one compiles it as a device function (numba-cuda's support
for calling ``@jit`` functions from kernels), and the CUDA simulator, which runs kernels as
Python, calls it as compiled CPU code. The closure holds only the activation module, which
pickles by name: Numba's on-disk cache key (a hash of the closure) is then the same in every
process, one cache entry per activation set. Every function here is ``forceinline``: left to
LLVM's inliner, the larger cells stayed out of line and the jit tier's float32 update loops
stopped vectorising; inlined, the compiled loops are those of the update written inline, bit
for bit (docs/hot-paths/recurrence-kernels.md, "Cell math, written once").

Scalar conventions: arguments and results are scalars of one float dtype; constants are made in
that dtype (``type(x)(1.0)``), so float32 code stays float32; the operations and their order are
the reference's (:mod:`refseq.recurrence.cells`, after the official FlashRNN code, arXiv
2412.07752; equations in docs/papers/flashrnn.md), with no ``fastmath``. ``clipval`` and
``has_clip`` are ``forward_clipval`` (or the gradient's), ``clamp`` the sLSTM's
``clamp_gates_le_one``. Forward functions return the new states and the gate values that the
cache keeps (docs/hot-paths/recurrence.md); backward functions take those gates and states and
return ``δg~`` (the pre-activation gradients, in bias order) and the gradients carried to the
previous states.
"""

from __future__ import annotations

import functools
import math
import types

import numba

ELMAN, ELMAN_RELU, LSTM, GRU, SLSTM = 0, 1, 2, 3, 4
#: the cell ids of both compiled tiers (kernel argument ``cell``)
CELL_IDS = {"elman": ELMAN, "elman_relu": ELMAN_RELU, "lstm": LSTM, "gru": GRU, "slstm": SLSTM}

_jit = numba.njit(cache=True, error_model="numpy", forceinline=True)


@_jit
def log_sigmoid(x):  # pragma: no cover - compiled
    """``log σ(x) = -logaddexp(0, -x)``, in NumPy's branch order (never -inf); libm in every
    tier and dtype."""
    if x > 0:
        return -math.log1p(math.exp(-x))
    return -(-x + math.log1p(math.exp(x)))


@_jit
def clip(v, c):  # pragma: no cover - compiled
    """``np.clip(v, -c, c)``: NaN passes through."""
    if v < -c:
        return -c
    if v > c:
        return c
    return v


@_jit
def clip_recurrent(v, clipval, has_clip, slstm):  # pragma: no cover - compiled
    """``gradient_recurrent_clipval`` applied to one entry of ``δh^{rec} = R^T δg~``; the
    sLSTM's non-finite entries become 0 first (as in the reference)."""
    if has_clip:
        if slstm and not math.isfinite(v):
            v = type(v)(0.0)
        v = clip(v, clipval)
    return v


@functools.cache
def build(act):
    """The cell functions over the activation set ``act`` (a module with ``exp``, ``tanh``,
    ``sigmoid``), as a namespace; built once per activation set.

    Forward: ``elman_fwd``, ``lstm_fwd``, ``gru_fwd``, ``slstm_fwd``; backward: ``elman_bwd``,
    ``lstm_bwd``, ``gru_bwd``, ``slstm_bwd`` (signatures in their docstrings).
    """

    @_jit
    def elman_fwd(a, relu, clipval, has_clip):  # pragma: no cover - compiled
        """``h = tanh(a)`` (``relu``: ``max(a, 0)``, NaN passing), clipped; the cache keeps h."""
        zero = type(a)(0.0)
        if relu:
            h = a if not (a < zero) else zero
        else:
            h = act.tanh(a)
        if has_clip:
            h = clip(h, clipval)
        return h

    @_jit
    def lstm_fwd(ip, fp, zp, op, c_prev, clipval, has_clip):  # pragma: no cover - compiled
        """Pre-activations (i~, f~, z~, o~) and ``c_{t-1}`` -> ``(h, c, i, f, z, o)``."""
        i = act.sigmoid(ip)
        f = act.sigmoid(fp)
        z = act.tanh(zp)
        o = act.sigmoid(op)
        c = f * c_prev + i * z
        h = o * act.tanh(c)
        if has_clip:
            h = clip(h, clipval)
        return h, c, i, f, z, o

    @_jit
    def gru_fwd(g, rp, zp, np_, h_prev, clipval, has_clip):  # pragma: no cover - compiled
        """Pre-activations (g~ = R_g h + b_g, r~, z~, n~) and ``h_{t-1}`` -> ``(h, r, z)``
        (torch.nn.GRU's form; the cache keeps g~ and n~ as they are)."""
        one = type(g)(1.0)
        r = act.sigmoid(rp)
        z = act.sigmoid(zp)
        nc = act.tanh(np_ + r * g)
        h = z * h_prev + (one - z) * nc
        if has_clip:
            h = clip(h, clipval)
        return h, r, z

    @_jit
    def slstm_fwd(ip, fp, zp, op, c_prev, n_prev, m_prev, clipval, has_clip,
                  clamp):  # pragma: no cover - compiled
        """Pre-activations (i~, f~, z~, o~) and ``(c, n, m)_{t-1}`` -> ``(h, c, n, m, z, o)``:
        the stabilised sLSTM (``m = i~`` on the first step, ``n_{t-1} = 0``); the cache keeps
        i~, f~ as they are."""
        zero, one = type(ip)(0.0), type(ip)(1.0)
        z = act.tanh(zp)
        o = act.sigmoid(op)
        ls = log_sigmoid(fp)
        ell = ls + m_prev
        if n_prev == zero:
            m = ip
        else:
            m = ip if ip >= ell else ell
        i_s = act.exp(ip - m)
        f_s = act.exp(ls + m_prev - m)
        if clamp:
            i_s = i_s if i_s < one else one
            f_s = f_s if f_s < one else one
        c = f_s * c_prev + i_s * z
        n = f_s * n_prev + i_s
        n = n if n > one else one
        h = o * c / n
        if has_clip:
            h = clip(h, clipval)
        return h, c, n, m, z, o

    @_jit
    def elman_bwd(h, dh, relu):  # pragma: no cover - compiled
        """Cached h and ``δh`` -> ``δa`` (the state gradient carried back is 0)."""
        zero, one = type(h)(0.0), type(h)(1.0)
        if relu:
            return dh * (one if h > zero else zero)
        return dh * (one - h * h)

    @_jit
    def lstm_bwd(i, f, z, o, c, c_prev, dh, dc):  # pragma: no cover - compiled
        """Cached gates, ``c_t``, ``c_{t-1}`` and ``(δh, δc)_t`` -> ``(δi~, δf~, δz~, δo~,
        δc_{t-1})``."""
        one = type(i)(1.0)
        tc = act.tanh(c)
        dc = dc + dh * o * (one - tc * tc)
        return (dc * z * i * (one - i), dc * c_prev * f * (one - f), dc * i * (one - z * z),
                dh * tc * o * (one - o), dc * f)

    @_jit
    def gru_bwd(g, r, z, n_in, h_prev, dh):  # pragma: no cover - compiled
        """Cached (g~, r, z, n~), ``h_{t-1}`` and ``δh`` -> ``(δg~, δr~, δz~, δn~, δh_{t-1})``
        (the candidate ``tanh(n~ + r g~)`` is recomputed)."""
        one = type(g)(1.0)
        nc = act.tanh(n_in + r * g)
        dn = dh * (one - z) * (one - nc * nc)
        return dn * r, dn * g * r * (one - r), dh * (h_prev - nc) * z * (one - z), dn, dh * z

    @_jit
    def slstm_bwd(ip, fp, z, o, c_prev, n_prev, m_prev, c, n, m, dh, dc, dn,
                  clamp):  # pragma: no cover - compiled
        """Cached (i~, f~, z, o), ``(c, n, m)_{t-1}``, ``(c, n, m)_t`` and ``(δh, δc, δn)_t``
        -> ``(δi~, δf~, δz~, δo~, δc_{t-1}, δn_{t-1})`` (the stabiliser m carries no
        gradient; the stabilised gates are recomputed)."""
        one = type(ip)(1.0)
        i_s = act.exp(ip - m)
        f_s = act.exp(log_sigmoid(fp) + m_prev - m)
        if clamp:
            i_s = i_s if i_s < one else one
            f_s = f_s if f_s < one else one
        dc = dc + dh * o / n
        dn = dn - dh * o * c / (n * n)
        return ((dc * z + dn) * i_s, (dc * c_prev + dn * n_prev) * f_s * (one - act.sigmoid(fp)),
                dc * i_s * (one - z * z), dh * (c / n) * o * (one - o), dc * f_s, dn * f_s)

    return types.SimpleNamespace(
        elman_fwd=elman_fwd, lstm_fwd=lstm_fwd, gru_fwd=gru_fwd, slstm_fwd=slstm_fwd,
        elman_bwd=elman_bwd, lstm_bwd=lstm_bwd, gru_bwd=gru_bwd, slstm_bwd=slstm_bwd)
