"""Argument errors of the recurrence hot path on every tier (docs/hot-paths/recurrence.md,
"Errors"): each names the argument the user passed and the expected form, and the tiers agree.

Covers the backward's ``check_finite`` contract, ``flashrnn_step``'s ``Wx_t`` / ``states``
names, the projection backward's shape checks, ``accumulate_dtype`` and the other numpy-only
options, the clip values, the pointwise helpers and the flags of the cuda mirror.
"""

from __future__ import annotations

import numpy as np
import pytest

from refseq import recurrence as F
from refseq.cuda.recurrence import mirror as M
from refseq.tiers import implementation, tier_available

COMPILED = [t for t in ("jit", "cuda") if tier_available(t)[0]]
TIERS = ["numpy"] + COMPILED


def inputs(cell="lstm", B=2, T=3, N=1, D=2, seed=0):
    spec, rng = F.CELLS[cell], np.random.default_rng(seed)
    Wx = rng.standard_normal((B, T, spec.num_gates_w, N, D))
    R = rng.standard_normal((spec.num_gates_r, N, D, D)) / np.sqrt(D)
    b = rng.standard_normal((spec.num_gates_t, N, D))
    return Wx, R, b


def forward(backend, *args, **kw):
    return F.flashrnn_forward(*args, backend=backend, **kw)


def backward(backend, *args, **kw):
    return F.flashrnn_backward(*args, backend=backend, **kw)


# --- backward: the forward's check_finite contract ------------------------------------------

@pytest.mark.parametrize("backend", TIERS)
@pytest.mark.parametrize("where", ["d_states_all", "d_last_states", "R", "b",
                                   'cache["states"]', 'cache["gates"]'])
def test_backward_rejects_non_finite_inputs_naming_them(backend, where):
    Wx, R, b = inputs()
    _, _, cache = F.flashrnn_forward(Wx, R, b, return_cache=True)
    args = {"d_states_all": np.ones((2, 2, 3, 1, 2)), "d_last_states": np.ones((2, 2, 1, 2)),
            "R": R.copy(), "b": b.copy(),
            "cache": {k: v.copy() for k, v in cache.items()}}
    target = args["cache"][where[7:-2]] if where.startswith("cache") else args[where]
    target.flat[target.size // 2] = np.nan
    call = (args["d_states_all"], args["d_last_states"], args["R"], args["b"], args["cache"])
    with pytest.raises(ValueError, match=rf"^{where.replace('[', '.').replace(']', '.')} must "
                                         r"be finite.*check_finite=False"):
        backward(backend, *call)
    grads = backward(backend, *call, check_finite=False)  # the escape
    if where != "b":  # the backward never reads b's values
        assert not all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("backend", TIERS)
def test_projection_backward_checks_on_every_tier(backend):
    rng = np.random.default_rng(1)
    x, W = rng.standard_normal((2, 3, 5)), rng.standard_normal((4, 1, 6, 5))
    dWx = rng.standard_normal((2, 3, 4, 1, 6))
    fn = F.project_inputs_backward if backend == "numpy" else implementation(
        "recurrence", "project_inputs_backward", backend)
    with pytest.raises(ValueError, match=r"W must have shape \(G_w, N, D, I\) with I = "):
        fn(dWx, x, W[..., :4])
    with pytest.raises(ValueError, match=r"dWx must have shape \(B, T, G_w, N, D\)"):
        fn(dWx[..., :5], x, W)
    bad = dWx.copy()
    bad[1, 2, 3, 0, 5] = -np.inf
    with pytest.raises(ValueError, match=r"^dWx must be finite; found -inf at index "
                                         r"\(1, 2, 3, 0, 5\)"):
        fn(bad, x, W)
    dx, _ = fn(bad, x, W, check_finite=False)
    assert not np.isfinite(dx).all()


# --- flashrnn_step names Wx_t and states ---------------------------------------------------

def test_step_errors_name_wx_t_and_states():
    Wx, R, b = inputs()
    s = np.zeros((2, 2, 1, 2))
    with pytest.raises(ValueError, match=r"^Wx_t must have shape \(B, G_w, N, D\), got "):
        F.flashrnn_step(Wx, R, b, s)  # the whole sequence instead of one step
    with pytest.raises(ValueError, match=r"^Wx_t has 3 gates \(axis 1\).*Wx_t must have shape "
                                         r"\(B, G_w, N, D\)"):
        F.flashrnn_step(Wx[:, 0, :3], R, b, s)
    with pytest.raises(TypeError, match="^Wx_t must have dtype float32 or float64"):
        F.flashrnn_step(Wx[:, 0].astype(np.int32), R, b, s)
    bad = Wx[:, 0].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="^Wx_t must be finite"):
        F.flashrnn_step(bad, R, b, s)
    with pytest.raises(ValueError, match=r"^states must have shape \(S, B, N, D\)"):
        F.flashrnn_step(Wx[:, 0], R, b, s[:1])
    with pytest.raises(TypeError, match="^states must be a float32 or float64 array"):
        F.flashrnn_step(Wx[:, 0], R, b, None)
    assert np.isnan(F.flashrnn_step(bad, R, b, s, check_finite=False)).any()


