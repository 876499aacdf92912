"""The recurrence: memory bookkeeping (2), incremental index (4), determinism and resumption
(5), human control (8), the new-character hint (9), limits, retries inside a step."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from refseq.models.toy_lm import random_markov_lm
from refseq.papers.recurrentgpt import llm, loop, policies
from refseq.papers.recurrentgpt.budget import count_words, split_sentences
from refseq.papers.recurrentgpt.embed import HashingEmbedder
from refseq.papers.recurrentgpt.formats import WriterOutput, format_writer_output
from refseq.papers.recurrentgpt.parse import GenerationFailed, extract_section
from refseq.papers.recurrentgpt.retrieval import cosine_topk
from refseq.papers.recurrentgpt.state import RecurrentConfig, RecurrentState
from refseq.papers.recurrentgpt.template_writer import TemplateWriter
from tests.papers.recurrentgpt import official_port

WRITER, EMBED = TemplateWriter(0, paragraph_sentences=4), HashingEmbedder(D=64)


def _start(**config):
    return loop.initialise(WRITER, EMBED, "fantasy", "a drifting archive",
                           config=RecurrentConfig(**config), seed=7)


def test_lag_one_appends_the_step_input_paragraph():
    s0 = _start()
    p3 = s0.last_paragraph
    s, recs = loop.run(s0, 6, WRITER, EMBED)
    assert len(s.long_memory) == 2 + 6 and s.long_memory_index.shape == (8, 64)
    assert recs[0].appended == p3 == s.long_memory[2]  # step 1 stores paragraph 3 of the init
    for t, r in enumerate(recs, 1):
        assert s.long_memory[1 + t] == r.input_paragraph == r.appended
        if t > 1:
            assert r.input_paragraph == recs[t - 2].output.paragraph  # o_{t-1}
    assert s.short_memory == recs[-1].output.memory  # replaced by the reply's memory


def test_lag_zero_and_summary_items():
    s, recs = loop.run(_start(lag=0), 3, WRITER, EMBED)
    assert [r.appended for r in recs] == [r.output.paragraph for r in recs] == s.long_memory[2:]
    gen = llm.ScriptedGenerator(lambda p, i: WRITER.complete(p, seed=i))
    s, recs = loop.run(_start(lag=0, long_memory_item="summary"), 2, gen, EMBED)
    assert gen.calls == 4  # a writer call and a summary call per step
    for r in recs:  # the template writer's summary: the paragraph's first sentence, keywords
        assert r.appended.startswith(split_sentences(r.output.paragraph)[0] + " Keywords ")
    assert s.long_memory[2:] == [r.appended for r in recs]


def test_short_memory_is_replaced_not_appended():
    memory = ["First memory.", "Second memory."]
    replies = [format_writer_output(WriterOutput("P.", "", m, ("a", "b", "c"))) for m in memory]
    s = RecurrentState(0, "Initial memory.", [], np.zeros((0, 64)), "p0", "plan", ["x"])
    s, r1 = loop.recurrent_step(s, llm.ScriptedGenerator(replies[:1]), EMBED)
    assert s.short_memory == "First memory."
    s, r2 = loop.recurrent_step(s, llm.ScriptedGenerator(replies[1:]), EMBED)
    assert s.short_memory == "Second memory."
    assert extract_section(r2.prompt, "Input Memory:", "Input Paragraph:") == "First memory."
    assert r1.retrieved == () and r2.retrieved == (0,)  # empty memory, then the one item


def test_incremental_index_equals_reencoding_and_retrieval_uses_the_plan():
    s, recs = loop.run(_start(), 8, WRITER, EMBED)
    np.testing.assert_array_equal(s.long_memory_index,
                                  official_port.official_index(EMBED, s.long_memory))
    state = _start()
    for _ in range(4):
        q = EMBED.encode([state.plan])[0]
        want, scores = cosine_topk(q, EMBED.encode(state.long_memory), 2)
        state, rec = loop.recurrent_step(state, WRITER, EMBED)
        assert rec.retrieved == tuple(want) and rec.scores == tuple(scores)
        state = policies.FirstPlan().choose(state, rec.input_paragraph)


def test_same_seeds_same_records():
    a, ra = loop.run(_start(), 5, WRITER, EMBED)
    b, rb = loop.run(_start(), 5, WRITER, EMBED)
    assert ra == rb and a.to_json() == b.to_json()
    c, rc = loop.run(loop.initialise(WRITER, EMBED, "fantasy", "a drifting archive", seed=8),
                     5, WRITER, EMBED)
    assert rc != ra  # another seed: other generator seeds, other replies


def test_json_round_trip_and_npy(tmp_path):
    s, _ = loop.run(_start(), 3, WRITER, EMBED)
    assert RecurrentState.from_json(s.to_json()).to_json() == s.to_json()
    js, npy = s.save(tmp_path / "state")
    assert js.suffix == ".json" and npy.suffix == ".npy"
    back = RecurrentState.load(tmp_path / "state")
    assert back.to_json() == s.to_json()
    np.testing.assert_array_equal(np.load(npy, allow_pickle=False), s.long_memory_index)


def test_resuming_in_a_fresh_process_equals_one_run(tmp_path):
    full, recs = loop.run(_start(), 10, WRITER, EMBED)
    half, _ = loop.run(_start(), 5, WRITER, EMBED)
    half.save(tmp_path / "half")
    script = textwrap.dedent(f"""
        import json
        from refseq.papers.recurrentgpt import loop
        from refseq.papers.recurrentgpt.embed import HashingEmbedder
        from refseq.papers.recurrentgpt.state import RecurrentState
        from refseq.papers.recurrentgpt.template_writer import TemplateWriter
        s = RecurrentState.load({str(tmp_path / 'half')!r})
        s, recs = loop.run(s, 5, TemplateWriter(0, paragraph_sentences=4), HashingEmbedder(D=64))
        print(json.dumps({{"prompts": [r.prompt for r in recs], "state": s.to_json()}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    got = json.loads(out)
    assert got["prompts"] == [r.prompt for r in recs[5:]]
    assert got["state"] == full.to_json()


def test_callback_edits_appear_verbatim_in_the_next_prompt():
    def fn(state):
        return "Plan: sail to the **ninth** island.", "Memory edited\nby hand."

    s, _ = loop.run(_start(), 1, WRITER, EMBED, policy=policies.CallbackPolicy(fn))
    assert s.plan == "Plan: sail to the **ninth** island."
    _, rec = loop.recurrent_step(s, WRITER, EMBED)
    assert extract_section(rec.prompt, "Input Instruction:", "Input Related Paragraphs:") == \
        "Plan: sail to the **ninth** island."
    assert extract_section(rec.prompt, "Input Memory:", "Input Paragraph:") == \
        "Memory edited\nby hand."


def test_simulated_human_replaces_the_paragraph_and_plan():
    s0 = _start()
    human = policies.SimulatedHuman(WRITER, language="English")
    s, recs = loop.run(s0, 3, WRITER, EMBED, policy=human)
    after_step, rec = loop.recurrent_step(s, WRITER, EMBED)
    edited = human.choose(after_step, rec.input_paragraph)
    # the template writer's edit: the new paragraph, then as many new sentences (twice as long)
    assert edited.last_paragraph.startswith(after_step.last_paragraph + " ")
    assert len(split_sentences(edited.last_paragraph)) == \
        2 * len(split_sentences(after_step.last_paragraph))
    assert edited.plan.startswith(after_step.candidate_plans[0])  # selected first, then revised
    # lag 1 under the simulated human: the stored item is the extended paragraph
    assert recs[2].appended == recs[2].input_paragraph
    assert recs[2].input_paragraph != recs[1].output.paragraph
    assert recs[2].input_paragraph.startswith(recs[1].output.paragraph)


def test_new_character_hint_frequency_and_reproducibility():
    # the protocol: each step draws u ~ U[0, 1) (hint iff u < p), then the generator seed
    rng = np.random.default_rng(7)
    flags = []
    for _ in range(10_000):
        flags.append(rng.random() < 0.1)
        rng.integers(2 ** 31)
    assert abs(np.mean(flags) - 0.1) <= 0.01
    out = format_writer_output(WriterOutput("P.", "", "M.", ("a", "b", "c")))
    s = RecurrentState(0, "m", ["x"], EMBED.encode(["x"]), "p", "plan", ["a"],
                       rng_state=np.random.default_rng(7).bit_generator.state)
    gen = llm.ScriptedGenerator(lambda p, i: out)
    got = []
    for _ in range(300):
        s, rec = loop.recurrent_step(s, gen, EMBED)
        got.append(rec.new_character)
        assert ("new character" in rec.prompt) == rec.new_character
    assert got == flags[:300]


def test_enforced_limits_truncate_the_memory():
    long_memory = " ".join(f"Sentence {i} has five words." for i in range(200))  # 1000 words
    out = format_writer_output(WriterOutput("P.", "", long_memory, ("a", "b", "c")))
    s = RecurrentState(0, "m", [], np.zeros((0, 64)), "p", "plan", ["a"])
    s1, _ = loop.recurrent_step(s, llm.ScriptedGenerator([out]), EMBED)
    assert count_words(s1.short_memory) == 500  # 100 whole sentences
    assert long_memory.startswith(s1.short_memory)
    s.config = RecurrentConfig(enforce_limits=False)
    s2, _ = loop.recurrent_step(s, llm.ScriptedGenerator([out]), EMBED)
    assert s2.short_memory == long_memory


def test_failed_generation_inside_a_step():
    s = _start(max_retries=2)
    before = s.to_json()
    with pytest.raises(GenerationFailed) as info:
        loop.recurrent_step(s, llm.ScriptedGenerator(["no", "still no"]), EMBED)
    assert info.value.replies == ["no", "still no"] and s.to_json() == before


def test_kv_lookup_retrieval_gives_the_same_run():
    pytest.importorskip("refseq.kv_lookup")
    _, ref = loop.run(_start(), 6, WRITER, EMBED)
    _, kv = loop.run(_start(retrieval="kv_lookup"), 6, WRITER, EMBED)
    assert [r.retrieved for r in kv] == [r.retrieved for r in ref]
    assert [r.prompt for r in kv] == [r.prompt for r in ref]


def test_steplm_generator_drives_the_loop():
    words = ["unk", *[w for w in WRITER.vocab[:31]]]
    tok = llm.WordTokenizer(words)
    gen = llm.StepLMGenerator(random_markov_lm(len(words), 0.5, seed=0), tok, max_tokens=5)
    s = loop.initialise(gen, EMBED, "fantasy", "archive", seed=1)
    s, recs = loop.run(s, 2, gen, EMBED)
    assert all(len(r.replies) == 1 for r in recs)  # always parses on the first call
    assert all(len(r.output.paragraph.split()) == 5 for r in recs)
    again = llm.StepLMGenerator(random_markov_lm(len(words), 0.5, seed=0), tok, max_tokens=5)
    assert again.complete(recs[0].prompt, seed=3) == gen.complete(recs[0].prompt, seed=3)
    greedy = gen.complete(recs[0].prompt, temperature=0.0)
    assert greedy == gen.complete(recs[0].prompt, temperature=0.0, seed=99)


def test_policies_and_interactive_fiction():
    s = _start()
    s = s.copy(candidate_plans=["A", "B", "C"])
    assert loop.interactive_fiction_step(s, 2).plan == "C"
    with pytest.raises(ValueError, match="reader_choice"):
        loop.interactive_fiction_step(s, 3)
    picks = {policies.RandomPlan(5).choose(s.copy(step=t)).plan for t in range(30)}
    assert picks == {"A", "B", "C"}
    assert policies.RandomPlan(5).choose(s).plan == policies.RandomPlan(5).choose(s).plan
    assert policies.FirstPlan().choose(s).plan == "A"
