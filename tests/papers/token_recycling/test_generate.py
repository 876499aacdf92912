"""The generation loop: lossless greedy for every matrix state (property 1), the oracle and the
learning mechanisms (5, 6), hot-start bookkeeping (7), the sampling extension proved exactly
and by Monte Carlo (9), KV consistency (10), EOS / budget / seeding / update-on-EOS rules, the
drafter in the core engine, and bad inputs.

Ground truths do not use the code under test: ``plain_greedy`` runs one plain causal prefill per
token; oracle rows and the exact sampling law are read off the target tables by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from refseq.decoding.speculative.engine import plain_greedy, speculative_generate
from refseq.decoding.speculative.exact import lossless_error, step_emission_distribution
from refseq.decoding.speculative.target import TabularTreeLM, TinyTransformerTreeLM
from refseq.decoding.speculative.tree import DraftTree
from refseq.models.tiny_transformer import TinyConfig, forward, init_params
from refseq.models.toy_lm import TabularLM, random_markov_lm
from refseq.papers.token_recycling import drafter, generate
from refseq.papers.token_recycling.drafter import TokenRecyclingDrafter
from refseq.papers.token_recycling.generate import token_recycling_generate, verify_step
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.retrieval import retrieve_tree
from refseq.papers.token_recycling.templates import (
    TEMPLATE_2_2_2,
    template_buffers,
)
from refseq.testing.strategies import seeds

# the simulator busy-polls at every barrier: a short GIL switch interval makes it ~5x faster
pytestmark = pytest.mark.usefixtures("fast_simulated_barriers")

SMALL = [(0,), (1,), (0, 0), (0, 1), (1, 0), (0, 0, 0)]  # k = 2, depth 3
CFG16 = TinyConfig(vocab_size=16, d_model=8, n_layers=1, n_heads=2, max_positions=96)
PARAMS16 = init_params(CFG16, 0)


def _oracle(table, k):
    """``M[t]`` = the k most likely successors of t in a bigram table (Python sort)."""
    V = table.shape[1]
    return np.array([sorted(range(V), key=lambda v: (-table[t, v], v))[:k] for t in range(V)])


def _state(kind, V, k, rng, target_table=None):
    s = TokenRecyclingState(V, k)
    if kind == "garbage":
        s.set_matrix(rng.integers(0, V, (V, k)))
    elif kind == "oracle" and target_table is not None:
        s.set_matrix(_oracle(target_table, k))
    return s


# --- property 1: lossless greedy ---------------------------------------------------------------

@given(seed=seeds(), V=st.sampled_from([5, 16, 64]), order=st.sampled_from([2, 3]),
       prompt_len=st.integers(1, 12), n=st.integers(0, 40),
       kind=st.sampled_from(["zeros", "garbage", "oracle", "hot"]),
       eos=st.booleans(), verify=st.sampled_from(["paths", "walk"]))
def test_greedy_equals_plain_greedy_on_tables(seed, V, order, prompt_len, n, kind, eos, verify):
    rng = np.random.default_rng(seed)
    lm = random_markov_lm(V, 0.3, seed, order=order)
    target = TabularTreeLM(lm)
    k = min(8, V)
    template = TEMPLATE_2_2_2 if k == 8 else [(0,), (1,), (0, 0), (1, 0), (0, 0, 0)]
    s = _state(kind, V, k, rng, lm.table if order == 2 else None)
    prompt = rng.integers(0, V, prompt_len)
    eos_id = int(rng.integers(V)) if eos else None
    if kind == "hot":  # hot start: the matrix left by an earlier query
        token_recycling_generate(target, rng.integers(0, V, 3), 30, s, template=template)
    out, stats = token_recycling_generate(target, prompt, n, s, template=template,
                                          eos_id=eos_id, verify=verify)
    assert out.tolist() == plain_greedy(target, prompt, n, eos_id=eos_id).tolist()
    assert sum(stats.emitted) == out.size and stats.target_calls == stats.steps
    assert all(1 <= L <= 4 if k < 8 else 1 <= L <= 7 for L in stats.accept_len)


@settings(max_examples=6)
@given(seed=seeds(), prompt_len=st.integers(1, 12), n=st.integers(1, 25),
       kind=st.sampled_from(["zeros", "garbage", "hot"]), eos=st.booleans())
def test_greedy_equals_plain_greedy_on_a_tiny_transformer(seed, prompt_len, n, kind, eos):
    rng = np.random.default_rng(seed)
    target = TinyTransformerTreeLM(PARAMS16)
    s = _state(kind, 16, 8, rng)
    if kind == "hot":
        token_recycling_generate(target, rng.integers(0, 16, 4), 12, s)
    prompt = rng.integers(0, 16, prompt_len)
    eos_id = int(rng.integers(16)) if eos else None
    out, _ = token_recycling_generate(target, prompt, n, s, eos_id=eos_id)
    assert out.tolist() == plain_greedy(target, prompt, n, eos_id=eos_id).tolist()


def test_eos_and_budget_cut_inside_a_step():
    lm = random_markov_lm(16, 0.3, 4)
    target = TabularTreeLM(lm)
    s = TokenRecyclingState(16).set_matrix(_oracle(lm.table, 8))  # every step emits 7
    ref = plain_greedy(target, np.array([2]), 20)
    out, st_ = token_recycling_generate(target, np.array([2]), 10, s.copy())
    assert out.tolist() == ref[:10].tolist() and st_.emitted == [7, 3] and st_.accept_len == [7, 7]
    eos = int(ref[4])
    first = ref.tolist().index(eos)  # EOS at the first occurrence of that token
    out, st_ = token_recycling_generate(target, np.array([2]), 20, s.copy(), eos_id=eos)
    assert out.tolist() == ref[:first + 1].tolist() and out[-1] == eos
    out, st_ = token_recycling_generate(target, np.array([2]), 0, s)
    assert out.size == 0 and st_.steps == 0 and st_.mat == 0.0


# --- properties 5 and 6: the oracle and the learning mechanism ----------------------------------

def test_oracle_matrix_accepts_the_full_depth_on_an_order1_target():
    for seed in range(3):
        lm = random_markov_lm(32, 0.5, seed)
        s = TokenRecyclingState(32).set_matrix(_oracle(lm.table, 8))
        _, stats = token_recycling_generate(TabularTreeLM(lm), np.array([seed]), 60, s)
        assert stats.accept_len == [7] * stats.steps and stats.mat == 7.0


def test_learning_on_an_order1_target_every_write_is_an_oracle_row():
    """Order 1: a node's candidates depend only on its own token, so every row written is the
    oracle row, whatever the node's (possibly wrong) prefix; once the greedy cycle's tokens have
    all been tree nodes, every step accepts the full depth."""
    lm = random_markov_lm(64, 0.3, 7)
    oracle = _oracle(lm.table, 8)
    s = TokenRecyclingState(64)
    out, stats = token_recycling_generate(TabularTreeLM(lm), np.array([5, 9]), 256, s)
    written = s.M.any(axis=1)
    assert np.array_equal(s.M[written], oracle[written])
    assert stats.accept_len[-10:] == [7] * 10 and stats.accept_len[0] < 7
    cycle = set(out[-20:].tolist())
    assert written[list(cycle)].all()


# --- property 7: hot start bookkeeping ---------------------------------------------------------

def test_hot_start_carries_the_matrix_and_never_changes_outputs(tmp_path):
    lm = random_markov_lm(16, 0.3, 2, order=3)
    target = TabularTreeLM(lm)
    a, b = np.array([1, 2, 3]), np.array([4, 5])
    hot = TokenRecyclingState(16)
    out_a, _ = token_recycling_generate(target, a, 40, hot)
    hot.save(tmp_path / "after_a.npz")
    out_b_hot, st_hot = token_recycling_generate(target, b, 40, hot)
    resumed = TokenRecyclingState.load(tmp_path / "after_a.npz")  # B's initial state
    out_b_res, st_res = token_recycling_generate(target, b, 40, resumed)
    assert resumed.equals(hot) and st_res.accept_len == st_hot.accept_len
    cold = TokenRecyclingState(16)
    out_b_cold, st_cold = token_recycling_generate(target, b, 40, cold)
    assert out_b_cold.tolist() == out_b_hot.tolist() == out_b_res.tolist()
    assert st_cold.accept_len != st_hot.accept_len  # only the statistics differ
    assert not hot.reset().M.any()


# --- property 9: sampling extension -------------------------------------------------------------

def _order2(V, seed):
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(V), size=V * V)  # (V*V, V) p(. | a, b) at row a * V + b
    return T, (lambda pre: T[pre[-2] * V + pre[-1]])


@pytest.mark.parametrize("seed", range(6))
def test_point_verification_of_a_recycled_tree_is_exact(seed):
    V = 3
    rng = np.random.default_rng(seed)
    s = TokenRecyclingState(V, 2).set_matrix(rng.integers(0, V, (V, 2)))  # duplicates likely
    buf = template_buffers([(0,), (1,), (0, 0), (0, 1), (1, 0)], 2)
    ctx = (int(rng.integers(V)), int(rng.integers(V)))  # ctx[-1] is the root
    tree = retrieve_tree(s, ctx[-1], buf)
    _, target = _order2(V, seed)
    paths = [()]
    for i in range(1, tree.num_nodes):
        paths.append(paths[tree.parents[i]] + (int(tree.tokens[i]),))
    rows = np.array([target(ctx + p) for p in paths])  # (N, V) the law after each node
    em = step_emission_distribution(tree, rows, None, "point")
    assert lossless_error(em, target, ctx, V) < 1e-12


@pytest.mark.parametrize("n_samples", [600, pytest.param(6000, marks=pytest.mark.slow)])
def test_sampling_monte_carlo_matches_the_target_law(n_samples):
    V = 3
    T, _ = _order2(V, 11)
    target = TabularTreeLM(TabularLM(3, np.log(T)))
    prompt = np.array([1, 2])
    s = TokenRecyclingState(V, 2)
    buf = template_buffers(SMALL, 2)
    rng = np.random.default_rng(0)
    counts = np.zeros(V ** 3)
    for _ in range(n_samples):  # hot start: the matrix keeps changing between samples
        out, _ = token_recycling_generate(target, prompt, 3, s, buffers=buf, temperature=1.0,
                                          rng=rng)
        counts[out[0] * 9 + out[1] * 3 + out[2]] += 1
    law = np.array([T[1 * V + 2, x] * T[2 * V + x, y] * T[x * V + y, z]
                    for x, y, z in itertools.product(range(V), repeat=3)])
    assert chisquare(counts, n_samples * law).pvalue > 1e-4


def test_sampling_records_the_unwarped_top_k():
    lm = random_markov_lm(8, 0.5, 3)
    s = TokenRecyclingState(8, 2)
    token_recycling_generate(TabularTreeLM(lm), np.array([3]), 1, s, template=[(0,)],
                             temperature=0.5, top_k=1, rng=0)
    assert s.M[3].tolist() == _oracle(lm.table, 2)[3].tolist()  # top-k=1 would cut to one


# --- property 10: KV consistency ---------------------------------------------------------------

class CheckedTarget(TinyTransformerTreeLM):
    """After every commit, the cache must equal a fresh prefill over the committed tokens."""

    def __init__(self, params, tol):
        super().__init__(params)
        self.tol, self.checks = tol, 0

    def prefill(self, tokens):
        self.seq = [int(t) for t in tokens[:-1]]
        return super().prefill(tokens)

    def forward_tree(self, tree):
        self._tree = tree
        return super().forward_tree(tree)

    def commit(self, path):
        super().commit(path)
        self.seq += [int(t) for t in self._tree.tokens[np.asarray(path)]]
        _, _, kv = forward(self.params, tokens=np.array(self.seq))
        assert self.cache.shape == kv.shape
        np.testing.assert_allclose(self.cache, kv, atol=self.tol, rtol=0)
        self.checks += 1


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("seed_from_prompt", [False, True])
def test_kv_cache_equals_a_fresh_prefill_after_every_step(dtype, tol, seed_from_prompt):
    cfg = TinyConfig(vocab_size=16, d_model=8, n_layers=2, n_heads=2, max_positions=96,
                     dtype=dtype)
    target = CheckedTarget(init_params(cfg, 1), tol)
    s = TokenRecyclingState(16).set_matrix(np.random.default_rng(0).integers(0, 16, (16, 8)))
    out, stats = token_recycling_generate(target, np.array([3, 1, 4, 1]), 20, s,
                                          seed_from_prompt=seed_from_prompt)
    assert target.checks == stats.steps + seed_from_prompt and out.size == 20


# --- seeding, update on EOS, the two verification forms ----------------------------------------

def test_seed_from_prompt_writes_each_prompt_position():
    lm = random_markov_lm(10, 0.5, 5, order=3)
    target = TabularTreeLM(lm)
    prompt = np.array([4, 7, 4, 2])
    s = TokenRecyclingState(10, 3)
    generate.seed_matrix_from_prompt(s, target, prompt)
    for i, t in [(1, 7), (2, 4), (3, 2)]:  # token 4 at positions 0 and 2: the last wins
        row = lm.table[prompt[max(i - 1, 0)] * 10 + prompt[i]] if i else None
        assert s.M[t].tolist() == sorted(range(10), key=lambda v: (-row[v], v))[:3]
    assert target.n_past == 3 and target.committed.tolist() == [4, 7, 4]
    out, _ = token_recycling_generate(target, prompt, 15, s, template=SMALL, seed_from_prompt=True)
    assert out.tolist() == plain_greedy(target, prompt, 15).tolist()
    one = TokenRecyclingState(10, 3)
    generate.seed_matrix_from_prompt(one, target, np.array([6]))
    row = lm.table[0 * 10 + 6]  # a one-token context is padded with token 0
    assert one.M[6].tolist() == sorted(range(10), key=lambda v: (-row[v], v))[:3]


def test_update_on_eos_switch():
    lm = random_markov_lm(16, 0.3, 4)
    target = TabularTreeLM(lm)
    ref = plain_greedy(target, np.array([2]), 10)
    for flag in (False, True):
        s = TokenRecyclingState(16)
        before = s.copy()
        out, stats = token_recycling_generate(target, np.array([2]), 10, s, eos_id=int(ref[0]),
                                              update_on_eos=flag)
        assert stats.steps == 1 and out.tolist() == [ref[0]]
        assert s.equals(before) != flag and (stats.rows_written[0] > 0) == flag


def test_paths_can_go_deeper_than_the_walk_under_duplicate_siblings():
    """Root 0 with two children holding token 1: the walk commits to the first copy, whose
    child is wrong; the path form finds the matching grandchild under the second copy."""
    buf = template_buffers([(0,), (1,), (0, 0), (1, 0)], 2)
    tokens = np.array([0, 1, 1, 3, 2])  # nodes 3, 4 are the children of nodes 1, 2
    logits = np.zeros((5, 4))
    logits[0, 1] = logits[1, 2] = logits[2, 2] = logits[3, 0] = logits[4, 3] = 1.0
    tree = buf.tree(tokens)
    p_path, nxt_path = verify_step(tree, logits, buf, "paths")
    p_walk, nxt_walk = verify_step(tree, logits, buf, "walk")
    assert p_path.tolist() == [0, 2, 4] and nxt_path == 3
    assert p_walk.tolist() == [0, 1] and nxt_walk == 2


def test_drafter_in_the_core_engine_matches_the_walk_loop():
    lm = random_markov_lm(16, 0.3, 9, order=3)
    target = TabularTreeLM(lm)
    prompts = [np.array([1, 2, 3]), np.array([7])]
    s_engine, s_loop = TokenRecyclingState(16), TokenRecyclingState(16)
    d = drafter.TokenRecyclingDrafter(s_engine)
    for p in prompts:  # hot start in both
        out_e, st_e = speculative_generate(target, d, p, 30)
        out_l, st_l = token_recycling_generate(target, p, 30, s_loop, verify="walk",
                                               update_on_eos=True)
        assert out_e.tolist() == out_l.tolist() == plain_greedy(target, p, 30).tolist()
        assert [m + 1 for m in st_e.num_accepted] == st_l.accept_len
        assert d.rows_written == st_l.rows_written
    assert s_engine.equals(s_loop)
    cold = TokenRecyclingDrafter(s_engine, update_rule="first", cold_start=True)
    speculative_generate(target, cold, prompts[0], 1)
    assert s_engine.M.any() and len(cold.rows_written) == 1  # reset, then one step written


# --- bad inputs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, exc, match", [
    (dict(state=TokenRecyclingState(9)), ValueError, "vocab_size"),
    (dict(state=np.zeros((8, 8), np.int64)), TypeError, "state"),
    (dict(prompt=np.array([8])), ValueError, "prompt"),
    (dict(prompt=np.array([], np.int64)), ValueError, "prompt"),
    (dict(prompt=np.array([1.0])), TypeError, "prompt"),
    (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
    (dict(eos_id=8), ValueError, "eos_id"),
    (dict(update_rule="middle"), ValueError, "update_rule"),
    (dict(update_scope="leaves"), ValueError, "update_scope"),
    (dict(verify="beam"), ValueError, "verify"),
    (dict(seed_from_prompt=1), TypeError, "seed_from_prompt"),
    (dict(update_on_eos="yes"), TypeError, "update_on_eos"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(template=[(0,), (9,)]), ValueError, "ranks"),
    (dict(buffers=template_buffers(TEMPLATE_2_2_2, 9)), ValueError, "buffers"),
    (dict(backend="gpu"), ValueError, "backend"),
    (dict(target=object()), TypeError, "TreeLM"),
])
def test_generate_bad_inputs(kw, exc, match):
    args = dict(target=TabularTreeLM(random_markov_lm(8, 0.5, 0)), prompt=np.array([1, 2]),
                max_new_tokens=3, state=TokenRecyclingState(8))
    args.update(kw)
    with pytest.raises(exc, match=match):
        token_recycling_generate(args.pop("target"), args.pop("prompt"),
                                 args.pop("max_new_tokens"), args.pop("state"), **args)


def test_drafter_bad_inputs():
    with pytest.raises(TypeError, match="state"):
        TokenRecyclingDrafter(np.zeros((4, 8)))
    with pytest.raises(ValueError, match="update_rule"):
        TokenRecyclingDrafter(TokenRecyclingState(8), update_rule="all")
    with pytest.raises(TypeError, match="cold_start"):
        TokenRecyclingDrafter(TokenRecyclingState(8), cold_start=0)
    with pytest.raises(ValueError, match="ranks"):
        TokenRecyclingDrafter(TokenRecyclingState(8, 2))  # 2.2.2 needs k = 8



def test_verify_step_and_seed_bad_inputs():
    buf = template_buffers([(0,), (1,), (0, 0)], 2)
    tree, logits = buf.tree(np.array([1, 2, 3, 3])), np.zeros((4, 4))
    for kw, exc, match in [(dict(logits=np.zeros((4, 4), np.int64)), TypeError, "logits"),
                           (dict(logits=np.zeros((3, 4))), ValueError, "logits"),
                           (dict(logits=np.full((4, 4), np.nan)), ValueError, "logits"),
                           (dict(buf=[(0,)]), TypeError, "buf"),
                           (dict(tree=DraftTree.chain(1, np.array([2, 3, 0]))), ValueError,
                            "tree"),
                           (dict(backend="gpu"), ValueError, "backend")]:
        args = dict(tree=tree, logits=logits, buf=buf)
        args.update(kw)
        with pytest.raises(exc, match=match):
            verify_step(**args)
    target = TabularTreeLM(random_markov_lm(8, 0.5, 0))
    for args, exc, match in [((TokenRecyclingState(9), target, np.array([1])), ValueError,
                              "vocab_size"),
                             ((np.zeros((8, 8)), target, np.array([1])), TypeError, "state"),
                             ((TokenRecyclingState(8), object(), np.array([1])), TypeError,
                              "target"),
                             ((TokenRecyclingState(8), target, np.array([8])), ValueError,
                              "prompt"),
                             ((TokenRecyclingState(8), target, np.array([], np.int64)),
                              ValueError, "prompt")]:
        with pytest.raises(exc, match=match):
            generate.seed_matrix_from_prompt(*args)
    with pytest.raises(ValueError, match="rule"):
        generate.seed_matrix_from_prompt(TokenRecyclingState(8), target, np.array([1]), "mid")
    with pytest.raises(TypeError, match="buffers"):
        token_recycling_generate(target, np.array([1]), 2, TokenRecyclingState(8), buffers=3)

# --- hot path: greedy verification of recycled trees on every tier ---------------------------

def test_verification_tiers_agree_on_recycled_trees(backend):
    """Trees retrieved from random matrices over V = 8 (many duplicate siblings), arg-max rows
    that follow a random path: every tier equals the core's single-tree verifiers."""
    from refseq.decoding.speculative.greedy import verify_greedy_paths, verify_greedy_tree

    buf = template_buffers(TEMPLATE_2_2_2, 8)
    rng = np.random.default_rng(5)
    for _ in range(3):
        s = TokenRecyclingState(8).set_matrix(rng.integers(0, 8, (8, 8)))
        tree = retrieve_tree(s, int(rng.integers(8)), buf)
        am = rng.integers(0, 8, 81)
        node = 0
        while (kids := np.flatnonzero(buf.parents == node)).size and rng.random() < 0.8:
            node = int(rng.choice(kids))
            am[buf.parents[node]] = tree.tokens[node]
        logits = np.eye(8)[am]
        walk = verify_greedy_tree(tree, am)
        acc, best, last = verify_greedy_paths(buf.retrieve, buf.retrieve_len, tree.tokens, am)
        p, nxt = verify_step(tree, logits, buf, "walk", backend)
        assert p.tolist() == walk.path.tolist() and nxt == walk.next_token
        p, nxt = verify_step(tree, logits, buf, "paths", backend)
        assert p.tolist() == buf.retrieve[best, : acc[best] + 1].tolist() and nxt == am[last]
