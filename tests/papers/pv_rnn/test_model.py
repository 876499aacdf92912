"""PV-RNN (arXiv 1811.01339; properties 1-9 as numbered in docs/papers/pv-rnn.md, "Properties
and their tests") and ``refseq demo pv-rnn`` at a small size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.pv_rnn import demo as demo
from refseq.papers.pv_rnn.data import softmax_encode
from refseq.papers.pv_rnn.er import ErrorRegression, _RowAdam, train_pvrnn
from refseq.papers.pv_rnn.model import (
    draw_eps,
    init_A_from_prior,
    init_pvrnn,
    kl_per_step,
    log_softmax_groups,
    named_parameters,
    output_fc,
    output_softmax_groups,
    pvrnn_backward,
    pvrnn_forward,
    pvrnn_loss,
    softmax_groups_textbook,
)
from refseq.testing import strategies as S
from refseq.testing.gradcheck import assert_directional


@st.composite
def setups(draw, max_L=3):
    rng = np.random.default_rng(draw(S.seeds()))
    L = draw(st.integers(1, max_L))
    sizes = [(draw(st.integers(1, 4)), draw(st.integers(1, 3))) for _ in range(L)]
    taus = [draw(st.sampled_from([1.0, 1.7, 4.0, "vec"])) for _ in range(L)]
    taus = [1 + 3 * rng.random(D) if t == "vec" else t for t, (D, _) in zip(taus, sizes)]
    Sq, T, X, B = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 3)), \
        draw(st.integers(1, 3))
    P = init_pvrnn(sizes, X, Sq, T, rng, tau=taus, bias_init="uniform", A_init="normal")
    return P, rng, B, T, X


@given(setup=setups(), norm=st.sampled_from(["oist", "sum"]),
       mode=st.sampled_from(["posterior", "prior", "mixed"]), unit_first=st.booleans(),
       masked=st.booleans())
def test_1_backward_matches_finite_differences(setup, norm, mode, unit_first, masked):
    P, rng, B, T, X = setup
    L = len(P.layers)
    Sq = P.layers[0].A_mu.shape[0]
    eps = draw_eps(P, B, T, rng)
    si = rng.integers(0, Sq, B)
    st0 = [(rng.standard_normal((B, p.W_dd.shape[0])), rng.standard_normal((B, p.W_dd.shape[0])))
           for p in P.layers]
    kw = dict(seq_index=si, state0=st0, unit_first=unit_first,
              n_posterior_steps={"posterior": T, "prior": 0, "mixed": T // 2}[mode])
    lkw = dict(mask=(rng.random((B, T)) < 0.7) if masked else None, w=list(rng.random(L)),
               beta=list(1 + rng.random(L)), normalize=norm)
    tg = 0.5 * rng.standard_normal((B, T, X))
    _, cache = pvrnn_forward(P, eps, **kw)
    g = pvrnn_backward(P, cache, tg, **lkw)

    def f():
        return pvrnn_loss(pvrnn_forward(P, eps, **kw)[1], tg, **lkw)[0]

    arrays, grads = named_parameters(P), {name: g[name] for name in named_parameters(P)}
    for l in range(L):  # initial state (h0 and d0) too
        for j in range(2):
            arrays[f"state0[{l}][{j}]"], grads[f"state0[{l}][{j}]"] = st0[l][j], g["state0"][l][j]
    assert_directional(f, arrays, grads, rng=rng)  # one random direction per argument


@given(setup=setups(max_L=2))
def test_2_unused_A_slots_get_zero_gradient_and_stay_unchanged(setup):
    P, rng, B, T, X = setup
    Sq = P.layers[0].A_mu.shape[0]
    si = np.zeros(B, int)
    _, cache = pvrnn_forward(P, draw_eps(P, B, T, rng), si)
    g = pvrnn_backward(P, cache, rng.standard_normal((B, T, X)) * 0.3, w=0.5)
    for l in range(len(P.layers)):
        assert not g[f"{l}.A_mu"][1:].any() and not g[f"{l}.A_sg"][1:].any()
    A = P.layers[0].A_mu.copy()
    opt = _RowAdam(A.shape, A.dtype, 0.1, (0.9, 0.999), 1e-4)
    opt.step(P.layers[0].A_mu, g["0.A_mu"] + 1.0, np.array([0]))
    assert np.array_equal(P.layers[0].A_mu[1:], A[1:]) and Sq >= 1


@given(setup=setups(max_L=2), unit_first=st.booleans())
def test_3_kl_identities(setup, unit_first):
    P, rng, B, T, X = setup
    eps = draw_eps(P, 1, T, rng)
    L = len(P.layers)
    st0 = [(np.zeros((1, p.W_dd.shape[0])), 0.5 * rng.standard_normal((1, p.W_dd.shape[0])))
           for p in P.layers]
    kw = dict(state0=st0, unit_first=unit_first)
    _, c = pvrnn_forward(P, eps, [0], **kw)
    mu_q, a_q = c.mu_q[0][0, 0], c.a_sg_q[0][0, 0]
    if unit_first:  # unit-Gaussian prior: -ln σ^q + ((μ^q)² + (σ^q)²)/2 - 1/2
        unit = (-a_q + (mu_q**2 + np.exp(2 * a_q)) / 2 - 0.5).sum()
        assert np.isclose(kl_per_step(c)[0, 0, 0], unit, rtol=1e-13, atol=1e-15)
    for t in range(T):  # posterior := prior, step by step (the prior at t reads A at < t)
        _, c = pvrnn_forward(P, eps, [0], **kw)
        for l, p in enumerate(P.layers):
            p.A_mu[0, t] = np.arctanh(c.mu_p[l][0, t])
            p.A_sg[0, t] = c.a_sg_p[l][0, t]
    kl = kl_per_step(pvrnn_forward(P, eps, [0], **kw)[1])  # (L, 1, T)
    assert np.abs(kl).max() <= 1e-12
    t = int(rng.integers(T))
    l = int(rng.integers(L))
    P.layers[l].A_sg[0, t] += 0.2
    kl = kl_per_step(pvrnn_forward(P, eps, [0], **kw)[1])
    assert kl[l, 0, t] > 0 and (kl >= -1e-12).all()


def test_4_limits():
    rng = np.random.default_rng(0)
    P = init_pvrnn([(4, 2), (3, 2)], 2, 2, 6, rng, tau=1.0, bias_init="uniform", A_init="normal")
    eps = draw_eps(P, 2, 6, rng)
    st0 = [(rng.standard_normal((2, p.W_dd.shape[0])), np.zeros((2, p.W_dd.shape[0])))
           for p in P.layers]
    st1 = [(h + 5.0, d) for h, d in st0]  # tau = 1: h_{t-1} enters only through d_{t-1}
    assert np.array_equal(pvrnn_forward(P, eps, [0, 1], state0=st0)[0],
                          pvrnn_forward(P, eps, [0, 1], state0=st1)[0])
    for p in P.layers:  # sigma_q -> 0: posterior generation is deterministic
        p.A_sg[...] = -50
    a = pvrnn_forward(P, draw_eps(P, 2, 6, rng), [0, 1])[0]
    b = pvrnn_forward(P, draw_eps(P, 2, 6, rng), [0, 1])[0]
    assert np.abs(a - b).max() <= 1e-12
    for p in P.layers:  # W_zd = 0: outputs ignore eps and A
        p.W_zd[...] = 0
    a = pvrnn_forward(P, draw_eps(P, 2, 6, rng), [0, 1])[0]
    P.layers[0].A_mu[...] += 1
    assert np.array_equal(a, pvrnn_forward(P, draw_eps(P, 2, 6, rng), [1, 0])[0])


def test_5_with_reconstruction_masked_out_descent_on_A_lowers_the_kl_monotonically():
    rng = np.random.default_rng(1)
    P = init_pvrnn([(4, 2)], 1, 1, 8, rng, bias_init="uniform", A_init="normal")
    eps = draw_eps(P, 1, 8, rng)
    tg, mask = rng.standard_normal((1, 8, 1)) * 0.5, np.zeros((1, 8))
    kls = []
    for _ in range(30):
        _, c = pvrnn_forward(P, eps, [0])
        kls.append(pvrnn_loss(c, tg, mask, w=1.0)[0])
        g = pvrnn_backward(P, c, tg, mask, w=1.0)
        P.layers[0].A_mu[...] -= 0.05 * g["0.A_mu"]
        P.layers[0].A_sg[...] -= 0.05 * g["0.A_sg"]
    assert np.all(np.diff(kls) <= 1e-15) and kls[-1] < kls[0]
    _, c = pvrnn_forward(P, eps, [0])  # w = beta = 0: the A gradient is reconstruction only
    g0 = pvrnn_backward(P, c, tg, None, w=0.0)
    g1 = pvrnn_backward(P, c, tg, np.zeros((1, 8)), w=0.0)
    assert g0["0.A_mu"].any() and not g1["0.A_mu"].any()


def test_6_top_down_order():
    rng = np.random.default_rng(2)
    P = init_pvrnn([(3, 2), (3, 2)], 1, 1, 4, rng, bias_init="uniform", A_init="normal")
    eps = draw_eps(P, 1, 4, rng)
    _, c = pvrnn_forward(P, eps, [0])
    eps2 = [e.copy() for e in eps]
    eps2[1][0, 2] += 1.0  # top layer z at t = 2
    _, c2 = pvrnn_forward(P, eps2, [0])
    assert np.array_equal(c.d[0][:, :2], c2.d[0][:, :2]) and not np.allclose(c.d[0][:, 2],
                                                                              c2.d[0][:, 2])
    eps3 = [e.copy() for e in eps]
    eps3[0] += 1.0  # bottom layer never changes the top one
    assert np.array_equal(c.d[1], pvrnn_forward(P, eps3, [0])[1].d[1])


@given(setup=setups(max_L=2), data=st.data())
def test_7_causality_and_posterior_step_limits(setup, data):
    P, rng, B, T, X = setup
    k = data.draw(st.integers(0, T))
    si = np.zeros(B, int)
    eps = draw_eps(P, B, T, rng)
    x, _ = pvrnn_forward(P, eps, si)
    eps2 = [e.copy() for e in eps]
    for e, p in zip(eps2, P.layers):
        e[:, k:] += 1.0
        p.A_mu[:, k:] += 1.0
    x2, _ = pvrnn_forward(P, eps2, si)
    assert np.array_equal(x[:, :k], x2[:, :k])
    assert np.array_equal(pvrnn_forward(P, eps, si, n_posterior_steps=T)[0],
                          pvrnn_forward(P, eps, si, "posterior")[0])
    assert np.array_equal(pvrnn_forward(P, eps, si, n_posterior_steps=0)[0],
                          pvrnn_forward(P, eps, None, "prior")[0])


def test_8_error_regression_mechanics():
    rng = np.random.default_rng(3)
    P = init_pvrnn([(5, 2), (3, 1)], 2, 1, 4, rng, bias_init="uniform", A_init="normal")
    weights = {k: v.copy() for k, v in named_parameters(P, with_A=False).items()}
    stream = 0.5 * np.sin(np.arange(12)[:, None] * [0.5, 0.9])
    er = ErrorRegression(P, window=4, n_iter=15, n_init_iter=15, lr=1e-3, w_er=0.5,
                         resample_eps=False, rng=4)
    out0 = er.step(stream[0:4])
    assert np.all(np.diff(out0["losses"]) <= 1e-12)
    committed = [tuple(x.copy() for x in s) for s in er.state]
    newest = [a.copy() for a, _ in out0["A_window"]]
    out1 = er.step(stream[1:5], horizon=3)
    assert np.all(np.diff(out1["losses"]) <= 1e-12)
    assert out1["prediction"].shape == (3, 2) and out1["x_hat_window"].shape == (4, 2)
    # committed state after step 0 = one posterior step from zeros with the first slot
    one_layers = [p._replace(A_mu=a[:, :1], A_sg=s[:, :1])
                  for p, (a, s) in zip(P.layers, out0["A_window"])]
    P1 = P._replace(layers=one_layers)
    _, c = pvrnn_forward(P1, [e[:, :1] for e in out0["eps_final"]], [0])
    for l in range(2):
        assert np.array_equal(committed[l][0], c.h[l][:, 0])
    # copy_last: before the update the new slot held the newest slot's values
    er2 = ErrorRegression(P, window=4, n_iter=0, rng=5)
    er2.step(stream[0:4])
    er2.A = [(a + np.arange(4)[None, :, None], s) for a, s in er2.A]
    last = [a[:, -1].copy() for a, _ in er2.A]
    er2.step(stream[1:5])
    for (a, _), v in zip(er2.A, last):
        assert np.array_equal(a[:, -1], v) and np.array_equal(a[:, -2], v)
    for k, v in named_parameters(P, with_A=False).items():
        assert np.array_equal(v, weights[k])
    assert newest[0].shape == (1, 4, 2)
    res = ErrorRegression(P, window=3, n_iter=2, growing_window=True, rng=0).run(stream[:6], 2)
    assert res["predictions"].shape == (6, 2, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_9_dtypes_and_seeded_reproducibility(dtype):
    P = init_pvrnn([(4, 2)], 2, 2, 5, 0, dtype=dtype, A_init="normal")
    eps = draw_eps(P, 2, 5, 1)
    x, c = pvrnn_forward(P, eps, [0, 1])
    assert x.dtype == dtype and c.h[0].dtype == dtype
    g = pvrnn_backward(P, c, np.zeros((2, 5, 2), dtype))
    assert all(v.dtype == dtype for k, v in g.items() if k != "state0")
    P2 = init_pvrnn([(4, 2)], 2, 2, 5, 0, dtype=dtype, A_init="normal")
    data = np.zeros((2, 5, 2), dtype)
    h1 = train_pvrnn(P, data, 3, 1, rng=7)
    h2 = train_pvrnn(P2, data, 3, 1, rng=7)
    assert np.array_equal(h1["loss"], h2["loss"]) and np.array_equal(P.W_out, P2.W_out)


def test_9_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="tau"):
        init_pvrnn([(3, 2)], 1, 1, 4, 0, tau=0.5)
    P = init_pvrnn([(3, 2)], 1, 1, 4, 0)
    with pytest.raises(ValueError, match="eps"):
        pvrnn_forward(P, [np.zeros((1, 4, 3))], [0])
    with pytest.raises(ValueError, match="seq_index"):
        pvrnn_forward(P, draw_eps(P, 1, 4, 0), None, "posterior")
    with pytest.raises(TypeError, match="seq_index"):
        pvrnn_forward(P, draw_eps(P, 1, 4, 0), np.array([0.0]))
    with pytest.raises(ValueError, match="mode"):
        pvrnn_forward(P, draw_eps(P, 1, 4, 0), [0], mode="both")
    _, c = pvrnn_forward(P, draw_eps(P, 1, 4, 0), [0])
    with pytest.raises(ValueError, match="targets"):
        pvrnn_loss(c, np.zeros((1, 3, 1)))
    with pytest.raises(ValueError, match="normalize"):
        pvrnn_loss(c, np.zeros((1, 4, 1)), normalize="mean")
    with pytest.raises(ValueError, match="x_window"):
        ErrorRegression(P, 3, 1).step(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="sm_units"):
        init_pvrnn([(3, 2)], 5, 1, 4, 0, sm_units=2)
    Psm = init_pvrnn([(3, 2)], 4, 1, 4, 0, sm_units=2)
    _, c = pvrnn_forward(Psm, draw_eps(Psm, 1, 4, 0), [0])
    with pytest.raises(ValueError, match="non-negative"):
        pvrnn_loss(c, -np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="groups"):
        output_softmax_groups(np.zeros((1, 3)), Psm.W_out, Psm.b_out, 3)


def test_demo_small():
    """Structure only at this size; the w ordering is asserted by the full demo, not here."""
    result = demo.run(ws=(1e-3, 1.0), epochs=60)
    assert [r["w"] for r in result["rows"]] == [1e-3, 1.0]
    assert all(r["kl"] >= 0 and r["rec"] >= 0 for r in result["rows"])
    lines = demo.format_table(result).splitlines()
    assert lines[0].startswith("PV-RNN meta-prior sweep")
    assert lines[3].split() == ["w", "KL", "reconstruction", "seconds"]
    assert lines[-1].startswith("larger w: lower KL")


# --- softmax ("sparse") output: the OIST library's option, beyond the paper ------------------
# (docs/papers/pv-rnn.md, "Choices the paper leaves open (resolved here)", Softmax output)


@given(setup=setups(max_L=2), U=st.integers(2, 4), G=st.integers(1, 2),
       norm=st.sampled_from(["oist", "sum"]), mode=st.sampled_from(["posterior", "prior"]),
       target_kind=st.sampled_from(["encoded", "arbitrary"]), masked=st.booleans())
def test_softmax_output_backward_matches_finite_differences(setup, U, G, norm, mode,
                                                            target_kind, masked):
    """Exact gradient of the OIST softmax loss Σ m t ln(t / x̂), also for targets whose groups
    do not sum to 1 and with per-unit masks (then ∂/∂a_k = x̂_k Σ_group(m t) - m_k t_k)."""
    P0, rng, B, T, _ = setup
    X = G * U
    P = P0._replace(W_out=rng.standard_normal((X, P0.W_out.shape[1])),
                    b_out=rng.standard_normal(X), sm_units=U)
    L = len(P.layers)
    eps = draw_eps(P, B, T, rng)
    si = rng.integers(0, P.layers[0].A_mu.shape[0], B)
    if target_kind == "encoded":
        tg = softmax_encode(rng.uniform(-1, 1, (B, T, G)), U, 0.05, -1.0, 1.0)
        tg[..., 0] = 0.0  # exercise t ln t := 0
    else:
        tg = rng.random((B, T, X)) * (rng.random((B, T, X)) < 0.8)
    kw = dict(seq_index=si, n_posterior_steps=T if mode == "posterior" else 0)
    lkw = dict(mask=(rng.random((B, T, X)) < 0.7) if masked else None, w=list(rng.random(L)),
               beta=list(1 + rng.random(L)), normalize=norm)
    x, cache = pvrnn_forward(P, eps, **kw)
    assert np.allclose(x.reshape(B, T, G, U).sum(-1), 1, rtol=0, atol=1e-13)
    g = pvrnn_backward(P, cache, tg, **lkw)

    def f():
        return pvrnn_loss(pvrnn_forward(P, eps, **kw)[1], tg, **lkw)[0]

    assert_directional(f, named_parameters(P), {k: g[k] for k in named_parameters(P)}, rng=rng)


def test_softmax_loss_is_zero_at_its_minimum_and_matches_the_output_helpers():
    rng = np.random.default_rng(11)
    P = init_pvrnn([(4, 2)], 6, 1, 5, rng, sm_units=3, bias_init="uniform", A_init="normal")
    x, c = pvrnn_forward(P, draw_eps(P, 1, 5, rng), [0])
    np.testing.assert_allclose(x, output_softmax_groups(c.d[0], P.W_out, P.b_out, 2),
                               rtol=1e-14, atol=0)
    total, rec, _ = pvrnn_loss(c, x.copy(), w=0.0)  # KL(x̂ || x̂) = 0
    assert abs(rec) <= 1e-14 and abs(total) <= 1e-14
    g = pvrnn_backward(P, c, x.copy(), w=0.0)
    assert np.abs(g["W_out"]).max() <= 1e-15
    assert np.array_equal(output_fc(c.d[0], P.W_out, P.b_out),
                          np.tanh(c.d[0] @ P.W_out.T + P.b_out))


def test_log_softmax_stable_form_agrees_with_textbook_and_survives_extremes():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((3, 4, 6))
    np.testing.assert_allclose(np.exp(log_softmax_groups(a, 3)), softmax_groups_textbook(a, 3),
                               rtol=1e-14, atol=0)
    big = a + 1000.0
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(softmax_groups_textbook(big, 3)).any()
    np.testing.assert_allclose(np.exp(log_softmax_groups(big, 3)),
                               softmax_groups_textbook(a, 3), rtol=1e-11, atol=0)


def test_softmax_output_trains_and_runs_error_regression():
    rng = np.random.default_rng(13)
    wave = 0.8 * np.sin(np.arange(8) * 0.7)[None, :, None] * np.array([1, -1])[:, None, None]
    data = softmax_encode(wave, 5, 0.02, -1.0, 1.0)  # (2, 8, 5)
    P = init_pvrnn([(6, 2)], 5, 2, 8, rng, sm_units=5)
    hist = train_pvrnn(P, data, 20, rng=1, lr=0.01)
    assert hist["rec"][-1] < hist["rec"][0] and (hist["rec"] >= 0).all()
    out = ErrorRegression(P, window=4, n_iter=3, rng=2).step(data[0, :4], horizon=2)
    assert out["prediction"].shape == (2, 5) and out["rec_err"] >= 0
    assert np.allclose(out["prediction"].sum(-1), 1)


# --- Idei et al.'s A initialisation ------------------------------------------------------------


@given(setup=setups(max_L=2), data=st.data())
def test_idei_init_sets_q_to_p_along_the_generated_trajectory(setup, data):
    P, rng, B, T, X = setup
    Sq = P.layers[0].A_mu.shape[0]
    n = data.draw(st.integers(1, Sq))
    si = rng.permutation(Sq)[:n]  # distinct sequences (duplicates: last row wins)
    others = np.setdiff1d(np.arange(Sq), si)
    before = [(p.A_mu[others].copy(), p.A_sg[others].copy()) for p in P.layers]
    eps = draw_eps(P, n, T, rng)
    init_A_from_prior(P, eps, si)
    x, c = pvrnn_forward(P, eps, si)
    assert np.abs(kl_per_step(c)).max() <= 1e-13  # KL = 0 at every step and layer
    for l, p in enumerate(P.layers):
        assert not p.A_mu[si, 0].any() and not p.A_sg[si, 0].any()  # unit-Gaussian first step
        np.testing.assert_array_equal(np.tanh(p.A_mu[si]), c.mu_p[l])
        np.testing.assert_array_equal(p.A_sg[si], c.a_sg_p[l])
        assert np.array_equal(p.A_mu[others], before[l][0])
        assert np.array_equal(p.A_sg[others], before[l][1])
    # posterior generation now reproduces prior generation with the same ε, bit for bit
    assert np.array_equal(x, pvrnn_forward(P, eps, None, "prior")[0])
    # the KL part of the A gradient vanishes: with reconstruction masked out it is ~0
    tg = 0.3 * rng.standard_normal((n, T, X))
    g = pvrnn_backward(P, c, tg, np.zeros((n, T)), w=0.7, beta=0.4)
    assert max(np.abs(g[f"{l}.A_{k}"]).max() for l in range(len(P.layers))
               for k in ("mu", "sg")) <= 1e-13


def test_idei_init_in_training_gives_zero_kl_in_the_first_epoch():
    rng = np.random.default_rng(14)
    P = init_pvrnn([(5, 2), (3, 1)], 1, 4, 6, rng, bias_init="uniform", A_init="normal")
    data = 0.5 * np.sin(np.arange(6) + np.arange(4)[:, None])[..., None]
    hist = train_pvrnn(P, data, 3, 2, rng=0, A_init_from_prior=True)
    assert np.abs(hist["kl"][0]).max() <= 1e-13 and (hist["kl"][1:] > 0).any()