# --- accumulate_dtype and the numpy-only options ---------------------------------------------

@pytest.mark.parametrize("acc", ["int32", np.int64, np.float16, "complex128", 3])
def test_accumulate_dtype_must_be_float32_or_float64(acc):
    """Integers would truncate the states silently; float16 and complex are no choice here."""
    Wx, R, b = inputs()
    match = r"^accumulate_dtype must be (np\.)?float32 or (np\.)?float64"
    with pytest.raises(TypeError, match=match):
        F.flashrnn_forward(Wx, R, b, accumulate_dtype=acc)
    with pytest.raises(TypeError, match=match):
        F.flashrnn_step(Wx[:, 0], R, b, np.zeros((2, 2, 1, 2)), accumulate_dtype=acc)
    _, _, cache = F.flashrnn_forward(Wx, R, b, return_cache=True)
    with pytest.raises(TypeError, match=match):
        F.flashrnn_backward(None, None, R, b, cache, accumulate_dtype=acc)


def test_accumulate_dtype_must_not_be_narrower_than_the_inputs():
    Wx, R, b = inputs()
    with pytest.raises(ValueError, match="^accumulate_dtype must not be narrower than the "
                                         "inputs' dtype float64"):
        F.flashrnn_forward(Wx, R, b, accumulate_dtype=np.float32)
    f32 = [a.astype(np.float32) for a in (Wx, R, b)]
    out, _ = F.flashrnn_forward(*f32, accumulate_dtype=np.float64)  # wider: fine
    assert out.dtype == np.float32


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("direct", [False, True])
def test_numpy_only_options_give_one_value_error_on_compiled_tiers(backend, direct):
    """Public function or the tier's own twin: the same ``ValueError``, never a TypeError about
    an unexpected keyword."""
    Wx, R, b = inputs()
    _, _, cache = F.flashrnn_forward(Wx, R, b, return_cache=True)
    fw = implementation("recurrence", "flashrnn_forward", backend) if direct else \
        (lambda *a, **k: forward(backend, *a, **k))
    bw = implementation("recurrence", "flashrnn_backward", backend) if direct else \
        (lambda *a, **k: backward(backend, *a, **k))
    msg = rf"^{{}} is available on the numpy tier only, not backend='{backend}'"
    for name, value in (("accumulate_dtype", np.float64), ("emulate_bfloat16", True)):
        with pytest.raises(ValueError, match=msg.format(name)):
            fw(Wx, R, b, **{name: value})
    for name, value in (("accumulate_dtype", np.float64), ("exact_stabiliser", True)):
        with pytest.raises(ValueError, match=msg.format(name)):
            bw(None, None, R, b, cache, **{name: value})


# --- number keywords --------------------------------------------------------------------------

@pytest.mark.parametrize("backend", TIERS)
@pytest.mark.parametrize("value, error, match", [
    (-1.0, ValueError, r"must be a number >= 0, got -1.0"),
    (float("nan"), ValueError, r"must be a finite number, got nan"),
    ("1", TypeError, r"must be a real number \(int or float\) or None, got '1' \(str\)"),
    (True, TypeError, r"must be a real number .* got True \(bool\)"),
    (np.array([1.0]), TypeError, r"must be a real number"),
])
def test_clip_values_are_checked(backend, value, error, match):
    Wx, R, b = inputs()
    with pytest.raises(error, match="^forward_clipval " + match):
        forward(backend, Wx, R, b, forward_clipval=value)
    _, _, cache = F.flashrnn_forward(Wx, R, b, return_cache=True)
    with pytest.raises(error, match="^gradient_recurrent_clipval " + match):
        backward(backend, None, None, R, b, cache, gradient_recurrent_clipval=value)


def test_clip_values_accept_zero_inf_and_numpy_scalars():
    Wx, R, b = inputs()
    inf, _ = F.flashrnn_forward(Wx, R, b, forward_clipval=np.inf)
    np.testing.assert_array_equal(inf, F.flashrnn_forward(Wx, R, b)[0])
    zero, _ = F.flashrnn_forward(Wx, R, b, forward_clipval=np.float32(0))
    assert not zero[0].any()


# --- the pointwise helpers ---------------------------------------------------------------------

def pointwise_args(cell="lstm", B=2, N=1, D=3):
    spec, rng = F.CELLS[cell], np.random.default_rng(2)
    return (rng.standard_normal((B, spec.num_gates_w, N, D)),
            rng.standard_normal((B, spec.num_gates_r, N, D)),
            rng.standard_normal((spec.num_gates_t, N, D)),
            np.abs(rng.standard_normal((spec.num_states, B, N, D))))


@pytest.mark.parametrize("i, name, form", [(0, "Wx_t", r"\(B, G_w, N, D\)"),
                                           (1, "Ry_t", r"\(B, G_r, N, D\)"),
                                           (2, "b", r"\(G_t, N, D\)"),
                                           (3, "states", r"\(S, B, N, D\)")])
