"""The adjacency matrix (storage, property 8), retrieval (property 3), the update (property 4)
and the numba kernels (property 11). Second formulations: the recursive definition of ``tok``,
the core's ``DraftTree.from_template``, a closed form for ``M[i, j] = (i + j + 1) mod V`` and a
sequential Python loop for the update."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.decoding.speculative.tree import DraftTree
from refseq.papers.token_recycling import kernels, matrix, retrieval, update
from refseq.papers.token_recycling.matrix import TokenRecyclingState
from refseq.papers.token_recycling.retrieval import (
    retrieve_tokens,
    retrieve_tree,
    retrieve_tree_batch,
)
from refseq.papers.token_recycling.templates import (
    TEMPLATE_2_2_2,
    template_buffers,
    template_from_layer_counts,
)
from refseq.papers.token_recycling.update import (
    candidate_tokens,
    update_matrix,
    update_matrix_batch,
    winner_nodes,
)
from refseq.testing.strategies import seeds

BUF = template_buffers(TEMPLATE_2_2_2, 8)


def _random_state(rng, V, k=8, dtype=np.int64):
    return TokenRecyclingState(V, k, dtype).set_matrix(rng.integers(0, V, (V, k)))


# --- storage -----------------------------------------------------------------------------------

def test_storage_is_v_times_k_times_itemsize():
    assert TokenRecyclingState(32000, 8).nbytes == 2_048_000  # the paper's "< 2MB"
    assert TokenRecyclingState(32000, 8, np.int32).nbytes == 1_024_000
    s = TokenRecyclingState(10, 3)
    assert s.M.shape == (10, 3) and not s.M.any() and s.M.nbytes == s.nbytes


def test_reset_copy_save_load(tmp_path):
    rng = np.random.default_rng(0)
    s = _random_state(rng, 12, 4)
    c = s.copy()
    assert c.equals(s) and c.M is not s.M
    c.M[0, 0] = (s.M[0, 0] + 1) % 12
    assert not c.equals(s)
    s.save(tmp_path / "m.npz")
    back = matrix.TokenRecyclingState.load(tmp_path / "m.npz")
    assert back.equals(s) and back.M.dtype == np.int64 and "k=4" in repr(back)
    assert not s.reset().M.any()


def test_state_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        TokenRecyclingState(0)
    with pytest.raises(ValueError, match="k must be"):
        TokenRecyclingState(4, 5)
    with pytest.raises(TypeError, match="integer dtype"):
        TokenRecyclingState(4, 2, np.float32)
    with pytest.raises(ValueError, match="cannot hold"):
        TokenRecyclingState(300, 2, np.int8)
    s = TokenRecyclingState(4, 2)
    with pytest.raises(ValueError, match=r"M must have shape \(V, k\)"):
        s.set_matrix(np.zeros((4, 3), np.int64))
    with pytest.raises(ValueError, match=r"M must lie in \[0, 4\)"):
        s.set_matrix(np.full((4, 2), 4))
    with pytest.raises(TypeError, match="M must be an integer array"):
        s.set_matrix(np.zeros((4, 2)))
    with pytest.raises(TypeError, match="path"):
        s.save(3)
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a TokenRecyclingState"):
        TokenRecyclingState.load(tmp_path / "x.npz")


# --- retrieval ---------------------------------------------------------------------------------

def _tok_recursive(M, root, entry):
    """``tok(()) = root``, ``tok(e) = M[tok(e[:-1]), e[-1]]`` (the paper's definition)."""
    return root if not entry else int(M[_tok_recursive(M, root, entry[:-1]), entry[-1]])


@given(seed=seeds(), V=st.sampled_from([2, 5, 16, 64]),
       counts=st.lists(st.integers(1, 6), min_size=1, max_size=5))
def test_layer_gather_equals_the_recursive_definition(seed, V, counts):
    rng = np.random.default_rng(seed)
    k = min(4, V)
    s = _random_state(rng, V, k)
    capped = []
    for c in counts:
        capped.append(min(c, k * (capped[-1] if capped else 1)))
    counts = capped
    template = template_from_layer_counts(counts, k)
    buf = template_buffers(template, k)
    root = int(rng.integers(V))
    want = [root] + [_tok_recursive(s.M, root, e) for e in template]
    assert retrieve_tokens(s, root, buf).tolist() == want
    core = DraftTree.from_template(root, template, lambda t, r: int(s.M[t, r]))
    tree = retrieve_tree(s, root, buf)
    assert tree.tokens.tolist() == core.tokens.tolist()
    assert tree.parents.tolist() == core.parents.tolist()
    assert kernels.retrieve_tree_numba(s, root, buf).tolist() == want


def test_closed_form_for_the_shift_matrix():
    V = 64
    s = TokenRecyclingState(V, 8).set_matrix((np.arange(V)[:, None] + np.arange(8)[None] + 1) % V)
    for root in (0, 5, 63):
        tokens = retrieval.retrieve_tokens(s, root, BUF)
        want = [root] + [(root + sum(r + 1 for r in e)) % V for e in TEMPLATE_2_2_2]
        assert tokens.tolist() == want


def test_batch_equals_single_and_zero_matrix_gives_zeros():
    rng = np.random.default_rng(1)
    s = _random_state(rng, 16)
    roots = np.array([3, 0, 15, 3])
    batch = retrieve_tree_batch(s, roots, BUF)
    assert batch.shape == (4, 81)
    for b, r in enumerate(roots):
        assert batch[b].tolist() == retrieve_tokens(s, int(r), BUF).tolist()
    z = retrieve_tokens(TokenRecyclingState(16), 7, BUF)
    assert z[0] == 7 and not z[1:].any()  # cold start: 80 zeros, duplicate siblings


def test_retrieval_bad_inputs():
    s = TokenRecyclingState(16, 4)
    with pytest.raises(ValueError, match="k = 8 ranks"):
        retrieve_tree(s, 0, BUF)
    s8 = TokenRecyclingState(16, 8)
    with pytest.raises(ValueError, match="root"):
        retrieve_tree(s8, 16, BUF)
    with pytest.raises(TypeError, match="root"):
        retrieve_tree(s8, 1.0, BUF)
    with pytest.raises(TypeError, match="buf"):
        retrieve_tree(s8, 1, TEMPLATE_2_2_2)
    with pytest.raises(TypeError, match="state"):
        retrieve_tree(s8.M, 1, BUF)
    with pytest.raises(ValueError, match="roots"):
        retrieve_tree_batch(s8, np.array([[1]]), BUF)
    with pytest.raises(ValueError, match="k = 8 ranks"):
        kernels.retrieve_tree_numba(s, 0, BUF)


# --- candidate tokens and the update ----------------------------------------------------------

def test_candidates_descending_ties_to_lower_id():
    z = np.array([[0.5, 2.0, 0.5, 2.0, -np.inf, 1.0]])
    assert candidate_tokens(z, 6).tolist() == [[1, 3, 5, 0, 2, 4]]
    assert candidate_tokens(z.astype(np.float32), 3).tolist() == [[1, 3, 5]]


def _sequential_update(M, tokens, logits, rule, k):
    """Write rows in node order ("last": later writes win) or skip rows already written
    ("first"), the top-k computed by a Python sort on (-value, id)."""
    M = M.copy()
    done = set()
    for i, t in enumerate(tokens):
        if rule == "first" and t in done:
            continue
        done.add(t)
        M[t] = sorted(range(logits.shape[1]), key=lambda v: (-logits[i, v], v))[:k]
    return M


@given(seed=seeds(), V=st.sampled_from([3, 8, 20]), N=st.integers(1, 40),
       rule=st.sampled_from(["last", "first"]), dtype=st.sampled_from([np.float32, np.float64]))
def test_update_equals_a_sequential_loop(seed, V, N, rule, dtype):
    rng = np.random.default_rng(seed)
    k = min(3, V)
    s = _random_state(rng, V, k)
    tokens = rng.integers(0, V, N)  # many duplicates for small V
    logits = rng.integers(-3, 3, (N, V)).astype(dtype)  # integer logits: many ties
    want = _sequential_update(s.M, tokens, logits, rule, k)
    absent = np.setdiff1d(np.arange(V), tokens)
    before = s.M[absent].copy()
    rows = update_matrix(s, tokens, logits, rule)
    assert np.array_equal(s.M, want) and rows == np.unique(tokens).size
    assert np.array_equal(s.M[absent], before)  # rows of absent tokens untouched


def test_last_row_of_each_token_wins_and_rules_agree_without_duplicates():
    V, k = 6, 2
    tokens = np.array([2, 4, 2, 0])
    logits = np.eye(4, V)[:, ::-1] + np.eye(4, V)  # row i: ids i and 5 - i tie at 1
    s_last, s_first = TokenRecyclingState(V, k), TokenRecyclingState(V, k)
    update_matrix(s_last, tokens, logits, "last")
    update_matrix(s_first, tokens, logits, "first")
    assert s_last.M[2].tolist() == [2, 3] and s_first.M[2].tolist() == [0, 5]  # node 2 vs 0
    assert s_last.M[4].tolist() == s_first.M[4].tolist() == [1, 4]
    assert winner_nodes(tokens, "last")[1].tolist() == [3, 2, 1]  # values 0, 2, 4
    distinct = np.array([5, 1, 3])
    a, b = TokenRecyclingState(V, k), TokenRecyclingState(V, k)
    update.update_matrix(a, distinct, logits[:3], "last")
    update.update_matrix(b, distinct, logits[:3], "first")
    assert a.equals(b)


def test_batch_update_is_row_major():
    rng = np.random.default_rng(3)
    V, k = 7, 3
    tokens = rng.integers(0, V, (3, 10))
    logits = rng.standard_normal((3, 10, V))
    s = TokenRecyclingState(V, k)
    update_matrix_batch(s, tokens, logits, "last")
    want = _sequential_update(np.zeros((V, k), np.int64), tokens.reshape(-1),
                              logits.reshape(-1, V), "last", k)
    assert np.array_equal(s.M, want)


@given(seed=seeds(), V=st.sampled_from([2, 5, 30]), N=st.integers(1, 81))
def test_numba_update_equals_the_reference(seed, V, N):
    rng = np.random.default_rng(seed)
    k = min(4, V)
    a = _random_state(rng, V, k)
    b = a.copy()
    tokens = rng.integers(0, V, N)
    logits = rng.integers(-2, 2, (N, V)).astype(np.float64)
    assert kernels.update_matrix_numba(a, tokens, logits) == update_matrix(b, tokens, logits)
    assert np.array_equal(a.M, b.M)
    assert kernels.update_matrix_numba(a, tokens, logits) == np.unique(tokens).size  # markers
    # were cleared: a second call writes the same rows again


@pytest.mark.parametrize("call, exc, match", [
    (lambda s: update_matrix(s, np.array([0, 1]), np.zeros((2, 4)), "middle"), ValueError,
     "rule"),
    (lambda s: update_matrix(s, np.array([0, 4]), np.zeros((2, 4))), ValueError, "tokens"),
    (lambda s: update_matrix(s, np.array([0, 1]), np.zeros((3, 4))), ValueError, "logits"),
    (lambda s: update_matrix(s, np.array([0, 1]), np.full((2, 4), np.nan)), ValueError, "NaN"),
    (lambda s: update_matrix(s, np.array([0, 1]), np.full((2, 4), np.inf)), ValueError, "inf"),
    (lambda s: update_matrix(s, np.array([0, 1]), np.zeros((2, 4), int)), TypeError, "float"),
    (lambda s: update_matrix(s, np.array([0.0]), np.zeros((1, 4))), TypeError, "tokens"),
    (lambda s: update_matrix_batch(s, np.array([0, 1]), np.zeros((2, 4))), ValueError,
     "tokens"),
    (lambda s: kernels.update_matrix_numba(s, np.array([0]), np.zeros((1, 5))), ValueError,
     "logits"),
    (lambda s: candidate_tokens(np.zeros((1, 4)), 5), ValueError, "k must be"),
    (lambda s: candidate_tokens(np.zeros(4), 2), ValueError, r"\(R, V\)"),
])
def test_update_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(TokenRecyclingState(4, 2))
