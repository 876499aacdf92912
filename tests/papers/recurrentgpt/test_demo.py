"""``refseq demo recurrentgpt``: the small-scale result (bounded prompts, planted recall)."""

from __future__ import annotations

import pytest

from refseq.papers.recurrentgpt import demo
from refseq.papers.recurrentgpt.budget import count_words


def test_small_run_holds_the_claim():
    r = demo.run(steps=40, plant_step=5, probe_step=30)
    rg = r["methods"]["RecurrentGPT"]
    assert r["ok"] and r["rank"] == 1 and r["kv_rank"] == 1 and r["recall"] == 1.0
    assert max(rg["words"]) <= r["bound"] and rg["ratio"] <= demo.RATIO_MAX
    assert rg["probe_has"] and not r["methods"]["rolling window (k = 3)"]["probe_has"]
    assert r["methods"]["full history"]["probe_has"]
    full = r["methods"]["full history"]["words"]
    assert all(b > a for a, b in zip(full, full[1:]))  # grows every step
    table = demo.format_table(r)
    assert "claim holds: yes" in table and "none practical" in table


def test_planted_paragraph_has_the_phrase():
    from refseq.papers.recurrentgpt.template_writer import TemplateWriter

    p = demo._planted(TemplateWriter(0))
    assert demo.PHRASE in p and count_words(p) > 50


def test_main_exit_status_and_argument_errors(capsys):
    assert demo.main(["--steps", "30", "--probe-step", "20"]) == 0
    assert "claim holds: yes" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        demo.main(["--steps", "10", "--probe-step", "20"])
    assert e.value.code == 2


@pytest.mark.slow
def test_default_run_holds_the_claim():
    r = demo.run()
    assert r["ok"] and r["methods"]["full history"]["growth"] >= 50
