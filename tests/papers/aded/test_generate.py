"""ADED through the engine (refseq.papers.aded.drafter, refseq.papers.aded.generate): greedy
equals plain greedy, point-mode sampling is exact, the released nucleus rule is not
(refseq.papers.aded.rest_nucleus)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refseq.decoding.speculative.engine import plain_greedy
from refseq.decoding.speculative.exact import lossless_error, step_emission_distribution
from refseq.decoding.speculative.target import TabularTreeLM, TinyTransformerTreeLM
from refseq.decoding.speculative.tree import DraftTree
from refseq.models.tiny_transformer import TinyConfig, init_params
from refseq.models.toy_lm import random_markov_lm, sample_sequences
from refseq.papers.aded import (
    ADEDDrafter,
    TrigramMatrix,
    aded_generate,
    rest_nucleus_emission,
    verify_rest_nucleus,
)
from refseq.papers.aded import drafter as drafter_mod
from refseq.papers.aded import generate as generate_mod
from refseq.papers.aded import rest_nucleus as rest_nucleus_mod

V = 6
TT = TinyTransformerTreeLM(init_params(TinyConfig(vocab_size=V, d_model=12, n_layers=2,
                                                  n_heads=2, max_positions=160), 0))


def _matrices(lm, V, seed):
    rng = np.random.default_rng(seed)
    corpus = TrigramMatrix.build(list(sample_sequences(lm, 20, 30, seed)))
    W = rng.random((V, V, V)) * (rng.random((V, V, V)) < 0.3)  # garbage
    return {"empty": TrigramMatrix(), "corpus": corpus, "garbage": TrigramMatrix.from_dense(W)}


@settings(max_examples=6)
@given(st.integers(0, 10**6), st.sampled_from(["empty", "corpus", "garbage"]), st.booleans(),
       st.sampled_from(["mcts", "greedy", "full"]))
def test_greedy_equals_plain_greedy_tabular(seed, kind, adaptive, method):
    lm = random_markov_lm(V, 0.3, seed, order=3)
    target = TabularTreeLM(lm)
    matrix = _matrices(lm, V, seed)[kind]
    prompt = np.random.default_rng(seed).integers(0, V, 3)
    out, st_ = aded_generate(target, prompt, 40, matrix, adaptive=adaptive, method=method,
                             iterations=40, mcts_rng=seed)
    assert np.array_equal(out, plain_greedy(target, prompt, 40))
    assert st_.mat >= 1.0 and len(st_.drafter) == st_.spec.steps
    assert all(h["tree_size"] <= 65 for h in st_.drafter)


@pytest.mark.parametrize("kind", ["empty", "corpus", "garbage"])
@pytest.mark.parametrize("adaptive", [True, False])
def test_greedy_equals_plain_greedy_tiny_transformer(kind, adaptive):
    lm = random_markov_lm(V, 0.3, 1, order=3)
    matrix = _matrices(lm, V, 2)[kind]
    prompt = np.array([1, 2, 3, 1])
    out, st_ = aded_generate(TT, prompt, 30, matrix, adaptive=adaptive, iterations=30)
    assert np.array_equal(out, plain_greedy(TT, prompt, 30))


def test_eos_max_tokens_prompt_of_one_and_fallback():
    lm = random_markov_lm(V, 0.3, 4, order=3)
    target = TabularTreeLM(lm)
    ref = plain_greedy(target, np.array([2]), 30)
    eos = int(ref[7])
    out, _ = aded_generate(target, np.array([2]), 30, TrigramMatrix(), eos_id=eos,
                           fallback_token=0)
    assert np.array_equal(out, plain_greedy(target, np.array([2]), 30, eos_id=eos))
    out, _ = aded_generate(target, np.array([2]), 0, TrigramMatrix())
    assert out.size == 0


def test_repetitive_output_is_accepted_more_with_adaptation():
    """On a repetitive greedy output, the adapted table predicts the cycle (MAT well above 1)."""
    lm = random_markov_lm(V, 0.3, 5, order=3)
    target = TabularTreeLM(lm)
    prompt = np.array([0, 1, 2])
    _, off = aded_generate(target, prompt, 60, TrigramMatrix(), adaptive=False)
    _, on = aded_generate(target, prompt, 60, TrigramMatrix(), adaptive=True)
    assert off.mat == 1.0  # empty table, no drafts
    assert on.mat > 2.0


def _order2(seed, V=3):
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(V), size=V * V)
    T[rng.random(T.shape) < 0.15] = 0.0
    T[T.sum(1) == 0, 0] = 1.0
    T /= T.sum(1, keepdims=True)
    return lambda pre: T[pre[-2] * V + pre[-1]]


def _rows(fn, tree, ctx):
    paths = [()]
    for i in range(1, tree.num_nodes):
        paths.append(paths[tree.parents[i]] + (int(tree.tokens[i]),))
    return np.stack([fn(ctx + p) for p in paths])


@pytest.mark.parametrize("seed", range(8))
def test_point_mode_is_exact_on_aded_trees(seed):
    rng = np.random.default_rng(seed)
    W = rng.random((3, 3, 3)) * (rng.random((3, 3, 3)) < 0.6)
    d = ADEDDrafter(TrigramMatrix.from_dense(W), iterations=20, sentence_length=3, rng=seed)
    ctx = (int(rng.integers(3)), int(rng.integers(3)))
    tree, q, mode = d.draft(np.array(ctx[:1]), ctx[1])
    assert q is None and mode == "point"
    fn = _order2(seed)
    em = step_emission_distribution(tree, _rows(fn, tree, ctx), None, "point")
    assert lossless_error(em, fn, ctx, 3) < 1e-12


def test_rest_nucleus_is_lossy_on_two_candidates():
    tree = DraftTree(np.array([-1, 0, 0]), np.array([0, 1, 2]))  # candidates [1] and [2]
    fn = _order2(3)
    ctx = (0, 0)
    p = _rows(fn, tree, ctx)
    em = rest_nucleus_emission(tree, p)
    assert abs(sum(em.values()) - 1) < 1e-12
    px, py = p[0, 1], p[0, 2]
    first_x = sum(v for e, v in em.items() if e[0] == 1)
    assert first_x == pytest.approx(px + (1 - px) * (1 - py) * px, abs=1e-12)  # by hand
    assert lossless_error(em, fn, ctx, 3) > 1e-3
    exact = step_emission_distribution(tree, p, None, "point")
    assert lossless_error(exact, fn, ctx, 3) < 1e-12


def test_rest_nucleus_with_hand_uniforms():
    tree = DraftTree(np.array([-1, 0, 1, 0]), np.array([0, 1, 2, 2]))  # rows [0,1,2], [0,3]
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [1.0, 0.0, 0.0], [0.2, 0.2, 0.6]])
    # row 0: u .6 -> cdf [.5,.8,1] gives token 1 (match), u .5 at node 1 -> cdf [.1,.2,1]: 2 ok
    res = verify_rest_nucleus(tree, p, np.array([[0.6, 0.5], [0.9, 0.0]]), 0.3)
    assert res.path.tolist() == [0, 1, 2] and res.next_token == 0 and res.num_accepted == 2
    # row 0 misses (u .1 -> 0), row 1 hits token 2 (u .9): path [0, 3], next from p[3]
    res = verify_rest_nucleus(tree, p, np.array([[0.1, 0.5], [0.9, 0.0]]), 0.5)
    assert res.path.tolist() == [0, 3] and res.next_token == 2
    # a tie (both rows accept one token): the first row wins, next token from p[1]
    res = verify_rest_nucleus(tree, p, np.array([[0.6, 0.0], [0.9, 0.0]]), 0.05)
    assert res.path.tolist() == [0, 1] and res.next_token == 0
    f32 = verify_rest_nucleus(tree, p.astype(np.float32), np.array([[0.6, 0.0], [0.9, 0.0]]),
                              0.05)
    assert f32.path.tolist() == [0, 1] and f32.next_token == 0  # float32 input, same walk
    with pytest.raises(ValueError, match="finite"):
        verify_rest_nucleus(tree, np.full((4, 3), np.nan), np.zeros((2, 2)), 0.5)
    with pytest.raises(ValueError, match="u_rows"):
        verify_rest_nucleus(tree, p, np.zeros((2, 3)), 0.5)
    with pytest.raises(ValueError, match="target_probs"):
        verify_rest_nucleus(tree, p[:2], np.zeros((2, 2)), 0.5)
    with pytest.raises(ValueError, match="u_rows"):
        verify_rest_nucleus(tree, p, np.array([[np.nan, 0.0], [0.0, 0.0]]), 0.5)
    with pytest.raises(ValueError, match="max_outcomes"):
        rest_nucleus_emission(tree, p, max_outcomes=1)
    with pytest.raises(TypeError, match="max_outcomes"):
        rest_nucleus_emission(tree, p, max_outcomes=None)


def test_sampling_runs_in_both_acceptance_modes():
    lm = random_markov_lm(V, 0.5, 6, order=3)
    target = TabularTreeLM(lm)
    for acc in generate_mod.ACCEPTANCE:
        out, st_ = aded_generate(target, np.array([1, 2]), 25, TrigramMatrix(),
                                 temperature=1.0, top_p=0.9, acceptance=acc, rng=0,
                                 iterations=20)
        assert out.shape == (25,) and out.max() < V and st_.mat >= 1.0
    assert rest_nucleus_mod.__all__ == ["rest_nucleus_emission", "verify_rest_nucleus"]


def test_drafter_history_and_bad_inputs():
    m = TrigramMatrix.build([np.array([0, 1, 2, 3, 0, 1, 2, 3])])
    d = ADEDDrafter(m, iterations=10, rng=0)
    tree, _, _ = d.draft(np.array([0]), 1)
    h = d.history[-1]
    assert h["tree_size"] == tree.num_nodes and h["touched"] == 0 and h["num_nodes"] >= 1
    assert drafter_mod.METHODS == ("mcts", "greedy", "full")
    target = TabularTreeLM(random_markov_lm(3, 0.5, 0, order=3))
    big = TrigramMatrix()
    big.set_weight((0, 1), 5, 1.0)
    with pytest.raises(ValueError, match="vocabulary"):
        aded_generate(target, np.array([0, 1]), 5, big)
    with pytest.raises(ValueError, match="temperature > 0"):
        aded_generate(target, np.array([0, 1]), 5, TrigramMatrix(), acceptance="rest_nucleus")
    with pytest.raises(ValueError, match="acceptance"):
        aded_generate(target, np.array([0, 1]), 5, TrigramMatrix(), acceptance="typical")
    with pytest.raises(TypeError, match="matrix"):
        ADEDDrafter({})
    with pytest.raises(ValueError, match="method"):
        ADEDDrafter(m, method="beam")
    with pytest.raises(TypeError, match="adaptive"):
        ADEDDrafter(m, adaptive=1)
    with pytest.raises(ValueError, match="choices"):
        ADEDDrafter(m, choices=-1)
    with pytest.raises(ValueError, match="fallback_token"):
        ADEDDrafter(TrigramMatrix(vocab_size=4), fallback_token=4)
    with pytest.raises(ValueError, match="mcts_rng"):
        aded_generate(target, np.array([0, 1]), 5, TrigramMatrix(), mcts_rng=-1)
    with pytest.raises(ValueError, match="prompt"):
        aded_generate(target, np.array([0, 7]), 5, TrigramMatrix())
