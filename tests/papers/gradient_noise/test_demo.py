"""``refseq demo gradient-noise``: structure at a tiny size; the qualitative outcome for one seed
at the demo's full size (20 layers, 2000 steps; ~8 s; docs/papers/gradient-noise.md, "Demo"),
never timings.

The outcome is deterministic for fixed seeds (all randomness comes from seeded Generators), so
the full-size check is reliable on a given NumPy/BLAS build; the escape from the majority rate
happens between ~1000 and ~1500 steps, which is why fewer steps cannot check it.
"""

from __future__ import annotations

import re

import pytest

from refseq.papers.gradient_noise import demo
from refseq.papers.gradient_noise import mlp as exp

TINY = dict(seeds=(0, 1), eta=0.03, info_etas=(0.01,), steps=20, n=64, depth=3, width=8)


@pytest.fixture(scope="module")
def tiny():
    return demo.run(**TINY)


def test_result_structure(tiny):
    assert [row["role"] for row in tiny["rows"]] == ["baseline", "noise", "informational"]
    assert [row["eta"] for row in tiny["rows"]] == [0.0, 0.03, 0.01]
    for row in tiny["rows"]:
        assert len(row["accuracies"]) == 2 and all(0 <= a <= 1 for a in row["accuracies"])
    assert 0.5 <= tiny["majority"] <= 1 and tiny["noise_needed"] == 2
    assert tiny["ok"] == (tiny["baseline_at_majority"] and tiny["noise_ok"])
    assert demo.run(**TINY)["rows"] == tiny["rows"]  # seeded: identical rerun


def test_table_format(tiny):
    lines = demo.format_table(tiny).splitlines()
    assert lines[0].startswith("Gradient noise on a 3-layer ReLU MLP")
    header = next(i for i, ln in enumerate(lines) if ln.split()[:1] == ["eta"])
    assert lines[header].split() == ["eta", "seed", "0", "seed", "1", "role"]
    for line, role in zip(lines[header + 1: header + 4], ["baseline", "noise", "informational"]):
        assert re.fullmatch(rf"\s*[\d.]+(\s+[01]\.\d{{4}}){{2}}\s+{role}", line), line
    assert any(ln.startswith("no noise stays at the majority rate") for ln in lines)
    assert any(re.match(r"eta = 0.03 reaches >= 0.85 for \d of 2 seeds \(need 2\)", ln)
               for ln in lines)


def test_main_prints_the_table(capsys):
    rc = demo.main(["--seeds", "0", "--steps", "5", "--n", "32", "--depth", "2", "--width", "4",
                    "--info-etas"])
    out = capsys.readouterr().out
    assert rc in (0, 1) and "final training accuracy" in out and "informational" not in out


def test_experiment_gradients_match_finite_differences():
    import numpy as np

    from refseq.testing.gradcheck import assert_directional

    rng = np.random.default_rng(0)
    params = exp.deep_relu_mlp(depth=3, width=5, in_dim=4, init_std=0.7, rng=rng)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 2, size=6)
    _, grads = exp.loss_and_grad(params, (x, y))
    # one random direction per parameter (never .sum()), params moved in place
    assert_directional(lambda: exp.loss_and_grad(params, (x, y))[0], params,
                       {name: grads[name] for name in ("h00.W", "h02.b", "out.W")}, rng=rng)


def test_full_size_one_seed_noise_rescues_the_deep_net():
    res = demo.run(seeds=(0,), info_etas=())
    base, noisy = res["rows"][0]["accuracies"][0], res["rows"][1]["accuracies"][0]
    assert abs(base - res["majority"]) <= 1 / res["n"]  # no noise: majority-class rate
    assert noisy >= 0.85  # eta = 0.03 after clipping at 10 (measured 0.91 for seed 0)
    assert res["ok"]