def test_pointwise_forward_checks_shapes_and_dtypes(i, name, form):
    args = list(pointwise_args("gru"))
    wrong = list(args)
    wrong[i] = args[i][..., :2] if i else args[i][:, :2]
    with pytest.raises(ValueError, match=rf"^{name} must have shape {form}"):
        F.pointwise_forward("gru", *wrong)
    wrong[i] = args[i].astype(np.int64)
    with pytest.raises(TypeError, match=f"^{name} must have dtype float32 or float64"):
        F.pointwise_forward("gru", *wrong)


def test_pointwise_checks_cell_options_and_cache():
    args = pointwise_args("slstm")
    with pytest.raises(ValueError, match="^cell must be one of"):
        F.pointwise_forward("slstmm", *args)
    with pytest.raises(TypeError, match="^clamp_gates_le_one must be a bool"):
        F.pointwise_forward("slstm", *args, clamp_gates_le_one=1)
    with pytest.raises(TypeError, match=r"^pointwise options of cell 'lstm' are \[\]"):
        F.pointwise_forward("lstm", *pointwise_args("lstm"), clamp_gates_le_one=True)
    new, cache = F.pointwise_forward("slstm", *args, clamp_gates_le_one=True)
    d = np.ones_like(new)
    F.pointwise_backward("slstm", d, args[3], new, cache, exact_stabiliser=True)
    with pytest.raises(TypeError, match="^cache must be the dict of pointwise_forward"):
        F.pointwise_backward("slstm", d, args[3], new, {"i": cache["i"]})
    with pytest.raises(ValueError, match=r"^states_new must have shape \(S, B, N, D\)"):
        F.pointwise_backward("slstm", d, args[3], new[:3], cache)
    with pytest.raises(ValueError, match=r"^cache\['f'\] must have shape \(B, N, D\)"):
        F.pointwise_backward("slstm", d, args[3], new, {**cache, "f": cache["f"][:1]})
    with pytest.raises(TypeError, match=r"^pointwise options of cell 'lstm'"):
        F.pointwise_backward("lstm", d[:2], args[3][:2], new[:2],
                             {k: cache[k] for k in "ifzo"}, exact_stabiliser=True)


# --- the cuda mirror checks its flags and numbers like the tiers -----------------------------

def test_mirror_checks_flags_and_clip_values():
    Wx, R, b = inputs()
    for kw in ({"clamp_gates_le_one": 1}, {"fma": "False"}, {"return_cache": None}):
        with pytest.raises(TypeError, match=f"^{next(iter(kw))} must be a bool"):
            M.flashrnn_forward(Wx, R, b, **kw)
    with pytest.raises(ValueError, match="^forward_clipval must be a number >= 0"):
        M.forward_blocked(Wx, R, b, forward_clipval=-1)
    cache = M.forward_blocked(Wx, R, b)
    with pytest.raises(TypeError, match="^gradient_recurrent_cut must be a bool"):
        M.backward_blocked(None, None, R, b, cache, gradient_recurrent_cut=0)
    with pytest.raises(ValueError, match="^gradient_recurrent_clipval must be a finite number"):
        M.backward_blocked(None, None, R, b, cache, gradient_recurrent_clipval=np.nan)


# --- finiteness is tested once, by the tier's own predicate ----------------------------------

@pytest.mark.skipif(not tier_available("jit")[0], reason="jit tier unavailable")
def test_jit_dispatch_tests_finiteness_once_with_the_parallel_predicate(monkeypatch):
    """The public functions leave ``check_finite`` to the jit twin, which uses
    ``refseq.jit.recurrence.finite.all_finite`` (no NumPy ``isfinite`` pass, no double check)."""
    import refseq.jit.recurrence as J
    from refseq.jit.recurrence import finite
    from refseq.recurrence import checks

    seen = {"numpy": 0, "jit": 0}

    def numpy_pred(x):
        seen["numpy"] += 1
        return bool(np.isfinite(x).all())

    def jit_pred(x, _f=finite.all_finite):
        seen["jit"] += 1
        return _f(x)

    monkeypatch.setattr(checks, "_numpy_all_finite", numpy_pred)
    monkeypatch.setattr(J, "all_finite", jit_pred)
    monkeypatch.setattr("refseq.jit.recurrence.projection.all_finite", jit_pred)
    Wx, R, b = inputs()
    _, _, cache = F.flashrnn_forward(Wx, R, b, backend="jit", return_cache=True)
    assert seen == {"numpy": 0, "jit": 4}  # Wx, R, b, states0
    F.flashrnn_backward(None, None, R, b, cache, backend="jit")
    assert seen == {"numpy": 0, "jit": 8}  # R, b, both cache arrays (None gradients: not)
    x, W = np.ones((2, 3, 5)), np.ones((4, 1, 2, 5))
    F.project_inputs(x, W, backend="jit")
    assert seen == {"numpy": 0, "jit": 10}
