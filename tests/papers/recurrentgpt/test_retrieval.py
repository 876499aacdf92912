"""Top-k cosine retrieval (property 3), the kv-lookup hot path route, and the official
retrieval (``util.cos_sim`` + ``torch.topk``, ported) as a peer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refseq.papers.recurrentgpt.embed import HashingEmbedder
from refseq.papers.recurrentgpt.retrieval import cosine_topk, cosine_topk_kv
from tests.papers.recurrentgpt import official_port


def brute_force(q, index, k):
    """Python-level scores and a sort by (-score, row): the spec's ranking rule."""
    rows = []
    for i, m in enumerate(index):
        nq, nm = np.sqrt(sum(x * x for x in q)), np.sqrt(sum(x * x for x in m))
        s = 0.0 if nq == 0 or nm == 0 else sum(a * b for a, b in zip(q, m)) / (nq * nm)
        rows.append((-s, i))
    rows.sort()
    return [i for _, i in rows[:k]], [-s for s, _ in rows[:k]]


@given(st.integers(0, 2 ** 32 - 1), st.integers(0, 9), st.integers(1, 5), st.integers(0, 12))
def test_cosine_topk_equals_brute_force_with_ties(seed, M, D, k):
    rng = np.random.default_rng(seed)
    index = rng.integers(-2, 3, size=(M, D)).astype(np.float64)  # small grid: many exact ties
    index[rng.random(M) < 0.2] = 0.0  # some zero rows (score 0)
    if M:
        index[rng.integers(M)] = index[0] * 2.0  # a scaled duplicate: an exact cosine tie
    q = rng.integers(-2, 3, size=D).astype(np.float64)
    idx, scores = cosine_topk(q, index, k)
    want_idx, want_scores = brute_force(q, index, k)
    assert len(idx) == min(k, M) and idx.dtype == np.int64
    np.testing.assert_allclose(scores, want_scores, atol=1e-12, rtol=0)
    # the ranking agrees with the brute force wherever scores are apart by more than rounding
    s_all = np.array([brute_force(q, index, M)[1][list(brute_force(q, index, M)[0]).index(i)]
                      for i in range(M)]) if M else np.zeros(0)
    for r, i in enumerate(idx):
        assert abs(s_all[i] - want_scores[r]) <= 1e-12
    for a, b in zip(idx[:-1], idx[1:]):  # equal scores come in row order
        if abs(s_all[a] - s_all[b]) <= 1e-12:
            assert a < b


def test_exact_ties_go_to_the_earlier_row():
    index = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    idx, scores = cosine_topk(np.array([1.0, 0.0]), index, 5)
    assert idx.tolist() == [1, 2, 4, 0, 3]  # three cosines of 1, then 0 (row 0), 0 (zero row 3)
    assert scores.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_k_larger_than_memory_and_empty_memory():
    index = np.eye(3)
    idx, scores = cosine_topk(np.array([0.0, 1.0, 0.0]), index, 10)
    assert idx.tolist() == [1, 0, 2] and scores.tolist() == [1.0, 0.0, 0.0]
    idx, scores = cosine_topk(np.ones(3), np.zeros((0, 3)), 2)
    assert idx.shape == (0,) and scores.shape == (0,)
    idx, scores = cosine_topk_kv(np.ones(3), np.zeros((0, 3)), 2)
    assert idx.shape == (0,) and scores.shape == (0,)


def test_batched_and_float32():
    rng = np.random.default_rng(0)
    index, q = rng.standard_normal((7, 4)), rng.standard_normal((3, 4))
    idx, scores = cosine_topk(q, index, 3)
    assert idx.shape == (3, 3)
    for b in range(3):
        i1, s1 = cosine_topk(q[b], index, 3)
        np.testing.assert_array_equal(idx[b], i1)
        np.testing.assert_allclose(scores[b], s1, atol=1e-12, rtol=0)  # gemm vs gemv rounding
    i32, s32 = cosine_topk(q.astype(np.float32), index.astype(np.float32), 3)
    assert s32.dtype == np.float32
    np.testing.assert_array_equal(i32, idx)  # random data: no near ties at this size
    np.testing.assert_allclose(s32, scores, atol=1e-6)


def test_planted_item_is_rank_one():
    e = HashingEmbedder(D=256)
    memory = [f"ordinary day number {i} in the harbour town with gulls and boats"
              for i in range(30)]
    memory[17] = "they saw the silver lighthouse of Varn from the harbour town"
    idx, _ = cosine_topk(e.encode(["go back to the Varn lighthouse"])[0], e.encode(memory), 2)
    assert idx[0] == 17


@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 40), st.integers(1, 16), st.integers(1, 8))
def test_kv_lookup_route_equals_reference_on_unit_random_data(seed, M, D, k):
    pytest.importorskip("refseq.kv_lookup")
    rng = np.random.default_rng(seed)
    index = rng.standard_normal((M, D))
    index /= np.linalg.norm(index, axis=1, keepdims=True)
    q = rng.standard_normal((3, D))
    ref_idx, ref_scores = cosine_topk(q, index, k)
    kv_idx, kv_scores = cosine_topk_kv(q, index, k)
    np.testing.assert_allclose(kv_scores, ref_scores, atol=1e-12, rtol=0)
    all_scores = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ index.T  # (3, M)
    for b in range(3):
        if np.array_equal(kv_idx[b], ref_idx[b]):
            continue
        # a difference is allowed only inside a rounding-level near tie, where both picks score
        # the same up to 1e-12
        np.testing.assert_allclose(all_scores[b, kv_idx[b]], all_scores[b, ref_idx[b]],
                                   atol=1e-12)


def test_kv_lookup_route_keeps_zero_rows_and_the_tie_rule(backend):
    pytest.importorskip("refseq.kv_lookup")
    index = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    idx, scores = cosine_topk_kv(np.array([1.0, 0.0]), index, 5, backend=backend)
    assert idx.tolist() == [1, 2, 4, 0, 3]
    np.testing.assert_allclose(scores, [1.0, 1.0, 1.0, 0.0, 0.0], atol=1e-15)
    rng = np.random.default_rng(3)
    index, q = rng.standard_normal((9, 4)), rng.standard_normal((2, 4))
    ref, _ = cosine_topk(q, index, 3)
    got, _ = cosine_topk_kv(q, index, 3, backend=backend)
    np.testing.assert_array_equal(got, ref)  # random data: no near ties at this size


def test_official_retrieval_port_agrees():
    torch = pytest.importorskip("torch")
    e = HashingEmbedder(D=64)
    memory = ["boats", "night boats", "the lighthouse of Varn", "rope at night",
              "Varn lighthouse at dusk", "salt"]
    index = e.encode(memory)
    q = e.encode(["Varn lighthouse at night"])[0]
    s = np.sort(index @ q)[::-1]
    assert min(s[0] - s[1], s[1] - s[2]) > 1e-6  # no ties: torch.topk orders them arbitrarily
    # util.cos_sim normalises both sides and takes the matrix product
    qt, mt = torch.as_tensor(q), torch.as_tensor(index)
    cos = (torch.nn.functional.normalize(qt[None], dim=1)
           @ torch.nn.functional.normalize(mt, dim=1).T)[0]
    idx, _ = cosine_topk(q, index, official_port.OFFICIAL_TOP_K)
    joined = official_port.official_related(memory, cos.numpy())
    assert joined == "\n".join(f"Related Paragraphs {r + 1} :" + memory[i]
                               for r, i in enumerate(idx))
