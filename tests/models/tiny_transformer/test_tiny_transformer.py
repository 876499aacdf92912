"""The tiny GPT decoder: cache semantics, tree attention, batching, gradients, save/load."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.models import tiny_transformer as tt
from refseq.models.tiny_transformer import kv_cache
from refseq.models.tiny_transformer.backward import backward
from refseq.models.tiny_transformer.kv import kv_from_hidden, kv_from_hidden_backward
from refseq.models.tiny_transformer.params import named_parameters, params_from_named
from refseq.testing.gradcheck import assert_directional, cotangent_loss
from refseq.testing.strategies import seeds

TOL = dict(rtol=1e-10, atol=1e-10)  # float64 equivalences (docs/models/tiny_transformer.md)


def random_params(cfg, seed):
    """Random weights with non-trivial LN gains, shifts and biases (zero biases hide bugs)."""
    rng = np.random.default_rng(seed)
    p = tt.init_params(cfg, seed)
    return tt.map_parameters(lambda a: a + (0.3 * rng.standard_normal(a.shape)).astype(a.dtype), p)


@st.composite
def configs(draw, **over):
    kw = dict(vocab_size=draw(st.integers(2, 11)), n_heads=draw(st.integers(1, 2)),
              n_layers=draw(st.integers(1, 2)), max_positions=20,
              tied_head=draw(st.booleans()), rope=draw(st.booleans()))
    kw["d_model"] = draw(st.sampled_from([4, 8]))  # D = 2 makes LayerNorm nearly a sign()
    kw["d_hidden"] = draw(st.sampled_from([None, 6]))
    kw.update(over)
    return tt.TinyConfig(**kw)


# ------------------------------------------------------------------ gradients
@given(cfg=configs(), seed=seeds(), data=st.data())
def test_backward_matches_finite_differences(cfg, seed, data):
    rng = np.random.default_rng(seed)
    p = random_params(cfg, seed)
    B = data.draw(st.sampled_from([None, 1, 2]), "B")
    T, S = data.draw(st.integers(1, 5), "T"), data.draw(st.integers(0, 3), "S")
    lead = () if B is None else (B,)
    x = rng.standard_normal(lead + (T, cfg.d_model))
    past = rng.standard_normal(lead + (cfg.n_layers, 2, cfg.n_heads, S, cfg.d_head)) if S else None
    mask = rng.random((T, S + T)) < 0.8
    pos = rng.integers(0, cfg.max_positions, size=lead + (T,))
    use_dh = data.draw(st.booleans(), "d_hidden")
    use_dkv = data.draw(st.booleans(), "d_new_kv")

    def run(named, x, past, cache=False):
        return tt.forward(params_from_named(cfg, named), embeds=x, positions=pos,
                          allow_mask=mask, past_kv=past, return_cache=cache)

    named = dict(named_parameters(p))
    logits, hidden, new_kv, cache = run(named, x, past, cache=True)
    dl = rng.standard_normal(logits.shape)
    dh = [rng.standard_normal(h.shape) if rng.random() < 0.7 else None for h in hidden] \
        if use_dh else None
    dkv = rng.standard_normal(new_kv.shape) if use_dkv else None
    g = backward(p, cache, dl, d_hidden=dh, d_new_kv=dkv)

    def outputs():  # reads the arrays that the check moves in place
        lg, hid, kv = run(named, x, past)
        return lg, list(hid), kv

    args = dict(named, embeds=x)
    grads = dict(named_parameters(g.params), embeds=g.embeds)
    if past is not None:
        args["past_kv"], grads["past_kv"] = past, g.past_kv
    else:
        assert g.past_kv is None
    cot = (dl, dh if dh is not None else [None] * len(hidden), dkv)  # None: no cotangent
    assert_directional(cotangent_loss(outputs, cot), args, grads, rng=rng)


@given(cfg=configs(), seed=seeds())
def test_token_gradient_scatters_into_wte_and_layers_backward(cfg, seed):
    rng = np.random.default_rng(seed)
    p = random_params(cfg, seed)
    tokens = rng.integers(0, cfg.vocab_size, size=6)
    logits, hidden, _, cache = tt.forward(p, tokens, return_cache=True)
    dl = rng.standard_normal(logits.shape)
    g = backward(p, cache, dl)
    x = tt.token_embeddings(p, tokens)
    _, _, _, cache_e = tt.forward(p, embeds=x, return_cache=True)
    g_e = backward(p, cache_e, dl)
    dwte = g_e.params.wte.copy()
    np.add.at(dwte, tokens, g_e.embeds)  # chain rule through the lookup
    np.testing.assert_allclose(g.params.wte, dwte, **TOL)
    # forward_layers / lm_head split the forward; their backward composes to the same grads
    lo = int(rng.integers(0, cfg.n_layers + 1))
    h_lo = hidden[lo]
    h_out, hid2, _, lc = tt.forward_layers(p, h_lo, lo, cfg.n_layers, return_cache=True)
    np.testing.assert_allclose(h_out, hidden[-1], **TOL)
    lg, hc = tt.lm_head(p, h_out, return_cache=True)
    np.testing.assert_allclose(lg, logits, **TOL)
    dh, head_grads = tt.lm_head_backward(p, hc, dl)
    dh_lo, lg_grads, _ = tt.forward_layers_backward(p, lc, dh)
    full = backward(p, cache, dl, d_hidden=None)
    for l in range(lo, cfg.n_layers):
        for a, b in zip(named_parameters(lg_grads.blocks[l]),
                        named_parameters(full.params.blocks[l])):
            np.testing.assert_allclose(a[1], b[1], **TOL)
    _, _, _, lc0 = tt.forward_layers(p, hidden[0], 0, lo, return_cache=True)
    dx, _, _ = tt.forward_layers_backward(p, lc0, dh_lo)
    np.testing.assert_allclose(dx, full.embeds, **TOL)


@given(cfg=configs(), seed=seeds(), B=st.sampled_from([None, 2]), S=st.integers(1, 5))
def test_kv_from_hidden_reproduces_cache_and_its_gradient(cfg, seed, B, S):
    rng = np.random.default_rng(seed)
    p = random_params(cfg, seed)
    lead = () if B is None else (B,)
    tok = rng.integers(0, cfg.vocab_size, size=lead + (S,))
    pos = rng.permutation(cfg.max_positions)[:S]
    _, hidden, kv = tt.forward(p, tok, positions=pos, allow_mask=np.ones((S, S), bool))
    h_in = np.stack(hidden[:-1], axis=-3)  # (..., L, S, D): inputs of each block
    kv2, cache = kv_from_hidden(p, h_in, pos, return_cache=True)
    np.testing.assert_allclose(kv2, kv, **TOL)
    dkv = rng.standard_normal(kv.shape)
    dh, g = kv_from_hidden_backward(p, cache, dkv)
    named = dict(named_parameters(p))

    loss = cotangent_loss(lambda: kv_from_hidden(params_from_named(cfg, named), h_in, pos),
                          dkv)
    assert_directional(loss, dict(named, h_in=h_in), dict(named_parameters(g), h_in=dh),
                       rng=rng)


# ------------------------------------------------------------------ cache semantics
@given(cfg=configs(), seed=seeds(), data=st.data())
def test_incremental_decoding_equals_full_forward(cfg, seed, data):
    rng = np.random.default_rng(seed)
    p = random_params(cfg, seed)
    n = data.draw(st.integers(1, 9), "n")
    tokens = rng.integers(0, cfg.vocab_size, size=n)
    full, hid, kv_full = tt.forward(p, tokens)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=3), "cuts"))) \
        if n > 1 else []
    kv, parts = None, []
    for a, b in zip([0] + cuts, cuts + [n]):
        lg, _, kv = tt.forward(p, tokens[a:b], past_kv=kv)
        parts.append(lg)
    np.testing.assert_allclose(np.concatenate(parts), full, **TOL)
    np.testing.assert_allclose(kv, kv_full, **TOL)
    assert kv.shape == (cfg.n_layers, 2, cfg.n_heads, n, cfg.d_head)


@given(cfg=configs(), seed=seeds(), data=st.data())
def test_truncate_and_gather_then_continue(cfg, seed, data):
    rng = np.random.default_rng(seed)
    p = random_params(cfg, seed)
    n = data.draw(st.integers(2, 8), "n")
    tokens = rng.integers(0, cfg.vocab_size, size=n)
    nxt = rng.integers(0, cfg.vocab_size, size=2)
    _, _, kv = tt.forward(p, tokens)
    m = data.draw(st.integers(1, n), "m")  # truncate: same as having fed only tokens[:m]
    lg, _, _ = tt.forward(p, nxt, past_kv=kv_cache.truncate(kv, m))
    np.testing.assert_allclose(lg, tt.forward(p, np.concatenate([tokens[:m], nxt]))[0][m:], **TOL)
    # gather: k candidate slots after the first m, each seeing only the prefix and itself (a
    # depth-1 draft tree); keeping the prefix plus candidate c must equal a fresh run on
    # tokens[:m] + [cand_c], and continuing from it must too
    k = data.draw(st.integers(1, 3), "k")
    cand = rng.integers(0, cfg.vocab_size, size=k)
    kv_m = kv_cache.truncate(kv, m)
    mask = np.concatenate([np.ones((k, m), bool), np.eye(k, dtype=bool)], axis=1)
    _, _, kv_c = tt.forward(p, cand, positions=np.full(k, m), allow_mask=mask, past_kv=kv_m)
    c = data.draw(st.integers(0, k - 1), "c")
    kept = kv_cache.gather(kv_c, np.append(np.arange(m), m + c))
    fresh, _, kv_fresh = tt.forward(p, np.concatenate([tokens[:m], cand[c:c + 1], nxt]))
    np.testing.assert_allclose(kept, kv_cache.truncate(kv_fresh, m + 1), **TOL)
    lg, _, kv2 = tt.forward(p, nxt, past_kv=kept)
    np.testing.assert_allclose(lg, fresh[m + 1:], **TOL)
    np.testing.assert_allclose(kv2, kv_fresh, **TOL)


def test_kv_cache_helpers():
    cfg = tt.TinyConfig(5, 4, 2, 2, 8)
    e = kv_cache.empty(cfg, batch=3)
    assert e.shape == (3, 2, 2, 2, 0, 2)
    kv = np.arange(3 * 2 * 2 * 2 * 4 * 2, dtype=np.float64).reshape(3, 2, 2, 2, 4, 2)
    assert kv_cache.length(kv_cache.append(kv, kv)) == 8
    rows = kv_cache.gather(kv, np.array([[0, 3], [1, 1], [2, 0]]))
    for b, idx in enumerate([[0, 3], [1, 1], [2, 0]]):
        np.testing.assert_array_equal(rows[b], kv[b][..., idx, :])
    with pytest.raises(ValueError, match="indices"):
        kv_cache.gather(kv, np.array([4]))
    with pytest.raises(ValueError, match="n must"):
        kv_cache.truncate(kv, 5)
    with pytest.raises(ValueError, match="layout"):
        kv_cache.append(kv, kv[:, :1])


# ------------------------------------------------------------------ tree attention
@st.composite
def trees(draw, max_nodes=7):
    N = draw(st.integers(1, max_nodes))
    return np.array([-1] + [draw(st.integers(0, i - 1)) for i in range(1, N)])


def ancestor_mask(parents):
    N = len(parents)
    M = np.eye(N, dtype=bool)
    for i in range(1, N):
        M[i] |= M[parents[i]]
    return M


@given(cfg=configs(), seed=seeds(), parents=trees(), n_past=st.integers(0, 5))
def test_tree_forward_equals_linear_forward_on_root_paths(cfg, seed, parents, n_past):
    rng = np.random.default_rng(seed)
    p = random_params(cfg, seed)
    N = len(parents)
    ctx = rng.integers(0, cfg.vocab_size, size=n_past)
    tok = rng.integers(0, cfg.vocab_size, size=N)
    anc = ancestor_mask(parents)
    depth = anc.sum(1) - 1
    kv = tt.forward(p, ctx)[2] if n_past else None
    mask = np.concatenate([np.ones((N, n_past), bool), anc], axis=1)
    logits, hidden, kv_tree = tt.forward(p, tok, positions=n_past + depth, allow_mask=mask,
                                         past_kv=kv)
    for i in range(N):
        path = np.flatnonzero(anc[i])  # root .. i, in node order = depth order
        lin, lin_hidden, lin_kv = tt.forward(p, np.concatenate([ctx, tok[path]]))
        np.testing.assert_allclose(logits[i], lin[-1], **TOL)
        np.testing.assert_allclose(hidden[-1][i], lin_hidden[-1][-1], **TOL)
        kept = kv_cache.gather(kv_tree, np.concatenate([np.arange(n_past), n_past + path]))
        np.testing.assert_allclose(kept, lin_kv, **TOL)


# ------------------------------------------------------------------ batching
@given(cfg=configs(), seed=seeds(), data=st.data())
def test_ragged_batch_equals_per_sequence_runs(cfg, seed, data):
    rng = np.random.default_rng(seed)
    p = random_params(cfg, seed)
    lens = data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=3), "lens")
    left = data.draw(st.booleans(), "left_padding")
    B, T = len(lens), max(lens)
    seqs = [rng.integers(0, cfg.vocab_size, size=n) for n in lens]
    tokens = np.zeros((B, T), np.int64)
    valid = np.zeros((B, T), bool)
    for b, s in enumerate(seqs):
        sl = slice(T - len(s), T) if left else slice(0, len(s))
        tokens[b, sl], valid[b, sl] = s, True
    pos = np.maximum(np.cumsum(valid, axis=1) - 1, 0)  # per-row positions, pads at 0
    mask = tt.causal_allow_mask(T)[None] & valid[:, None, :]  # (B, T, T)
    logits, hidden, kv = tt.forward(p, tokens, positions=pos, allow_mask=mask)
    nxt = rng.integers(0, cfg.vocab_size, size=(B, 1))  # one more step with per-row positions
    mask2 = np.concatenate([valid, np.ones((B, 1), bool)], axis=1)[:, None, :]
    lg2, _, _ = tt.forward(p, nxt, positions=np.array(lens)[:, None], allow_mask=mask2,
                           past_kv=kv)
    for b, s in enumerate(seqs):
        ref, ref_hidden, _ = tt.forward(p, s)
        np.testing.assert_allclose(logits[b][valid[b]], ref, **TOL)
        np.testing.assert_allclose(hidden[-1][b][valid[b]], ref_hidden[-1], **TOL)
        np.testing.assert_allclose(lg2[b, 0], tt.forward(p, np.append(s, nxt[b]))[0][-1], **TOL)


@given(cfg=configs(), seed=seeds(), T=st.integers(1, 6), S=st.integers(0, 3))
def test_batch_axis_present_equals_absent(cfg, seed, T, S):
    rng = np.random.default_rng(seed)
    p = random_params(cfg, seed)
    tok = rng.integers(0, cfg.vocab_size, size=(2, T))
    past = rng.standard_normal((2, cfg.n_layers, 2, cfg.n_heads, S, cfg.d_head)) if S else None
    lg, hid, kv, cache = tt.forward(p, tok, past_kv=past, return_cache=True)
    dl = rng.standard_normal(lg.shape)
    g = backward(p, cache, dl)
    acc = tt.map_parameters(np.zeros_like, p)
    for b in range(2):
        lg_b, hid_b, kv_b, c_b = tt.forward(p, tok[b], past_kv=None if past is None else past[b],
                                            return_cache=True)
        np.testing.assert_allclose(lg[b], lg_b, **TOL)
        np.testing.assert_allclose(kv[b], kv_b, **TOL)
        g_b = backward(p, c_b, dl[b])
        np.testing.assert_allclose(g.embeds[b], g_b.embeds, **TOL)
        if past is not None:
            np.testing.assert_allclose(g.past_kv[b], g_b.past_kv, **TOL)
        acc = tt.map_parameters(np.add, acc, g_b.params)
    for (n, a), (_, b_) in zip(named_parameters(g.params), named_parameters(acc)):
        np.testing.assert_allclose(a, b_, err_msg=n, **TOL)


def test_float32_runs_in_float32():
    cfg64 = tt.TinyConfig(11, 8, 2, 2, 16)
    cfg32 = tt.TinyConfig(11, 8, 2, 2, 16, dtype="float32")
    p64 = random_params(cfg64, 3)
    p32 = params_from_named(cfg32, {n: a.astype(np.float32)
                                       for n, a in named_parameters(p64)})
    tok = np.array([1, 5, 2, 9])
    lg, hid, kv, c = tt.forward(p32, tok, return_cache=True)
    g = backward(p32, c, np.ones_like(lg))
    for a in [lg, kv, g.embeds, *hid, *(a for _, a in named_parameters(g.params))]:
        assert a.dtype == np.float32
    # float32 vs float64 logits: a fixed 1e-4, relative and absolute (a coarse check that the
    # float32 path computes the same function, not the derived tolerance of docs/design.md)
    np.testing.assert_allclose(lg, tt.forward(p64, tok)[0], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ save / load
@given(cfg=configs(), seed=seeds())
def test_save_load_round_trip_is_bit_identical(cfg, seed, tmp_path_factory):
    p = random_params(cfg, seed)
    path = tmp_path_factory.mktemp("tt") / "model.npz"
    tt.save(path, p)
    q = tt.load(path, config=cfg)
    assert q.config == cfg
    for (n, a), (m, b) in zip(named_parameters(p), named_parameters(q)):
        assert n == m and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_load_rejects_corrupted_or_mismatched_files(tmp_path):
    cfg = tt.TinyConfig(11, 8, 2, 2, 16)
    p = tt.init_params(cfg, 0)
    good = tmp_path / "good.npz"
    tt.save(good, p)
    raw = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="not a readable"):
        tt.load(tmp_path / "trunc.npz")
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError):
        tt.load(tmp_path / "flip.npz")
    with pytest.raises(ValueError, match="stored config differs.*n_layers"):
        tt.load(good, config=tt.TinyConfig(11, 8, 1, 2, 16))
    named = dict(named_parameters(p))
    np.savez(tmp_path / "missing.npz", __format__=np.array(tt.FORMAT),
             __config__=np.array('{"vocab_size": 11, "d_model": 8, "n_layers": 2, '
                                 '"n_heads": 2, "max_positions": 16}'),
             **{n: a for n, a in named.items() if n != "wte"})
    with pytest.raises(ValueError, match="missing \\['wte'\\]"):
        tt.load(tmp_path / "missing.npz")
    named["lnf_gamma"] = named["lnf_gamma"][:4]
    np.savez(tmp_path / "shape.npz", __format__=np.array(tt.FORMAT),
             __config__=np.array('{"vocab_size": 11, "d_model": 8, "n_layers": 2, '
                                 '"n_heads": 2, "max_positions": 16}'), **named)
    with pytest.raises(ValueError, match="lnf_gamma"):
        tt.load(tmp_path / "shape.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="__format__"):
        tt.load(tmp_path / "other.npz")


# ------------------------------------------------------------------ bad input
def test_bad_inputs_raise_naming_the_argument():
    cfg = tt.TinyConfig(11, 8, 2, 2, 16)
    p = tt.init_params(cfg, 0)
    tok = np.array([1, 2, 3])
    with pytest.raises(ValueError, match="tokens must lie in \\[0, 11\\)"):
        tt.forward(p, np.array([1, 11]))
    with pytest.raises(TypeError, match="tokens"):
        tt.forward(p, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="positions must lie"):
        tt.forward(p, tok, positions=np.array([0, 1, 16]))
    with pytest.raises(ValueError, match="allow_mask must have shape"):
        tt.forward(p, tok, allow_mask=np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="exactly one"):
        tt.forward(p)
    other = tt.TinyConfig(11, 8, 1, 2, 16)
    kv = tt.forward(tt.init_params(other, 0), tok)[2]
    with pytest.raises(ValueError, match="past_kv.*different model"):
        tt.forward(p, tok, past_kv=kv)
    with pytest.raises(ValueError, match="past_kv"):
        tt.forward(p, tok[None], past_kv=tt.forward(p, tok)[2])  # unbatched cache, batched input
    with pytest.raises(TypeError, match="params.wte"):
        tt.forward(p._replace(wte=p.wte.astype(np.int64)), tok)
    with pytest.raises(ValueError, match="params.W_head"):
        tt.forward(p._replace(W_head=p.W_head[:, :3]), tok)
    with pytest.raises(ValueError, match="n_heads"):
        tt.TinyConfig(11, 8, 2, 3, 16)
    with pytest.raises(TypeError, match="dtype"):
        tt.TinyConfig(11, 8, 2, 2, 16, dtype="int32")
    with pytest.raises(ValueError, match="embeds"):
        tt.forward(p, embeds=np.zeros((3, 5)))
    with pytest.raises(ValueError, match="lo <= hi"):
        tt.forward_layers(p, np.zeros((3, 8)), 2, 1)
