"""``refseq demo recurrentgpt``: constant-size prompts for arbitrarily long text, with recall of
a planted paragraph from long-term memory (Zhou et al., arXiv 2305.13304;
docs/papers/recurrentgpt.md).

Generator :class:`~.template_writer.TemplateWriter` (seed 0: 20-sentence paragraphs, memories
capped at 20 sentences), :class:`~.embed.HashingEmbedder` (D = 256), first-plan policy, official
defaults (``top_k = 2``, ``lag = 1``, raw paragraphs), limits enforced, 200 steps. Before step 5
a paragraph containing "the silver lighthouse of Varn" replaces the input paragraph (a human
edit), so it enters the long-term memory at step 5; before step 150 the plan is set to one that
mentions the Varn lighthouse. The same initial paragraphs, planted paragraph and plan go through
:class:`~.baselines.FullHistoryWriter` and :class:`~.baselines.RollingWindowWriter` (k = 3).

Asserted (``ok``): (a) RecurrentGPT's writer prompt stays within
:func:`~.prompts.prompt_word_bound` at every step and max/min of its word count over the steps
is <= 1.5; the full-history prompt at the last step is >= steps / 4 times its first (>= 50 at
200 steps: linear growth); the rolling window stays bounded (max/min <= 1.5); (b) at the probe
step RecurrentGPT retrieves the planted paragraph at rank 1 (recall@2 = 1.0, and the phrase is
in its prompt) -- also through the key-value lookup hot path -- while the rolling window's
prompt does not contain it. The paper's own evidence (human judgements of novels written with
ChatGPT) needs an LLM and readers: none practical here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from refseq import plots
from refseq.cli import positive_int
from refseq.papers.recurrentgpt.baselines import FullHistoryWriter, RollingWindowWriter
from refseq.papers.recurrentgpt.embed import HashingEmbedder
from refseq.papers.recurrentgpt.loop import initialise
from refseq.papers.recurrentgpt.loop import run as run_loop
from refseq.papers.recurrentgpt.prompts import prompt_word_bound
from refseq.papers.recurrentgpt.retrieval import cosine_topk, cosine_topk_kv
from refseq.papers.recurrentgpt.state import RecurrentConfig
from refseq.papers.recurrentgpt.template_writer import TemplateWriter

PHRASE = "the silver lighthouse of Varn"
PROBE_PLAN = ("Return to the Varn lighthouse: the travellers climb its stairs and learn who keeps "
              "the silver light burning.")
RATIO_MAX, GROWTH_PER_STEP = 1.5, 0.25  # full history: last/first >= steps / 4 (50 at 200)


def _planted(writer: TemplateWriter) -> str:
    body = writer.complete(f"Describe {PHRASE}.", seed=12345)
    return f"At dusk the travellers first saw {PHRASE} burning above the cliffs. {body}"


def _baseline(cls, writer, init_paragraphs, plan, steps, plant_step, probe_step, planted,
              **kw):
    base = cls(writer, list(init_paragraphs), plan, **kw)
    words, probe_prompt = [], ""
    for t in range(1, steps + 1):
        if t == plant_step:
            base.paragraphs[-1] = planted
        if t == probe_step:
            base.plan = PROBE_PLAN
        rec = base.step()
        words.append(rec.prompt_words)
        if t == probe_step:
            probe_prompt = rec.prompt
    return words, PHRASE in probe_prompt


def run(steps=200, plant_step=5, probe_step=150, top_k=2, D=256, window=3, seed=0):
    """Return ``{"setup", "methods": {name: {words (steps,), bounded, ratio, probe_has}},
    "rank", "recall", "kv_rank", "bound", "ok", "seconds"}`` (see the module docstring)."""
    if not 1 <= plant_step < probe_step <= steps:
        raise ValueError(f"need 1 <= plant_step < probe_step <= steps, got {plant_step}, "
                         f"{probe_step}, {steps}")
    t0 = time.perf_counter()
    writer, embedder = TemplateWriter(seed), HashingEmbedder(D=D, seed=seed)
    config = RecurrentConfig(top_k=top_k)
    state0 = initialise(writer, embedder, "fantasy", "a drifting archive of songs",
                        config=config, seed=seed)
    planted = _planted(writer)

    def hook(state):
        if state.step + 1 == plant_step:
            return state.copy(last_paragraph=planted)
        if state.step + 1 == probe_step:
            return state.copy(plan=PROBE_PLAN)
        return None

    before_probe, early = run_loop(state0, probe_step - 1, writer, embedder, hooks=[hook])
    after, late = run_loop(before_probe, steps - probe_step + 1, writer, embedder, hooks=[hook])
    records = early + late
    probe = records[probe_step - 1]
    planted_idx = [i for i, m in enumerate(after.long_memory) if PHRASE in m]
    target = planted_idx[0] if planted_idx else -1
    rank = probe.retrieved.index(target) + 1 if target in probe.retrieved else 0
    # the same probe retrieval through the key-value lookup hot path
    probe_state = hook(before_probe)
    q = embedder.encode([probe_state.plan])[0]
    ref_idx, _ = cosine_topk(q, probe_state.long_memory_index, top_k)
    kv_idx, _ = cosine_topk_kv(q, probe_state.long_memory_index, top_k)
    kv_rank = int(np.flatnonzero(kv_idx == target)[0]) + 1 if target in kv_idx else 0
    bound = prompt_word_bound(config.limits, top_k)
    words = [r.prompt_words for r in records]
    init_paragraphs = [*state0.long_memory, state0.last_paragraph]
    methods = {"RecurrentGPT": {"words": words, "probe_has": PHRASE in probe.prompt}}
    for name, cls, kw in (("full history", FullHistoryWriter, {}),
                          (f"rolling window (k = {window})", RollingWindowWriter,
                           {"k": window})):
        w, has = _baseline(cls, writer, init_paragraphs, state0.plan, steps, plant_step,
                           probe_step, planted, **kw)
        methods[name] = {"words": w, "probe_has": has}
    for m in methods.values():
        m["ratio"] = max(m["words"]) / min(m["words"])
        m["growth"] = m["words"][-1] / m["words"][0]
    rolling = methods[f"rolling window (k = {window})"]
    ok = (max(words) <= bound and methods["RecurrentGPT"]["ratio"] <= RATIO_MAX
          and methods["full history"]["growth"] >= GROWTH_PER_STEP * steps
          and rolling["ratio"] <= RATIO_MAX
          and rank == 1 and kv_rank == 1 and methods["RecurrentGPT"]["probe_has"]
          and not rolling["probe_has"] and bool(np.array_equal(ref_idx, kv_idx)))
    return {"setup": dict(steps=steps, plant_step=plant_step, probe_step=probe_step,
                          top_k=top_k, D=D, window=window, seed=seed),
            "methods": methods, "rank": rank, "recall": float(rank >= 1), "kv_rank": kv_rank,
            "kv_same": bool(np.array_equal(ref_idx, kv_idx)), "bound": bound,
            "memory_items": len(after.long_memory), "ok": ok,
            "seconds": time.perf_counter() - t0}


def format_table(result) -> str:
    s = result["setup"]
    lines = [f"RecurrentGPT with a template writer: {s['steps']} steps, top_k = {s['top_k']}, "
             f"hashing embedder D = {s['D']}, seed {s['seed']}",
             f"planted '{PHRASE}' before step {s['plant_step']}; plan about the Varn lighthouse "
             f"before step {s['probe_step']}", "",
             f"{'method':<24} {'step 1':>7} {'min':>7} {'max':>7} {'last':>7} {'max/min':>8} "
             f"{'last/first':>10}  {'phrase in probe prompt':>22}"]
    for name, m in result["methods"].items():
        w = m["words"]
        lines.append(f"{name:<24} {w[0]:>7} {min(w):>7} {max(w):>7} {w[-1]:>7} "
                     f"{m['ratio']:>8.2f} {m['growth']:>10.2f}  "
                     f"{'yes' if m['probe_has'] else 'no':>22}")
    rg = result["methods"]["RecurrentGPT"]
    growth, need = result["methods"]["full history"]["growth"], GROWTH_PER_STEP * s["steps"]
    lines += ["", "prompt sizes in words",
              f"RecurrentGPT prompt <= bound {result['bound']} words at every step: "
              f"{'yes' if max(rg['words']) <= result['bound'] else 'NO'}; max/min "
              f"{rg['ratio']:.2f} <= {RATIO_MAX}: {'yes' if rg['ratio'] <= RATIO_MAX else 'NO'}",
              f"full history last/first {growth:.1f} >= steps / 4 = {need:g}: "
              f"{'yes' if growth >= need else 'NO'}",
              f"planted paragraph at step {s['probe_step']}: retrieved at rank {result['rank']} "
              f"among {result['memory_items']} items (recall@{s['top_k']} = "
              f"{result['recall']:.1f}); through kv_lookup: rank {result['kv_rank']}, same "
              f"indices as the reference: {'yes' if result['kv_same'] else 'NO'}",
              "paper's human evaluation (novels written with ChatGPT): none practical",
              f"claim holds: {'yes' if result['ok'] else 'NO'}",
              f"total {result['seconds']:.1f} s"]
    return "\n".join(lines)


def plot(result, path):
    """Writer-prompt words per step, one line per method, log y, the bound dashed."""
    s = result["setup"]
    series = {name: m["words"] for name, m in result["methods"].items()}
    return plots.prompt_sizes(path, np.arange(1, s["steps"] + 1), series,
                              bound=("RecurrentGPT bound", result["bound"]),
                              marks={"plant": s["plant_step"], "probe": s["probe_step"]},
                              title=f"Prompt size per step (template writer, top_k = "
                                    f"{s['top_k']})")


def main(argv=None) -> int:
    """Command line: print the table; exit status 1 if the claim does not hold."""
    parser = argparse.ArgumentParser(
        prog="refseq demo recurrentgpt",
        description="RecurrentGPT's bounded prompts and long-term recall against full-history "
                    "and rolling-window baselines, with a deterministic template writer.")
    parser.add_argument("--steps", type=positive_int, default=200, help="writer steps")
    parser.add_argument("--plant-step", type=positive_int, default=5,
                        help="step whose input paragraph is the planted one")
    parser.add_argument("--probe-step", type=positive_int, default=150,
                        help="step whose plan asks for the planted content")
    parser.add_argument("--top-k", type=positive_int, default=2, help="retrieved items")
    parser.add_argument("--D", type=positive_int, default=256, help="embedding width")
    parser.add_argument("--window", type=positive_int, default=3,
                        help="paragraphs kept by the rolling-window baseline")
    plots.add_plot_option(parser, "the prompt-size figure")
    args = parser.parse_args(argv)
    plots.check_plot_option(parser, args.plot)
    if not args.plant_step < args.probe_step <= args.steps:
        parser.error(f"need --plant-step < --probe-step <= --steps, got {args.plant_step}, "
                     f"{args.probe_step}, {args.steps}")
    result = run(steps=args.steps, plant_step=args.plant_step, probe_step=args.probe_step,
                 top_k=args.top_k, D=args.D, window=args.window)
    print(format_table(result))
    if args.plot is not None:
        plot(result, args.plot)
    return 0 if result["ok"] else 1
