"""Batched ADED (refseq.papers.aded.batch): with one table per row every row equals
``aded_generate`` on that row alone; with one shared table the rows' updates go in row order
before drafting (checked against a hand-run of the same schedule), greedy rows equal plain
greedy decoding, and the run is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from refseq.decoding.speculative.batched import RowsTreeLM
from refseq.decoding.speculative.engine import plain_greedy
from refseq.decoding.speculative.target import TabularTreeLM
from refseq.models.toy_lm import random_markov_lm, sample_sequences
from refseq.papers.aded import TrigramMatrix, adapt, aded_generate
from refseq.papers.aded.batch import aded_generate_batch

V = 6
PROMPTS = [np.array([0, 1, 2]), np.array([3]), np.array([4, 4, 5, 1])]


@pytest.fixture(scope="module")
def lm():
    return random_markov_lm(V, 0.3, 5, order=3)


def _corpus(lm):
    return TrigramMatrix.build(list(sample_sequences(lm, 10, 20, 1)))


def _targets(lm):
    return RowsTreeLM([TabularTreeLM(lm) for _ in PROMPTS])


@pytest.mark.parametrize("backend", ["numpy", "jit"])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_one_table_per_row_equals_rows_alone(lm, temperature, backend):
    base = _corpus(lm)
    tables = [base.copy() for _ in PROMPTS]
    outs, stats = aded_generate_batch(_targets(lm), PROMPTS, 20, tables, iterations=20,
                                      temperature=temperature, rngs=[0, 1, 2],
                                      mcts_rngs=[5, 6, 7], backend=backend)
    for b, p in enumerate(PROMPTS):
        mine = base.copy()
        one, st = aded_generate(TabularTreeLM(lm), p, 20, mine, iterations=20,
                                temperature=temperature, rng=b, mcts_rng=5 + b)
        np.testing.assert_array_equal(outs[b], one)
        assert stats[b].spec.num_accepted == st.spec.num_accepted
        assert [h["touched"] for h in stats[b].drafter] == [h["touched"] for h in st.drafter]
        assert tables[b].num_entries == mine.num_entries


def test_shared_table_updates_in_row_order_before_drafting(lm):
    """Greedy rows equal plain greedy; the shared table ends as a hand-run of the schedule
    (each step: every active row's window adapted in row order); a second run is identical."""
    table = TrigramMatrix()
    outs, stats = aded_generate_batch(_targets(lm), PROMPTS, 15, table, iterations=20,
                                      mcts_rngs=[1, 2, 3])
    for b, p in enumerate(PROMPTS):
        np.testing.assert_array_equal(outs[b], plain_greedy(TabularTreeLM(lm), p, 15))
    # the schedule by hand, from each row's committed sequence after each of its steps
    seqs = [list(p) for p in PROMPTS]
    emitted = [list(s.spec.emitted) for s in stats]
    want, pos = TrigramMatrix(), [0] * len(PROMPTS)
    for step in range(max(len(e) for e in emitted)):
        for b in range(len(PROMPTS)):
            if step < len(emitted[b]):
                adapt(want, seqs[b])
                n = emitted[b][step]
                seqs[b] += outs[b][pos[b]:pos[b] + n].tolist()
                pos[b] += n
    assert table.num_entries == want.num_entries
    for step in range(max(len(e) for e in emitted)):  # every row drafted from the same table
        seen = {s.drafter[step]["entries"] for s in stats if step < len(s.drafter)}
        assert len(seen) == 1
    for ctx, row in want.table.items():
        assert table.table[ctx] == pytest.approx(row)
    again = TrigramMatrix()
    outs2, _ = aded_generate_batch(_targets(lm), PROMPTS, 15, again, iterations=20,
                                   mcts_rngs=[1, 2, 3])
    assert all(np.array_equal(a, b) for a, b in zip(outs, outs2))
    assert all(h["touched"] >= 0 for s in stats for h in s.drafter)


def test_bad_tables_are_named(lm):
    t = TrigramMatrix()
    with pytest.raises(TypeError, match="matrix must be a TrigramMatrix"):
        aded_generate_batch(_targets(lm), PROMPTS, 5, [t])
    with pytest.raises(ValueError, match="distinct"):
        aded_generate_batch(_targets(lm), PROMPTS, 5, [t, t, t])
    with pytest.raises(TypeError, match="mcts_rngs must be a list of B = 3"):
        aded_generate_batch(_targets(lm), PROMPTS, 5, t, mcts_rngs=[0])
